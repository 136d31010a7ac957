/* The receiver: many senders on a few event loops (one thread and one sx_io
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
 *   SYNC_DIR  renamed into place; its folder is flushed; then FILE_OK
 * Flushes are asynchronous and at most SYNC_MAX per connection are in flight,
 * so 2,000 small files do not pay 2,000 flushes in a row. */
#include <errno.h>
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
#include "engine/transfer/sx_admit.h"
#include "engine/channel/sx_link.h"
#include "engine/sign/sx_sigsess.h"
#include "engine/transfer/sx_store.h"
#include "engine/transfer/sx_transfer.h"

#ifndef SX_RECV_SLOTS
#define SX_RECV_SLOTS 4 /* records being received or written per connection */
#endif
#define RX_SLOTS       SX_RECV_SLOTS
#define FILES_MAX      ((int)SX_BATCH_FILES_MAX + 64) /* files held per connection (a batch's worth) */
#define SYNC_MAX       16			      /* flushes in flight per connection */
#define TX_CAP	       (256u * 1024)		      /* replies waiting to be sent */
#define MAX_DIRS       10000	  /* folders whose mtime is restored at the end, */
#define MAX_DIR_BYTES  (1u << 20) /* and the bytes of their paths */
#define DIRECT_MIN     (4u << 20) /* files from this size are written with direct I/O */
#define HASH_CHUNK_MIN 512u
#define HASH_CHUNK_MAX (64u << 20)

enum { OP_ACCEPT = 1, OP_HS_SEND, OP_RECV, OP_WRITE, OP_SYNC, OP_SEND, OP_CKSYNC };

enum { F_FREE = 0, F_OPEN, F_DISCARD, F_ENDING, F_SYNC_FILE, F_AWAIT, F_SYNC_SIG, F_SYNC_DIR };

typedef struct ckpt {
	uint64_t leaves, bytes;
	int64_t time;
	uint8_t root[SX_HASH_LEN];
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
} ckpt;

typedef struct rfile {
	int state;
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
} rfile;

typedef struct dirmeta {
	char *path;
	struct timespec mtime;
} dirmeta;

typedef struct conn {
	bool used;
	unsigned idx; /* slot on its loop (completion tags) */
	unsigned id;  /* number in the log, unique in the process */
	int fd;
	char addr[64];
	uint8_t akey[SX_ADMIT_KEY_LEN]; /* its source address (admission) */
	bool hs_slot;			/* counted as a handshake in progress, */
	bool hs_wait;			/* or waiting, unread, to begin one */
	bool hs_passed;			/* hs_start_waiting: its address had no slot */
	sx_link link;
	unsigned inflight; /* operations not yet completed */
	bool closing, shut, ok;
	bool lingering; /* closing: our side shut for writing, input dropped */
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
	rfile *files;
	int nfiles;   /* entries allocated in files */
	int cur_file; /* receiving data, -1 when none */
	int *syncq;   /* files waiting for a flush slot (ring of FILES_MAX + 1) */
	int sq_head, sq_tail, syncs;
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
	int nbatches, batches_cap;
	size_t path_bytes; /* paths held by the batches: SX_SESSION_PATH_BYTES_MAX */
	int batches_done;  /* receipts sent */
	bool eos_received, eos_queued;
	uint64_t files_ok, files_failed, bytes, t0;
	dirmeta *dirs;
	size_t ndirs, dirs_cap, dirs_bytes;
	sx_err err;
} conn;

/* What the loops share: the listening socket, the TLS context (OpenSSL's
 * SSL_CTX, X509_STORE and keys are safe to use from several threads) and
 * the connection budget. */
typedef struct shared {
	const sx_serve_cfg *cfg;
	sx_chan_ctx *ctx;
	int lfd;
	atomic_uint loops;   /* running */
	atomic_uint slots;   /* connections + accepts posted: at most max_conns */
	atomic_uint active;  /* connections, all loops */
	atomic_uint accepts; /* accepts posted, all loops */
	atomic_uint next_id;
	atomic_bool stop;   /* cfg->stop seen by loop 0, which gets the signals */
	atomic_bool failed; /* a loop hit an error of its own: all stop */
	sx_admit admit;	    /* handshakes in progress, in all and per address */
	unsigned fd_budget; /* descriptors the files of one connection may hold */
} shared;

typedef struct server {
	const sx_serve_cfg *cfg;
	shared *sh;
	unsigned loop;
	sx_io *io;
	sx_chan_ctx *ctx;
	int lfd;
	bool accept_posted;
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
} server;

static uint64_t tag_of(unsigned conn_idx, int op, unsigned sub)
{
	return ((uint64_t)conn_idx << 32) | ((uint64_t)op << 24) | sub;
}

static int submit_ok(conn *c, int rc)
{
	if (rc == 0)
		c->inflight++;
	return rc;
}

static void post_recv(server *s, conn *c);
static void conn_fail(server *s, conn *c, const sx_err *why);
static void file_io_done(server *s, conn *c, int fi);

/* Waiting connections of this loop whose address has a handshake slot free
 * again begin theirs (oldest first; a waiting connection on another loop
 * is looked at by that loop, at the latest after its 250 ms wait). */
static void hs_start_waiting(server *s)
{
	/* Oldest first; one whose address has no slot free is passed over, not
	 * waited for: the next may come from an address that has one. */
	for (unsigned i = 0; i < s->cfg->max_conns; i++)
		s->conns[i].hs_passed = false;
	for (;;) {
		conn *next = NULL;
		for (unsigned i = 0; i < s->cfg->max_conns; i++) {
			conn *c = &s->conns[i];
			if (c->used && c->hs_wait && !c->closing && !c->hs_passed &&
			    (next == NULL || c->t0 < next->t0))
				next = c;
		}
		if (next == NULL)
			return;
		if (!sx_admit_promote(&s->sh->admit, next->akey)) {
			next->hs_passed = true;
			continue;
		}
		next->hs_wait = false;
		next->hs_slot = true;
		sx_err err = {0};
		if (sx_link_init(&next->link, s->ctx, &err) < 0)
			conn_fail(s, next, &err);
		else
			post_recv(s, next);
	}
}

/* The connection's handshake is over (done, failed or timed out), or it
 * never began one: its admission slot goes to the next one. */
static void hs_leave(server *s, conn *c)
{
	if (c->hs_wait) {
		sx_admit_unwait(&s->sh->admit, c->akey);
		c->hs_wait = false;
	}
	if (c->hs_slot) {
		sx_admit_leave(&s->sh->admit, c->akey);
		c->hs_slot = false;
		hs_start_waiting(s);
	}
}

static void hs_send(server *s, conn *c);
static void hs_send_out(server *s, conn *c);

/* ---- sending control records ------------------------------------------ */

static void flush_tx(server *s, conn *c)
{
	/* Sealed records go out after the handshake's last bytes (CONFIRM). */
	if (c->tx_sending || c->hs_sending || c->shut)
		return;
	int b = c->tx_fill;
	if (c->tx_len[b] == 0)
		return;
	sx_err err = {0};
	if (submit_ok(c, sx_io_send(s->io, c->fd, c->tx[b], c->tx_len[b],
				    tag_of(c->idx, OP_SEND, (unsigned)b), &err)) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	c->tx_sending = true;
	c->tx_fill = 1 - b;
}

static int queue_record(server *s, conn *c, const sx_msg *m, uint8_t type, sx_err *err)
{
	int b = c->tx_fill;
	size_t len = 0;
	uint8_t *at = c->tx[b] + c->tx_len[b];
	size_t room = TX_CAP - c->tx_len[b];
	if (m != NULL) {
		if (room < SX_REC_HDR_LEN + SX_REC_TAG_MAX + 16 + SX_REASON_MAX + SX_SIG_MAX)
			return sx_fail(err, SX_E_NET, "the peer is not reading its replies");
		SX_GUARD(sx_link_seal_msg(&c->link, m, at, room, &len, err));
	} else {
		if (room < SX_REC_HDR_LEN + SX_REC_TAG_MAX)
			return sx_fail(err, SX_E_NET, "the peer is not reading its replies");
		SX_GUARD(sx_record_seal(&c->link.k.tx, type, 0, at, 0, &len, err));
	}
	c->tx_len[b] += len;
	flush_tx(s, c);
	return 0;
out:
	return -1;
}

static int send_msg(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	return queue_record(s, c, m, SX_REC_CTRL, err);
}

/* Replies waiting to go out past half their buffer: the connection takes
 * no new work (no record received, no file finalized) until a send
 * completes (on_send resumes both), so a burst of answers (a batch of
 * thousands of refused files) never overflows it. */
static bool tx_busy(const conn *c)
{
	return c->tx_len[c->tx_fill] > TX_CAP / 2;
}

/* ---- files ------------------------------------------------------------- */

/* Closes the file's fds (after taking the temporary out of the ring's file
 * table) and frees the entry. */
static void file_release(server *s, rfile *f)
{
	sx_io_file_remove(s->io, f->sf.fd);
	sx_store_end(&f->sf);
	if (f->h_open)
		sx_filehash_free(&f->h);
	free(f->path);
	free(f->ck);
	free(f->ck_pending);
	free(f->ck_flight);
	memset(f, 0, sizeof(*f));
	f->state = F_FREE;
	f->sf.fd = f->sf.dir_fd = f->sf.aux_fd = -1;
	f->batch = -1;
}

static bool files_idle(const conn *c)
{
	for (int i = 0; i < c->nfiles; i++)
		if (c->files[i].state != F_FREE)
			return false;
	return true;
}

/* A free entry, growing the table up to FILES_MAX; -1 when full. */
static int free_file(conn *c, bool grow)
{
	for (int i = 0; i < c->nfiles; i++)
		if (c->files[i].state == F_FREE)
			return i;
	if (c->nfiles == FILES_MAX)
		return -1;
	if (!grow)
		return c->nfiles;
	int n = c->nfiles ? c->nfiles * 2 : 16;
	if (n > FILES_MAX)
		n = FILES_MAX;
	rfile *nf = realloc(c->files, (size_t)n * sizeof(*nf));
	if (nf == NULL)
		return -1;
	c->files = nf;
	for (int i = c->nfiles; i < n; i++) {
		memset(&nf[i], 0, sizeof(nf[i]));
		nf[i].sf.fd = nf[i].sf.dir_fd = nf[i].sf.aux_fd = -1;
		nf[i].batch = -1;
	}
	int first = c->nfiles;
	c->nfiles = n;
	return first;
}

static sx_sbatch *open_batch(conn *c, sx_err *err)
{
	if (c->nbatches > 0 && c->batches[c->nbatches - 1] != NULL &&
	    !c->batches[c->nbatches - 1]->sealed)
		return c->batches[c->nbatches - 1];
	if (c->nbatches == c->batches_cap) {
		int ncap = c->batches_cap ? c->batches_cap * 2 : 8;
		sx_sbatch **nb = realloc(c->batches, (size_t)ncap * sizeof(*nb));
		if (nb == NULL) {
			sx_fail(err, SX_E_OTHER, "out of memory");
			return NULL;
		}
		c->batches = nb;
		c->batches_cap = ncap;
	}
	sx_sbatch *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		return NULL;
	}
	c->batches[c->nbatches++] = b;
	b->number = (uint64_t)c->nbatches;
	return b;
}

