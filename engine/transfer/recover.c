/* engine/recover: what a server that was killed left in OUT, cleaned up at
 * the next start, before it listens. Temporaries are ".NAME.<hex>.sxpart"
 * beside NAME (sx_store.h); a stream's temporary whose checkpoint file
 * ".NAME.<hex>.sxckpt" is beside it keeps its signed prefix as
 * NAME.partial with NAME.partial.sxsig, exactly as a stream cut off while
 * the server runs (docs/SIGNATURES.md). Everything else is removed. The walk
 * never follows a symlink and goes no deeper than a received path can. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/sign/sx_manifest.h"
#include "engine/transfer/sx_held.h"
#include "engine/transfer/sx_store.h"
#include "engine/wire/sx_wire.h"

/* OUT/<peer>/ and then the levels a received path may have. */
#define RECOVER_DEPTH_MAX (SX_PATH_DEPTH_MAX + 1)
#define RECOVER_READ	  (1u << 20)

typedef struct walk {
	sx_store_recovery *st;
	char rel[SX_PATH_MAX + 512]; /* the folder being scanned, relative to OUT */
	uint8_t *buf;		     /* RECOVER_READ bytes */
	uint64_t ttl;		     /* held parts: seconds */
	bool only_expired;	     /* the periodic sweep: nothing but expired parts */
	int64_t now;
	/* the client of get: at the top, only these names, their temporaries
	 * and held parts (NULL: everything) */
	const char *const *names;
	size_t nnames;
	/* for the index of held parts (sx_held_index_set): parts left in
	 * place, and whether a folder could not be walked */
	uint64_t parts;
	bool partial;
} walk;

/* The path of name in the folder being scanned, for a log line. */
static const char *path_of(const walk *w, const char *name, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s%s", w->rel, name);
	if (n < 0 || (size_t)n >= cap)
		buf[cap - 1] = '\0'; /* cut: a log line, not a path to use */
	return buf;
}
#define PATH_OF(w, name)                                                                           \
	path_of((w), (name), (char[sizeof((w)->rel) + 256]){0}, sizeof((w)->rel) + 256)

static void removed(walk *w, int dfd, const char *name, const char *why)
{
	struct stat sb;
	long long bytes = fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 ? sb.st_size : 0;
	if (unlinkat(dfd, name, 0) < 0) {
		/* gone already: a name read before its pair was dealt with */
		if (errno == ENOENT)
			return;
		sx_log("error", "recover", "path=%s reason=\"cannot remove\" cause=%s",
		       SX_LOGQ(PATH_OF(w, name)), SX_LOGQ(strerror(errno)));
		w->st->failed++;
		return;
	}
	sx_log("warn", "recover", "path=%s bytes=%lld action=removed reason=%s",
	       SX_LOGQ(PATH_OF(w, name)), bytes, SX_LOGQ(why));
	w->st->removed++;
	w->st->removed_bytes += (uint64_t)(bytes > 0 ? bytes : 0);
}

/* Does the first size bytes of fd hash to root (the Merkle root with
 * chunk-sized leaves, as the checkpoint signed it)? */
static int prefix_matches(walk *w, int fd, uint64_t size, uint32_t chunk,
			  const uint8_t root[SX_HASH_LEN], sx_err *err)
{
	sx_filehash h;
	uint8_t got[SX_HASH_LEN];
	uint64_t leaves, bytes, off = 0;
	int rc = -1;
	SX_GUARD(sx_filehash_init(&h, chunk, err));
	while (off < size) {
		size_t want = size - off < RECOVER_READ ? (size_t)(size - off) : RECOVER_READ;
		ssize_t n = pread(fd, w->buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sx_fail_errno(err, SX_E_IO, n < 0 ? errno : EIO, "read failed");
			goto done;
		}
		if (sx_filehash_update(&h, w->buf, (size_t)n, err) < 0)
			goto done;
		off += (uint64_t)n;
	}
	if (sx_filehash_final(&h, got, &leaves, &bytes, err) < 0)
		goto done;
	if (CRYPTO_memcmp(got, root, SX_HASH_LEN) != 0) {
		sx_fail(err, SX_E_INTEGRITY,
			"its first %llu bytes do not match the signed checkpoint",
			(unsigned long long)size);
		goto done;
	}
	rc = 0;
done:
	sx_filehash_free(&h);
out:
	return rc;
}

/* A stream's temporary `part` with its checkpoint `ck` beside it: cut down
 * to the checkpoint and kept as NAME.partial + NAME.partial.sxsig, the
 * signature first (a file under its final name has its signature beside
 * it). Both are removed when that cannot be done. */
