/* A receiving connection's records from their assembly to their
 * processing, and the loop's opening workers (docs/ARCHITECTURE.md,
 * "Opening workers").
 *
 * A whole record lands in one of the connection's buffers. A DATA record
 * may go to the loop's workers: its sequence number and epoch are reserved
 * here, in order (sx_record_reserve), and a worker opens it in place (and
 * hashes its plaintext as one Merkle leaf when that is what it will be).
 * Any other record is opened here at once, which the reservations before
 * it have put at the right place in the sequence. Either way the records
 * are processed (serve_recv.c, srv_record) strictly in sequence order, on
 * the loop: the files, their Merkle trees and the replies are exactly
 * those of opening every record on the loop. */
#include "engine/transfer/serve_int.h"

/* Below this, handing a record over costs about what opening it does. */
#define POOL_MIN (64u << 10)

#ifdef SXFER_TEST_HOOKS
/* TEST HOOK: SXFER_TEST_RXPOOL=all sends every DATA record to the workers
 * (no size floor, no opening on the loop when they are busy or when the
 * server has as many connections as cores), so that the tests reach the
 * workers' paths whatever the timing. Sanitizer test build only. */
static bool pool_forced(void)
{
	const char *v = getenv("SXFER_TEST_RXPOOL");
	return v != NULL && strcmp(v, "all") == 0;
}
#else
static bool pool_forced(void)
{
	return false;
}
#endif

unsigned srv_cores(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) < 1)
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

unsigned srv_open_threads(const server *s)
{
	unsigned n = s->cfg->open_threads;
	if (n == 0)
		n = s->sh->cores;
	return n > SX_OPEN_THREADS_MAX ? SX_OPEN_THREADS_MAX : n;
}

static int post_pool_read(server *s, sx_err *err)
{
	return sx_io_read(s->io, sx_pool_fd(s->pool), &s->pool_efd, sizeof(s->pool_efd),
			  SX_IO_OFF_CUR, tag_of(0xffffffffu, OP_POOL, 0), err);
}

/* The workers, made at the first record that goes to them; a loop that
 * cannot have them opens every record itself (one log line). */
static bool pool_start(server *s)
{
	sx_err err = {0};
	if (s->pool != NULL)
		return true;
	if (s->pool_off)
		return false;
	unsigned n = srv_open_threads(s);
	if (n <= 1) {
		s->pool_off = true;
		return false;
	}
	if (sx_pool_new(&s->pool, n - 1, &err) < 0) {
		sx_log("warn", "open_threads", "loop=%u reason=%s fallback=%s", s->loop,
		       SX_LOGQ(err.msg), SX_LOGT("loop"));
		s->pool_off = true;
		return false;
	}
	return true;
}

void srv_pool_free(server *s)
{
	sx_pool_free(s->pool);
	s->pool = NULL;
	s->pool_read = false;
	s->pool_users = 0;
}

void srv_pool_leave(server *s, conn *c)
{
	if (c->pooled == 0 || s->pool == NULL)
		return;
	/* No job is out (the connection waited for its own, and the others
	 * that used the workers have ended), so no read of the eventfd is
	 * in flight either: the workers stop at once. */
	if (--s->pool_users == 0) {
		srv_pool_free(s);
		return;
	}
	sx_pool_flush(s->pool); /* idle lanes wipe this connection's keys */
}

/* To a worker, or opened here? A worker when one would start it at once:
 * fewer jobs wait than there are workers. Otherwise the loop opens it
 * itself rather than wait (the workers are busy: this core has the time),
 * and so it does when the server has at least as many connections as
 * cores: each loop's core then has streams enough of its own, and a hand-off
 * would only add its cost. */
static bool to_pool(server *s, const conn *c, const rxrec *r)
{
	bool forced = pool_forced();
	size_t waiting, inflight;
	if (r->type != SX_REC_DATA || r->plen == 0)
		return false;
	/* Unsigned, a record is only opened: the hand-off costs more than
	 * a worker saves (sxfer bench pipe, docs/PERFORMANCE.md). */
	if (!forced && !c->sign)
		return false;
	if (!forced && (r->plen < POOL_MIN || atomic_load(&s->sh->active) >= s->sh->cores))
		return false;
	if (!pool_start(s))
		return false;
	sx_pool_load(s->pool, &waiting, &inflight);
	if (inflight >= SX_POOL_QUEUE)
		return false;
	return forced || waiting < sx_pool_threads(s->pool);
}