static int maybe_finish_session(server *s, conn *c, sx_err *err);

/* The receipt of a batch: once every one of its files is answered, signed
 * with this server's key over what was stored (docs/SIGNATURES.md). Safe to
 * call again at any time: a receipted batch is freed and its slot is NULL,
 * and answering one file can complete (and free) the batch while a caller
 * still walks its files (on_batch). */
static int maybe_receipt(server *s, conn *c, int bi, sx_err *err)
{
	sx_sbatch *b = c->batches[bi];
	sx_receipt r = {0};
	int rc = -1;
	if (b == NULL || !b->sealed || b->answered < b->n)
		return 0;
	int64_t now = (int64_t)time(NULL);
	SX_GUARD(
	    sx_sbatch_receipt(b, c->tid, now, sk_X509_value(c->link.k.peer_chain, 0), &r, err));
	SX_GUARD(sx_receipt_sign(&r, s->cfg->id->key, s->cfg->id->chain, err));
	sx_msg m = {.type = SX_MSG_RECEIPT,
		    .batch_no = b->number,
		    .time = now,
		    .sig = r.sig,
		    .sig_len = r.sig_len};
	SX_GUARD(send_msg(s, c, &m, err));
	sx_log("info", "receipt", "peer=%s batch=%llu files=%u stored=%u",
	       SX_LOGQ(c->link.k.peer_name), (unsigned long long)b->number, b->n, r.count);
	c->batches_done++;
	/* Nothing refers to a receipted batch any more: all its files are
	 * answered and released. */
	c->path_bytes -= b->path_bytes;
	sx_sbatch_free(b);
	free(b);
	c->batches[bi] = NULL;
	rc = maybe_finish_session(s, c, err);
out:
	sx_receipt_free(&r);
	return rc;
}

/* Records the answer to a file in its batch. */
static int answer(server *s, conn *c, rfile *f, sx_answer state, sx_err *err)
{
	if (f->batch < 0)
		return 0;
	sx_sbatch *b = c->batches[f->batch];
	b->state[f->pos] = (uint8_t)state;
	b->answered++;
	/* A refused file is out of the receipt and has its .sxsig written by
	 * no one: the batch keeps only its leaf. */
	if (state == SX_ANS_REFUSED)
		c->path_bytes -= sx_sbatch_drop_path(b, (uint32_t)f->pos);
	return maybe_receipt(s, c, f->batch, err);
}

static int send_file_err(server *s, conn *c, uint32_t id, const sx_err *why, sx_err *err)
{
	sx_msg m = {.type = SX_MSG_FILE_ERR,
		    .file_id = id,
		    .err_class = (uint8_t)why->cls,
		    .reason = (const uint8_t *)why->msg,
		    .reason_len = strlen(why->msg)};
	c->files_failed++;
	sx_log("error", "file_refused", "peer=%s file_id=%u class=%d reason=%s",
	       SX_LOGQ(c->link.k.peer_name), id, why->cls, SX_LOGQ(why->msg));
	return send_msg(s, c, &m, err);
}

/* A file that fails after its FILE_END: FILE_ERR, out of its batch's
 * receipt, temporary removed. Its writes have all completed. */
static int refuse(server *s, conn *c, int fi, const sx_err *why, sx_err *err)
{
	rfile *f = &c->files[fi];
	SX_GUARD(send_file_err(s, c, f->id, why, err));
	int batch = f->batch, pos = f->pos;
	file_release(s, f);
	if (batch >= 0) {
		rfile tmp = {.batch = batch, .pos = pos};
		SX_GUARD(answer(s, c, &tmp, SX_ANS_REFUSED, err));
	}
	return maybe_finish_session(s, c, err);
out:
	return -1;
}

static void submit_sync(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	int fd = f->state == F_SYNC_FILE  ? f->sf.fd
		 : f->state == F_SYNC_SIG ? f->sf.aux_fd
					  : f->sf.dir_fd;
	sx_err err = {0};
	if (submit_ok(c, sx_io_fsync(s->io, fd, tag_of(c->idx, OP_SYNC, (unsigned)fi), &err)) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	c->syncs++;
}

/* Flushes wait for a slot: at most SYNC_MAX per connection in flight. */
static void need_sync(server *s, conn *c, int fi, int state)
{
	c->files[fi].state = state;
	if (c->syncs < SYNC_MAX) {
		submit_sync(s, c, fi);
		return;
	}
	c->syncq[c->sq_tail] = fi;
	c->sq_tail = (c->sq_tail + 1) % (FILES_MAX + 1);
}

static int start_finish(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	sx_err ferr = {0};
	if (f->failed) {
		file_release(s, f);
		return maybe_finish_session(s, c, err);
	}
	/* Written: its slot in the ring's file table goes to the next file. */
	sx_io_file_remove(s->io, f->sf.fd);
	if (sx_store_meta(&f->sf, f->mode, &f->mtime, &ferr) < 0)
		return refuse(s, c, fi, &ferr, err);
	need_sync(s, c, fi, F_SYNC_FILE);
	return 0;
}

/* Durable and covered by a verified batch signature: its .sxsig goes
 * beside it, then both are renamed into place. */
static int finalize_signed(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	sx_sbatch *b = c->batches[f->batch];
	sx_sxsig sig = {0};
	sx_err ferr = {0};
	char *text = NULL;
	size_t len = 0;
	int rc = -1;
	if (sx_store_unpark(&f->sf, false, &ferr) < 0 ||
	    sx_batch_sxsig(&b->b, b->descs, (uint32_t)f->pos, c->link.k.peer_chain, &sig, &ferr) <
		0 ||
	    sx_sxsig_encode(&sig, &text, &len, &ferr) < 0 ||
	    sx_store_aux_write(&f->sf, ".sxsig", text, len, &ferr) < 0)
		rc = refuse(s, c, fi, &ferr, err);
	else {
		need_sync(s, c, fi, F_SYNC_SIG);
		rc = 0;
	}
	sx_sxsig_free(&sig);
	free(text);
	return rc;
}

/* Files whose batch signature has been verified get their .sxsig and are
 * renamed into place, as many at a time as the connection's descriptors
 * allow (two each until renamed); the rest stay parked until flushes
 * complete (on_sync calls again). A batch of thousands of files never holds
 * thousands of descriptors. */
static int finalize_waiting(server *s, conn *c, sx_err *err)
{
	for (int i = 0; i < c->nfiles; i++) {
		rfile *f = &c->files[i];
		if (f->state != F_AWAIT || !c->batches[f->batch]->sealed)
			continue;
		if (tx_busy(c))
			return 0;
		if (c->store.file_fds + 2 > s->sh->fd_budget && c->syncs > 0)
			return 0;
		if (finalize_signed(s, c, i, err) < 0)
			return -1;
	}
	return 0;
}

static int commit(server *s, conn *c, int fi, sx_err *err)
{
	sx_err ferr = {0};
	if (sx_store_commit(&c->store, &c->files[fi].sf, &ferr) < 0)
		return refuse(s, c, fi, &ferr, err);
	need_sync(s, c, fi, F_SYNC_DIR);
	return 0;
}

static int stored(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	double secs = (double)(sx_now_ns() - f->t0) / 1e9;
	sx_log("info", "file_stored",
	       "peer=%s path=%s size=%llu seconds=%.3f mib_per_s=%.1f signed=%s "
	       "direct_bytes=%llu",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), (unsigned long long)f->received,
	       secs, secs > 0 ? (double)f->received / 1048576.0 / secs : 0.0,
	       SX_LOGT(c->sign ? "yes" : "no"), (unsigned long long)f->direct_bytes);
	sx_msg m = {.type = SX_MSG_FILE_OK, .file_id = f->id, .size = f->received};
	c->files_ok++;
	SX_GUARD(send_msg(s, c, &m, err));
	rfile copy = {.batch = f->batch, .pos = f->pos};
	file_release(s, f);
	SX_GUARD(answer(s, c, &copy, SX_ANS_STORED, err));
	return maybe_finish_session(s, c, err);
out:
	return -1;
}

