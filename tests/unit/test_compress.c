/* engine/compress: the compressed DATA record's plaintext both ways, the
 * bounds the receiver applies, and the --compress auto policy. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "engine/transfer/sx_compress.h"

#define N 100000

static uint8_t *text(size_t n)
{
	uint8_t *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)("ts=2026 level=info event=chunk bytes=1048576\n"[i % 45]);
	return b;
}

static uint8_t *noise(size_t n)
{
	uint8_t *b = malloc(n);
	uint64_t x = 0x9e3779b97f4a7c15u;
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	return b;
}

static void test_parse(void **state)
{
	(void)state;
	sx_zmode m;
	int l;
	assert_int_equal(sx_zmode_parse("off", &m, &l), 0);
	assert_int_equal(m, SX_ZMODE_OFF);
	assert_int_equal(sx_zmode_parse("on", &m, &l), 0);
	assert_int_equal(m, SX_ZMODE_LEVEL);
	assert_int_equal(l, SX_ZLEVEL_ON);
	assert_int_equal(sx_zmode_parse("auto", &m, &l), 0);
	assert_int_equal(m, SX_ZMODE_AUTO);
	assert_int_equal(sx_zmode_parse("19", &m, &l), 0);
	assert_int_equal(l, 19);
	assert_int_equal(sx_zmode_parse("1", &m, &l), 0);
	assert_int_equal(sx_zmode_parse("0", &m, &l), -1);
	assert_int_equal(sx_zmode_parse("20", &m, &l), -1);
	assert_int_equal(sx_zmode_parse("-3", &m, &l), -1);
	assert_int_equal(sx_zmode_parse("3x", &m, &l), -1);
	assert_int_equal(sx_zmode_parse("", &m, &l), -1);
}

static void test_round_trip(void **state)
{
	(void)state;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	uint8_t *src = text(N), *z = malloc(N), *out = malloc(N);
	size_t zlen = 0, olen = 0;
	sx_err err = {0};
	assert_int_equal(sx_zrec_compress(cc, 3, src, N, z, &zlen, &err), 1);
	assert_true(zlen < N / 10);
	/* The original length, big-endian, then the frame. */
	assert_int_equal(z[0], 0);
	assert_int_equal(z[1], (N >> 16) & 0xff);
	assert_int_equal(z[2], (N >> 8) & 0xff);
	assert_int_equal(z[3], N & 0xff);
	assert_int_equal(sx_zrec_decompress(dc, z, zlen, N, out, N, &olen, &err), 0);
	assert_int_equal(olen, N);
	assert_memory_equal(out, src, N);
	/* The bounds: the file's remaining bytes and the buffer. */
	assert_int_equal(sx_zrec_decompress(dc, z, zlen, N - 1, out, N, &olen, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	sx_err_clear(&err);
	assert_int_equal(sx_zrec_decompress(dc, z, zlen, N, out, N - 1, &olen, &err), -1);
	sx_err_clear(&err);
	/* A truncated frame, and one byte of trailing garbage. */
	assert_int_equal(sx_zrec_decompress(dc, z, zlen - 1, N, out, N, &olen, &err), -1);
	sx_err_clear(&err);
	z = realloc(z, zlen + 1);
	z[zlen] = 0;
	assert_int_equal(sx_zrec_decompress(dc, z, zlen + 1, N, out, N, &olen, &err), -1);
	sx_err_clear(&err);
	assert_int_equal(sx_zrec_decompress(dc, z, 3, N, out, N, &olen, &err), -1);
	sx_err_clear(&err);
	free(src);
	free(z);
	free(out);
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
}

static void test_incompressible(void **state)
{
	(void)state;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint8_t *src = noise(N), *z = malloc(N);
	size_t zlen = 0;
	sx_err err = {0};
	assert_int_equal(sx_zrec_compress(cc, 1, src, N, z, &zlen, &err), 0);
	assert_int_equal(sx_zrec_compress(cc, 19, src, 4096, z, &zlen, &err), 0);
	/* Too short to gain anything. */
	assert_int_equal(sx_zrec_compress(cc, 1, src, 5, z, &zlen, &err), 0);
	free(src);
	free(z);
	ZSTD_freeCCtx(cc);
}

static void test_auto_policy(void **state)
{
	(void)state;
	sx_zauto a;
	sx_zauto_reset(&a);
	assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_SAMPLE);
	sx_zauto_result(&a, 1000, 950); /* 5 %: not worth it */
	for (int i = 1; i < SX_ZAUTO_RECHECK; i++)
		assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_SKIP);
	assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_SAMPLE);
	sx_zauto_result(&a, 1000, 500); /* the file changed nature */
	assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_COMPRESS);
	sx_zauto_result(&a, 1000, 1000);
	assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_SKIP);
	/* A new file starts with a sample again. */
	sx_zauto_reset(&a);
	assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_SAMPLE);
	sx_zauto_result(&a, 1000, 900); /* exactly 10 % is enough */
	assert_int_equal(sx_zauto_next(&a), SX_ZAUTO_COMPRESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_incompressible),
	    cmocka_unit_test(test_auto_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
