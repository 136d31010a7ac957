/* engine/transfer internals of the sender, shared by send.c (the pipeline
 * of slots: read, seal, send) and send_session.c (the connection, the
 * receiver's answers and receipts, sx_send_run). Not part of the public
 * interface. */
#ifndef SX_SEND_INT_H
#define SX_SEND_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_util.h"
#include "engine/channel/sx_link.h"
#include "engine/sign/sx_sigsess.h"
#include "engine/transfer/sx_leafcache.h"
#include "engine/transfer/sx_pool.h"
#include "engine/transfer/sx_rate.h"
#include "engine/transfer/sx_source.h"
#include "engine/transfer/send_serve.h"
#include "engine/transfer/sx_transfer.h"
#include "engine/wire/sx_wire.h"

#ifndef SX_SEND_SLOTS
#define SX_SEND_SLOTS 8 /* records in flight on the sender (docs/PERFORMANCE.md) */
#endif
#define NSLOTS	 SX_SEND_SLOTS
#define RX_CAP	 (64u * 1024)
#define CTRL_MAX (SX_PATH_MAX + 64)

enum { OP_HS_SEND = 1, OP_RECV, OP_READ, OP_SEND, OP_POOL };

/* READY: read, not yet sealed; SEALING: with the worker pool; DONE: sealed
 * by a worker, its leaf not yet folded into the file's tree; SEALED: ready to
 * send in order. */
typedef enum slot_state {
	SLOT_FREE = 0,
	SLOT_READING,
	SLOT_READY,
	SLOT_SEALING,
	SLOT_DONE,
	SLOT_SEALED,
	SLOT_SENDING
} slot_state;

typedef struct slot {
	uint8_t *buf;
	size_t cap;
	slot_state state;
	uint8_t type;
	size_t plen;	/* plaintext bytes ready (DATA: bytes read so far) */
	size_t raw;	/* DATA: file bytes the record carries (plen before compression) */
	size_t rec_len; /* sealed record length */
	size_t want;	/* DATA: bytes to read */
	uint64_t off;	/* DATA: file offset of the chunk */
	int fd;		/* DATA: file being read */
	bool direct;	/* DATA: read with direct I/O (aligned offsets and lengths) */
	uint64_t order;
	bool stream; /* DATA from standard input: EOF turns it into FILE_END */
	int late;    /* what happens when the slot's turn to be sealed comes */
	size_t entry;
} slot;

/* Control records whose content is known only when every record before
 * them has been sealed (and hashed): they are encoded at sealing time. */
enum { LATE_NONE = 0, LATE_BEGIN, LATE_END, LATE_BATCH, LATE_CHECKPOINT, LATE_SAME };

/* Questions in flight ahead of the producer (QUERY sent, its OFFER not yet
 * used): a ring of this many (docs/PROTOCOL.md, "Resume and re-sending"). */
#define QWIN 1024u

/* One QUERY and, once it arrived, its OFFER. */
typedef struct query {
	size_t entry;
	uint64_t size; /* as asked */
	bool answered;
	uint8_t kind;
	uint32_t flags, leaf;
	uint64_t from;
	uint8_t root[SX_HASH_LEN];
} query;

/* What a FILE_BEGIN, FILE_RESUME or FILE_SAME slot carries to its sealing:
 * the compact range of a resumed file's prefix, or the root of a file
 * already there. Indexed by slot. */
typedef struct pend {
	bool cache; /* the file's leaves go to the leaf cache, for identity id */
	bool stale; /* (FILE_END) the file changed while it was read: drop them */
	sx_lc_id id;
	bool resumed;
	uint64_t nleaves;
	unsigned depth;
	uint8_t root[SX_HASH_LEN];
	uint8_t range[64][SX_HASH_LEN];
} pend;