static void on_sync(server *s, conn *c, int fi, int64_t res)
{
	rfile *f = &c->files[fi];
	sx_err err = {0}, ferr = {0};
	c->syncs--;
	if (c->sq_head != c->sq_tail && !c->closing) {
		int next = c->syncq[c->sq_head];
		c->sq_head = (c->sq_head + 1) % (FILES_MAX + 1);
		submit_sync(s, c, next);
	}
	if (c->closing)
		return;
	int rc = 0;
	if (res < 0) {
		sx_fail_errno(&ferr, SX_E_IO, (int)-res, "'%s': flush failed on the receiver",
			      f->path);
		rc = refuse(s, c, fi, &ferr, &err);
	} else if (f->state == F_SYNC_FILE) {
		/* Written and flushed: the temporary's descriptor is not needed
		 * for the rename, and a file waiting for its batch signature
		 * holds no descriptor at all. */
		sx_store_close_data(&f->sf);
		if (!c->sign)
			rc = commit(s, c, fi, &err);
		else {
			/* finalize_waiting below takes it up once its batch is
			 * verified and descriptors allow. */
			f->state = F_AWAIT;
			if (sx_store_park(&f->sf, (const uint8_t *)f->path, strlen(f->path),
					  &ferr) < 0)
				rc = refuse(s, c, fi, &ferr, &err);
		}
	} else if (f->state == F_SYNC_SIG) {
		rc = commit(s, c, fi, &err);
	} else if (f->state == F_SYNC_DIR) {
		rc = stored(s, c, fi, &err);
	}
	if (rc == 0 && c->sign)
		rc = finalize_waiting(s, c, &err);
	if (rc < 0) {
		conn_fail(s, c, &err);
		return;
	}
	/* A file entry may be free again: receiving may resume. */
	post_recv(s, c);
}

/* The .sxsig of a stream's signed prefix up to its last verified checkpoint
 * (docs/SIGNATURES.md): kept as NAME.partial.sxsig when the stream is cut
 * off, and beside the temporary while it runs (for a start after a crash). */
static int partial_sxsig(conn *c, const rfile *f, const ckpt *k, char **text, size_t *len,
			 sx_err *err)
{
	sx_sxsig sig = {0};
	int rc = -1;
	sig.kind = SX_KIND_CHECKPOINT;
	sig.chunk = c->hash_chunk;
	sig.file_size = k->bytes;
	memcpy(sig.file_root, k->root, SX_HASH_LEN);
	memcpy(sig.batch_root, k->root, SX_HASH_LEN);
	snprintf(sig.path, sizeof(sig.path), "%s", f->path);
	memcpy(sig.tid, c->tid, SX_TID_LEN);
	sig.batch_files = 1;
	sig.signed_time = k->time;
	sig.alg = sx_sigalg_for_key(X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0)));
	memcpy(sig.sig, k->sig, k->sig_len);
	sig.sig_len = k->sig_len;
	sig.chain = sk_X509_dup(c->link.k.peer_chain);
	SX_ENSURE(sig.chain != NULL, err, SX_E_OTHER, "out of memory");
	for (int i = 0; i < sk_X509_num(sig.chain); i++)
		X509_up_ref(sk_X509_value(sig.chain, i));
	SX_GUARD(sx_sxsig_encode(&sig, text, len, err));
	rc = 0;
out:
	sx_sxsig_free(&sig);
	return rc;
}

/* A stream cut off after a verified checkpoint keeps its signed prefix as
 * NAME.partial with NAME.partial.sxsig (docs/SIGNATURES.md). */
static void keep_partial(conn *c, rfile *f)
{
	sx_err err = {0};
	char *text = NULL;
	size_t len = 0;
	ckpt *k = f->ck;
	if (ftruncate(f->sf.fd, (off_t)k->bytes) < 0 || fsync(f->sf.fd) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "'%s': cannot keep the signed prefix", f->path);
		goto out;
	}
	if (partial_sxsig(c, f, f->ck, &text, &len, &err) < 0 ||
	    sx_store_rename_final(&f->sf, ".partial", &err) < 0 ||
	    sx_store_aux_write(&f->sf, ".sxsig", text, len, &err) < 0)
		goto out;
	if (fsync(f->sf.aux_fd) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "'%s': flush failed", f->sf.aux_name);
		goto out;
	}
	if (sx_store_commit(&c->store, &f->sf, &err) < 0 || fsync(f->sf.dir_fd) < 0)
		goto out;
	char kept[4200];
	snprintf(kept, sizeof(kept), "%s.partial", f->path);
	sx_log("warn", "stream_partial",
	       "peer=%s path=%s bytes=%llu reason=\"the stream was cut off; its "
	       "signed prefix is kept\"",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(kept), (unsigned long long)k->bytes);
out:
	if (err.cls != SX_OK)
		sx_log("error", "stream_partial", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), SX_LOGQ(err.msg));
	free(text);
}

/* ---- connection lifecycle --------------------------------------------- */

static void linger_recv(server *s, conn *c);

/* Ends a closing connection. Softly first (a lingering close): our FIN goes
 * after the last records we sent (a sealed ERROR, a TLS alert) and what the
 * peer still sends is read and dropped until it closes or the grace period
 * ends, because closing a socket with unread input resets the connection,
 * and a reset can destroy those last records in the peer's receive queue
 * before it reads them. Hard (at the deadline, at shutdown): both
 * directions shut and every operation cancelled. */
static void conn_shutdown(server *s, conn *c, bool hard)
{
	if (c->shut)
		return;
	/* Only an authenticated peer is worth a lingering close: a stranger
	 * gets its alert (already sent) and the socket is closed. */
	if (!hard && !c->lingering && !s->stopping && c->link.ready && sx_now_ns() < c->deadline) {
		c->lingering = true;
		shutdown(c->fd, SHUT_WR);
		linger_recv(s, c);
		return;
	}
	c->shut = true;
	shutdown(c->fd, SHUT_RDWR);
	sx_err err = {0};
	if (sx_io_cancel_fd(s->io, c->fd, &err) < 0)
		sx_log("warn", "cancel", "conn=%u reason=%s", c->id, SX_LOGQ(err.msg));
}

static void conn_free(server *s, conn *c)
{
	for (int i = 0; i < c->nfiles; i++) {
		rfile *f = &c->files[i];
		if (f->state == F_FREE)
			continue;
		/* Only a stream still on its way (not yet renamed, no .sxsig
		 * written) is cut down to its last checkpoint; one parked while
		 * it waited for its batch signature is opened again for that. */
		sx_err perr = {0};
		if (f->ck != NULL && !f->failed && c->store_open && !f->sf.committed &&
		    f->sf.aux_fd < 0 &&
		    (f->state == F_OPEN || f->state == F_ENDING || f->state == F_SYNC_FILE ||
		     f->state == F_AWAIT) &&
		    sx_store_unpark(&f->sf, true, &perr) == 0 && f->sf.fd >= 0)
			keep_partial(c, f);
		file_release(s, f);
	}
	free(c->files);
	free(c->syncq);
	for (int i = 0; i < c->nbatches; i++)
		if (c->batches[i] != NULL) {
			sx_sbatch_free(c->batches[i]);
			free(c->batches[i]);
		}
	free(c->batches);
	if (c->store_open)
		sx_store_close(&c->store);
	for (size_t i = 0; i < c->ndirs; i++)
		free(c->dirs[i].path);
	free(c->dirs);
	double secs = (double)(sx_now_ns() - c->t0) / 1e9;
	sx_log(c->ok ? "info" : "error", "conn_close",
	       "conn=%u addr=%s peer=%s files=%llu failed=%llu bytes=%llu seconds=%.3f "
	       "result=%s",
	       c->id, SX_LOGT(c->addr), SX_LOGQ(c->link.ready ? c->link.k.peer_name : ""),
	       (unsigned long long)c->files_ok, (unsigned long long)c->files_failed,
	       (unsigned long long)c->bytes, secs, SX_LOGT(c->ok ? "ok" : "failed"));
	if (s->cfg->once && s->once_result == SX_OK)
		s->once_result = c->ok ? (c->files_failed ? SX_E_IO : SX_OK)
				       : (c->err.cls != SX_OK ? c->err.cls : SX_E_OTHER);
	hs_leave(s, c);
	sx_link_free(&c->link);
	/* Nothing is in flight (maybe_free): registrations (reg_grow) go
	 * before the memory and the socket do. */
	for (int i = 0; i < RX_SLOTS; i++) {
		sx_io_buf_remove(s->io, c->rx[i]);
		sx_io_buf_remove(s->io, c->dx[i]);
		free(c->rx_mem[i]);
		free(c->dx[i]);
	}
	ZSTD_freeDCtx(c->dctx);
	free(c->tx[0]);
	free(c->tx[1]);
	sx_io_file_remove(s->io, c->fd);
	close(c->fd);
	memset(c, 0, sizeof(*c));
	s->nconns--;
	s->served++;
	/* The last connection of the server gone: memory a burst of
	 * connections (or an attack) used goes back to the system instead of
	 * staying in the allocator's free lists. */
	if (atomic_fetch_sub(&s->sh->active, 1) == 1)
		malloc_trim(0);
	atomic_fetch_sub(&s->sh->slots, 1);
}

static void post_accept(server *s);

static void maybe_free(server *s, conn *c)
{
	if (c->used && c->closing && !c->tx_sending && !c->hs_sending && !c->lingering)
		conn_shutdown(s, c, false);
	if (c->used && c->closing && c->inflight == 0) {
		/* Writes and flushes have all completed: temporaries can go. */
		conn_free(s, c);
		/* A slot is free again: accepting stops while the table is full. */
		post_accept(s);
	}
}

#define ACCEPT_PAUSE_MS 100  /* after an accept failed for want of resources */
#define CLOSE_GRACE_MS	5000 /* a closing peer gets this long to read what we send */

static void conn_fail(server *s, conn *c, const sx_err *why)
{
	if (c->closing)
		return;
	/* A closing grace only for an authenticated peer; a connection that
	 * never authenticated keeps its handshake deadline (from accept) to
	 * take its alert. */
	if (c->link.ready)
		c->deadline = sx_now_ns() + (uint64_t)CLOSE_GRACE_MS * 1000000u;
	hs_leave(s, c);
	/* During the handshake the channel may hold the TLS alert that tells
	 * the peer why: send it before closing. */
	if (c->link.chan != NULL)
		hs_send(s, c); /* an alert, or a CONFIRM not yet on its way */
	c->closing = true;
	c->ok = false;
	if (c->err.cls == SX_OK)
		c->err = *why;
	sx_log("error", "conn_error", "conn=%u addr=%s peer=%s class=%d cause=%s", c->id,
	       SX_LOGT(c->addr), SX_LOGQ(c->link.ready ? c->link.k.peer_name : ""), why->cls,
	       SX_LOGQ(why->msg));
	if (c->link.ready && c->tx[0] != NULL && c->tx[1] != NULL) {
		/* Tell the sender why, sealed, before the connection goes (after
		 * CONFIRM when that is still on its way). */
		sx_msg m = {.type = SX_MSG_ERROR,
			    .err_class = (uint8_t)why->cls,
			    .reason = (const uint8_t *)why->msg,
			    .reason_len = strlen(why->msg)};
		sx_err e2 = {0};
		c->closing = false; /* let flush_tx run once */
		if (send_msg(s, c, &m, &e2) < 0)
			sx_log("warn", "conn_error",
			       "conn=%u reason=\"cannot send ERROR\" cause=%s", c->id,
			       SX_LOGQ(e2.msg));
		c->closing = true;
	}
	maybe_free(s, c);
}

