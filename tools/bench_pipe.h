/* tools/: sxfer bench pipe, what its files share. cmd_bench_pipe.c is the
 * command (options, rounds of runs, the table and the JSON object),
 * bench_pipe_rec.c the recorded session, the output files and the floor,
 * bench_pipe_run.c the two pipelines. Only public engine headers are used:
 * the record layer, the worker pool, the Merkle hashers and sx_io. */
#ifndef SX_BENCH_PIPE_H
#define SX_BENCH_PIPE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/io/sx_io.h"
#include "engine/record/sx_record.h"
#include "engine/sign/sx_manifest.h"

/* Records in flight in either pipeline: the sender's SX_SEND_SLOTS. */
#define BP_SLOTS       8
#define BP_THREADS_MAX 8 /* as the sender's --threads */
#define BP_PATH_MAX    4096
#define BP_RUNS_MAX    100 /* --runs */

/* The session recorded once before the timed runs: the plaintext (the
 * input file), and its records sealed as a sender keyed with secret seals
 * them from sequence number 0, back to back in memory. */
typedef struct bp_session {
	sx_suite suite;
	uint8_t secret[SX_SECRET_LEN];
	uint64_t size;
	uint32_t chunk;		   /* record payload */
	uint32_t leaf;		   /* Merkle leaf size */
	uint64_t nrec;		   /* records */
	size_t tag_len;		   /* of the suite */
	size_t stride;		   /* between records in rec */
	uint8_t *rec;		   /* the sealed records */
	size_t rec_cap;		   /* bytes allocated at rec */
	uint8_t root[SX_HASH_LEN]; /* the plaintext's Merkle root */
	int in_fd;		   /* the input file, the plaintext */
	char in_path[BP_PATH_MAX];
} bp_session;

static inline size_t bp_plen(const bp_session *s, uint64_t i)
{
	uint64_t left = s->size - i * s->chunk;
	return left < s->chunk ? (size_t)left : s->chunk;
}

static inline size_t bp_rec_len(const bp_session *s, uint64_t i)
{
	return SX_REC_HDR_LEN + bp_plen(s, i) + s->tag_len;
}

static inline const uint8_t *bp_rec(const bp_session *s, uint64_t i)
{
	return s->rec + i * s->stride;
}

/* Where the receive pipeline writes the plaintext: a file made (and
 * removed) for each run in a folder, a file name made and removed for each
 * run, or a character device (/dev/null) written as it is. */
typedef enum bp_out_kind { BP_OUT_DIR = 0, BP_OUT_NAME, BP_OUT_DEV } bp_out_kind;

typedef struct bp_out {
	bp_out_kind kind;
	char path[BP_PATH_MAX]; /* the folder, the file name or the device */
	const char *fs;		/* its file system, for the header */
	bool tmpfs;
} bp_out;

/* What every run needs besides the session. */
typedef struct bp_env {
	sx_io_kind io;
	const bp_out *out;
	volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM */
	const char *io_name;	     /* set by the first run: the backend used */
} bp_env;

/* One timed run of a pipeline. */
typedef struct bp_result {
	double wall, user, sys; /* seconds */
} bp_result;

/* One pass of the floor on one core: thread CPU seconds of each part over
 * the whole session. */
typedef struct bp_floor {
	double copy; /* receive: memcpy of each record; send: pread of its chunk */
	double aead; /* receive: sx_record_open; send: sx_record_seal */
	double sha;  /* sx_merkle_leaf of each record's plaintext */
	double io;   /* receive: pwrite of the plaintext; send: none (0) */
} bp_floor;

/* bench_pipe_rec.c */
int bp_interrupted(const bp_env *env, sx_err *err) SX_MUST_CHECK;
/* Makes the input file named s->in_path (s->in_fd is -1) and the recording:
 * size bytes of random plaintext, sealed under a random secret. */
int bp_session_make(bp_session *s, sx_suite suite, uint64_t size, uint32_t chunk, uint32_t leaf,
		    const bp_env *env, sx_err *err) SX_MUST_CHECK;
void bp_session_free(bp_session *s); /* wipes the secret, removes the input file */
/* An output file for one run: *fd and its name in path (BP_OUT_DEV: the
 * device). bp_out_close closes and removes it. */
int bp_out_open(const bp_out *o, char path[BP_PATH_MAX], int *fd, sx_err *err) SX_MUST_CHECK;
void bp_out_close(const bp_out *o, const char *path, int fd);
/* The file at fd holds exactly the plaintext (the input file). */
int bp_out_check(const bp_session *s, int fd, const char *path, sx_err *err) SX_MUST_CHECK;
/* Writes and frees mib MiB, so the run after finds the pages it needs. */
int bp_warm(uint64_t mib, sx_err *err) SX_MUST_CHECK;
int bp_floor_recv(const bp_session *s, const bp_env *env, bp_floor *f, sx_err *err) SX_MUST_CHECK;
int bp_floor_send(const bp_session *s, const bp_env *env, bp_floor *f, sx_err *err) SX_MUST_CHECK;

/* bench_pipe_run.c: one run of the receive or the send pipeline with
 * threads threads (1: on this thread alone; N: this one and N - 1 pool
 * workers), hashing the Merkle leaves when sign. check: an untimed run that
 * also compares what it produced with the recording (the sent records byte
 * for byte; the received file is compared by the caller, from *out_fd,
 * which it then closes with bp_out_close). */
typedef struct bp_run {
	unsigned threads;
	bool sign, check;
	int out_fd;		    /* receive, check: the output file, left open */
	char out_path[BP_PATH_MAX]; /* and its name */
} bp_run;

int bp_recv_run(const bp_session *s, bp_env *env, bp_run *run, bp_result *r,
		sx_err *err) SX_MUST_CHECK;
int bp_send_run(const bp_session *s, bp_env *env, bp_run *run, bp_result *r,
		sx_err *err) SX_MUST_CHECK;

/* cmd_bench_pipe.c: the command's state; bench_pipe_out.c prints it. */
enum { BP_RECV = 0, BP_SEND = 1, BP_SIDES = 2 };
#define BP_CONF_MAX (BP_SIDES * BP_THREADS_MAX * 2)

typedef struct bp_conf {
	int side;
	unsigned threads;
	bool sign;
} bp_conf;

typedef struct bp_bench {
	/* options */
	uint64_t size;
	uint32_t chunk, leaf;
	sx_suite suite;
	unsigned runs;
	uint64_t warm_mib;
	bool sides[BP_SIDES];
	bool signs[2]; /* [0] unsigned, [1] signed */
	unsigned threads[BP_THREADS_MAX];
	size_t nthreads;
	bool json;
	/* the run */
	bp_session s;
	bp_out out;
	bp_env env;
	char tmp[BP_PATH_MAX - 64]; /* the temporary folder (in.bin goes in it) */
	const char *tmp_fs;
	bool tmp_tmpfs;
	/* results */
	bp_conf confs[BP_CONF_MAX];
	size_t nconf;
	bp_result *res;	  /* res[c * runs + r]: configuration c, run r */
	bp_floor *floors; /* floors[side * runs + r] */
} bp_bench;

/* bench_pipe_out.c */
void bp_print_table(const bp_bench *b);
void bp_print_json(const bp_bench *b);

#endif
