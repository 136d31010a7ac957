/* sxfer bench: what this machine can do. Times the engine's primitives on one
 * core (seal and open per suite, the Merkle leaf hash, memcpy) and a whole
 * loopback transfer through sx_serve_run and sx_send_run, with a throwaway
 * CA and identities in a temporary folder that is removed at the end. The
 * numbers are the user's first answer to "how fast can sxfer be here?";
 * bench/ holds the detailed tools (docs/PERFORMANCE.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/magic.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/sx_util.h"
#include "engine/sign/sx_manifest.h"
#include "engine/transfer/sx_transfer.h"
#include "pki/sx_ca.h"
#include "tools/bench_util.h"
#include "tools/cli.h"

#define BENCH_BUF	      (1u << 20) /* one primitive call; the default record payload */
#define BENCH_REC_CAP	      (SX_REC_HDR_LEN + BENCH_BUF + SX_REC_TAG_MAX)
#define BENCH_RING	      8 /* records sealed ahead of an open run */
#define BENCH_SECONDS_DEFAULT 0.3
#define BENCH_SECONDS_MIN     0.001
#define BENCH_SECONDS_MAX     60.0
#define BENCH_SIZE_DEFAULT    (256ull << 20)
#define BENCH_SIZE_MAX	      (64ull << 30)
#define BENCH_NSUITES	      3
#define BENCH_PRIM_MAX	      (2 * BENCH_NSUITES + 2)
#define BENCH_RUN_MAX	      (2 * BENCH_NSUITES)
#define BENCH_PORT_WAIT_MS    10000
#define BENCH_TIMEOUT_MS      30000
#define BENCH_PATH_MAX	      4096
#define BENCH_CLIENT_NAME     "bench-client"
#define BENCH_DAYS	      1
#define MIB		      1048576.0
#define GIB		      1073741824.0

static const char usage[] =
    "usage: sxfer bench [options]\n"
    "       sxfer bench fleet|handshakes [options] HOST:PORT\n"
    "\n"
    "Measures this machine: sxfer's primitives on one core (1 MiB buffers) and a\n"
    "loopback transfer with a throwaway CA and identities. Prints MiB/s and\n"
    "seconds per GiB. The temporary folder is $TMPDIR, else /dev/shm when it is\n"
    "writable, else /tmp; it is removed at the end. Other load on the machine\n"
    "(builds, tests) lowers every figure.\n"
    "\n"
    "  --size SIZE      size of the transferred file (default 256M; e.g. 64M, 1G)\n"
    "  --seconds S      time per primitive (default 0.3)\n"
    "  --suite S        aes256gcm, aes256ctr-hmac, chacha20poly1305 or all (default)\n"
    "  --io KIND        auto (default), uring or poll, for both ends of the transfer\n"
    "  --no-transfer    the primitives only\n"
    "  --json           print one JSON object instead of the table\n"
    "\n"
    "subcommands:\n"
    "  fleet            many devices uploading at once to a server, from one process\n"
    "  handshakes       TLS 1.3 handshakes with a client certificate, per second\n"
    "  pipe             the receive and send pipelines alone, against their floor\n"
    "Run 'sxfer bench <subcommand> --help' for their options.\n";

typedef struct bench_prim {
	const char *name;  /* "seal", "open", "sha256-leaf", "memcpy" */
	const char *suite; /* NULL when not a record primitive */
	uint64_t bytes;
	uint64_t ns;
} bench_prim;

typedef struct bench_run {
	sx_suite suite;
	bool sign;
	sx_send_stats st;
} bench_run;

typedef struct bench {
	/* options */
	double seconds;
	uint64_t size;
	sx_suite suites[BENCH_NSUITES];
	size_t nsuites;
	sx_io_kind io;
	bool transfer, json;
	/* results */
	bench_prim prims[BENCH_PRIM_MAX];
	size_t nprims;
	bench_run runs[BENCH_RUN_MAX];
	size_t nruns;
	char base[BENCH_PATH_MAX]; /* where the temporary folder was made */
	const char *fs;		   /* its file system */
	bool tmpfs;
} bench;

/* SIGINT/SIGTERM: the loops stop at the next step and the loopback server
 * shuts its connection, so the send fails and the temporary folder (keys
 * included) is removed on the way out. */
static volatile sig_atomic_t bench_stop;

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

