/* sxfer bench pipe: the receive and send pipelines, one side alone
 * (tools/bench_pipe.h). Each is an event loop on sx_io shaped like the
 * engine's own: BP_SLOTS record buffers in one registered region, records
 * prepared in sequence order (sx_record_reserve for the pool's jobs) and
 * their results taken in record order, so the Merkle tree, the file and the
 * byte stream are those of one thread.
 *
 * Receive: each record is copied from the recording into a free buffer
 * (the copy recv() makes from the socket), its header checked, opened and
 * hashed here or by a worker, and its plaintext written with a write at its
 * offset (several in flight), as the receiver does.
 * Send: each chunk is read from the input file into a free buffer, hashed
 * and sealed here or by a worker, and the records written one at a time, in
 * order, to /dev/null, as the sender sends them to its socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_pool.h"
#include "tools/bench_pipe.h"

#define IO_DEPTH 64 /* the sender's */
#define WAIT_MAX 16
#define SINK	 "/dev/null"

enum { OP_WRITE = 1, OP_READ, OP_POOL };

/* READING (send): the chunk is being read; READY (send): read, not yet
 * prepared; POOL: with a worker; DONE: the worker finished, its result not
 * yet taken in order; SEALED (send): waits for its turn to be written;
 * WRITING: its write is in flight. */
typedef enum sl_state {
	SL_FREE = 0,
	SL_READING,
	SL_READY,
	SL_POOL,
	SL_DONE,
	SL_SEALED,
	SL_WRITING
} sl_state;

typedef struct bslot {
	uint8_t *buf; /* the record: header, then the payload on an SX_DIO_ALIGN boundary */
	sl_state state;
	uint64_t idx;	/* its record number */
	size_t want;	/* send: the chunk's length */
	size_t plen;	/* send: bytes read; receive: the plaintext's length */
	size_t rec_len; /* send: the sealed record's length */
} bslot;

typedef struct bpipe {
	const bp_session *s;
	const bp_run *run;
	bool send;
	bool leaf_rec; /* each record is one whole leaf (--leaf = --chunk) */
	sx_io *io;
	sx_pool *pool; /* NULL: one thread */
	sx_rdir d;
	sx_filehash fh;
	bool fh_open;
	uint8_t *region;
	size_t region_len;
	bslot sl[BP_SLOTS];
	sx_pjob jobs[BP_SLOTS];
	uint64_t efd_buf;
	int fd; /* receive: the output file; send: the sink */
	char path[BP_PATH_MAX];
	uint64_t next;	  /* the next record to take in (copy or read) */
	uint64_t prep;	  /* send: the next record to prepare */
	uint64_t fin;	  /* the next record whose result is taken */
	uint64_t out;	  /* records whose write completed */
	bool writing;	  /* send: the one write in flight */
	uint64_t on_loop; /* records the loop opened or sealed itself, workers busy */
} bpipe;

typedef struct clock_mark {
	uint64_t ns;
	struct rusage ru;
} clock_mark;

static uint64_t tag_of(int op, unsigned slot)
{
	return ((uint64_t)op << 32) | slot;
}

static double tv_s(struct timeval a, struct timeval b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_usec - a.tv_usec) / 1e6;
}

static void clock_begin(clock_mark *m)
{
	getrusage(RUSAGE_SELF, &m->ru);
	m->ns = sx_now_ns();
}

/* getrusage(RUSAGE_SELF) counts every thread of the process: the workers
 * and the kernel's io_uring workers too. */
static void clock_end(const clock_mark *m, bp_result *r)
{
	uint64_t ns = sx_now_ns();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	r->wall = (double)(ns - m->ns) / 1e9;
	r->user = tv_s(m->ru.ru_utime, ru.ru_utime);
	r->sys = tv_s(m->ru.ru_stime, ru.ru_stime);
}

static int arm_pool(bpipe *p, sx_err *err)
{
	return sx_io_read(p->io, sx_pool_fd(p->pool), &p->efd_buf, sizeof(p->efd_buf),
			  SX_IO_OFF_CUR, tag_of(OP_POOL, 0), err);
}