static rxrec *rq_at(conn *c, int i)
{
	return &c->rq[c->rq_order[(c->rq_head + i) % RX_SLOTS]];
}

/* Whether r's plaintext will be exactly one Merkle leaf of its file: a
 * whole leaf at a leaf boundary, or the short last one of a file whose
 * announced size ends there. Control records are processed before
 * anything after them is received (rq_barrier), so the file, the session's
 * leaf size and whether it signs are known; the records waiting before r
 * are DATA of the same file. A wrong guess costs only time: srv_record
 * hashes the plaintext itself when the leaf does not fit. */
static bool leaf_expected(conn *c, const rxrec *r)
{
	if (!c->sign || c->cur_file < 0 || (r->flags & SX_REC_FLAG_COMPRESSED))
		return false;
	const rfile *f = &c->files[c->cur_file];
	uint64_t chunk = c->hash_chunk, at = f->received, hashed = f->h.bytes;
	if (!f->h_open || r->plen > chunk)
		return false;
	for (int i = 0; i < c->rq_len; i++) {
		const rxrec *q = rq_at(c, i);
		if (q->flags & SX_REC_FLAG_COMPRESSED)
			return false;
		at += q->plen;
		hashed += q->plen;
	}
	return hashed % chunk == 0 && (r->plen == chunk || (f->announced != SX_SIZE_UNKNOWN &&
							    at + r->plen == f->announced));
}

static int submit(server *s, conn *c, int slot, size_t rec_len, sx_err *err)
{
	rxrec *r = &c->rq[slot];
	sx_pjob *j = &r->job;
	memset(j, 0, sizeof(*j));
	j->open = true;
	j->rec = c->rx[slot];
	j->rec_len = rec_len;
	j->leaf = leaf_expected(c, r);
	j->slot = (c->idx << 8) | (unsigned)slot;
	/* What opening it here would do to the direction: its sequence
	 * number, and the key update when the epoch is full. */
	if (sx_record_reserve(&c->link.k.rx, r->plen, &j->key, err) < 0)
		return -1;
	if (sx_pool_submit(s->pool, j, err) < 0) {
		OPENSSL_cleanse(j->key.secret, sizeof(j->key.secret));
		c->link.k.rx.failed = true;
		return -1;
	}
	srv_pool_check(s); /* the eventfd is read while jobs are out */
	r->pooled = true;
	if (c->pooled++ == 0)
		s->pool_users++;
	c->inflight++; /* the connection and its buffer stay until it is back */
	return 0;
}

/* A whole record of rec_len bytes in rx[rx_cur]: opened here or handed to
 * a worker, and queued for its processing; its buffer is busy until then
 * (until its write completes, for DATA that is written). */
static void rx_record(server *s, conn *c, size_t rec_len)
{
	sx_err err = {0};
	int slot = c->rx_cur;
	uint8_t *rec = c->rx[slot];
	rxrec *r = &c->rq[slot];
	r->type = rec[0];
	r->flags = rec[1];
	r->plen = rec_len - SX_REC_HDR_LEN - sx_suite_tag_len(c->link.k.rx.suite);
	r->pooled = r->failed = r->leaf = false;
	r->pt = NULL;
	r->len = 0;
	c->rx_cur = -1;
	if (to_pool(s, c, r)) {
		if (submit(s, c, slot, rec_len, &err) < 0) {
			srv_rx_fail(s, c, &err);
			return;
		}
	} else if (sx_record_open(&c->link.k.rx, rec, rec_len, &r->type, &r->flags, &r->pt, &r->len,
				  &err) < 0) {
		srv_rx_fail(s, c, &err);
		return;
	}
	/* What a control record or EOS does decides what may follow (a file
	 * entry, a request, the end): nothing more is received until then. */
	if (r->type != SX_REC_DATA)
		c->rq_barrier = true;
	c->rx_busy[slot] = true;
	c->rq_order[(c->rq_head + c->rq_len) % RX_SLOTS] = slot;
	c->rq_len++;
}