static int interrupted(sx_err *err)
{
	return bench_stop ? sx_fail(err, SX_E_OTHER, "interrupted") : 0;
}

/* ---- primitives ----------------------------------------------------------- */

/* One timed step: does one 1 MiB operation and adds the nanoseconds that
 * count to *ns (untimed preparation, such as sealing records to open, is left
 * out). */
typedef int (*bench_step)(void *ctx, uint64_t *ns, sx_err *err);

static int bench_time(bench *b, const char *name, const char *suite, bench_step step, void *ctx,
		      sx_err *err)
{
	uint64_t warm = 0, ns = 0, n = 0;
	uint64_t limit = (uint64_t)(b->seconds * 1e9);
	int rc = -1;
	SX_ENSURE(b->nprims < BENCH_PRIM_MAX, err, SX_E_OTHER, "too many benchmarks");
	SX_GUARD(step(ctx, &warm, err)); /* first touch of the buffers and keys */
	do {
		SX_GUARD(interrupted(err));
		SX_GUARD(step(ctx, &ns, err));
		n++;
	} while (ns < limit);
	b->prims[b->nprims++] =
	    (bench_prim){.name = name, .suite = suite, .bytes = n * BENCH_BUF, .ns = ns};
	rc = 0;
out:
	return rc;
}

typedef struct rec_ctx {
	sx_rdir seal, open; /* two directions keyed with one secret */
	uint8_t *ring[BENCH_RING];
	size_t len[BENCH_RING];
	size_t next; /* next record to open; BENCH_RING: seal a new ring first */
} rec_ctx;

static int step_seal(void *ctx, uint64_t *ns, sx_err *err)
{
	rec_ctx *r = ctx;
	uint64_t t0 = sx_now_ns();
	size_t len;
	if (sx_record_seal(&r->seal, SX_REC_DATA, 0, r->ring[0], BENCH_BUF, &len, err) < 0)
		return -1;
	*ns += sx_now_ns() - t0;
	return 0;
}

/* Records open only in sequence order, so a ring of them is sealed (not
 * timed) and then opened one by one; after an open the plaintext sits in
 * place, ready to be sealed again. */
static int step_open(void *ctx, uint64_t *ns, sx_err *err)
{
	rec_ctx *r = ctx;
	uint8_t type, flags, *pt;
	size_t pt_len;
	if (r->next == BENCH_RING) {
		for (size_t i = 0; i < BENCH_RING; i++)
			if (sx_record_seal(&r->seal, SX_REC_DATA, 0, r->ring[i], BENCH_BUF,
					   &r->len[i], err) < 0)
				return -1;
		r->next = 0;
	}
	uint64_t t0 = sx_now_ns();
	if (sx_record_open(&r->open, r->ring[r->next], r->len[r->next], &type, &flags, &pt, &pt_len,
			   err) < 0)
		return -1;
	*ns += sx_now_ns() - t0;
	if (pt_len != BENCH_BUF)
		return sx_fail(err, SX_E_OTHER, "bench: opened %zu bytes, sealed %u", pt_len,
			       BENCH_BUF);
	r->next++;
	return 0;
}

static int bench_suite(bench *b, sx_suite suite, uint8_t *const ring[BENCH_RING], sx_err *err)
{
	uint8_t secret[SX_SECRET_LEN];
	rec_ctx r = {.next = BENCH_RING};
	int rc = -1;
	memcpy(r.ring, ring, sizeof(r.ring));
	SX_ENSURE(RAND_bytes(secret, sizeof(secret)) == 1, err, SX_E_OTHER, "no randomness");
	SX_GUARD(sx_rdir_init(&r.seal, suite, secret, 0, err));
	SX_GUARD(bench_time(b, "seal", sx_suite_name(suite), step_seal, &r, err));
	/* open needs the sealer's sequence numbers from 0: start both afresh */
	sx_rdir_free(&r.seal);
	SX_GUARD(sx_rdir_init(&r.seal, suite, secret, 0, err));
	SX_GUARD(sx_rdir_init(&r.open, suite, secret, 0, err));
	SX_GUARD(bench_time(b, "open", sx_suite_name(suite), step_open, &r, err));
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	sx_rdir_free(&r.seal);
	sx_rdir_free(&r.open);
	return rc;
}

