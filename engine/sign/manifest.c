/* engine/manifest: Merkle trees, descriptors, statements, signatures, the
 * .sxsig and receipt text formats (docs/SIGNATURES.md). Encoders and
 * decoders of each format sit next to each other. Pure: no files, no clock. */
#include "engine/sign/sx_manifest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/sx_util.h"
#include "engine/wire/sx_wire.h"

#define PFX_LEAF 0x00 /* RFC 9162 section 2.1.1 */
#define PFX_NODE 0x01

/* ---- hashing ------------------------------------------------------------- */

static int hash_parts(EVP_MD_CTX *ctx, const EVP_MD *md, uint8_t prefix, const void *a, size_t alen,
		      const void *b, size_t blen, uint8_t out[SX_HASH_LEN])
{
	unsigned int n = 0;
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, &prefix, 1) != 1 ||
	    (alen && EVP_DigestUpdate(ctx, a, alen) != 1) ||
	    (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != SX_HASH_LEN)
		return -1;
	return 0;
}

static int empty_root(uint8_t out[SX_HASH_LEN])
{
	unsigned int n = 0;
	/* MTH({}) = SHA-256() (RFC 9162 section 2.1.1) */
	if (EVP_Digest("", 0, out, &n, EVP_sha256(), NULL) != 1 || n != SX_HASH_LEN)
		return -1;
	return 0;
}

int sx_merkle_leaf(const void *data, size_t len, uint8_t out[SX_HASH_LEN])
{
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx != NULL)
		rc = hash_parts(ctx, EVP_sha256(), PFX_LEAF, data, len, NULL, 0, out);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int sx_merkle_node(const uint8_t l[SX_HASH_LEN], const uint8_t r[SX_HASH_LEN],
		   uint8_t out[SX_HASH_LEN])
{
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx != NULL)
		rc = hash_parts(ctx, EVP_sha256(), PFX_NODE, l, SX_HASH_LEN, r, SX_HASH_LEN, out);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* The largest power of two smaller than n (n >= 2): RFC 9162 section 2.1.1. */
static uint64_t split_point(uint64_t n)
{
	uint64_t k = 1;
	while ((k << 1) < n)
		k <<= 1;
	return k;
}

static int mth(EVP_MD_CTX *ctx, const uint8_t (*d)[SX_HASH_LEN], uint64_t n,
	       uint8_t out[SX_HASH_LEN])
{
	uint8_t l[SX_HASH_LEN], r[SX_HASH_LEN];
	if (n == 1) {
		memcpy(out, d[0], SX_HASH_LEN);
		return 0;
	}
	uint64_t k = split_point(n);
	if (mth(ctx, d, k, l) < 0 || mth(ctx, d + k, n - k, r) < 0)
		return -1;
	return hash_parts(ctx, EVP_sha256(), PFX_NODE, l, SX_HASH_LEN, r, SX_HASH_LEN, out);
}

int sx_merkle_root(const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n, uint8_t out[SX_HASH_LEN])
{
	if (n == 0)
		return empty_root(out);
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx != NULL)
		rc = mth(ctx, leaves, n, out);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* PATH(m, D[n]) of RFC 9162 section 2.1.3.1, deepest node first. */
static int path(EVP_MD_CTX *ctx, const uint8_t (*d)[SX_HASH_LEN], uint64_t n, uint64_t m,
		uint8_t (*proof)[SX_HASH_LEN], size_t max, size_t *plen)
{
	if (n == 1)
		return 0;
	uint64_t k = split_point(n);
	if (m < k) {
		if (path(ctx, d, k, m, proof, max, plen) < 0)
			return -1;
		if (*plen >= max)
			return -1;
		return mth(ctx, d + k, n - k, proof[(*plen)++]);
	}
	if (path(ctx, d + k, n - k, m - k, proof, max, plen) < 0)
		return -1;
	if (*plen >= max)
		return -1;
	return mth(ctx, d, k, proof[(*plen)++]);
}

int sx_merkle_proof(const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n, uint64_t index,
		    uint8_t (*proof)[SX_HASH_LEN], size_t max, size_t *plen)
{
	*plen = 0;
	if (index >= n)
		return -1;
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx != NULL)
		rc = path(ctx, leaves, n, index, proof, max, plen);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* ---- memoised tree for many proofs --------------------------------------- */

struct sx_mtree {
	uint64_t n;
	unsigned levels;
	uint8_t (*lv[64])[SX_HASH_LEN]; /* lv[j][i]: the perfect subtree of 2^j leaves at i*2^j */
	EVP_MD_CTX *ctx;
};

void sx_mtree_free(sx_mtree *t)
{
	if (t == NULL)
		return;
	for (unsigned j = 1; j < t->levels; j++)
		free(t->lv[j]);
	EVP_MD_CTX_free(t->ctx);
	free(t);
}

int sx_mtree_build(sx_mtree **out, const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n)
{
	sx_mtree *t = calloc(1, sizeof(*t));
	*out = NULL;
	if (t == NULL || n == 0 || (t->ctx = EVP_MD_CTX_new()) == NULL)
		goto fail;
	t->n = n;
	t->lv[0] = (uint8_t(*)[SX_HASH_LEN])leaves; /* borrowed */
	t->levels = 1;
	for (uint64_t w = n / 2; w > 0; w /= 2) {
		unsigned j = t->levels;
		t->lv[j] = malloc(w * SX_HASH_LEN);
		if (t->lv[j] == NULL)
			goto fail;
		t->levels++;
		for (uint64_t i = 0; i < w; i++)
			if (hash_parts(t->ctx, EVP_sha256(), PFX_NODE, t->lv[j - 1][2 * i],
				       SX_HASH_LEN, t->lv[j - 1][2 * i + 1], SX_HASH_LEN,
				       t->lv[j][i]) < 0)
				goto fail;
	}
	*out = t;
	return 0;
fail:
	sx_mtree_free(t);
	return -1;
}

/* MTH(D[start:start+size]): every left subtree of RFC 9162's split is a
 * perfect, aligned block (memoised); only right spines are hashed again. */
static int mtree_hash(const sx_mtree *t, uint64_t start, uint64_t size, uint8_t out[SX_HASH_LEN])
{
	if ((size & (size - 1)) == 0 && start % size == 0) {
		unsigned j = (unsigned)__builtin_ctzll(size);
		memcpy(out, t->lv[j][start >> j], SX_HASH_LEN);
		return 0;
	}
	uint8_t l[SX_HASH_LEN], r[SX_HASH_LEN];
	uint64_t k = split_point(size);
	if (mtree_hash(t, start, k, l) < 0 || mtree_hash(t, start + k, size - k, r) < 0)
		return -1;
	return hash_parts(t->ctx, EVP_sha256(), PFX_NODE, l, SX_HASH_LEN, r, SX_HASH_LEN, out);
}

static int mtree_path(const sx_mtree *t, uint64_t start, uint64_t n, uint64_t m,
		      uint8_t (*proof)[SX_HASH_LEN], size_t max, size_t *plen)
{
	if (n == 1)
		return 0;
	uint64_t k = split_point(n);
	int below = m < k ? mtree_path(t, start, k, m, proof, max, plen)
			  : mtree_path(t, start + k, n - k, m - k, proof, max, plen);
	if (below < 0 || *plen >= max)
		return -1;
	return m < k ? mtree_hash(t, start + k, n - k, proof[(*plen)++])
		     : mtree_hash(t, start, k, proof[(*plen)++]);
}

int sx_mtree_proof(const sx_mtree *t, uint64_t index, uint8_t (*proof)[SX_HASH_LEN], size_t max,
		   size_t *plen)
{
	*plen = 0;
	if (index >= t->n)
		return -1;
	return mtree_path(t, 0, t->n, index, proof, max, plen);
}

