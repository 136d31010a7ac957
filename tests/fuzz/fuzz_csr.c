/* Certificate signing requests (`sxfer ca sign --csr FILE`): the PEM
 * request, its self-signature, and what the CA reads from it before it
 * issues (the common name, the key and its strength), and what an enrolling
 * device's request asks for (name, role, SANs: sx_csr_ask), also from its
 * DER form as the enrollment service receives it. The input is the file. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "pki/sx_ca.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_REQ *req = NULL;
	char name[SX_CN_MAX + 1], desc[128];
	sx_err err = {0};
	if (sx_csr_load(fz_memfile(data, size), &req, &err) < 0) {
		FZ_CHECK(req == NULL && err.cls != SX_OK);
		ERR_clear_error();
		return 0;
	}
	EVP_PKEY *key = X509_REQ_get0_pubkey(req);
	FZ_CHECK(key != NULL);
	if (sx_csr_name(req, name, sizeof(name), &err) == 0) {
		FZ_CHECK(strlen(name) < sizeof(name));
		(void)sx_name_check(name, &err);
	}
	sx_claims *ask = calloc(1, sizeof(*ask));
	FZ_CHECK(ask != NULL);
	if (sx_csr_ask(req, ask, &err) == 0) {
		FZ_CHECK(memchr(ask->name, '\0', sizeof(ask->name)) != NULL);
		FZ_CHECK(ask->ndns <= SX_TOKEN_SAN_MAX && ask->nips <= SX_TOKEN_SAN_MAX);
	}
	free(ask);
	unsigned char *der = NULL;
	int dlen = i2d_X509_REQ(req, &der);
	X509_REQ *again = NULL;
	FZ_CHECK(dlen > 0);
	/* what loaded encodes again, and the DER reads back (up to its bound) */
	if (sx_csr_from_der(der, (size_t)dlen, &again, &err) == 0)
		FZ_CHECK(X509_REQ_get0_pubkey(again) != NULL);
	else
		FZ_CHECK(dlen > 64 * 1024);
	X509_REQ_free(again);
	OPENSSL_free(der);
	sx_key_describe(key, desc, sizeof(desc));
	(void)sx_key_check_strength(key, &err);
	X509_REQ_free(req);
	ERR_clear_error();
	return 0;
}
