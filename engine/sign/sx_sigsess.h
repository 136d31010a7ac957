/* engine/sigsess: the signing state of one session as both roles keep it.
 * A batch is the list of file descriptors (root, size, path, mtime) whose
 * FILE_END came since the previous BATCH; the sender signs it, the receiver
 * verifies the signature over the same list computed from what it opened,
 * and both build the receipt from it (docs/SIGNATURES.md). */
#ifndef SX_SIGSESS_H
#define SX_SIGSESS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sign/sx_manifest.h"

#define SX_BATCH_FILES_MAX     4096u /* files in one batch (the receiver holds them until BATCH) */
#define SX_SESSION_BATCHES_MAX (1u << 20) /* batches in one session, both roles */
/* Bytes of paths a receiver keeps per connection for the files of its
 * batches that are not answered yet or stored (a refused file keeps only
 * its descriptor's leaf hash): 4096 files of 1 KiB paths. A file that would
 * pass it is refused (docs/SIGNATURES.md, section 8). */
#define SX_SESSION_PATH_BYTES_MAX (4u << 20)

/* How far the signed time of a BATCH or CHECKPOINT may be from the
 * receiver's clock (docs/SIGNATURES.md, section 8). The sender takes the
 * time when it seals the statement, after the data it covers, so the
 * length of a batch does not count; behind also allows for the time the
 * statement waits in the sender's queue and the network on a slow link. */
#define SX_SIGNED_TIME_AHEAD_MAX  600  /* seconds ahead of the receiver's clock */
#define SX_SIGNED_TIME_BEHIND_MAX 3600 /* seconds behind it */

/* The receiver's answer to one file of a batch. */
typedef enum sx_answer { SX_ANS_PENDING = 0, SX_ANS_STORED, SX_ANS_REFUSED } sx_answer;

typedef struct sx_sbatch {
	uint64_t number;
	uint32_t n, cap;
	sx_desc *descs;			/* paths owned; NULL once dropped (sx_sbatch_drop_path) */
	uint8_t (*leaves)[SX_HASH_LEN]; /* leaf(descriptor) of each file */
	size_t path_bytes;		/* bytes of the paths held */
	uint32_t *file_ids;
	uint8_t *state;	   /* per file: an sx_answer */
	uint32_t answered; /* files stored or refused */
	sx_batch b;	   /* once signed or verified: leaves, root, signature */
	bool sealed;	   /* signed (sender) or verified (receiver) */
	bool receipted;	   /* sender: its receipt verified and stored */
	uint64_t bytes;
	uint64_t t0_ns; /* first file added */
} sx_sbatch;

/* Adds a file and computes its descriptor's leaf: a path that cannot be in
 * a descriptor (sx_path_check) is refused (SX_E_INTEGRITY). */
int sx_sbatch_add(sx_sbatch *sb, uint32_t file_id, const uint8_t root[SX_HASH_LEN], uint64_t size,
		  int64_t mtime_sec, uint32_t mtime_nsec, const char *path,
		  sx_err *err) SX_MUST_CHECK;
/* Receiver: file pos was refused; only its leaf is needed from now on (the
 * batch root), so its path is freed. Returns the bytes freed. */
size_t sx_sbatch_drop_path(sx_sbatch *sb, uint32_t pos);

/* Sender: signs the batch statement with key. */
int sx_sbatch_sign(sx_sbatch *sb, const uint8_t tid[SX_TID_LEN], uint32_t chunk, int64_t time,
		   EVP_PKEY *key, sx_err *err) SX_MUST_CHECK;
/* Receiver: recomputes the batch root from its own descriptors and checks
 * the sender's signature (SX_E_INTEGRITY when it does not verify). */
int sx_sbatch_verify(sx_sbatch *sb, const uint8_t tid[SX_TID_LEN], uint32_t chunk, int64_t time,
		     const uint8_t *sig, size_t sig_len, EVP_PKEY *pub, sx_err *err) SX_MUST_CHECK;

/* The receipt over the files of the batch that were stored, in batch order
 * (signature and receiver fields left to the caller). */
int sx_sbatch_receipt(const sx_sbatch *sb, const uint8_t tid[SX_TID_LEN], int64_t time,
		      X509 *sender, sx_receipt *r, sx_err *err) SX_MUST_CHECK;

void sx_sbatch_free(sx_sbatch *sb);

/* Receiver: refuses (SX_E_INTEGRITY) a signed time more than
 * SX_SIGNED_TIME_AHEAD_MAX seconds ahead of now or SX_SIGNED_TIME_BEHIND_MAX
 * behind it; the reason names both clocks. */
int sx_signed_time_check(int64_t signed_time, int64_t now, sx_err *err) SX_MUST_CHECK;

#endif
