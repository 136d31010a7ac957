/* engine/transfer: the receiver's private state, shared by serve.c (loops,
 * accepting), serve_conn.c (replies, closing), serve_recv.c (input,
 * messages) and serve_file.c (a file after its data).
 *
 * The receiver: many senders on a few event loops (one thread and one sx_io
 * ring each, sharing the listening socket), each connection a small state
 * machine fed by completions on the loop that accepted it. A connection that
 * misbehaves is failed alone: its temporaries are removed and the others go
 * on.
 *
 * A file moves through these states (docs/PROTOCOL.md, "A session"):
 *   OPEN      data arrives, is hashed and written to the temporary
 *   DISCARD   refused (FILE_ERR sent): its data is still hashed for the
 *             batch signature, but dropped
 *   ENDING    FILE_END came; the last writes drain
 *   SYNC_FILE the temporary is flushed
 *   AWAIT     (signed sessions) durable, waiting for its batch signature
 *   SYNC_SIG  its .sxsig is written beside it and flushed
 *   SYNC_DIR  renamed into place; its folder is flushed (one flush serves
 *             the files renamed there while it waited: serve_file.c); then
 *             FILE_OK
 * Flushes are asynchronous and at most SYNC_MAX per connection are in flight,
 * so 2,000 small files do not pay 2,000 flushes in a row. */
#ifndef SX_SERVE_INT_H
#define SX_SERVE_INT_H

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/ledger/sx_ledger.h"
#include "engine/transfer/sx_admit.h"
#include "engine/transfer/sx_pool.h"
#include "engine/transfer/sx_rate.h"
#include "engine/channel/sx_link.h"
#include "engine/chat/sx_chat.h"
#include "engine/sign/sx_sigsess.h"
#include "engine/transfer/sx_store.h"
#include "engine/transfer/sx_transfer.h"
#include "engine/transfer/serve_metrics.h"

#ifndef SX_RECV_SLOTS
#define SX_RECV_SLOTS 4 /* records being received or written per connection */
#endif
#define RX_SLOTS       SX_RECV_SLOTS
#define RX_SLOTS_BUSY  3 /* in use at once when connections >= cores (serve_recv.c) */
#define FILES_MAX      ((int)SX_BATCH_FILES_MAX + 64) /* files held per connection (a batch's worth) */
#define SYNC_MAX       16			      /* flushes in flight per connection */
#define TX_CAP	       (256u * 1024)		      /* replies waiting to be sent */
#define MAX_DIRS       10000	  /* folders whose mtime is restored at the end, */
#define MAX_DIR_BYTES  (1u << 20) /* and the bytes of their paths */
#define DIRECT_MIN     (4u << 20) /* files from this size are written with direct I/O */
#define HASH_CHUNK_MIN 512u
#define HASH_CHUNK_MAX (64u << 20)

enum {
	OP_ACCEPT = 1,
	OP_HS_SEND,
	OP_RECV,
	OP_WRITE,
	OP_SYNC,
	OP_SEND,
	OP_CKSYNC,
	OP_SAME,
	OP_POOL /* the loop's opening workers finished jobs (serve_rxpool.c) */
};

#define SAME_JOBS_MAX 4	   /* stored files hashed at once for FILE_SAME, per connection */
#define HELD_SWEEP_S  3600 /* expired held parts are looked for this often */

/* A received file's states: the list at the top of this header. */
typedef enum file_state {
	F_FREE = 0,
	F_OPEN,
	F_DISCARD,
	F_ENDING,
	F_SYNC_FILE,
	F_AWAIT,
	F_SYNC_SIG,
	F_SYNC_DIR,
	F_SAME /* FILE_SAME: compared with the stored file, then (signed) its batch */
} file_state;

/* FILE_SAME: how the stored file compares */
enum { SAME_PENDING = 0, SAME_EQUAL, SAME_DIFFERENT, SAME_MISSING };

struct same_job;

typedef struct ckpt {
	uint64_t leaves, bytes;
	int64_t time;
	uint8_t root[SX_HASH_LEN];
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
} ckpt;

