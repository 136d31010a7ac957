/* The `.sxsig` text format (docs/SIGNATURES.md ".sxsig"), read by `sxfer
 * verify` from files anyone may hand it. Properties: what decodes is
 * canonical up to the certificate chain (encoding it gives the same text
 * before the chain); decode, encode, decode gives the same signature (every
 * field and the chain), and the two encodings are byte for byte the same. What decodes is also
 * verified as `sxfer verify` would (statement, proof, chain, signature). */
#include <stdlib.h>
#include <string.h>

#include "engine/sign/sx_manifest.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_chain(STACK_OF(X509) * a, STACK_OF(X509) * b)
{
	if (sk_X509_num(a) != sk_X509_num(b))
		return false;
	for (int i = 0; i < sk_X509_num(a); i++)
		if (X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)) != 0)
			return false;
	return true;
}

static void same_sxsig(const sx_sxsig *a, const sx_sxsig *b)
{
	FZ_CHECK(same_chain(a->chain, b->chain));
	/* Both were zeroed by the decoder before it filled them in. */
	sx_sxsig *x = malloc(sizeof(*x)), *y = malloc(sizeof(*y));
	FZ_CHECK(x != NULL && y != NULL);
	memcpy(x, a, sizeof(*x));
	memcpy(y, b, sizeof(*y));
	x->chain = y->chain = NULL;
	FZ_CHECK(memcmp(x, y, sizeof(*x)) == 0);
	free(x);
	free(y);
}

static void verify(const sx_sxsig *s)
{
	const sx_identity *srv, *cli;
	uint8_t stmt[SX_STMT_CHECKPOINT_MAX];
	size_t len;
	char signer[256];
	sx_err err = {0};
	fz_identities(&srv, &cli);
	sx_policy pol = {.anchors = cli->anchors};
	(void)sx_sxsig_statement(s, stmt, sizeof(stmt), &len, &err);
	sx_err_clear(&err);
	FZ_CHECK(sx_sxsig_verify_file(s, s->file_root, s->file_size, NULL, &pol, NULL, signer,
				      &err) < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sx_sxsig s1, s2;
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;
	sx_err err = {0};
	if (sx_sxsig_decode((const char *)data, size, &s1, &err) < 0) {
		FZ_CHECK(s1.chain == NULL && err.cls != SX_OK);
		return 0;
	}
	verify(&s1);
	FZ_CHECK(sx_sxsig_encode(&s1, &t1, &l1, &err) == 0);
	fz_canonical_head(data, size, t1, l1);
	FZ_CHECK(sx_sxsig_decode(t1, l1, &s2, &err) == 0);
	same_sxsig(&s1, &s2);
	FZ_CHECK(sx_sxsig_encode(&s2, &t2, &l2, &err) == 0);
	FZ_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
	free(t1);
	free(t2);
	sx_sxsig_free(&s1);
	sx_sxsig_free(&s2);
	return 0;
}
