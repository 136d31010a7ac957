#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sx_esc.h"
#include "common/sx_util.h"

/* Escapes the n bytes of s (n < 0: up to the NUL) into a static buffer. */
static const char *esc(const char *s, int n, unsigned how)
{
	static char buf[1024];
	size_t len = sx_esc(buf, sizeof(buf), s, n < 0 ? SX_ESC_CSTR : (size_t)n, how);
	assert_true(len < sizeof(buf));
	assert_int_equal(len, strlen(buf));
	return buf;
}

static void test_quote_and_backslash(void **state)
{
	(void)state;
	assert_string_equal(esc("plain name.txt", -1, SX_ESC_LOG), "plain name.txt");
	assert_string_equal(esc("q\" event=fake level=error x=\"", -1, SX_ESC_LOG),
			    "q\\\" event=fake level=error x=\\\"");
	assert_string_equal(esc("a\\b", -1, SX_ESC_LOG), "a\\\\b");
	/* terminal form: backslash escaped, quote kept */
	assert_string_equal(esc("a\\\"b", -1, SX_ESC_TEXT), "a\\\\\"b");
	/* the sx_log guard form: only control bytes and non-UTF-8 */
	assert_string_equal(esc("a\\\"b\n", -1, 0), "a\\\"b\\n");
	assert_string_equal(esc("a\\\"b", -1, SX_ESC_JSON), "a\\\\\\\"b");
	assert_string_equal(esc(NULL, -1, SX_ESC_LOG), "");
}

static void test_control_bytes(void **state)
{
	(void)state;
	static const char *named[] = {"\\n", "\\r", "\\t"};
	static const char raw[] = {'\n', '\r', '\t'};
	for (int i = 0; i < 3; i++) {
		assert_string_equal(esc(&raw[i], 1, SX_ESC_LOG), named[i]);
		assert_string_equal(esc(&raw[i], 1, SX_ESC_JSON), named[i]);
	}
	for (int b = 0; b < 0x20; b++) {
		char in = (char)b, want[16];
		if (b == '\n' || b == '\r' || b == '\t')
			continue;
		snprintf(want, sizeof(want), "\\x%02x", b);
		assert_string_equal(esc(&in, 1, SX_ESC_LOG), want);
		assert_string_equal(esc(&in, 1, SX_ESC_TEXT), want);
		if (b == '\b' || b == '\f')
			snprintf(want, sizeof(want), "\\%c", b == '\b' ? 'b' : 'f');
		else
			snprintf(want, sizeof(want), "\\u%04x", b);
		assert_string_equal(esc(&in, 1, SX_ESC_JSON), want);
	}
	assert_string_equal(esc("\x7f", -1, SX_ESC_LOG), "\\x7f");
	assert_string_equal(esc("\x7f", -1, SX_ESC_JSON), "\\u007f");
	/* an ANSI sequence cannot reach a terminal */
	assert_string_equal(esc("\x1b[2Jx", -1, SX_ESC_TEXT), "\\x1b[2Jx");
	/* C1 controls: CSI (U+009B) is well-formed UTF-8 yet a control */
	assert_string_equal(esc("\xc2\x9b", -1, SX_ESC_LOG), "\\xc2\\x9b");
	assert_string_equal(esc("\xc2\x80", -1, SX_ESC_JSON), "\\u0080");
	assert_string_equal(esc("\xc2\x9f", -1, SX_ESC_JSON), "\\u009f");
	assert_string_equal(esc("\xc2\xa0", -1, SX_ESC_LOG), "\xc2\xa0");
}