/* serve_file.c: a link of the list of files waiting for their batch
 * signature, in batch order (indices + 1; 0: none). */
typedef struct rwait {
	int prev, next;
	int batch;
	bool linked;
} rwait;

typedef struct rfile {
	file_state state;
	uint32_t id;
	sx_store_file sf;
	uint64_t announced; /* SX_SIZE_UNKNOWN for a stream */
	uint64_t received;
	int writes;	       /* writes in flight */
	uint64_t direct_bytes; /* written with direct I/O */
	bool failed;	       /* refused after it began: released once writes drain */
	uint32_t mode;
	struct timespec mtime;
	uint64_t t0;
	char *path;
	sx_filehash h;
	bool h_open;
	int batch, pos; /* where its descriptor is, -1 when in none */
	bool unbatched; /* its path breaks sx_path_check: no descriptor, in no batch */
	ckpt *ck;	/* last verified checkpoint of a stream */
	/* Its copy beside the temporary (for a start after a crash) is written
	 * only once the bytes it covers are durable: ck_pending waits for the
	 * writes below its size, ck_flight for the flush of the temporary. */
	ckpt *ck_pending, *ck_flight;
	bool lg_done;  /* its last state is in the ledger's queue */
	uint64_t from; /* FILE_RESUME: the bytes of the held part it continues */
	/* per-device limits (serve_limits.c): its identity's counters (NULL:
	 * none taken), the bytes it reserved, and whether it was stored */
	sx_lim_use *lu;
	uint64_t lim_held, lim_max; /* lim_max: a stream's largest size */
	bool lim_stored;
	/* FILE_SAME: the comparison, and the stored file being hashed on a
	 * thread (its end arrives as a byte on same_fd, OP_SAME) */
	int same;
	uint8_t same_root[SX_HASH_LEN]; /* the sender's */
	bool same_wait;
	int same_fd;
	uint8_t same_byte;
	struct same_job *job;
	/* serve_file.c: its place among the files waiting for their batch
	 * signature (kept across srv_file_release until unlinked), and the
	 * next file whose rename waits for the same flush of its folder
	 * (index + 1; 0: none) */
	rwait w;
	int ds_next;
} rfile;

/* A received record from its assembly to its processing (serve_rxpool.c):
 * opened on the loop at once, or by one of the loop's workers; processed
 * in sequence order either way. */
typedef struct rxrec {
	uint8_t type, flags; /* from the header; after opening, the opened ones */
	size_t plen;	     /* the body's plaintext length, from the header */
	bool pooled;	     /* with the workers: job not yet taken back */
	bool failed;	     /* its worker could not open it: job.err says why */
	bool leaf;	     /* job.leaf_hash is the Merkle leaf of its plaintext */
	uint8_t *pt;	     /* opened: the plaintext, in its buffer */
	size_t len;
	sx_pjob job;
} rxrec;

typedef struct dirmeta {
	char *path;
	struct timespec mtime;
	bool created; /* the client's side: made by this session (removed, when
			 still empty, if the session fails) */
} dirmeta;

/* A connection's life, in this order (docs/ARCHITECTURE.md):
 *   FREE       the table entry is unused
 *   HANDSHAKE  accepted (or connected, get.c); TLS and key confirmation; a
 *              connection waiting for an admission slot (hs_wait) is here,
 *              not yet read
 *   OPEN       authenticated: a session (or a get/ls request, handed to its
 *              thread once nothing is in flight: serve_out.c)
 *   CLOSING    failed or done: its last records (an ERROR, EOS) go out,
 *              operations in flight complete
 *   LINGERING  our side shut for writing; the peer's input is read and
 *              dropped until it closes or the grace period ends
 *   SHUT       both directions shut, operations cancelled; freed once none
 *              is in flight */
typedef enum conn_state {
	C_FREE = 0,
	C_HANDSHAKE,
	C_OPEN,
	C_CLOSING,
	C_LINGERING,
	C_SHUT
} conn_state;

