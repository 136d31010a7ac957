/* The source of the sender's files (sx_source.h): the walk of its
 * arguments, with the receiver's name checks and the skips, standard input,
 * and the choice of direct I/O for a file that is not in the page cache. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_source.h"

#define DIRECT_MIN (4u << 20) /* files from this size may be read with direct I/O */

static int ents_add(sx_entries *e, int dirfd, const char *src, const char *rel, bool is_dir,
		    sx_err *err)
{
	if (sx_grow(&e->v, &e->cap, e->n + 1, sizeof(*e->v), SX_SEND_FILES_MAX,
		    "files and folders to send", err) < 0)
		return -1;
	sx_entry *x = &e->v[e->n];
	x->dirfd = dirfd;
	x->src = src ? strdup(src) : NULL;
	x->rel = strdup(rel);
	x->is_dir = is_dir;
	x->arg = -1; /* set by sx_entries_build */
	if ((src && !x->src) || !x->rel)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	e->n++;
	return 0;
}

void sx_entries_free(sx_entries *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].src);
		free(e->v[i].rel);
	}
	free(e->v);
}

/* A path of the sender's arguments: as given (dirfd AT_FDCWD), or beneath
 * dirfd with no symlink anywhere (a server's export, sxfer get). */
static int src_open(int dirfd, const char *src, int flags)
{
	if (dirfd == AT_FDCWD)
		return open(src, flags | O_CLOEXEC);
	return sx_open_beneath(dirfd, src, flags);
}

static int src_stat(int dirfd, const char *src, struct stat *st)
{
	if (dirfd == AT_FDCWD)
		return stat(src, st);
	int fd = sx_open_beneath(dirfd, src, O_PATH);
	if (fd < 0)
		return -1;
	int rc = fstat(fd, st);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Something in a sent tree that is not sent: a warning, and counted (the
 * session then ends with exit code 5 once everything else is sent). */
static void skip(sx_entries *e, const char *src, const char *why)
{
	sx_log("warn", "skip", "path=%s reason=%s", SX_LOGQ(src), SX_LOGQ(why));
	e->skipped++;
}

typedef struct dent {
	char *name;
	mode_t mode;
	uint64_t size;
} dent;

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const dent *)a)->name, ((const dent *)b)->name);
}

/* The names in folder src (beneath dirfd) in byte order, each with the
 * type of what it is (not following a symlink). */
static int read_folder(int base, const char *src, dent **out, size_t *n, sx_err *err)
{
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	int fd = src_open(base, src, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot read folder", src);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot read folder", src);
	}
	int rc = -1;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				sx_fail_errno(err, SX_E_IO, errno, "%s: cannot read folder", src);
				goto out;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			sx_fail_errno(err, SX_E_IO, errno, "%s/%s", src, de->d_name);
			goto out;
		}
		SX_GUARD(sx_grow(out, &cap, *n + 1, sizeof(**out), SX_SEND_FILES_MAX,
				 "names in one folder", err));
		(*out)[*n].name = strdup(de->d_name);
		(*out)[*n].mode = st.st_mode;
		(*out)[*n].size = (uint64_t)st.st_size;
		SX_ENSURE((*out)[*n].name != NULL, err, SX_E_OTHER, "out of memory");
		(*n)++;
	}
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), cmp_dent);
	rc = 0;
out:
	closedir(d);
	return rc;
}