static int step_leaf(void *ctx, uint64_t *ns, sx_err *err)
{
	uint8_t h[SX_HASH_LEN];
	uint64_t t0 = sx_now_ns();
	if (sx_merkle_leaf(ctx, BENCH_BUF, h, err) < 0)
		return -1;
	*ns += sx_now_ns() - t0;
	return 0;
}

typedef struct copy_ctx {
	uint8_t *dst;
	const uint8_t *src;
} copy_ctx;

static int step_memcpy(void *ctx, uint64_t *ns, sx_err *err)
{
	copy_ctx *c = ctx;
	(void)err;
	uint64_t t0 = sx_now_ns();
	memcpy(c->dst, c->src, BENCH_BUF);
	/* the copy is never read: tell the compiler it is, so it stays */
	__asm__ volatile("" : : "r"(c->dst) : "memory");
	*ns += sx_now_ns() - t0;
	return 0;
}

static int bench_primitives(bench *b, sx_err *err)
{
	uint8_t *ring[BENCH_RING] = {0};
	int rc = -1;
	for (size_t i = 0; i < BENCH_RING; i++) {
		ring[i] = malloc(BENCH_REC_CAP);
		SX_ENSURE(ring[i] != NULL, err, SX_E_OTHER, "out of memory");
		SX_ENSURE(RAND_bytes(ring[i], BENCH_REC_CAP) == 1, err, SX_E_OTHER,
			  "no randomness");
	}
	for (size_t i = 0; i < b->nsuites; i++)
		SX_GUARD(bench_suite(b, b->suites[i], ring, err));
	SX_GUARD(bench_time(b, "sha256-leaf", NULL, step_leaf, ring[0], err));
	copy_ctx c = {.dst = ring[1], .src = ring[0]};
	SX_GUARD(bench_time(b, "memcpy", NULL, step_memcpy, &c, err));
	rc = 0;
out:
	for (size_t i = 0; i < BENCH_RING; i++)
		free(ring[i]);
	return rc;
}

/* ---- the loopback transfer ---------------------------------------------- */

typedef struct bench_server {
	sx_serve_cfg cfg;
	pthread_mutex_t mu;
	int port;  /* under mu: 0 until listening */
	bool done; /* under mu: sx_serve_run returned */
	int rc;
	sx_err err;
} bench_server;

static void on_listen(void *ctx, int port)
{
	bench_server *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->port = port;
	pthread_mutex_unlock(&s->mu);
}