typedef struct conn {
	conn_state st;
	unsigned idx; /* slot on its loop (completion tags) */
	unsigned id;  /* number in the log, unique in the process */
	int fd;
	char addr[64];
	uint8_t akey[SX_ADMIT_KEY_LEN]; /* its source address (admission) */
	bool hs_slot;			/* counted as a handshake in progress, */
	bool hs_wait;			/* or waiting, unread, to begin one */
	bool hs_passed;			/* hs_start_waiting: its address had no slot */
	/* Taken beyond max_conns (serve.c, "server busy"): in none of the
	 * max_conns slots, it waits unread (spill_wait) for one to free, and
	 * is told the server is busy after its handshake if none has. */
	bool spill, spill_wait;
	sx_lim_use *lu; /* its identity's counters (per-device limits) */
	sx_link link;
	unsigned inflight; /* operations not yet completed */
	bool ok;	   /* how it ended: the session completed */
	uint64_t deadline;
	uint8_t *rx[RX_SLOTS];	   /* a record: its plaintext starts at a */
	uint8_t *rx_mem[RX_SLOTS]; /* SX_DIO_ALIGN boundary (direct I/O) */
	bool rx_busy[RX_SLOTS];
	struct {
		uint8_t *p;
		size_t len;
		uint64_t off;
		bool direct;
		bool busy; /* a write in flight, of file fi */
		int fi;
	} wr[RX_SLOTS]; /* the write in flight from each buffer */
	/* Compressed DATA: rx[i]'s record is decompressed into dx[i] (written
	 * from there, so it stays busy with rx[i]). Made at the first compressed
	 * record, at the fixed size max_record: never from a size the peer sent. */
	ZSTD_DCtx *dctx;
	uint8_t *dx[RX_SLOTS];
	/* Bytes of rx[i] and dx[i] registered with the ring (reg_grow);
	 * SIZE_MAX once the kernel refused. */
	size_t rx_reg[RX_SLOTS], dx_reg[RX_SLOTS];
	int rx_cur;
	bool recv_posted;
	/* Records received and not yet processed, oldest first: their slots
	 * (serve_rxpool.c). Nothing more is received while a control record
	 * or EOS waits (rq_barrier: what it does decides what may follow), or
	 * once something failed (rq_failed: reported when the records before
	 * it are processed, as if they had been on their own). */
	rxrec rq[RX_SLOTS];
	int rq_order[RX_SLOTS];
	int rq_head, rq_len;
	bool rq_barrier, rq_failed;
	sx_err rq_err;
	uint64_t pooled; /* records the loop's workers opened */
	rfile *files;
	int nfiles;   /* entries allocated in files */
	int cur_file; /* receiving data, -1 when none */
	int *syncq;   /* files waiting for a flush slot (ring of FILES_MAX + 1) */
	int sq_head, sq_tail, syncs;
	/* serve_file.c: where the search for a free entry starts, below which
	 * every entry is free, the list of files waiting for their batch
	 * signature, and the file whose flush of its folder is queued but not
	 * yet submitted, which other renames in that folder may join (indices
	 * + 1; 0: none) */
	int free_at, free_below;
	int wait_head, wait_tail;
	int ds_open;
	/* the folder of the last flush asked for (sx_store_file.dir_gen), its
	 * flushes on their way, and whether ds_open is held back (not queued) */
	uint64_t ds_gen;
	int ds_flying;
	bool ds_held;
	uint8_t *tx[2];
	size_t tx_len[2];
	int tx_fill; /* buffer being filled; the other may be in flight */
	bool tx_sending;
	bool hs_sending;
	sx_store store;
	bool store_open;
	bool session; /* SESSION received */
	bool sign;
	uint8_t tid[SX_TID_LEN];
	uint32_t hash_chunk;
	sx_sbatch **batches; /* [nbatches-1] may be open; NULL once receipted */
	int nbatches;
	size_t batches_cap;
	size_t path_bytes; /* paths held by the batches: SX_SESSION_PATH_BYTES_MAX */
	int batches_done;  /* receipts sent */
	bool eos_received, eos_queued;
	uint64_t files_ok, files_failed, bytes, t0;
	uint64_t lg_session; /* its number in the ledger; 0: none */
	dirmeta *dirs;
	size_t ndirs, dirs_cap, dirs_bytes;
	sx_err err;
	/* sxfer get / ls (serve_out.c): the request, until the connection is
	 * handed to the thread that answers it */
	uint8_t *req;
	size_t req_len;
	uint8_t req_type;
	uint32_t req_flags, req_chunk;
	bool handed;	    /* its socket and keys went to that thread */
	uint64_t entries;   /* the client's side of ls: entries received */
	unsigned same_jobs; /* stored files being hashed for FILE_SAME */
	/* resumed from a held part (FILE_RESUME) and the bytes not sent again;
	 * already there (FILE_SAME answered FILE_OK) */
	uint64_t files_resumed, bytes_resumed, files_same;
} conn;