static void test_valid_utf8_kept(void **state)
{
	(void)state;
	/* 2, 3 and 4 bytes, and the edges of each range */
	static const char *ok[] = {"caf\xc3\xa9",      "\xe2\x82\xac", "\xf0\x9f\x98\x80",
				   "\xed\x9f\xbf",     "\xee\x80\x80", "\xef\xbf\xbf",
				   "\xf4\x8f\xbf\xbf", "\xe0\xa0\x80", "\xf0\x90\x80\x80",
				   "\xdf\xbf"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_string_equal(esc(ok[i], -1, SX_ESC_LOG), ok[i]);
		assert_string_equal(esc(ok[i], -1, SX_ESC_JSON), ok[i]);
	}
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *in, *log, *json;
	} bad[] = {
	    {"\xff\xfe", "\\xff\\xfe", "\\ufffd\\ufffd"},
	    {"\x80", "\\x80", "\\ufffd"},		  /* stray continuation */
	    {"a\xc3", "a\\xc3", "a\\ufffd"},		  /* truncated at the end */
	    {"\xc3(", "\\xc3(", "\\ufffd("},		  /* truncated by ASCII */
	    {"\xe2\x82", "\\xe2\\x82", "\\ufffd\\ufffd"}, /* truncated 3-byte */
	    {"\xc0\xaf", "\\xc0\\xaf", "\\ufffd\\ufffd"}, /* overlong '/' */
	    {"\xc1\xbf", "\\xc1\\xbf", "\\ufffd\\ufffd"}, /* overlong */
	    {"\xe0\x80\xaf", "\\xe0\\x80\\xaf", "\\ufffd\\ufffd\\ufffd"},
	    {"\xe0\x9f\xbf", "\\xe0\\x9f\\xbf", "\\ufffd\\ufffd\\ufffd"},
	    {"\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf", "\\ufffd\\ufffd\\ufffd\\ufffd"},
	    {"\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf", "\\ufffd\\ufffd\\ufffd\\ufffd"},
	    {"\xed\xa0\x80", "\\xed\\xa0\\x80", "\\ufffd\\ufffd\\ufffd"}, /* U+D800 */
	    {"\xed\xbf\xbf", "\\xed\\xbf\\xbf", "\\ufffd\\ufffd\\ufffd"}, /* U+DFFF */
	    {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"},
	    {"\xf5\x80", "\\xf5\\x80", "\\ufffd\\ufffd"},
	    {"\xfe", "\\xfe", "\\ufffd"},
	    /* a bad byte inside a name; the next character is kept */
	    {"a\xe2\x28\xc3\xa9", "a\\xe2(\xc3\xa9", "a\\ufffd(\xc3\xa9"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_string_equal(esc(bad[i].in, -1, SX_ESC_LOG), bad[i].log);
		assert_string_equal(esc(bad[i].in, -1, SX_ESC_TEXT), bad[i].log);
		assert_string_equal(esc(bad[i].in, -1, SX_ESC_JSON), bad[i].json);
	}
	/* a NUL inside a length-bounded value */
	assert_string_equal(esc("a\0b", 3, SX_ESC_LOG), "a\\x00b");
	assert_string_equal(esc("a\0b", 3, SX_ESC_JSON), "a\\u0000b");
}

static void test_cut_between_escapes(void **state)
{
	(void)state;
	char buf[8];
	/* "ab\x01" escapes to 6 bytes: with 6 bytes of room only "ab" fits */
	assert_int_equal(sx_esc(buf, 6, "ab\x01", SX_ESC_CSTR, SX_ESC_LOG), 6);
	assert_string_equal(buf, "ab");
	assert_int_equal(sx_esc(buf, 7, "ab\x01", SX_ESC_CSTR, SX_ESC_LOG), 6);
	assert_string_equal(buf, "ab\\x01");
	/* a cut never splits a UTF-8 character */
	assert_int_equal(sx_esc(buf, 3, "\xe2\x82\xac", SX_ESC_CSTR, SX_ESC_LOG), 3);
	assert_string_equal(buf, "");

	char q[16];
	assert_string_equal(sx_log_quote(q, sizeof(q), "x\"y", SX_ESC_CSTR), "\"x\\\"y\"");
	assert_string_equal(sx_log_quote(q, sizeof(q), "abcdefghijklmnopq", SX_ESC_CSTR),
			    "\"abcdefghij...\"");
	assert_string_equal(sx_log_quote(q, sizeof(q), "abcdefghi\"x\"", SX_ESC_CSTR),
			    "\"abcdefghi...\"");
	assert_string_equal(sx_log_quote(q, sizeof(q), "ab", 1), "\"a\"");
	assert_string_equal(SX_LOGQ("q\" event=fake"), "\"q\\\" event=fake\"");
	assert_string_equal(SX_LOGQN("x\n", 2), "\"x\\n\"");
	assert_string_equal(SX_TEXT("a\x1b"), "a\\x1b");
	/* one-word values stay bare; anything else is quoted */
	assert_string_equal(SX_LOGT("127.0.0.1:4433"), "127.0.0.1:4433");
	assert_string_equal(SX_LOGT("[::1]:443"), "[::1]:443");
	assert_string_equal(SX_LOGT("ok x=1"), "\"ok x=1\"");
	assert_string_equal(SX_LOGT("a\"b"), "\"a\\\"b\"");
	assert_string_equal(SX_LOGT(""), "\"\"");
	assert_string_equal(SX_LOGT(NULL), "\"\"");
}

/* Runs one sx_log call with stderr sent to a temporary file; returns what
 * was written (malloc'd). */
#define CAPTURE(out, call)                                                                         \
	do {                                                                                       \
		fflush(stderr);                                                                    \
		FILE *tmp_ = tmpfile();                                                            \
		assert_non_null(tmp_);                                                             \
		int saved_ = dup(STDERR_FILENO);                                                   \
		assert_true(saved_ >= 0);                                                          \
		assert_true(dup2(fileno(tmp_), STDERR_FILENO) >= 0);                               \
		call;                                                                              \
		fflush(stderr);                                                                    \
		assert_true(dup2(saved_, STDERR_FILENO) >= 0);                                     \
		close(saved_);                                                                     \
		long len_ = ftell(tmp_);                                                           \
		fseek(tmp_, 0, SEEK_SET);                                                          \
		out = calloc(1, (size_t)len_ + 1);                                                 \
		assert_int_equal(fread(out, 1, (size_t)len_, tmp_), (size_t)len_);                 \
		fclose(tmp_);                                                                      \
	} while (0)

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void test_log_line(void **state)
{
	(void)state;
	char *out = NULL;
	CAPTURE(out, sx_log("info", "file_stored", "path=%s size=%d",
			    SX_LOGQ("q\" event=fake level=error x=\"\n\xff"), 1));
	assert_int_equal(count(out, "\n"), 1);
	assert_int_equal(count(out, "event="), 2); /* the real one, and inside the value */
	assert_non_null(strstr(out, " level=info event=file_stored path=\"q\\\" event=fake "
				    "level=error x=\\\"\\n\\xff\" size=1\n"));
	free(out);

	/* A value that bypassed SX_LOGQ still cannot add a line or raw bytes */
	CAPTURE(out, sx_log("info", "x", "v=\"%s\"", "a\nts=forged\x1b\xff"));
	assert_int_equal(count(out, "\n"), 1);
	assert_non_null(strstr(out, "v=\"a\\nts=forged\\x1b\\xff\"\n"));
	free(out);

	/* A long value is cut inside its quotes; the line stays whole */
	char big[3000];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CAPTURE(out, sx_log("info", "x", "a=%s b=%s end=1", SX_LOGQ(big), SX_LOGQ(big)));
	assert_int_equal(count(out, "\n"), 1);
	assert_int_equal(count(out, "...\""), 2);
	assert_non_null(strstr(out, "\" end=1\n"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quote_and_backslash), cmocka_unit_test(test_control_bytes),
	    cmocka_unit_test(test_valid_utf8_kept),	cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_cut_between_escapes), cmocka_unit_test(test_log_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