static void conn_done(server *s, conn *c)
{
	c->deadline = sx_now_ns() + (uint64_t)CLOSE_GRACE_MS * 1000000u;
	c->closing = true;
	c->ok = true;
	maybe_free(s, c);
}

/* ---- receiving -------------------------------------------------------- */

static int free_rx_slot(const conn *c)
{
	for (int i = 0; i < RX_SLOTS; i++)
		if (!c->rx_busy[i])
			return i;
	return -1;
}

static void post_recv(server *s, conn *c)
{
	sx_err err = {0};
	uint8_t *buf;
	size_t len;
	if (c->recv_posted || c->closing || c->eos_received)
		return;
	if (!c->link.ready) {
		sx_link_hs_recv_buf(&c->link, &buf, &len);
	} else {
		/* Back-pressure: receive only with a buffer and a file entry free. */
		if (c->rx_cur < 0) {
			c->rx_cur = free_rx_slot(c);
			if (c->rx_cur < 0)
				return;
			sx_link_rx_set(&c->link, c->rx[c->rx_cur],
				       SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX);
		}
		if (free_file(c, false) < 0)
			return;
		/* Between files, a connection whose files hold its share of
		 * descriptors waits for their flushes (each frees some) before
		 * it may begin another: one sender cannot starve the rest. */
		if (c->cur_file < 0 && c->store.file_fds >= s->sh->fd_budget)
			return;
		if (tx_busy(c))
			return;
		sx_link_rx_want(&c->link, &buf, &len);
	}
	if (submit_ok(c, sx_io_recv(s->io, c->fd, buf, len, tag_of(c->idx, OP_RECV, 0), &err)) <
	    0) {
		conn_fail(s, c, &err);
		return;
	}
	c->recv_posted = true;
}

/* Sends the channel's pending output (flights, CONFIRM, an alert), also
 * while closing. */
static void hs_send_out(server *s, conn *c)
{
	const uint8_t *buf;
	size_t len;
	sx_err err = {0};
	if (c->hs_sending || c->shut || c->link.chan == NULL)
		return;
	sx_link_hs_output(&c->link, &buf, &len);
	if (len == 0)
		return;
	if (submit_ok(c, sx_io_send(s->io, c->fd, buf, len, tag_of(c->idx, OP_HS_SEND, 0), &err)) <
	    0) {
		conn_fail(s, c, &err);
		return;
	}
	c->hs_sending = true;
}

static void hs_send(server *s, conn *c)
{
	if (!c->closing)
		hs_send_out(s, c);
}

static int maybe_finish_session(server *s, conn *c, sx_err *err)
{
	if (!c->eos_received || c->eos_queued || !files_idle(c) || c->batches_done < c->nbatches)
		return 0;
	/* Folder mtimes last, deepest first, once their content is in. */
	for (size_t i = c->ndirs; i-- > 0;) {
		sx_err e2 = {0};
		if (sx_store_dir_mtime(&c->store, (const uint8_t *)c->dirs[i].path,
				       strlen(c->dirs[i].path), &c->dirs[i].mtime, &e2) < 0)
			sx_log("warn", "dir_mtime", "peer=%s reason=%s",
			       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(e2.msg));
	}
	c->eos_queued = true;
	return queue_record(s, c, NULL, SX_REC_EOS, err);
}

static int on_session(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (c->session)
		return sx_fail(err, SX_E_INTEGRITY, "a second SESSION message");
	if ((m->flags & ~SX_SESSION_SIGNED) != 0)
		return sx_fail(err, SX_E_INTEGRITY, "SESSION: unknown flags 0x%x", m->flags);
	if (m->hash_chunk < HASH_CHUNK_MIN || m->hash_chunk > HASH_CHUNK_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "SESSION: leaf size %u out of range",
			       m->hash_chunk);
	/* A policy of this receiver, not a fault of the sender's data: the
	 * sender is authenticated but does not vouch for its files with
	 * signatures, so it is refused as an authentication failure. */
	if (s->cfg->require_signed && (m->flags & SX_SESSION_SIGNED) == 0)
		return sx_fail(err, SX_E_AUTH,
			       "this server accepts signed sessions only (serve --require-signed); "
			       "send without --no-sign");
	c->session = true;
	c->sign = (m->flags & SX_SESSION_SIGNED) != 0;
	c->hash_chunk = m->hash_chunk;
	memcpy(c->tid, m->transfer_id, SX_TID_LEN);
	return 0;
}

static int on_file_begin(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (c->cur_file >= 0)
		return sx_fail(err, SX_E_INTEGRITY, "FILE_BEGIN inside another file");
	int fi = free_file(c, true);
	if (fi < 0)
		return sx_fail(err, SX_E_INTEGRITY, "more than %d files in flight", FILES_MAX);
	rfile *f = &c->files[fi];
	f->id = m->file_id;
	f->announced = m->size;
	f->mode = m->mode;
	f->mtime.tv_sec = m->mtime_sec;
	f->mtime.tv_nsec = m->mtime_nsec;
	f->t0 = sx_now_ns();
	f->batch = -1;
	f->path = strndup((const char *)m->path, m->path_len);
	if (f->path == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	f->state = F_DISCARD;
	c->cur_file = fi;
	if (c->sign) {
		SX_GUARD(sx_filehash_init(&f->h, c->hash_chunk, err));
		f->h_open = true;
	}
	sx_err ferr = {0};
	/* A path that breaks the path rules has no descriptor: the file is
	 * refused and left out of its batch, as the sender leaves it out
	 * (docs/PROTOCOL.md, BATCH); nothing of it is kept but its hash. */
	if (sx_path_check(m->path, m->path_len, &ferr) < 0) {
		f->unbatched = true;
		ferr.cls = SX_E_IO; /* refused by the receiver (FILE_ERR class 5) */
		return send_file_err(s, c, f->id, &ferr, err);
	}
	if (c->sign) {
		/* The batches keep the path of every file not refused until
		 * their receipt: bounded per connection. */
		if (m->path_len > SX_SESSION_PATH_BYTES_MAX - c->path_bytes) {
			sx_fail(&ferr, SX_E_IO,
				"the receiver holds %zu bytes of paths of files awaiting their "
				"batch signature (at most %u): send smaller batches "
				"(--batch-files)",
				c->path_bytes, SX_SESSION_PATH_BYTES_MAX);
			return send_file_err(s, c, f->id, &ferr, err);
		}
	}
	if (sx_store_begin(&c->store, m->path, m->path_len, &f->sf, &ferr) < 0)
		return send_file_err(s, c, f->id, &ferr, err);
	/* Registered while it is written: removed by start_finish or, on every
	 * other path, file_release, before sx_store_end closes it. */
	(void)sx_io_file_add(s->io, f->sf.fd);
	f->state = F_OPEN;
	/* Large files skip the page cache where the file system allows: no
	 * copy of the plaintext on the receiver (docs/IO.md). */
	if (s->cfg->direct && (f->announced == SX_SIZE_UNKNOWN || f->announced >= DIRECT_MIN))
		(void)sx_store_direct_on(&f->sf);
	return 0;
out:
	return -1;
}

static int on_file_end(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (c->cur_file < 0 || c->files[c->cur_file].id != m->file_id)
		return sx_fail(err, SX_E_INTEGRITY, "FILE_END for a file that was not begun");
	int fi = c->cur_file;
	rfile *f = &c->files[fi];
	c->cur_file = -1;
	/* A file this side refused (FILE_ERR sent) may end before its
	 * announced size: the sender stops sending what would be dropped. */
	bool cut_ok =
	    f->state == F_DISCARD && f->announced != SX_SIZE_UNKNOWN && m->size < f->announced;
	if (f->received != m->size ||
	    (f->announced != SX_SIZE_UNKNOWN && f->announced != m->size && !cut_ok))
		return sx_fail(err, SX_E_INTEGRITY,
			       "'%s': %llu bytes received, %llu announced, %llu at the end",
			       f->path, (unsigned long long)f->received,
			       (unsigned long long)f->announced, (unsigned long long)m->size);
	if (c->sign) {
		uint8_t root[SX_HASH_LEN];
		uint64_t leaves, bytes;
		SX_GUARD(sx_filehash_final(&f->h, root, &leaves, &bytes, err));
		sx_filehash_free(&f->h);
		f->h_open = false;
		if (CRYPTO_memcmp(root, m->root, SX_HASH_LEN) != 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "'%s': the sender's Merkle root does not match what arrived",
				       f->path);
		if (!f->unbatched) {
			sx_sbatch *b = open_batch(c, err);
			if (b == NULL)
				goto out;
			SX_GUARD(sx_sbatch_add(b, f->id, root, f->received, f->mtime.tv_sec,
					       (uint32_t)f->mtime.tv_nsec, f->path, err));
			c->path_bytes += strlen(f->path);
			f->batch = c->nbatches - 1;
			f->pos = (int)b->n - 1;
		}
	}
	if (f->state == F_DISCARD) {
		/* Refused: out of the receipt. A failed file is released by
		 * on_write once its last write has come back. */
		rfile copy = {.batch = f->batch, .pos = f->pos};
		f->batch = -1;
		if (f->writes == 0)
			file_release(s, f);
		SX_GUARD(answer(s, c, &copy, SX_ANS_REFUSED, err));
		return maybe_finish_session(s, c, err);
	}
	f->state = F_ENDING;
	if (f->writes == 0)
		return start_finish(s, c, fi, err);
	return 0;
out:
	return -1;
}

static int on_batch(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (!c->sign || c->nbatches == 0 || c->batches[c->nbatches - 1] == NULL ||
	    c->batches[c->nbatches - 1]->sealed)
		return sx_fail(err, SX_E_INTEGRITY, "BATCH without files to cover");
	int bi = c->nbatches - 1;
	sx_sbatch *b = c->batches[bi];
	if (m->batch_no != b->number || m->nfiles != b->n)
		return sx_fail(err, SX_E_INTEGRITY,
			       "BATCH %llu covers %u files; this side counts batch %llu of %u",
			       (unsigned long long)m->batch_no, m->nfiles,
			       (unsigned long long)b->number, b->n);
	if (sx_signed_time_check(m->time, (int64_t)time(NULL), err) < 0) {
		sx_err_prefix(err, "BATCH %llu: ", (unsigned long long)b->number);
		goto out;
	}
	EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0));
	SX_GUARD(sx_sbatch_verify(b, c->tid, c->hash_chunk, m->time, m->sig, m->sig_len, pub, err));
	sx_log("info", "batch", "peer=%s batch=%llu files=%u signature=verified",
	       SX_LOGQ(c->link.k.peer_name), (unsigned long long)b->number, b->n);
	SX_GUARD(finalize_waiting(s, c, err));
	return maybe_receipt(s, c, bi, err);
