#include "common/sx_util.h"

#include "common/sx_esc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <time.h>
#include <unistd.h>

int sx_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, cap, ".");
	else if (slash == path)
		snprintf(dir, cap, "/");
	else
		snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

/* fsyncs a folder so that a rename or create inside it is durable. */
static int fsync_dir(const char *dir, sx_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot open folder", dir);
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	if (rc < 0)
		return sx_fail_errno(err, SX_E_IO, e, "%s: fsync of folder failed", dir);
	return 0;
}

int sx_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, sx_err *err)
{
	char tmp[4096], dir[4096];
	int fd = -1, rc = -1;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return sx_fail(err, SX_E_IO, "%s: path too long", path);
	dir_of(path, dir, sizeof(dir));
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot create temporary file", path);
	if (fchmod(fd, mode) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: chmod", tmp);
		goto out;
	}
	if (sx_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: write failed", path);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		sx_fail_errno(err, SX_E_IO, errno, "%s: write failed", path);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: rename failed", path);
		goto out;
	}
	tmp[0] = '\0';
	SX_GUARD(fsync_dir(dir, err));
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0] != '\0')
		unlink(tmp);
	return rc;
}

int sx_file_read(const char *path, size_t cap, uint8_t **out, size_t *len, sx_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = NULL;
	size_t used = 0, size = 0;
	int rc = -1;
	*out = NULL;
	*len = 0;
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", path);
	for (;;) {
		if (used + 1 >= size) {
			size_t nsize = size ? size * 2 : 4096;
			if (nsize > cap + 1)
				nsize = cap + 1;
			if (used + 1 >= nsize) {
				sx_fail(err, SX_E_IO, "%s: larger than %zu bytes", path, cap);
				goto out;
			}
			uint8_t *nb = realloc(buf, nsize);
			if (nb == NULL) {
				sx_fail(err, SX_E_OTHER, "%s: out of memory", path);
				goto out;
			}
			buf = nb;
			size = nsize;
		}
		ssize_t n = read(fd, buf + used, size - used - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sx_fail_errno(err, SX_E_IO, errno, "%s: read failed", path);
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		goto out;
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int sx_mkdirs(const char *dir, mode_t mode, sx_err *err)
{
	char p[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(p))
		return sx_fail(err, SX_E_IO, "%s: invalid folder name", dir);
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot create folder", p);
		p[i] = c;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return sx_fail(err, SX_E_IO, "%s: not a folder", dir);
	return 0;
}

void sx_hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int lower_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool sx_unhex(const char *s, size_t len, uint8_t *out)
{
	if (len % 2 != 0)
		return false;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = lower_hex(s[2 * i]), lo = lower_hex(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi * 16 + lo);
	}
	return true;
}

int sx_parse_u64(const char *s, uint64_t *out)
{
	char *end = NULL;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int sx_parse_size(const char *s, uint64_t *out)
{
	char *end = NULL;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B') /* accept KiB, MB, ... as binary */
		end++;
	if (*end == 'B')
		end++;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int log_rank(const char *level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (strcmp(level, names[i]) == 0)
			return i;
	return 3;
}

static int log_min;		 /* written once, before any thread starts */
static sx_log_format log_format; /* the same */

void sx_log_set_min(const char *level)
{
	log_min = log_rank(level);
}

int sx_log_format_parse(const char *name, sx_log_format *out)
{
	if (strcmp(name, "logfmt") == 0)
		*out = SX_LOG_LOGFMT;
	else if (strcmp(name, "json") == 0)
		*out = SX_LOG_JSON;
	else
		return -1;
	return 0;
}

void sx_log_set_format(sx_log_format f)
{
	log_format = f;
}

static void log_write_json(const char *line)
{
	char js[SX_LOG_JSON_MAX];
	(void)sx_log_json(line, js, sizeof(js));
	fprintf(stderr, "%s\n", js);
}

void sx_log(const char *level, const char *event, const char *fmt, ...)
{
	char line[SX_LOG_LINE_MAX], out[SX_LOG_LINE_MAX];
	if (log_min > 0 && log_rank(level) < log_min)
		return;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level, event);
	if (n > 0 && (size_t)n < sizeof(line) - 2 && fmt != NULL && fmt[0] != '\0') {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (log_format == SX_LOG_JSON) {
		log_write_json(line);
		return;
	}
	/* Values arrive escaped (SX_LOGQ); this pass only makes sure that
	 * nothing else, nor a line cut short, can end the line early or
	 * reach a terminal raw: control bytes and bytes that are not UTF-8
	 * are escaped, quotes and backslashes left as they are. */
	(void)sx_esc(out, sizeof(out), line, SX_ESC_CSTR, 0);
	fprintf(stderr, "%s\n", out);
}

uint64_t sx_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t sx_direct_on(int fd)
{
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) < 0 ||
	    !(sx.stx_mask & STATX_DIOALIGN) || sx.stx_dio_offset_align == 0 ||
	    sx.stx_dio_offset_align > SX_DIO_ALIGN || sx.stx_dio_mem_align == 0 ||
	    sx.stx_dio_mem_align > SX_DIO_ALIGN)
		return 0;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
		return 0;
	/* Whole pages, even where the file system would take less (ext4
	 * takes 512): a direct write then never shares a page with a
	 * buffered one (a file's tail) still in flight. */
	return SX_DIO_ALIGN;
#else
	(void)fd;
	return 0;
#endif
}

int sx_direct_off(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return -1;
	return 0;
}

/* cachestat(2): one number on every architecture (the unified table). */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

int64_t sx_cached_bytes(int fd, uint64_t len)
{
	struct {
		uint64_t off, len;
	} range = {0, len};
	struct {
		uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
	} cs = {0};
	long page = sysconf(_SC_PAGESIZE);
	if (len == 0 || syscall(__NR_cachestat, fd, &range, &cs, 0) < 0 || page <= 0)
		return -1;
	/* overlayfs keeps no page cache of its own (the pages are the real
	 * file's): cachestat reports 0 there for a file wholly cached. */
	struct statfs fs;
	if (fstatfs(fd, &fs) < 0 || fs.f_type == OVERLAYFS_SUPER_MAGIC)
		return -1;
	return (int64_t)(cs.nr_cache * (uint64_t)page);
}

int sx_grow(void *arr, size_t *cap, size_t need, size_t elem, size_t max, const char *what,
	    sx_err *err)
{
	void *p, *np;
	size_t ncap, bytes;
	if (need <= *cap)
		return 0;
	if (need > max)
		return sx_fail(err, SX_E_OTHER, "more than %zu %s", max, what);
	ncap = *cap ? *cap : 16;
	while (ncap < need)
		ncap = ncap > max / 2 ? max : ncap * 2;
	if (ncap > max)
		ncap = max;
	if (!sx_mul_ok(ncap, elem, &bytes))
		return sx_fail(err, SX_E_OTHER, "more than %zu %s", max, what);
	/* Through memcpy: arr is any T ** (no aliasing through void **). */
	memcpy(&p, arr, sizeof(p));
	np = realloc(p, bytes);
	if (np == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory (%zu %s)", ncap, what);
	memset((char *)np + *cap * elem, 0, (ncap - *cap) * elem);
	memcpy(arr, &np, sizeof(np));
	*cap = ncap;
	return 0;
}

int sx_open_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

void sx_path_last(const char *p, size_t *off, size_t *len)
{
	size_t n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	size_t s = n;
	while (s > 0 && p[s - 1] != '/')
		s--;
	*off = s;
	*len = n - s;
}
