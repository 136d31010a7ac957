/* engine/sign/filehash: the incremental per-file hasher. Bytes of any
 * piece size in, the file's RFC 9162 root out, keeping only the compact
 * range (docs/SIGNATURES.md section 1). Pure. */
#include "engine/sign/sign_int.h"

#include <string.h>

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

int sx_filehash_resume(sx_filehash *h, uint32_t chunk, uint64_t nleaves,
		       const uint8_t (*range)[SX_HASH_LEN], unsigned depth, sx_err *err)
{
	if (depth != (unsigned)__builtin_popcountll(nleaves) || depth > 64 ||
	    nleaves > UINT64_MAX / (chunk ? chunk : 1))
		return sx_fail(err, SX_E_INTEGRITY,
			       "hashing: a compact range of %u subtrees for %llu leaves", depth,
			       (unsigned long long)nleaves);
	if (sx_filehash_init(h, chunk, err) < 0)
		return -1;
	if (depth > 0)
		memcpy(h->range, range, (size_t)depth * SX_HASH_LEN);
	h->depth = depth;
	h->nleaves = nleaves;
	h->bytes = nleaves * chunk;
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
		if (sx_hash_parts(h->node, h->md, PFX_NODE, h->range[h->depth], SX_HASH_LEN, leaf,
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
		if (sx_hash_empty(r) < 0)
			return sx_fail_ssl(err, SX_E_OTHER, "SHA-256");
	} else {
		/* Folding the perfect subtrees right to left is MTH over all
		 * leaves: the largest power of two below n is the first one. */
		memcpy(r, h->range[h->depth - 1], SX_HASH_LEN);
		for (unsigned i = h->depth - 1; i > 0; i--)
			if (sx_hash_parts(h->node, h->md, PFX_NODE, h->range[i - 1], SX_HASH_LEN, r,
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
