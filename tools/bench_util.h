/* What `sxfer bench fleet` and `sxfer bench handshakes` share: a gate that
 * releases every worker thread at one moment, percentiles, the process's
 * CPU time, a temporary folder, and the device identities of a fleet
 * (issued by a CA in memory or into folders, or loaded). Load generators,
 * not part of the protocol: nothing here is used by the engine. */
#ifndef SX_BENCH_UTIL_H
#define SX_BENCH_UTIL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "pki/sx_pki.h"

#define SX_BENCH_PATH_MAX 4096

/* Worker threads wait here until every one of them is ready; then the
 * main thread opens the gate and they all go at once. */
typedef struct sx_bench_gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready; /* workers waiting */
	bool open;
} sx_bench_gate;

void sx_bench_gate_init(sx_bench_gate *g);
void sx_bench_gate_free(sx_bench_gate *g);
/* A worker: counts itself ready and waits for the gate to open. */
void sx_bench_gate_wait(sx_bench_gate *g);
/* The main thread: waits until n workers are ready (all of them, or as many
 * as were started when starting one failed), then opens the gate and
 * returns the moment it did (sx_now_ns). */
uint64_t sx_bench_gate_open(sx_bench_gate *g, unsigned n);

/* SIGINT and SIGTERM set *flag (closed peers do not kill the process:
 * SIGPIPE is ignored). One flag per process. */
void sx_bench_signals(volatile sig_atomic_t *flag);

/* The p-th percentile (0 < p <= 100) of sorted[0..n), nearest rank; 0 when
 * n is 0. sx_bench_sort sorts in place. */
double sx_bench_pct(const double *sorted, size_t n, double p);
void sx_bench_sort(double *v, size_t n);

/* The CPU seconds this process has used so far, user and system
 * (getrusage RUSAGE_SELF: every thread). */
void sx_bench_cpu(double *user_s, double *sys_s);

/* A new private folder PREFIX-XXXXXX under $TMPDIR, else /dev/shm when it
 * is writable, else /tmp, into buf; sx_bench_rmtree removes a folder and
 * everything in it (best effort). */
const char *sx_bench_tmp_base(void);
int sx_bench_mkdtemp(char *buf, size_t cap, const char *prefix, sx_err *err) SX_MUST_CHECK;
void sx_bench_rmtree(const char *dir);

/* The identities of a fleet of n devices named dev-0001, dev-0002, ...:
 *   ids_dir NULL: issued in memory by the CA in ca_dir (P-256 keys, valid
 *     one day, not recorded in the CA's index: throwaway identities that no
 *     CRL can name);
 *   ids_dir set: loaded from ids_dir/dev-0001, ...; a folder that is
 *     missing is issued there first by the CA (P-256, plain key, 30 days,
 *     recorded in the index, replacing an earlier certificate of the name).
 * The CA's key is opened with ca_pass_file, SXFER_PASSPHRASE or a prompt
 * when it is encrypted, and only when something is issued. */
typedef struct sx_bench_ids {
	const char *ca_dir;	  /* may be NULL when every folder of ids_dir exists */
	const char *ca_pass_file; /* may be NULL */
	const char *ids_dir;	  /* NULL: in memory */
	unsigned n;
} sx_bench_ids;

#define SX_BENCH_DEV_NAME_MAX 16
/* "dev-0001" for index 0. */
void sx_bench_dev_name(unsigned idx, char buf[SX_BENCH_DEV_NAME_MAX]);
/* ids[0..cfg->n) are filled (sx_identity_free each, also after a failure:
 * those not filled are zeroed). *issued: how many were issued now. */
int sx_bench_ids_make(const sx_bench_ids *cfg, sx_identity *ids, unsigned *issued,
		      sx_err *err) SX_MUST_CHECK;

#endif