/* The thread that watches the server's CRL (serve_crl.c). */
typedef struct crl_watch crl_watch;

/* What the loops share: the listening socket, the TLS context (OpenSSL's
 * SSL_CTX, X509_STORE and keys are safe to use from several threads) and
 * the connection budget. */
typedef struct shared {
	const sx_serve_cfg *cfg;
	sx_chan_ctx *ctx;
	int lfd;
	atomic_uint loops;   /* running */
	atomic_uint slots;   /* connections + accepts posted: at most max_conns + spill_max */
	atomic_uint inslot;  /* connections in one of the max_conns slots (not spill) */
	atomic_uint active;  /* connections, all loops */
	atomic_uint accepts; /* accepts posted, all loops */
	atomic_uint next_id;
	atomic_bool stop;	 /* cfg->stop seen by loop 0, which gets the signals */
	atomic_bool failed;	 /* a loop hit an error of its own: all stop */
	sx_admit admit;		 /* handshakes in progress, in all and per address */
	atomic_uint outgoing;	 /* threads answering get or ls (serve_out.c) */
	atomic_int out_result;	 /* the last such thread that failed: its class */
	atomic_uint keepers;	 /* threads keeping a cut-off stream's prefix */
	unsigned fd_budget;	 /* descriptors the files of one connection may hold */
	sx_ledger *ledger;	 /* NULL: none (--no-ledger, the client of get) */
	uint64_t sweep_ns;	 /* loop 0: the last look for expired held parts */
	crl_watch *watch;	 /* NULL: none (the client of get) */
	srv_metrics *met;	 /* NULL: none (no --metrics, the client of get) */
	sx_limits *lim;		 /* per-device limits; NULL: none (the client of get) */
	unsigned spill_max;	 /* connections beyond max_conns: 0 with --once, the client */
	unsigned cores;		 /* CPUs this process may run on */
	struct sx_chat_hub *hub; /* serve --chat (serve_chat.c); NULL: none */
} shared;

typedef struct server {
	const sx_serve_cfg *cfg;
	shared *sh;
	unsigned loop;
	sx_io *io;
	sx_chan_ctx *ctx;
	int lfd;
	bool accept_posted;
	unsigned ntab;		   /* entries of conns: max_conns and the spill slots */
	unsigned spill_waiting;	   /* connections of this loop with spill_wait */
	uint64_t accept_pause_ns;  /* no accept before this (after EMFILE and the like) */
	uint64_t refused_log_ns;   /* last conn_refused line, */
	uint64_t refused_unlogged; /* and refusals since then not logged */
	bool stopping;
	conn *conns;
	unsigned nconns;
	unsigned served;
	sx_class once_result;
	sx_io_kind kind;
	unsigned depth;
	pthread_t thread;
	bool started;
	uint8_t discard[16384]; /* input of lingering connections, dropped */
	int rc;
	sx_err err;
	/* the client's --limit-rate (get.c): the bucket its receives take
	 * from, and how long the next one waits (0: not waiting) */
	sx_rate rx_rate;
	uint64_t rate_wait_ns;
	/* --once and the client (get.c): how its one connection ended */
	sx_err once_err;
	sx_get_stats once_stats;
	/* its opening workers (serve_rxpool.c), made at the first record
	 * that goes to them and ended when no connection that used them is
	 * left (pool_users); NULL: none now, or none at all (pool_off). Their
	 * eventfd is read (pool_read) only while jobs are out. */
	sx_pool *pool;
	bool pool_off, pool_read;
	unsigned pool_users;
	uint64_t pool_efd;
} server;

