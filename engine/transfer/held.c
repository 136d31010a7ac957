/* engine/transfer/held: held parts of broken transfers (sx_held.h). */
#include "engine/transfer/sx_held.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/sx_util.h"

#define HELD_READ  (1u << 20)
#define HELD_INDEX 16 /* folders whose walk is remembered (servers in one process) */

int sx_held_name(const char *name, const char *suffix, char *out, size_t cap, sx_err *err)
{
	uint8_t md[32];
	unsigned mdlen = 0;
	char hex[65];
	if (EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) != 1)
		return sx_fail(err, SX_E_OTHER, "SHA-256 failed");
	sx_hex(md, 6, hex);
	int n = snprintf(out, cap, ".%.200s.%s%s", name, hex, suffix);
	if (n < 0 || (size_t)n >= cap || n > 255)
		return sx_fail(err, SX_E_IO, "'%s': the held part's name is too long", name);
	return 0;
}

static bool put(char *buf, size_t cap, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char *buf, size_t cap, size_t *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *at, cap - *at, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *at)
		return false;
	*at += (size_t)n;
	return true;
}

int sx_held_encode(const sx_held_meta *m, char *buf, size_t cap, size_t *len, sx_err *err)
{
	char hex[2 * 255 + 1], h64[65];
	size_t at = 0;
	bool ok = strlen(m->name) <= 255;
	if (ok)
		sx_hex((const uint8_t *)m->name, strlen(m->name), hex);
	ok = ok &&
	     put(buf, cap, &at, "sxfer-held 1\nname %s\nfingerprint %s\n", hex, m->fingerprint);
	ok = ok && put(buf, cap, &at, "size %llu\nleaf %u\nheld %llu\n",
		       (unsigned long long)m->size, m->leaf, (unsigned long long)m->held);
	sx_hex(m->root, SX_HASH_LEN, h64);
	ok = ok && put(buf, cap, &at, "root %s\n", h64);
	for (unsigned i = 0; ok && i < m->depth; i++) {
		sx_hex(m->range[i], SX_HASH_LEN, h64);
		ok = put(buf, cap, &at, "range %s\n", h64);
	}
	ok = ok && put(buf, cap, &at, "kept %lld\nmode %o\nmtime %lld %u\nsigned %d\nend\n",
		       (long long)m->kept, m->mode, (long long)m->mtime_sec, m->mtime_nsec,
		       m->sign ? 1 : 0);
	if (!ok)
		return sx_fail(err, SX_E_OTHER, "a held part's meta does not fit");
	*len = at;
	return 0;
}

/* ---- the strict parser ---------------------------------------------------- */

typedef struct lines {
	const char *p;
	size_t len, at;
	char v[2 * 255 + 2]; /* the value of the last line taken */
} lines;

/* Takes the next line, which must be "key value" (or just "key" when
 * value is not wanted); its value goes to l->v. */
static bool take(lines *l, const char *key, bool value)
{
	const char *s = l->p + l->at;
	size_t left = l->len - l->at, kl = strlen(key);
	const char *nl = memchr(s, '\n', left);
	if (nl == NULL)
		return false;
	size_t ll = (size_t)(nl - s);
	if (ll < kl || memcmp(s, key, kl) != 0)
		return false;
	if (!value) {
		if (ll != kl)
			return false;
	} else {
		if (ll < kl + 2 || s[kl] != ' ' || ll - kl - 1 >= sizeof(l->v))
			return false;
		memcpy(l->v, s + kl + 1, ll - kl - 1);
		l->v[ll - kl - 1] = '\0';
	}
	l->at += ll + 1;
	return true;
}

static bool peek(const lines *l, const char *key)
{
	size_t kl = strlen(key);
	return l->len - l->at > kl && memcmp(l->p + l->at, key, kl) == 0 && l->p[l->at + kl] == ' ';
}

/* Decimal (base 10) or octal (base 8), no sign, no leading zero. */
static bool num(const char *s, unsigned base, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s >= (char)('0' + base))
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
	return strlen(s) == 2 * n && sx_unhex(s, 2 * n, out);
}

static bool parse_name(lines *l, sx_held_meta *m)
{
	if (!take(l, "name", true))
		return false;
	size_t n = strlen(l->v);
	if (n == 0 || n % 2 != 0 || n / 2 > 255 || !unhex(l->v, (uint8_t *)m->name, n / 2))
		return false;
	m->name[n / 2] = '\0';
	/* a single safe component */
	return strlen(m->name) == n / 2 && strchr(m->name, '/') == NULL &&
	       strcmp(m->name, ".") != 0 && strcmp(m->name, "..") != 0;
}