static void *serve_main(void *arg)
{
	bench_server *s = arg;
	sx_err err = {0};
	int rc = sx_serve_run(&s->cfg, &err);
	pthread_mutex_lock(&s->mu);
	s->rc = rc;
	s->err = err;
	s->done = true;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Waits until the server listens (its port) or has failed. */
static int server_wait(bench_server *s, int *port, sx_err *err)
{
	for (int waited = 0; waited < BENCH_PORT_WAIT_MS; waited += 10) {
		if (interrupted(err) < 0)
			return -1;
		pthread_mutex_lock(&s->mu);
		int p = s->port;
		bool done = s->done;
		pthread_mutex_unlock(&s->mu);
		if (p != 0) {
			*port = p;
			return 0;
		}
		if (done)
			return sx_fail(err, s->err.cls ? s->err.cls : SX_E_OTHER,
				       "loopback server: %s", s->err.msg);
		usleep(10000);
	}
	return sx_fail(err, SX_E_NET, "loopback server: not listening after %d ms",
		       BENCH_PORT_WAIT_MS);
}

static int join(char *buf, const char *dir, const char *name, sx_err *err)
{
	int n = snprintf(buf, BENCH_PATH_MAX, "%s/%s", dir, name);
	if (n < 0 || n >= BENCH_PATH_MAX)
		return sx_fail(err, SX_E_IO, "%s: path too long", dir);
	return 0;
}

static const char *fs_name(unsigned long type)
{
	switch (type) {
	case TMPFS_MAGIC: return "tmpfs";
	case EXT4_SUPER_MAGIC: return "ext2/3/4";
	case XFS_SUPER_MAGIC: return "xfs";
	case BTRFS_SUPER_MAGIC: return "btrfs";
	case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
	default: return "another file system";
	}
}

static int make_pki(const char *tmp, sx_identity *srv, sx_identity *cli, sx_err *err)
{
	static const char *const dns[] = {"localhost"};
	static const char *const ips[] = {"127.0.0.1"};
	const sx_pass plain = {.none = true};
	sx_cert_spec srv_spec = {.profile = SX_PROFILE_SERVER,
				 .name = "localhost",
				 .dns = dns,
				 .ndns = 1,
				 .ips = ips,
				 .nips = 1};
	sx_cert_spec cli_spec = {.profile = SX_PROFILE_CLIENT, .name = BENCH_CLIENT_NAME};
	char ca_dir[BENCH_PATH_MAX], srv_dir[BENCH_PATH_MAX], cli_dir[BENCH_PATH_MAX];
	sx_ca ca = {.lock_fd = -1};
	bool ca_open = false;
	X509 *cert = NULL;
	int rc = -1;
	SX_GUARD(join(ca_dir, tmp, "ca", err));
	SX_GUARD(join(srv_dir, tmp, "server", err));
	SX_GUARD(join(cli_dir, tmp, "client", err));
	SX_GUARD(sx_ca_init(ca_dir, "sxfer bench CA", SX_KEY_P256, BENCH_DAYS, &plain, err));
	SX_GUARD(sx_ca_open(ca_dir, &plain, &ca, err));
	ca_open = true;
	SX_GUARD(sx_ca_issue_identity(&ca, &srv_spec, SX_KEY_P256, BENCH_DAYS, srv_dir, &plain,
				      &cert, err));
	X509_free(cert);
	cert = NULL;
	SX_GUARD(sx_ca_issue_identity(&ca, &cli_spec, SX_KEY_P256, BENCH_DAYS, cli_dir, &plain,
				      &cert, err));
	SX_GUARD(sx_identity_load(srv_dir, &plain, srv, err));
	SX_GUARD(sx_identity_load(cli_dir, &plain, cli, err));
	rc = 0;
out:
	X509_free(cert);
	if (ca_open)
		sx_ca_close(&ca);
	return rc;
}

/* size random bytes into a new file (0600). */
static int make_input(const char *path, uint64_t size, sx_err *err)
{
	uint8_t *buf = malloc(BENCH_BUF);
	int fd = -1, rc = -1;
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", path);
		goto out;
	}
	for (uint64_t left = size; left > 0;) {
		SX_GUARD(interrupted(err));
		size_t n = left < BENCH_BUF ? (size_t)left : BENCH_BUF;
		SX_ENSURE(RAND_bytes(buf, (int)n) == 1, err, SX_E_OTHER, "no randomness");
		for (size_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				sx_fail_errno(err, SX_E_IO, errno, "writing %s", path);
				goto out;
			}
			off += (size_t)w;
		}
		left -= n;
	}
	if (close(fd) < 0) {
		fd = -1;
		sx_fail_errno(err, SX_E_IO, errno, "writing %s", path);
		goto out;
	}
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* The engine logs each connection and file on stderr; during the transfers
 * that goes to a file in the temporary folder, shown only on failure. */
static int log_begin(const char *path, int *saved, sx_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", path);
	fflush(stderr);
	*saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	if (*saved < 0 || dup2(fd, STDERR_FILENO) < 0) {
		int e = errno;
		if (*saved >= 0)
			close(*saved);
		*saved = -1;
		close(fd);
		return sx_fail_errno(err, SX_E_IO, e, "redirecting the engine's log");
	}
	close(fd);
	return 0;
}

