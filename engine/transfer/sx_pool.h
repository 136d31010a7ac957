/* engine/pool: worker threads that seal records (and hash their Merkle
 * leaves) for a sending event loop, or open them (and hash their leaves)
 * for a receiving one. The loop reserves each record's sequence number and
 * epoch in order (sx_record_reserve), hands the job to the pool, and learns
 * of finished jobs through an eventfd it reads like any other fd; it then
 * takes the results in record order, so the byte stream, the files written
 * and the Merkle trees are exactly those of one thread. */
#ifndef SX_POOL_H
#define SX_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/record/sx_record.h"

typedef struct sx_pjob {
	/* in */
	bool open; /* false: seal rec's plaintext; true: open the record in rec */
	/* seal: SX_REC_HDR_LEN of room, plen bytes of plaintext, tag room;
	 * open: the whole record, rec_len bytes (header checked by the loop) */
	uint8_t *rec;
	size_t plen;	/* seal: in; open: out, the plaintext's length */
	size_t rec_len; /* seal: out; open: in */
	uint8_t type;	/* seal: in; open: out */
	uint8_t flags;	/* open: out (seal: always 0) */
	/* Hash the plaintext as one RFC 9162 leaf: before sealing, or after
	 * opening (when the tag checked). */
	bool leaf;
	sx_rlane_job key;
	unsigned slot; /* the caller's */
	/* out */
	uint8_t leaf_hash[32];
	size_t pt_off; /* open: the plaintext is at rec + pt_off */
	int rc;	       /* open: on failure the buffer is wiped (sx_record_open) */
	sx_err err;
} sx_pjob;

typedef struct sx_pool sx_pool;

int sx_pool_new(sx_pool **out, unsigned threads, sx_err *err) SX_MUST_CHECK;
/* Readable (8 bytes, eventfd) whenever jobs have finished. */
int sx_pool_fd(const sx_pool *p);
/* The job stays the caller's memory; the pool uses it until it is returned
 * by sx_pool_take. At most SX_POOL_QUEUE jobs in flight. */
#define SX_POOL_QUEUE 64
int sx_pool_submit(sx_pool *p, sx_pjob *job, sx_err *err) SX_MUST_CHECK;
/* Finished jobs, in any order; returns how many were written to out. */
size_t sx_pool_take(sx_pool *p, sx_pjob **out, size_t max);
/* Jobs waiting for a worker (not yet started), and jobs submitted and not
 * yet taken; the loop uses them to decide whether to open a record itself
 * rather than queue it behind others. */
void sx_pool_load(sx_pool *p, size_t *waiting, size_t *inflight);
unsigned sx_pool_threads(const sx_pool *p);
/* A pool shared by the connections of a receiving loop: one of them ended,
 * so idle workers wipe the keys their lanes hold (a lane keeps the keys of
 * its last job until it needs others). */
void sx_pool_flush(sx_pool *p);
/* Stops and joins the workers (jobs still queued are dropped). */
void sx_pool_free(sx_pool *p);

#endif