static bool parse_sizes(lines *l, sx_held_meta *m)
{
	uint64_t v;
	uint8_t fp[32];
	if (!take(l, "fingerprint", true) || !unhex(l->v, fp, sizeof(fp)))
		return false;
	memcpy(m->fingerprint, l->v, 65);
	if (!take(l, "size", true) || !num(l->v, 10, UINT64_MAX - 1, &m->size))
		return false;
	if (!take(l, "leaf", true) || !num(l->v, 10, UINT32_MAX, &v) || v == 0)
		return false;
	m->leaf = (uint32_t)v;
	if (!take(l, "held", true) || !num(l->v, 10, UINT64_MAX, &m->held))
		return false;
	return m->held % m->leaf == 0 && m->held < m->size;
}

static bool parse_tree(lines *l, sx_held_meta *m)
{
	static const uint8_t zero[SX_HASH_LEN];
	if (!take(l, "root", true) || !unhex(l->v, m->root, SX_HASH_LEN))
		return false;
	m->depth = 0;
	while (peek(l, "range")) {
		if (m->depth >= 64 || !take(l, "range", true) ||
		    !unhex(l->v, m->range[m->depth], SX_HASH_LEN))
			return false;
		m->depth++;
	}
	uint64_t leaves = m->held / m->leaf;
	if (m->depth != (unsigned)__builtin_popcountll(leaves))
		return false;
	/* nothing held: no root; one perfect subtree: the root is its own */
	if (leaves == 0)
		return memcmp(m->root, zero, SX_HASH_LEN) == 0;
	return m->depth != 1 || memcmp(m->root, m->range[0], SX_HASH_LEN) == 0;
}

static bool parse_tail(lines *l, sx_held_meta *m)
{
	uint64_t v, ns;
	if (!take(l, "kept", true) || !num(l->v, 10, INT64_MAX, &v))
		return false;
	m->kept = (int64_t)v;
	if (!take(l, "mode", true) || !num(l->v, 8, 07777, &v))
		return false;
	m->mode = (uint32_t)v;
	if (!take(l, "mtime", true))
		return false;
	char *sp = strchr(l->v, ' ');
	if (sp == NULL)
		return false;
	*sp = '\0';
	bool neg = l->v[0] == '-';
	if (!num(l->v + neg, 10, INT64_MAX, &v) || (neg && v == 0) ||
	    !num(sp + 1, 10, 999999999, &ns))
		return false;
	m->mtime_sec = neg ? -(int64_t)v : (int64_t)v;
	m->mtime_nsec = (uint32_t)ns;
	if (!take(l, "signed", true) || (strcmp(l->v, "0") != 0 && strcmp(l->v, "1") != 0))
		return false;
	m->sign = l->v[0] == '1';
	return take(l, "end", false) && l->at == l->len;
}

int sx_held_parse(const char *text, size_t len, sx_held_meta *m, sx_err *err)
{
	lines *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memset(m, 0, sizeof(*m));
	l->p = text;
	l->len = len;
	bool ok = len <= SX_HELD_META_MAX && memchr(text, '\0', len) == NULL &&
		  take(l, "sxfer-held", true) && strcmp(l->v, "1") == 0 && parse_name(l, m) &&
		  parse_sizes(l, m) && parse_tree(l, m) && parse_tail(l, m);
	size_t line = 1;
	for (size_t i = 0; i < l->at && i < len; i++)
		line += text[i] == '\n';
	free(l);
	if (!ok)
		return sx_fail(err, SX_E_INTEGRITY, "malformed held part meta (line %zu)", line);
	return 0;
}

/* ---- files ------------------------------------------------------------------ */

