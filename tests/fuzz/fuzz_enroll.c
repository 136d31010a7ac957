/* The enrollment messages (docs/PROTOCOL.md "Enrollment"): what the
 * service reads from any client that completed a handshake, and what a
 * client reads from the service. Property: a message that decodes encodes
 * back to exactly the same bytes (the format has no slack); the CSR of a
 * request goes where the service hands it (sx_csr_from_der, sx_csr_ask),
 * the certificates and CRL of an answer where the client does. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "engine/enroll/sx_enroll.h"
#include "pki/sx_ca.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_der(const uint8_t *p, size_t n, bool crl)
{
	const unsigned char *q = p;
	if (crl) {
		X509_CRL_free(d2i_X509_CRL(NULL, &q, (long)n));
		return;
	}
	X509_free(d2i_X509(NULL, &q, (long)n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[SX_ENROLL_REPLY_MAX];
	sx_enroll_msg m;
	sx_err err = {0};
	if (sx_enroll_msg_decode(data, size, &m, &err) < 0) {
		FZ_CHECK(err.cls == SX_E_INTEGRITY && err.msg[0] != '\0');
		return 0;
	}
	size_t n = sx_enroll_msg_encode(&m, again, sizeof(again));
	FZ_CHECK(n == size && memcmp(again, data, size) == 0);
	if (m.csr_len > 0) {
		X509_REQ *req = NULL;
		sx_claims ask;
		if (sx_csr_from_der(m.csr, m.csr_len, &req, &err) == 0 &&
		    sx_csr_ask(req, &ask, &err) < 0)
			FZ_CHECK(err.cls != SX_OK);
		X509_REQ_free(req);
	}
	if (m.type == SX_EMSG_ISSUED) {
		parse_der(m.leaf, m.leaf_len, false);
		parse_der(m.root, m.root_len, false);
	}
	if (m.crl_len > 0)
		parse_der(m.crl, m.crl_len, true);
	ERR_clear_error();
	return 0;
}
