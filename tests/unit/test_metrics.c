#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_prom.h"
#include "common/sx_util.h"
#include "engine/transfer/sx_metrics.h"

/* ---- the exposition text ------------------------------------------------- */

static void test_prom_labels_escaped(void **state)
{
	(void)state;
	sx_prom p;
	sx_prom_init(&p);
	sx_prom_family(&p, "x_total", "counter", "Help with a \\ and a\nnewline.");
	sx_prom_label l[] = {
	    {"a", "q\"b\\s\nn"}, {"b", "cr\rtab\tesc\x1b"}, {"c", "bad\xff\xc2\x9b"}};
	sx_prom_u64(&p, "x_total", l, 3, 18446744073709551615ull);
	sx_prom_u64(&p, "x_total", NULL, 0, 0);
	assert_false(p.oom);
	assert_string_equal(p.buf, "# HELP x_total Help with a \\\\ and a\\nnewline.\n"
				   "# TYPE x_total counter\n"
				   "x_total{a=\"q\\\"b\\\\s\\nn\",b=\"cr\\\\rtab\\\\tesc\\\\x1b\","
				   "c=\"bad\\\\xff\\\\xc2\\\\x9b\"} 18446744073709551615\n"
				   "x_total 0\n");
	sx_prom_free(&p);

	char buf[8];
	/* cut between whole escapes; the whole length returned */
	assert_int_equal(sx_prom_escape(buf, sizeof(buf), "abcde\x01"), 10);
	assert_string_equal(buf, "abcde");
	/* valid UTF-8 passes */
	char wide[32];
	assert_int_equal(sx_prom_escape(wide, sizeof(wide), "caf\xc3\xa9 \xe2\x82\xac"), 9);
	assert_string_equal(wide, "caf\xc3\xa9 \xe2\x82\xac");
}

static void test_prom_values(void **state)
{
	(void)state;
	sx_prom p;
	sx_prom_init(&p);
	double v[] = {0.1, 1e20, 83956199424.0, 1796281346.062, -2.5, NAN, INFINITY, -INFINITY, 0};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		sx_prom_f64(&p, "g", NULL, 0, v[i]);
	assert_string_equal(p.buf, "g 0.1\ng 1e+20\ng 83956199424\ng 1796281346.062\ng -2.5\n"
				   "g NaN\ng +Inf\ng -Inf\ng 0\n");
	sx_prom_free(&p);
}

static void test_prom_histogram(void **state)
{
	(void)state;
	sx_prom p;
	sx_prom_init(&p);
	const double bounds[] = {0.5, 1, 2.5};
	const uint64_t counts[] = {1, 0, 2, 3}; /* per bucket, the last above 2.5 */
	sx_prom_label l[] = {{"dir", "in"}};
	sx_prom_hist(&p, "d_seconds", l, 1, bounds, counts, 3, 10.25);
	sx_prom_hist(&p, "e_seconds", NULL, 0, bounds, counts, 3, 0.5);
	assert_string_equal(p.buf, "d_seconds_bucket{dir=\"in\",le=\"0.5\"} 1\n"
				   "d_seconds_bucket{dir=\"in\",le=\"1\"} 1\n"
				   "d_seconds_bucket{dir=\"in\",le=\"2.5\"} 3\n"
				   "d_seconds_bucket{dir=\"in\",le=\"+Inf\"} 6\n"
				   "d_seconds_sum{dir=\"in\"} 10.25\n"
				   "d_seconds_count{dir=\"in\"} 6\n"
				   "e_seconds_bucket{le=\"0.5\"} 1\n"
				   "e_seconds_bucket{le=\"1\"} 1\n"
				   "e_seconds_bucket{le=\"2.5\"} 3\n"
				   "e_seconds_bucket{le=\"+Inf\"} 6\n"
				   "e_seconds_sum 0.5\n"
				   "e_seconds_count 6\n");
	sx_prom_free(&p);
}

/* ---- label sets ---------------------------------------------------------- */