out:
	return -1;
}

/* A verified checkpoint waiting to be made durable is, once no write below
 * its size is in flight: the temporary is flushed (asynchronously, counted
 * as one of the file's writes, so the file is not finished or released
 * meanwhile), then on_cksync writes the checkpoint beside it. A crash or a
 * power cut thus never finds a checkpoint whose bytes are not on disk. */
static void ck_try(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	sx_err err = {0};
	if (f->ck_pending == NULL || f->ck_flight != NULL || f->sf.fd < 0 || f->failed ||
	    c->closing)
		return;
	for (int i = 0; i < RX_SLOTS; i++)
		if (c->wr[i].busy && c->wr[i].fi == fi && c->wr[i].off < f->ck_pending->bytes)
			return;
	if (submit_ok(c, sx_io_fsync(s->io, f->sf.fd, tag_of(c->idx, OP_CKSYNC, (unsigned)fi),
				     &err)) < 0) {
		sx_log("warn", "checkpoint", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), SX_LOGQ(err.msg));
		return;
	}
	f->ck_flight = f->ck_pending;
	f->ck_pending = NULL;
	f->writes++;
}

/* Beside the temporary, for a start after a crash (sx_store_recover). The
 * stream itself goes on without it. */
static void persist_checkpoint(conn *c, rfile *f, const ckpt *k)
{
	sx_err err = {0};
	char *text = NULL;
	size_t len = 0;
	if (partial_sxsig(c, f, k, &text, &len, &err) < 0 ||
	    sx_store_ckpt_write(&f->sf, text, len, &err) < 0)
		sx_log("warn", "checkpoint", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), SX_LOGQ(err.msg));
	free(text);
}

static int on_checkpoint(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	uint8_t stmt[SX_STMT_CHECKPOINT_MAX], root[SX_HASH_LEN];
	size_t len = 0;
	uint64_t leaves, bytes;
	if (!c->sign || c->cur_file < 0 || c->files[c->cur_file].id != m->file_id ||
	    c->files[c->cur_file].announced != SX_SIZE_UNKNOWN)
		return sx_fail(err, SX_E_INTEGRITY, "CHECKPOINT outside a signed stream");
	rfile *f = &c->files[c->cur_file];
	SX_GUARD(sx_filehash_checkpoint(&f->h, root, &leaves, &bytes, err));
	if (f->ck != NULL && leaves <= f->ck->leaves)
		return sx_fail(err, SX_E_INTEGRITY, "'%s': a checkpoint that covers nothing new",
			       f->path);
	if (leaves != m->leaves || bytes != m->size)
		return sx_fail(err, SX_E_INTEGRITY,
			       "'%s': checkpoint over %llu leaves, %llu received", f->path,
			       (unsigned long long)m->leaves, (unsigned long long)leaves);
	if (sx_signed_time_check(m->time, (int64_t)time(NULL), err) < 0) {
		sx_err_prefix(err, "'%s': stream checkpoint: ", f->path);
		goto out;
	}
	SX_GUARD(sx_stmt_checkpoint(c->tid, f->path, c->hash_chunk, leaves, bytes, root, m->time,
				    stmt, sizeof(stmt), &len, err));
	EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0));
	if (sx_verify(pub, stmt, len, m->sig, m->sig_len, err) < 0) {
		sx_err_prefix(err, "'%s': stream checkpoint: ", f->path);
		goto out;
	}
	if (f->ck == NULL && (f->ck = calloc(1, sizeof(*f->ck))) == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	f->ck->leaves = leaves;
	f->ck->bytes = bytes;
	f->ck->time = m->time;
	memcpy(f->ck->root, root, SX_HASH_LEN);
	memcpy(f->ck->sig, m->sig, m->sig_len);
	f->ck->sig_len = m->sig_len;
	sx_log("info", "checkpoint", "peer=%s path=%s leaves=%llu bytes=%llu signature=verified",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), (unsigned long long)leaves,
	       (unsigned long long)bytes);
	/* Made durable beside the temporary once what it covers is on disk
	 * (ck_try); only the newest waiting one matters. */
	if (f->ck_pending == NULL && (f->ck_pending = malloc(sizeof(*f->ck_pending))) == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	*f->ck_pending = *f->ck;
	ck_try(s, c, c->cur_file);
	return 0;
out:
	return -1;
}

