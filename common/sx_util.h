/* Small helpers shared by every layer: checked arithmetic, durable file
 * writes, bounded file reads, structured log lines. */
#ifndef SX_UTIL_H
#define SX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/sx_err.h"
#include "common/sx_esc.h"

#define SX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Overflow-checked arithmetic: false when the result does not fit. */
static inline bool sx_add_ok(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}
static inline bool sx_mul_ok(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

/* A growable array with a cap: makes room in *arr (a pointer to the array
 * pointer; its room is *cap elements of elem bytes) for at least need
 * elements, doubling from 16 and never beyond max; the new room is zeroed.
 * Past max, or out of memory: SX_E_OTHER naming what. Every array that
 * grows with input uses this, so none grows without a named bound. */
int sx_grow(void *arr, size_t *cap, size_t need, size_t elem, size_t max, const char *what,
	    sx_err *err) SX_MUST_CHECK;

/* Writes data to path durably and atomically: a temporary in the same
 * folder, fsync, rename over path, fsync of the folder. Killing the process
 * at any point leaves either the old or the new content under path. */
/* Writes all len bytes (again after EINTR and short writes); -1 with errno. */
int sx_write_all(int fd, const void *data, size_t len) SX_MUST_CHECK;
int sx_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 sx_err *err) SX_MUST_CHECK;

/* Reads a whole file of at most cap bytes into a malloc'd buffer (NUL
 * terminated for convenience; *len excludes the NUL). */
int sx_file_read(const char *path, size_t cap, uint8_t **out, size_t *len,
		 sx_err *err) SX_MUST_CHECK;

/* Creates dir (and parents) with mode; an existing folder is fine. */
int sx_mkdirs(const char *dir, mode_t mode, sx_err *err) SX_MUST_CHECK;

/* Parses a size such as 4096, 64K, 1M, 2G (binary multiples). */
int sx_parse_size(const char *s, uint64_t *out) SX_MUST_CHECK;

/* n bytes as 2n lower-case hex digits and a NUL into out (2n + 1 bytes). */
void sx_hex(const uint8_t *b, size_t n, char *out);
/* The inverse: len lower-case hex digits (len even) into len / 2 bytes of
 * out; false for anything else (upper case, an odd count, a non-digit). */
bool sx_unhex(const char *s, size_t len, uint8_t *out);

/* Parses an unsigned decimal integer with full checking. */
int sx_parse_u64(const char *s, uint64_t *out) SX_MUST_CHECK;

/* One structured log line on stderr: "ts=... level=... event=<event> k=v ...".
 * fmt carries the key=value pairs; every string value is written as
 * key=%s with SX_LOGQ(value) (common/sx_esc.h), which quotes and escapes
 * it, so that no file name or peer text can add a field or a line. The
 * line is cut at SX_LOG_LINE_MAX bytes. */
#define SX_LOG_LINE_MAX 4096
void sx_log(const char *level, const char *event, const char *fmt, ...) SX_PRINTF(3, 4);
/* Lines below level ("debug", "info", "warn", "error") are not written
 * (default: all). Called once, before any thread starts. */
void sx_log_set_min(const char *level);

/* How a line is written (sxfer --log-format): logfmt (the default), or
 * json: one object per line with the same keys in the same order, every
 * value a JSON string except bare numbers (JSON numbers), valid UTF-8 for
 * any bytes (common/sx_esc.h, SX_ESC_JSON). Called once, before any thread
 * starts. sx_log_format_parse: 0, or -1 for a name not "logfmt" or "json". */
typedef enum sx_log_format { SX_LOG_LOGFMT = 0, SX_LOG_JSON } sx_log_format;
int sx_log_format_parse(const char *name, sx_log_format *out) SX_MUST_CHECK;
void sx_log_set_format(sx_log_format f);
/* The JSON object of one logfmt line as sx_log builds it, in out (cap
 * bytes, NUL terminated); returns its length. A pair that does not fit is
 * left out with the ones after it, and "log_cut":true ends the object.
 * SX_LOG_JSON_MAX always holds a line of SX_LOG_LINE_MAX. */
#define SX_LOG_JSON_MAX (10 * SX_LOG_LINE_MAX)
size_t sx_log_json(const char *line, char *out, size_t cap);

/* Monotonic clock in nanoseconds. */
uint64_t sx_now_ns(void);

/* Direct I/O (O_DIRECT): the alignment every buffer, offset and length
 * must keep, and that receive and send buffers are laid out for. */
#define SX_DIO_ALIGN 4096u

/* Turns O_DIRECT on for fd when its file system supports direct I/O with
 * memory and offset alignments of at most SX_DIO_ALIGN (statx
 * STATX_DIOALIGN; tmpfs, for one, does not); returns the alignment callers
 * keep (SX_DIO_ALIGN), or 0 when fd stays as it was. */
uint32_t sx_direct_on(int fd);
/* Back to the page cache: 0, or -1 with errno. */
int sx_direct_off(int fd);
/* Bytes of fd's [0, len) in the page cache (cachestat, Linux 6.5), or -1
 * when the kernel cannot tell (an older kernel, or overlayfs, whose files
 * have their pages in the file underneath). */
int64_t sx_cached_bytes(int fd, uint64_t len);

/* The last component of path p, trailing '/' ignored ("a/b/" gives "b"):
 * it starts at p + *off and is *len bytes long (0 for "/" or ""). */
void sx_path_last(const char *p, size_t *off, size_t *len);

/* openat2(dirfd, path) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS and O_CLOEXEC: no '..', absolute path or symlink
 * (any component, the last included) leads out of dirfd. -1 with errno. */
int sx_open_beneath(int dirfd, const char *path, int flags);

#endif