static void log_end(int saved, const char *path, bool show)
{
	char line[1024];
	FILE *f;
	if (saved < 0)
		return;
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (!show || (f = fopen(path, "r")) == NULL)
		return;
	fprintf(stderr, "sxfer bench: the engine's log of the loopback transfer:\n");
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

static int send_one(bench *b, const sx_identity *cli, const char *port, char *input,
		    const char *receipts, sx_suite suite, bool sign, sx_err *err)
{
	char *paths[] = {input};
	sx_send_cfg cfg = {.host = "127.0.0.1",
			   .port = port,
			   .id = cli,
			   .server_name = "localhost",
			   .suite = suite,
			   .chunk = SX_CHUNK_DEFAULT,
			   .io = b->io,
			   .paths = paths,
			   .npaths = 1,
			   .timeout_ms = BENCH_TIMEOUT_MS,
			   .no_sign = !sign,
			   .receipts_dir = receipts,
			   .no_resume = true}; /* every run sends the whole file */
	bench_run *r;
	if (b->nruns >= BENCH_RUN_MAX)
		return sx_fail(err, SX_E_OTHER, "too many transfers");
	r = &b->runs[b->nruns];
	*r = (bench_run){.suite = suite, .sign = sign};
	if (sx_send_run(&cfg, &r->st, err) < 0) {
		if (bench_stop) {
			sx_err_clear(err);
			return interrupted(err);
		}
		if (err->cls == SX_OK)
			sx_fail(err, SX_E_OTHER, "send failed");
		sx_err_prefix(err, "loopback transfer (%s, %s): ", sx_suite_name(suite),
			      sign ? "signed" : "no-sign");
		return -1;
	}
	if (r->st.files_ok != 1 || r->st.bytes != b->size)
		return sx_fail(err, SX_E_INTEGRITY,
			       "loopback transfer (%s): %llu file(s), %llu of %llu bytes",
			       sx_suite_name(suite), (unsigned long long)r->st.files_ok,
			       (unsigned long long)r->st.bytes, (unsigned long long)b->size);
	b->nruns++;
	return 0;
}

static int bench_transfer(bench *b, sx_err *err)
{
	char tmp[BENCH_PATH_MAX], out_dir[BENCH_PATH_MAX], receipts[BENCH_PATH_MAX];
	char input[BENCH_PATH_MAX], log[BENCH_PATH_MAX], port_s[16];
	sx_identity srv = {0}, cli = {0};
	bench_server s = {.rc = 0};
	bool have_tmp = false, started = false;
	pthread_t th;
	struct statfs fs;
	int saved = -1, port = 0, rc = -1;
	const char *base = sx_bench_tmp_base();
	pthread_mutex_init(&s.mu, NULL);
	SX_ENSURE(snprintf(b->base, sizeof(b->base), "%s", base) < (int)sizeof(b->base), err,
		  SX_E_IO, "TMPDIR is too long");
	SX_ENSURE(snprintf(tmp, sizeof(tmp), "%s/sxfer-bench-XXXXXX", base) < (int)sizeof(tmp), err,
		  SX_E_IO, "TMPDIR is too long");
	if (mkdtemp(tmp) == NULL) {
		sx_fail_errno(err, SX_E_IO, errno, "cannot make a temporary folder in %s", base);
		goto out;
	}
	have_tmp = true;
	if (statfs(tmp, &fs) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "statfs %s", tmp);
		goto out;
	}
	b->tmpfs = (unsigned long)fs.f_type == TMPFS_MAGIC;
	b->fs = fs_name((unsigned long)fs.f_type);
	SX_GUARD(join(out_dir, tmp, "out", err));
	SX_GUARD(join(receipts, tmp, "receipts", err));
	SX_GUARD(join(input, tmp, "input.bin", err));
	SX_GUARD(join(log, tmp, "engine.log", err));
	SX_GUARD(sx_mkdirs(out_dir, 0700, err));
	SX_GUARD(sx_mkdirs(receipts, 0700, err));
	SX_GUARD(make_pki(tmp, &srv, &cli, err));
	SX_GUARD(make_input(input, b->size, err));
	SX_GUARD(log_begin(log, &saved, err));

	s.cfg = (sx_serve_cfg){.listen = "127.0.0.1:0",
			       .id = &srv,
			       .out_dir = out_dir,
			       .overwrite = true, /* every run sends the same file */
			       .max_conns = 1,	  /* one transfer at a time */
			       .io = b->io,
			       .max_record = SX_MAX_RECORD_DEFAULT,
			       .handshake_timeout_ms = SX_TIMEOUT_HANDSHAKE_MS,
			       .idle_timeout_ms = SX_TIMEOUT_IDLE_MS,
			       .stop = &bench_stop,
			       .on_listen = on_listen,
			       .listen_ctx = &s};
	SX_ENSURE(pthread_create(&th, NULL, serve_main, &s) == 0, err, SX_E_OTHER,
		  "cannot start the loopback server thread");
	started = true;
	SX_GUARD(server_wait(&s, &port, err));
	snprintf(port_s, sizeof(port_s), "%d", port);
	for (size_t i = 0; i < b->nsuites; i++) {
		SX_GUARD(interrupted(err));
		SX_GUARD(send_one(b, &cli, port_s, input, receipts, b->suites[i], true, err));
		SX_GUARD(interrupted(err));
		SX_GUARD(send_one(b, &cli, port_s, input, receipts, b->suites[i], false, err));
	}
	rc = 0;
out:
	if (started) {
		bench_stop = 1;
		pthread_join(th, NULL);
		if (rc == 0 && s.rc < 0) {
			*err = s.err;
			if (err->cls == SX_OK)
				err->cls = SX_E_OTHER;
			sx_err_prefix(err, "loopback server: ");
			rc = -1;
		}
	}
	log_end(saved, log, rc < 0 && !bench_stop);
	sx_identity_free(&srv);
	sx_identity_free(&cli);
	if (have_tmp)
		sx_bench_rmtree(tmp);
	pthread_mutex_destroy(&s.mu);
	return rc;
}