static inline bool conn_used(const conn *c)
{
	return c->st != C_FREE;
}

/* This side keeps held parts and offers them: a server, and the client of
 * a get into a folder (not into standard output, not a listing). */
static inline bool srv_holds(const server *s)
{
	const sx_get_cfg *cl = s->cfg->client;
	return cl == NULL || (!cl->single && !cl->list);
}

/* Failed or done: no new work is taken. */
static inline bool conn_closing(const conn *c)
{
	return c->st >= C_CLOSING;
}

static inline uint64_t tag_of(unsigned conn_idx, int op, unsigned sub)
{
	return ((uint64_t)conn_idx << 32) | ((uint64_t)op << 24) | sub;
}

static inline int submit_ok(conn *c, int rc)
{
	if (rc == 0)
		c->inflight++;
	return rc;
}

#define ACCEPT_PAUSE_MS 100  /* after an accept failed for want of resources */
#define CLOSE_GRACE_MS	5000 /* a closing peer gets this long to read what we send */
#define REG_STEP	(64u << 10)
#define HS_STALE_MS	2000 /* an honest handshake takes milliseconds, a few round trips */
#define FD_RESERVE	64u  /* for the listening socket, rings, logs, the CA files */
#define FD_PER_CONN	4u   /* a socket, its store's folders */
#define FD_BUDGET_MIN	8u   /* a file being received and a few being flushed */
#define FD_BUDGET_MAX	64u  /* enough for SYNC_MAX flushes in flight and more */
#define SPILL_WAIT_MS	2000 /* a connection beyond max_conns waits this long for a slot */
#define SPILL_MAX	256u /* connections beyond max_conns: max_conns / 8 + 2, at most this */

/* serve.c: loops, accepting, admission */
void srv_hs_leave(server *s, conn *c);
void srv_post_accept(server *s);

/* serve_conn.c: replies and the end of a connection */
int srv_queue_record(server *s, conn *c, const sx_msg *m, uint8_t type, sx_err *err);
int srv_send_msg(server *s, conn *c, const sx_msg *m, sx_err *err);
bool srv_tx_busy(const conn *c);
void srv_conn_shutdown(server *s, conn *c, bool hard);
void srv_maybe_free(server *s, conn *c);
void srv_conn_fail(server *s, conn *c, const sx_err *why);
void srv_hs_send(server *s, conn *c);
void srv_linger_recv(server *s, conn *c);
void srv_on_send(server *s, conn *c, int op, unsigned sub, int64_t res);

/* serve_recv.c: input and messages */
void srv_post_recv(server *s, conn *c);
int srv_maybe_finish_session(server *s, conn *c, sx_err *err);
void srv_on_recv(server *s, conn *c, int64_t res);
/* A record's processing, in sequence order: its message, or its data
 * written from rx[slot] (leaf: its Merkle leaf, hashed by a worker, or
 * NULL). */
int srv_record(server *s, conn *c, int slot, const rxrec *r, sx_err *err);

/* serve_rxpool.c: records from their assembly to their processing, and
 * the loop's opening workers (docs/ARCHITECTURE.md, "Opening workers") */
unsigned srv_cores(void);
/* Threads that open one loop's records, the loop included (1: no workers). */
unsigned srv_open_threads(const server *s);
/* n more bytes of the record being assembled (the connection's keys are
 * ready): a whole record is opened, here or by a worker, and what is
 * ready in order is processed. False when the connection was failed
 * (and may be freed). */
