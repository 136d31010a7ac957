/* The plaintext of a compressed DATA record: original length u32 || one
 * zstd frame (docs/PROTOCOL.md "Compressed DATA records"). The first input
 * byte sets how much the file may still receive (the limit), the rest is the
 * record's plaintext. Properties: what decompresses has exactly the
 * announced length, within the buffer and the limit; it compresses again and
 * decompresses back to the same bytes; and the rest of the input, compressed
 * as a record, decompresses to itself. */
#include <stdlib.h>
#include <string.h>

#include "engine/transfer/sx_compress.h"
#include "tests/fuzz/fuzzutil.h"

#define FZ_CAP (128u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ZSTD_DCtx *dctx;
static ZSTD_CCtx *cctx;

/* src[0..n) compressed as a record and opened again gives src. */
static void compress_back(const uint8_t *src, size_t n, int level)
{
	static uint8_t z[FZ_CAP], back[FZ_CAP];
	size_t zlen = 0, got = 0;
	sx_err err = {0};
	if (n == 0 || n > FZ_CAP)
		return;
	int rc = sx_zrec_compress(cctx, level, src, n, z, &zlen, &err);
	FZ_CHECK(rc >= 0);
	if (rc == 0)
		return; /* incompressible: sent as it is */
	FZ_CHECK(zlen < n);
	FZ_CHECK(sx_zrec_decompress(dctx, z, zlen, n, back, n, &got, &err) == 0);
	FZ_CHECK(got == n && memcmp(back, src, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[FZ_CAP];
	if (size < 1)
		return 0;
	if (dctx == NULL &&
	    ((dctx = ZSTD_createDCtx()) == NULL || (cctx = ZSTD_createCCtx()) == NULL))
		abort();
	/* 0: no limit; else a limit near the announced sizes of small frames. */
	uint64_t limit = data[0] == 0 ? UINT64_MAX : (uint64_t)data[0] * 512u;
	const uint8_t *pt = data + 1;
	size_t len = size - 1, got = 0;
	sx_err err = {0};
	if (sx_zrec_decompress(dctx, pt, len, limit, out, sizeof(out), &got, &err) == 0) {
		FZ_CHECK(len >= SX_ZHDR_LEN);
		uint32_t orig =
		    (uint32_t)pt[0] << 24 | (uint32_t)pt[1] << 16 | (uint32_t)pt[2] << 8 | pt[3];
		FZ_CHECK(got == orig && got >= 1 && got <= sizeof(out) && got <= limit);
		compress_back(out, got, SX_ZLEVEL_AUTO);
	} else {
		FZ_CHECK(err.cls == SX_E_INTEGRITY && got == 0);
	}
	compress_back(pt, len, 1 + data[0] % 3);
	return 0;
}