/* Everything a run needs, made before its clock starts. */
static int pipe_init(bpipe *p, const bp_session *s, bp_env *env, const bp_run *run, bool send,
		     sx_err *err)
{
	size_t stride = SX_DIO_ALIGN + s->chunk + SX_REC_TAG_MAX + SX_DIO_ALIGN;
	stride = (stride + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	*p = (bpipe){.s = s, .run = run, .send = send, .fd = -1, .leaf_rec = s->leaf == s->chunk};
	p->region_len = stride * BP_SLOTS;
	p->region = aligned_alloc(SX_DIO_ALIGN, p->region_len);
	if (p->region == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (unsigned i = 0; i < BP_SLOTS; i++)
		p->sl[i].buf = p->region + stride * i + SX_DIO_ALIGN - SX_REC_HDR_LEN;
	if (sx_io_open(&p->io, env->io, IO_DEPTH, err) < 0)
		return -1;
	if (env->io_name == NULL)
		env->io_name = sx_io_name(p->io);
	(void)sx_io_buf_add(p->io, p->region, p->region_len);
	if (run->threads > 1 &&
	    (sx_pool_new(&p->pool, run->threads - 1, err) < 0 || arm_pool(p, err) < 0))
		return -1;
	if (sx_rdir_init(&p->d, s->suite, s->secret, 0, err) < 0)
		return -1;
	if (run->sign) {
		if (sx_filehash_init(&p->fh, s->leaf, err) < 0)
			return -1;
		p->fh_open = true;
	}
	if (!send)
		return bp_out_open(env->out, p->path, &p->fd, err);
	/* The input stays registered until sx_io_close, as the sender's. */
	(void)sx_io_file_add(p->io, s->in_fd);
	snprintf(p->path, sizeof(p->path), "%s", SINK);
	p->fd = open(SINK, O_WRONLY | O_CLOEXEC);
	if (p->fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", SINK);
	return 0;
}

static void pipe_free(bpipe *p, const bp_env *env)
{
	/* Drains what is in flight (the pool's notification read) before
	 * the workers stop and the buffers go. */
	if (p->io != NULL)
		sx_io_close(p->io);
	sx_pool_free(p->pool);
	OPENSSL_cleanse(p->jobs, sizeof(p->jobs));
	sx_rdir_free(&p->d);
	if (p->fh_open)
		sx_filehash_free(&p->fh);
	if (p->send && p->fd >= 0)
		close(p->fd);
	else
		bp_out_close(env->out, p->path, p->fd);
	free(p->region);
}

static bslot *slot_free(bpipe *p)
{
	for (unsigned i = 0; i < BP_SLOTS; i++)
		if (p->sl[i].state == SL_FREE)
			return &p->sl[i];
	return NULL;
}

static bslot *slot_at(bpipe *p, uint64_t idx, sl_state st)
{
	for (unsigned i = 0; i < BP_SLOTS; i++)
		if (p->sl[i].state == st && p->sl[i].idx == idx)
			return &p->sl[i];
	return NULL;
}

static unsigned slot_no(const bpipe *p, const bslot *sl)
{
	return (unsigned)(sl - p->sl);
}

/* A record's plaintext into the tree, in record order: its leaf hashed by
 * a worker (leaf), hashed here as one whole leaf, or fed to the hasher when
 * leaves and records differ. */
static int fold(bpipe *p, const uint8_t *pt, size_t len, const uint8_t *leaf, sx_err *err)
{
	uint8_t h[SX_HASH_LEN];
	if (!p->fh_open)
		return 0;
	if (leaf != NULL)
		return sx_filehash_add_leaf(&p->fh, leaf, len, err);
	if (!p->leaf_rec)
		return sx_filehash_update(&p->fh, pt, len, err);
	if (sx_merkle_leaf(pt, len, h, err) < 0)
		return -1;
	return sx_filehash_add_leaf(&p->fh, h, len, err);
}

static int root_check(bpipe *p, const char *side, sx_err *err)
{
	uint8_t root[SX_HASH_LEN];
	uint64_t bytes = 0;
	if (!p->fh_open)
		return 0;
	if (sx_filehash_final(&p->fh, root, NULL, &bytes, err) < 0)
		return -1;
	if (bytes != p->s->size || memcmp(root, p->s->root, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s, %u thread(s): the Merkle root differs from the recording's",
			       side, p->run->threads);
	return 0;
}

/* Finished jobs: their slots wait for their turn (taken in record order). */
static int on_pool(bpipe *p, int64_t res, sx_err *err)
{
	sx_pjob *done[SX_POOL_QUEUE];
	if (res < 0)
		return sx_fail_errno(err, SX_E_OTHER, (int)-res, "worker notification");
	size_t n = sx_pool_take(p->pool, done, SX_ARRAY_LEN(done));
	for (size_t i = 0; i < n; i++) {
		if (done[i]->rc < 0) {
			*err = done[i]->err;
			p->d.failed = true; /* as sx_record_open would have */
			return -1;
		}
		p->sl[done[i]->slot].state = SL_DONE;
	}
	return arm_pool(p, err);
}

/* A worker would start a job at once: fewer jobs wait than there are
 * workers (the rule of both the receiving and the sending engine). */
static bool worker_free(bpipe *p)
{
	size_t waiting, inflight;
	sx_pool_load(p->pool, &waiting, &inflight);
	return inflight < SX_POOL_QUEUE && waiting < sx_pool_threads(p->pool);
}

/* ---- receive ---------------------------------------------------------------- */

/* An opened record, in record order: checked as the recording has it,
 * hashed, and written at its offset. */
static int rx_write(bpipe *p, bslot *sl, uint8_t type, uint8_t flags, const uint8_t *pt, size_t len,
		    const uint8_t *leaf, sx_err *err)
{
	if (type != SX_REC_DATA || flags != 0 || len != bp_plen(p->s, sl->idx))
		return sx_fail(err, SX_E_INTEGRITY, "record %llu: not the recorded DATA record",
			       (unsigned long long)sl->idx);
	if (fold(p, pt, len, leaf, err) < 0)
		return -1;
	sl->plen = len;
	sl->state = SL_WRITING;
	return sx_io_write(p->io, p->fd, pt, len, sl->idx * p->s->chunk,
			   tag_of(OP_WRITE, slot_no(p, sl)), err);
}

static int rx_take(bpipe *p, bslot *sl, sx_err *err)
{
	const bp_session *s = p->s;
	uint64_t i = p->next++;
	size_t len = bp_rec_len(s, i), body = 0, pt_len = 0;
	uint8_t type, flags, *pt;
	sl->idx = i;
	/* the copy recv() makes from the socket into the receive buffer */
	memcpy(sl->buf, bp_rec(s, i), len);
	if (sx_record_check_header(&p->d, sl->buf, s->chunk + s->tag_len, &body, err) < 0)
		return -1;
	if (SX_REC_HDR_LEN + body != len)
		return sx_fail(err, SX_E_INTEGRITY, "record %llu: a body of %zu bytes",
			       (unsigned long long)i, body);
	if (p->pool == NULL) {
		if (sx_record_open(&p->d, sl->buf, len, &type, &flags, &pt, &pt_len, err) < 0)
			return -1;
		return rx_write(p, sl, type, flags, pt, pt_len, NULL, err);
	}
	sx_pjob *j = &p->jobs[slot_no(p, sl)];
	memset(j, 0, sizeof(*j));
	j->open = true;
	j->rec = sl->buf;
	j->rec_len = len;
	j->leaf = p->fh_open && p->leaf_rec;
	j->slot = slot_no(p, sl);
	if (!worker_free(p)) {
		/* The server's rule (engine/transfer/serve_rxpool.c, to_pool):
		 * with every worker busy, the loop opens the record itself;
		 * its result is taken in record order like a worker's. */
		if (sx_record_open(&p->d, sl->buf, len, &j->type, &j->flags, &pt, &j->plen, err) <
			0 ||
		    (j->leaf && sx_merkle_leaf(pt, j->plen, j->leaf_hash, err) < 0))
			return -1;
		j->pt_off = (size_t)(pt - sl->buf);
		sl->state = SL_DONE;
		p->on_loop++;
		return 0;
	}
	if (sx_record_reserve(&p->d, body - s->tag_len, &j->key, err) < 0 ||
	    sx_pool_submit(p->pool, j, err) < 0)
		return -1;
	sl->state = SL_POOL;
	return 0;
}

static int rx_fold(bpipe *p, sx_err *err)
{
	bslot *sl;
	while ((sl = slot_at(p, p->fin, SL_DONE)) != NULL) {
		const sx_pjob *j = &p->jobs[slot_no(p, sl)];
		if (rx_write(p, sl, j->type, j->flags, j->rec + j->pt_off, j->plen,
			     j->leaf ? j->leaf_hash : NULL, err) < 0)
			return -1;
		p->fin++;
	}
	return 0;
}

static int rx_on_write(bpipe *p, bslot *sl, int64_t res, sx_err *err)
{
	if (res < 0)
		return sx_fail_errno(err, SX_E_IO, (int)-res, "writing %s", p->path);
	if ((uint64_t)res != sl->plen)
		return sx_fail(err, SX_E_IO, "writing %s: %lld of %zu bytes", p->path,
			       (long long)res, sl->plen);
	sl->state = SL_FREE;
	p->out++;
	return 0;
}

/* ---- send ------------------------------------------------------------------- */

static int tx_read(bpipe *p, bslot *sl, sx_err *err)
{
	return sx_io_read(p->io, p->s->in_fd, sl->buf + SX_REC_HDR_LEN + sl->plen,
			  sl->want - sl->plen, sl->idx * p->s->chunk + sl->plen,
			  tag_of(OP_READ, slot_no(p, sl)), err);
}

static int tx_take(bpipe *p, bslot *sl, sx_err *err)
{
	sl->idx = p->next++;
	sl->want = bp_plen(p->s, sl->idx);
	sl->plen = 0;
	sl->state = SL_READING;
	return tx_read(p, sl, err);
}

static int tx_on_read(bpipe *p, bslot *sl, int64_t res, sx_err *err)
{
	if (res < 0)
		return sx_fail_errno(err, SX_E_IO, (int)-res, "reading %s", p->s->in_path);
	if (res == 0)
		return sx_fail(err, SX_E_IO, "%s shrank while it was read", p->s->in_path);
	sl->plen += (size_t)res;
	if (sl->plen < sl->want)
		return tx_read(p, sl, err);
	sl->state = SL_READY;
	return 0;
}

/* Records are prepared in sequence order: handed to the pool (reserved
 * here), or hashed and sealed here. */
static int tx_prepare(bpipe *p, sx_err *err)
{
	bslot *sl;
	while ((sl = slot_at(p, p->prep, SL_READY)) != NULL) {
		uint8_t *pt = sl->buf + SX_REC_HDR_LEN;
		if (p->pool != NULL) {
			sx_pjob *j = &p->jobs[slot_no(p, sl)];
			memset(j, 0, sizeof(*j));
			j->rec = sl->buf;
			j->plen = sl->plen;
			j->type = SX_REC_DATA;
			j->leaf = p->fh_open && p->leaf_rec;
			j->slot = slot_no(p, sl);
			/* leaves across records: hashed here, in order */
			if (!j->leaf && fold(p, pt, sl->plen, NULL, err) < 0)
				return -1;
			if (!worker_free(p)) {
				/* every worker busy: sealed here, taken in order */
				if ((j->leaf &&
				     sx_merkle_leaf(pt, sl->plen, j->leaf_hash, err) < 0) ||
				    sx_record_seal(&p->d, SX_REC_DATA, 0, sl->buf, sl->plen,
						   &j->rec_len, err) < 0)
					return -1;
				sl->state = SL_DONE;
				p->on_loop++;
				p->prep++;
				continue;
			}
			if (sx_record_reserve(&p->d, sl->plen, &j->key, err) < 0 ||
			    sx_pool_submit(p->pool, j, err) < 0)
				return -1;
			sl->state = SL_POOL;
		} else {
			if (fold(p, pt, sl->plen, NULL, err) < 0 ||
			    sx_record_seal(&p->d, SX_REC_DATA, 0, sl->buf, sl->plen, &sl->rec_len,
					   err) < 0)
				return -1;
			sl->state = SL_SEALED;
			p->fin++;
		}
		p->prep++;
	}
	return 0;
}

static int tx_fold(bpipe *p, sx_err *err)
{
	bslot *sl;
	while ((sl = slot_at(p, p->fin, SL_DONE)) != NULL) {
		const sx_pjob *j = &p->jobs[slot_no(p, sl)];
		if (j->leaf && fold(p, NULL, sl->plen, j->leaf_hash, err) < 0)
			return -1;
		sl->rec_len = j->rec_len;
		sl->state = SL_SEALED;
		p->fin++;
	}
	return 0;
}

/* One write in flight keeps the byte stream in sequence order. */
static int tx_send(bpipe *p, sx_err *err)
{
	bslot *sl = p->writing ? NULL : slot_at(p, p->out, SL_SEALED);
	if (sl == NULL)
		return 0;
	sl->state = SL_WRITING;
	p->writing = true;
	return sx_io_write(p->io, p->fd, sl->buf, sl->rec_len, SX_IO_OFF_CUR,
			   tag_of(OP_WRITE, slot_no(p, sl)), err);
}

static int tx_on_write(bpipe *p, bslot *sl, int64_t res, sx_err *err)
{
	if (res < 0)
		return sx_fail_errno(err, SX_E_IO, (int)-res, "writing %s", p->path);
	if ((uint64_t)res != sl->rec_len)
		return sx_fail(err, SX_E_IO, "writing %s: %lld of %zu bytes", p->path,
			       (long long)res, sl->rec_len);
	/* A sender keyed as the recording's produces it byte for byte. */
	if (p->run->check && (sl->rec_len != bp_rec_len(p->s, sl->idx) ||
			      memcmp(sl->buf, bp_rec(p->s, sl->idx), sl->rec_len) != 0))
		return sx_fail(err, SX_E_INTEGRITY,
			       "send, %u thread(s): record %llu differs from the recording",
			       p->run->threads, (unsigned long long)sl->idx);
	sl->state = SL_FREE;
	p->writing = false;
	p->out++;
	return 0;
}

/* ---- the loop --------------------------------------------------------------- */

static int dispatch(bpipe *p, const sx_cqe *c, sx_err *err)
{
	unsigned op = (unsigned)(c->tag >> 32), k = (unsigned)(c->tag & 0xffffffffu);
	if (op == OP_POOL && p->pool != NULL)
		return on_pool(p, c->res, err);
	if (k >= BP_SLOTS)
		sx_io_bug("bench pipe: a completion for no slot", c->tag);
	bslot *sl = &p->sl[k];
	if (op == OP_READ && p->send && sl->state == SL_READING)
		return tx_on_read(p, sl, c->res, err);
	if (op == OP_WRITE && sl->state == SL_WRITING)
		return p->send ? tx_on_write(p, sl, c->res, err) : rx_on_write(p, sl, c->res, err);
	sx_io_bug("bench pipe: an unknown completion", c->tag);
}

/* Submits what is queued, waits up to timeout_ms, handles the completions. */
static int pump(bpipe *p, int timeout_ms, sx_err *err)
{
	sx_cqe cq[WAIT_MAX];
	int n = sx_io_wait(p->io, cq, WAIT_MAX, timeout_ms, err);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (dispatch(p, &cq[i], err) < 0)
			return -1;
	return 0;
}

/* One record taken in per turn, then its I/O submitted at once, so that
 * each write starts while its bytes are in the cache (the engine's loops
 * also wake for every completion). */
int bp_recv_run(const bp_session *s, bp_env *env, bp_run *run, bp_result *r, sx_err *err)
{
	bpipe p;
	clock_mark m;
	int rc = -1;
	run->out_fd = -1;
	SX_GUARD(pipe_init(&p, s, env, run, false, err));
	clock_begin(&m);
	while (p.out < s->nrec) {
		bslot *sl = p.next < s->nrec ? slot_free(&p) : NULL;
		SX_GUARD(bp_interrupted(env, err));
		if (sl != NULL)
			SX_GUARD(rx_take(&p, sl, err));
		if (p.pool != NULL)
			SX_GUARD(rx_fold(&p, err));
		SX_GUARD(pump(&p, sl != NULL ? 0 : -1, err));
	}
	SX_GUARD(root_check(&p, "receive", err));
	clock_end(&m, r);
	if (run->check && env->out->kind != BP_OUT_DEV) {
		/* compared by the caller, once the run is over */
		run->out_fd = p.fd;
		memcpy(run->out_path, p.path, sizeof(run->out_path));
		p.fd = -1;
	}
	rc = 0;
out:
	pipe_free(&p, env);
	return rc;
}

int bp_send_run(const bp_session *s, bp_env *env, bp_run *run, bp_result *r, sx_err *err)
{
	bpipe p;
	clock_mark m;
	int rc = -1;
	run->out_fd = -1;
	SX_GUARD(pipe_init(&p, s, env, run, true, err));
	clock_begin(&m);
	while (p.out < s->nrec) {
		bslot *sl = p.next < s->nrec ? slot_free(&p) : NULL;
		SX_GUARD(bp_interrupted(env, err));
		if (sl != NULL)
			SX_GUARD(tx_take(&p, sl, err));
		SX_GUARD(tx_prepare(&p, err));
		if (p.pool != NULL)
			SX_GUARD(tx_fold(&p, err));
		SX_GUARD(tx_send(&p, err));
		SX_GUARD(pump(&p, sl != NULL ? 0 : -1, err));
	}
	SX_GUARD(root_check(&p, "send", err));
	clock_end(&m, r);
	rc = 0;
out:
	pipe_free(&p, env);
	return rc;
}
