#include "engine/sign/sx_sigsess.h"

#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "common/sx_util.h"
#include "pki/sx_pki.h"

int sx_sbatch_add(sx_sbatch *sb, uint32_t file_id, const uint8_t root[SX_HASH_LEN], uint64_t size,
		  int64_t mtime_sec, uint32_t mtime_nsec, const char *path, sx_err *err)
{
	if (sb->n == SX_BATCH_FILES_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "a batch holds at most %u files",
			       SX_BATCH_FILES_MAX);
	if (sb->n == sb->cap) {
		/* Four arrays of one length: each grows from the same room to the
		 * same room; the room is raised once all four have it. */
		size_t c1 = sb->cap, c2 = sb->cap, c3 = sb->cap, c4 = sb->cap, need = sb->n + 1;
		const size_t max = SX_BATCH_FILES_MAX;
		if (sx_grow(&sb->descs, &c1, need, sizeof(*sb->descs), max, "files", err) < 0 ||
		    sx_grow(&sb->file_ids, &c2, need, sizeof(*sb->file_ids), max, "files", err) <
			0 ||
		    sx_grow(&sb->state, &c3, need, sizeof(*sb->state), max, "files", err) < 0 ||
		    sx_grow(&sb->leaves, &c4, need, sizeof(*sb->leaves), max, "files", err) < 0)
			return -1;
		sb->cap = (uint32_t)c1;
	}
	sx_desc *d = &sb->descs[sb->n];
	memcpy(d->root, root, SX_HASH_LEN);
	d->size = size;
	d->mtime_sec = mtime_sec;
	d->mtime_nsec = mtime_nsec;
	d->path = path;
	/* The leaf now, while the path is checked: verification needs only
	 * the leaves, so a refused file's path can be dropped. */
	if (sx_desc_leaf(d, sb->leaves[sb->n], err) < 0) {
		d->path = NULL;
		return -1;
	}
	char *p = strdup(path);
	if (p == NULL) {
		d->path = NULL;
		return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	if (sb->n == 0)
		sb->t0_ns = sx_now_ns();
	d->path = p;
	sb->path_bytes += strlen(p);
	sb->file_ids[sb->n] = file_id;
	sb->state[sb->n] = SX_ANS_PENDING;
	sb->bytes += size;
	sb->n++;
	return 0;
}

size_t sx_sbatch_drop_path(sx_sbatch *sb, uint32_t pos)
{
	if (pos >= sb->n || sb->descs[pos].path == NULL)
		return 0;
	size_t n = strlen(sb->descs[pos].path);
	free((char *)sb->descs[pos].path);
	sb->descs[pos].path = NULL;
	sb->path_bytes -= n;
	return n;
}

int sx_sbatch_sign(sx_sbatch *sb, const uint8_t tid[SX_TID_LEN], uint32_t chunk, int64_t time,
		   EVP_PKEY *key, sx_err *err)
{
	if (sx_batch_sign(&sb->b, sb->descs, sb->n, chunk, tid, sb->number, time, key, err) < 0)
		return -1;
	sb->sealed = true;
	return 0;
}

int sx_sbatch_verify(sx_sbatch *sb, const uint8_t tid[SX_TID_LEN], uint32_t chunk, int64_t time,
		     const uint8_t *sig, size_t sig_len, EVP_PKEY *pub, sx_err *err)
{
	sx_batch *b = &sb->b;
	uint8_t stmt[SX_STMT_BATCH_LEN];
	if (sig_len > sizeof(b->sig))
		return sx_fail(err, SX_E_INTEGRITY, "batch %llu: signature too long",
			       (unsigned long long)sb->number);
	if (sb->n == 0 || sb->leaves == NULL)
		return sx_fail(err, SX_E_INTEGRITY, "batch %llu covers no file",
			       (unsigned long long)sb->number);
	/* The leaves computed as the files were added pass to the batch. */
	memset(b, 0, sizeof(*b));
	b->leaves = sb->leaves;
	sb->leaves = NULL;
	if (sx_merkle_root((const uint8_t(*)[SX_HASH_LEN])b->leaves, sb->n, b->root, err) < 0)
		return -1;
	memcpy(b->tid, tid, SX_TID_LEN);
	b->number = sb->number;
	b->time = time;
	b->chunk = chunk;
	b->count = sb->n;
	b->alg = sx_sigalg_for_key(pub);
	memcpy(b->sig, sig, sig_len);
	b->sig_len = sig_len;
	sx_stmt_batch(tid, sb->number, time, sb->n, chunk, b->root, stmt);
	if (sx_verify(pub, stmt, sizeof(stmt), sig, sig_len, err) < 0) {
		sx_err_prefix(err, "batch %llu of %u files: ", (unsigned long long)sb->number,
			      sb->n);
		return -1;
	}
	sb->sealed = true;
	return 0;
}

int sx_sbatch_receipt(const sx_sbatch *sb, const uint8_t tid[SX_TID_LEN], int64_t time,
		      X509 *sender, sx_receipt *r, sx_err *err)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->tid, tid, SX_TID_LEN);
	r->batch = sb->number;
	memcpy(r->batch_root, sb->b.root, SX_HASH_LEN);
	r->time = time;
	r->chunk = sb->b.chunk;
	if (sx_cert_fp(sender, r->sender_fp, err) < 0)
		return -1;
	for (uint32_t i = 0; i < sb->n; i++)
		if (sb->state[i] == SX_ANS_STORED &&
		    sx_receipt_add(r, sb->descs[i].root, sb->descs[i].size, sb->descs[i].path,
				   err) < 0)
			return -1;
	return 0;
}

void sx_sbatch_free(sx_sbatch *sb)
{
	for (uint32_t i = 0; i < sb->n; i++)
		free((char *)sb->descs[i].path);
	free(sb->descs);
	free(sb->leaves);
	free(sb->file_ids);
	free(sb->state);
	if (sb->sealed || sb->b.leaves != NULL)
		sx_batch_free(&sb->b);
	memset(sb, 0, sizeof(*sb));
}

int sx_signed_time_check(int64_t signed_time, int64_t now, sx_err *err)
{
	/* Differences in uint64_t: exact for any pair of int64_t values. */
	bool ahead = signed_time > now;
	uint64_t diff =
	    ahead ? (uint64_t)signed_time - (uint64_t)now : (uint64_t)now - (uint64_t)signed_time;
	uint64_t max = ahead ? SX_SIGNED_TIME_AHEAD_MAX : SX_SIGNED_TIME_BEHIND_MAX;
	if (diff <= max)
		return 0;
	char st[64], nt[64];
	sx_time_format((time_t)signed_time, st, sizeof(st));
	sx_time_format((time_t)now, nt, sizeof(nt));
	return sx_fail(err, SX_E_INTEGRITY,
		       "signed time %s is %llu s %s this receiver's clock (%s; at most %llu s): "
		       "check the sender's clock",
		       st, (unsigned long long)diff, ahead ? "ahead of" : "behind", nt,
		       (unsigned long long)max);
}
