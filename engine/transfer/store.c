#include "engine/transfer/sx_store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_held.h"
#include "engine/wire/sx_wire.h"

/* A path the receiver refuses is a refusal on the receiver: class 5, as
 * PROTOCOL.md lists for FILE_ERR (sx_path_check itself says "usage", which
 * would make the sender exit 2 as if its own command line were wrong). */
static int path_refused(const uint8_t *rel, size_t len, sx_err *err)
{
	if (sx_path_check(rel, len, err) == 0)
		return 0;
	err->cls = SX_E_IO;
	return -1;
}

static int temp_name(sx_store *st, char *out, size_t cap, const char *name, sx_err *err);

/* Creating a temporary under a name taken meanwhile is tried again with the
 * next number, this many times. */
#define TEMP_TRIES 8

static mode_t proc_umask;
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;

static void read_umask(void)
{
	/* umask() can only be read by setting it: done once, and first from
	 * the server's start-up, before any other thread creates a file. */
	proc_umask = umask(077);
	umask(proc_umask);
}

mode_t sx_store_umask(void)
{
	pthread_once(&umask_once, read_umask);
	return proc_umask;
}

bool sx_store_temp_name(const char *name, size_t *base_len)
{
	static const char *const suffixes[] = {SX_STORE_PART,	   SX_STORE_CKPT, SX_STORE_CKPT_NEW,
					       SX_STORE_TEMP_META, SX_HELD_DATA,  SX_HELD_META,
					       SX_HELD_META "-new"};
	size_t n = strlen(name);
	if (n < 2 || name[0] != '.')
		return false;
	for (size_t i = 0; i < SX_ARRAY_LEN(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);
		/* "." NAME "." 12 hex digits SUFFIX, NAME not empty */
		if (n < 1 + 1 + 1 + SX_STORE_RND_HEX + sl ||
		    strcmp(name + n - sl, suffixes[i]) != 0)
			continue;
		const char *hex = name + n - sl - SX_STORE_RND_HEX;
		if (hex[-1] != '.')
			continue;
		bool ok = true;
		for (size_t k = 0; k < SX_STORE_RND_HEX && ok; k++)
			ok = (hex[k] >= '0' && hex[k] <= '9') || (hex[k] >= 'a' && hex[k] <= 'f');
		if (!ok)
			continue;
		if (base_len != NULL)
			*base_len = (size_t)(hex - 1 - (name + 1));
		return true;
	}
	return false;
}

static void out_identity(sx_store *st, int out)
{
	struct stat sb;
	if (fstat(out, &sb) < 0)
		return;
	st->out_dev = sb.st_dev;
	st->out_ino = sb.st_ino;
	st->out_known = true;
}

bool sx_store_may_hold(const sx_store *st)
{
	return !st->out_known || sx_held_index_may(st->out_dev, st->out_ino);
}

int sx_store_open(sx_store *st, const char *out_dir, const char *peer, bool overwrite, sx_err *err)
{
	memset(st, 0, sizeof(*st));
	st->root_fd = -1;
	st->cache_fd = -1;
	st->overwrite = overwrite;
	if (peer == NULL) {
		/* The client of `sxfer get`: files land in OUT itself. */
		if (sx_mkdirs(out_dir, SX_STORE_DIR_MODE, err) < 0)
			return -1;
		st->root_fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (st->root_fd < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "%s", out_dir);
		out_identity(st, st->root_fd);
		return 0;
	}
	size_t n = strlen(peer);
	if (strchr(peer, '/') != NULL || sx_path_check((const uint8_t *)peer, n, err) < 0) {
		sx_err_clear(err);
		return sx_fail(err, SX_E_AUTH, "peer name '%s' cannot be used as a folder name",
			       peer);
	}
	if (sx_mkdirs(out_dir, SX_STORE_DIR_MODE, err) < 0)
		return -1;
	int out = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (out < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", out_dir);
	if (mkdirat(out, peer, SX_STORE_DIR_MODE) < 0 && errno != EEXIST) {
		int e = errno;
		close(out);
		return sx_fail_errno(err, SX_E_IO, e, "%s/%s: cannot create folder", out_dir, peer);
	}
	st->root_fd = sx_open_beneath(out, peer, O_RDONLY | O_DIRECTORY);
	int e = errno;
	out_identity(st, out);
	close(out);
	if (st->root_fd < 0)
		return sx_fail_errno(err, SX_E_IO, e, "%s/%s: cannot open folder", out_dir, peer);
	return 0;
}

void sx_store_close(sx_store *st)
{
	if (st->cache_fd >= 0)
		close(st->cache_fd);
	if (st->root_fd >= 0)
		close(st->root_fd);
	st->cache_fd = st->root_fd = -1;
}

/* Resolves (creating when asked) the folder `dir` (dlen bytes, may be 0 for
 * the root) beneath the root; returns a new fd. */
static int dup_dir(int fd, const char *dir, size_t dlen, sx_err *err)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0 && dlen == 0)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot open the sender's folder");
	if (d < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot open folder '%.*s'", (int)dlen,
				     dir);
	return d;
}