/* ---- output --------------------------------------------------------------- */

static double mib_s(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / MIB / secs : 0.0;
}

static double s_gib(uint64_t bytes, double secs)
{
	return bytes > 0 ? secs / ((double)bytes / GIB) : 0.0;
}

static void print_table(const bench *b)
{
	printf("sxfer bench: primitives on one core, %u MiB buffers, %.2f s each\n",
	       BENCH_BUF >> 20, b->seconds);
	printf("  %-36s %10s %10s\n", "primitive", "MiB/s", "s/GiB");
	for (size_t i = 0; i < b->nprims; i++) {
		const bench_prim *p = &b->prims[i];
		char name[64];
		double secs = (double)p->ns / 1e9;
		snprintf(name, sizeof(name), "%s%s%s", p->name, p->suite ? " " : "",
			 p->suite ? p->suite : "");
		printf("  %-36s %10.1f %10.3f\n", name, mib_s(p->bytes, secs),
		       s_gib(p->bytes, secs));
	}
	if (!b->transfer)
		return;
	printf("\nloopback transfer: one file of %.1f MiB over 127.0.0.1, %s\n",
	       (double)b->size / MIB,
	       b->nruns > 0 && b->runs[0].st.io_backend ? b->runs[0].st.io_backend : "?");
	printf("temporary folder in %s (%s%s)\n", SX_TEXT(b->base), b->fs,
	       b->tmpfs ? ""
			: "; not tmpfs: disk writes are in the figure, TMPDIR=/dev/shm "
			  "leaves them out");
	printf("  %-8s %-26s %-8s %9s %10s %8s %8s\n", "", "suite", "signing", "seconds", "MiB/s",
	       "batches", "receipts");
	for (size_t i = 0; i < b->nruns; i++) {
		const bench_run *r = &b->runs[i];
		printf("  %-8s %-26s %-8s %9.3f %10.1f %8llu %8llu\n", "transfer",
		       sx_suite_name(r->suite), r->sign ? "signed" : "no-sign", r->st.seconds,
		       mib_s(r->st.bytes, r->st.seconds), (unsigned long long)r->st.batches,
		       (unsigned long long)r->st.receipts);
	}
}

static void print_json(const bench *b)
{
	printf("{\"result\":\"ok\",\"buffer_bytes\":%u,\"seconds_per_primitive\":%.3f,"
	       "\"primitives\":[",
	       BENCH_BUF, b->seconds);
	for (size_t i = 0; i < b->nprims; i++) {
		const bench_prim *p = &b->prims[i];
		double secs = (double)p->ns / 1e9;
		printf("%s{\"name\":", i ? "," : "");
		sx_cli_json_str(p->name);
		printf(",\"suite\":");
		if (p->suite)
			sx_cli_json_str(p->suite);
		else
			printf("null");
		printf(",\"bytes\":%llu,\"seconds\":%.6f,\"mib_per_s\":%.1f,\"s_per_gib\":%.4f}",
		       (unsigned long long)p->bytes, secs, mib_s(p->bytes, secs),
		       s_gib(p->bytes, secs));
	}
	printf("],\"transfer\":");
	if (!b->transfer) {
		printf("null}\n");
		return;
	}
	printf("{\"bytes\":%llu,\"tmp_base\":", (unsigned long long)b->size);
	sx_cli_json_str(b->base);
	printf(",\"fs\":");
	sx_cli_json_str(b->fs);
	printf(",\"tmpfs\":%s,\"io\":", b->tmpfs ? "true" : "false");
	sx_cli_json_str(b->nruns > 0 && b->runs[0].st.io_backend ? b->runs[0].st.io_backend : "");
	printf(",\"runs\":[");
	for (size_t i = 0; i < b->nruns; i++) {
		const bench_run *r = &b->runs[i];
		printf("%s{\"suite\":", i ? "," : "");
		sx_cli_json_str(sx_suite_name(r->suite));
		printf(",\"signed\":%s,\"seconds\":%.4f,\"mib_per_s\":%.1f,"
		       "\"batches\":%llu,\"receipts\":%llu}",
		       r->sign ? "true" : "false", r->st.seconds, mib_s(r->st.bytes, r->st.seconds),
		       (unsigned long long)r->st.batches, (unsigned long long)r->st.receipts);
	}
	printf("]}}\n");
}

