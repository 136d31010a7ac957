/* engine/transfer: the receiver's counters behind sxfer serve --metrics
 * (serve_metrics.c, docs/METRICS.md). Each event loop adds to a block of
 * its own, one cache line apart from the others': only that loop's thread
 * writes it (a relaxed load and store, no locked instruction), and the
 * metrics thread sums the blocks at a scrape. Without --metrics there are
 * no blocks and every count is one test of a NULL pointer. */
#ifndef SX_SERVE_METRICS_H
#define SX_SERVE_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/transfer/sx_metrics.h"

typedef struct srv_mloop {
	_Atomic uint64_t bytes;		/* file bytes received (DATA, decompressed) */
	_Atomic uint64_t files_stored;	/* answered FILE_OK after their data */
	_Atomic uint64_t batches;	/* batch signatures verified */
	_Atomic uint64_t receipts;	/* receipts sent */
	_Atomic uint64_t conns_refused; /* closed at accept: no handshake slot */
	_Atomic uint64_t hs[SX_HS_N];
	_Atomic uint64_t refused[SX_RF_N];
	_Atomic uint64_t dur[SX_DUR_BUCKETS + 1];
	_Atomic uint64_t dur_ns; /* sum of the durations */
} __attribute__((aligned(64))) srv_mloop;

/* Bytes and files stored per device (--metrics-per-device): a table under
 * a lock, taken once per file stored, never per record. */
#define MDEV_MAX 65536 /* devices counted by name; the rest only in the sum */
typedef struct mdev {
	char *name; /* NULL: a free entry */
	uint64_t bytes, files;
} mdev;

struct shared;
struct server;
struct conn;
struct rfile;
struct sx_mhttp;

typedef struct srv_metrics {
	srv_mloop *loops; /* one block per event loop */
	unsigned nloops;
	const sx_metrics_cfg *cfg;
	struct shared *sh;
	struct sx_mhttp *http;
	double start_time; /* seconds since the epoch */
	pthread_mutex_t dev_lock;
	mdev *dev; /* open addressing, dev_cap a power of two */
	size_t ndev, dev_cap;
	uint64_t rest_bytes, rest_files; /* devices past MDEV_MAX */
} srv_metrics;

/* The loop's block, NULL without metrics. */
#define SRV_MLOOP(s) ((s)->sh->met != NULL ? &(s)->sh->met->loops[(s)->loop] : NULL)

/* Adds n to a counter of the calling loop's own block. */
static inline void srv_madd(_Atomic uint64_t *x, uint64_t n)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

#define SRV_COUNT(s, field, n)                                                                     \
	do {                                                                                       \
		srv_mloop *ml_ = SRV_MLOOP(s);                                                     \
		if (ml_ != NULL)                                                                   \
			srv_madd(&ml_->field, (n));                                                \
	} while (0)

/* Starts the listener and its thread (nothing without sh->cfg->metrics),
 * before the event loops; stopped after them, before shared state goes. */
int srv_metrics_start(struct shared *sh, unsigned nloops, sx_err *err) SX_MUST_CHECK;
void srv_metrics_stop(struct shared *sh);
/* A handshake's end: why NULL when the peer is in, else why it is not. */
void srv_m_handshake(struct server *s, const char *why);
/* A FILE_ERR sent, with its class and message. */
void srv_m_refused(struct server *s, const sx_err *why);
/* A file stored: its duration and, per device, its bytes. */
void srv_m_stored(struct server *s, struct conn *c, const struct rfile *f);

#endif