static int walk(sx_entries *e, int dirfd, const char *src, const char *rel, int depth, sx_err *err)
{
	dent *names = NULL;
	size_t n = 0;
	int rc = -1;
	if (depth > 64)
		return sx_fail(err, SX_E_IO, "%s: folders nested too deeply", src);
	SX_GUARD(ents_add(e, dirfd, src, rel, true, err));
	SX_GUARD(read_folder(dirfd, src, &names, &n, err));
	for (size_t i = 0; i < n; i++) {
		const char *nm = names[i].name;
		mode_t mode = names[i].mode;
		char s[SX_PATH_MAX + 256], r[SX_PATH_MAX + 256];
		if ((strcmp(src, ".") == 0
			 ? snprintf(s, sizeof(s), "%s", nm)
			 : snprintf(s, sizeof(s), "%s/%s", src, nm)) >= (int)sizeof(s) ||
		    snprintf(r, sizeof(r), "%s/%s", rel, nm) >= (int)sizeof(r)) {
			skip(e, r, "refused path: longer than 4096 bytes");
			continue;
		}
		if (!S_ISDIR(mode) && !S_ISREG(mode)) {
			skip(e, s, "not a regular file or folder");
			continue;
		}
		/* What the receiver would refuse is not sent: the same check
		 * it makes (a folder, with everything in it, by its path). */
		sx_err why = {0};
		if (S_ISDIR(mode)
			? sx_path_check((const uint8_t *)r, strlen(r), &why) < 0
			: sx_path_check_file((const uint8_t *)r, strlen(r), e->pflags, &why) < 0) {
			skip(e, s, why.msg);
			continue;
		}
		if (S_ISDIR(mode)) {
			SX_GUARD(walk(e, dirfd, s, r, depth + 1, err));
			continue;
		}
		SX_GUARD(ents_add(e, dirfd, s, r, false, err));
		/* Its size as listed, for the total: not looked at again. */
		e->v[e->n - 1].listed_size = names[i].size;
		e->v[e->n - 1].listed = true;
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i].name);
	free(names);
	return rc;
}

static const char *base_name(const char *p, char *buf, size_t cap)
{
	size_t off, len;
	sx_path_last(p, &off, &len);
	snprintf(buf, cap, "%.*s", (int)len, p + off);
	return buf;
}

typedef struct named {
	const char *rel;
	size_t entry;
	bool skip;
} named;

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const named *)a)->rel, ((const named *)b)->rel);
}

/* Signed, the receiver keeps the signature of a file X as X.sxsig beside
 * it, so a sent X.sxsig (signed earlier with `sxfer sign`, say) cannot be
 * stored beside a sent X: it is skipped (docs/SIGNATURES.md, section 8).
 * In name order a file comes before its X.sxsig, so whether X itself is
 * sent is known when X.sxsig is looked at (X.sxsig.sxsig is data again
 * once X.sxsig is skipped). */
static int skip_sig_companions(sx_entries *e, sx_err *err)
{
	const size_t sfx = sizeof(SX_SUFFIX_SIG) - 1;
	named *files = malloc((e->n ? e->n : 1) * sizeof(*files));
	size_t nf = 0, kept = 0;
	if (files == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (size_t i = 0; i < e->n; i++)
		if (!e->v[i].is_dir)
			files[nf++] = (named){.rel = e->v[i].rel, .entry = i};
	qsort(files, nf, sizeof(*files), cmp_named);
	for (size_t i = 0; i < nf; i++) {
		size_t n = strlen(files[i].rel);
		char owner[SX_PATH_MAX + 1];
		named key = {.rel = owner};
		if (n <= sfx || n - sfx > SX_PATH_MAX ||
		    strcmp(files[i].rel + n - sfx, SX_SUFFIX_SIG))
			continue;
		memcpy(owner, files[i].rel, n - sfx);
		owner[n - sfx] = '\0';
		const named *o = bsearch(&key, files, nf, sizeof(*files), cmp_named);
		files[i].skip = o != NULL && !o->skip;
	}
	for (size_t i = 0; i < nf; i++) {
		if (!files[i].skip)
			continue;
		sx_entry *x = &e->v[files[i].entry];
		skip(e, x->src ? x->src : x->rel,
		     "the receiver keeps the signature of the file beside it under this name "
		     "(--no-sign sends it as it is)");
		free(x->src);
		free(x->rel);
		x->rel = NULL;
	}
	free(files);
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].rel != NULL)
			e->v[kept++] = e->v[i];
	e->n = kept;
	return 0;
}

/* TEST HOOK dest: any --dest goes out as given, and the names under it
 * unchecked, so that the receiver's own check of the paths can be tested. */
static bool hook_dest(void)
{
#ifdef SXFER_TEST_HOOKS
	const char *hook = getenv("SXFER_TEST_HOSTILE");
	return hook != NULL && strcmp(hook, "dest") == 0;
#else
	return false;
#endif
}