int sx_merkle_verify_proof(const uint8_t leaf_hash[SX_HASH_LEN], uint64_t index, uint64_t n,
			   const uint8_t (*proof)[SX_HASH_LEN], size_t plen,
			   const uint8_t root[SX_HASH_LEN])
{
	uint8_t r[SX_HASH_LEN];
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	/* RFC 9162 section 2.1.3.2, steps 1 to 6 */
	if (ctx == NULL || index >= n)
		goto out;
	uint64_t fn = index, sn = n - 1;
	memcpy(r, leaf_hash, SX_HASH_LEN);
	for (size_t i = 0; i < plen; i++) {
		if (sn == 0)
			goto out;
		if ((fn & 1) || fn == sn) {
			if (hash_parts(ctx, EVP_sha256(), PFX_NODE, proof[i], SX_HASH_LEN, r,
				       SX_HASH_LEN, r) < 0)
				goto out;
			if (!(fn & 1)) {
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
			}
		} else {
			if (hash_parts(ctx, EVP_sha256(), PFX_NODE, r, SX_HASH_LEN, proof[i],
				       SX_HASH_LEN, r) < 0)
				goto out;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn == 0 && CRYPTO_memcmp(r, root, SX_HASH_LEN) == 0)
		rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* ---- incremental file hasher -------------------------------------------- */

int sx_filehash_init(sx_filehash *h, uint32_t chunk, sx_err *err)
{
	memset(h, 0, sizeof(*h));
	if (chunk == 0)
		return sx_fail(err, SX_E_USAGE, "chunk size must be at least 1 byte");
	h->chunk = chunk;
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->leaf = EVP_MD_CTX_new();
	h->node = EVP_MD_CTX_new();
	if (h->md == NULL || h->leaf == NULL || h->node == NULL) {
		sx_filehash_free(h);
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256 is not available");
	}
	return 0;
}

void sx_filehash_free(sx_filehash *h)
{
	EVP_MD_CTX_free(h->leaf);
	EVP_MD_CTX_free(h->node);
	EVP_MD_free(h->md);
	h->leaf = h->node = NULL;
	h->md = NULL;
}

/* Appends a leaf to the compact range: each set low bit of the old count is
 * a perfect subtree of the same size that now merges with the new one. */
static int range_push(sx_filehash *h, uint8_t leaf[SX_HASH_LEN])
{
	for (uint64_t k = h->nleaves; k & 1; k >>= 1) {
		h->depth--;
		if (hash_parts(h->node, h->md, PFX_NODE, h->range[h->depth], SX_HASH_LEN, leaf,
			       SX_HASH_LEN, leaf) < 0)
			return -1;
	}
	memcpy(h->range[h->depth++], leaf, SX_HASH_LEN);
	h->nleaves++;
	return 0;
}

static int close_leaf(sx_filehash *h, sx_err *err)
{
	uint8_t leaf[SX_HASH_LEN];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(h->leaf, leaf, &n) != 1 || n != SX_HASH_LEN ||
	    range_push(h, leaf) < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "hashing a chunk");
	h->in_leaf = 0;
	return 0;
}

int sx_filehash_update(sx_filehash *h, const void *data, size_t len, sx_err *err)
{
	const uint8_t *p = data;
	static const uint8_t pfx = PFX_LEAF;
	if (h->ended && len > 0)
		return sx_fail(err, SX_E_OTHER, "hashing: data after the last leaf");
	if (len > UINT64_MAX - h->bytes)
		return sx_fail(err, SX_E_INTEGRITY, "file is too large");
	while (len > 0) {
		if (h->in_leaf == 0 && EVP_DigestInit_ex(h->leaf, h->md, NULL) != 1)
			return sx_fail_ssl(err, SX_E_OTHER, "hashing a chunk");
		if (h->in_leaf == 0 && EVP_DigestUpdate(h->leaf, &pfx, 1) != 1)
			return sx_fail_ssl(err, SX_E_OTHER, "hashing a chunk");
		size_t take = h->chunk - h->in_leaf;
		if (take > len)
			take = len;
		if (EVP_DigestUpdate(h->leaf, p, take) != 1)
			return sx_fail_ssl(err, SX_E_OTHER, "hashing a chunk");
		h->in_leaf += (uint32_t)take;
		h->bytes += take;
		p += take;
		len -= take;
		if (h->in_leaf == h->chunk && close_leaf(h, err) < 0)
			return -1;
	}
	return 0;
}

int sx_filehash_add_leaf(sx_filehash *h, const uint8_t leaf[SX_HASH_LEN], size_t len, sx_err *err)
{
	/* Only at a leaf boundary, and a short leaf is the file's last. */
	if (h->in_leaf != 0 || h->ended || len == 0 || len > h->chunk)
		return sx_fail(err, SX_E_OTHER, "hashing: a leaf out of place");
	if (len > UINT64_MAX - h->bytes)
		return sx_fail(err, SX_E_INTEGRITY, "file is too large");
	uint8_t acc[SX_HASH_LEN]; /* range_push folds into its argument */
	memcpy(acc, leaf, SX_HASH_LEN);
	if (range_push(h, acc) < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "hashing a chunk");
	h->bytes += len;
	h->ended = len < h->chunk;
	return 0;
}

int sx_filehash_checkpoint(sx_filehash *h, uint8_t root[SX_HASH_LEN], uint64_t *nleaves,
			   uint64_t *bytes, sx_err *err)
{
	uint8_t r[SX_HASH_LEN];
	if (h->depth == 0) {
		if (empty_root(r) < 0)
			return sx_fail_ssl(err, SX_E_OTHER, "SHA-256");
	} else {
		/* Folding the perfect subtrees right to left is MTH over all
		 * leaves: the largest power of two below n is the first one. */
		memcpy(r, h->range[h->depth - 1], SX_HASH_LEN);
		for (unsigned i = h->depth - 1; i > 0; i--)
			if (hash_parts(h->node, h->md, PFX_NODE, h->range[i - 1], SX_HASH_LEN, r,
				       SX_HASH_LEN, r) < 0)
				return sx_fail_ssl(err, SX_E_OTHER, "SHA-256");
	}
	memcpy(root, r, SX_HASH_LEN);
	if (nleaves)
		*nleaves = h->nleaves;
	if (bytes)
		*bytes = h->nleaves * (uint64_t)h->chunk;
	return 0;
}

int sx_filehash_final(sx_filehash *h, uint8_t root[SX_HASH_LEN], uint64_t *nleaves, uint64_t *bytes,
		      sx_err *err)
{
	if (h->in_leaf > 0 && close_leaf(h, err) < 0)
		return -1;
	if (sx_filehash_checkpoint(h, root, nleaves, NULL, err) < 0)
		return -1;
	if (bytes)
		*bytes = h->bytes;
	return 0;
}

/* ---- descriptors and statements ----------------------------------------- */

static int path_ok(const char *path, size_t *len, sx_err *err)
{
	sx_err e = {0};
	size_t n = path ? strnlen(path, SX_MPATH_MAX + 1) : 0;
	if (sx_path_check((const uint8_t *)path, n, &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "%s", e.msg);
	*len = n;
	return 0;
}

int sx_desc_encode(const sx_desc *d, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	size_t plen = 0;
	if (path_ok(d->path, &plen, err) < 0)
		return -1;
	sx_wbuf w = sx_wbuf_make(out, cap);
	sx_put_bytes(&w, d->root, SX_HASH_LEN);
	sx_put_u64(&w, d->size);
	sx_put_u64(&w, (uint64_t)d->mtime_sec);
	sx_put_u32(&w, d->mtime_nsec);
	sx_put_block16(&w, d->path, plen);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "descriptor does not fit");
	*len = w.len;
	return 0;
}

int sx_desc_leaf(const sx_desc *d, uint8_t out[SX_HASH_LEN], sx_err *err)
{
	uint8_t buf[SX_DESC_MAX];
	size_t n = 0;
	if (sx_desc_encode(d, buf, sizeof(buf), &n, err) < 0)
		return -1;
	if (sx_merkle_leaf(buf, n, out) < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256");
	return 0;
}

static const char DOM_BATCH[] = "sxfer batch signature v1";	   /* + its NUL: 25 bytes */
static const char DOM_CHECKPOINT[] = "sxfer stream checkpoint v1"; /* 27 bytes */
static const char DOM_RECEIPT[] = "sxfer receipt v1";		   /* 17 bytes */

void sx_stmt_batch(const uint8_t tid[SX_TID_LEN], uint64_t batch, int64_t time, uint32_t count,
		   uint32_t chunk, const uint8_t root[SX_HASH_LEN], uint8_t out[SX_STMT_BATCH_LEN])
{
	sx_wbuf w = sx_wbuf_make(out, SX_STMT_BATCH_LEN);
	sx_put_bytes(&w, DOM_BATCH, sizeof(DOM_BATCH));
	sx_put_bytes(&w, tid, SX_TID_LEN);
	sx_put_u64(&w, batch);
	sx_put_u64(&w, (uint64_t)time);
	sx_put_u32(&w, count);
	sx_put_u32(&w, chunk);
	sx_put_bytes(&w, root, SX_HASH_LEN);
}

int sx_stmt_checkpoint(const uint8_t tid[SX_TID_LEN], const char *path, uint32_t chunk,
		       uint64_t leaves, uint64_t bytes, const uint8_t root[SX_HASH_LEN],
		       int64_t time, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	size_t plen;
	if (path_ok(path, &plen, err) < 0)
		return -1;
	sx_wbuf w = sx_wbuf_make(out, cap);
	sx_put_bytes(&w, DOM_CHECKPOINT, sizeof(DOM_CHECKPOINT));
	sx_put_bytes(&w, tid, SX_TID_LEN);
	sx_put_block16(&w, path, plen);
	sx_put_u32(&w, chunk);
	sx_put_u64(&w, leaves);
	sx_put_u64(&w, bytes);
	sx_put_bytes(&w, root, SX_HASH_LEN);
	sx_put_u64(&w, (uint64_t)time);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "checkpoint statement does not fit");
	*len = w.len;
	return 0;
}

/* ---- signatures ---------------------------------------------------------- */

static const char *const alg_names[] = {
    [SX_SIGALG_NONE] = "none",
    [SX_SIGALG_ECDSA_SHA256] = "ecdsa-sha256",
    [SX_SIGALG_ED25519] = "ed25519",
    [SX_SIGALG_RSA_PSS_SHA256] = "rsa-pss-sha256",
};

const char *sx_sigalg_name(sx_sigalg a)
{
	return (unsigned)a < SX_ARRAY_LEN(alg_names) ? alg_names[a] : "none";
}

sx_sigalg sx_sigalg_for_key(EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC: return SX_SIGALG_ECDSA_SHA256;
	case EVP_PKEY_ED25519: return SX_SIGALG_ED25519;
	case EVP_PKEY_RSA: return SX_SIGALG_RSA_PSS_SHA256;
	default: return SX_SIGALG_NONE;
	}
}