static int on_dir(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	sx_err derr = {0};
	if (sx_store_mkdir(&c->store, m->path, m->path_len, m->mode, &derr) < 0)
		return send_file_err(s, c, 0, &derr, err);
	/* Folder mtimes are restored at the end: bounded in count and bytes, so
	 * a peer cannot make this list (or the work at the end) grow without
	 * limit; a repeated folder is recorded once. */
	if (c->ndirs >= MAX_DIRS || c->dirs_bytes + m->path_len > MAX_DIR_BYTES)
		return 0;
	if (c->ndirs > 0 && strlen(c->dirs[c->ndirs - 1].path) == m->path_len &&
	    memcmp(c->dirs[c->ndirs - 1].path, m->path, m->path_len) == 0)
		return 0;
	if (c->ndirs == c->dirs_cap) {
		size_t ncap = c->dirs_cap ? c->dirs_cap * 2 : 16;
		dirmeta *nd = realloc(c->dirs, ncap * sizeof(*nd));
		if (nd == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		c->dirs = nd;
		c->dirs_cap = ncap;
	}
	c->dirs[c->ndirs].path = strndup((const char *)m->path, m->path_len);
	c->dirs[c->ndirs].mtime.tv_sec = m->mtime_sec;
	c->dirs[c->ndirs].mtime.tv_nsec = m->mtime_nsec;
	if (c->dirs[c->ndirs].path != NULL) {
		c->dirs_bytes += m->path_len;
		c->ndirs++;
	}
	return 0;
}

static int on_ctrl(server *s, conn *c, const uint8_t *pt, size_t len, sx_err *err)
{
	sx_msg m;
	SX_GUARD(sx_msg_decode(pt, len, &m, err));
	if (!c->session && m.type != SX_MSG_SESSION)
		return sx_fail(err, SX_E_INTEGRITY, "the session must begin with SESSION");
	switch (m.type) {
	case SX_MSG_SESSION: return on_session(s, c, &m, err);
	case SX_MSG_DIR: return on_dir(s, c, &m, err);
	case SX_MSG_FILE_BEGIN: return on_file_begin(s, c, &m, err);
	case SX_MSG_FILE_END: return on_file_end(s, c, &m, err);
	case SX_MSG_BATCH: return on_batch(s, c, &m, err);
	case SX_MSG_CHECKPOINT: return on_checkpoint(s, c, &m, err);
	default:
		return sx_fail(err, SX_E_INTEGRITY, "unexpected control message 0x%02x from sender",
			       m.type);
	}
out:
	return -1;
}

static size_t dio_round(size_t n)
{
	return (n + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
}

static int dx_alloc(server *s, conn *c, sx_err *err)
{
	if (c->dctx != NULL)
		return 0;
	c->dctx = ZSTD_createDCtx();
	bool oom = c->dctx == NULL;
	for (int i = 0; i < RX_SLOTS; i++) {
		c->dx[i] = aligned_alloc(SX_DIO_ALIGN, dio_round(s->cfg->max_record));
		oom |= c->dx[i] == NULL;
	}
	if (oom)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	return 0;
}

static bool dio_aligned(const sx_store_file *sf, const uint8_t *p, size_t len, uint64_t off)
{
	return (uintptr_t)p % sf->dio_align == 0 && len % sf->dio_align == 0 &&
	       off % sf->dio_align == 0;
}

#define REG_STEP (64u << 10)

/* Registers the first need bytes of buf (a receive or decompression buffer
 * of cap bytes) with the ring, widening an earlier registration, so that
 * writes from it go out as WRITE_FIXED. Lazily, and only as far as records
 * reach: registration pins the pages, and a whole max_record (16 MiB by
 * default) per buffer would pin memory that 1 MiB records never touch. It
 * at least doubles each time, so a buffer is registered a few times at
 * most. Nothing may be in flight on buf. When the kernel refuses
 * (RLIMIT_MEMLOCK, a full table, the poll backend) the buffer stays plain
 * for good. conn_free removes it. */
static void reg_grow(server *s, uint8_t *buf, size_t *have, size_t need, size_t cap)
{
	if (need <= *have)
		return;
	size_t want = (need + REG_STEP - 1) / REG_STEP * REG_STEP;
	if (want < 2 * *have)
		want = 2 * *have;
	if (want > cap)
		want = cap;
	if (*have > 0)
		sx_io_buf_remove(s->io, buf);
	*have = sx_io_buf_add(s->io, buf, want) ? want : SIZE_MAX;
}

static int on_data(server *s, conn *c, uint8_t flags, uint8_t *pt, size_t len, sx_err *err)
{
	if (!c->session)
		return sx_fail(err, SX_E_INTEGRITY, "the session must begin with SESSION");
	if (c->cur_file < 0)
		return sx_fail(err, SX_E_INTEGRITY, "data outside a file");
	rfile *f = &c->files[c->cur_file];
	if (flags & SX_REC_FLAG_COMPRESSED) {
		/* Bounded by the announced size: docs/PROTOCOL.md, "Compressed
		 * DATA records". */
		uint64_t limit =
		    f->announced == SX_SIZE_UNKNOWN ? UINT64_MAX : f->announced - f->received;
		size_t dlen = 0;
		uint8_t *dst;
		SX_GUARD(dx_alloc(s, c, err));
		dst = c->dx[c->rx_cur];
		if (sx_zrec_decompress(c->dctx, pt, len, limit, dst, s->cfg->max_record, &dlen,
				       err) < 0) {
			sx_err_prefix(err, "'%s': ", f->path);
			goto out;
		}
		pt = dst;
		len = dlen;
	}
	if (f->announced != SX_SIZE_UNKNOWN && len > f->announced - f->received)
		return sx_fail(err, SX_E_INTEGRITY, "'%s': more data than announced", f->path);
	/* Hashed while the chunk is in cache, before it is written. */
	if (f->h_open)
		SX_GUARD(sx_filehash_update(&f->h, pt, len, err));
	uint64_t off = f->received;
	f->received += len;
	c->bytes += len;
	if (f->state == F_DISCARD || f->failed || len == 0)
		return 0; /* the buffer is free again at once */
	/* The buffer stays busy until the write completes. */
	int slot = c->rx_cur;
	c->rx_busy[slot] = true;
	c->rx_cur = -1;
	f->writes++;
	if (f->sf.direct && !dio_aligned(&f->sf, pt, len, off))
		(void)sx_store_direct_off(&f->sf); /* a tail: buffered from here on */
	c->wr[slot].p = pt;
	c->wr[slot].len = len;
	c->wr[slot].off = off;
	c->wr[slot].direct = f->sf.direct;
	c->wr[slot].busy = true;
	c->wr[slot].fi = c->cur_file;
	unsigned sub = ((unsigned)c->cur_file << 8) | (unsigned)slot;
	size_t rx_cap = SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX;
	uintptr_t at = (uintptr_t)pt - (uintptr_t)c->rx[slot];
	if (pt == c->dx[slot])
		reg_grow(s, pt, &c->dx_reg[slot], len, s->cfg->max_record);
	else if (at < rx_cap && len <= rx_cap - at)
		reg_grow(s, c->rx[slot], &c->rx_reg[slot], at + len, rx_cap);
	return submit_ok(
	    c, sx_io_write(s->io, f->sf.fd, pt, len, off, tag_of(c->idx, OP_WRITE, sub), err));
out:
	return -1;
}

static int on_record(server *s, conn *c, uint8_t type, uint8_t flags, uint8_t *pt, size_t len,
		     sx_err *err)
{
	if (flags != 0 && type != SX_REC_DATA)
		return sx_fail(err, SX_E_INTEGRITY,
			       "compressed record of type %u (only DATA may be)", type);
	switch (type) {
	case SX_REC_CTRL: return on_ctrl(s, c, pt, len, err);
	case SX_REC_DATA: return on_data(s, c, flags, pt, len, err);
	case SX_REC_EOS:
		if (c->cur_file >= 0)
			return sx_fail(err, SX_E_INTEGRITY, "end of stream inside a file");
		if (c->nbatches > 0 && c->batches[c->nbatches - 1] != NULL &&
		    !c->batches[c->nbatches - 1]->sealed)
			return sx_fail(err, SX_E_INTEGRITY,
				       "end of stream with files no BATCH signature covers");
		c->eos_received = true;
		return maybe_finish_session(s, c, err);
	default: return sx_fail(err, SX_E_INTEGRITY, "unexpected record type %u", type);
	}
}

static void linger_recv(server *s, conn *c)
{
	sx_err err = {0};
	if (c->recv_posted)
		return; /* its completion continues the lingering */
	if (submit_ok(c, sx_io_recv(s->io, c->fd, s->discard, sizeof(s->discard),
				    tag_of(c->idx, OP_RECV, 0), &err)) < 0) {
		conn_shutdown(s, c, true);
		return;
	}
	c->recv_posted = true;
}

static void on_recv(server *s, conn *c, int64_t res)
{
	sx_err err = {0};
	c->recv_posted = false;
	if (c->closing) {
		if (c->lingering && !c->shut) {
			if (res > 0 && sx_now_ns() < c->deadline)
				linger_recv(s, c);
			else
				conn_shutdown(s, c, true); /* the peer closed, or time is up */
		}
		return;
	}
	if (res <= 0) {
		if (res == 0 && !c->link.ready)
			sx_fail(&err, SX_E_NET, "closed during the handshake");
		else if (res == 0)
			sx_fail(&err, SX_E_INTEGRITY,
				"connection closed without end-of-stream (truncated)");
		else
			sx_fail_errno(&err, SX_E_NET, (int)-res, "receive failed");
		conn_fail(s, c, &err);
		return;
	}
	/* The handshake's deadline is fixed at accept: a peer dripping bytes
	 * does not move it. Once authenticated, input resets the idle clock. */
	if (c->link.ready)
		c->deadline = sx_now_ns() + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
	if (!c->link.ready) {
		if (sx_link_hs_input(&c->link, (size_t)res, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
		if (c->link.ready) {
			hs_leave(s, c);
			c->deadline = sx_now_ns() + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
			sx_log("info", "handshake",
			       "conn=%u addr=%s peer=%s fingerprint=%s suite=%s", c->id,
			       SX_LOGT(c->addr), SX_LOGQ(c->link.k.peer_name),
			       SX_LOGT(c->link.k.peer_fingerprint),
			       SX_LOGT(sx_suite_name((sx_suite)c->link.k.hello.suite)));
			c->link.max_body = s->cfg->max_record;
			size_t cap = SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX;
			/* The plaintext begins SX_REC_HDR_LEN into a record:
			 * that byte sits on an alignment boundary, so chunks
			 * can be written with direct I/O from where they were
			 * opened. */
			for (int i = 0; i < RX_SLOTS; i++) {
				c->rx_mem[i] =
				    aligned_alloc(SX_DIO_ALIGN, dio_round(SX_DIO_ALIGN + cap));
				if (c->rx_mem[i] != NULL)
					c->rx[i] = c->rx_mem[i] + SX_DIO_ALIGN - SX_REC_HDR_LEN;
			}
			c->tx[0] = malloc(TX_CAP);
			c->tx[1] = malloc(TX_CAP);
			c->syncq = malloc((FILES_MAX + 1) * sizeof(int));
			bool oom = c->tx[0] == NULL || c->tx[1] == NULL || c->syncq == NULL;
			for (int i = 0; i < RX_SLOTS; i++)
				oom |= c->rx[i] == NULL;
			if (oom) {
				sx_fail(&err, SX_E_OTHER, "out of memory");
				conn_fail(s, c, &err);
				return;
			}
			if (sx_store_open(&c->store, s->cfg->out_dir, c->link.k.peer_name,
					  s->cfg->overwrite, &err) < 0) {
				hs_send(s, c); /* CONFIRM first, so ERROR can follow */
				conn_fail(s, c, &err);
				return;
			}
			c->store_open = true;
			c->rx_cur = -1;
		}
		hs_send(s, c);
		post_recv(s, c);
		return;
	}
	bool complete;
	uint8_t type, flags, *pt;
	size_t len;
	if (sx_link_rx_input(&c->link, (size_t)res, &complete, &type, &flags, &pt, &len, &err) <
		0 ||
	    (complete && on_record(s, c, type, flags, pt, len, &err) < 0)) {
		conn_fail(s, c, &err);
		return;
	}
	post_recv(s, c);
}

static void on_write(server *s, conn *c, unsigned sub, int64_t res)
{
	int fi = (int)(sub >> 8);
	int slot = (int)(sub & 0xff);
	rfile *f = &c->files[fi];
	sx_err err = {0};
	if (res == -EINVAL && c->wr[slot].direct && !f->failed &&
	    sx_store_direct_off(&f->sf) == 0) {
		/* The file system refused this direct write after all (an
		 * alignment statx did not tell): the same bytes again, through
		 * the page cache. Also while closing: a cut stream may keep
		 * its prefix (keep_partial), which these bytes can be part of. */
		c->wr[slot].direct = false;
		if (submit_ok(c, sx_io_write(s->io, f->sf.fd, c->wr[slot].p, c->wr[slot].len,
					     c->wr[slot].off, tag_of(c->idx, OP_WRITE, sub),
					     &err)) < 0) {
			f->failed = true; /* the bytes are not in the temporary */
			conn_fail(s, c, &err);
		}
		return;
	}
	c->rx_busy[slot] = false;
	c->wr[slot].busy = false;
	f->writes--;
	if (res >= 0 && c->wr[slot].direct)
		f->direct_bytes += c->wr[slot].len;
	/* A write that failed while closing is not reported, but the file must
	 * not be kept as a signed prefix (keep_partial) with a hole in it. */
	if (res < 0 && c->closing)
		f->failed = true;
	if (res < 0 && !f->failed && !c->closing) {
		sx_err ferr = {0};
		sx_fail_errno(&ferr, SX_E_IO, (int)-res, "'%s': write failed on the receiver",
			      f->path);
		f->failed = true;
		if (f->state == F_OPEN)
			f->state = F_DISCARD;
		if (send_file_err(s, c, f->id, &ferr, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
		if (f->batch >= 0 && answer(s, c, f, SX_ANS_REFUSED, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
		f->batch = -1;
	}
	file_io_done(s, c, fi);
}

/* A write or a checkpoint's flush of file fi has completed. */
static void file_io_done(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	sx_err err = {0};
	if (c->closing)
		return;
	ck_try(s, c, fi);
	if (f->writes == 0 && f->state == F_ENDING && start_finish(s, c, fi, &err) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	if (f->writes == 0 && f->state == F_DISCARD && f->failed && c->cur_file != fi) {
		file_release(s, f);
		if (maybe_finish_session(s, c, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
	}
	post_recv(s, c);
}

static void on_cksync(server *s, conn *c, int fi, int64_t res)
{
	rfile *f = &c->files[fi];
	ckpt *k = f->ck_flight;
	f->ck_flight = NULL;
	f->writes--;
	if (res < 0)
		sx_log("warn", "checkpoint", "peer=%s path=%s reason=%s cause=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path),
		       SX_LOGQ("cannot flush the stream for its checkpoint"),
		       SX_LOGQ(strerror((int)-res)));
	else if (!c->closing && !f->failed && k != NULL)
		persist_checkpoint(c, f, k);
	free(k);
	file_io_done(s, c, fi);
}

static void on_send(server *s, conn *c, int op, unsigned sub, int64_t res)
{
	sx_err err = {0};
	if (op == OP_HS_SEND) {
		c->hs_sending = false;
		if (res >= 0)
			sx_link_hs_sent(&c->link);
	} else {
		c->tx_sending = false;
		c->tx_len[sub] = 0;
	}
	if (res < 0) {
		sx_fail_errno(&err, SX_E_NET, (int)-res, "send failed");
		conn_fail(s, c, &err);
		return;
	}
	if (c->closing) {
		/* The rest of the handshake output (CONFIRM), then an ERROR
		 * sealed after it or queued while another send was in flight. */
		if (op == OP_HS_SEND)
			hs_send_out(s, c);
		flush_tx(s, c);
		return;
	}
	if (op == OP_HS_SEND)
		hs_send(s, c);
	flush_tx(s, c);
	if (c->eos_queued && !c->tx_sending && c->tx_len[c->tx_fill] == 0) {
		conn_done(s, c);
		return;
	}
	/* Room for replies again: work held back by tx_busy resumes. */
	if (c->link.ready && c->sign && finalize_waiting(s, c, &err) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	post_recv(s, c);
}

/* ---- accepting and the loop -------------------------------------------- */

/* A posted accept holds one of the max_conns slots, so the loops together
 * never take more connections than that. A loop with more connections than
 * its share does not accept while another loop has an accept posted: the
 * least busy loops take new senders (the kernel hands each connection to one
 * of the accepts posted). When no loop has one, the loop that consumed the
 * last accept or freed a slot posts one whatever its share: the others would
 * only look again at their next wake-up (up to 250 ms), and senders would
 * wait in the backlog with slots free. */
static bool take_slot(shared *sh)
{
	unsigned n = atomic_load(&sh->slots);
	while (n < sh->cfg->max_conns)
		if (atomic_compare_exchange_weak(&sh->slots, &n, n + 1))
			return true;
	return false;
}

static void post_accept(server *s)
{
	sx_err err = {0};
	if (s->accept_posted || s->stopping || s->lfd < 0 || s->nconns >= s->cfg->max_conns)
		return;
	if (s->cfg->once && s->served + s->nconns > 0)
		return;
	if (s->accept_pause_ns != 0 && sx_now_ns() < s->accept_pause_ns)
		return;
	if (s->nconns > atomic_load(&s->sh->active) / atomic_load(&s->sh->loops) &&
	    atomic_load(&s->sh->accepts) > 0)
		return;
	if (!take_slot(s->sh))
		return;
	atomic_fetch_add(&s->sh->accepts, 1);
	if (sx_io_accept(s->io, s->lfd, tag_of(0xffffffffu, OP_ACCEPT, 0), &err) < 0) {
		atomic_fetch_sub(&s->sh->accepts, 1);
		atomic_fetch_sub(&s->sh->slots, 1);
		sx_log("error", "accept", "reason=%s", SX_LOGQ(err.msg));
		return;
	}
	s->accept_posted = true;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[48] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(out, cap, "%s:%d", host, port);
}

#define HS_STALE_MS 2000 /* an honest handshake takes milliseconds, a few round trips */

/* Admits a new connection's handshake. When every slot for connections not
 * yet authenticated is taken, one of this loop's gives way: first one of
 * the address holding the most slots, when that is at least two more than
 * the newcomer's address holds (a few hosts cannot keep every other address
 * out), else the oldest that has run for HS_STALE_MS (peers that hold
 * handshakes open without finishing them cannot keep a device out for
 * longer than that). */
static sx_admit_result admit(server *s, const uint8_t akey[SX_ADMIT_KEY_LEN])
{
	sx_admit_result r = sx_admit_enter(&s->sh->admit, akey);
	if (r != SX_ADMIT_FULL)
		return r;
	uint64_t now = sx_now_ns();
	unsigned mine = sx_admit_count(&s->sh->admit, akey), most = 0;
	conn *heavy = NULL, *old = NULL;
	for (unsigned i = 0; i < s->cfg->max_conns; i++) {
		conn *c = &s->conns[i];
		if (!c->used || c->closing || !(c->hs_slot || c->hs_wait))
			continue;
		unsigned k = sx_admit_count(&s->sh->admit, c->akey);
		if (k > most || (k == most && heavy != NULL && c->t0 < heavy->t0)) {
			most = k;
			heavy = c;
		}
		if (now - c->t0 >= (uint64_t)HS_STALE_MS * 1000000u &&
		    (old == NULL || c->t0 < old->t0))
			old = c;
	}
	bool by_address = heavy != NULL && most >= mine + 2;
	conn *victim = by_address ? heavy : old;
	if (victim == NULL)
		return r;
	sx_err why = {0};
	sx_fail(&why, SX_E_NET, "%s",
		by_address ? "handshake slots full: the address holding the most gives one up"
			   : "handshake slots full: the oldest unfinished handshake gives way");
	conn_fail(s, victim, &why);
	return sx_admit_enter(&s->sh->admit, akey);
}

static void on_accept(server *s, int64_t res)
{
	s->accept_posted = false;
	atomic_fetch_sub(&s->sh->accepts, 1);
	if (res < 0) {
		atomic_fetch_sub(&s->sh->slots, 1);
		if (res != -ECANCELED)
			sx_log("warn", "accept", "reason=%s", SX_LOGQ(strerror((int)-res)));
		/* Out of descriptors or memory: trying again at once would
		 * spin; the loop tries again after a pause. */
		if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS)
			s->accept_pause_ns = sx_now_ns() + ACCEPT_PAUSE_MS * 1000000u;
		post_accept(s);
		return;
	}
	int fd = (int)res;
	if (s->stopping) {
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		return;
	}
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	char addr[64];
	uint8_t akey[SX_ADMIT_KEY_LEN];
	(void)getpeername(fd, (struct sockaddr *)&ss, &sl);
	addr_text(&ss, addr, sizeof(addr));
	sx_admit_key(&ss, akey);
	sx_admit_result ar = admit(s, akey);
	if (ar != SX_ADMIT_OK && ar != SX_ADMIT_WAIT) {
		/* Closed at once, before any TLS: no slot, no memory. A flood of
		 * these is logged once a second, with how many were left out. */
		uint64_t now = sx_now_ns();
		if (now - s->refused_log_ns >= 1000000000u) {
			sx_log("warn", "conn_refused", "addr=%s reason=%s unlogged=%llu",
			       SX_LOGT(addr),
			       SX_LOGQ(ar == SX_ADMIT_ADDR_FULL
					   ? "too many handshakes from this address"
					   : "too many handshakes in progress"),
			       (unsigned long long)s->refused_unlogged);
			s->refused_log_ns = now;
			s->refused_unlogged = 0;
		} else {
			s->refused_unlogged++;
		}
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		post_accept(s);
		return;
	}
	conn *c = NULL;
	for (unsigned i = 0; i < s->cfg->max_conns; i++)
		if (!s->conns[i].used) {
			c = &s->conns[i];
			c->idx = i;
			break;
		}
	if (c == NULL) { /* not reached: the slot was taken with the accept */
		sx_admit_leave(&s->sh->admit, akey);
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		return;
	}
	c->used = true;
	c->id = atomic_fetch_add(&s->sh->next_id, 1);
	c->fd = fd;
	memcpy(c->akey, akey, sizeof(akey));
	c->hs_slot = ar == SX_ADMIT_OK;
	c->hs_wait = ar == SX_ADMIT_WAIT;
	memcpy(c->addr, addr, sizeof(addr));
	atomic_fetch_add(&s->sh->active, 1);
	(void)sx_io_file_add(s->io, fd); /* removed in conn_free, before the close */
	c->cur_file = -1;
	c->rx_cur = -1;
	c->t0 = sx_now_ns();
	c->deadline = c->t0 + (uint64_t)s->cfg->handshake_timeout_ms * 1000000u;
	s->nconns++;
	sx_log("info", "conn_open", "conn=%u addr=%s loop=%u", c->id, SX_LOGT(c->addr), s->loop);
	sx_err err = {0};
	/* A waiting connection is not read until its turn (hs_start_waiting):
	 * its ClientHello stays in the socket. */
	if (!c->hs_wait) {
		if (sx_link_init(&c->link, s->ctx, &err) < 0)
			conn_fail(s, c, &err);
		else
			post_recv(s, c);
	}
	post_accept(s);
}

static void check_deadlines(server *s)
{
	uint64_t now = sx_now_ns();
	for (unsigned i = 0; i < s->cfg->max_conns; i++) {
		conn *c = &s->conns[i];
		if (!c->used)
			continue;
		if (c->closing) {
			/* A peer that does not read our last records must not hold
			 * the slot: shutting the socket makes the send fail. */
			if (now >= c->deadline)
				conn_shutdown(s, c, true);
			continue;
		}
		/* The clock runs only while we wait for the peer (a receive or a
		 * send in flight), not while our own flushes hold receiving back. */
		if (c->link.ready && !c->recv_posted && !c->tx_sending && !c->hs_sending) {
			c->deadline = now + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
			continue;
		}
		if (now < c->deadline)
			continue;
		sx_err err = {0};
		sx_fail(&err, SX_E_NET, "%s timeout", c->link.ready ? "idle" : "handshake");
		conn_fail(s, c, &err);
	}
}

static void dispatch(server *s, const sx_cqe *q)
{
	unsigned ci = (unsigned)(q->tag >> 32);
	int op = (int)((q->tag >> 24) & 0xff);
	unsigned sub = (unsigned)(q->tag & 0xffffff);
	if (op == OP_ACCEPT) {
		on_accept(s, q->res);
		return;
	}
	if (ci >= s->cfg->max_conns || !s->conns[ci].used) {
		sx_log("error", "bug", "completion for unknown connection %u op %d", ci, op);
		return;
	}
	conn *c = &s->conns[ci];
	c->inflight--;
	switch (op) {
	case OP_RECV: on_recv(s, c, q->res); break;
	case OP_HS_SEND:
	case OP_SEND: on_send(s, c, op, sub, q->res); break;
	case OP_WRITE: on_write(s, c, sub, q->res); break;
	case OP_SYNC: on_sync(s, c, (int)sub, q->res); break;
	case OP_CKSYNC: on_cksync(s, c, (int)sub, q->res); break;
	default: sx_log("error", "bug", "unknown completion op %d", op);
	}
	if (c->used)
		maybe_free(s, c);
}

static int loop_run(server *s, sx_err *err)
{
	const sx_serve_cfg *cfg = s->cfg;
	/* Each ring registers the listening socket itself (on its own
	 * thread); sx_io_close unregisters it before the socket is closed. */
	(void)sx_io_file_add(s->io, s->lfd);
	post_accept(s);
	for (;;) {
		/* Only loop 0 reads the flag the signal handler sets (it runs on
		 * that thread); the others learn of it through sh->stop. */
		if (s->loop == 0 && cfg->stop && *cfg->stop)
			atomic_store(&s->sh->stop, true);
		bool stop = atomic_load(&s->sh->stop) || atomic_load(&s->sh->failed);
		if (stop && !s->stopping) {
			s->stopping = true;
			if (s->loop == 0)
				sx_log("info", "shutdown", "connections=%u",
				       atomic_load(&s->sh->active));
			if (s->accept_posted && sx_io_cancel_fd(s->io, s->lfd, err) < 0)
				return -1;
			for (unsigned i = 0; i < cfg->max_conns; i++)
				if (s->conns[i].used) {
					sx_err why = {0};
					sx_fail(&why, SX_E_NET, "server shutting down");
					conn_fail(s, &s->conns[i], &why);
					if (s->conns[i].used)
						s->conns[i].deadline = sx_now_ns(); /* no grace */
				}
		}
		if (s->stopping && s->nconns == 0 && !s->accept_posted)
			return 0;
		if (cfg->once && s->served > 0 && s->nconns == 0)
			return 0;
		sx_cqe cqe[64];
		int n = sx_io_wait(s->io, cqe, SX_ARRAY_LEN(cqe), 250, err);
		if (n < 0)
			return -1;
		for (int i = 0; i < n; i++)
			dispatch(s, &cqe[i]);
		check_deadlines(s);
		/* Another loop's handshakes may have ended: a waiting
		 * connection's address may have a slot again. */
		hs_start_waiting(s);
		/* Another loop's connections may have ended: a share is free. */
		post_accept(s);
	}
}

static void *loop_thread(void *arg)
{
	server *s = arg;
	if (s->io == NULL) {
		/* Made here: a ring belongs to the thread that submits to it
		 * (IORING_SETUP_SINGLE_ISSUER). */
		sx_err e = {0};
		if (sx_io_open(&s->io, s->kind, s->depth, &e) < 0) {
			sx_log("warn", "loops", "loop=%u reason=%s", s->loop, SX_LOGQ(e.msg));
			return NULL; /* the other loops serve */
		}
		atomic_fetch_add(&s->sh->loops, 1);
	}
	s->rc = loop_run(s, &s->err);
	if (s->rc < 0)
		atomic_store(&s->sh->failed, true);
	if (s->loop > 0) {
		/* Closed here too: draining a ring (after a failure, with ops
		 * still in flight) submits to it and waits on it, which only
		 * its own thread may do. */
		sx_io_close(s->io);
		s->io = NULL;
	}
	return NULL;
}

#define FD_RESERVE    64u /* for the listening socket, rings, logs, the CA files */
#define FD_PER_CONN   4u  /* a socket, its store's folders */
#define FD_BUDGET_MIN 8u  /* a file being received and a few being flushed */
#define FD_BUDGET_MAX 64u /* enough for SYNC_MAX flushes in flight and more */

/* Raises the soft limit on descriptors to the hard one (a server's files
 * are its work) and shares what is left after the fixed costs between the
 * connections. */
static unsigned fd_budget(const sx_serve_cfg *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return FD_BUDGET_MIN;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = was;
	}
	uint64_t fixed = FD_RESERVE + (uint64_t)cfg->max_conns * FD_PER_CONN;
	uint64_t share = rl.rlim_cur > fixed ? (rl.rlim_cur - fixed) / cfg->max_conns : 0;
	unsigned b = share > FD_BUDGET_MAX ? FD_BUDGET_MAX : (unsigned)share;
	if (b < FD_BUDGET_MIN)
		b = FD_BUDGET_MIN;
	sx_log("info", "limits", "nofile=%llu per_conn_file_fds=%u",
	       (unsigned long long)rl.rlim_cur, b);
	return b;
}

static unsigned loop_count(const sx_serve_cfg *cfg)
{
	unsigned n = cfg->threads;
	if (cfg->once)
		return 1; /* one connection: one loop */
	if (n == 0) {
		cpu_set_t set;
		n = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
	}
	if (n > SX_SERVE_THREADS_MAX)
		n = SX_SERVE_THREADS_MAX;
	return n < 1 ? 1 : n;
}

static void loop_free(server *s)
{
	if (s->io != NULL)
		sx_io_close(s->io);
	free(s->conns);
}

int sx_serve_run(const sx_serve_cfg *cfg, sx_err *err)
{
	unsigned nloops = loop_count(cfg);
	shared sh = {.cfg = cfg, .lfd = -1};
	server *loops = calloc(nloops, sizeof(server));
	int rc = -1, port = 0, out_lock = -1;
	sx_chan_cfg cc = {
	    .server = true, .id = cfg->id, .crl = cfg->crl, .max_record = cfg->max_record};
	sigset_t block, old;
	if (loops == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_serve_prepare(cfg, &out_lock, err));
	SX_GUARD(sx_chan_ctx_new(&sh.ctx, &cc, err));
	sh.fd_budget = fd_budget(cfg);
	/* A quarter of the connections (at least one from two on) is kept for
	 * peers that have authenticated (docs/ARCHITECTURE.md, "Admission"). */
	SX_GUARD(sx_admit_init(&sh.admit, cfg->max_conns - cfg->max_conns / 4,
			       cfg->hs_per_addr ? cfg->hs_per_addr : SX_HS_PER_ADDR_DEFAULT, err));
	atomic_store(&sh.loops, 1);
	for (unsigned i = 0; i < nloops; i++) {
		server *s = &loops[i];
		*s = (server){.cfg = cfg, .sh = &sh, .loop = i, .ctx = sh.ctx, .lfd = -1};
		s->conns = calloc(cfg->max_conns, sizeof(conn));
		if (s->conns == NULL) {
			rc = sx_fail(err, SX_E_OTHER, "out of memory");
			goto out;
		}
		/* Every loop uses the backend the first one got (one fallback
		 * line in the log, not one per loop); the others open theirs on
		 * their own thread. */
		s->kind = cfg->io;
		s->depth = cfg->max_conns * (RX_SLOTS + SYNC_MAX + 4) + 8;
		if (i > 0 && s->kind == SX_IO_AUTO)
			s->kind = strcmp(sx_io_name(loops[0].io), "io_uring") == 0 ? SX_IO_URING
										   : SX_IO_POLL;
		if (i == 0)
			SX_GUARD(sx_io_open(&s->io, s->kind, s->depth, err));
	}
	SX_GUARD(sx_net_listen(cfg->listen, &sh.lfd, &port, err));
	for (unsigned i = 0; i < nloops; i++)
		loops[i].lfd = sh.lfd;
	sx_log("info", "listen", "addr=%s port=%d io=%s out=%s max_conns=%u loops=%u",
	       SX_LOGT(cfg->listen), port, SX_LOGT(sx_io_name(loops[0].io)), SX_LOGQ(cfg->out_dir),
	       cfg->max_conns, nloops);
	if (cfg->on_listen)
		cfg->on_listen(cfg->listen_ctx, port);
	/* Signals stay with this thread, which runs loop 0. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (unsigned i = 1; i < nloops; i++) {
		int e = pthread_create(&loops[i].thread, NULL, loop_thread, &loops[i]);
		if (e != 0) {
			/* Fewer loops serve as well: the started ones share the
			 * work. */
			sx_log("warn", "loops",
			       "reason=\"cannot start a loop thread\" cause=%s loops=%u",
			       SX_LOGQ(strerror(e)), i);
			break;
		}
		loops[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	loop_thread(&loops[0]);
	for (unsigned i = 1; i < nloops; i++)
		if (loops[i].started)
			pthread_join(loops[i].thread, NULL);
	for (unsigned i = 0; i < nloops; i++)
		if (loops[i].rc < 0 && (i == 0 || loops[i].started)) {
			*err = loops[i].err;
			goto out;
		}
	rc = 0;
	if (cfg->once && loops[0].once_result != SX_OK)
		rc = sx_fail(err, loops[0].once_result, "the session failed (see the log)");
out:
	for (unsigned i = 0; i < nloops; i++)
		loop_free(&loops[i]);
	if (sh.lfd >= 0)
		close(sh.lfd);
	if (out_lock >= 0)
		close(out_lock);
	sx_chan_ctx_free(sh.ctx);
	sx_admit_free(&sh.admit);
	free(loops);
	return rc;
}
