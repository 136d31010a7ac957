/* engine/sign/merkle: RFC 9162 section 2.1 Merkle trees over SHA-256: the
 * tree head, inclusion proofs (from a memoised tree, for many proofs) and
 * their verification. Pure. */
#include "engine/sign/sign_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

int sx_hash_parts(EVP_MD_CTX *ctx, const EVP_MD *md, uint8_t prefix, const void *a, size_t alen,
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

int sx_hash_empty(uint8_t out[SX_HASH_LEN])
{
	unsigned int n = 0;
	/* MTH({}) = SHA-256() (RFC 9162 section 2.1.1) */
	if (EVP_Digest("", 0, out, &n, EVP_sha256(), NULL) != 1 || n != SX_HASH_LEN)
		return -1;
	return 0;
}

int sx_merkle_leaf(const void *data, size_t len, uint8_t out[SX_HASH_LEN], sx_err *err)
{
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx != NULL)
		rc = sx_hash_parts(ctx, EVP_sha256(), PFX_LEAF, data, len, NULL, 0, out);
	EVP_MD_CTX_free(ctx);
	if (rc < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256 of a Merkle leaf");
	return 0;
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
	return sx_hash_parts(ctx, EVP_sha256(), PFX_NODE, l, SX_HASH_LEN, r, SX_HASH_LEN, out);
}

int sx_merkle_root(const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n, uint8_t out[SX_HASH_LEN],
		   sx_err *err)
{
	int rc = -1;
	EVP_MD_CTX *ctx = NULL;
	if (n == 0)
		rc = sx_hash_empty(out);
	else if ((ctx = EVP_MD_CTX_new()) != NULL)
		rc = mth(ctx, leaves, n, out);
	EVP_MD_CTX_free(ctx);
	if (rc < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256 of a Merkle tree");
	return 0;
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

int sx_mtree_build(sx_mtree **out, const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n, sx_err *err)
{
	sx_mtree *t = NULL;
	int rc = -1;
	*out = NULL;
	SX_ENSURE(n > 0, err, SX_E_OTHER, "a Merkle tree of no leaves has no proofs");
	t = calloc(1, sizeof(*t));
	SX_ENSURE(t != NULL && (t->ctx = EVP_MD_CTX_new()) != NULL, err, SX_E_OTHER,
		  "out of memory");
	t->n = n;
	t->lv[0] = (uint8_t(*)[SX_HASH_LEN])leaves; /* borrowed */
	t->levels = 1;
	for (uint64_t w = n / 2; w > 0; w /= 2) {
		unsigned j = t->levels;
		t->lv[j] = malloc(w * SX_HASH_LEN);
		SX_ENSURE(t->lv[j] != NULL, err, SX_E_OTHER, "out of memory");
		t->levels++;
		for (uint64_t i = 0; i < w; i++)
			if (sx_hash_parts(t->ctx, EVP_sha256(), PFX_NODE, t->lv[j - 1][2 * i],
					  SX_HASH_LEN, t->lv[j - 1][2 * i + 1], SX_HASH_LEN,
					  t->lv[j][i]) < 0) {
				(void)sx_fail_ssl(err, SX_E_OTHER, "SHA-256 of a Merkle tree");
				goto out;
			}
	}
	*out = t;
	t = NULL;
	rc = 0;
out:
	sx_mtree_free(t);
	return rc;
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
	return sx_hash_parts(t->ctx, EVP_sha256(), PFX_NODE, l, SX_HASH_LEN, r, SX_HASH_LEN, out);
}

static int mtree_path(const sx_mtree *t, uint64_t start, uint64_t n, uint64_t m,
		      uint8_t (*proof)[SX_HASH_LEN], size_t max, size_t *plen, sx_err *err)
{
	if (n == 1)
		return 0;
	uint64_t k = split_point(n);
	int below = m < k ? mtree_path(t, start, k, m, proof, max, plen, err)
			  : mtree_path(t, start + k, n - k, m - k, proof, max, plen, err);
	if (below < 0)
		return -1;
	if (*plen >= max)
		return sx_fail(err, SX_E_OTHER, "an inclusion proof of more than %zu nodes", max);
	int rc = m < k ? mtree_hash(t, start + k, n - k, proof[(*plen)++])
		       : mtree_hash(t, start, k, proof[(*plen)++]);
	if (rc < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256 of a Merkle tree");
	return 0;
}

int sx_mtree_proof(const sx_mtree *t, uint64_t index, uint8_t (*proof)[SX_HASH_LEN], size_t max,
		   size_t *plen, sx_err *err)
{
	*plen = 0;
	if (index >= t->n)
		return sx_fail(err, SX_E_OTHER, "leaf %llu is not in a tree of %llu",
			       (unsigned long long)index, (unsigned long long)t->n);
	return mtree_path(t, 0, t->n, index, proof, max, plen, err);
}

/* RFC 9162 section 2.1.3.2, steps 1 to 6: the root the proof leads to from
 * leaf_hash into r. 0, 1 when the proof does not fit a tree of n leaves, or
 * -1 when hashing failed. */
static int proof_walk(EVP_MD_CTX *ctx, const uint8_t leaf_hash[SX_HASH_LEN], uint64_t index,
		      uint64_t n, const uint8_t (*proof)[SX_HASH_LEN], size_t plen,
		      uint8_t r[SX_HASH_LEN])
{
	if (index >= n)
		return 1;
	uint64_t fn = index, sn = n - 1;
	memcpy(r, leaf_hash, SX_HASH_LEN);
	for (size_t i = 0; i < plen; i++) {
		if (sn == 0)
			return 1;
		if ((fn & 1) || fn == sn) {
			if (sx_hash_parts(ctx, EVP_sha256(), PFX_NODE, proof[i], SX_HASH_LEN, r,
					  SX_HASH_LEN, r) < 0)
				return -1;
			if (!(fn & 1)) {
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
			}
		} else {
			if (sx_hash_parts(ctx, EVP_sha256(), PFX_NODE, r, SX_HASH_LEN, proof[i],
					  SX_HASH_LEN, r) < 0)
				return -1;
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 ? 0 : 1;
}

int sx_merkle_verify_proof(const uint8_t leaf_hash[SX_HASH_LEN], uint64_t index, uint64_t n,
			   const uint8_t (*proof)[SX_HASH_LEN], size_t plen,
			   const uint8_t root[SX_HASH_LEN], sx_err *err)
{
	uint8_t r[SX_HASH_LEN];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	int walk = proof_walk(ctx, leaf_hash, index, n, proof, plen, r);
	EVP_MD_CTX_free(ctx);
	if (walk < 0)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256 of a Merkle tree");
	if (walk > 0 || CRYPTO_memcmp(r, root, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "inclusion proof does not lead to the batch root");
	return 0;
}