int sx_send_dest_check(const char *dest, sx_err *err)
{
	sx_err why = {0};
	if (hook_dest())
		return 0;
	size_t n = strlen(dest);
	if (n > SX_DEST_MAX)
		return sx_fail(err, SX_E_USAGE, "--dest: longer than %d bytes", SX_DEST_MAX);
	if (sx_path_check((const uint8_t *)dest, n, &why) < 0)
		return sx_fail(err, SX_E_USAGE,
			       "--dest '%s': %s (a folder under this identity's own on the "
			       "receiver: no '..', no leading '/', no empty part)",
			       dest, why.msg);
	return 0;
}

/* The name an argument is sent under: its last component (or the name
 * given for it), under --dest when there is one. */
static int sent_name(const sx_send_cfg *cfg, int i, char *base, size_t cap, sx_err *err)
{
	char last[512];
	const char *p = cfg->paths[i];
	if (strcmp(p, "-") == 0)
		snprintf(last, sizeof(last), "%s", cfg->stream_name ? cfg->stream_name : "stdin");
	else if (cfg->path_names != NULL)
		snprintf(last, sizeof(last), "%s", cfg->path_names[i]);
	else
		base_name(p, last, sizeof(last));
	if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0 || last[0] == '\0' ||
	    strcmp(last, "/") == 0)
		return sx_fail(err, SX_E_USAGE, "%s: name the folder itself, not '.', '..' or '/'",
			       p);
	if (cfg->dest == NULL)
		snprintf(base, cap, "%s", last);
	else if (snprintf(base, cap, "%s/%s", cfg->dest, last) >= (int)cap)
		return sx_fail(err, SX_E_USAGE, "%s: --dest and the name are too long", p);
	return 0;
}

int sx_entries_build(sx_entries *e, const sx_send_cfg *cfg, bool sign, sx_progress *prog,
		     sx_err *err)
{
	sx_err why = {0};
	size_t marked = 0;
	e->pflags = sign ? SX_PATH_SIGNED : 0;
	if (cfg->dest != NULL)
		SX_GUARD(sx_send_dest_check(cfg->dest, err));
	for (int i = 0; i < cfg->npaths; i++) {
		const char *p = cfg->paths[i];
		char base[SX_DEST_MAX + 512];
		/* What the argument before added came from it. */
		for (; marked < e->n; marked++)
			e->v[marked].arg = i - 1;
		SX_GUARD(sent_name(cfg, i, base, sizeof(base), err));
		if (strcmp(p, "-") == 0) {
			if (sx_path_check_file((const uint8_t *)base, strlen(base),
					       e->pflags | SX_PATH_STREAM, &why) < 0)
				return sx_fail(err, SX_E_USAGE, "--name: %s", why.msg);
			SX_GUARD(ents_add(e, AT_FDCWD, NULL, base, false, err));
			continue;
		}
		int dirfd = cfg->path_dirs != NULL ? cfg->path_dirs[i] : AT_FDCWD;
		struct stat st;
		if (src_stat(dirfd, p, &st) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "%s",
					     cfg->path_names != NULL ? cfg->path_names[i] : p);
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			return sx_fail(err, SX_E_USAGE, "%s: not a regular file or folder", p);
		/* Named on the command line: refused as a wrong argument, before
		 * anything is sent (inside a folder, a name is skipped). */
		if (!hook_dest() &&
		    (S_ISDIR(st.st_mode)
			 ? sx_path_check((const uint8_t *)base, strlen(base), &why) < 0
			 : sx_path_check_file((const uint8_t *)base, strlen(base), e->pflags,
					      &why) < 0))
			return sx_fail(err, SX_E_USAGE, "%s: cannot be sent: %s", p, why.msg);
		if (S_ISDIR(st.st_mode))
			SX_GUARD(walk(e, dirfd, p, base, 0, err));
		else
			SX_GUARD(ents_add(e, dirfd, p, base, false, err));
	}
	for (; marked < e->n; marked++)
		e->v[marked].arg = cfg->npaths - 1;
	if (sign)
		SX_GUARD(skip_sig_companions(e, err));
	for (size_t i = 0; i < e->n; i++) {
		const sx_entry *x = &e->v[i];
		if (x->is_dir)
			continue;
		prog->files_total++;
		if (x->src == NULL)
			prog->total_known = false;
		struct stat st;
		if (x->listed)
			prog->bytes_total += x->listed_size;
		else if (x->src && src_stat(x->dirfd, x->src, &st) == 0)
			prog->bytes_total += (uint64_t)st.st_size;
	}
	return 0;
out:
	return -1;
}