bool srv_rx_input(server *s, conn *c, size_t n);
/* The connection fails with why once the records before are processed. */
void srv_rx_fail(server *s, conn *c, const sx_err *why);
void srv_on_pool(server *s, int64_t res);
/* Each turn of the loop: the workers' eventfd is read while jobs are out. */
void srv_pool_check(server *s);
/* A connection that used the workers ends (nothing of it in flight): the
 * last one ends them, and with them every key they held. */
void srv_pool_leave(server *s, conn *c);
/* When the loop ends, after its ring is closed. */
void srv_pool_free(server *s);

/* serve_out.c: the server's side of get and ls */
int srv_out_request(conn *c, const sx_msg *m, sx_err *err);
int srv_out_start(server *s, conn *c, sx_err *err);
/* The threads answering get or ls use the TLS context and the shared
 * state: they end before either goes. finish: each may first complete its
 * session (until a signal sets stop); then sh->stop tells the rest to end. */
void srv_out_drain(shared *sh, volatile sig_atomic_t *stop, bool finish);

/* serve_chat.c: serve --chat, the connections handed to the chat hub. A
 * CHAT_JOIN (its body) is kept until the connection can be handed (or
 * refused: no --chat); the hub starts before the loops and stops after
 * them. */
int srv_chat_request(server *s, conn *c, const uint8_t *body, size_t len, sx_err *err);
int srv_chat_start(server *s, conn *c, sx_err *err);
int srv_chat_open(shared *sh, sx_err *err) SX_MUST_CHECK;
void srv_chat_close(shared *sh);

/* serve.c, for the client's side (get.c) */
conn *srv_conn_add(server *s, int fd, const char *addr);
int srv_loop_run(server *s, sx_err *err);
/* get.c: records that came right behind the server's CONFIRM, before the
 * request: only an ERROR (a server that refuses us says why there) may;
 * it fails with the server's class and reason. 0: none, or one still
 * incomplete (assembled in rx buffer 0, read on as any record). */
int srv_client_early(server *s, conn *c, sx_err *err) SX_MUST_CHECK;
/* get.c: once the channel is ready, the one request (GET or LIST); a name
 * the server sends (DIR, FILE_BEGIN, QUERY...) checked against the names
 * asked for (0 on a server); an entry of a listing. */
int srv_client_request(server *s, conn *c, sx_err *err) SX_MUST_CHECK;
int srv_client_check(server *s, const sx_msg *m, bool is_dir, sx_err *err) SX_MUST_CHECK;
int srv_client_entry(server *s, conn *c, const sx_msg *m, sx_err *err) SX_MUST_CHECK;

/* serve_crl.c: the thread that reloads the CRL (its file changed, or
 * SIGHUP: srv_watch_hup) and logs a stale one; stopped before the TLS
 * context goes. */
int srv_watch_start(shared *sh, sx_err *err) SX_MUST_CHECK;
void srv_watch_hup(shared *sh);
void srv_watch_stop(shared *sh);

/* serve_file.c: a file after its data */
void srv_file_release(server *s, rfile *f);
bool srv_files_idle(conn *c);
int srv_free_file(conn *c, bool grow);
/* File fi (F_AWAIT, or F_SAME found equal) waits for its batch signature:
 * srv_finalize_waiting takes it up once the batch is verified. */
void srv_wait_add(conn *c, int fi);
sx_sbatch *srv_open_batch(conn *c, sx_err *err);
int srv_maybe_receipt(server *s, conn *c, int bi, sx_err *err);
int srv_answer(server *s, conn *c, rfile *f, sx_answer state, sx_err *err);
int srv_send_file_err(server *s, conn *c, uint32_t id, const sx_err *why, sx_err *err);
int srv_start_finish(server *s, conn *c, int fi, sx_err *err);
int srv_finalize_waiting(server *s, conn *c, sx_err *err);
void srv_on_sync(server *s, conn *c, int fi, int64_t res);
/* serve_file.c: the .sxsig text of a stream's prefix up to checkpoint k. */
int srv_partial_sxsig(conn *c, const rfile *f, const ckpt *k, char **text, size_t *len,
		      sx_err *err) SX_MUST_CHECK;
