/* engine/sign/sxsig: the .sxsig of one file (docs/SIGNATURES.md sections 5
 * and 6): its text form, encoder and decoder next to each other, its
 * statement and everything a verifier checks. Pure. */
#include "engine/sign/sign_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"

#define SXSIG_BEGIN "-----BEGIN SXFER SIGNATURE-----"
#define SXSIG_END   "-----END SXFER SIGNATURE-----"

static const char *const sxsig_keys[] = {
    "version",	   "hash",	 "chunk-size",	"file-size",
    "file-root",   "path",	 "mtime",	"kind",
    "transfer-id", "batch",	 "batch-files", "leaf-index",
    "proof",	   "batch-root", "signed-time", "signature-algorithm",
    "signature",
};

/* What a kind requires beyond the syntax (docs/SIGNATURES.md ".sxsig"). */
static int sxsig_consistent(const sx_sxsig *s, sx_err *err)
{
	if (s->chunk == 0 || s->chunk > CHUNK_SIG_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "field 'chunk-size': out of range");
	if (s->mtime_nsec > 999999999u)
		return sx_fail(err, SX_E_INTEGRITY, "field 'mtime': nanoseconds out of range");
	if (s->batch_files == 0 || s->leaf_index >= s->batch_files)
		return sx_fail(err, SX_E_INTEGRITY, "field 'leaf-index': not below 'batch-files'");
	if (s->proof_len > SX_PROOF_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "field 'proof': too many nodes");
	if (s->sig_len == 0 || s->sig_len > SX_SIG_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "field 'signature': bad length");
	if (s->kind == SX_KIND_CHECKPOINT) {
		if (s->batch != 0 || s->batch_files != 1 || s->proof_len != 0 ||
		    s->mtime_sec != 0 || s->mtime_nsec != 0 || s->file_size % s->chunk != 0 ||
		    memcmp(s->batch_root, s->file_root, SX_HASH_LEN) != 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "a checkpoint needs batch 0, batch-files 1, no proof, mtime "
				       "0.000000000, whole chunks and batch-root = file-root");
	} else if (s->kind != SX_KIND_BATCH) {
		return sx_fail(err, SX_E_INTEGRITY, "field 'kind': unknown");
	}
	return 0;
}

int sx_sxsig_encode(const sx_sxsig *s, char **out, size_t *len, sx_err *err)
{
	sx_tbuf t = {.max = SX_SXSIG_TEXT_MAX};
	int rc = -1;
	SX_GUARD(sxsig_consistent(s, err));
	SX_ENSURE(sk_X509_num(s->chain) >= 1 && sk_X509_num(s->chain) <= SX_CHAIN_MAX, err,
		  SX_E_USAGE, "a .sxsig needs the signer's chain (1 to %d certificates)",
		  SX_CHAIN_MAX);
	sx_tb_printf(&t, "%s\nversion: %d\nhash: sha256\nchunk-size: %u\nfile-size: %llu\n",
		     SXSIG_BEGIN, SX_SXSIG_VERSION, s->chunk, (unsigned long long)s->file_size);
	sx_tb_add(&t, "file-root: ", 11);
	sx_tb_hex(&t, s->file_root, SX_HASH_LEN);
	sx_tb_add(&t, "\npath: ", 7);
	sx_tb_pct(&t, s->path);
	sx_tb_printf(&t,
		     "\nmtime: %s%llu.%09u\nkind: %s\ntransfer-id: ", s->mtime_sec < 0 ? "-" : "",
		     s->mtime_sec < 0 ? 0ull - (unsigned long long)s->mtime_sec
				      : (unsigned long long)s->mtime_sec,
		     s->mtime_nsec, s->kind == SX_KIND_BATCH ? "batch" : "checkpoint");
	sx_tb_hex(&t, s->tid, SX_TID_LEN);
	sx_tb_printf(&t, "\nbatch: %llu\nbatch-files: %u\nleaf-index: %u\nproof: ",
		     (unsigned long long)s->batch, s->batch_files, s->leaf_index);
	if (s->proof_len == 0)
		sx_tb_add(&t, "-", 1);
	for (size_t i = 0; i < s->proof_len; i++) {
		if (i)
			sx_tb_add(&t, ",", 1);
		sx_tb_hex(&t, s->proof[i], SX_HASH_LEN);
	}
	sx_tb_add(&t, "\nbatch-root: ", 13);
	sx_tb_hex(&t, s->batch_root, SX_HASH_LEN);
	sx_tb_add(&t, "\nsigned-time: ", 14);
	sx_tb_time(&t, s->signed_time);
	sx_tb_printf(&t, "\nsignature-algorithm: %s\nsignature: ", sx_sigalg_name(s->alg));
	sx_tb_b64(&t, s->sig, s->sig_len);
	sx_tb_printf(&t, "\n%s\n", SXSIG_END);
	sx_tb_chain(&t, s->chain);
	SX_ENSURE(!t.fail, err, SX_E_OTHER, "the .sxsig text does not fit in %u bytes",
		  SX_SXSIG_TEXT_MAX);
	*out = t.p;
	*len = t.len;
	t.p = NULL;
	rc = 0;
out:
	free(t.p);
	return rc;
}

