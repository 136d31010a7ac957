#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/transfer/sx_limits.h"
#include "engine/wire/sx_wire.h"

#define MIB (1ull << 20)

static sx_limits *with(sx_limits_cfg *c)
{
	sx_limits *l = NULL;
	sx_err err = {0};
	assert_int_equal(sx_limits_new(&l, &err), 0);
	sx_limits_set(l, c);
	assert_int_equal(c->ndev, 0); /* taken */
	return l;
}

static void test_human(void **state)
{
	(void)state;
	char b[32];
	sx_lim_human(300, b, sizeof(b));
	assert_string_equal(b, "300 B");
	sx_lim_human(10ull << 30, b, sizeof(b));
	assert_string_equal(b, "10 GiB");
	sx_lim_human(1536 * MIB, b, sizeof(b));
	assert_string_equal(b, "1.5 GiB");
}

static void test_conns_and_overrides(void **state)
{
	(void)state;
	sx_limits_cfg c = {0};
	sx_err err = {0};
	sx_lim_use *a1, *a2, *b1, *x;
	assert_int_equal(sx_limits_cfg_set(&c, NULL, SX_LIM_CONNS, 1, &err), 0);
	assert_int_equal(sx_limits_cfg_set(&c, "cam.b", SX_LIM_CONNS, SX_LIM_NONE, &err), 0);
	assert_true(!sx_limits_cfg_any(&c, SX_LIM_DAY));
	sx_limits *l = with(&c);
	assert_int_equal(sx_limits_enter(l, "cam-a", &a1, &err), 0);
	assert_int_equal(sx_limits_enter(l, "cam-a", &a2, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "too many connections for cam-a (at most 1"));
	assert_null(a2);
	/* A name with a dot, its override lifts the default. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(sx_limits_enter(l, "cam.b", &b1, &err), 0);
	sx_limits_leave(l, a1);
	assert_int_equal(sx_limits_enter(l, "cam-a", &x, &err), 0);
	assert_ptr_equal(x, a1); /* the same counters */
	/* A reload that lifts the default: cam-a may have two. */
	sx_limits_cfg d = {0};
	assert_int_equal(sx_limits_cfg_set(&d, NULL, SX_LIM_CONNS, 2, &err), 0);
	sx_limits_set(l, &d);
	memset(&err, 0, sizeof(err));
	assert_int_equal(sx_limits_enter(l, "cam-a", &x, &err), 0);
	assert_int_equal(sx_limits_enter(l, "cam-a", &x, &err), -1);
	sx_limits_free(l);
}