static void recover_stream(walk *w, int dfd, const char *part, const char *ck, size_t base_len)
{
	sx_err err = {0};
	sx_sxsig s = {0};
	uint8_t *text = NULL;
	char name[300], sig[320];
	int fd = -1, cfd = -1;
	struct stat sb;
	ssize_t n;
	cfd = openat(dfd, ck, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (cfd < 0 || fstat(cfd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > SX_SXSIG_TEXT_MAX) {
		sx_fail(&err, SX_E_IO, "its checkpoint cannot be read");
		goto out;
	}
	text = malloc((size_t)sb.st_size);
	SX_ENSURE(text != NULL, &err, SX_E_OTHER, "out of memory");
	n = pread(cfd, text, (size_t)sb.st_size, 0);
	SX_ENSURE(n == sb.st_size, &err, SX_E_IO, "its checkpoint cannot be read");
	SX_GUARD(sx_sxsig_decode((const char *)text, (size_t)n, &s, &err));
	SX_ENSURE(s.kind == SX_KIND_CHECKPOINT, &err, SX_E_INTEGRITY,
		  "its checkpoint is not a stream checkpoint");
	/* The final name comes from the signed path; the temporary's name
	 * holds its first 200 bytes. */
	const char *slash = strrchr(s.path, '/');
	const char *final = slash != NULL ? slash + 1 : s.path;
	size_t fl = strlen(final);
	SX_ENSURE((base_len == fl || (base_len == SX_STORE_TEMP_BASE_MAX && fl > base_len)) &&
		      strncmp(final, part + 1, base_len) == 0 &&
		      snprintf(name, sizeof(name), "%s.partial", final) < (int)sizeof(name) &&
		      snprintf(sig, sizeof(sig), "%s.sxsig", name) < (int)sizeof(sig) &&
		      strlen(sig) <= 255,
		  &err, SX_E_INTEGRITY, "its checkpoint names another file ('%s')", s.path);
	fd = openat(dfd, part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "cannot open it");
		goto out;
	}
	SX_ENSURE((uint64_t)sb.st_size >= s.file_size, &err, SX_E_INTEGRITY,
		  "%lld bytes, shorter than its checkpoint (%llu)", (long long)sb.st_size,
		  (unsigned long long)s.file_size);
	SX_GUARD(prefix_matches(w, fd, s.file_size, s.chunk, s.file_root, &err));
	if (ftruncate(fd, (off_t)s.file_size) < 0 || fsync(fd) < 0 || fsync(cfd) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "cannot cut it to its checkpoint");
		goto out;
	}
	if (renameat2(dfd, ck, dfd, sig, RENAME_NOREPLACE) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "'%s' cannot be created", sig);
		goto out;
	}
	if (renameat2(dfd, part, dfd, name, RENAME_NOREPLACE) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "'%s' cannot be created", name);
		unlinkat(dfd, sig, 0);
		goto out;
	}
	if (fsync(dfd) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "flush of its folder failed");
		goto out;
	}
	sx_log("warn", "recover",
	       "path=%s bytes=%llu action=kept reason=\"a stream cut off by a crash; its "
	       "signed prefix is kept\"",
	       SX_LOGQ(PATH_OF(w, name)), (unsigned long long)s.file_size);
	w->st->kept++;
out:
	if (fd >= 0)
		close(fd);
	if (cfd >= 0)
		close(cfd);
	if (err.cls != SX_OK) {
		char why[sizeof(err.msg) + 64];
		snprintf(why, sizeof(why), "a stream's temporary not kept: %s", err.msg);
		removed(w, dfd, part, why);
		removed(w, dfd, ck, "the checkpoint of a temporary not kept");
	}
	sx_sxsig_free(&s);
	free(text);
}

/* A file's .sxsig is renamed into place just before the file itself
 * (sx_store_commit): a server killed between the two renames leaves X.sxsig
 * with no X, only the temporary of X. That signature, when it is a batch
 * signature naming X, goes with the temporary. Names of more than 200 bytes
 * are cut in the temporary's name and are not matched. */