#define GEN_ROOT 1 /* root_fd's generation; cache_fd's count from 2 */

/* The folder `dir` resolved into a new fd (see walk_dir), with its
 * generation in *gen (0: none). */
static int resolve_dir_gen(sx_store *st, const char *dir, size_t dlen, bool create, mode_t mode,
			   uint64_t *gen, sx_err *err);

static int resolve_dir(sx_store *st, const char *dir, size_t dlen, bool create, mode_t mode,
		       sx_err *err)
{
	uint64_t gen;
	return resolve_dir_gen(st, dir, dlen, create, mode, &gen, err);
}

/* The folder `dir` (dlen bytes) beneath the root, one component at a
 * time, creating when asked; a new fd, which becomes the cache. */
static int walk_dir(sx_store *st, const char *dir, size_t dlen, bool create, mode_t mode,
		    uint64_t *gen, sx_err *err)
{
	int cur = dup_dir(st->root_fd, dir, 0, err);
	size_t start = 0;
	while (cur >= 0 && start < dlen) {
		size_t end = start;
		while (end < dlen && dir[end] != '/')
			end++;
		char comp[256];
		snprintf(comp, sizeof(comp), "%.*s", (int)(end - start), dir + start);
		if (create && mkdirat(cur, comp, mode) < 0 && errno != EEXIST) {
			int e = errno;
			close(cur);
			return sx_fail_errno(err, SX_E_IO, e, "cannot create folder '%.*s'",
					     (int)end, dir);
		}
		int next = sx_open_beneath(cur, comp, O_RDONLY | O_DIRECTORY);
		int e = errno;
		close(cur);
		if (next < 0)
			return sx_fail_errno(err, SX_E_IO, e, "refused folder '%.*s'", (int)end,
					     dir);
		cur = next;
		start = end + 1;
	}
	if (cur >= 0 && dlen < sizeof(st->cache_path)) {
		if (st->cache_fd >= 0)
			close(st->cache_fd);
		st->cache_fd = fcntl(cur, F_DUPFD_CLOEXEC, 0);
		memcpy(st->cache_path, dir, dlen);
		st->cache_path[dlen] = '\0';
		st->cache_gen = st->cache_fd >= 0 ? GEN_ROOT + ++st->gens : 0;
		*gen = st->cache_gen;
	}
	return cur;
}

static bool cached(const sx_store *st, const char *dir, size_t dlen)
{
	return st->cache_fd >= 0 && strlen(st->cache_path) == dlen &&
	       memcmp(st->cache_path, dir, dlen) == 0;
}

static int resolve_dir_gen(sx_store *st, const char *dir, size_t dlen, bool create, mode_t mode,
			   uint64_t *gen, sx_err *err)
{
	*gen = 0;
	if (dlen == 0) {
		*gen = GEN_ROOT;
		return dup_dir(st->root_fd, dir, dlen, err);
	}
	if (cached(st, dir, dlen)) {
		*gen = st->cache_gen;
		return dup_dir(st->cache_fd, dir, dlen, err);
	}
	return walk_dir(st, dir, dlen, create, mode, gen, err);
}