static void test_handshake_reasons(void **state)
{
	(void)state;
	struct {
		const char *msg;
		sx_hs_reason want;
	} t[] = {
	    {NULL, SX_HS_OK},
	    {"client certificate: CN=cam-02: certificate is revoked (serial 0a, reason "
	     "keyCompromise, since 2026-01-01)",
	     SX_HS_REVOKED},
	    {"client certificate: CN=cam: certificate has expired (notAfter x)", SX_HS_EXPIRED},
	    {"client certificate: CN=cam: certificate is not yet valid (notBefore x)",
	     SX_HS_EXPIRED},
	    {"client certificate: CN=rogue: unable to get local issuer certificate / not issued "
	     "by the trusted CA",
	     SX_HS_UNKNOWN_CA},
	    {"client certificate: CN=x: self-signed certificate (not the trusted CA)",
	     SX_HS_UNKNOWN_CA},
	    {"client certificate: CN=x: certificate lacks extendedKeyUsage clientAuth",
	     SX_HS_BAD_CERTIFICATE},
	    {"client certificate: CN=x: certificate chain too long", SX_HS_BAD_CERTIFICATE},
	    {"client sent no certificate", SX_HS_NO_CERTIFICATE},
	    {"handshake timeout", SX_HS_TIMEOUT},
	    {"server refused: the server's revocation list is stale (nextUpdate x); it accepts no "
	     "device until its operator installs a current one",
	     SX_HS_STALE_CRL},
	    {"client certificate: CN=cam: certificate is revoked (serial 1, listed by the "
	     "server's last CRL, which is stale)",
	     SX_HS_REVOKED},
	    {"closed during the handshake", SX_HS_OTHER},
	    {"client refused the handshake: unknown CA", SX_HS_OTHER},
	    {"", SX_HS_OTHER},
	    /* a subject that names another reason loses to the real one */
	    {"client certificate: CN=certificate is revoked: unable to get local issuer "
	     "certificate / not issued by the trusted CA",
	     SX_HS_UNKNOWN_CA},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		sx_hs_reason r = sx_hs_reason_of(t[i].msg);
		if (r != t[i].want)
			fail_msg("'%s': %s, expected %s", t[i].msg ? t[i].msg : "(null)",
				 sx_hs_reason_names[r], sx_hs_reason_names[t[i].want]);
	}
}

static void test_refuse_reasons(void **state)
{
	(void)state;
	struct {
		sx_class cls;
		const char *msg;
		sx_refuse_reason want;
	} t[] = {
	    {SX_E_IO, "'a.mp4' exists on the receiver (no --overwrite)", SX_RF_EXISTS},
	    {SX_E_IO, "'a.mp4' exists with other content", SX_RF_EXISTS},
	    {SX_E_IO, "'a' (5 bytes) does not fit: 1 bytes free on the receiver", SX_RF_DISK_FULL},
	    {SX_E_IO, "'a': write failed on the receiver: No space left on device",
	     SX_RF_DISK_FULL},
	    {SX_E_IO, "'a': write failed on the receiver: Disk quota exceeded", SX_RF_QUOTA},
	    {SX_E_IO, "quota exceeded: 10 GiB per day for cam-07, 9.8 GiB used", SX_RF_QUOTA},
	    {SX_E_IO, "'a' is larger than 4 GiB, the most cam-07 may send", SX_RF_SIZE},
	    {SX_E_IO, "'a': cannot create temporary: Permission denied", SX_RF_IO},
	    {SX_E_INTEGRITY, "'a exists on the receiver': bad data", SX_RF_INTEGRITY},
	    {SX_E_AUTH, "not allowed", SX_RF_AUTH},
	    {SX_E_OTHER, "out of memory", SX_RF_OTHER},
	    /* a file name that names another reason loses to the real one */
	    {SX_E_IO, "'does not fit' exists on the receiver (no --overwrite)", SX_RF_EXISTS},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		sx_err e = {.cls = t[i].cls};
		snprintf(e.msg, sizeof(e.msg), "%s", t[i].msg);
		sx_refuse_reason r = sx_refuse_reason_of(&e);
		if (r != t[i].want)
			fail_msg("'%s': %s, expected %s", t[i].msg, sx_refuse_reason_names[r],
				 sx_refuse_reason_names[t[i].want]);
	}
}