typedef struct sender {
	const sx_send_cfg *cfg;
	sx_io *io;
	int sock;
	sx_link link;
	slot slots[NSLOTS];
	uint8_t *region; /* the slots' buffers, one allocation */
	size_t region_len;
	uint64_t next_order, send_order;
	bool sending;
	sx_entries ents;
	size_t cur;				      /* entry being produced */
	enum { PH_BEGIN = 0, PH_DATA, PH_END } phase; /* of the entry being produced */
	sx_source file;				      /* the file being read */
	bool cur_refused; /* the receiver refused the file being read: end it now */
	uint64_t cur_off;
	uint32_t file_id;
	bool stream_reading;
	bool produced_eos;
	bool eos_sent, eos_received;
	uint8_t rxbuf[SX_REC_HDR_LEN + RX_CAP + SX_REC_TAG_MAX];
	uint32_t chunk;
	sx_progress prog;
	sx_send_stats *stats;
	sx_err file_err; /* first file the receiver refused */
	sx_err send_err; /* a failed send, reported unless the receiver said why */
	/* signing (docs/SIGNATURES.md) */
	bool sign;
	bool session_queued;
	uint8_t tid[SX_TID_LEN];
	sx_filehash fh; /* the file being sealed */
	bool fh_open;
	sx_sbatch *batches; /* [nbatches-1] is open; the others await receipts */
	size_t nbatches, batches_cap;
	uint32_t p_files; /* files ended, as produced, in the open batch */
	uint64_t p_bytes, p_t0;
	uint64_t stream_ckpt_off; /* stream bytes read when the last checkpoint was due */
	uint64_t receipts;
	/* per file id (1..file_id): its entry and whether it was answered */
	struct fid {
		size_t entry;
		int batch; /* index in batches, -1 when unsigned */
		uint32_t pos;
		bool answered;
		bool same;    /* FILE_SAME: answered FILE_OK, already there */
		bool resumed; /* FILE_RESUME: a refusal is asked again next attempt */
		bool cached;  /* its leaves were cached (removed once it is done) */
		sx_lc_id lc;
	} * fids;
	size_t fids_cap;
	uint32_t batch_files, ckpt_records; /* effective settings */
	uint64_t batch_bytes, batch_ns;
	bool draining;
	/* the worker pool (NULL: everything is sealed on this thread) */
	sx_pool *pool;
	sx_pjob jobs[NSLOTS];
	uint64_t prep_order; /* next record to prepare (hash, compress, seal) */
	uint64_t fin_order;  /* next record whose worker result is folded in */
	uint64_t efd_buf;
	char receipts_dir[4096];
	uint64_t answers; /* files answered (FILE_OK or FILE_ERR) */
	bool peer_error;  /* the receiver sent ERROR */
	int fds_open[NSLOTS + 2];
	/* compression: one context and one scratch buffer of a chunk, used
	 * while a record is sealed (in order, on this thread) */
	ZSTD_CCtx *cctx;
	uint8_t *zbuf;
	size_t zcap;
	int zlevel;
	sx_zauto za; /* --compress auto: the file being sealed */
	/* resume (send_offer.c): QUERYs ask ahead of the producer */
	bool ask; /* QUERYs in this session */
	query *q; /* QWIN questions, qid k at q[(k - 1) % QWIN] */
	uint32_t q_sent, q_answered, q_used;
	size_t q_next; /* next entry to ask about */
	pend pends[NSLOTS];
	bool hashed;	     /* the producer read files to hash them (the loop's clock) */
	bool borrowed;	     /* ents belong to the run (retries), not freed here */
	bool truncated;	     /* the receiver closed without end-of-stream */
	bool resume_refused; /* a FILE_RESUME was refused: ask again */
	bool stream_begun;   /* standard input was begun (cannot be sent again) */
	/* the leaf cache (sx_leafcache.h): signed sessions that ask */
	char leaves_dir[4096]; /* "": no cache */
	sx_leafcache lc;       /* of the file being sealed */
	sx_lc_id cur_id;       /* of the file being read (cur_cache) */
	bool cur_cache;
	/* --limit-rate: the bucket, and how long the next record waits for it
	 * (0: not waiting) */
	sx_rate rate;
	uint64_t rate_wait_ns;
} sender;