static void stat_to_msg(const struct stat *st, sx_msg *m)
{
	m->mode = st->st_mode & 07777;
	m->mtime_sec = st->st_mtim.tv_sec;
	m->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
}

/* A large regular file that is mostly not in the page cache is read with
 * direct I/O: the device writes into the slot, and no page of the page
 * cache is filled, copied and evicted for it. A cached file is read from
 * the cache (direct reads would go to the device). */
static bool read_direct(const sx_send_cfg *cfg, uint32_t chunk, int fd, uint64_t size)
{
	if (cfg->no_direct || size < DIRECT_MIN || chunk % SX_DIO_ALIGN != 0)
		return false;
	int64_t cached = sx_cached_bytes(fd, size);
	if (cached < 0 || (uint64_t)cached > size / 8)
		return false;
	return sx_direct_on(fd) != 0;
}

int sx_source_size(const sx_entry *e, uint64_t *size)
{
	struct stat st;
	if (e->src == NULL || src_stat(e->dirfd, e->src, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	*size = (uint64_t)st.st_size;
	return 0;
}

int sx_source_stat_dir(const sx_entry *e, sx_msg *m, sx_err *err)
{
	struct stat st;
	if (src_stat(e->dirfd, e->src, &st) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", e->src);
	stat_to_msg(&st, m);
	return 0;
}

int sx_source_open(sx_source *f, const sx_entry *e, const sx_send_cfg *cfg, uint32_t chunk,
		   sx_msg *m, sx_err *err)
{
	struct stat st;
	if (e->src == NULL) {
		f->fd = STDIN_FILENO;
		memset(&st, 0, sizeof(st));
		st.st_mode = 0644;
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		st.st_mtim = now;
		f->size = SX_SIZE_UNKNOWN;
		f->direct = false;
	} else {
		/* Beneath an export, something swapped for a FIFO must not
		 * block the open. */
		f->fd =
		    src_open(e->dirfd, e->src, O_RDONLY | (e->dirfd == AT_FDCWD ? 0 : O_NONBLOCK));
		if (f->fd < 0 || fstat(f->fd, &st) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "%s", e->src);
		if (!S_ISREG(st.st_mode))
			return sx_fail(err, SX_E_IO, "%s: no longer a regular file", e->src);
		f->size = (uint64_t)st.st_size;
		f->direct = S_ISREG(st.st_mode) && read_direct(cfg, chunk, f->fd, f->size);
	}
	m->size = f->size;
	stat_to_msg(&st, m);
	return 0;
}

/* A file is sent at the size it had when it was begun (FILE_BEGIN, and the
 * signed descriptor, carry it). One that has more bytes by the time its
 * last read is asked for grew while it was being sent, or its size said
 * less than it holds (files under /proc); the rest is not sent, and the
 * sender says so, once per file. With direct I/O the size tells (a read
 * of one byte is not aligned); otherwise one byte is read past the end. */
void sx_source_check_grown(const sx_source *f, const sx_entry *e, sx_send_stats *stats)
{
	struct stat st;
	uint8_t probe;
	/* The byte past the end is there exactly when the size grew, and also
	 * when the size says less than the file holds: read, it tells both,
	 * and the size need not be asked. */
	bool grew = f->direct ? fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > f->size
			      : pread(f->fd, &probe, 1, (off_t)f->size) == 1;
	if (!grew)
		return;
	stats->files_grew++;
	sx_log("warn", "file_grew",
	       "path=%s sent=%llu reason=\"the file has more bytes than when it was begun: "
	       "only the bytes it had then were sent\"",
	       SX_LOGQ(e->src), (unsigned long long)f->size);
}
