/* engine/sign/batch: signing a batch of file descriptors, and the .sxsig
 * that each of its files receives (docs/SIGNATURES.md sections 3 and 5).
 * Pure. */
#include "engine/sign/sign_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"

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
	SX_GUARD(sx_merkle_root((const uint8_t(*)[SX_HASH_LEN])b->leaves, n, b->root, err));
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
	    sx_mtree_build(&b->tree, (const uint8_t(*)[SX_HASH_LEN])b->leaves, b->count, err) < 0)
		return -1;
	if (sx_mtree_proof(b->tree, i, out->proof, SX_PROOF_MAX, &out->proof_len, err) < 0)
		return -1;
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
	return sx_chain_copy(&out->chain, chain, err);
}
