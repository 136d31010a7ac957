/* engine/chat/stmt: what a message and a receipt sign (docs/SIGNATURES.md
 * sections 11.1 and 11.3), the message's hash, signing and verifying.
 * Pure: keys and certificates in, bytes out. */
#include <string.h>

#include <openssl/evp.h>

#include "engine/chat/sx_chat.h"

#define LABEL_MSG     "sxfer chat message v1"
#define LABEL_RECEIPT "sxfer chat receipt v1"

static int sha256(const void *p, size_t n, uint8_t out[SX_HASH_LEN], sx_err *err)
{
	unsigned len = 0;
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != SX_HASH_LEN)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256");
	return 0;
}

static void put_label(sx_wbuf *w, const char *label)
{
	sx_put_bytes(w, label, strlen(label) + 1); /* with its NUL */
}

int sx_chat_statement(const sx_chat_post *p, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	sx_wbuf w = sx_wbuf_make(out, cap);
	put_label(&w, LABEL_MSG);
	sx_put_block16(&w, p->conv, strlen(p->conv));
	sx_put_block16(&w, p->author, strlen(p->author));
	sx_put_u64(&w, p->seq);
	sx_put_u64(&w, p->n);
	sx_put_u64(&w, (uint64_t)p->time_ms);
	sx_put_bytes(&w, p->text_hash, SX_HASH_LEN);
	sx_put_bytes(&w, p->prev, SX_HASH_LEN);
	if (w.overflow)
		return sx_fail(err, SX_E_INTEGRITY, "message statement too long");
	*len = w.len;
	return 0;
}

int sx_chat_post_hash(const sx_chat_post *p, uint8_t out[SX_HASH_LEN], sx_err *err)
{
	uint8_t st[SX_CHAT_STMT_MAX];
	size_t len;
	if (sx_chat_statement(p, st, sizeof(st), &len, err) < 0)
		return -1;
	return sha256(st, len, out, err);
}

static int cert_fp_alg(X509 *cert, EVP_PKEY *key, uint8_t fp[SX_HASH_LEN], sx_sigalg *alg,
		       sx_err *err)
{
	if (cert == NULL || X509_check_private_key(cert, key) != 1)
		return sx_fail(err, SX_E_AUTH, "the key does not belong to the certificate");
	*alg = sx_sigalg_for_key(key);
	if (*alg == SX_SIGALG_NONE)
		return sx_fail(err, SX_E_AUTH, "this key type cannot sign");
	return sx_cert_fp(cert, fp, err);
}

int sx_chat_post_sign(sx_chat_post *p, EVP_PKEY *key, X509 *cert, sx_err *err)
{
	uint8_t st[SX_CHAT_STMT_MAX];
	size_t len;
	if (p->text_len > SX_CHAT_TEXT_MAX)
		return sx_fail(err, SX_E_USAGE, "a message is at most %u bytes", SX_CHAT_TEXT_MAX);
	if (sha256(p->text, p->text_len, p->text_hash, err) < 0 ||
	    cert_fp_alg(cert, key, p->fp, &p->alg, err) < 0 ||
	    sx_chat_statement(p, st, sizeof(st), &len, err) < 0)
		return -1;
	return sx_sign(key, st, len, p->sig, &p->sig_len, err);
}

static int check_sig(EVP_PKEY *pub, sx_sigalg alg, const uint8_t *st, size_t len,
		     const uint8_t *sig, size_t sig_len, sx_err *err)
{
	if (sx_sigalg_for_key(pub) != alg)
		return sx_fail(err, SX_E_INTEGRITY, "algorithm '%s' does not match the key",
			       sx_sigalg_name(alg));
	sx_err e = {0};
	if (sx_verify(pub, st, len, sig, sig_len, &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "the signature does not verify");
	return 0;
}

int sx_chat_post_verify(const sx_chat_post *p, EVP_PKEY *pub, sx_err *err)
{
	uint8_t st[SX_CHAT_STMT_MAX], th[SX_HASH_LEN];
	size_t len;
	if (sha256(p->text, p->text_len, th, err) < 0)
		return -1;
	if (memcmp(th, p->text_hash, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "the text of %s's message %llu in %s does not match its hash",
			       p->author, (unsigned long long)p->seq, p->conv);
	if (sx_chat_statement(p, st, sizeof(st), &len, err) < 0)
		return -1;
	if (check_sig(pub, p->alg, st, len, p->sig, p->sig_len, err) < 0) {
		sx_err_prefix(err, "%s's message %llu in %s: ", p->author,
			      (unsigned long long)p->seq, p->conv);
		return -1;
	}
	return 0;
}

int sx_chat_receipt_statement(const sx_chat_receipt *r, uint8_t *out, size_t cap, size_t *len,
			      sx_err *err)
{
	sx_wbuf w = sx_wbuf_make(out, cap);
	put_label(&w, LABEL_RECEIPT);
	sx_put_block16(&w, r->conv, strlen(r->conv));
	sx_put_block16(&w, r->signer, strlen(r->signer));
	sx_put_bytes(&w, r->head, SX_HASH_LEN);
	sx_put_u64(&w, r->n);
	sx_put_u64(&w, r->count);
	sx_put_u64(&w, (uint64_t)r->time_ms);
	if (w.overflow)
		return sx_fail(err, SX_E_INTEGRITY, "receipt statement too long");
	*len = w.len;
	return 0;
}

int sx_chat_receipt_sign(sx_chat_receipt *r, EVP_PKEY *key, X509 *cert, sx_err *err)
{
	uint8_t st[SX_CHAT_RSTMT_MAX];
	size_t len;
	if (cert_fp_alg(cert, key, r->fp, &r->alg, err) < 0 ||
	    sx_chat_receipt_statement(r, st, sizeof(st), &len, err) < 0)
		return -1;
	return sx_sign(key, st, len, r->sig, &r->sig_len, err);
}

int sx_chat_receipt_verify(const sx_chat_receipt *r, EVP_PKEY *pub, sx_err *err)
{
	uint8_t st[SX_CHAT_RSTMT_MAX];
	size_t len;
	if (sx_chat_receipt_statement(r, st, sizeof(st), &len, err) < 0)
		return -1;
	if (check_sig(pub, r->alg, st, len, r->sig, r->sig_len, err) < 0) {
		sx_err_prefix(err, "%s's receipt of %s: ", r->signer, r->conv);
		return -1;
	}
	return 0;
}
