/* sx_policy_check: certificates built in memory with explicit times; each
 * failure has its own reason and SX_E_AUTH. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"

#define DAY 86400

typedef struct pki_fixture {
	EVP_PKEY *ca_key, *leaf_key, *other_key;
	X509 *ca, *other_ca;
	STACK_OF(X509) * anchors;
	time_t now;
} pki_fixture;

static X509 *make_cert(sx_profile profile, const char *name, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key, time_t nb, time_t na)
{
	static const char *const dns[] = {"server.test"};
	static const char *const ips[] = {"192.0.2.7"};
	sx_cert_spec spec = {.profile = profile,
			     .name = name,
			     .dns = dns,
			     .ndns = profile == SX_PROFILE_CA ? 0 : 1,
			     .ips = ips,
			     .nips = profile == SX_PROFILE_CA ? 0 : 1,
			     .not_before = nb,
			     .not_after = na};
	sx_err err = {0};
	X509 *x = NULL;
	assert_int_equal(sx_cert_build(&spec, key, issuer, issuer_key, &x, &err), 0);
	return x;
}

static int setup(void **state)
{
	pki_fixture *f = calloc(1, sizeof(*f));
	sx_err err = {0};
	f->now = time(NULL);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &f->ca_key, &err), 0);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &f->leaf_key, &err), 0);
	assert_int_equal(sx_key_generate(SX_KEY_ED25519, &f->other_key, &err), 0);
	f->ca = make_cert(SX_PROFILE_CA, "Unit CA", f->ca_key, NULL, f->ca_key, f->now - 10 * DAY,
			  f->now + 3650 * DAY);
	f->other_ca = make_cert(SX_PROFILE_CA, "Other CA", f->other_key, NULL, f->other_key,
				f->now - 10 * DAY, f->now + 3650 * DAY);
	f->anchors = sk_X509_new_null();
	X509_up_ref(f->ca);
	sk_X509_push(f->anchors, f->ca);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	pki_fixture *f = *state;
	sk_X509_pop_free(f->anchors, X509_free);
	X509_free(f->ca);
	X509_free(f->other_ca);
	EVP_PKEY_free(f->ca_key);
	EVP_PKEY_free(f->leaf_key);
	EVP_PKEY_free(f->other_key);
	free(f);
	return 0;
}

static void expect_fail(const sx_policy *pol, X509 *leaf, sx_role role, const char *name,
			const char *reason)
{
	sx_err err = {0};
	assert_int_equal(sx_policy_check(pol, leaf, NULL, role, name, &err), -1);
	assert_int_equal(err.cls, SX_E_AUTH);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("expected '%s' in '%s'", reason, err.msg);
}

static void test_good_and_time(void **state)
{
	pki_fixture *f = *state;
	sx_policy pol = {.anchors = f->anchors};
	sx_err err = {0};
	X509 *leaf = make_cert(SX_PROFILE_SERVER, "server.test", f->leaf_key, f->ca, f->ca_key,
			       f->now - DAY, f->now + 30 * DAY);
	assert_int_equal(sx_policy_check(&pol, leaf, NULL, SX_ROLE_SERVER, "server.test", &err), 0);
	assert_int_equal(sx_policy_check(&pol, leaf, NULL, SX_ROLE_SERVER, "192.0.2.7", &err), 0);
	assert_int_equal(sx_policy_check(&pol, leaf, NULL, SX_ROLE_ANY, NULL, &err), 0);
	pol.now = f->now + 31 * DAY;
	expect_fail(&pol, leaf, SX_ROLE_SERVER, NULL, "CN=server.test: certificate has expired");
	pol.now = f->now - 2 * DAY;
	expect_fail(&pol, leaf, SX_ROLE_SERVER, NULL,
		    "CN=server.test: certificate is not yet valid");
	X509_free(leaf);
	/* a certificate built with past times, checked at the current time */
	pol.now = 0;
	leaf = make_cert(SX_PROFILE_CLIENT, "old", f->leaf_key, f->ca, f->ca_key, f->now - 9 * DAY,
			 f->now - DAY);
	expect_fail(&pol, leaf, SX_ROLE_CLIENT, NULL, "certificate has expired (notAfter ");
	X509_free(leaf);
}

static void test_chain_eku_name(void **state)
{
	pki_fixture *f = *state;
	sx_policy pol = {.anchors = f->anchors};
	X509 *other = make_cert(SX_PROFILE_SERVER, "server.test", f->leaf_key, f->other_ca,
				f->other_key, f->now - DAY, f->now + DAY);
	expect_fail(&pol, other, SX_ROLE_SERVER, NULL, "not issued by the trusted CA");
	X509 *self = make_cert(SX_PROFILE_SERVER, "self", f->leaf_key, NULL, f->leaf_key,
			       f->now - DAY, f->now + DAY);
	expect_fail(&pol, self, SX_ROLE_SERVER, NULL, "self-signed certificate");
	X509 *client = make_cert(SX_PROFILE_CLIENT, "client", f->leaf_key, f->ca, f->ca_key,
				 f->now - DAY, f->now + DAY);
	expect_fail(&pol, client, SX_ROLE_SERVER, NULL, "lacks extendedKeyUsage serverAuth");
	X509 *server = make_cert(SX_PROFILE_SERVER, "server.test", f->leaf_key, f->ca, f->ca_key,
				 f->now - DAY, f->now + DAY);
	expect_fail(&pol, server, SX_ROLE_CLIENT, NULL, "lacks extendedKeyUsage clientAuth");
	/* a signer (of a batch or a receipt) may be either */
	sx_err serr = {0};
	assert_int_equal(sx_policy_check(&pol, server, NULL, SX_ROLE_SIGNER, NULL, &serr), 0);
	assert_int_equal(sx_policy_check(&pol, client, NULL, SX_ROLE_SIGNER, NULL, &serr), 0);
	expect_fail(&pol, server, SX_ROLE_SERVER, "evil.test",
		    "name 'evil.test' does not match the certificate's subjectAltName");
	expect_fail(&pol, server, SX_ROLE_SERVER, "192.0.2.8", "name '192.0.2.8' does not match");
	/* no CN fallback: the CN of a client certificate is not a host name */
	expect_fail(&pol, client, SX_ROLE_CLIENT, "client", "does not match");
	/* a CA certificate presented as a leaf */
	expect_fail(&pol, f->ca, SX_ROLE_ANY, NULL, "leaf certificate claims CA:TRUE");
	/* no anchors */
	sx_policy none = {0};
	expect_fail(&none, server, SX_ROLE_ANY, NULL, "no trust anchor");
	X509_free(other);
	X509_free(self);
	X509_free(client);
	X509_free(server);
}

