#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_state.h"

/* Sets the three variables (NULL: unset) and returns sx_state_dir's result
 * for sub, the path in out. */
static int state(const char *sd, const char *xdg, const char *home, const char *sub, char *out,
		 size_t cap, sx_err *err)
{
	const char *names[] = {"STATE_DIRECTORY", "XDG_STATE_HOME", "HOME"};
	const char *vals[] = {sd, xdg, home};
	for (int i = 0; i < 3; i++) {
		if (vals[i] != NULL)
			setenv(names[i], vals[i], 1);
		else
			unsetenv(names[i]);
	}
	sx_err_clear(err);
	return sx_state_dir(out, cap, sub, err);
}

static void test_order(void **st)
{
	(void)st;
	char out[256];
	sx_err err;
	char *tmp = sx_test_tmpdir();
	assert_int_equal(state("/var/lib/sxfer", "/x", tmp, "receipts", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/var/lib/sxfer/receipts");
	/* systemd's list of several StateDirectory= entries: the first. */
	assert_int_equal(
	    state("/var/lib/sxfer:/var/lib/other", NULL, NULL, "q", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/var/lib/sxfer/q");
	assert_int_equal(state(NULL, "/x/state", tmp, "receipts", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/x/state/sxfer/receipts");
	assert_int_equal(state(NULL, NULL, tmp, "receipts", out, sizeof(out), &err), 0);
	char want[256];
	snprintf(want, sizeof(want), "%s/.local/state/sxfer/receipts", tmp);
	assert_string_equal(out, want);
	/* The folder itself; relative or empty values are skipped. */
	assert_int_equal(state("", "rel/state", tmp, NULL, out, sizeof(out), &err), 0);
	snprintf(want, sizeof(want), "%s/.local/state/sxfer", tmp);
	assert_string_equal(out, want);
	sx_test_rmtree(tmp);
	free(tmp);
}

static void test_none_usable(void **st)
{
	(void)st;
	char out[256];
	sx_err err;
	assert_int_equal(state(NULL, NULL, "/nonexistent", "receipts", out, sizeof(out), &err), -1);
	assert_int_equal(err.cls, SX_E_USAGE);
	assert_non_null(strstr(err.msg, "HOME=/nonexistent is not an existing folder"));
	assert_non_null(strstr(err.msg, "STATE_DIRECTORY"));
	assert_non_null(strstr(err.msg, "XDG_STATE_HOME"));
	assert_int_equal(state(NULL, "relative", NULL, "receipts", out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "HOME is not set"));
	assert_int_equal(state(NULL, NULL, "home", "receipts", out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "not an absolute path"));
}

static void test_too_long(void **st)
{
	(void)st;
	char out[16];
	sx_err err;
	assert_int_equal(state("/var/lib/sxfer", NULL, NULL, "receipts", out, sizeof(out), &err),
			 -1);
	assert_int_equal(err.cls, SX_E_USAGE);
	assert_non_null(strstr(err.msg, "too long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_none_usable),
	    cmocka_unit_test(test_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
