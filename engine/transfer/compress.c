/* zstd per DATA record: the sender's compression, the receiver's bounded
 * decompression, and the --compress auto policy (docs/PROTOCOL.md,
 * "Compressed DATA records"). */
#include <string.h>

#include <zstd_errors.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_compress.h"
#include "engine/wire/sx_wire.h"

int sx_zmode_parse(const char *s, sx_zmode *mode, int *level)
{
	uint64_t v;
	if (strcmp(s, "off") == 0) {
		*mode = SX_ZMODE_OFF;
		*level = 0;
		return 0;
	}
	if (strcmp(s, "auto") == 0) {
		*mode = SX_ZMODE_AUTO;
		*level = SX_ZLEVEL_AUTO;
		return 0;
	}
	if (strcmp(s, "on") == 0) {
		*mode = SX_ZMODE_LEVEL;
		*level = SX_ZLEVEL_ON;
		return 0;
	}
	if (sx_parse_u64(s, &v) < 0 || v < SX_ZLEVEL_MIN || v > SX_ZLEVEL_MAX)
		return -1;
	*mode = SX_ZMODE_LEVEL;
	*level = (int)v;
	return 0;
}

int sx_zrec_compress(ZSTD_CCtx *cctx, int level, const uint8_t *src, size_t n, uint8_t *dst,
		     size_t *out_len, sx_err *err)
{
	*out_len = 0;
	if (n <= SX_ZHDR_LEN + 1 || n > UINT32_MAX)
		return 0;
	/* The frame must leave the record strictly smaller than n: a capacity
	 * of n - SX_ZHDR_LEN - 1 lets zstd stop as soon as it cannot. */
	size_t z = ZSTD_compressCCtx(cctx, dst + SX_ZHDR_LEN, n - SX_ZHDR_LEN - 1, src, n, level);
	if (ZSTD_isError(z)) {
		if (ZSTD_getErrorCode(z) == ZSTD_error_dstSize_tooSmall)
			return 0;
		return sx_fail(err, SX_E_OTHER, "zstd compression failed: %s",
			       ZSTD_getErrorName(z));
	}
	sx_wbuf w = sx_wbuf_make(dst, SX_ZHDR_LEN);
	sx_put_u32(&w, (uint32_t)n);
	*out_len = SX_ZHDR_LEN + z;
	return 1;
}

int sx_zrec_decompress(ZSTD_DCtx *dctx, const uint8_t *pt, size_t len, uint64_t limit, uint8_t *dst,
		       size_t cap, size_t *out_len, sx_err *err)
{
	sx_cur c = sx_cur_make(pt, len);
	uint32_t orig;
	const uint8_t *frame;
	*out_len = 0;
	if (sx_cur_u32(&c, &orig) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "compressed record without its length");
	size_t flen = sx_cur_left(&c);
	if (sx_cur_bytes(&c, flen, &frame) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "compressed record truncated");
	if (orig == 0)
		return sx_fail(err, SX_E_INTEGRITY, "compressed record of length 0");
	if (orig > cap)
		return sx_fail(err, SX_E_INTEGRITY,
			       "compressed record announces %u bytes, more than the maximum "
			       "record (%zu)",
			       orig, cap);
	if (orig > limit)
		return sx_fail(err, SX_E_INTEGRITY,
			       "compressed record announces %u bytes, more than announced for "
			       "the file",
			       orig);
	/* Exactly one frame: concatenated frames or trailing bytes are refused. */
	size_t fsz = ZSTD_findFrameCompressedSize(frame, flen);
	if (ZSTD_isError(fsz) || fsz != flen)
		return sx_fail(err, SX_E_INTEGRITY, "compressed record is not one zstd frame");
	/* dst holds exactly orig bytes, so the frame cannot expand beyond what
	 * was announced (it fails with dstSize_tooSmall instead). */
	size_t got = ZSTD_decompressDCtx(dctx, dst, orig, frame, flen);
	if (ZSTD_isError(got))
		return sx_fail(err, SX_E_INTEGRITY, "compressed record does not decompress: %s",
			       ZSTD_getErrorName(got));
	if (got != orig)
		return sx_fail(err, SX_E_INTEGRITY,
			       "compressed record decompresses to %zu bytes, not the %u announced",
			       got, orig);
	*out_len = got;
	return 0;
}

void sx_zauto_reset(sx_zauto *a)
{
	a->fresh = true;
	a->skipping = false;
	a->since = 0;
}

int sx_zauto_next(sx_zauto *a)
{
	if (a->fresh) {
		a->fresh = false;
		return SX_ZAUTO_SAMPLE;
	}
	if (!a->skipping)
		return SX_ZAUTO_COMPRESS;
	if (++a->since >= SX_ZAUTO_RECHECK) {
		a->since = 0;
		return SX_ZAUTO_SAMPLE;
	}
	return SX_ZAUTO_SKIP;
}

void sx_zauto_result(sx_zauto *a, size_t n, size_t z)
{
	/* Worth it when at least a tenth is saved. */
	a->skipping = z > n - n / SX_ZAUTO_GAIN_DIV;
	a->since = 0;
}