/* ---- the command ---------------------------------------------------------- */

static int parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < BENCH_SECONDS_MIN ||
	    v > BENCH_SECONDS_MAX)
		return -1;
	*out = v;
	return 0;
}

int sx_cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"size", required_argument, 0, 'z'},  {"seconds", required_argument, 0, 't'},
	    {"suite", required_argument, 0, 's'}, {"io", required_argument, 0, 'o'},
	    {"no-transfer", no_argument, 0, 'n'}, {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},	  {0, 0, 0, 0},
	};
	bench *b = NULL;
	sx_err err = {0};
	const char *suite = "all";
	int c, rc = -1;
	if (argc > 1 && strcmp(argv[1], "fleet") == 0)
		return sx_cmd_bench_fleet(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "handshakes") == 0)
		return sx_cmd_bench_handshakes(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "pipe") == 0)
		return sx_cmd_bench_pipe(argc - 1, argv + 1);
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		sx_fail(&err, SX_E_OTHER, "out of memory");
		return sx_cli_report(&err);
	}
	*b = (bench){.seconds = BENCH_SECONDS_DEFAULT,
		     .size = BENCH_SIZE_DEFAULT,
		     .io = SX_IO_AUTO,
		     .transfer = true};
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'z':
			if (sx_parse_size(optarg, &b->size) < 0 || b->size == 0 ||
			    b->size > BENCH_SIZE_MAX) {
				rc = sx_cli_usage_error("bench", "--size: a size from 1 to 64G");
				goto out;
			}
			break;
		case 't':
			if (parse_seconds(optarg, &b->seconds) < 0) {
				rc = sx_cli_usage_error("bench", "--seconds: from %g to %g",
							BENCH_SECONDS_MIN, BENCH_SECONDS_MAX);
				goto out;
			}
			break;
		case 's': suite = optarg; break;
		case 'o':
			if (sx_io_kind_parse(optarg, &b->io) < 0) {
				rc = sx_cli_usage_error("bench", "--io: auto, uring or poll");
				goto out;
			}
			break;
		case 'n': b->transfer = false; break;
		case 'j': b->json = true; break;
		case 'h':
			fputs(usage, stdout);
			rc = 0;
			goto out;
		default: rc = sx_cli_usage_error("bench", "unknown option"); goto out;
		}
	}
	if (optind < argc) {
		rc = sx_cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (strcmp(suite, "all") == 0) {
		b->suites[0] = SX_SUITE_AES256GCM;
		b->suites[1] = SX_SUITE_AES256CTR_HMAC;
		b->suites[2] = SX_SUITE_CHACHA20POLY1305;
		b->nsuites = BENCH_NSUITES;
	} else if (sx_suite_parse(suite, &b->suites[0]) == 0) {
		b->nsuites = 1;
	} else {
		rc = sx_cli_usage_error("bench", "unknown suite '%s'", suite);
		goto out;
	}
	/* the server runs in this process: a closed peer must not kill it */
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (bench_primitives(b, &err) < 0 || (b->transfer && bench_transfer(b, &err) < 0)) {
		rc = sx_cli_report(&err);
		if (b->json) {
			printf("{\"result\":\"error\",\"exit\":%d,\"message\":", rc);
			sx_cli_json_str(err.msg);
			printf("}\n");
		}
		goto out;
	}
	if (b->json)
		print_json(b);
	else
		print_table(b);
	rc = 0;
out:
	free(b);
	return rc;
}