static void test_duration_buckets(void **state)
{
	(void)state;
	assert_int_equal(sx_dur_bucket(0), 0);
	assert_int_equal(sx_dur_bucket(100000000), 0); /* 0.1 s: le="0.1" */
	assert_int_equal(sx_dur_bucket(100000001), 1);
	assert_int_equal(sx_dur_bucket(3600ull * 1000000000), SX_DUR_BUCKETS - 2);
	assert_int_equal(sx_dur_bucket(14401ull * 1000000000), SX_DUR_BUCKETS);
	for (int i = 1; i < SX_DUR_BUCKETS; i++)
		assert_true(sx_dur_bounds[i] > sx_dur_bounds[i - 1]);
}

/* ---- logs as JSON ---------------------------------------------------------- */

static const char *json(const char *line, size_t cap)
{
	static char out[SX_LOG_JSON_MAX];
	assert_true(cap <= sizeof(out));
	size_t n = sx_log_json(line, out, cap);
	assert_int_equal(n, strlen(out));
	assert_true(n < cap);
	return out;
}

static void test_log_json(void **state)
{
	(void)state;
	assert_string_equal(
	    json("ts=2026-01-01T00:00:00.000Z level=info event=x", 256),
	    "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"level\":\"info\",\"event\":\"x\"}");
	/* numbers: bare and at most 15 digits; quoted values stay strings */
	assert_string_equal(
	    json("a=12 b=-3 c=0.500 d=007 e=1. f=1234567890123456 g=\"5\" h=1e3", 256),
	    "{\"a\":12,\"b\":-3,\"c\":0.500,\"d\":\"007\",\"e\":\"1.\","
	    "\"f\":\"1234567890123456\",\"g\":\"5\",\"h\":\"1e3\"}");
	/* the log escapes read back, then written as JSON */
	assert_string_equal(
	    json("path=\"q\\\" event=fake\\\\ \\n\\t\\x1b\\xff\\xc2\\x9b\" n=1", 256),
	    "{\"path\":\"q\\\" event=fake\\\\ \\n\\t\\u001b\\ufffd\\u009b\",\"n\":1}");
	/* a NUL byte inside a value */
	assert_string_equal(json("v=\"a\\x00b\"", 64), "{\"v\":\"a\\u0000b\"}");
	/* a line cut inside a quoted value; a bare word; an empty value */
	assert_string_equal(json("a=\"open b=2", 64), "{\"a\":\"open b=2\"}");
	assert_string_equal(json("word k= z=\"\"", 64), "{\"word\":\"\",\"k\":\"\",\"z\":\"\"}");
	/* raw bytes a format wrote bypass nothing: escaped as JSON */
	assert_string_equal(json("v=a\x01\xfe", 64), "{\"v\":\"a\\u0001\\ufffd\"}");
	/* a pair that does not fit is left out, with the ones after it */
	assert_string_equal(json("a=1 b=\"0123456789012345678901234567890123456789\" c=2", 48),
			    "{\"a\":1,\"log_cut\":true}");
	assert_string_equal(json("b=\"0123456789012345678901234567890123456789\"", 32),
			    "{\"log_cut\":true}");
	/* the worst line fits SX_LOG_JSON_MAX */
	char worst[SX_LOG_LINE_MAX];
	memset(worst, '\x01', sizeof(worst) - 1);
	memcpy(worst, "a=", 2);
	worst[sizeof(worst) - 1] = '\0';
	const char *w = json(worst, SX_LOG_JSON_MAX);
	assert_null(strstr(w, "log_cut"));
	assert_int_equal(strlen(w), 6 + 6 * (SX_LOG_LINE_MAX - 3) + 2);
}

static void test_log_format_parse(void **state)
{
	(void)state;
	sx_log_format f = SX_LOG_LOGFMT;
	assert_int_equal(sx_log_format_parse("json", &f), 0);
	assert_int_equal(f, SX_LOG_JSON);
	assert_int_equal(sx_log_format_parse("logfmt", &f), 0);
	assert_int_equal(f, SX_LOG_LOGFMT);
	assert_int_equal(sx_log_format_parse("JSON", &f), -1);
	assert_int_equal(sx_log_format_parse("", &f), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prom_labels_escaped),
	    cmocka_unit_test(test_prom_values),
	    cmocka_unit_test(test_prom_histogram),
	    cmocka_unit_test(test_handshake_reasons),
	    cmocka_unit_test(test_refuse_reasons),
	    cmocka_unit_test(test_duration_buckets),
	    cmocka_unit_test(test_log_json),
	    cmocka_unit_test(test_log_format_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