int sx_store_mkdir(sx_store *st, const uint8_t *rel, size_t len, mode_t mode, sx_err *err)
{
	if (path_refused(rel, len, err) < 0)
		return -1;
	int fd = resolve_dir(st, (const char *)rel, len, true, (mode & 0777) | 0700, err);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* A recent reading of f's folder (the same generation) with room for size
 * within half of what it showed above the reserve, less what the files
 * begun since announced. */
static bool space_known(sx_store *st, const sx_store_file *f, uint64_t size, uint64_t now)
{
	if (st == NULL || f->dir_gen == 0 || st->space_gen != f->dir_gen ||
	    now - st->space_ns > SX_STORE_SPACE_TTL_NS || st->space_used > st->space_room / 2 ||
	    size > st->space_room / 2 - st->space_used)
		return false;
	st->space_used += size;
	return true;
}

int sx_store_space(const sx_store_file *f, uint64_t size, sx_err *err)
{
	struct statvfs vs;
	sx_store *st = f->st;
	uint64_t now = sx_now_ns();
	if (space_known(st, f, size, now))
		return 0;
	if (fstatvfs(f->dir_fd, &vs) < 0)
		return 0; /* cannot tell: the writes will say */
	uint64_t unit = vs.f_frsize ? vs.f_frsize : vs.f_bsize;
	uint64_t total = (uint64_t)vs.f_blocks * unit, avail = (uint64_t)vs.f_bavail * unit;
	uint64_t reserve = total / 100 < SX_STORE_RESERVE_MAX ? total / 100 : SX_STORE_RESERVE_MAX;
	if (st != NULL) {
		st->space_gen = f->dir_gen;
		st->space_ns = now;
		st->space_room = avail >= reserve ? avail - reserve : 0;
		st->space_used = 0;
	}
	if (avail >= reserve && size <= avail - reserve) {
		if (st != NULL)
			st->space_used = size;
		return 0;
	}
	return sx_fail(err, SX_E_IO,
		       "'%s' (%llu bytes) does not fit: %llu bytes free on the receiver, %llu of "
		       "them kept in reserve",
		       f->name, (unsigned long long)size, (unsigned long long)avail,
		       (unsigned long long)reserve);
}

bool sx_store_dir_exists(sx_store *st, const uint8_t *rel, size_t len)
{
	sx_err err = {0};
	int fd = resolve_dir(st, (const char *)rel, len, false, 0, &err);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int sx_store_dir_mtime(sx_store *st, const uint8_t *rel, size_t len, const struct timespec *mtime,
		       sx_err *err)
{
	int fd = resolve_dir(st, (const char *)rel, len, false, 0, err);
	if (fd < 0)
		return -1;
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, *mtime};
	int rc = futimens(fd, ts);
	close(fd);
	if (rc < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%.*s': cannot set mtime", (int)len,
				     rel);
	return 0;
}

/* Every descriptor a file holds is counted in its store: the receiver
 * bounds what one connection may hold (engine/transfer/serve.c). */
static void fd_close(sx_store_file *f, int *fd)
{
	if (*fd < 0)
		return;
	close(*fd);
	*fd = -1;
	if (f->st != NULL)
		f->st->file_fds--;
}

static int fd_take(sx_store_file *f, int fd)
{
	if (fd >= 0 && f->st != NULL)
		f->st->file_fds++;
	return fd;
}

int sx_store_prepare(sx_store *st, const uint8_t *rel, size_t len, sx_store_file *f, sx_err *err)
{
	memset(f, 0, sizeof(*f));
	f->dir_fd = f->fd = f->aux_fd = -1;
	f->st = st;
	if (path_refused(rel, len, err) < 0)
		return -1;
	size_t slash = len;
	while (slash > 0 && rel[slash - 1] != '/')
		slash--;
	size_t nlen = len - slash;
	if (nlen >= sizeof(f->name))
		return sx_fail(err, SX_E_IO, "refused path: name too long");
	memcpy(f->name, rel + slash, nlen);
	f->name[nlen] = '\0';
	/* Such a name would be taken for a temporary left by a crash and
	 * removed at the next start (sx_store_recover). */
	if (sx_store_temp_name(f->name, NULL))
		return sx_fail(err, SX_E_IO,
			       "refused path '%.*s': the name of a receiver's temporary", (int)len,
			       rel);
	f->dir_fd = fd_take(f, resolve_dir_gen(st, (const char *)rel, slash ? slash - 1 : 0, true,
					       0755, &f->dir_gen, err));
	if (f->dir_fd < 0)
		return -1;
	struct stat sb;
	if (fstatat(f->dir_fd, f->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!st->overwrite || !S_ISREG(sb.st_mode)) {
			sx_fail(err, SX_E_IO, "'%.*s' exists on the receiver%s", (int)len, rel,
				st->overwrite ? " and is not a regular file" : " (no --overwrite)");
			goto fail;
		}
	}
	if (temp_name(st, f->tmp, sizeof(f->tmp), f->name, err) < 0)
		goto fail;
	return 0;
fail:
	sx_store_end(f);
	return -1;
}

/* The last component of rel into name, checked as sx_store_prepare does;
 * the length of its folder's path in *dlen. */
static int split_name(const uint8_t *rel, size_t len, char name[256], size_t *dlen, sx_err *err)
{
	if (path_refused(rel, len, err) < 0)
		return -1;
	size_t slash = len;
	while (slash > 0 && rel[slash - 1] != '/')
		slash--;
	if (len - slash >= 256)
		return sx_fail(err, SX_E_IO, "refused path: name too long");
	memcpy(name, rel + slash, len - slash);
	name[len - slash] = '\0';
	if (sx_store_temp_name(name, NULL))
		return sx_fail(err, SX_E_IO, "refused path: the name of a receiver's temporary");
	*dlen = slash ? slash - 1 : 0;
	return 0;
}

int sx_store_find(sx_store *st, const uint8_t *rel, size_t len, char name[256], sx_err *err)
{
	size_t dlen;
	if (split_name(rel, len, name, &dlen, err) < 0)
		return -1;
	return resolve_dir(st, (const char *)rel, dlen, false, 0, err);
}

int sx_store_lookup(sx_store *st, const uint8_t *rel, size_t len, char name[256], sx_err *err)
{
	size_t dlen;
	if (split_name(rel, len, name, &dlen, err) < 0)
		return -1;
	if (dlen == 0)
		return st->root_fd;
	if (!cached(st, (const char *)rel, dlen)) {
		uint64_t gen;
		int fd = walk_dir(st, (const char *)rel, dlen, false, 0, &gen, err);
		if (fd < 0)
			return -1;
		close(fd);
		if (!cached(st, (const char *)rel, dlen))
			return sx_fail(err, SX_E_IO, "folder '%.*s' cannot be kept open", (int)dlen,
				       (const char *)rel);
	}
	return st->cache_fd;
}

/* Opens a new temporary for f under a fresh name (O_EXCL: never one that
 * exists; a name taken meanwhile is skipped). */
static int temp_create(sx_store_file *f, char *tmp, size_t cap, const char *name, mode_t mode)
{
	sx_err e = {0};
	for (int i = 0; i < TEMP_TRIES; i++) {
		if (i > 0 && temp_name(f->st, tmp, cap, name, &e) < 0)
			break;
		int fd = openat(f->dir_fd, tmp,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int sx_store_begin(sx_store *st, const uint8_t *rel, size_t len, sx_store_file *f, sx_err *err)
{
	if (sx_store_prepare(st, rel, len, f, err) < 0)
		return -1;
	f->fd = fd_take(f, temp_create(f, f->tmp, sizeof(f->tmp), f->name, 0600));
	if (f->fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "'%.*s': cannot create temporary", (int)len,
			      rel);
		f->tmp[0] = '\0';
		sx_store_end(f);
		return -1;
	}
	return 0;
}

int sx_store_claim(sx_store_file *f, const char *held, sx_err *err)
{
	/* Atomic: of two connections that want the same part, one gets it. */
	int r = -1;
	for (int i = 0; i < TEMP_TRIES && r < 0; i++) {
		if (i > 0 && temp_name(f->st, f->tmp, sizeof(f->tmp), f->name, err) < 0)
			return -1;
		r = renameat2(f->dir_fd, held, f->dir_fd, f->tmp, RENAME_NOREPLACE);
		if (r < 0 && errno != EEXIST)
			break;
	}
	if (r < 0) {
		int e = errno;
		f->tmp[0] = '\0';
		if (e == ENOENT)
			return sx_fail(err, SX_E_IO,
				       "'%s': the held part is gone (expired, or taken by another "
				       "connection)",
				       f->name);
		return sx_fail_errno(err, SX_E_IO, e, "'%s': cannot take the held part", f->name);
	}
	f->fd = fd_take(f, openat(f->dir_fd, f->tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
	if (f->fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot open the held part",
				     f->name);
	return 0;
}

int sx_store_temp_meta(sx_store_file *f, const sx_held_meta *m, sx_err *err)
{
	size_t tl = strlen(f->tmp), pl = strlen(SX_STORE_PART);
	if (f->fd < 0 || tl <= pl || tl - pl + strlen(SX_STORE_TEMP_META) >= sizeof(f->meta))
		return sx_fail(err, SX_E_OTHER, "'%s': no temporary", f->name);
	snprintf(f->meta, sizeof(f->meta), "%.*s" SX_STORE_TEMP_META, (int)(tl - pl), f->tmp);
	if (sx_held_write(f->dir_fd, f->meta, m, false, err) < 0) {
		unlinkat(f->dir_fd, f->meta, 0);
		f->meta[0] = '\0';
		return -1;
	}
	return 0;
}

bool sx_store_direct_on(sx_store_file *f)
{
	if (f->fd < 0 || f->direct)
		return f->direct;
	f->dio_align = sx_direct_on(f->fd);
	f->direct = f->dio_align != 0;
	return f->direct;
}

int sx_store_direct_off(sx_store_file *f)
{
	if (!f->direct)
		return 0;
	if (sx_direct_off(f->fd) < 0)
		return -1;
	f->direct = false;
	return 0;
}

int sx_store_meta(sx_store_file *f, mode_t mode, const struct timespec *mtime, sx_err *err)
{
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, *mtime};
	/* The sender's bits, less what the server's umask takes away (a 0666
	 * file is not stored world-writable). */
	if (fchmod(f->fd, mode & 0777 & ~sx_store_umask()) < 0 || futimens(f->fd, ts) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot set mode/mtime", f->name);
	return 0;
}

/* 48 random bits. */
static int draw(uint64_t *v, sx_err *err)
{
	uint8_t rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return sx_fail(err, SX_E_OTHER, "getrandom failed");
	*v = 0;
	for (size_t i = 0; i < sizeof(rnd); i++)
		*v = *v << 8 | rnd[i];
	return 0;
}

/* A store draws its number once and counts from there: names stay unique
 * within the store, and another store's (drawn at random) meets them only
 * by a chance of about one in 2^48 per pair of files of one name; the
 * temporary is created with O_EXCL, and a name taken is skipped
 * (temp_create). Without a store, each name is drawn. */
static int temp_name(sx_store *st, char *out, size_t cap, const char *name, sx_err *err)
{
	uint64_t v = 0;
	if (st != NULL && !st->tmp_seeded) {
		if (draw(&st->tmp_next, err) < 0)
			return -1;
		st->tmp_seeded = true;
	}
	if (st != NULL)
		v = st->tmp_next++;
	else if (draw(&v, err) < 0)
		return -1;
	/* A short prefix keeps the temporary within NAME_MAX. */
	snprintf(out, cap, ".%.*s.%012llx" SX_STORE_PART, SX_STORE_TEMP_BASE_MAX, name,
		 (unsigned long long)(v & 0xffffffffffffull));
	return 0;
}

int sx_store_rename_final(sx_store_file *f, const char *suffix, sx_err *err)
{
	char n[sizeof(f->name)];
	if (snprintf(n, sizeof(n), "%s%s", f->name, suffix) >= (int)sizeof(n))
		return sx_fail(err, SX_E_IO, "'%s%s': name too long", f->name, suffix);
	memcpy(f->name, n, sizeof(n));
	return 0;
}

int sx_store_aux_write(sx_store_file *f, const char *suffix, const void *data, size_t len,
		       sx_err *err)
{
	if (snprintf(f->aux_name, sizeof(f->aux_name), "%s%s", f->name, suffix) >=
		(int)sizeof(f->aux_name) ||
	    strlen(f->aux_name) > 255)
		return sx_fail(err, SX_E_IO, "'%s%s': name too long", f->name, suffix);
	if (temp_name(f->st, f->aux_tmp, sizeof(f->aux_tmp), f->aux_name, err) < 0)
		return -1;
	f->aux_fd = fd_take(f, temp_create(f, f->aux_tmp, sizeof(f->aux_tmp), f->aux_name, 0644));
	if (f->aux_fd < 0) {
		f->aux_tmp[0] = '\0';
		return sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot create", f->aux_name);
	}
	if (sx_write_all(f->aux_fd, data, len) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%s': write failed", f->aux_name);
	return 0;
}

int sx_store_ckpt_write(sx_store_file *f, const void *data, size_t len, sx_err *err)
{
	char name[sizeof(f->ckpt)], fresh[sizeof(f->ckpt) + 8] = "";
	int fd = -1, rc = -1;
	size_t tl = strlen(f->tmp), pl = strlen(SX_STORE_PART);
	SX_ENSURE(f->fd >= 0 && tl > pl && tl - pl + strlen(SX_STORE_CKPT_NEW) < sizeof(name), err,
		  SX_E_OTHER, "'%s': no temporary to checkpoint", f->name);
	snprintf(name, sizeof(name), "%.*s" SX_STORE_CKPT, (int)(tl - pl), f->tmp);
	snprintf(fresh, sizeof(fresh), "%.*s" SX_STORE_CKPT_NEW, (int)(tl - pl), f->tmp);
	fd = openat(f->dir_fd, fresh, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fresh[0] = '\0';
		sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot create the checkpoint", f->name);
		goto out;
	}
	if (sx_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot write the checkpoint", f->name);
		goto out;
	}
	/* Atomic: after a crash the checkpoint file holds the previous
	 * checkpoint or this one, never a mix. */
	if (renameat(f->dir_fd, fresh, f->dir_fd, name) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot rename the checkpoint", f->name);
		goto out;
	}
	fresh[0] = '\0';
	if (f->ckpt[0] == '\0') {
		memcpy(f->ckpt, name, sizeof(name));
		/* its name, once */
		if (fsync(f->dir_fd) < 0) {
			sx_fail_errno(err, SX_E_IO, errno, "'%s': flush of its folder failed",
				      f->name);
			goto out;
		}
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (fresh[0] != '\0')
		unlinkat(f->dir_fd, fresh, 0);
	return rc;
}

int sx_store_commit(sx_store *st, sx_store_file *f, sx_err *err)
{
	unsigned flags = st->overwrite ? 0 : RENAME_NOREPLACE;
	bool aux_placed = false;
	if (f->aux_tmp[0] != '\0') {
		if (renameat2(f->dir_fd, f->aux_tmp, f->dir_fd, f->aux_name, flags) < 0) {
			if (errno == EEXIST)
				return sx_fail(err, SX_E_IO,
					       "'%s' exists on the receiver (no --overwrite)",
					       f->aux_name);
			return sx_fail_errno(err, SX_E_IO, errno, "'%s': rename failed",
					     f->aux_name);
		}
		f->aux_tmp[0] = '\0';
		aux_placed = true;
	}
	if (renameat2(f->dir_fd, f->tmp, f->dir_fd, f->name, flags) < 0) {
		int e = errno;
		/* The file is refused: the companion placed for it goes too,
		 * or a refused file would leave its signature behind (the
		 * name it just took was free, or replaced by this file's own
		 * companion under --overwrite). */
		if (aux_placed)
			(void)unlinkat(f->dir_fd, f->aux_name, 0);
		if (e == EEXIST)
			return sx_fail(err, SX_E_IO, "'%s' exists on the receiver (no --overwrite)",
				       f->name);
		return sx_fail_errno(err, SX_E_IO, e, "'%s': rename failed", f->name);
	}
	f->committed = true;
	/* An unsigned file written over a signed one: the old NAME.sxsig no
	 * longer describes NAME, and would vouch for bytes it never saw. */
	if (st->overwrite && !aux_placed) {
		char sig[300];
		if (snprintf(sig, sizeof(sig), "%s.sxsig", f->name) < (int)sizeof(sig))
			(void)unlinkat(f->dir_fd, sig, 0);
	}
	return 0;
}

void sx_store_close_data(sx_store_file *f)
{
	fd_close(f, &f->fd);
	f->direct = false;
}

int sx_store_park(sx_store_file *f, const uint8_t *rel, size_t len, sx_err *err)
{
	size_t slash = len;
	while (slash > 0 && rel[slash - 1] != '/')
		slash--;
	size_t dlen = slash ? slash - 1 : 0;
	if (f->parked_dir == NULL && (f->parked_dir = strndup((const char *)rel, dlen)) == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	fd_close(f, &f->fd);
	fd_close(f, &f->aux_fd);
	fd_close(f, &f->dir_fd);
	f->direct = false;
	return 0;
}

int sx_store_unpark(sx_store_file *f, bool data, sx_err *err)
{
	if (f->parked_dir == NULL)
		return 0;
	if (f->dir_fd < 0) {
		/* Beneath the root, no symlinks, as when it was created: a
		 * folder swapped meanwhile is refused, not followed. */
		f->dir_fd = fd_take(f, resolve_dir_gen(f->st, f->parked_dir, strlen(f->parked_dir),
						       false, 0, &f->dir_gen, err));
		if (f->dir_fd < 0)
			return -1;
	}
	if (data && f->fd < 0 && !f->committed) {
		f->fd = fd_take(f, openat(f->dir_fd, f->tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
		if (f->fd < 0)
			return sx_fail_errno(err, SX_E_IO, errno,
					     "'%s': cannot reopen its temporary", f->name);
	}
	return 0;
}

void sx_store_end(sx_store_file *f)
{
	sx_err err = {0};
	bool leftover = f->aux_tmp[0] != '\0' || f->ckpt[0] != '\0' || f->meta[0] != '\0' ||
			(!f->committed && f->tmp[0] != '\0');
	if (f->dir_fd < 0 && leftover && sx_store_unpark(f, false, &err) < 0)
		sx_log("warn", "temporary", "name=%s reason=%s", SX_LOGQ(f->tmp), SX_LOGQ(err.msg));
	fd_close(f, &f->aux_fd);
	if (f->aux_tmp[0] != '\0' && f->dir_fd >= 0)
		unlinkat(f->dir_fd, f->aux_tmp, 0);
	f->aux_tmp[0] = '\0';
	fd_close(f, &f->fd);
	if (!f->committed && f->tmp[0] != '\0' && f->dir_fd >= 0)
		unlinkat(f->dir_fd, f->tmp, 0);
	/* Stored, kept as NAME.partial or removed: the stream's checkpoint is
	 * no longer needed for a recovery. */
	if (f->ckpt[0] != '\0' && f->dir_fd >= 0)
		unlinkat(f->dir_fd, f->ckpt, 0);
	f->ckpt[0] = '\0';
	if (f->meta[0] != '\0' && f->dir_fd >= 0)
		unlinkat(f->dir_fd, f->meta, 0);
	f->meta[0] = '\0';
	fd_close(f, &f->dir_fd);
	f->tmp[0] = '\0';
	free(f->parked_dir);
	f->parked_dir = NULL;
}