/* [-]SECONDS.NNNNNNNNN: tv_sec, a dot, tv_nsec in exactly 9 digits. */
static int parse_mtime(sx_kv_reader *r, sx_sxsig *s)
{
	sx_cur v;
	const uint8_t *ns;
	uint64_t sec, nsec = 0;
	if (sx_kv_take(r, "mtime", &v) < 0)
		return -1;
	bool neg = sx_text_skip(&v, '-');
	if (sx_text_dec(&v, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &sec) < 0 ||
	    (neg && sec == 0) || !sx_text_skip(&v, '.') || sx_cur_bytes(&v, 9, &ns) < 0 ||
	    sx_cur_end(&v) < 0)
		goto bad;
	for (int i = 0; i < 9; i++) {
		if (ns[i] < '0' || ns[i] > '9')
			goto bad;
		nsec = nsec * 10 + (uint64_t)(ns[i] - '0');
	}
	s->mtime_sec = neg ? (int64_t)(0 - sec) : (int64_t)sec;
	s->mtime_nsec = (uint32_t)nsec;
	return 0;
bad:
	return sx_fail(r->err, SX_E_INTEGRITY,
		       "field 'mtime': expected [-]SECONDS.NNNNNNNNN (9 digits)");
}

/* "-", or nodes of 64 hex digits separated by commas. */
static int parse_proof(sx_kv_reader *r, sx_sxsig *s)
{
	sx_cur v;
	if (sx_kv_take(r, "proof", &v) < 0)
		return -1;
	s->proof_len = 0;
	if (sx_text_is(&v, "-"))
		return 0;
	for (;;) {
		if (s->proof_len >= SX_PROOF_MAX)
			return sx_fail(r->err, SX_E_INTEGRITY, "field 'proof': too many nodes");
		if (sx_text_hex(&v, s->proof[s->proof_len], SX_HASH_LEN) < 0 ||
		    (sx_cur_end(&v) < 0 && sx_text_peek(&v) != ','))
			return sx_fail(r->err, SX_E_INTEGRITY,
				       "field 'proof': node %zu is not 64 lower-case hex digits",
				       s->proof_len + 1);
		s->proof_len++;
		if (sx_cur_end(&v) == 0)
			return 0;
		if (!sx_text_skip(&v, ',') || sx_cur_end(&v) == 0)
			return sx_fail(r->err, SX_E_INTEGRITY,
				       "field 'proof': node %zu is not 64 lower-case hex digits",
				       s->proof_len + 1);
	}
}

static int parse_kind(sx_kv_reader *r, sx_sxsig *s)
{
	sx_cur v;
	if (sx_kv_take(r, "kind", &v) < 0)
		return -1;
	if (sx_text_is(&v, "batch"))
		s->kind = SX_KIND_BATCH;
	else if (sx_text_is(&v, "checkpoint"))
		s->kind = SX_KIND_CHECKPOINT;
	else
		return sx_fail(r->err, SX_E_INTEGRITY, "field 'kind': must be batch or checkpoint");
	return 0;
}

int sx_sxsig_decode(const char *text, size_t len, sx_sxsig *s, sx_err *err)
{
	sx_kv_reader r = {.cur = sx_cur_make((const uint8_t *)text, len),
			  .keys = sxsig_keys,
			  .nkeys = SX_ARRAY_LEN(sxsig_keys),
			  .end_marker = SXSIG_END,
			  .err = err};
	uint64_t v;
	int rc = -1;
	memset(s, 0, sizeof(*s));
	SX_ENSURE(len <= SX_SXSIG_TEXT_MAX, err, SX_E_INTEGRITY, "a .sxsig larger than %u bytes",
		  SX_SXSIG_TEXT_MAX);
	SX_GUARD(sx_kv_begin(&r.cur, SXSIG_BEGIN, "a .sxsig", err));
	SX_GUARD(sx_kv_fixed(&r, "version", "1"));
	SX_GUARD(sx_kv_fixed(&r, "hash", "sha256"));
	SX_GUARD(sx_kv_dec(&r, "chunk-size", CHUNK_SIG_MAX, &v));
	s->chunk = (uint32_t)v;
	SX_GUARD(sx_kv_dec(&r, "file-size", UINT64_MAX, &s->file_size));
	SX_GUARD(sx_kv_hex(&r, "file-root", s->file_root, SX_HASH_LEN));
	SX_GUARD(sx_kv_path(&r, "path", s->path, sizeof(s->path)));
	SX_GUARD(parse_mtime(&r, s));
	SX_GUARD(parse_kind(&r, s));
	SX_GUARD(sx_kv_hex(&r, "transfer-id", s->tid, SX_TID_LEN));
	SX_GUARD(sx_kv_dec(&r, "batch", UINT64_MAX, &s->batch));
	SX_GUARD(sx_kv_dec(&r, "batch-files", UINT32_MAX, &v));
	s->batch_files = (uint32_t)v;
	SX_GUARD(sx_kv_dec(&r, "leaf-index", UINT32_MAX, &v));
	s->leaf_index = (uint32_t)v;
	SX_GUARD(parse_proof(&r, s));
	SX_GUARD(sx_kv_hex(&r, "batch-root", s->batch_root, SX_HASH_LEN));
	SX_GUARD(sx_kv_time(&r, "signed-time", &s->signed_time));
	SX_GUARD(sx_kv_alg(&r, "signature-algorithm", &s->alg));
	SX_GUARD(sx_kv_b64(&r, "signature", s->sig, SX_SIG_MAX, &s->sig_len));
	SX_GUARD(sx_kv_end(&r, "a .sxsig"));
	SX_GUARD(sxsig_consistent(s, err));
	SX_GUARD(sx_chain_read(&r.cur, &s->chain, "signer", err));
	rc = 0;
out:
	if (rc < 0)
		sx_sxsig_free(s);
	return rc;
}

