#include "testutil.h"

#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/sx_util.h"

static void test_parse_size(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(sx_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(sx_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(sx_parse_size("1MiB", &v), 0);
	assert_int_equal(v, 1 << 20);
	assert_int_equal(sx_parse_size("2G", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(sx_parse_size("-1", &v), -1);
	assert_int_equal(sx_parse_size("12Q", &v), -1);
	assert_int_equal(sx_parse_size("", &v), -1);
	assert_int_equal(sx_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(sx_parse_size("17179869184G", &v), -1);
}

static void test_hex(void **state)
{
	(void)state;
	const uint8_t b[] = {0x00, 0x0f, 0xa5, 0xff};
	char out[2 * sizeof(b) + 1];
	sx_hex(b, sizeof(b), out);
	assert_string_equal(out, "000fa5ff");
	sx_hex(b, 0, out);
	assert_string_equal(out, "");
	/* and back: lower case only, an even count */
	uint8_t back[sizeof(b)];
	assert_true(sx_unhex("000fa5ff", 8, back));
	assert_memory_equal(back, b, sizeof(b));
	assert_false(sx_unhex("000FA5FF", 8, back));
	assert_false(sx_unhex("000fa5f", 7, back));
	assert_false(sx_unhex("000fa5fg", 8, back));
	assert_true(sx_unhex("", 0, back));
}

static void test_atomic_write(void **state)
{
	(void)state;
	char *dir = sx_test_tmpdir();
	char path[600];
	sx_err err = {0};
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(sx_file_write_atomic(path, "one", 3, 0600, &err), 0);
	assert_int_equal(sx_file_write_atomic(path, "two!", 4, 0640, &err), 0);
	uint8_t *data;
	size_t len;
	assert_int_equal(sx_file_read(path, 100, &data, &len, &err), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(data, "two!", 4);
	free(data);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(sx_file_read(path, 3, &data, &len, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	sx_test_rmtree(dir);
	free(dir);
}

static void test_err_keeps_first(void **state)
{
	(void)state;
	sx_err err = {0};
	assert_int_equal(sx_fail(&err, SX_E_AUTH, "first %d", 1), -1);
	sx_fail(&err, SX_E_IO, "second");
	assert_int_equal(err.cls, SX_E_AUTH);
	sx_err_prefix(&err, "ctx: ");
	assert_string_equal(err.msg, "ctx: first 1");
}

static void test_grow(void **state)
{
	(void)state;
	uint32_t *v = NULL;
	size_t cap = 0;
	sx_err err = {0};
	/* Doubling from 16, new room zeroed, the old content kept. */
	assert_int_equal(sx_grow(&v, &cap, 1, sizeof(*v), 100, "things", &err), 0);
	assert_int_equal(cap, 16);
	for (size_t i = 0; i < cap; i++)
		assert_int_equal(v[i], 0);
	v[3] = 7;
	assert_int_equal(sx_grow(&v, &cap, 17, sizeof(*v), 100, "things", &err), 0);
	assert_int_equal(cap, 32);
	assert_int_equal(v[3], 7);
	assert_int_equal(v[31], 0);
	/* Enough room: nothing changes. */
	uint32_t *was = v;
	assert_int_equal(sx_grow(&v, &cap, 20, sizeof(*v), 100, "things", &err), 0);
	assert_ptr_equal(v, was);
	/* Up to the cap exactly, and not one beyond. */
	assert_int_equal(sx_grow(&v, &cap, 65, sizeof(*v), 100, "things", &err), 0);
	assert_int_equal(cap, 100);
	assert_int_equal(sx_grow(&v, &cap, 101, sizeof(*v), 100, "things", &err), -1);
	assert_int_equal(err.cls, SX_E_OTHER);
	assert_non_null(strstr(err.msg, "more than 100 things"));
	assert_int_equal(cap, 100);
	/* A size that overflows is refused, not wrapped. */
	char *big = NULL;
	size_t bcap = 0;
	sx_err e2 = {0};
	assert_int_equal(sx_grow(&big, &bcap, 2, SIZE_MAX / 2, SIZE_MAX, "huge", &e2), -1);
	assert_null(big);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size),	 cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_atomic_write), cmocka_unit_test(test_err_keeps_first),
	    cmocka_unit_test(test_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
