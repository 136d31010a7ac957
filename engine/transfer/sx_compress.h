/* engine/compress: zstd per DATA record (docs/PROTOCOL.md, "Compressed DATA
 * records"). Pure: buffers in, buffers out; the contexts are the caller's,
 * made once per connection. */
#ifndef SX_COMPRESS_H
#define SX_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "common/sx_err.h"

/* A compressed DATA record's plaintext: original length u32 (big-endian) ||
 * one zstd frame. */
#define SX_ZHDR_LEN 4

#define SX_ZLEVEL_ON   3 /* --compress on */
#define SX_ZLEVEL_AUTO 1 /* --compress auto: the sample and what follows */
#define SX_ZLEVEL_MIN  1
#define SX_ZLEVEL_MAX  19

/* --compress auto: the first SX_ZAUTO_SAMPLE_LEN bytes of a file's first record
 * are compressed at level 1 as a sample; when they do not shrink by at least
 * 1/SX_ZAUTO_GAIN_DIV (10 %), the file goes on uncompressed, and the sample is
 * taken again every SX_ZAUTO_RECHECK records (files that change nature). A
 * compressed record that does not save 10 % stops the compression the same
 * way. */
#define SX_ZAUTO_SAMPLE_LEN (64u * 1024)
#define SX_ZAUTO_GAIN_DIV   10
#define SX_ZAUTO_RECHECK    64

typedef enum sx_zmode {
	SX_ZMODE_OFF = 0,
	SX_ZMODE_LEVEL, /* every DATA record at a fixed level (on, 1..19) */
	SX_ZMODE_AUTO,
} sx_zmode;

/* Parses auto|on|off|LEVEL (1..19) into a mode and a level. */
int sx_zmode_parse(const char *s, sx_zmode *mode, int *level) SX_MUST_CHECK;

/* Compresses src[0..n) as the plaintext of a compressed DATA record into dst
 * (capacity at least n). Sets *out_len and returns 1 when the record (length
 * prefix included) is smaller than n; returns 0 when it is not (incompressible:
 * send src as it is); -1 when zstd fails. */
int sx_zrec_compress(ZSTD_CCtx *cctx, int level, const uint8_t *src, size_t n, uint8_t *dst,
		     size_t *out_len, sx_err *err) SX_MUST_CHECK;

/* Opens the plaintext of a compressed DATA record into dst, whose capacity is
 * cap bytes. The announced original length must be at least 1, at most cap
 * and at most limit (what the file may still receive), and the frame must be
 * exactly one zstd frame that expands to exactly that length; anything else is
 * SX_E_INTEGRITY. Nothing is allocated. */
int sx_zrec_decompress(ZSTD_DCtx *dctx, const uint8_t *pt, size_t len, uint64_t limit, uint8_t *dst,
		       size_t cap, size_t *out_len, sx_err *err) SX_MUST_CHECK;

/* The per-file state of --compress auto. */
typedef struct sx_zauto {
	bool fresh;	/* the file's first record is next */
	bool skipping;	/* the file goes uncompressed for now */
	uint32_t since; /* records sent uncompressed since the last sample */
} sx_zauto;

enum { SX_ZAUTO_SKIP = 0, SX_ZAUTO_SAMPLE, SX_ZAUTO_COMPRESS };

/* A new file: its first record is sampled. */
void sx_zauto_reset(sx_zauto *a);
/* What to do with the file's next record. */
int sx_zauto_next(sx_zauto *a);
/* The outcome of a sample or a compressed record: n bytes became z bytes
 * (z >= n when they did not shrink). */
void sx_zauto_result(sx_zauto *a, size_t n, size_t z);

#endif