static void orphan_sxsig(walk *w, int dfd, const char *part, size_t base_len)
{
	char x[256], sig[264];
	struct stat sb;
	sx_sxsig s = {0};
	sx_err err = {0};
	uint8_t *text = NULL;
	int fd = -1;
	if (base_len == 0 || base_len >= 200)
		return;
	memcpy(x, part + 1, base_len);
	x[base_len] = '\0';
	snprintf(sig, sizeof(sig), "%s.sxsig", x);
	if (fstatat(dfd, x, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		return;
	fd = openat(dfd, sig, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > SX_SXSIG_TEXT_MAX)
		goto out;
	text = malloc((size_t)sb.st_size);
	if (text == NULL || pread(fd, text, (size_t)sb.st_size, 0) != sb.st_size ||
	    sx_sxsig_decode((const char *)text, (size_t)sb.st_size, &s, &err) < 0)
		goto out;
	const char *slash = strrchr(s.path, '/');
	if (s.kind == SX_KIND_BATCH && strcmp(slash ? slash + 1 : s.path, x) == 0)
		removed(w, dfd, sig, "the signature of a file that was never renamed into place");
out:
	if (fd >= 0)
		close(fd);
	sx_sxsig_free(&s);
	free(text);
}

/* name with its suffix `from` replaced by `to` into out; false when it
 * does not end in from or does not fit. */
static bool swap_suffix(const char *name, const char *from, const char *to, char *out, size_t cap)
{
	size_t nl = strlen(name), fl = strlen(from);
	if (nl <= fl || strcmp(name + nl - fl, from) != 0)
		return false;
	int n = snprintf(out, cap, "%.*s%s", (int)(nl - fl), name, to);
	return n > 0 && (size_t)n < cap;
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl = strlen(suffix);
	return nl > sl && strcmp(name + nl - sl, suffix) == 0;
}

/* A temporary `part` with its .sxmeta `meta`: a file the server was
 * receiving when it was killed. Its whole leaves (below the file's size)
 * become a held part, hashed here; nothing useful is removed. */
static void recover_held(walk *w, int dfd, const char *part, const char *meta, size_t base_len)
{
	sx_err err = {0};
	sx_held_meta *m = calloc(1, sizeof(*m));
	struct stat sb;
	int fd = -1;
	SX_ENSURE(m != NULL, &err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_held_read(dfd, meta, m, &err));
	size_t fl = strlen(m->name);
	SX_ENSURE(m->held == 0 &&
		      (base_len == fl || (base_len == SX_STORE_TEMP_BASE_MAX && fl > base_len)) &&
		      strncmp(m->name, part + 1, base_len) == 0,
		  &err, SX_E_INTEGRITY, "its .sxmeta names another file");
	fd = openat(dfd, part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "cannot open it");
		goto out;
	}
	uint64_t leaves = (uint64_t)sb.st_size / m->leaf, most = (m->size - 1) / m->leaf;
	m->held = (leaves < most ? leaves : most) * m->leaf;
	SX_ENSURE(m->held > 0, &err, SX_E_IO, "not one whole leaf (%lld bytes)",
		  (long long)sb.st_size);
	SX_GUARD(sx_held_hash(fd, m, &err));
	m->kept = w->now;
	SX_GUARD(sx_held_keep(dfd, fd, part, m, &err));
	(void)unlinkat(dfd, meta, 0);
	sx_log("warn", "recover",
	       "path=%s bytes=%llu size=%llu action=held reason=\"a file cut off by a crash; "
	       "its whole leaves are held for a resume\"",
	       SX_LOGQ(PATH_OF(w, m->name)), (unsigned long long)m->held,
	       (unsigned long long)m->size);
	w->st->held++;
out:
	if (fd >= 0)
		close(fd);
	if (err.cls != SX_OK) {
		char why[sizeof(err.msg) + 64];
		snprintf(why, sizeof(why), "a temporary not held: %s", err.msg);
		removed(w, dfd, part, why);
		removed(w, dfd, meta, "the .sxmeta of a temporary not held");
	}
	free(m);
}

/* A held part's meta: kept while it is sound, fresh and has its bytes. */
static void check_held(walk *w, int dfd, const char *meta)
{
	char data[300];
	sx_err err = {0};
	sx_held_meta *m = calloc(1, sizeof(*m));
	struct stat sb;
	if (m == NULL || !swap_suffix(meta, SX_HELD_META, SX_HELD_DATA, data, sizeof(data))) {
		w->parts++; /* not looked at: counted as there */
		goto out;
	}
	bool ok = sx_held_read(dfd, meta, m, &err) == 0;
	if (ok && sx_held_expired(m, w->ttl, w->now)) {
		sx_log("info", "held_expired", "path=%s bytes=%llu kept=%lld",
		       SX_LOGQ(PATH_OF(w, m->name)), (unsigned long long)m->held,
		       (long long)m->kept);
		(void)unlinkat(dfd, meta, 0);
		(void)unlinkat(dfd, data, 0);
		w->st->expired++;
		goto out;
	}
	if (w->only_expired) {
		w->parts++; /* a running server's part may be being replaced */
		goto out;
	}
	if (ok && (fstatat(dfd, data, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) ||
		   (uint64_t)sb.st_size != m->held))
		ok = false;
	if (!ok) {
		removed(w, dfd, data, "a held part that is incomplete or unreadable");
		removed(w, dfd, meta, "a held part that is incomplete or unreadable");
	} else
		w->parts++;
out:
	free(m);
}

/* The held parts' names and .sxmeta: true when name was one (dealt with). */
static bool visit_held(walk *w, int dfd, const char *name)
{
	char other[300];
	struct stat sb;
	if (has_suffix(name, SX_HELD_META)) {
		check_held(w, dfd, name);
		return true;
	}
	if (!has_suffix(name, SX_HELD_DATA) && !has_suffix(name, SX_HELD_META "-new") &&
	    !has_suffix(name, SX_STORE_TEMP_META))
		return false;
	if (w->only_expired)
		return true;
	if (has_suffix(name, SX_HELD_DATA) &&
	    swap_suffix(name, SX_HELD_DATA, SX_HELD_META, other, sizeof(other)) &&
	    fstatat(dfd, other, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return true; /* with its meta */
	if (has_suffix(name, SX_STORE_TEMP_META) &&
	    swap_suffix(name, SX_STORE_TEMP_META, SX_STORE_PART, other, sizeof(other)) &&
	    fstatat(dfd, other, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return true; /* with its temporary */
	removed(w, dfd, name, "a held part's file without its pair");
	return true;
}

static void scan(walk *w, int dfd, unsigned depth);

/* Is the temporary's base (base bytes at t) NAME (n, nl bytes), or one of
 * the companions the receiver keeps beside NAME (NAME.sxsig, NAME.partial,
 * NAME.partial.sxsig: a get killed while one was being written leaves its
 * temporary)? A base cut at SX_STORE_TEMP_BASE_MAX matches its prefix. */
static bool temp_of(const char *t, size_t base, const char *n, size_t nl)
{
	static const char *const companions[] = {"", SX_SUFFIX_SIG, SX_SUFFIX_PARTIAL,
						 SX_SUFFIX_PARTIAL SX_SUFFIX_SIG};
	if (base == SX_STORE_TEMP_BASE_MAX && nl >= base)
		return strncmp(t, n, base) == 0;
	if (base < nl || strncmp(t, n, nl) != 0)
		return false;
	for (size_t i = 0; i < SX_ARRAY_LEN(companions); i++)
		if (base - nl == strlen(companions[i]) &&
		    strncmp(t + nl, companions[i], base - nl) == 0)
			return true;
	return false;
}

/* At the top of a get's folder: is name one of the names asked for (a
 * folder), or a temporary or held part of one or of its companions
 * (base: the bytes of the name in it, sx_store_temp_name)? */
static bool top_wanted(const walk *w, const char *name, bool is_dir)
{
	size_t base = 0;
	if (!is_dir && !sx_store_temp_name(name, &base))
		return false;
	for (size_t i = 0; i < w->nnames; i++) {
		const char *n = w->names[i];
		if (is_dir ? strcmp(name, n) == 0 : temp_of(name + 1, base, n, strlen(n)))
			return true;
	}
	return false;
}

static void visit(walk *w, int dfd, const char *name, unsigned char type, unsigned depth)
{
	size_t base = 0;
	if (type == DT_UNKNOWN) {
		struct stat sb;
		if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			return;
		type = S_ISDIR(sb.st_mode) ? DT_DIR : S_ISREG(sb.st_mode) ? DT_REG : DT_UNKNOWN;
	}
	if (w->names != NULL && depth == 0 && !top_wanted(w, name, type == DT_DIR))
		return;
	if (type == DT_DIR) {
		size_t rl = strlen(w->rel), nl = strlen(name);
		if (depth + 1 > RECOVER_DEPTH_MAX) {
			w->partial = true;
			sx_log("warn", "recover",
			       "path=%s reason=\"deeper than a received path can be; not "
			       "scanned\"",
			       SX_LOGQ(PATH_OF(w, name)));
			return;
		}
		if (rl + nl + 2 > sizeof(w->rel)) {
			w->partial = true;
			return;
		}
		int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			w->partial = true;
			sx_log("warn", "recover", "path=%s reason=\"cannot open\" cause=%s",
			       SX_LOGQ(PATH_OF(w, name)), SX_LOGQ(strerror(errno)));
			return;
		}
		memcpy(w->rel + rl, name, nl);
		memcpy(w->rel + rl + nl, "/", 2);
		scan(w, sub, depth + 1); /* closes sub */
		w->rel[rl] = '\0';
		return;
	}
	if (type != DT_REG || !sx_store_temp_name(name, &base) || visit_held(w, dfd, name) ||
	    w->only_expired)
		return;
	size_t nl = strlen(name), pl = strlen(SX_STORE_PART), cl = strlen(SX_STORE_CKPT);
	char other[300];
	struct stat sb;
	if (nl > pl && strcmp(name + nl - pl, SX_STORE_PART) == 0 && nl - pl + cl < sizeof(other)) {
		/* a temporary: a stream's when its checkpoint is beside it */
		snprintf(other, sizeof(other), "%.*s" SX_STORE_CKPT, (int)(nl - pl), name);
		char meta[300];
		if (fstatat(dfd, other, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
			recover_stream(w, dfd, name, other, base);
		else if (swap_suffix(name, SX_STORE_PART, SX_STORE_TEMP_META, meta, sizeof(meta)) &&
			 fstatat(dfd, meta, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
			recover_held(w, dfd, name, meta, base);
		else {
			orphan_sxsig(w, dfd, name, base);
			removed(w, dfd, name, "a temporary left by a server that did not finish");
		}
		return;
	}
	if (nl > cl && strcmp(name + nl - cl, SX_STORE_CKPT) == 0 && nl - cl + pl < sizeof(other)) {
		/* dealt with together with its temporary, when there is one */
		snprintf(other, sizeof(other), "%.*s" SX_STORE_PART, (int)(nl - cl), name);
		if (fstatat(dfd, other, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
			return;
		removed(w, dfd, name, "a checkpoint without its temporary");
		return;
	}
	removed(w, dfd, name, "a checkpoint being written when the server stopped");
}

static void scan(walk *w, int dfd, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	if (d == NULL) {
		w->partial = true;
		close(dfd);
		return;
	}
	w->st->dirs++;
	for (;;) {
		errno = 0;
		if ((e = readdir(d)) == NULL) {
			w->partial |= errno != 0;
			break;
		}
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		visit(w, dirfd(d), e->d_name, e->d_type, depth);
	}
	closedir(d);
}

int sx_store_recover(int out_fd, sx_store_recovery *st, sx_err *err)
{
	return sx_store_recover_ttl(out_fd, 0, false, st, err);
}

static int recover(int out_fd, uint64_t ttl_s, bool only_expired, const char *const *names,
		   size_t nnames, sx_store_recovery *st, sx_err *err)
{
	walk *w = calloc(1, sizeof(*w));
	int rc = -1, fd = -1;
	memset(st, 0, sizeof(*st));
	SX_ENSURE(w != NULL, err, SX_E_OTHER, "out of memory");
	w->st = st;
	w->names = names;
	w->nnames = nnames;
	w->ttl = ttl_s;
	w->only_expired = only_expired;
	w->now = (int64_t)time(NULL);
	w->buf = malloc(RECOVER_READ);
	SX_ENSURE(w->buf != NULL, err, SX_E_OTHER, "out of memory");
	fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "cannot scan the output folder");
		goto out;
	}
	/* rewinddir: the walk starts at the first entry whatever read before */
	lseek(fd, 0, SEEK_SET);
	uint64_t epoch = sx_held_index_epoch();
	scan(w, fd, 0); /* closes fd */
	/* A whole walk of a server's OUT: whether held parts are left in it
	 * (a part made meanwhile, also by this walk, marked the index). */
	if (names == NULL)
		sx_held_index_set(out_fd, !w->partial && w->parts == 0 && st->held == 0, epoch);
	rc = 0;
out:
	if (w != NULL)
		free(w->buf);
	free(w);
	return rc;
}

int sx_store_recover_ttl(int out_fd, uint64_t ttl_s, bool only_expired, sx_store_recovery *st,
			 sx_err *err)
{
	return recover(out_fd, ttl_s, only_expired, NULL, 0, st, err);
}

int sx_store_recover_names(int out_fd, const char *const *names, size_t nnames,
			   sx_store_recovery *st, sx_err *err)
{
	return recover(out_fd, 0, false, names, nnames, st, err);
}