void sx_sxsig_free(sx_sxsig *s)
{
	sk_X509_pop_free(s->chain, X509_free);
	s->chain = NULL;
}

int sx_sxsig_statement(const sx_sxsig *s, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	if (s->kind == SX_KIND_CHECKPOINT)
		return sx_stmt_checkpoint(s->tid, s->path, s->chunk, s->file_size / s->chunk,
					  s->file_size, s->file_root, s->signed_time, out, cap, len,
					  err);
	if (cap < SX_STMT_BATCH_LEN)
		return sx_fail(err, SX_E_OTHER, "statement buffer too small");
	sx_stmt_batch(s->tid, s->batch, s->signed_time, s->batch_files, s->chunk, s->batch_root,
		      out);
	*len = SX_STMT_BATCH_LEN;
	return 0;
}

int sx_sxsig_verify_file(const sx_sxsig *s, const uint8_t file_root[SX_HASH_LEN], uint64_t size,
			 const char *expect_path, const sx_policy *pol, const char *signer,
			 char signer_name[256], sx_err *err)
{
	uint8_t leaf[SX_HASH_LEN], stmt[SX_STMT_CHECKPOINT_MAX];
	size_t slen;
	char name[256];
	X509 *leaf_cert;
	if (sxsig_consistent(s, err) < 0)
		return -1;
	if (expect_path != NULL && strcmp(expect_path, s->path) != 0)
		return sx_fail(err, SX_E_INTEGRITY, "the .sxsig is for '%s'", s->path);
	if (size != s->file_size)
		return sx_fail(err, SX_E_INTEGRITY,
			       s->kind == SX_KIND_CHECKPOINT
				   ? "size differs: file has %llu bytes, the checkpoint covers "
				     "the first %llu"
				   : "size differs: file has %llu bytes, signed %llu",
			       (unsigned long long)size, (unsigned long long)s->file_size);
	if (CRYPTO_memcmp(file_root, s->file_root, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY, "file content does not match its signed root");
	if (s->kind == SX_KIND_BATCH) {
		/* RFC 9162 section 2.1.3.2 from the descriptor's leaf. */
		sx_desc d = {.size = s->file_size,
			     .mtime_sec = s->mtime_sec,
			     .mtime_nsec = s->mtime_nsec,
			     .path = s->path};
		memcpy(d.root, s->file_root, SX_HASH_LEN);
		if (sx_desc_leaf(&d, leaf, err) < 0)
			return -1;
		if (sx_merkle_verify_proof(leaf, s->leaf_index, s->batch_files,
					   (const uint8_t(*)[SX_HASH_LEN])s->proof, s->proof_len,
					   s->batch_root, err) < 0)
			return -1;
	}
	if (sx_chain_policy(pol, s->chain, SX_ROLE_SIGNER, "signer", err) < 0)
		return -1;
	leaf_cert = sk_X509_value(s->chain, 0);
	if (sx_sxsig_statement(s, stmt, sizeof(stmt), &slen, err) < 0)
		return -1;
	if (sx_check_sig(leaf_cert, s->alg, stmt, slen, s->sig, s->sig_len,
			 s->kind == SX_KIND_BATCH ? "batch signature" : "checkpoint signature",
			 err) < 0)
		return -1;
	if (sx_cert_name(leaf_cert, name, sizeof(name), err) < 0)
		return -1;
	if (signer != NULL && strcmp(signer, name) != 0)
		return sx_fail(err, SX_E_AUTH, "signed by '%s', expected '%s'", name, signer);
	if (signer_name != NULL)
		snprintf(signer_name, 256, "%s", name);
	return 0;
}