void srv_keep_partial(server *s, conn *c, rfile *f);
/* Waits for the threads srv_keep_partial started. */
void srv_wait_keepers(shared *sh);
void srv_ck_try(server *s, conn *c, int fi);
void srv_on_write(server *s, conn *c, unsigned sub, int64_t res);
void srv_on_cksync(server *s, conn *c, int fi, int64_t res);

/* serve_recv.c, shared with serve_resume.c: a file's entry, its path's
 * checks (1: refused, FILE_ERR sent), and its temporary open */
rfile *srv_file_entry(conn *c, const sx_msg *m, int *fi, sx_err *err);
int srv_file_paths(server *s, conn *c, rfile *f, const sx_msg *m, sx_err *err);
void srv_file_opened(server *s, conn *c, rfile *f);

/* serve_resume.c: resume and re-sending (docs/PROTOCOL.md) */
int srv_on_query(server *s, conn *c, const sx_msg *m, sx_err *err);
int srv_on_file_resume(server *s, conn *c, const sx_msg *m, sx_err *err);
int srv_on_file_same(server *s, conn *c, const sx_msg *m, sx_err *err);
void srv_on_same(server *s, conn *c, int fi, int64_t res);
/* A FILE_SAME whose file is equal and whose batch is verified: answered. */
int srv_same_finish(server *s, conn *c, int fi, sx_err *err);
/* The .sxmeta beside a new temporary (files of two leaves and more). */
void srv_temp_meta(server *s, conn *c, rfile *f);
/* A file of known size that breaks: its whole leaves kept as a held part. */
bool srv_keep_held(server *s, conn *c, rfile *f);
/* Loop 0: expired held parts removed (a thread), once every HELD_SWEEP_S. */
void srv_held_sweep(server *s);

/* serve_limits.c: per-device limits and "server busy" (docs/OPERATIONS.md,
 * "Limits"). The table is made before the loops start, the stored bytes
 * counted when a quota-total is set. */
int srv_limits_open(shared *sh, sx_err *err) SX_MUST_CHECK;
/* SIGHUP, on the CRL's thread: the configuration is read again. */
void srv_limits_reload(shared *sh);
/* The handshake is done: false when the connection was refused (busy, or
 * too many of its identity) and failed. */
bool srv_lim_ready(server *s, conn *c);
/* A file (of size bytes, from bytes held already) is begun: 1 when it was
 * refused (FILE_ERR sent), 0 when it may come, -1 on an error. */
int srv_lim_file(server *s, conn *c, rfile *f, uint64_t size, uint64_t from, sx_err *err);
/* A stream's data arrived: 1 when it passed max-file-size and was refused. */
int srv_lim_data(server *s, conn *c, rfile *f, sx_err *err);
void srv_lim_file_end(server *s, rfile *f);
void srv_lim_conn_end(server *s, conn *c);
/* serve.c: one of the max_conns slots for a connection, when one is free. */
bool srv_take_slot(shared *sh);

/* serve_ledger.c: the ledger's events (nothing without a ledger) */
int srv_ledger_open(shared *sh, sx_err *err);
void srv_lg_session(server *s, conn *c);
void srv_lg_end(server *s, conn *c);
void srv_lg_file(server *s, conn *c, rfile *f, sx_lfile_state st, const char *reason);
/* The event srv_lg_file would queue, into ev (queued later, by a thread);
 * false without a ledger. */
bool srv_lg_prepare(server *s, conn *c, rfile *f, sx_lfile_state st, const char *reason,
		    sx_ledger_ev *ev);
void srv_lg_refused(server *s, conn *c, uint32_t id, const char *reason);
/* A file still held when its connection ends: failed, or stored when it
 * was already renamed into place. */
void srv_lg_gone(server *s, conn *c, rfile *f);
void srv_lg_batch(server *s, conn *c, const sx_sbatch *b, const sx_receipt *r);

#endif