/* A run of attempts (sx_send_run with retries): what outlives one
 * connection. */
typedef struct send_run {
	sx_entries ents;
	sx_progress prog;
	sx_err file_err; /* first file refused, in any attempt */
	bool stream_begun;
	/* of the last attempt: whether its failure may be retried, and whether
	 * it moved anything forward (a file answered, data sent) */
	bool retryable, progressed;
	uint64_t reach; /* the furthest an attempt got (send_retry.c) */
} send_run;

static inline uint64_t tag_of(int op, unsigned slot)
{
	return ((uint64_t)op << 24) | slot;
}

/* send.c: the pipeline. Each fills, prepares, sends or completes slots in
 * sequence order. */
int sx_send_produce(sender *s, sx_err *err) SX_MUST_CHECK;
int sx_send_prepare(sender *s, sx_err *err) SX_MUST_CHECK;
int sx_send_next(sender *s, sx_err *err) SX_MUST_CHECK;
int sx_send_on_read(sender *s, unsigned idx, int64_t res, sx_err *err) SX_MUST_CHECK;
int sx_send_on_pool(sender *s, int64_t res, sx_err *err) SX_MUST_CHECK;
int sx_send_on_send(sender *s, unsigned idx, int64_t res, sx_err *err) SX_MUST_CHECK;
/* Closes the files whose reads have all completed. */
void sx_send_close_idle(sender *s);

/* send_session.c: records that the file begun as id is entry number
 * entry and is not answered yet. */
int sx_send_fid_add(sender *s, uint32_t id, size_t entry, sx_err *err) SX_MUST_CHECK;
/* One connection of a run: everything not done in run->ents is sent. */
int sx_send_attempt(const sx_send_cfg *cfg, sx_send_stats *stats, send_run *run,
		    sx_err *err) SX_MUST_CHECK;
/* Parks fd until the reads in flight on it complete, then closes it. */
int sx_send_park_fd(sender *s, int fd, sx_err *err) SX_MUST_CHECK;
/* Puts control message m into slot sl, next in order. */
int sx_send_put_ctrl(sender *s, slot *sl, const sx_msg *m, sx_err *err) SX_MUST_CHECK;

/* send_offer.c: QUERYs ahead of the producer, the OFFERs, and what the
 * producer does with them. */
/* Puts the next QUERY into sl when one is due: 1 when it did, 0 when none
 * is due. */
int sx_send_query(sender *s, slot *sl, sx_err *err) SX_MUST_CHECK;
/* An OFFER from the receiver: checked against its QUERY and kept. */
int sx_send_on_offer(sender *s, const sx_msg *m, sx_err *err) SX_MUST_CHECK;
/* The producer is about to begin file entry cur: 1 when its OFFER has not
 * arrived yet (wait), 0 with *q the answered question (NULL: none asked). */
int sx_send_offer_for(sender *s, const query **q);
/* What the producer does with file e once opened into s->file with the
 * offer q (may be NULL), m being its FILE_BEGIN: turns m into FILE_RESUME
 * (and sets s->cur_off and p), or says the file is FILE_SAME (*same, root in
 * p) or not sent at all (*drop, counted as refused). */
int sx_send_decide(sender *s, const query *q, sx_entry *e, sx_msg *m, pend *p, bool *same,
		   bool *drop, sx_err *err) SX_MUST_CHECK;

/* send_session.c: tells cfg->on_file the outcome of entry e (stored, or
 * refused with class cls and reason). */
void sx_send_report_file(sender *s, const sx_entry *e, bool stored, bool same, sx_class cls,
			 const char *reason);

/* send_retry.c: the bytes of the run's files that are done. */
uint64_t sx_send_done_bytes(const send_run *run);
/* send_retry.c: the wait before attempt n + 1 after n failed ones (n >= 1):
 * base doubling to max, drawn uniformly in [d/2, d] by rnd. Pure. */
unsigned sx_send_retry_wait_ms(unsigned n, unsigned base_ms, unsigned max_ms, uint32_t rnd);

#endif
