/* Certificate lifetimes (renewal due at two thirds) and CRL numbers and
 * issuers as verifiers check them. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/sx_ca.h"

static void test_lifetime(void **state)
{
	(void)state;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	sx_err err = {0};
	const time_t t0 = 1800000000;
	sx_cert_spec spec = {.profile = SX_PROFILE_CLIENT,
			     .name = "cam-01",
			     .not_before = t0,
			     .not_after = t0 + 300 * 86400};
	sx_lifetime l;
	char text[128];

	assert_int_equal(sx_key_generate(SX_KEY_P256, &key, &err), 0);
	assert_int_equal(sx_cert_build(&spec, key, NULL, key, &cert, &err), 0);
	sx_cert_lifetime(cert, t0 + 100 * 86400, &l);
	assert_int_equal(l.total, 300LL * 86400);
	assert_int_equal(l.left, 200LL * 86400);
	assert_false(sx_lifetime_renew_due(&l));
	sx_lifetime_describe(&l, text, sizeof(text));
	assert_string_equal(text, "200 days left (66% of 300 days)");

	/* exactly a third left is not due yet; a second later it is */
	sx_cert_lifetime(cert, t0 + 200 * 86400, &l);
	assert_false(sx_lifetime_renew_due(&l));
	sx_cert_lifetime(cert, t0 + 200 * 86400 + 1, &l);
	assert_true(sx_lifetime_renew_due(&l));

	sx_cert_lifetime(cert, t0 + 303 * 86400, &l);
	assert_true(sx_lifetime_renew_due(&l));
	sx_lifetime_describe(&l, text, sizeof(text));
	assert_string_equal(text, "expired 3 days ago (lifetime 300 days)");

	sx_cert_lifetime(cert, t0 + 300 * 86400 - 90, &l);
	sx_lifetime_describe(&l, text, sizeof(text));
	assert_string_equal(text, "90 seconds left (0% of 300 days)");
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* A CRL of one CA: its number, its signature against the anchors of the
 * same CA, of another CA, and of a CA of the same name but another key. */
static void test_crl_number_and_issuer(void **state)
{
	(void)state;
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	X509 *ca1 = NULL, *ca2 = NULL, *ca1b = NULL;
	X509_CRL *crl = NULL;
	sx_err err = {0};
	time_t now = time(NULL);
	sx_cert_spec s1 = {.profile = SX_PROFILE_CA,
			   .name = "CA one",
			   .not_before = now - 60,
			   .not_after = now + 86400};
	sx_cert_spec s2 = s1;
	s2.name = "CA two";
	STACK_OF(X509) *anchors = sk_X509_new_null();
	uint64_t n = 0;

	assert_int_equal(sx_key_generate(SX_KEY_P256, &k1, &err), 0);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &k2, &err), 0);
	assert_int_equal(sx_cert_build(&s1, k1, NULL, k1, &ca1, &err), 0);
	assert_int_equal(sx_cert_build(&s2, k2, NULL, k2, &ca2, &err), 0);
	assert_int_equal(sx_cert_build(&s1, k2, NULL, k2, &ca1b, &err), 0);
	assert_int_equal(sx_crl_build(ca1, k1, NULL, 0, 41, now - 300, now + 86400, &crl, &err), 0);
	assert_int_equal(sx_crl_number(crl, &n, &err), 0);
	assert_int_equal(n, 41);

	assert_int_equal(sk_X509_push(anchors, ca2), 1);
	assert_int_equal(sx_crl_verify_anchors(crl, anchors, &err), -1);
	assert_int_equal(err.cls, SX_E_AUTH);
	assert_non_null(strstr(err.msg, "not a trust anchor"));
	sx_err_clear(&err);
	assert_int_equal(sk_X509_push(anchors, ca1b), 2);
	assert_int_equal(sx_crl_verify_anchors(crl, anchors, &err), -1);
	assert_non_null(strstr(err.msg, "does not verify"));
	sx_err_clear(&err);
	/* the same name under another key first, then the issuer: found */
	assert_int_equal(sk_X509_push(anchors, ca1), 3);
	assert_int_equal(sx_crl_verify_anchors(crl, anchors, &err), 0);

	sk_X509_free(anchors);
	X509_CRL_free(crl);
	X509_free(ca1);
	X509_free(ca2);
	X509_free(ca1b);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lifetime),
	    cmocka_unit_test(test_crl_number_and_issuer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