int sx_held_read(int dfd, const char *name, sx_held_meta *m, sx_err *err)
{
	char *buf = malloc(SX_HELD_META_MAX + 1);
	struct stat sb;
	int rc = -1, fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	if (fd < 0 || fstat(fd, &sb) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot open", name);
		goto out;
	}
	SX_ENSURE(S_ISREG(sb.st_mode) && sb.st_size > 0 && sb.st_size <= SX_HELD_META_MAX, err,
		  SX_E_INTEGRITY, "'%s': not a held part's meta", name);
	ssize_t n = pread(fd, buf, (size_t)sb.st_size, 0);
	SX_ENSURE(n == sb.st_size, err, SX_E_IO, "'%s': cannot read", name);
	rc = sx_held_parse(buf, (size_t)n, m, err);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int sx_held_write(int dfd, const char *name, const sx_held_meta *m, bool sync, sx_err *err)
{
	char *buf = malloc(SX_HELD_META_MAX);
	size_t len = 0;
	int rc = -1, fd = -1;
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_held_encode(m, buf, SX_HELD_META_MAX, &len, err));
	/* A temporary's .sxmeta is no held part; anything else may be one. */
	size_t nl = strlen(name), tl = strlen(SX_STORE_TEMP_META);
	if (nl < tl || strcmp(name + nl - tl, SX_STORE_TEMP_META) != 0)
		sx_held_index_mark();
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || sx_write_all(fd, buf, len) < 0 || (sync && fsync(fd) < 0)) {
		sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot write", name);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int sx_held_keep(int dfd, int fd, const char *tmp, const sx_held_meta *m, sx_err *err)
{
	char data[SX_HELD_NAME_MAX], meta[SX_HELD_NAME_MAX], fresh[SX_HELD_NAME_MAX + 8];
	SX_GUARD(sx_held_name(m->name, SX_HELD_DATA, data, sizeof(data), err));
	SX_GUARD(sx_held_name(m->name, SX_HELD_META, meta, sizeof(meta), err));
	snprintf(fresh, sizeof(fresh), "%s-new", meta);
	/* Before the part takes its name: whoever looks after this finds it. */
	sx_held_index_mark();
	if (ftruncate(fd, (off_t)m->held) < 0 || fsync(fd) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%s': cannot cut to %llu bytes", m->name,
				     (unsigned long long)m->held);
	if (sx_held_write(dfd, fresh, m, true, err) < 0) {
		unlinkat(dfd, fresh, 0);
		return -1;
	}
	/* An older part goes first: a crash between the renames leaves bytes
	 * without a meta (removed at the next start), never a meta that
	 * describes other bytes. */
	(void)unlinkat(dfd, meta, 0);
	if (renameat(dfd, tmp, dfd, data) < 0 || renameat(dfd, fresh, dfd, meta) < 0) {
		int e = errno;
		unlinkat(dfd, fresh, 0);
		return sx_fail_errno(err, SX_E_IO, e, "'%s': cannot keep the held part", m->name);
	}
	if (fsync(dfd) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%s': flush of its folder failed",
				     m->name);
	return 0;
out:
	return -1;
}

int sx_held_hash(int fd, sx_held_meta *m, sx_err *err)
{
	sx_filehash h;
	uint64_t leaves, bytes, off = 0;
	uint8_t *buf = malloc(HELD_READ);
	int rc = -1;
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	if (sx_filehash_init(&h, m->leaf, err) < 0)
		goto out;
	while (off < m->held) {
		size_t want = m->held - off < HELD_READ ? (size_t)(m->held - off) : HELD_READ;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sx_fail_errno(err, SX_E_IO, n < 0 ? errno : EIO, "'%s': read failed",
				      m->name);
			goto done;
		}
		if (sx_filehash_update(&h, buf, (size_t)n, err) < 0)
			goto done;
		off += (uint64_t)n;
	}
	if (sx_filehash_checkpoint(&h, m->root, &leaves, &bytes, err) < 0)
		goto done;
	m->depth = h.depth;
	memcpy(m->range, h.range, sizeof(m->range[0]) * h.depth);
	rc = 0;
done:
	sx_filehash_free(&h);
out:
	free(buf);
	return rc;
}

bool sx_held_remove(int dfd, const char *name)
{
	char data[SX_HELD_NAME_MAX], meta[SX_HELD_NAME_MAX];
	sx_err err = {0};
	if (sx_held_name(name, SX_HELD_DATA, data, sizeof(data), &err) < 0 ||
	    sx_held_name(name, SX_HELD_META, meta, sizeof(meta), &err) < 0)
		return false;
	bool a = unlinkat(dfd, meta, 0) == 0;
	bool b = unlinkat(dfd, data, 0) == 0;
	return a || b;
}

bool sx_held_expired(const sx_held_meta *m, uint64_t ttl_s, int64_t now)
{
	if (ttl_s == 0)
		ttl_s = SX_HELD_TTL_DEFAULT;
	/* kept in the future (a clock set back): counted from now on */
	return now > m->kept && (uint64_t)(now - m->kept) >= ttl_s;
}

/* ---- the index ------------------------------------------------------------- */

static pthread_mutex_t index_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	dev_t dev;
	ino_t ino;
	bool none;
	uint64_t epoch; /* index_epoch when the walk that found none began */
} index_v[HELD_INDEX];
static unsigned index_n;
static _Atomic uint64_t index_epoch;

uint64_t sx_held_index_epoch(void)
{
	return atomic_load(&index_epoch);
}

void sx_held_index_set(int out_fd, bool none, uint64_t epoch)
{
	struct stat sb;
	if (fstat(out_fd, &sb) < 0)
		return;
	pthread_mutex_lock(&index_mu);
	unsigned i = 0;
	while (i < index_n && (index_v[i].dev != sb.st_dev || index_v[i].ino != sb.st_ino))
		i++;
	if (i == index_n && index_n < HELD_INDEX)
		index_n++;
	if (i < index_n) {
		index_v[i].dev = sb.st_dev;
		index_v[i].ino = sb.st_ino;
		index_v[i].none = none;
		index_v[i].epoch = epoch;
	}
	pthread_mutex_unlock(&index_mu);
}

bool sx_held_index_may(dev_t dev, ino_t ino)
{
	bool none = false;
	uint64_t now = atomic_load(&index_epoch);
	pthread_mutex_lock(&index_mu);
	for (unsigned i = 0; i < index_n; i++)
		if (index_v[i].dev == dev && index_v[i].ino == ino)
			none = index_v[i].none && index_v[i].epoch == now;
	pthread_mutex_unlock(&index_mu);
	return !none;
}

void sx_held_index_mark(void)
{
	atomic_fetch_add(&index_epoch, 1);
}
