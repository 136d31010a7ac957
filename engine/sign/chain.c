/* engine/sign/chain: the signer's certificate chain that follows the
 * armor of a .sxsig or a receipt: written as PEM, read back strictly, and
 * checked through the one validation policy of pki/. */
#include "engine/sign/sign_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

void sx_tb_chain(sx_tbuf *t, STACK_OF(X509) * chain)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	if (b == NULL) {
		t->fail = true;
		return;
	}
	for (int i = 0; i < sk_X509_num(chain); i++)
		if (PEM_write_bio_X509(b, sk_X509_value(chain, i)) != 1)
			t->fail = true;
	long n = BIO_get_mem_data(b, &data);
	if (n > 0)
		sx_tb_add(t, data, (size_t)n);
	BIO_free(b);
}

/* A certificate of a chain, in the one spelling PEM_write_bio_X509 gives
 * (RFC 7468 section 3, strict): the BEGIN line, the base64 of the DER in
 * lines of exactly 64 characters (the last one 4 to 64), the END line; the
 * base64 is canonical, the DER is consumed exactly and re-encodes to the
 * same bytes. */
#define PEM_CERT_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_CERT_END   "-----END CERTIFICATE-----"
#define PEM_LINE       64
#define CERT_DER_MAX   16384 /* one certificate of a chain */
#define CERT_B64_MAX   (4 * ((CERT_DER_MAX + 2) / 3))

static int read_cert(sx_cur *c, int i, X509 **out, const char *who, sx_err *err)
{
	int rc = -1, e, m, el;
	size_t n = 0, pad;
	uint8_t *b64 = malloc(CERT_B64_MAX + 1), *back = malloc(CERT_B64_MAX + 1);
	uint8_t *der = malloc(CERT_B64_MAX), *enc = NULL;
	const uint8_t *p;
	sx_cur l;
	X509 *x = NULL;
	bool last = false;
	SX_ENSURE(b64 != NULL && back != NULL && der != NULL, err, SX_E_OTHER, "out of memory");
	for (;;) {
		e = sx_next_line(c, &l);
		SX_ENSURE(e == 0, err, SX_E_INTEGRITY, "the %s's certificate %d: %s", who, i + 1,
			  e == LINE_TRUNCATED ? "truncated" : sx_line_err_text(e));
		if (sx_text_is(&l, PEM_CERT_END))
			break;
		size_t ln = sx_cur_left(&l);
		/* Only the last line of the base64 is shorter than 64. */
		SX_ENSURE(!last && ln >= 1 && ln <= PEM_LINE && ln <= CERT_B64_MAX - n, err,
			  SX_E_INTEGRITY, "the %s's certificate %d is not strict PEM", who, i + 1);
		last = ln < PEM_LINE;
		sx_text_rest(&l, &p, &ln);
		memcpy(b64 + n, p, ln);
		n += ln;
	}
	SX_ENSURE(n > 0 && n % 4 == 0, err, SX_E_INTEGRITY,
		  "the %s's certificate %d is not strict PEM", who, i + 1);
	pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
	m = EVP_DecodeBlock(der, b64, (int)n);
	SX_ENSURE(m >= 0 && (size_t)m >= pad, err, SX_E_INTEGRITY,
		  "the %s's certificate %d is not canonical base64", who, i + 1);
	m -= (int)pad;
	SX_ENSURE(EVP_EncodeBlock(back, der, m) == (int)n && memcmp(back, b64, n) == 0, err,
		  SX_E_INTEGRITY, "the %s's certificate %d is not canonical base64", who, i + 1);
	p = der;
	x = d2i_X509(NULL, &p, m);
	SX_ENSURE(x != NULL && p == der + m, err, SX_E_INTEGRITY,
		  "the %s's certificate %d is not one DER certificate", who, i + 1);
	el = i2d_X509(x, &enc);
	SX_ENSURE(el == m && memcmp(enc, der, (size_t)m) == 0, err, SX_E_INTEGRITY,
		  "the %s's certificate %d is not in DER", who, i + 1);
	*out = x;
	x = NULL;
	rc = 0;
out:
	if (rc < 0)
		ERR_clear_error();
	OPENSSL_free(enc);
	X509_free(x);
	free(b64);
	free(back);
	free(der);
	return rc;
}

/* The chain after the END line: 1 to SX_CHAIN_MAX certificates, and the
 * text ends right after the last one. */
int sx_chain_read(sx_cur *c, STACK_OF(X509) * *out, const char *who, sx_err *err)
{
	int rc = -1, e;
	X509 *x = NULL;
	STACK_OF(X509) *sk = sk_X509_new_null();
	sx_cur l;
	SX_ENSURE(sk != NULL, err, SX_E_OTHER, "out of memory");
	while (sx_cur_left(c) > 0) {
		e = sx_next_line(c, &l);
		SX_ENSURE(e == 0 || e == LINE_TRUNCATED, err, SX_E_INTEGRITY,
			  "the %s's certificate chain: %s", who, sx_line_err_text(e));
		bool begin = e == 0 && sx_text_is(&l, PEM_CERT_BEGIN);
		SX_ENSURE(begin || sk_X509_num(sk) > 0, err, SX_E_INTEGRITY,
			  "the %s's certificate chain is missing", who);
		SX_ENSURE(begin, err, SX_E_INTEGRITY, "text after the %s's certificate chain", who);
		SX_ENSURE(sk_X509_num(sk) < SX_CHAIN_MAX, err, SX_E_INTEGRITY,
			  "the %s's certificate chain has more than %d certificates", who,
			  SX_CHAIN_MAX);
		SX_GUARD(read_cert(c, sk_X509_num(sk), &x, who, err));
		SX_ENSURE(sk_X509_push(sk, x) > 0, err, SX_E_OTHER, "out of memory");
		x = NULL;
	}
	SX_ENSURE(sk_X509_num(sk) >= 1, err, SX_E_INTEGRITY,
		  "the %s's certificate chain is missing", who);
	*out = sk;
	sk = NULL;
	rc = 0;
out:
	X509_free(x);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* Runs the one validation policy on chain[0] with the rest as
 * intermediates. */
int sx_chain_policy(const sx_policy *pol, STACK_OF(X509) * chain, sx_role role, const char *who,
		    sx_err *err)
{
	int rc = -1;
	STACK_OF(X509) *inter = sk_X509_new_null();
	SX_ENSURE(inter != NULL, err, SX_E_OTHER, "out of memory");
	SX_ENSURE(sk_X509_num(chain) >= 1, err, SX_E_AUTH, "%s certificate: missing", who);
	for (int i = 1; i < sk_X509_num(chain); i++)
		SX_ENSURE(sk_X509_push(inter, sk_X509_value(chain, i)) > 0, err, SX_E_OTHER,
			  "out of memory");
	if (sx_policy_check(pol, sk_X509_value(chain, 0), inter, role, NULL, err) < 0) {
		sx_err_prefix(err, "%s certificate: ", who);
		goto out;
	}
	rc = 0;
out:
	sk_X509_free(inter);
	return rc;
}