/* ECDSA and RSA-PSS hash with SHA-256; Ed25519 is pure (RFC 8032 section
 * 5.1.6, no pre-hash). RSA-PSS: MGF1 with SHA-256, salt length = 32
 * (RFC 8017 section 9.1), checked exactly on verification. */
static int sig_setup(EVP_MD_CTX *ctx, EVP_PKEY *key, bool sign, sx_err *err)
{
	EVP_PKEY_CTX *pctx = NULL;
	sx_sigalg alg = sx_sigalg_for_key(key);
	const EVP_MD *md = alg == SX_SIGALG_ED25519 ? NULL : EVP_sha256();
	if (alg == SX_SIGALG_NONE)
		return sx_fail(err, SX_E_AUTH,
			       "unsupported key type for signatures (ECDSA, Ed25519 or RSA)");
	int ok = sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, key)
		      : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key);
	if (ok != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "signature setup");
	if (alg == SX_SIGALG_RSA_PSS_SHA256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))
		return sx_fail_ssl(err, SX_E_OTHER, "RSA-PSS setup");
	return 0;
}

int sx_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t *sig, size_t *siglen,
	    sx_err *err)
{
	int rc = -1;
	size_t n = SX_SIG_MAX;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	SX_ENSURE(ctx != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sig_setup(ctx, key, true, err));
	SX_ENSURE(EVP_PKEY_get_size(key) > 0 && EVP_PKEY_get_size(key) <= SX_SIG_MAX, err,
		  SX_E_AUTH, "signing key too large");
	if (EVP_DigestSign(ctx, sig, &n, msg, len) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "signing");
		goto out;
	}
	*siglen = n;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int sx_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen,
	      sx_err *err)
{
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	SX_ENSURE(ctx != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sig_setup(ctx, pub, false, err));
	if (EVP_DigestVerify(ctx, sig, siglen, msg, len) != 1) {
		ERR_clear_error();
		sx_fail(err, SX_E_INTEGRITY, "signature does not verify");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* ---- text helpers -------------------------------------------------------- */

/* A growable text buffer with a named cap. */
typedef struct tbuf {
	char *p;
	size_t len, cap, max;
	bool fail;
} tbuf;

static void tb_add(tbuf *t, const char *s, size_t n)
{
	size_t need;
	if (t->fail)
		return;
	if (!sx_add_ok(t->len, n + 1, &need) || need > t->max) {
		t->fail = true;
		return;
	}
	if (need > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > t->max)
			cap = t->max;
		char *q = realloc(t->p, cap);
		if (q == NULL) {
			t->fail = true;
			return;
		}
		t->p = q;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void SX_PRINTF(2, 3) tb_printf(tbuf *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		t->fail = true;
	else
		tb_add(t, buf, (size_t)n);
}

static void tb_hex(tbuf *t, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char two[2];
	for (size_t i = 0; i < n; i++) {
		two[0] = digits[b[i] >> 4];
		two[1] = digits[b[i] & 15];
		tb_add(t, two, 2);
	}
}

static void tb_b64(tbuf *t, const uint8_t *b, size_t n)
{
	unsigned char out[4 * ((SX_SIG_MAX + 2) / 3) + 1];
	if (n > SX_SIG_MAX) {
		t->fail = true;
		return;
	}
	int m = EVP_EncodeBlock(out, b, (int)n);
	tb_add(t, (const char *)out, (size_t)m);
}

/* RFC 3986 section 2.3 unreserved characters, and '/', stay as they are;
 * every other byte is %XX with upper-case hex (section 2.1). One spelling per
 * path, so the text form is canonical. */
static bool pct_plain(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
}

static void tb_pct(tbuf *t, const char *s)
{
	static const char digits[] = "0123456789ABCDEF";
	for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
		if (pct_plain(*p)) {
			tb_add(t, (const char *)p, 1);
		} else {
			char e[3] = {'%', digits[*p >> 4], digits[*p & 15]};
			tb_add(t, e, 3);
		}
	}
}

static void tb_time(tbuf *t, int64_t v)
{
	char buf[40];
	sx_time_format((time_t)v, buf, sizeof(buf));
	tb_add(t, buf, strlen(buf));
}

static void tb_chain(tbuf *t, STACK_OF(X509) * chain)
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
		tb_add(t, data, (size_t)n);
	BIO_free(b);
}

/* Reading: every line and every field goes through the bounded cursor of
 * engine/wire, the one the wire messages are read with. Every line ends with
 * LF; a CR or a NUL anywhere is refused (docs/SIGNATURES.md: the encoding is
 * exact, so encode(decode(x)) == x). */
#define LINE_MAX_LEN 16384

/* Why next_line refused a line. */
typedef enum line_err {
	LINE_TRUNCATED = -1, /* no LF before the end of the text */
	LINE_TOO_LONG = -2,
	LINE_CR = -3,
	LINE_NUL = -4,
} line_err;

static const char *line_err_text(int e)
{
	switch (e) {
	case LINE_TOO_LONG: return "a line longer than 16384 bytes";
	case LINE_CR: return "a CR (line ends are LF only)";
	case LINE_NUL: return "a NUL byte";
	default: return "the text is truncated";
	}
}

/* The next line, without its LF, as a cursor of its own. */
static int next_line(sx_cur *c, sx_cur *l)
{
	sx_cur t = *c;
	size_t left = sx_cur_left(c), scan = left > LINE_MAX_LEN ? LINE_MAX_LEN + 1 : left;
	const uint8_t *p, *nl;
	uint8_t lf;
	if (sx_cur_bytes(&t, scan, &p) < 0)
		return LINE_TRUNCATED;
	nl = memchr(p, '\n', scan);
	size_t n = nl ? (size_t)(nl - p) : scan;
	if (memchr(p, '\r', n) != NULL)
		return LINE_CR;
	if (memchr(p, '\0', n) != NULL)
		return LINE_NUL;
	if (nl == NULL)
		return scan > LINE_MAX_LEN ? LINE_TOO_LONG : LINE_TRUNCATED;
	if (sx_cur_bytes(c, n, &p) < 0 || sx_cur_u8(c, &lf) < 0)
		return LINE_TRUNCATED;
	*l = sx_cur_make(p, n);
	return 0;
}

/* What is left in a cursor, not consumed: its length, and the bytes at *p. */
static size_t cur_view(const sx_cur *c, const uint8_t **p)
{
	sx_cur t = *c;
	size_t n = sx_cur_left(c);
	*p = NULL;
	return sx_cur_bytes(&t, n, p) == 0 ? n : 0;
}

/* The whole of a cursor is exactly s. */
static bool cur_is(const sx_cur *c, const char *s)
{
	const uint8_t *p;
	size_t n = cur_view(c, &p);
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* At most 64 bytes of what is left, for an error message. */
static int cur_show(const sx_cur *c, const char **s)
{
	const uint8_t *p;
	size_t n = cur_view(c, &p);
	*s = (const char *)p;
	return (int)(n > 64 ? 64 : n);
}

/* The next byte without consuming it; -1 at the end. */
static int cur_peek(const sx_cur *c)
{
	sx_cur t = *c;
	uint8_t b;
	return sx_cur_u8(&t, &b) < 0 ? -1 : b;
}

/* Consumes ch when it is the next byte. */
static bool cur_skip(sx_cur *c, uint8_t ch)
{
	uint8_t b;
	return cur_peek(c) == ch && sx_cur_u8(c, &b) == 0;
}

/* Consumes the bytes before the next `stop` (or the end) and gives them as a
 * cursor of their own; `stop` stays. */
static sx_cur cur_until(sx_cur *c, uint8_t stop)
{
	const uint8_t *p, *hit;
	size_t left = cur_view(c, &p);
	hit = left ? memchr(p, stop, left) : NULL;
	size_t n = hit ? (size_t)(hit - p) : left;
	if (sx_cur_bytes(c, n, &p) < 0)
		return sx_cur_make(p, 0);
	return sx_cur_make(p, n);
}

/* The rest of a cursor, consumed; *n bytes at *p. */
static void cur_rest(sx_cur *c, const uint8_t **p, size_t *n)
{
	*n = sx_cur_left(c);
	if (sx_cur_bytes(c, *n, p) < 0)
		*n = 0;
}

/* A reader of "key: value" lines, keys in a fixed order. */
typedef struct kv_reader {
	sx_cur cur;
	const char *const *keys; /* every key of the format, in order */
	size_t nkeys;
	size_t next; /* index of the key expected next */
	const char *end_marker;
	sx_err *err;
} kv_reader;

static int key_index(const kv_reader *r, const sx_cur *k)
{
	for (size_t i = 0; i < r->nkeys; i++)
		if (cur_is(k, r->keys[i]))
			return (int)i;
	return -1;
}

static int key_find(const kv_reader *r, const char *key)
{
	sx_cur k = sx_cur_make((const uint8_t *)key, strlen(key));
	return key_index(r, &k);
}

/* Reads the line for `key` (which must be the one expected here); *val is
 * the value: at least one byte, not starting with a space. */
static int kv_take(kv_reader *r, const char *key, sx_cur *val)
{
	sx_cur l, k;
	int e = next_line(&r->cur, &l);
	if (e == LINE_TRUNCATED)
		return sx_fail(r->err, SX_E_INTEGRITY, "missing field '%s' (text truncated)", key);
	if (e < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': %s", key, line_err_text(e));
	if (cur_is(&l, r->end_marker))
		return sx_fail(r->err, SX_E_INTEGRITY, "missing field '%s'", key);
	k = cur_until(&l, ':');
	if (!cur_skip(&l, ':'))
		return sx_fail(r->err, SX_E_INTEGRITY, "malformed line where field '%s' belongs",
			       key);
	if (!cur_is(&k, key)) {
		int idx = key_index(r, &k);
		const char *ks;
		int kn = cur_show(&k, &ks);
		if (idx < 0)
			return sx_fail(r->err, SX_E_INTEGRITY, "unknown field '%.*s'", kn, ks);
		if ((size_t)idx < r->next)
			return sx_fail(r->err, SX_E_INTEGRITY, "field '%s' repeated", r->keys[idx]);
		return sx_fail(r->err, SX_E_INTEGRITY, "missing field '%s' (found '%s')", key,
			       r->keys[idx]);
	}
	r->next = (size_t)key_find(r, key) + 1;
	if (!cur_skip(&l, ' ') || sx_cur_left(&l) == 0 || cur_peek(&l) == ' ')
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': expected 'key: value'", key);
	*val = l;
	return 0;
}

/* Canonical unsigned decimal (no sign, no leading zero, within max): the
 * run of digits at the cursor, consumed. */
static int cur_dec(sx_cur *c, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;
	uint8_t d;
	int first = cur_peek(c);
	while (cur_peek(c) >= '0' && cur_peek(c) <= '9') {
		if (sx_cur_u8(c, &d) < 0 || (n > 0 && first == '0'))
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(d - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(d - '0');
		n++;
	}
	if (n == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int kv_dec(kv_reader *r, const char *key, uint64_t max, uint64_t *out)
{
	sx_cur v;
	if (kv_take(r, key, &v) < 0)
		return -1;
	if (cur_dec(&v, max, out) < 0 || sx_cur_end(&v) < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not a number in range", key);
	return 0;
}

/* 2*outlen lower-case hex digits (one spelling), consumed. */
static int cur_hex(sx_cur *c, uint8_t *out, size_t outlen)
{
	const uint8_t *s;
	if (sx_cur_bytes(c, 2 * outlen, &s) < 0)
		return -1;
	for (size_t i = 0; i < 2 * outlen; i++) {
		int d;
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(d << 4);
		else
			out[i / 2] |= (uint8_t)d;
	}
	return 0;
}

static int kv_hex(kv_reader *r, const char *key, uint8_t *out, size_t outlen)
{
	sx_cur v;
	if (kv_take(r, key, &v) < 0)
		return -1;
	if (cur_hex(&v, out, outlen) < 0 || sx_cur_end(&v) < 0)
		return sx_fail(r->err, SX_E_INTEGRITY,
			       "field '%s': expected %zu lower-case hex digits", key, 2 * outlen);
	return 0;
}

static int kv_time(kv_reader *r, const char *key, int64_t *out)
{
	char v[40], back[40];
	const uint8_t *p;
	size_t n;
	sx_cur c;
	time_t t;
	if (kv_take(r, key, &c) < 0)
		return -1;
	cur_rest(&c, &p, &n);
	if (n >= sizeof(v))
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not a UTC time", key);
	memcpy(v, p, n);
	v[n] = '\0';
	/* RFC 3339 section 5.6 in UTC, seconds only: re-formatting must give
	 * the same text, so only the canonical spelling is accepted. */
	if (sx_time_parse(v, &t) < 0 || t < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not a UTC time", key);
	sx_time_format(t, back, sizeof(back));
	if (strcmp(v, back) != 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': expected YYYY-MM-DDTHH:MM:SSZ",
			       key);
	*out = (int64_t)t;
	return 0;
}

static int kv_fixed(kv_reader *r, const char *key, const char *want)
{
	sx_cur v;
	if (kv_take(r, key, &v) < 0)
		return -1;
	if (!cur_is(&v, want)) {
		const char *vs;
		int vn = cur_show(&v, &vs);
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': unsupported value '%.*s'", key,
			       vn, vs);
	}
	return 0;
}

static int hexval(int x)
{
	if (x >= '0' && x <= '9')
		return x - '0';
	if (x >= 'A' && x <= 'F')
		return x - 'A' + 10;
	return -1; /* lower case is not the canonical spelling */
}

/* The rest of v, percent-decoded (RFC 3986 section 2.1) into out (cap
 * bytes, NUL-terminated) and checked with sx_path_check. */
static int pct_decode(sx_cur *v, char *out, size_t cap, sx_err *err, const char *key)
{
	size_t o = 0;
	sx_err e = {0};
	uint8_t c;
	const uint8_t *x;
	while (sx_cur_u8(v, &c) == 0) {
		if (c == '%') {
			int hi = -1, lo = -1;
			if (sx_cur_bytes(v, 2, &x) == 0) {
				hi = hexval(x[0]);
				lo = hexval(x[1]);
			}
			if (hi < 0 || lo < 0 || pct_plain((uint8_t)(hi << 4 | lo)))
				return sx_fail(err, SX_E_INTEGRITY,
					       "field '%s': bad or non-canonical %%-escape", key);
			c = (uint8_t)(hi << 4 | lo);
		} else if (!pct_plain(c)) {
			return sx_fail(err, SX_E_INTEGRITY,
				       "field '%s': character 0x%02x must be %%-escaped", key, c);
		}
		if (o + 1 >= cap)
			return sx_fail(err, SX_E_INTEGRITY, "field '%s': path too long", key);
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (sx_path_check((const uint8_t *)out, o, &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "field '%s': %s", key, e.msg);
	return 0;
}

static int kv_path(kv_reader *r, const char *key, char *out, size_t cap)
{
	sx_cur v;
	if (kv_take(r, key, &v) < 0)
		return -1;
	return pct_decode(&v, out, cap, r->err, key);
}

static int kv_alg(kv_reader *r, const char *key, sx_sigalg *out)
{
	sx_cur v;
	if (kv_take(r, key, &v) < 0)
		return -1;
	for (unsigned a = SX_SIGALG_ECDSA_SHA256; a < SX_ARRAY_LEN(alg_names); a++)
		if (cur_is(&v, alg_names[a])) {
			*out = (sx_sigalg)a;
			return 0;
		}
	const char *vs;
	int vn = cur_show(&v, &vs);
	return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': unknown algorithm '%.*s'", key, vn, vs);
}

#define B64_SIG_MAX (4 * ((SX_SIG_MAX + 2) / 3))

/* Strict base64 (RFC 4648 section 4): the value must be exactly what
 * encoding the decoded bytes gives back. */
static int kv_b64(kv_reader *r, const char *key, uint8_t *out, size_t cap, size_t *len)
{
	unsigned char dec[B64_SIG_MAX], back[B64_SIG_MAX + 1];
	const uint8_t *v;
	size_t n, pad;
	sx_cur c;
	if (kv_take(r, key, &c) < 0)
		return -1;
	cur_rest(&c, &v, &n);
	if (n > B64_SIG_MAX)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': too long", key);
	if (n == 0 || n % 4 != 0)
		goto bad;
	pad = (v[n - 1] == '=') + (v[n - 2] == '=');
	int m = EVP_DecodeBlock(dec, v, (int)n);
	if (m < 0 || (size_t)m < pad)
		goto bad;
	m -= (int)pad;
	if ((size_t)m > cap)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': too long", key);
	if (EVP_EncodeBlock(back, dec, m) != (int)n || memcmp(back, v, n) != 0)
		goto bad;
	memcpy(out, dec, (size_t)m);
	*len = (size_t)m;
	return 0;
bad:
	ERR_clear_error();
	return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not canonical base64", key);
}

static int read_begin(sx_cur *c, const char *marker, const char *what, sx_err *err)
{
	sx_cur l;
	int e = next_line(c, &l);
	if (e < 0 && e != LINE_TRUNCATED)
		return sx_fail(err, SX_E_INTEGRITY, "not %s: its first line holds %s", what,
			       line_err_text(e));
	if (e < 0 || !cur_is(&l, marker))
		return sx_fail(err, SX_E_INTEGRITY, "not %s: the first line must be '%s'", what,
			       marker);
	return 0;
}

static int read_end(kv_reader *r, const char *what)
{
	sx_cur l, k;
	int e = next_line(&r->cur, &l);
	if (e < 0 && e != LINE_TRUNCATED)
		return sx_fail(r->err, SX_E_INTEGRITY, "%s: %s", what, line_err_text(e));
	if (e == 0 && cur_is(&l, r->end_marker))
		return 0;
	if (e == 0) {
		k = cur_until(&l, ':');
		if (cur_skip(&l, ':')) {
			int idx = key_index(r, &k);
			const char *ks;
			int kn = cur_show(&k, &ks);
			if (idx >= 0)
				return sx_fail(r->err, SX_E_INTEGRITY, "field '%s' repeated",
					       r->keys[idx]);
			return sx_fail(r->err, SX_E_INTEGRITY, "unknown field '%.*s'", kn, ks);
		}
	}
	return sx_fail(r->err, SX_E_INTEGRITY, "%s: missing '%s'", what, r->end_marker);
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
		e = next_line(c, &l);
		SX_ENSURE(e == 0, err, SX_E_INTEGRITY, "the %s's certificate %d: %s", who, i + 1,
			  e == LINE_TRUNCATED ? "truncated" : line_err_text(e));
		if (cur_is(&l, PEM_CERT_END))
			break;
		size_t ln = sx_cur_left(&l);
		/* Only the last line of the base64 is shorter than 64. */
		SX_ENSURE(!last && ln >= 1 && ln <= PEM_LINE && ln <= CERT_B64_MAX - n, err,
			  SX_E_INTEGRITY, "the %s's certificate %d is not strict PEM", who, i + 1);
		last = ln < PEM_LINE;
		cur_rest(&l, &p, &ln);
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
static int read_chain(sx_cur *c, STACK_OF(X509) * *out, const char *who, sx_err *err)
{
	int rc = -1, e;
	X509 *x = NULL;
	STACK_OF(X509) *sk = sk_X509_new_null();
	sx_cur l;
	SX_ENSURE(sk != NULL, err, SX_E_OTHER, "out of memory");
	while (sx_cur_left(c) > 0) {
		e = next_line(c, &l);
		SX_ENSURE(e == 0 || e == LINE_TRUNCATED, err, SX_E_INTEGRITY,
			  "the %s's certificate chain: %s", who, line_err_text(e));
		bool begin = e == 0 && cur_is(&l, PEM_CERT_BEGIN);
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

static STACK_OF(X509) * chain_copy(STACK_OF(X509) * chain)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	for (int i = 0; sk != NULL && i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		if (X509_up_ref(x) != 1 || sk_X509_push(sk, x) <= 0) {
			sk_X509_pop_free(sk, X509_free);
			return NULL;
		}
	}
	return sk;
}

/* Runs the one validation policy on chain[0] with the rest as
 * intermediates. */
static int chain_policy(const sx_policy *pol, STACK_OF(X509) * chain, sx_role role, const char *who,
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

/* ---- .sxsig -------------------------------------------------------------- */

#define SXSIG_BEGIN   "-----BEGIN SXFER SIGNATURE-----"
#define SXSIG_END     "-----END SXFER SIGNATURE-----"
#define CHUNK_SIG_MAX (1u << 30)

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
	tbuf t = {.max = SX_SXSIG_TEXT_MAX};
	int rc = -1;
	SX_GUARD(sxsig_consistent(s, err));
	SX_ENSURE(sk_X509_num(s->chain) >= 1 && sk_X509_num(s->chain) <= SX_CHAIN_MAX, err,
		  SX_E_USAGE, "a .sxsig needs the signer's chain (1 to %d certificates)",
		  SX_CHAIN_MAX);
	tb_printf(&t, "%s\nversion: %d\nhash: sha256\nchunk-size: %u\nfile-size: %llu\n",
		  SXSIG_BEGIN, SX_SXSIG_VERSION, s->chunk, (unsigned long long)s->file_size);
	tb_add(&t, "file-root: ", 11);
	tb_hex(&t, s->file_root, SX_HASH_LEN);
	tb_add(&t, "\npath: ", 7);
	tb_pct(&t, s->path);
	tb_printf(&t, "\nmtime: %s%llu.%09u\nkind: %s\ntransfer-id: ", s->mtime_sec < 0 ? "-" : "",
		  s->mtime_sec < 0 ? 0ull - (unsigned long long)s->mtime_sec
				   : (unsigned long long)s->mtime_sec,
		  s->mtime_nsec, s->kind == SX_KIND_BATCH ? "batch" : "checkpoint");
	tb_hex(&t, s->tid, SX_TID_LEN);
	tb_printf(&t, "\nbatch: %llu\nbatch-files: %u\nleaf-index: %u\nproof: ",
		  (unsigned long long)s->batch, s->batch_files, s->leaf_index);
	if (s->proof_len == 0)
		tb_add(&t, "-", 1);
	for (size_t i = 0; i < s->proof_len; i++) {
		if (i)
			tb_add(&t, ",", 1);
		tb_hex(&t, s->proof[i], SX_HASH_LEN);
	}
	tb_add(&t, "\nbatch-root: ", 13);
	tb_hex(&t, s->batch_root, SX_HASH_LEN);
	tb_add(&t, "\nsigned-time: ", 14);
	tb_time(&t, s->signed_time);
	tb_printf(&t, "\nsignature-algorithm: %s\nsignature: ", sx_sigalg_name(s->alg));
	tb_b64(&t, s->sig, s->sig_len);
	tb_printf(&t, "\n%s\n", SXSIG_END);
	tb_chain(&t, s->chain);
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
static int parse_mtime(kv_reader *r, sx_sxsig *s)
{
	sx_cur v;
	const uint8_t *ns;
	uint64_t sec, nsec = 0;
	if (kv_take(r, "mtime", &v) < 0)
		return -1;
	bool neg = cur_skip(&v, '-');
	if (cur_dec(&v, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &sec) < 0 ||
	    (neg && sec == 0) || !cur_skip(&v, '.') || sx_cur_bytes(&v, 9, &ns) < 0 ||
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
static int parse_proof(kv_reader *r, sx_sxsig *s)
{
	sx_cur v;
	if (kv_take(r, "proof", &v) < 0)
		return -1;
	s->proof_len = 0;
	if (cur_is(&v, "-"))
		return 0;
	for (;;) {
		if (s->proof_len >= SX_PROOF_MAX)
			return sx_fail(r->err, SX_E_INTEGRITY, "field 'proof': too many nodes");
		if (cur_hex(&v, s->proof[s->proof_len], SX_HASH_LEN) < 0 ||
		    (sx_cur_end(&v) < 0 && cur_peek(&v) != ','))
			return sx_fail(r->err, SX_E_INTEGRITY,
				       "field 'proof': node %zu is not 64 lower-case hex digits",
				       s->proof_len + 1);
		s->proof_len++;
		if (sx_cur_end(&v) == 0)
			return 0;
		if (!cur_skip(&v, ',') || sx_cur_end(&v) == 0)
			return sx_fail(r->err, SX_E_INTEGRITY,
				       "field 'proof': node %zu is not 64 lower-case hex digits",
				       s->proof_len + 1);
	}
}

static int parse_kind(kv_reader *r, sx_sxsig *s)
{
	sx_cur v;
	if (kv_take(r, "kind", &v) < 0)
		return -1;
	if (cur_is(&v, "batch"))
		s->kind = SX_KIND_BATCH;
	else if (cur_is(&v, "checkpoint"))
		s->kind = SX_KIND_CHECKPOINT;
	else
		return sx_fail(r->err, SX_E_INTEGRITY, "field 'kind': must be batch or checkpoint");
	return 0;
}

int sx_sxsig_decode(const char *text, size_t len, sx_sxsig *s, sx_err *err)
{
	kv_reader r = {.cur = sx_cur_make((const uint8_t *)text, len),
		       .keys = sxsig_keys,
		       .nkeys = SX_ARRAY_LEN(sxsig_keys),
		       .end_marker = SXSIG_END,
		       .err = err};
	uint64_t v;
	int rc = -1;
	memset(s, 0, sizeof(*s));
	SX_ENSURE(len <= SX_SXSIG_TEXT_MAX, err, SX_E_INTEGRITY, "a .sxsig larger than %u bytes",
		  SX_SXSIG_TEXT_MAX);
	SX_GUARD(read_begin(&r.cur, SXSIG_BEGIN, "a .sxsig", err));
	SX_GUARD(kv_fixed(&r, "version", "1"));
	SX_GUARD(kv_fixed(&r, "hash", "sha256"));
	SX_GUARD(kv_dec(&r, "chunk-size", CHUNK_SIG_MAX, &v));
	s->chunk = (uint32_t)v;
	SX_GUARD(kv_dec(&r, "file-size", UINT64_MAX, &s->file_size));
	SX_GUARD(kv_hex(&r, "file-root", s->file_root, SX_HASH_LEN));
	SX_GUARD(kv_path(&r, "path", s->path, sizeof(s->path)));
	SX_GUARD(parse_mtime(&r, s));
	SX_GUARD(parse_kind(&r, s));
	SX_GUARD(kv_hex(&r, "transfer-id", s->tid, SX_TID_LEN));
	SX_GUARD(kv_dec(&r, "batch", UINT64_MAX, &s->batch));
	SX_GUARD(kv_dec(&r, "batch-files", UINT32_MAX, &v));
	s->batch_files = (uint32_t)v;
	SX_GUARD(kv_dec(&r, "leaf-index", UINT32_MAX, &v));
	s->leaf_index = (uint32_t)v;
	SX_GUARD(parse_proof(&r, s));
	SX_GUARD(kv_hex(&r, "batch-root", s->batch_root, SX_HASH_LEN));
	SX_GUARD(kv_time(&r, "signed-time", &s->signed_time));
	SX_GUARD(kv_alg(&r, "signature-algorithm", &s->alg));
	SX_GUARD(kv_b64(&r, "signature", s->sig, SX_SIG_MAX, &s->sig_len));
	SX_GUARD(read_end(&r, "a .sxsig"));
	SX_GUARD(sxsig_consistent(s, err));
	SX_GUARD(read_chain(&r.cur, &s->chain, "signer", err));
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

/* The signature over a statement, with the algorithm the signer's key
 * dictates (a .sxsig cannot pick a weaker one). */
static int check_sig(X509 *signer, sx_sigalg alg, const uint8_t *msg, size_t len,
		     const uint8_t *sig, size_t siglen, const char *what, sx_err *err)
{
	EVP_PKEY *pub = X509_get0_pubkey(signer);
	if (pub == NULL || sx_sigalg_for_key(pub) != alg)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s: algorithm '%s' does not match the signer's key", what,
			       sx_sigalg_name(alg));
	sx_err e = {0};
	if (sx_verify(pub, msg, len, sig, siglen, &e) < 0)
		return sx_fail(err, e.cls, "%s does not verify", what);
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
					   s->batch_root) < 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "inclusion proof does not lead to the batch root");
	}
	if (chain_policy(pol, s->chain, SX_ROLE_CLIENT, "signer", err) < 0)
		return -1;
	leaf_cert = sk_X509_value(s->chain, 0);
	if (sx_sxsig_statement(s, stmt, sizeof(stmt), &slen, err) < 0)
		return -1;
	if (check_sig(leaf_cert, s->alg, stmt, slen, s->sig, s->sig_len,
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

/* ---- batches and checkpoints --------------------------------------------- */

int sx_batch_sign(sx_batch *b, const sx_desc *descs, uint32_t n, uint32_t chunk,
		  const uint8_t tid[SX_TID_LEN], uint64_t number, int64_t time, EVP_PKEY *key,
		  sx_err *err)
{
	uint8_t stmt[SX_STMT_BATCH_LEN];
	size_t bytes;
	int rc = -1;
	memset(b, 0, sizeof(*b));
	SX_ENSURE(n >= 1, err, SX_E_USAGE, "a batch needs at least one file");
	SX_ENSURE(chunk >= 1 && chunk <= CHUNK_SIG_MAX, err, SX_E_USAGE, "chunk size out of range");
	SX_ENSURE(sx_mul_ok(n, SX_HASH_LEN, &bytes), err, SX_E_USAGE, "too many files");
	b->alg = sx_sigalg_for_key(key);
	SX_ENSURE(b->alg != SX_SIGALG_NONE, err, SX_E_AUTH,
		  "unsupported key type for signatures (ECDSA, Ed25519 or RSA)");
	b->leaves = malloc(bytes);
	SX_ENSURE(b->leaves != NULL, err, SX_E_OTHER, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		SX_GUARD(sx_desc_leaf(&descs[i], b->leaves[i], err));
	SX_ENSURE(sx_merkle_root((const uint8_t(*)[SX_HASH_LEN])b->leaves, n, b->root) == 0, err,
		  SX_E_OTHER, "hashing the batch");
	memcpy(b->tid, tid, SX_TID_LEN);
	b->number = number;
	b->time = time;
	b->chunk = chunk;
	b->count = n;
	sx_stmt_batch(tid, number, time, n, chunk, b->root, stmt);
	SX_GUARD(sx_sign(key, stmt, sizeof(stmt), b->sig, &b->sig_len, err));
	rc = 0;
out:
	if (rc < 0)
		sx_batch_free(b);
	return rc;
}

void sx_batch_free(sx_batch *b)
{
	sx_mtree_free(b->tree);
	b->tree = NULL;
	free(b->leaves);
	b->leaves = NULL;
}

int sx_batch_sxsig(sx_batch *b, const sx_desc *descs, uint32_t i, STACK_OF(X509) * chain,
		   sx_sxsig *out, sx_err *err)
{
	const sx_desc *d = &descs[i];
	memset(out, 0, sizeof(*out));
	if (i >= b->count)
		return sx_fail(err, SX_E_USAGE, "file %u is not in the batch", i);
	if (b->tree == NULL &&
	    sx_mtree_build(&b->tree, (const uint8_t(*)[SX_HASH_LEN])b->leaves, b->count) < 0)
		return sx_fail(err, SX_E_OTHER, "building the batch tree");
	if (sx_mtree_proof(b->tree, i, out->proof, SX_PROOF_MAX, &out->proof_len) < 0)
		return sx_fail(err, SX_E_OTHER, "computing an inclusion proof");
	size_t plen = strnlen(d->path, SX_MPATH_MAX + 1);
	if (plen > SX_MPATH_MAX)
		return sx_fail(err, SX_E_USAGE, "path too long");
	memcpy(out->path, d->path, plen + 1);
	out->kind = SX_KIND_BATCH;
	out->chunk = b->chunk;
	out->file_size = d->size;
	memcpy(out->file_root, d->root, SX_HASH_LEN);
	out->mtime_sec = d->mtime_sec;
	out->mtime_nsec = d->mtime_nsec;
	memcpy(out->tid, b->tid, SX_TID_LEN);
	out->batch = b->number;
	out->batch_files = b->count;
	out->leaf_index = i;
	memcpy(out->batch_root, b->root, SX_HASH_LEN);
	out->signed_time = b->time;
	out->alg = b->alg;
	memcpy(out->sig, b->sig, b->sig_len);
	out->sig_len = b->sig_len;
	out->chain = chain_copy(chain);
	if (out->chain == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	return 0;
}

int sx_checkpoint_sxsig(const uint8_t tid[SX_TID_LEN], const char *path, uint32_t chunk,
			uint64_t leaves, const uint8_t root[SX_HASH_LEN], int64_t time,
			EVP_PKEY *key, STACK_OF(X509) * chain, sx_sxsig *out, sx_err *err)
{
	uint8_t stmt[SX_STMT_CHECKPOINT_MAX];
	size_t slen = 0, plen = 0;
	int rc = -1;
	memset(out, 0, sizeof(*out));
	SX_GUARD(path_ok(path, &plen, err));
	SX_ENSURE(chunk >= 1 && chunk <= CHUNK_SIG_MAX && leaves <= UINT64_MAX / chunk, err,
		  SX_E_USAGE, "checkpoint out of range");
	memcpy(out->path, path, plen + 1);
	out->kind = SX_KIND_CHECKPOINT;
	out->chunk = chunk;
	out->file_size = leaves * chunk;
	memcpy(out->file_root, root, SX_HASH_LEN);
	memcpy(out->batch_root, root, SX_HASH_LEN);
	memcpy(out->tid, tid, SX_TID_LEN);
	out->batch_files = 1;
	out->signed_time = time;
	out->alg = sx_sigalg_for_key(key);
	SX_GUARD(sx_sxsig_statement(out, stmt, sizeof(stmt), &slen, err));
	SX_GUARD(sx_sign(key, stmt, slen, out->sig, &out->sig_len, err));
	out->chain = chain_copy(chain);
	SX_ENSURE(out->chain != NULL, err, SX_E_OTHER, "out of memory");
	rc = 0;
out:
	return rc;
}

/* ---- receipts ------------------------------------------------------------ */

#define RCPT_BEGIN "-----BEGIN SXFER RECEIPT-----"
#define RCPT_END   "-----END SXFER RECEIPT-----"

static const char *const rcpt_keys[] = {
    "version",	"hash",	      "transfer-id", "batch", "batch-root",	     "time",	  "sender",
    "receiver", "chunk-size", "files",	     "file",  "signature-algorithm", "signature",
};

int sx_receipt_add(sx_receipt *r, const uint8_t root[SX_HASH_LEN], uint64_t size, const char *path,
		   sx_err *err)
{
	size_t plen;
	if (path_ok(path, &plen, err) < 0)
		return -1;
	if (r->count >= SX_RECEIPT_FILES_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "a receipt holds at most %u files",
			       SX_RECEIPT_FILES_MAX);
	if ((r->count & (r->count - 1)) == 0) { /* grow at powers of two */
		size_t cap = r->count ? 2 * (size_t)r->count : 1;
		sx_receipt_file *f = realloc(r->files, cap * sizeof(*f));
		if (f == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		r->files = f;
	}
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
		SX_GUARD(path_ok(r->files[i].path, &plen, err));
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
	r->chain = chain_copy(chain);
	SX_ENSURE(r->chain != NULL, err, SX_E_OTHER, "out of memory");
	rc = 0;
out:
	free(stmt);
	return rc;
}

int sx_receipt_encode(const sx_receipt *r, char **out, size_t *len, sx_err *err)
{
	tbuf t = {.max = SX_RECEIPT_TEXT_MAX};
	int rc = -1;
	SX_ENSURE(sk_X509_num(r->chain) >= 1 && sk_X509_num(r->chain) <= SX_CHAIN_MAX, err,
		  SX_E_USAGE, "a receipt needs the receiver's chain");
	SX_ENSURE(r->sig_len >= 1 && r->sig_len <= SX_SIG_MAX, err, SX_E_USAGE,
		  "the receipt is not signed");
	SX_ENSURE(r->chunk >= 1 && r->chunk <= CHUNK_SIG_MAX, err, SX_E_USAGE,
		  "the receipt has no chunk size");
	tb_printf(&t, "%s\nversion: 1\nhash: sha256\ntransfer-id: ", RCPT_BEGIN);
	tb_hex(&t, r->tid, SX_TID_LEN);
	tb_printf(&t, "\nbatch: %llu\nbatch-root: ", (unsigned long long)r->batch);
	tb_hex(&t, r->batch_root, SX_HASH_LEN);
	tb_add(&t, "\ntime: ", 7);
	tb_time(&t, r->time);
	tb_add(&t, "\nsender: ", 9);
	tb_hex(&t, r->sender_fp, SX_HASH_LEN);
	tb_add(&t, "\nreceiver: ", 11);
	tb_hex(&t, r->receiver_fp, SX_HASH_LEN);
	tb_printf(&t, "\nchunk-size: %u\nfiles: %u\n", r->chunk, r->count);
	for (uint32_t i = 0; i < r->count; i++) {
		tb_add(&t, "file: ", 6);
		tb_hex(&t, r->files[i].root, SX_HASH_LEN);
		tb_printf(&t, " %llu ", (unsigned long long)r->files[i].size);
		tb_pct(&t, r->files[i].path);
		tb_add(&t, "\n", 1);
	}
	tb_printf(&t, "signature-algorithm: %s\nsignature: ", sx_sigalg_name(r->alg));
	tb_b64(&t, r->sig, r->sig_len);
	tb_printf(&t, "\n%s\n", RCPT_END);
	tb_chain(&t, r->chain);
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
static int parse_file_line(kv_reader *r, uint32_t i, sx_receipt *rc)
{
	char path[SX_MPATH_MAX + 1];
	uint8_t root[SX_HASH_LEN];
	uint64_t size;
	sx_cur v;
	r->next = (size_t)key_find(r, "file"); /* the one key that repeats */
	if (kv_take(r, "file", &v) < 0)
		return -1;
	if (cur_hex(&v, root, SX_HASH_LEN) < 0 || !cur_skip(&v, ' '))
		return sx_fail(r->err, SX_E_INTEGRITY, "field 'file' %u: expected 'ROOT SIZE PATH'",
			       i + 1);
	if (cur_dec(&v, UINT64_MAX, &size) < 0 || !cur_skip(&v, ' '))
		return sx_fail(r->err, SX_E_INTEGRITY, "field 'file' %u: bad size", i + 1);
	if (pct_decode(&v, path, sizeof(path), r->err, "file") < 0)
		return -1;
	return sx_receipt_add(rc, root, size, path, r->err);
}

int sx_receipt_decode(const char *text, size_t len, sx_receipt *r, sx_err *err)
{
	kv_reader k = {.cur = sx_cur_make((const uint8_t *)text, len),
		       .keys = rcpt_keys,
		       .nkeys = SX_ARRAY_LEN(rcpt_keys),
		       .end_marker = RCPT_END,
		       .err = err};
	uint64_t v, nfiles;
	int rc = -1;
	memset(r, 0, sizeof(*r));
	SX_ENSURE(len <= SX_RECEIPT_TEXT_MAX, err, SX_E_INTEGRITY, "a receipt larger than %u bytes",
		  SX_RECEIPT_TEXT_MAX);
	SX_GUARD(read_begin(&k.cur, RCPT_BEGIN, "a receipt", err));
	SX_GUARD(kv_fixed(&k, "version", "1"));
	SX_GUARD(kv_fixed(&k, "hash", "sha256"));
	SX_GUARD(kv_hex(&k, "transfer-id", r->tid, SX_TID_LEN));
	SX_GUARD(kv_dec(&k, "batch", UINT64_MAX, &r->batch));
	SX_GUARD(kv_hex(&k, "batch-root", r->batch_root, SX_HASH_LEN));
	SX_GUARD(kv_time(&k, "time", &r->time));
	SX_GUARD(kv_hex(&k, "sender", r->sender_fp, SX_HASH_LEN));
	SX_GUARD(kv_hex(&k, "receiver", r->receiver_fp, SX_HASH_LEN));
	SX_GUARD(kv_dec(&k, "chunk-size", CHUNK_SIG_MAX, &v));
	SX_ENSURE(v >= 1, err, SX_E_INTEGRITY, "field 'chunk-size': out of range");
	r->chunk = (uint32_t)v;
	SX_GUARD(kv_dec(&k, "files", SX_RECEIPT_FILES_MAX, &nfiles));
	for (uint64_t i = 0; i < nfiles; i++)
		SX_GUARD(parse_file_line(&k, (uint32_t)i, r));
	k.next = (size_t)key_find(&k, "file") + 1;
	SX_GUARD(kv_alg(&k, "signature-algorithm", &r->alg));
	SX_GUARD(kv_b64(&k, "signature", r->sig, SX_SIG_MAX, &r->sig_len));
	SX_GUARD(read_end(&k, "a receipt"));
	SX_GUARD(read_chain(&k.cur, &r->chain, "receiver", err));
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
	SX_GUARD(chain_policy(pol, r->chain, SX_ROLE_SERVER, "receiver", err));
	SX_GUARD(sx_cert_fp(sk_X509_value(r->chain, 0), fp, err));
	SX_ENSURE(CRYPTO_memcmp(fp, r->receiver_fp, SX_HASH_LEN) == 0, err, SX_E_INTEGRITY,
		  "the receipt names another receiver than the certificate that signed it");
	SX_ENSURE(expect_sender_fp == NULL ||
		      CRYPTO_memcmp(expect_sender_fp, r->sender_fp, SX_HASH_LEN) == 0,
		  err, SX_E_INTEGRITY, "the receipt acknowledges another sender");
	SX_GUARD(sx_receipt_statement(r, &stmt, &len, err));
	SX_GUARD(check_sig(sk_X509_value(r->chain, 0), r->alg, stmt, len, r->sig, r->sig_len,
			   "receipt signature", err));
	rc = 0;
out:
	free(stmt);
	return rc;
}