void srv_rx_fail(server *s, conn *c, const sx_err *why)
{
	if (c->rq_len == 0) {
		srv_conn_fail(s, c, why);
		return;
	}
	if (!c->rq_failed) {
		c->rq_failed = true;
		c->rq_err = *why;
	}
}

/* Processes the records that are ready, in order, up to the first one
 * still with a worker. False when the connection was failed. */
static bool rx_drain(server *s, conn *c)
{
	sx_err err = {0};
	while (c->rq_len > 0 && !conn_closing(c)) {
		int slot = c->rq_order[c->rq_head];
		rxrec *r = &c->rq[slot];
		if (r->pooled)
			return true;
		c->rq_head = (c->rq_head + 1) % RX_SLOTS;
		c->rq_len--;
		if (r->failed) {
			/* sx_rlane_open's contract: the direction ends here. */
			c->link.k.rx.failed = true;
			srv_conn_fail(s, c, &r->job.err);
			return false;
		}
		int rc = srv_record(s, c, slot, r, &err);
		if (!c->wr[slot].busy)
			c->rx_busy[slot] = false; /* nothing written from it */
		if (rc < 0) {
			srv_conn_fail(s, c, &err);
			return false;
		}
		if (r->type != SX_REC_DATA)
			c->rq_barrier = false;
	}
	if (conn_closing(c))
		return false;
	if (c->rq_len == 0 && c->rq_failed) {
		srv_conn_fail(s, c, &c->rq_err);
		return false;
	}
	return true;
}

bool srv_rx_input(server *s, conn *c, size_t n)
{
	sx_err err = {0};
	size_t rec_len = 0;
	if (sx_link_rx_assemble(&c->link, n, &rec_len, &err) < 0) {
		srv_rx_fail(s, c, &err);
		return conn_used(c) && !conn_closing(c);
	}
	if (rec_len > 0)
		rx_record(s, c, rec_len);
	return conn_used(c) && rx_drain(s, c);
}

/* Finished jobs: their records are ready, and each connection processes
 * what is ready in order. */
void srv_on_pool(server *s, int64_t res)
{
	sx_pjob *done[SX_POOL_QUEUE];
	unsigned conns[SX_POOL_QUEUE];
	s->pool_read = false;
	if (res < 0)
		sx_log("warn", "open_threads", "loop=%u reason=%s", s->loop,
		       SX_LOGQ(strerror((int)-res)));
	size_t n = sx_pool_take(s->pool, done, SX_ARRAY_LEN(done));
	for (size_t i = 0; i < n; i++) {
		sx_pjob *j = done[i];
		unsigned ci = j->slot >> 8, slot = j->slot & 0xff;
		if (ci >= s->ntab || !conn_used(&s->conns[ci]) || slot >= RX_SLOTS)
			sx_io_bug("receiver: a worker's job for a connection not in use", j->slot);
		conn *c = &s->conns[ci];
		rxrec *r = &c->rq[slot];
		conns[i] = ci;
		r->pooled = false;
		c->inflight--;
		if (j->rc < 0) {
			r->failed = true;
			continue;
		}
		r->type = j->type;
		r->flags = j->flags;
		r->pt = j->rec + j->pt_off;
		r->len = j->plen;
		r->leaf = j->leaf;
	}
	/* Connections may be freed here (a failure with nothing in flight):
	 * by index, looked at again each time. */
	for (size_t i = 0; i < n; i++) {
		conn *c = &s->conns[conns[i]];
		if (!conn_used(c))
			continue;
		if (!conn_closing(c) && rx_drain(s, c))
			srv_post_recv(s, c);
		if (conn_used(c))
			srv_maybe_free(s, c);
	}
	srv_pool_check(s);
}

/* Jobs out and the eventfd not being read (none: the workers may have
 * ended with their last user, srv_pool_leave): it is read again, here or,
 * should that fail, at the loop's next turn. */
void srv_pool_check(server *s)
{
	size_t waiting, inflight;
	sx_err err = {0};
	if (s->pool == NULL || s->pool_read)
		return;
	sx_pool_load(s->pool, &waiting, &inflight);
	if (inflight == 0)
		return;
	if (post_pool_read(s, &err) < 0) {
		sx_log("warn", "open_threads", "loop=%u reason=%s", s->loop, SX_LOGQ(err.msg));
		return;
	}
	s->pool_read = true;
}