static void test_files(void **state)
{
	(void)state;
	sx_limits_cfg c = {0};
	sx_err err = {0};
	sx_lim_use *u;
	uint64_t h1, h2, h3, mx;
	assert_int_equal(sx_limits_cfg_set(&c, NULL, SX_LIM_FILE_SIZE, 4 * MIB, &err), 0);
	assert_int_equal(sx_limits_cfg_set(&c, NULL, SX_LIM_DAY, 10 * MIB, &err), 0);
	assert_int_equal(sx_limits_cfg_set(&c, "cam", SX_LIM_TOTAL, 12 * MIB, &err), 0);
	sx_limits *l = with(&c);
	assert_int_equal(sx_limits_enter(l, "cam", &u, &err), 0);
	/* Larger than max-file-size. */
	assert_int_equal(sx_limits_file_begin(l, u, "x", 5 * MIB, 5 * MIB, &h1, &mx, &err), -1);
	assert_string_equal(err.msg, "file too large: 'x' is 5 MiB, at most 4 MiB for cam");
	memset(&err, 0, sizeof(err));
	/* Files in flight count: 4 + 4 reserved, a third of 4 would pass 10. */
	assert_int_equal(sx_limits_file_begin(l, u, "a", 4 * MIB, 4 * MIB, &h1, &mx, &err), 0);
	assert_int_equal(sx_limits_file_begin(l, u, "b", 4 * MIB, 4 * MIB, &h2, &mx, &err), 0);
	assert_int_equal(sx_limits_file_begin(l, u, "c", 4 * MIB, 4 * MIB, &h3, &mx, &err), -1);
	assert_string_equal(err.msg, "quota exceeded: 10 MiB per day (UTC) for cam, 8 MiB used; "
				     "'c' needs 4 MiB");
	memset(&err, 0, sizeof(err));
	/* One fails after 1 MiB (counted today, not stored), one is stored. */
	sx_limits_file_end(l, u, h1, 1 * MIB, 0);
	sx_limits_file_end(l, u, h2, 4 * MIB, 4 * MIB);
	/* A resume needs only what is still to come: 2 of a 4 MiB file. */
	assert_int_equal(sx_limits_file_begin(l, u, "c", 4 * MIB, 2 * MIB, &h3, &mx, &err), 0);
	assert_int_equal(h3, 2 * MIB);
	sx_limits_file_end(l, u, h3, 2 * MIB, 4 * MIB);
	/* 7 MiB today: a stream may still begin, and is cut past 4 MiB. */
	assert_int_equal(sx_limits_file_begin(l, u, "s", SX_SIZE_UNKNOWN, 0, &h1, &mx, &err), 0);
	assert_int_equal(mx, 4 * MIB);
	assert_int_equal(sx_limits_stream(u, "s", 4 * MIB, mx, &err), 0);
	assert_int_equal(sx_limits_stream(u, "s", 4 * MIB + 1, mx, &err), -1);
	assert_string_equal(err.msg,
			    "file too large: stream 's' reached 4.0 MiB, at most 4 MiB for cam");
	memset(&err, 0, sizeof(err));
	sx_limits_file_end(l, u, h1, 3 * MIB, 0);
	/* 10 MiB today: used up, even for a stream. */
	assert_int_equal(sx_limits_file_begin(l, u, "s", SX_SIZE_UNKNOWN, 0, &h1, &mx, &err), -1);
	assert_non_null(strstr(err.msg, "10 MiB per day (UTC) for cam, 10 MiB used; stream 's'"));
	/* The day quota lifted: the quota in all (8 MiB stored) speaks. */
	sx_limits_cfg d = {0};
	assert_int_equal(sx_limits_cfg_set(&d, "cam", SX_LIM_TOTAL, 12 * MIB, &err), 0);
	sx_limits_set(l, &d);
	memset(&err, 0, sizeof(err));
	assert_int_equal(sx_limits_file_begin(l, u, "t", 5 * MIB, 5 * MIB, &h1, &mx, &err), -1);
	assert_string_equal(err.msg,
			    "quota exceeded: 12 MiB in all for cam, 8 MiB used; 't' needs 5 MiB");
	sx_limits_free(l);
}

static void put(const char *dir, const char *name, size_t n)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)n), 0);
	close(fd);
}

static void test_count(void **state)
{
	(void)state;
	char *out = sx_test_tmpdir(), p[4096];
	sx_limits_cfg c = {0};
	sx_err err = {0};
	sx_lim_use *u;
	uint64_t folders = 0, bytes = 0, h, mx;
	snprintf(p, sizeof(p), "%s/cam", out);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cam/sub", out);
	assert_int_equal(mkdir(p, 0700), 0);
	put(p, "a", 3000);
	snprintf(p, sizeof(p), "%s/cam", out);
	put(p, "b", 2000);
	snprintf(p, sizeof(p), "%s/cam/link", out);
	assert_int_equal(symlink("/etc", p), 0); /* not followed */
	snprintf(p, sizeof(p), "%s/other", out);
	assert_int_equal(mkdir(p, 0700), 0);
	put(p, "c", 7);
	assert_int_equal(sx_limits_cfg_set(&c, NULL, SX_LIM_TOTAL, 6000, &err), 0);
	sx_limits *l = with(&c);
	assert_true(sx_limits_any(l, SX_LIM_TOTAL));
	assert_int_equal(sx_limits_count(l, out, &folders, &bytes, &err), 0);
	assert_int_equal(folders, 2);
	assert_int_equal(bytes, 5007);
	assert_int_equal(sx_limits_enter(l, "cam", &u, &err), 0);
	assert_int_equal(sx_limits_file_begin(l, u, "d", 1001, 1001, &h, &mx, &err), -1);
	assert_non_null(strstr(err.msg, "in all for cam, 4.9 KiB used"));
	sx_test_rmtree(out);
	free(out);
	sx_limits_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_human),
	    cmocka_unit_test(test_conns_and_overrides),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
