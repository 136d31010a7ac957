/* Enrollment in pki/: tokens (text, records, tampering, reuse, expiry),
 * requests asking for claims, the CA as a service (enroll, renew, CRL) and
 * 100 threads enrolling at once. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"

#define NTHREADS 100

static const sx_pass plain = {.none = true};

typedef struct fixture {
	char *dir; /* the test's temporary folder */
	char ca[600];
	sx_ca *svc;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	sx_err err = {0};
	if (f == NULL || (f->dir = sx_test_tmpdir()) == NULL)
		return -1;
	snprintf(f->ca, sizeof(f->ca), "%s/ca", f->dir);
	if (sx_ca_init(f->ca, "enroll CA", SX_KEY_P256, 0, &plain, &err) < 0 ||
	    sx_ca_svc_open(f->ca, &plain, &f->svc, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sx_ca_svc_close(f->svc);
	sx_test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static sx_claims claims(const char *name, sx_profile role, const char *dns, const char *ip)
{
	sx_claims c = {0};
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.profile = role;
	c.has_profile = true;
	if (dns != NULL)
		snprintf(c.dns[c.ndns++], sizeof(c.dns[0]), "%s", dns);
	if (ip != NULL)
		snprintf(c.ips[c.nips++], sizeof(c.ips[0]), "%s", ip);
	c.expires = time(NULL) + SX_TOKEN_TTL_DEFAULT;
	return c;
}

static void token_for(const fixture *f, sx_claims c, char *text)
{
	sx_err err = {0};
	if (sx_ca_token_new(f->ca, &c, text, SX_TOKEN_TEXT_MAX, &err) < 0)
		fail_msg("token: %s", err.msg);
}

static X509_REQ *csr_for(const sx_claims *ask, sx_key_type type)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	sx_err err = {0};
	assert_int_equal(sx_key_generate(type, &key, &err), 0);
	if (sx_csr_build_ask(key, ask, &req, &err) < 0)
		fail_msg("csr: %s", err.msg);
	EVP_PKEY_free(key);
	return req;
}

/* Enrolls with a fresh key asking for ask; returns rc, err filled. */
static int enroll(fixture *f, const char *token, const sx_claims *ask, X509 **out, sx_err *err)
{
	X509_REQ *req = csr_for(ask, SX_KEY_P256);
	int rc = sx_ca_svc_enroll(f->svc, token, req, out, err);
	X509_REQ_free(req);
	return rc;
}

static void expect_refused(fixture *f, const char *token, const sx_claims *ask, const char *msg)
{
	X509 *cert = NULL;
	sx_err err = {0};
	assert_int_equal(enroll(f, token, ask, &cert, &err), -1);
	assert_null(cert);
	assert_int_equal(err.cls, SX_E_AUTH);
	if (strstr(err.msg, msg) == NULL)
		fail_msg("expected '%s', got '%s'", msg, err.msg);
}

static char *file_text(const char *dir, const char *name)
{
	char path[700];
	uint8_t *data = NULL;
	size_t len = 0;
	sx_err err = {0};
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(sx_file_read(path, 1 << 24, &data, &len, &err), 0);
	return (char *)data;
}

static void test_token_roundtrip(void **state)
{
	fixture *f = *state;
	char text[SX_TOKEN_TEXT_MAX], path[700];
	sx_claims c = claims("cam-07", SX_PROFILE_BOTH, "cam-07.test", "::0001"), back;
	uint8_t fp[SX_CERT_FP_LEN];
	sx_err err = {0};
	struct stat st;

	snprintf(c.dns[c.ndns++], sizeof(c.dns[0]), "alt.cam-07.test");
	snprintf(c.ips[c.nips++], sizeof(c.ips[0]), "10.1.2.3");
	c.replace = true;
	assert_int_equal(sx_ca_token_new(f->ca, &c, text, sizeof(text), &err), 0);
	assert_memory_equal(text, "sxt1.", 5);
	assert_int_equal(sx_token_parse(text, &back, &err), 0);
	assert_string_equal(back.name, "cam-07");
	assert_int_equal(back.profile, SX_PROFILE_BOTH);
	assert_true(back.has_profile && back.replace);
	assert_int_equal(back.ndns, 2);
	assert_string_equal(back.dns[1], "alt.cam-07.test");
	assert_int_equal(back.nips, 2);
	assert_string_equal(back.ips[0], "::1"); /* canonical */
	assert_string_equal(back.ips[1], "10.1.2.3");
	assert_int_equal(back.expires, c.expires);
	assert_int_equal(sx_cert_fp(sx_ca_svc_root(f->svc), fp, &err), 0);
	assert_memory_equal(back.ca_fp, fp, sizeof(fp));

	/* recorded by its hash, never as text; 0600 */
	char *rec = file_text(f->ca, "tokens.txt");
	assert_null(strstr(rec, text + 5));
	assert_non_null(strstr(rec, "unused\t"));
	assert_non_null(strstr(rec, "\tboth\treplace\tDNS:cam-07.test,DNS:alt.cam-07.test,"
				    "IP:::1,IP:10.1.2.3\tcam-07\n"));
	free(rec);
	snprintf(path, sizeof(path), "%s/tokens.txt", f->ca);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* claims a token cannot carry */
	sx_claims bad = claims("x", SX_PROFILE_CA, NULL, NULL);
	assert_int_equal(sx_ca_token_new(f->ca, &bad, text, sizeof(text), &err), -1);
	assert_int_equal(err.cls, SX_E_USAGE);
	sx_err_clear(&err);
	bad = claims("x", SX_PROFILE_CLIENT, "bad name!", NULL);
	assert_int_equal(sx_ca_token_new(f->ca, &bad, text, sizeof(text), &err), -1);
	sx_err_clear(&err);
	bad = claims("x", SX_PROFILE_CLIENT, NULL, "10.1.2");
	assert_int_equal(sx_ca_token_new(f->ca, &bad, text, sizeof(text), &err), -1);
	sx_err_clear(&err);
	bad = claims("x", SX_PROFILE_CLIENT, NULL, NULL);
	bad.expires = time(NULL) + SX_TOKEN_TTL_MAX + 60;
	assert_int_equal(sx_ca_token_new(f->ca, &bad, text, sizeof(text), &err), -1);
	sx_err_clear(&err);
	snprintf(path, sizeof(path), "%s/nothing", f->dir);
	bad = claims("x", SX_PROFILE_CLIENT, NULL, NULL);
	assert_int_equal(sx_ca_token_new(path, &bad, text, sizeof(text), &err), -1);
	assert_non_null(strstr(err.msg, "not a CA folder"));
}

/* Records that expired more than a day ago are dropped when tokens.txt is
 * written; a malformed tokens.txt is an integrity error. */
static void test_token_records(void **state)
{
	fixture *f = *state;
	char text[SX_TOKEN_TEXT_MAX], path[700], line[600];
	sx_claims c = claims("cam-p", SX_PROFILE_CLIENT, NULL, NULL);
	sx_err err = {0};
	static const char old_hash[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	static const char young_hash[] =
	    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
	int n;

	snprintf(path, sizeof(path), "%s/tokens.txt", f->ca);
	n = snprintf(line, sizeof(line),
		     "# header\nused\t%s\t1000\t900\tABC\tclient\t-\t-\told one\n"
		     "unused\t%s\t%lld\t0\t-\tboth\treplace\tDNS:a.test,IP:10.0.0.1\tyoung\n",
		     old_hash, young_hash, (long long)time(NULL) - 3600);
	assert_int_equal(sx_file_write_atomic(path, line, (size_t)n, 0600, &err), 0);
	token_for(f, c, text);
	char *rec = file_text(f->ca, "tokens.txt");
	assert_null(strstr(rec, old_hash));
	assert_non_null(strstr(rec, young_hash)); /* expired an hour ago: kept */
	free(rec);

	static const char *const bad[] = {
	    "unused\tabc\t1000\t0\t-\tclient\t-\t-\tx\n",      /* short hash */
	    "unused\t%s\t1000\t5\t-\tclient\t-\t-\tx\n",       /* unused with usedAt */
	    "used\t%s\t1000\t5\t-\tadmin\t-\t-\tx\n",	       /* unknown role */
	    "spent\t%s\t1000\t5\t-\tclient\t-\t-\tx\n",	       /* unknown status */
	    "unused\t%s\t1000\t0\t-\tclient\tmaybe\t-\tx\n",   /* replace field */
	    "unused\t%s\t1000\t0\t-\tclient\t-\t-\n",	       /* missing name */
	    "unused\t%s\t1000\t0\t-\tclient\t-\tDNS:a b\tx\n", /* SANs */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = snprintf(line, sizeof(line), bad[i], young_hash);
		assert_int_equal(sx_file_write_atomic(path, line, (size_t)n, 0600, &err), 0);
		sx_err_clear(&err);
		c = claims("cam-q", SX_PROFILE_CLIENT, NULL, NULL);
		assert_int_equal(sx_ca_token_new(f->ca, &c, text, sizeof(text), &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
		assert_non_null(strstr(err.msg, "tokens.txt: line 1"));
	}
	/* a repeated token */
	n = snprintf(line, sizeof(line),
		     "unused\t%s\t1000\t0\t-\tclient\t-\t-\tx\n"
		     "unused\t%s\t1000\t0\t-\tclient\t-\t-\ty\n",
		     young_hash, young_hash);
	assert_int_equal(sx_file_write_atomic(path, line, (size_t)n, 0600, &err), 0);
	sx_err_clear(&err);
	assert_int_equal(sx_ca_token_new(f->ca, &c, text, sizeof(text), &err), -1);
	assert_non_null(strstr(err.msg, "repeats a token"));
}

static void test_token_tampered(void **state)
{
	fixture *f = *state;
	char text[SX_TOKEN_TEXT_MAX], bad[SX_TOKEN_TEXT_MAX + 8];
	sx_claims c = claims("cam-t", SX_PROFILE_CLIENT, NULL, NULL), back;
	sx_err err = {0};
	size_t n;

	token_for(f, c, text);
	n = strlen(text);
	/* a character of the nonce changed: still a token, but not one this
	 * CA made */
	snprintf(bad, sizeof(bad), "%s", text);
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	assert_int_equal(sx_token_parse(bad, &back, &err), 0);
	expect_refused(f, bad, &c, "unknown token");

	static const size_t cuts[] = {0, 4, 5, 6, 20};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		snprintf(bad, sizeof(bad), "%.*s", (int)cuts[i], text);
		sx_err_clear(&err);
		assert_int_equal(sx_token_parse(bad, &back, &err), -1);
		assert_int_equal(err.cls, SX_E_USAGE);
	}
	for (size_t cut = 1; cut < 4; cut++) { /* truncated at the end */
		snprintf(bad, sizeof(bad), "%.*s", (int)(n - cut), text);
		sx_err_clear(&err);
		assert_int_equal(sx_token_parse(bad, &back, &err), -1);
		expect_refused(f, bad, &c, "unknown token");
	}
	static const char *const tails[] = {"AAAA", "A", "\n", " ", "="};
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(bad, sizeof(bad), "%s%s", text, tails[i]);
		sx_err_clear(&err);
		assert_int_equal(sx_token_parse(bad, &back, &err), -1);
		assert_int_equal(err.cls, SX_E_USAGE);
	}
	snprintf(bad, sizeof(bad), "sxt2.%s", text + 5);
	assert_int_equal(sx_token_parse(bad, &back, &err), -1);
	snprintf(bad, sizeof(bad), "%s", text);
	bad[7] = '+'; /* base64, not base64url */
	assert_int_equal(sx_token_parse(bad, &back, &err), -1);
	assert_int_equal(sx_token_parse("sxt1.", &back, &err), -1);
	assert_int_equal(sx_token_parse("hello", &back, &err), -1);

	/* the untouched token still works */
	X509 *cert = NULL;
	sx_err_clear(&err);
	assert_int_equal(enroll(f, text, &c, &cert, &err), 0);
	X509_free(cert);
}

static void test_token_reuse_and_expiry(void **state)
{
	fixture *f = *state;
	char text[SX_TOKEN_TEXT_MAX], serial[80];
	sx_claims c = claims("cam-r", SX_PROFILE_CLIENT, NULL, NULL);
	X509 *cert = NULL;
	sx_err err = {0};

	token_for(f, c, text);
	assert_int_equal(enroll(f, text, &c, &cert, &err), 0);
	sx_cert_serial_hex(cert, serial, sizeof(serial));
	X509_free(cert);
	expect_refused(f, text, &c, "token already used");
	char *rec = file_text(f->ca, "tokens.txt");
	assert_non_null(strstr(rec, serial));
	assert_non_null(strstr(rec, "used\t"));
	free(rec);

	sx_claims e = claims("cam-e", SX_PROFILE_CLIENT, NULL, NULL);
	e.expires = time(NULL) + 1;
	token_for(f, e, text);
	sleep(2);
	expect_refused(f, text, &e, "token expired (at ");
}

static void test_mismatch(void **state)
{
	fixture *f = *state;
	char text[SX_TOKEN_TEXT_MAX];
	sx_claims c = claims("srv-m", SX_PROFILE_SERVER, "srv-m.test", "192.0.2.7");
	sx_claims ask = c;
	X509 *cert = NULL;
	sx_err err = {0};

	token_for(f, c, text);
	snprintf(ask.name, sizeof(ask.name), "other");
	expect_refused(f, text, &ask,
		       "the request asks for name 'other'; the token is for 'srv-m'");
	ask = c;
	ask.profile = SX_PROFILE_BOTH;
	expect_refused(f, text, &ask,
		       "the request asks for role 'both'; the token is for 'server'");
	ask = c;
	snprintf(ask.dns[0], sizeof(ask.dns[0]), "evil.test");
	expect_refused(f, text, &ask,
		       "the request asks for subjectAltName 'DNS:evil.test, IP:192.0.2.7'; the "
		       "token is for 'DNS:srv-m.test, IP:192.0.2.7'");
	ask = c;
	ask.nips = 0;
	expect_refused(f, text, &ask, "the request asks for subjectAltName 'DNS:srv-m.test'");
	ask = c;
	snprintf(ask.dns[ask.ndns++], sizeof(ask.dns[0]), "more.test");
	expect_refused(f, text, &ask, "asks for subjectAltName");

	/* refusals left the token unused: no role asked means the token's, and
	 * a DNS name in another case is the same name */
	ask = c;
	ask.has_profile = false;
	snprintf(ask.dns[0], sizeof(ask.dns[0]), "SRV-M.test");
	assert_int_equal(enroll(f, text, &ask, &cert, &err), 0);
	assert_string_equal(sx_cert_role(cert), "server");
	assert_int_equal(X509_check_host(cert, "srv-m.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(cert, "192.0.2.7", 0), 1);
	X509_free(cert);
}

static void test_one_name(void **state)
{
	fixture *f = *state;
	char t1[SX_TOKEN_TEXT_MAX], t2[SX_TOKEN_TEXT_MAX], t3[SX_TOKEN_TEXT_MAX], s1[80], s3[80];
	sx_claims c = claims("cam-dup", SX_PROFILE_CLIENT, NULL, NULL);
	X509 *cert = NULL;
	sx_err err = {0};
	sx_ca_db db = {0};

	token_for(f, c, t1);
	token_for(f, c, t2);
	assert_int_equal(enroll(f, t1, &c, &cert, &err), 0);
	sx_cert_serial_hex(cert, s1, sizeof(s1));
	X509_free(cert);
	expect_refused(f, t2, &c, "name 'cam-dup' already has a valid certificate (serial ");
	c.replace = true;
	token_for(f, c, t3);
	assert_int_equal(enroll(f, t3, &c, &cert, &err), 0);
	sx_cert_serial_hex(cert, s3, sizeof(s3));
	X509_free(cert);
	assert_int_equal(sx_ca_list(f->ca, &db, &err), 0);
	for (size_t i = 0; i < db.n; i++) {
		if (strcmp(db.e[i].serial, s1) == 0) {
			assert_true(db.e[i].revoked_at != 0);
			assert_string_equal(sx_crl_reason_name(db.e[i].reason), "superseded");
		} else if (strcmp(db.e[i].serial, s3) == 0) {
			assert_int_equal(db.e[i].revoked_at, 0);
		}
	}
	sx_ca_db_free(&db);
}

static void test_csr_ask(void **state)
{
	(void)state;
	sx_claims ask = claims("dev-9", SX_PROFILE_SERVER, "dev-9.test", "2001:db8::9"), back;
	sx_err err = {0};
	static const sx_key_type types[] = {SX_KEY_P256, SX_KEY_ED25519};

	for (size_t t = 0; t < 2; t++) {
		X509_REQ *req = csr_for(&ask, types[t]), *again = NULL;
		unsigned char *der = NULL;
		int n = i2d_X509_REQ(req, &der);
		assert_true(n > 0);
		assert_int_equal(sx_csr_from_der(der, (size_t)n, &again, &err), 0);
		assert_int_equal(sx_csr_ask(again, &back, &err), 0);
		assert_string_equal(back.name, "dev-9");
		assert_true(back.has_profile);
		assert_int_equal(back.profile, SX_PROFILE_SERVER);
		assert_int_equal(back.ndns, 1);
		assert_string_equal(back.dns[0], "dev-9.test");
		assert_int_equal(back.nips, 1);
		assert_string_equal(back.ips[0], "2001:db8::9");
		X509_REQ_free(again);
		again = NULL;
		/* bytes after it, too large, empty */
		unsigned char *more = malloc((size_t)n + 1);
		memcpy(more, der, (size_t)n);
		more[n] = 0;
		assert_int_equal(sx_csr_from_der(more, (size_t)n + 1, &again, &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
		assert_int_equal(sx_csr_from_der(more, 1 << 20, &again, &err), -1);
		assert_int_equal(sx_csr_from_der(more, 0, &again, &err), -1);
		/* a broken signature */
		more[n - 3] ^= 0x01;
		sx_err_clear(&err);
		if (sx_csr_from_der(more, (size_t)n, &again, &err) == 0) {
			assert_int_equal(sx_csr_ask(again, &back, &err), -1);
			assert_int_equal(err.cls, SX_E_AUTH);
			assert_non_null(strstr(err.msg, "self-signature does not verify"));
			X509_REQ_free(again);
		}
		free(more);
		OPENSSL_free(der);
		X509_REQ_free(req);
		sx_err_clear(&err);
	}
	/* roles: client, both, none */
	static const sx_profile roles[] = {SX_PROFILE_CLIENT, SX_PROFILE_BOTH};
	for (size_t i = 0; i < 2; i++) {
		ask.profile = roles[i];
		X509_REQ *req = csr_for(&ask, SX_KEY_P256);
		assert_int_equal(sx_csr_ask(req, &back, &err), 0);
		assert_int_equal(back.profile, roles[i]);
		X509_REQ_free(req);
	}
	ask.has_profile = false;
	ask.ndns = ask.nips = 0;
	X509_REQ *req = csr_for(&ask, SX_KEY_P256);
	assert_int_equal(sx_csr_ask(req, &back, &err), 0);
	assert_false(back.has_profile);
	assert_int_equal(back.ndns + back.nips, 0);
	X509_REQ_free(req);
}

/* Issues a certificate for name into the index with the given validity
 * (through ca sign); returns it. */
static X509 *sign_for(const fixture *f, const char *ca, const char *name, time_t nb, time_t na)
{
	char csr[700], out[700];
	sx_ca cax;
	sx_err err = {0};
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	sx_cert_spec spec = {
	    .profile = SX_PROFILE_BOTH, .name = name, .not_before = nb, .not_after = na};
	snprintf(csr, sizeof(csr), "%s/%s.csr", f->dir, name);
	snprintf(out, sizeof(out), "%s/%s", f->dir, name);
	assert_int_equal(mkdir(out, 0700), 0); /* each with its own ca.pem */
	snprintf(out, sizeof(out), "%s/%s/cert.pem", f->dir, name);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &key, &err), 0);
	assert_int_equal(sx_csr_build(key, name, &req, &err), 0);
	assert_int_equal(sx_csr_save(csr, req, &err), 0);
	assert_int_equal(sx_ca_open(ca, &plain, &cax, &err), 0);
	if (sx_ca_sign_csr(&cax, csr, &spec, 0, out, &cert, &err) < 0)
		fail_msg("sign: %s", err.msg);
	sx_ca_close(&cax);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return cert;
}

static void renew_refused(fixture *f, X509 *cur, const char *msg)
{
	sx_claims any = claims("whatever", SX_PROFILE_CLIENT, NULL, NULL);
	X509_REQ *req = csr_for(&any, SX_KEY_P256);
	X509 *cert = NULL;
	sx_err err = {0};
	assert_int_equal(sx_ca_svc_renew(f->svc, cur, req, &cert, &err), -1);
	assert_null(cert);
	assert_int_equal(err.cls, SX_E_AUTH);
	if (strstr(err.msg, msg) == NULL)
		fail_msg("expected '%s', got '%s'", msg, err.msg);
	X509_REQ_free(req);
}

static void test_renew(void **state)
{
	fixture *f = *state;
	char text[SX_TOKEN_TEXT_MAX], other[700], s_old[80];
	sx_claims c = claims("srv-r", SX_PROFILE_SERVER, "srv-r.test", "10.9.9.9");
	X509 *cur = NULL, *renewed = NULL;
	X509_REQ *req;
	sx_err err = {0};
	sx_ca cax;
	time_t now = time(NULL);

	token_for(f, c, text);
	assert_int_equal(enroll(f, text, &c, &cur, &err), 0);
	req = csr_for(&c, SX_KEY_ED25519);
	assert_int_equal(sx_ca_svc_renew(f->svc, cur, req, &renewed, &err), 0);
	/* the same name, role, SANs and lifetime; the request's key */
	char a[512], b[512];
	sx_cert_sans(cur, a, sizeof(a));
	sx_cert_sans(renewed, b, sizeof(b));
	assert_string_equal(a, b);
	assert_string_equal(sx_cert_role(renewed), "server");
	assert_int_equal(sx_cert_name(renewed, a, sizeof(a), &err), 0);
	assert_string_equal(a, "srv-r");
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(renewed), X509_REQ_get0_pubkey(req)), 1);
	int d1, s1, d2, s2;
	assert_int_equal(
	    ASN1_TIME_diff(&d1, &s1, X509_get0_notBefore(cur), X509_get0_notAfter(cur)), 1);
	assert_int_equal(
	    ASN1_TIME_diff(&d2, &s2, X509_get0_notBefore(renewed), X509_get0_notAfter(renewed)), 1);
	assert_int_equal(d1 * 86400 + s1, d2 * 86400 + s2);
	sx_policy pol = {.anchors = sk_X509_new_null()};
	sk_X509_push(pol.anchors, sx_ca_svc_root(f->svc));
	assert_int_equal(sx_policy_check(&pol, renewed, NULL, SX_ROLE_SERVER, "srv-r.test", &err),
			 0);
	sk_X509_free(pol.anchors);
	X509_free(renewed);
	X509_REQ_free(req);

	/* revoked: refused */
	sx_cert_serial_hex(cur, s_old, sizeof(s_old));
	assert_int_equal(sx_ca_open(f->ca, &plain, &cax, &err), 0);
	assert_int_equal(sx_ca_revoke(&cax, s_old, 1, &err), 0);
	sx_ca_close(&cax);
	renew_refused(f, cur, "certificate is revoked (serial ");
	X509_free(cur);

	/* expired: refused */
	cur = sign_for(f, f->ca, "old-one", now - 20 * 86400, now - 86400);
	renew_refused(f, cur, "certificate has expired (notAfter ");
	X509_free(cur);

	/* from another CA: refused */
	snprintf(other, sizeof(other), "%s/other-ca", f->dir);
	assert_int_equal(sx_ca_init(other, "enroll CA", SX_KEY_P256, 0, &plain, &err), 0);
	cur = sign_for(f, other, "foreign", 0, 0);
	renew_refused(f, cur, "not issued by this CA");
	X509_free(cur);
}

static void test_crl(void **state)
{
	fixture *f = *state;
	X509_CRL *crl = NULL;
	sx_err err = {0};
	sx_ca cax;
	time_t before = time(NULL), t = 0;
	struct tm tm;

	assert_int_equal(sx_ca_svc_crl(f->svc, &crl, &err), 0);
	assert_null(crl); /* none yet */
	assert_int_equal(sx_ca_open(f->ca, &plain, &cax, &err), 0);
	assert_int_equal(sx_ca_crl(&cax, 0, &crl, &err), 0);
	sx_ca_close(&cax);
	/* thisUpdate is backdated like a certificate's notBefore */
	assert_int_equal(ASN1_TIME_to_tm(X509_CRL_get0_lastUpdate(crl), &tm), 1);
	t = timegm(&tm);
	assert_true(t <= before - SX_BACKDATE_SECONDS + 1);
	assert_true(t >= before - SX_BACKDATE_SECONDS - 5);
	X509_CRL_free(crl);
	assert_int_equal(sx_ca_svc_crl(f->svc, &crl, &err), 0);
	X509_CRL_free(crl);
}

typedef struct job {
	fixture *f;
	char text[SX_TOKEN_TEXT_MAX];
	sx_claims c;
	X509 *cert;
	sx_err err;
} job;

static void *enroll_thread(void *arg)
{
	job *j = arg;
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	if (sx_key_generate(SX_KEY_P256, &key, &j->err) == 0 &&
	    sx_csr_build_ask(key, &j->c, &req, &j->err) == 0 &&
	    sx_ca_svc_enroll(j->f->svc, j->text, req, &j->cert, &j->err) < 0)
		j->cert = NULL; /* the message is in j->err */
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return NULL;
}

static void test_threads(void **state)
{
	fixture *f = *state;
	job *jobs = calloc(NTHREADS, sizeof(*jobs));
	pthread_t tid[NTHREADS];
	sx_ca_db db = {0};
	sx_err err = {0};
	char serial[80];

	for (int i = 0; i < NTHREADS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "fleet-%03d", i);
		jobs[i].f = f;
		jobs[i].c = claims(name, i % 2 ? SX_PROFILE_CLIENT : SX_PROFILE_BOTH, NULL, NULL);
		token_for(f, jobs[i].c, jobs[i].text);
	}
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, enroll_thread, &jobs[i]), 0);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	assert_int_equal(sx_ca_list(f->ca, &db, &err), 0);
	size_t fleet = 0;
	for (size_t i = 0; i < db.n; i++)
		fleet += strncmp(db.e[i].name, "fleet-", 6) == 0;
	assert_int_equal(fleet, NTHREADS);
	char *rec = file_text(f->ca, "tokens.txt");
	for (int i = 0; i < NTHREADS; i++) {
		if (jobs[i].cert == NULL)
			fail_msg("thread %d: %s", i, jobs[i].err.msg);
		sx_cert_serial_hex(jobs[i].cert, serial, sizeof(serial));
		for (int k = 0; k < i; k++) {
			char other[80];
			sx_cert_serial_hex(jobs[k].cert, other, sizeof(other));
			assert_string_not_equal(serial, other);
		}
		size_t hits = 0;
		for (size_t e = 0; e < db.n; e++)
			hits += strcmp(db.e[e].serial, serial) == 0 &&
				strcmp(db.e[e].name, jobs[i].c.name) == 0;
		assert_int_equal(hits, 1);
		assert_non_null(strstr(rec, serial)); /* the token records it */
		X509_free(jobs[i].cert);
	}
	assert_null(strstr(rec, "unused\t"));
	free(rec);
	sx_ca_db_free(&db);
	free(jobs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_token_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_tampered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_reuse_and_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_name, setup, teardown),
	    cmocka_unit_test(test_csr_ask),
	    cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
