/* Signed receipts (docs/SIGNATURES.md "Receipts"), read by `sxfer verify
 * --receipt`. Properties: what decodes is canonical up to the certificate
 * chain; decode, encode, decode gives the same receipt (every field, every
 * file line, the chain), and the two encodings are byte for byte the same. What decodes is also
 * verified. */
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

static void same_receipt(const sx_receipt *a, const sx_receipt *b)
{
	FZ_CHECK(memcmp(a->tid, b->tid, sizeof(a->tid)) == 0 && a->batch == b->batch);
	FZ_CHECK(memcmp(a->batch_root, b->batch_root, sizeof(a->batch_root)) == 0);
	FZ_CHECK(a->time == b->time && a->chunk == b->chunk && a->count == b->count);
	FZ_CHECK(memcmp(a->sender_fp, b->sender_fp, sizeof(a->sender_fp)) == 0);
	FZ_CHECK(memcmp(a->receiver_fp, b->receiver_fp, sizeof(a->receiver_fp)) == 0);
	for (uint32_t i = 0; i < a->count; i++) {
		const sx_receipt_file *x = &a->files[i], *y = &b->files[i];
		FZ_CHECK(memcmp(x->root, y->root, sizeof(x->root)) == 0 && x->size == y->size);
		FZ_CHECK(strcmp(x->path, y->path) == 0);
	}
	FZ_CHECK(a->alg == b->alg && a->sig_len == b->sig_len);
	FZ_CHECK(memcmp(a->sig, b->sig, a->sig_len) == 0);
	FZ_CHECK(same_chain(a->chain, b->chain));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sx_receipt r1, r2;
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;
	uint8_t *stmt = NULL;
	size_t slen;
	sx_err err = {0};
	if (sx_receipt_decode((const char *)data, size, &r1, &err) < 0) {
		FZ_CHECK(r1.chain == NULL && r1.files == NULL && err.cls != SX_OK);
		return 0;
	}
	const sx_identity *srv, *cli;
	fz_identities(&srv, &cli);
	sx_policy pol = {.anchors = srv->anchors};
	FZ_CHECK(sx_receipt_statement(&r1, &stmt, &slen, &err) == 0);
	free(stmt);
	FZ_CHECK(sx_receipt_verify(&r1, &pol, NULL, &err) < 0);
	sx_err_clear(&err);

	FZ_CHECK(sx_receipt_encode(&r1, &t1, &l1, &err) == 0);
	fz_canonical_head(data, size, t1, l1);
	FZ_CHECK(sx_receipt_decode(t1, l1, &r2, &err) == 0);
	same_receipt(&r1, &r2);
	FZ_CHECK(sx_receipt_encode(&r2, &t2, &l2, &err) == 0);
	FZ_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
	free(t1);
	free(t2);
	sx_receipt_free(&r1);
	sx_receipt_free(&r2);
	return 0;
}