static void test_weak_key(void **state)
{
	pki_fixture *f = *state;
	sx_policy pol = {.anchors = f->anchors};
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_non_null(weak);
	X509 *leaf = make_cert(SX_PROFILE_SERVER, "weak", weak, f->ca, f->ca_key, f->now - DAY,
			       f->now + DAY);
	expect_fail(&pol, leaf, SX_ROLE_SERVER, NULL, "weak key: RSA 1024 bits");
	X509_free(leaf);
	EVP_PKEY_free(weak);
	EVP_PKEY *p224 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
	assert_non_null(p224);
	sx_err err = {0};
	assert_int_equal(sx_key_check_strength(p224, &err), -1);
	assert_non_null(strstr(err.msg, "weak key: EC curve"));
	EVP_PKEY_free(p224);
}

static void test_crl(void **state)
{
	pki_fixture *f = *state;
	sx_err err = {0};
	X509 *good = make_cert(SX_PROFILE_CLIENT, "good", f->leaf_key, f->ca, f->ca_key,
			       f->now - DAY, f->now + 30 * DAY);
	X509 *bad = make_cert(SX_PROFILE_CLIENT, "bad", f->leaf_key, f->ca, f->ca_key, f->now - DAY,
			      f->now + 30 * DAY);
	BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(bad), NULL);
	sx_revoked rev = {.serial = serial, .when = f->now - 60, .reason = 1};
	X509_CRL *crl = NULL, *other_crl = NULL;
	assert_int_equal(
	    sx_crl_build(f->ca, f->ca_key, &rev, 1, 5, f->now - 60, f->now + 7 * DAY, &crl, &err),
	    0);
	sx_policy pol = {.anchors = f->anchors, .crl = crl};
	assert_int_equal(sx_policy_check(&pol, good, NULL, SX_ROLE_CLIENT, NULL, &err), 0);
	expect_fail(&pol, bad, SX_ROLE_CLIENT, NULL, "certificate is revoked (serial ");
	expect_fail(&pol, bad, SX_ROLE_CLIENT, NULL, "reason keyCompromise");
	pol.now = f->now + 8 * DAY;
	expect_fail(&pol, good, SX_ROLE_CLIENT, NULL,
		    "CRL issued by CN=Unit CA is stale (nextUpdate");
	/* a CRL signed by another key but naming the CA */
	assert_int_equal(sx_crl_build(f->ca, f->other_key, NULL, 0, 6, f->now - 60,
				      f->now + 7 * DAY, &other_crl, &err),
			 0);
	pol.now = 0;
	pol.crl = other_crl;
	expect_fail(&pol, good, SX_ROLE_CLIENT, NULL, "CRL signature does not verify");
	X509_CRL_free(crl);
	X509_CRL_free(other_crl);
	BN_free(serial);
	X509_free(good);
	X509_free(bad);
}

static void test_cert_profile(void **state)
{
	pki_fixture *f = *state;
	X509 *leaf =
	    make_cert(SX_PROFILE_BOTH, "both", f->leaf_key, f->ca, f->ca_key, f->now, f->now + DAY);
	assert_string_equal(sx_cert_role(leaf), "both");
	assert_string_equal(sx_cert_role(f->ca), "CA");
	/* 128-bit positive serial, DER at most 16 bytes of content */
	const ASN1_INTEGER *s = X509_get0_serialNumber(leaf);
	assert_true(ASN1_STRING_length(s) <= 16);
	assert_true(ASN1_STRING_length(s) >= 14);
	assert_int_equal(ASN1_STRING_type(s), V_ASN1_INTEGER);
	assert_non_null(X509_get0_subject_key_id(leaf));
	assert_non_null(X509_get0_authority_key_id(leaf));
	assert_int_equal(X509_check_issued(f->ca, leaf), X509_V_OK);
	uint8_t fpb[SX_CERT_FP_LEN];
	char fp[SX_CERT_FP_HEX_LEN];
	sx_err err = {0};
	assert_int_equal(sx_cert_fp(leaf, fpb, &err), 0);
	sx_hex(fpb, sizeof(fpb), fp);
	assert_int_equal(strlen(fp), 64);
	X509_free(leaf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_and_time), cmocka_unit_test(test_chain_eku_name),
	    cmocka_unit_test(test_weak_key),	  cmocka_unit_test(test_crl),
	    cmocka_unit_test(test_cert_profile),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
