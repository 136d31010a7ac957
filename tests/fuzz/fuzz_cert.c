/* Certificate and CRL loading (pki/cert.c, pki/crl.c): PEM files an
 * identity folder holds, and what sxfer reads out of a certificate for its
 * messages and decisions (name, subject, SANs, role, serial, fingerprint,
 * key strength, the validation policy). The input is the file. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inspect(X509 *x, STACK_OF(X509) * chain)
{
	const sx_identity *srv, *cli;
	char buf[1024], fp[65];
	sx_err err = {0};
	fz_identities(&srv, &cli);
	sx_policy pol = {.anchors = srv->anchors};
	if (sx_cert_name(x, buf, sizeof(buf), &err) == 0)
		FZ_CHECK(strlen(buf) < sizeof(buf));
	sx_cert_subject(x, buf, sizeof(buf));
	sx_cert_sans(x, buf, sizeof(buf));
	FZ_CHECK(sx_cert_role(x) != NULL);
	sx_cert_serial_hex(x, buf, sizeof(buf));
	uint8_t fpb[SX_CERT_FP_LEN];
	FZ_CHECK(sx_cert_fp(x, fpb, &err) == 0);
	sx_hex(fpb, sizeof(fpb), fp);
	FZ_CHECK(strlen(fp) == 64);
	sx_asn1_time_format(X509_get0_notAfter(x), buf, sizeof(buf));
	EVP_PKEY *key = X509_get0_pubkey(x);
	if (key != NULL) {
		sx_key_describe(key, buf, sizeof(buf));
		(void)sx_key_check_strength(key, &err);
	}
	sx_err_clear(&err);
	/* Not issued by the in-memory CA: the policy must refuse it. */
	FZ_CHECK(sx_policy_check(&pol, x, chain, SX_ROLE_ANY, NULL, &err) < 0);
	FZ_CHECK(err.cls != SX_OK);
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fz_memfile(data, size);
	STACK_OF(X509) *certs = NULL;
	X509_CRL *crl = NULL;
	sx_err err = {0};
	if (sx_certs_load(path, &certs, &err) == 0) {
		FZ_CHECK(sk_X509_num(certs) > 0);
		for (int i = 0; i < sk_X509_num(certs); i++)
			inspect(sk_X509_value(certs, i), certs);
		sk_X509_pop_free(certs, X509_free);
	} else {
		FZ_CHECK(certs == NULL && err.cls != SX_OK);
	}
	sx_err_clear(&err);
	if (sx_crl_load(path, &crl, &err) == 0) {
		const sx_identity *srv, *cli;
		fz_identities(&srv, &cli);
		/* A CRL the anchor did not sign is refused by the policy. */
		sx_policy pol = {.anchors = srv->anchors, .crl = crl};
		FZ_CHECK(sx_policy_check(&pol, sk_X509_value(srv->chain, 0), NULL, SX_ROLE_SERVER,
					 NULL, &err) < 0);
		X509_CRL_free(crl);
	}
	ERR_clear_error();
	return 0;
}
