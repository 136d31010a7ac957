/* engine/sign/receipt: signed receipts (docs/SIGNATURES.md section 7):
 * the files a receiver acknowledges, the statement it signs, the text form
 * (encoder and decoder together) and verification. Pure. */
#include "engine/sign/sign_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"

#define RCPT_BEGIN "-----BEGIN SXFER RECEIPT-----"
#define RCPT_END   "-----END SXFER RECEIPT-----"

static const char DOM_RECEIPT[] = "sxfer receipt v1"; /* 17 bytes */

static const char *const rcpt_keys[] = {
    "version",	"hash",	      "transfer-id", "batch", "batch-root",	     "time",	  "sender",
    "receiver", "chunk-size", "files",	     "file",  "signature-algorithm", "signature",
};

int sx_receipt_add(sx_receipt *r, const uint8_t root[SX_HASH_LEN], uint64_t size, const char *path,
		   sx_err *err)
{
	size_t plen;
	if (sx_path_ok(path, &plen, err) < 0)
		return -1;
	if (r->count >= SX_RECEIPT_FILES_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "a receipt holds at most %u files",
			       SX_RECEIPT_FILES_MAX);
	if (sx_grow(&r->files, &r->files_cap, (size_t)r->count + 1, sizeof(*r->files),
		    SX_RECEIPT_FILES_MAX, "files in a receipt", err) < 0)
		return -1;
	sx_receipt_file *f = &r->files[r->count];
	f->path = strdup(path);
	if (f->path == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memcpy(f->root, root, SX_HASH_LEN);
	f->size = size;
	r->count++;
	return 0;
}

void sx_receipt_free(sx_receipt *r)
{
	for (uint32_t i = 0; r->files != NULL && i < r->count; i++)
		free(r->files[i].path);
	free(r->files);
	sk_X509_pop_free(r->chain, X509_free);
	memset(r, 0, sizeof(*r));
}

int sx_receipt_statement(const sx_receipt *r, uint8_t **out, size_t *len, sx_err *err)
{
	size_t cap =
		   sizeof(DOM_RECEIPT) + SX_TID_LEN + 8 + SX_HASH_LEN + 8 + 2 * SX_HASH_LEN + 4 + 4,
	       plen;
	int rc = -1;
	uint8_t *buf = NULL;
	for (uint32_t i = 0; i < r->count; i++) {
		SX_GUARD(sx_path_ok(r->files[i].path, &plen, err));
		SX_ENSURE(sx_add_ok(cap, SX_HASH_LEN + 8 + 2 + plen, &cap), err, SX_E_OTHER,
			  "receipt too large");
	}
	buf = malloc(cap);
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	sx_wbuf w = sx_wbuf_make(buf, cap);
	sx_put_bytes(&w, DOM_RECEIPT, sizeof(DOM_RECEIPT));
	sx_put_bytes(&w, r->tid, SX_TID_LEN);
	sx_put_u64(&w, r->batch);
	sx_put_bytes(&w, r->batch_root, SX_HASH_LEN);
	sx_put_u64(&w, (uint64_t)r->time);
	sx_put_bytes(&w, r->sender_fp, SX_HASH_LEN);
	sx_put_bytes(&w, r->receiver_fp, SX_HASH_LEN);
	sx_put_u32(&w, r->chunk);
	sx_put_u32(&w, r->count);
	for (uint32_t i = 0; i < r->count; i++) {
		sx_put_bytes(&w, r->files[i].root, SX_HASH_LEN);
		sx_put_u64(&w, r->files[i].size);
		sx_put_block16(&w, r->files[i].path, strlen(r->files[i].path));
	}
	SX_ENSURE(!w.overflow && w.len == cap, err, SX_E_OTHER, "receipt statement size");
	*out = buf;
	*len = w.len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

int sx_receipt_sign(sx_receipt *r, EVP_PKEY *key, STACK_OF(X509) * chain, sx_err *err)
{
	uint8_t *stmt = NULL;
	size_t len;
	int rc = -1;
	SX_ENSURE(sk_X509_num(chain) >= 1 && sk_X509_num(chain) <= SX_CHAIN_MAX, err, SX_E_USAGE,
		  "a receipt needs the receiver's chain");
	SX_GUARD(sx_cert_fp(sk_X509_value(chain, 0), r->receiver_fp, err));
	r->alg = sx_sigalg_for_key(key);
	SX_GUARD(sx_receipt_statement(r, &stmt, &len, err));
	SX_GUARD(sx_sign(key, stmt, len, r->sig, &r->sig_len, err));
	sk_X509_pop_free(r->chain, X509_free);
	SX_GUARD(sx_chain_copy(&r->chain, chain, err));
	rc = 0;
out:
	free(stmt);
	return rc;
}

int sx_receipt_encode(const sx_receipt *r, char **out, size_t *len, sx_err *err)
{
	sx_tbuf t = {.max = SX_RECEIPT_TEXT_MAX};
	int rc = -1;
	SX_ENSURE(sk_X509_num(r->chain) >= 1 && sk_X509_num(r->chain) <= SX_CHAIN_MAX, err,
		  SX_E_USAGE, "a receipt needs the receiver's chain");
	SX_ENSURE(r->sig_len >= 1 && r->sig_len <= SX_SIG_MAX, err, SX_E_USAGE,
		  "the receipt is not signed");
	SX_ENSURE(r->chunk >= 1 && r->chunk <= CHUNK_SIG_MAX, err, SX_E_USAGE,
		  "the receipt has no chunk size");
	sx_tb_printf(&t, "%s\nversion: 1\nhash: sha256\ntransfer-id: ", RCPT_BEGIN);
	sx_tb_hex(&t, r->tid, SX_TID_LEN);
	sx_tb_printf(&t, "\nbatch: %llu\nbatch-root: ", (unsigned long long)r->batch);
	sx_tb_hex(&t, r->batch_root, SX_HASH_LEN);
	sx_tb_add(&t, "\ntime: ", 7);
	sx_tb_time(&t, r->time);
	sx_tb_add(&t, "\nsender: ", 9);
	sx_tb_hex(&t, r->sender_fp, SX_HASH_LEN);
	sx_tb_add(&t, "\nreceiver: ", 11);
	sx_tb_hex(&t, r->receiver_fp, SX_HASH_LEN);
	sx_tb_printf(&t, "\nchunk-size: %u\nfiles: %u\n", r->chunk, r->count);
	for (uint32_t i = 0; i < r->count; i++) {
		sx_tb_add(&t, "file: ", 6);
		sx_tb_hex(&t, r->files[i].root, SX_HASH_LEN);
		sx_tb_printf(&t, " %llu ", (unsigned long long)r->files[i].size);
		sx_tb_pct(&t, r->files[i].path);
		sx_tb_add(&t, "\n", 1);
	}
	sx_tb_printf(&t, "signature-algorithm: %s\nsignature: ", sx_sigalg_name(r->alg));
	sx_tb_b64(&t, r->sig, r->sig_len);
	sx_tb_printf(&t, "\n%s\n", RCPT_END);
	sx_tb_chain(&t, r->chain);
	SX_ENSURE(!t.fail, err, SX_E_OTHER, "the receipt does not fit in %u bytes",
		  SX_RECEIPT_TEXT_MAX);
	*out = t.p;
	*len = t.len;
	t.p = NULL;
	rc = 0;
out:
	free(t.p);
	return rc;
}

/* "ROOTHEX SIZE PATH" */
static int parse_file_line(sx_kv_reader *r, uint32_t i, sx_receipt *rc)
{
	char path[SX_MPATH_MAX + 1];
	uint8_t root[SX_HASH_LEN];
	uint64_t size;
	sx_cur v;
	r->next = (size_t)sx_kv_find(r, "file"); /* the one key that repeats */
	if (sx_kv_take(r, "file", &v) < 0)
		return -1;
	if (sx_text_hex(&v, root, SX_HASH_LEN) < 0 || !sx_text_skip(&v, ' '))
		return sx_fail(r->err, SX_E_INTEGRITY, "field 'file' %u: expected 'ROOT SIZE PATH'",
			       i + 1);
	if (sx_text_dec(&v, UINT64_MAX, &size) < 0 || !sx_text_skip(&v, ' '))
		return sx_fail(r->err, SX_E_INTEGRITY, "field 'file' %u: bad size", i + 1);
	if (sx_pct_decode(&v, path, sizeof(path), r->err, "file") < 0)
		return -1;
	return sx_receipt_add(rc, root, size, path, r->err);
}

int sx_receipt_decode(const char *text, size_t len, sx_receipt *r, sx_err *err)
{
	sx_kv_reader k = {.cur = sx_cur_make((const uint8_t *)text, len),
			  .keys = rcpt_keys,
			  .nkeys = SX_ARRAY_LEN(rcpt_keys),
			  .end_marker = RCPT_END,
			  .err = err};
	uint64_t v, nfiles;
	int rc = -1;
	memset(r, 0, sizeof(*r));
	SX_ENSURE(len <= SX_RECEIPT_TEXT_MAX, err, SX_E_INTEGRITY, "a receipt larger than %u bytes",
		  SX_RECEIPT_TEXT_MAX);
	SX_GUARD(sx_kv_begin(&k.cur, RCPT_BEGIN, "a receipt", err));
	SX_GUARD(sx_kv_fixed(&k, "version", "1"));
	SX_GUARD(sx_kv_fixed(&k, "hash", "sha256"));
	SX_GUARD(sx_kv_hex(&k, "transfer-id", r->tid, SX_TID_LEN));
	SX_GUARD(sx_kv_dec(&k, "batch", UINT64_MAX, &r->batch));
	SX_GUARD(sx_kv_hex(&k, "batch-root", r->batch_root, SX_HASH_LEN));
	SX_GUARD(sx_kv_time(&k, "time", &r->time));
	SX_GUARD(sx_kv_hex(&k, "sender", r->sender_fp, SX_HASH_LEN));
	SX_GUARD(sx_kv_hex(&k, "receiver", r->receiver_fp, SX_HASH_LEN));
	SX_GUARD(sx_kv_dec(&k, "chunk-size", CHUNK_SIG_MAX, &v));
	SX_ENSURE(v >= 1, err, SX_E_INTEGRITY, "field 'chunk-size': out of range");
	r->chunk = (uint32_t)v;
	SX_GUARD(sx_kv_dec(&k, "files", SX_RECEIPT_FILES_MAX, &nfiles));
	for (uint64_t i = 0; i < nfiles; i++)
		SX_GUARD(parse_file_line(&k, (uint32_t)i, r));
	k.next = (size_t)sx_kv_find(&k, "file") + 1;
	SX_GUARD(sx_kv_alg(&k, "signature-algorithm", &r->alg));
	SX_GUARD(sx_kv_b64(&k, "signature", r->sig, SX_SIG_MAX, &r->sig_len));
	SX_GUARD(sx_kv_end(&k, "a receipt"));
	SX_GUARD(sx_chain_read(&k.cur, &r->chain, "receiver", err));
	rc = 0;
out:
	if (rc < 0)
		sx_receipt_free(r);
	return rc;
}

int sx_receipt_verify(const sx_receipt *r, const sx_policy *pol, const uint8_t *expect_sender_fp,
		      sx_err *err)
{
	uint8_t fp[SX_HASH_LEN], *stmt = NULL;
	size_t len;
	int rc = -1;
	SX_GUARD(sx_chain_policy(pol, r->chain, SX_ROLE_SIGNER, "receiver", err));
	SX_GUARD(sx_cert_fp(sk_X509_value(r->chain, 0), fp, err));
	SX_ENSURE(CRYPTO_memcmp(fp, r->receiver_fp, SX_HASH_LEN) == 0, err, SX_E_INTEGRITY,
		  "the receipt names another receiver than the certificate that signed it");
	SX_ENSURE(expect_sender_fp == NULL ||
		      CRYPTO_memcmp(expect_sender_fp, r->sender_fp, SX_HASH_LEN) == 0,
		  err, SX_E_INTEGRITY, "the receipt acknowledges another sender");
	SX_GUARD(sx_receipt_statement(r, &stmt, &len, err));
	SX_GUARD(sx_check_sig(sk_X509_value(r->chain, 0), r->alg, stmt, len, r->sig, r->sig_len,
			      "receipt signature", err));
	rc = 0;
out:
	free(stmt);
	return rc;
}
