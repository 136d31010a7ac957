#include "engine/transfer/sx_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "engine/sign/sx_manifest.h"

#define SX_POOL_THREADS_MAX 16

struct sx_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sx_pjob *queue[SX_POOL_QUEUE]; /* waiting, FIFO */
	size_t qhead, qlen;
	sx_pjob *done[SX_POOL_QUEUE];
	size_t ndone;
	size_t inflight; /* submitted and not yet taken: queued, running or done */
	bool stop;
	uint64_t epoch; /* the newest epoch handed out: older lanes are wiped */
	uint64_t gen;	/* sx_pool_flush calls: lanes keyed before one are wiped */
	int efd;
	unsigned nthreads;
	pthread_t threads[SX_POOL_THREADS_MAX];
};

static void run_open(sx_rlane *lane, sx_pjob *j)
{
	uint8_t *pt = NULL;
	j->rc = sx_rlane_open(lane, &j->key, j->rec, j->rec_len, &j->type, &j->flags, &pt, &j->plen,
			      &j->err);
	if (j->rc == 0) {
		j->pt_off = (size_t)(pt - j->rec);
		if (j->leaf)
			j->rc = sx_merkle_leaf(pt, j->plen, j->leaf_hash, &j->err);
	}
	OPENSSL_cleanse(j->key.secret, sizeof(j->key.secret));
}

static void run(sx_rlane *lane, sx_pjob *j)
{
	sx_err_clear(&j->err);
	j->rc = 0;
	if (j->open) {
		run_open(lane, j);
		return;
	}
	if (j->leaf)
		j->rc = sx_merkle_leaf(j->rec + SX_REC_HDR_LEN, j->plen, j->leaf_hash, &j->err);
	if (j->rc == 0)
		j->rc =
		    sx_rlane_seal(lane, &j->key, j->type, 0, j->rec, j->plen, &j->rec_len, &j->err);
	OPENSSL_cleanse(j->key.secret, sizeof(j->key.secret));
}

static void *worker(void *arg)
{
	sx_pool *p = arg;
	sx_rlane lane = {0}; /* this thread's cipher contexts */
	uint64_t gen = 0;    /* p->gen when the lane was last keyed */
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->qlen == 0) {
			/* An idle lane keeps no key older than the newest epoch:
			 * the key update's forward secrecy holds for workers too;
			 * nor the key of a connection that has ended. */
			if (lane.ready && (lane.epoch < p->epoch || gen < p->gen))
				sx_rlane_free(&lane);
			pthread_cond_wait(&p->cv, &p->mu);
		}
		if (p->stop)
			break;
		sx_pjob *j = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % SX_POOL_QUEUE;
		p->qlen--;
		pthread_mutex_unlock(&p->mu);
		run(&lane, j);
		pthread_mutex_lock(&p->mu);
		/* The job's connection was alive while it ran (its owner waits
		 * for every job before it ends it): a flush before now was for
		 * another connection, whose keys the lane no longer holds. */
		gen = p->gen;
		p->done[p->ndone++] = j;
		uint64_t one = 1;
		/* The counter saturates long after SX_POOL_QUEUE jobs. */
		ssize_t w = write(p->efd, &one, sizeof(one));
		(void)w;
	}
	pthread_mutex_unlock(&p->mu);
	sx_rlane_free(&lane);
	return NULL;
}

int sx_pool_new(sx_pool **out, unsigned threads, sx_err *err)
{
	sx_pool *p = calloc(1, sizeof(*p));
	*out = NULL;
	if (p == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	if (threads == 0)
		threads = 1;
	if (threads > SX_POOL_THREADS_MAX)
		threads = SX_POOL_THREADS_MAX;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->efd = eventfd(0, EFD_CLOEXEC);
	if (p->efd < 0) {
		int e = errno;
		free(p);
		return sx_fail_errno(err, SX_E_OTHER, e, "eventfd");
	}
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
			sx_pool_free(p);
			return sx_fail(err, SX_E_OTHER, "cannot start worker threads");
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

int sx_pool_fd(const sx_pool *p)
{
	return p->efd;
}

int sx_pool_submit(sx_pool *p, sx_pjob *job, sx_err *err)
{
	pthread_mutex_lock(&p->mu);
	if (job->key.epoch > p->epoch) {
		p->epoch = job->key.epoch;
		pthread_cond_broadcast(&p->cv); /* idle workers drop older keys */
	}
	if (p->inflight >= SX_POOL_QUEUE) {
		pthread_mutex_unlock(&p->mu);
		return sx_fail(err, SX_E_OTHER, "worker queue full (internal)");
	}
	p->queue[(p->qhead + p->qlen) % SX_POOL_QUEUE] = job;
	p->qlen++;
	p->inflight++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

size_t sx_pool_take(sx_pool *p, sx_pjob **out, size_t max)
{
	pthread_mutex_lock(&p->mu);
	size_t n = p->ndone < max ? p->ndone : max;
	memcpy(out, p->done, n * sizeof(*out));
	memmove(p->done, p->done + n, (p->ndone - n) * sizeof(*out));
	p->ndone -= n;
	p->inflight -= n;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void sx_pool_load(sx_pool *p, size_t *waiting, size_t *inflight)
{
	pthread_mutex_lock(&p->mu);
	*waiting = p->qlen;
	*inflight = p->inflight;
	pthread_mutex_unlock(&p->mu);
}

unsigned sx_pool_threads(const sx_pool *p)
{
	return p->nthreads;
}

void sx_pool_flush(sx_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->gen++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void sx_pool_free(sx_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (size_t i = 0; i < p->qlen; i++)
		OPENSSL_cleanse(p->queue[(p->qhead + i) % SX_POOL_QUEUE]->key.secret,
				sizeof(p->queue[0]->key.secret));
	close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
