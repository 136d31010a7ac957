/* sxfer bench fleet: many devices uploading at once from one process. Each
 * device is a thread calling the engine's sx_send_run with an identity
 * loaded (or issued) once, so the figure measures the server, not hundreds
 * of processes each decrypting a key. All devices are released together
 * (a gate); the report is the wall time from the release to the last
 * finish, the aggregate throughput, each device's time to its first data
 * and its total time, and this process's own CPU. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/bench_util.h"
#include "tools/cli.h"
#include "tools/send_opts.h"

#define FLEET_DEVICES_DEFAULT 500u
#define FLEET_DEVICES_MAX     10000u
#define FLEET_SIZE_DEFAULT    (8ull << 20)
#define FLEET_SIZE_MAX	      (64ull << 30)
#define FLEET_ERRORS_SHOWN    5
#define FLEET_FDS_PER_DEVICE  6 /* socket, file, ring, spares */
#define FLEET_GEN_BUF	      (1u << 20)
#define FLEET_POLL_US	      20000
#define FLEET_NICE_DATA	      10 /* a sending device's thread (on_first_data) */
#define MIB		      1048576.0

static const char usage[] =
    "usage: sxfer bench fleet [options] HOST:PORT\n"
    "       sxfer bench fleet --prepare [options] [HOST:PORT]\n"
    "\n"
    "A fleet of devices uploading at once to `sxfer serve` at HOST:PORT, from this\n"
    "one process: each device is a thread with its own identity (dev-0001,\n"
    "dev-0002, ...) sending its own file, all released at the same moment.\n"
    "Prints the devices that succeeded and failed (the first errors), the wall\n"
    "time from the release to the last finish, the aggregate MiB/s, each device's\n"
    "time to its first data (p50, p90, p99, max) and total time (p50, p99), and\n"
    "this process's CPU. Exits non-zero when any device failed. The server needs\n"
    "room for them all: serve --max-conns (4/3 of the devices: a quarter of its\n"
    "connections may not be in their handshake) and --max-handshakes-per-addr\n"
    "(default 8; every device comes from this host), and file descriptors.\n"
    "\n"
    "Identities (one of --ca, --ids):\n"
    "  --ca DIR             issue them with the CA in DIR: in memory, P-256, valid\n"
    "                       one day, not recorded in the CA's index\n"
    "  --ca-pass-file FILE  passphrase of the CA key when it is encrypted (else\n"
    "                       SXFER_PASSPHRASE, else a prompt)\n"
    "  --ids DIR            identity folders DIR/dev-0001, ...: used when present;\n"
    "                       a missing one is issued there by --ca (P-256, plain key,\n"
    "                       30 days, recorded in the CA's index)\n"
    "The devices and their data:\n"
    "  --devices N          how many (default 500, at most 10000)\n"
    "  --concurrency K      how many at once (default: all of them)\n"
    "  --size SIZE          bytes each device sends (default 8M)\n"
    "  --input FILE         every device sends FILE (default: its own content)\n"
    "  --data DIR           where each device's own content is: DIR/dev-0001.bin,\n"
    "                       ... (made when missing or of another size, then kept;\n"
    "                       default: a temporary folder). Device i's bytes are the\n"
    "                       AES-128-CTR keystream of the key \"sxfer-fleet-\" and i\n"
    "                       as 4 bytes big-endian, from a zero IV\n"
    "How each device sends (as `sxfer send`, except where said):\n"
    "  --server-name NAME   name the server's certificate must carry (default: HOST)\n"
    "  --no-sign            no batch signatures or receipts (plain channel)\n"
    "  --suite S            aes256gcm (default), aes256ctr-hmac, chacha20poly1305\n"
    "  --chunk SIZE         record payload size (default 1M)\n"
    "  --compress MODE      auto (default), on, off or a level 1-19\n"
    "  --io KIND            auto (default), uring or poll\n"
    "  --threads N          sealing threads per device (default 1)\n"
    "  --limit-rate RATE    at most RATE bytes per second per device (default: none)\n"
    "  --timeout SEC        network timeout (default 30)\n"
    "  --retry N            attempts after a network failure (default 0)\n"
    "  --same-priority      sending devices keep their priority (default: once its\n"
    "                       data flows, a device's thread runs at nice 10, so that\n"
    "                       the devices still in their handshake are not starved\n"
    "                       by those sending, as they are not on devices of their\n"
    "                       own)\n"
    "Output:\n"
    "  --json               one JSON object on standard output\n"
    "  --prepare            issue the identities and make the data, then exit\n"
    "                       without connecting (HOST:PORT may be left out): with\n"
    "                       --ids and --data, the runs that follow start at once\n"
    "\n"
    "First data: from the device's start (sx_send_run: its connection, TLS\n"
    "handshake and key confirmation, SESSION, FILE_BEGIN) until its first DATA\n"
    "record is handed to the socket (the send queued); first record taken: until\n"
    "the socket has taken that record whole (the server is reading). Receipts go\n"
    "to a temporary folder ($TMPDIR, else /dev/shm, else /tmp), removed at the end.\n";

enum {
	FO_CA = 600,
	FO_CA_PASS_FILE,
	FO_IDS,
	FO_DEVICES,
	FO_CONCURRENCY,
	FO_SIZE,
	FO_INPUT,
	FO_DATA,
	FO_JSON,
	FO_PREPARE,
	FO_SAME_PRIORITY,
};

typedef struct fleet fleet;

typedef struct fleet_dev {
	fleet *f;
	unsigned idx;
	char name[SX_BENCH_DEV_NAME_MAX];
	char *path; /* what it sends */
	/* sx_now_ns: its start, its first DATA record queued on the socket and
	 * taken by it whole (0: not reached), its end */
	uint64_t t_start, t_first, t_taken, t_end;
	bool ran;
	int rc;
	sx_err err;
	sx_send_stats st;
} fleet_dev;

struct fleet {
	/* options */
	char host[256], port[32];
	sx_send_cfg base;
	sx_bench_ids ids_cfg;
	const char *input, *data_opt;
	unsigned conc;
	uint64_t size;
	bool json, prepare_only;
	bool nice; /* sending devices yield to those in their handshake */
	/* state */
	char tmp[SX_BENCH_PATH_MAX], receipts[SX_BENCH_PATH_MAX], data[SX_BENCH_PATH_MAX];
	bool have_tmp;
	sx_identity *ids;
	fleet_dev *devs;
	sx_bench_gate gate;
	atomic_uint next;
	atomic_uint threads_done;
	atomic_bool abort;
	unsigned issued;
	uint64_t t0;
	double cpu_u, cpu_s; /* from the release to the end */
};

static volatile sig_atomic_t fleet_stop;

/* ---- the data --------------------------------------------------------- */

/* size bytes of device idx's keystream into path (0600). */
static int gen_file(const char *path, unsigned idx, uint64_t size, sx_err *err)
{
	unsigned char key[16] = "sxfer-fleet-", iv[16] = {0};
	uint8_t *zero = calloc(1, FLEET_GEN_BUF), *buf = malloc(FLEET_GEN_BUF);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int fd = -1, rc = -1, len;
	uint32_t n1 = idx + 1;
	key[12] = (unsigned char)(n1 >> 24);
	key[13] = (unsigned char)(n1 >> 16);
	key[14] = (unsigned char)(n1 >> 8);
	key[15] = (unsigned char)n1;
	SX_ENSURE(zero != NULL && buf != NULL && ctx != NULL, err, SX_E_OTHER, "out of memory");
	SX_ENSURE(EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, key, iv) == 1, err, SX_E_OTHER,
		  "AES-128-CTR is not available");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", path);
		goto out;
	}
	for (uint64_t left = size; left > 0;) {
		SX_ENSURE(!fleet_stop, err, SX_E_OTHER, "interrupted");
		int n = left < FLEET_GEN_BUF ? (int)left : (int)FLEET_GEN_BUF;
		SX_ENSURE(EVP_EncryptUpdate(ctx, buf, &len, zero, n) == 1 && len == n, err,
			  SX_E_OTHER, "AES-128-CTR failed");
		if (sx_write_all(fd, buf, (size_t)n) < 0) {
			sx_fail_errno(err, SX_E_IO, errno, "writing %s", path);
			goto out;
		}
		left -= (uint64_t)n;
	}
	rc = 0;
out:
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = sx_fail_errno(err, SX_E_IO, errno, "writing %s", path);
	EVP_CIPHER_CTX_free(ctx);
	free(zero);
	free(buf);
	return rc;
}

/* Every device's path: --input, or its own file under the data folder. */
static int prepare_data(fleet *f, sx_err *err)
{
	struct stat st;
	if (f->input != NULL) {
		if (stat(f->input, &st) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "%s", f->input);
		if (!S_ISREG(st.st_mode))
			return sx_fail(err, SX_E_USAGE, "--input %s: not a regular file", f->input);
		f->size = (uint64_t)st.st_size;
		for (unsigned i = 0; i < f->ids_cfg.n; i++)
			f->devs[i].path = (char *)f->input;
		return 0;
	}
	if (f->data_opt != NULL) {
		if (snprintf(f->data, sizeof(f->data), "%s", f->data_opt) >= (int)sizeof(f->data))
			return sx_fail(err, SX_E_USAGE, "--data: path too long");
		if (sx_mkdirs(f->data, 0700, err) < 0)
			return -1;
	} else if (snprintf(f->data, sizeof(f->data), "%s/data", f->tmp) >= (int)sizeof(f->data) ||
		   sx_mkdirs(f->data, 0700, err) < 0) {
		return sx_fail(err, SX_E_IO, "%s: cannot make the data folder", f->tmp);
	}
	for (unsigned i = 0; i < f->ids_cfg.n; i++) {
		fleet_dev *d = &f->devs[i];
		if (asprintf(&d->path, "%s/%s.bin", f->data, d->name) < 0) {
			d->path = NULL;
			return sx_fail(err, SX_E_OTHER, "out of memory");
		}
		if (stat(d->path, &st) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size == f->size)
			continue;
		if (gen_file(d->path, i, f->size, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- the devices ------------------------------------------------------ */

/* Once its data flows, a device's thread yields to those still in their
 * handshake (nice FLEET_NICE_DATA): on one core standing for hundreds of
 * devices, a handshake would otherwise wait a turn behind every sender for
 * each of its round trips, a wait no real device has. */
static void on_first_data(void *ctx)
{
	fleet_dev *d = ctx;
	if (d->t_first == 0)
		d->t_first = sx_now_ns();
	if (d->f->nice)
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(), FLEET_NICE_DATA);
}

static void on_progress(void *ctx, const sx_progress *p)
{
	fleet_dev *d = ctx;
	if (d->t_taken == 0 && p->bytes_sent > 0)
		d->t_taken = sx_now_ns();
}

static void run_device(fleet *f, fleet_dev *d)
{
	sx_send_cfg cfg = f->base;
	char *paths[1] = {d->path};
	cfg.id = &f->ids[d->idx];
	cfg.paths = paths;
	cfg.npaths = 1;
	cfg.on_progress = on_progress;
	cfg.on_first_data = on_first_data;
	cfg.progress_ctx = d;
	cfg.receipts_dir = f->receipts;
	cfg.abort = &f->abort;
	d->ran = true;
	d->t_start = sx_now_ns();
	d->rc = sx_send_run(&cfg, &d->st, &d->err);
	d->t_end = sx_now_ns();
	if (d->rc < 0 && d->err.cls == SX_OK)
		sx_fail(&d->err, SX_E_OTHER, "send failed");
	if (d->rc == 0 && (d->st.files_ok != 1 || d->st.bytes != f->size))
		d->rc = sx_fail(&d->err, SX_E_INTEGRITY, "%llu file(s) stored, %llu of %llu bytes",
				(unsigned long long)d->st.files_ok, (unsigned long long)d->st.bytes,
				(unsigned long long)f->size);
}

static void *worker(void *arg)
{
	fleet *f = arg;
	sx_bench_gate_wait(&f->gate);
	while (!atomic_load(&f->abort)) {
		unsigned i = atomic_fetch_add(&f->next, 1);
		if (i >= f->ids_cfg.n)
			break;
		run_device(f, &f->devs[i]);
	}
	atomic_fetch_add(&f->threads_done, 1);
	return NULL;
}

/* Starts the workers, releases them together and waits for the last;
 * SIGINT or SIGTERM stops the devices (they fail "stopped"). */
static int run_fleet(fleet *f, sx_err *err)
{
	pthread_t *th = calloc(f->conc, sizeof(*th));
	unsigned started = 0;
	double u0, s0, u1, s1;
	int rc = -1;
	SX_ENSURE(th != NULL, err, SX_E_OTHER, "out of memory");
	for (; started < f->conc; started++) {
		int e = pthread_create(&th[started], NULL, worker, f);
		if (e != 0) {
			sx_fail_errno(err, SX_E_OTHER, e, "cannot start device thread %u of %u",
				      started + 1, f->conc);
			atomic_store(&f->abort, true);
			break;
		}
	}
	sx_bench_cpu(&u0, &s0);
	f->t0 = sx_bench_gate_open(&f->gate, started);
	while (atomic_load(&f->threads_done) < started) {
		if (fleet_stop)
			atomic_store(&f->abort, true);
		usleep(FLEET_POLL_US);
	}
	sx_bench_cpu(&u1, &s1);
	f->cpu_u = u1 - u0;
	f->cpu_s = s1 - s0;
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (started == f->conc)
		rc = fleet_stop ? sx_fail(err, SX_E_OTHER, "interrupted") : 0;
out:
	free(th);
	return rc;
}

/* ---- the report ------------------------------------------------------- */

typedef struct fleet_sum {
	unsigned ok, failed;
	uint64_t bytes; /* of the devices that succeeded */
	double wall;	/* s */
	double *first;	/* ms, sorted */
	size_t nfirst;
	double *taken; /* ms, sorted */
	size_t ntaken;
	double *total; /* s, sorted, devices that succeeded */
	size_t ntotal;
	const char *io;
	const fleet_dev *errs[FLEET_ERRORS_SHOWN];
	unsigned nerrs;
	sx_err first_err;
} fleet_sum;

static int summarize(const fleet *f, fleet_sum *s, sx_err *err)
{
	uint64_t last = f->t0;
	memset(s, 0, sizeof(*s));
	s->first = calloc(f->ids_cfg.n + 1, sizeof(double));
	s->taken = calloc(f->ids_cfg.n + 1, sizeof(double));
	s->total = calloc(f->ids_cfg.n + 1, sizeof(double));
	if (s->first == NULL || s->taken == NULL || s->total == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (unsigned i = 0; i < f->ids_cfg.n; i++) {
		const fleet_dev *d = &f->devs[i];
		if (d->ran && d->t_end > last)
			last = d->t_end;
		if (d->ran && d->t_first != 0)
			s->first[s->nfirst++] = (double)(d->t_first - d->t_start) / 1e6;
		if (d->ran && d->t_taken != 0)
			s->taken[s->ntaken++] = (double)(d->t_taken - d->t_start) / 1e6;
		if (d->ran && s->io == NULL)
			s->io = d->st.io_backend;
		if (d->ran && d->rc == 0) {
			s->ok++;
			s->bytes += d->st.bytes;
			s->total[s->ntotal++] = (double)(d->t_end - d->t_start) / 1e9;
			continue;
		}
		s->failed++;
		if (s->nerrs < FLEET_ERRORS_SHOWN)
			s->errs[s->nerrs++] = d;
		if (s->first_err.cls == SX_OK)
			s->first_err =
			    d->ran ? d->err : (sx_err){.cls = SX_E_OTHER, .msg = "not run"};
	}
	s->wall = (double)(last - f->t0) / 1e9;
	sx_bench_sort(s->first, s->nfirst);
	sx_bench_sort(s->taken, s->ntaken);
	sx_bench_sort(s->total, s->ntotal);
	return 0;
}

static void print_text(const fleet *f, const fleet_sum *s)
{
	printf("sxfer bench fleet: %u devices x %.1f MiB to %s:%s, %u at once; %s, %s, io %s\n",
	       f->ids_cfg.n, (double)f->size / MIB, SX_TEXT(f->host), SX_TEXT(f->port), f->conc,
	       f->base.no_sign ? "unsigned" : "signed", sx_suite_name(f->base.suite),
	       s->io ? s->io : "?");
	printf("  %-26s %u\n", "devices ok", s->ok);
	printf("  %-26s %u\n", "devices failed", s->failed);
	for (unsigned i = 0; i < s->nerrs; i++)
		printf("    %s: %s\n", s->errs[i]->name,
		       s->errs[i]->ran ? SX_TEXT(s->errs[i]->err.msg) : "not run");
	printf("  %-26s %.3f s (release to the last finish)\n", "wall", s->wall);
	printf("  %-26s %.1f MiB/s (%.1f MiB stored)\n", "aggregate",
	       s->wall > 0 ? (double)s->bytes / MIB / s->wall : 0.0, (double)s->bytes / MIB);
	printf("  %-26s p50 %.1f  p90 %.1f  p99 %.1f  max %.1f (%zu devices)\n", "first data (ms)",
	       sx_bench_pct(s->first, s->nfirst, 50), sx_bench_pct(s->first, s->nfirst, 90),
	       sx_bench_pct(s->first, s->nfirst, 99), sx_bench_pct(s->first, s->nfirst, 100),
	       s->nfirst);
	printf("  %-26s p50 %.1f  p99 %.1f  max %.1f\n", "first record taken (ms)",
	       sx_bench_pct(s->taken, s->ntaken, 50), sx_bench_pct(s->taken, s->ntaken, 99),
	       sx_bench_pct(s->taken, s->ntaken, 100));
	printf("  %-26s p50 %.3f  p99 %.3f  max %.3f\n", "total per device (s)",
	       sx_bench_pct(s->total, s->ntotal, 50), sx_bench_pct(s->total, s->ntotal, 99),
	       sx_bench_pct(s->total, s->ntotal, 100));
	printf("  %-26s user %.2f s  system %.2f s\n", "load generator CPU", f->cpu_u, f->cpu_s);
	if (f->issued > 0)
		printf("  (%u identities issued %s before the release)\n", f->issued,
		       f->ids_cfg.ids_dir ? "into folders" : "in memory");
}

static void json_pcts(const char *key, const double *v, size_t n, const char *fmt_unit)
{
	static const double ps[] = {50, 90, 99, 100};
	static const char *const names[] = {"p50", "p90", "p99", "max"};
	printf(",\"%s\":{", key);
	for (size_t i = 0; i < SX_ARRAY_LEN(ps); i++)
		printf("%s\"%s\":%.6f", i ? "," : "", names[i], sx_bench_pct(v, n, ps[i]));
	printf(",\"n\":%zu,\"unit\":\"%s\"}", n, fmt_unit);
}

static void print_json(const fleet *f, const fleet_sum *s)
{
	printf("{\"result\":\"%s\",\"devices\":%u,\"ok\":%u,\"failed\":%u,\"errors\":[",
	       s->failed ? "failed" : "ok", f->ids_cfg.n, s->ok, s->failed);
	for (unsigned i = 0; i < s->nerrs; i++) {
		printf("%s{\"device\":\"%s\",\"message\":", i ? "," : "", s->errs[i]->name);
		sx_cli_json_str(s->errs[i]->ran ? s->errs[i]->err.msg : "not run");
		printf("}");
	}
	printf("],\"concurrency\":%u,\"size\":%llu,\"bytes\":%llu,\"signed\":%s,\"io\":", f->conc,
	       (unsigned long long)f->size, (unsigned long long)s->bytes,
	       f->base.no_sign ? "false" : "true");
	sx_cli_json_str(s->io ? s->io : "");
	printf(",\"wall_s\":%.6f,\"mib_per_s\":%.3f", s->wall,
	       s->wall > 0 ? (double)s->bytes / MIB / s->wall : 0.0);
	json_pcts("first_data_ms", s->first, s->nfirst, "ms");
	json_pcts("first_record_taken_ms", s->taken, s->ntaken, "ms");
	json_pcts("total_s", s->total, s->ntotal, "s");
	printf(",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"issued\":%u}\n", f->cpu_u, f->cpu_s,
	       f->issued);
}

/* ---- the command ------------------------------------------------------ */

/* One option of the command's own (not shared with send): 0 taken, else
 * the exit code of a usage error (printed). */
static int own_opt(fleet *f, int c, const char *arg)
{
	uint64_t v;
	switch (c) {
	case FO_CA: f->ids_cfg.ca_dir = arg; return 0;
	case FO_CA_PASS_FILE: f->ids_cfg.ca_pass_file = arg; return 0;
	case FO_IDS: f->ids_cfg.ids_dir = arg; return 0;
	case FO_DEVICES:
		if (sx_parse_u64(arg, &v) < 0 || v == 0 || v > FLEET_DEVICES_MAX)
			return sx_cli_usage_error("bench fleet", "--devices: 1 to %u",
						  FLEET_DEVICES_MAX);
		f->ids_cfg.n = (unsigned)v;
		return 0;
	case FO_CONCURRENCY:
		if (sx_parse_u64(arg, &v) < 0 || v == 0 || v > FLEET_DEVICES_MAX)
			return sx_cli_usage_error("bench fleet", "--concurrency: 1 to %u",
						  FLEET_DEVICES_MAX);
		f->conc = (unsigned)v;
		return 0;
	case FO_SIZE:
		if (sx_parse_size(arg, &v) < 0 || v == 0 || v > FLEET_SIZE_MAX)
			return sx_cli_usage_error("bench fleet", "--size: a size from 1 to 64G");
		f->size = v;
		return 0;
	case FO_INPUT: f->input = arg; return 0;
	case FO_DATA: f->data_opt = arg; return 0;
	case FO_JSON: f->json = true; return 0;
	case FO_PREPARE: f->prepare_only = true; return 0;
	case FO_SAME_PRIORITY: f->nice = false; return 0;
	default: return sx_cli_usage_error("bench fleet", "unknown option");
	}
}

/* -1: go on; else the exit code (0 after --help). */
static int parse(fleet *f, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, 0, FO_CA},
	    {"ca-pass-file", required_argument, 0, FO_CA_PASS_FILE},
	    {"ids", required_argument, 0, FO_IDS},
	    {"devices", required_argument, 0, FO_DEVICES},
	    {"concurrency", required_argument, 0, FO_CONCURRENCY},
	    {"size", required_argument, 0, FO_SIZE},
	    {"input", required_argument, 0, FO_INPUT},
	    {"data", required_argument, 0, FO_DATA},
	    {"json", no_argument, 0, FO_JSON},
	    {"prepare", no_argument, 0, FO_PREPARE},
	    {"same-priority", no_argument, 0, FO_SAME_PRIORITY},
	    {"server-name", required_argument, 0, SO_SERVER_NAME},
	    {"no-sign", no_argument, 0, SO_NO_SIGN},
	    {"suite", required_argument, 0, SO_SUITE},
	    {"chunk", required_argument, 0, SO_CHUNK},
	    {"compress", required_argument, 0, SO_COMPRESS},
	    {"io", required_argument, 0, SO_IO},
	    {"threads", required_argument, 0, SO_THREADS},
	    {"limit-rate", required_argument, 0, SO_LIMIT_RATE},
	    {"timeout", required_argument, 0, SO_TIMEOUT},
	    {"retry", required_argument, 0, SO_RETRY},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	sx_send_opts so;
	int c, rc;
	sx_send_opts_init(&f->base, &so);
	f->base.threads = 1;	  /* a device seals on its own thread */
	f->base.retries = 0;	  /* a failure is reported, not hidden */
	f->base.no_resume = true; /* every run sends every byte */
	f->ids_cfg.n = FLEET_DEVICES_DEFAULT;
	f->size = FLEET_SIZE_DEFAULT;
	f->nice = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		sx_err bad = {0};
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if ((rc = sx_send_opt(c, optarg, &f->base, &so, &bad)) < 0)
			return sx_cli_usage_error("bench fleet", "%s", bad.msg);
		if (rc > 0 && (rc = own_opt(f, c, optarg)) != 0)
			return rc;
	}
	if (f->prepare_only && argc == optind)
		snprintf(f->host, sizeof(f->host), "-");
	else if (argc - optind != 1)
		return sx_cli_usage_error("bench fleet", "expected HOST:PORT");
	else if (sx_net_split(argv[optind], f->host, sizeof(f->host), f->port, sizeof(f->port)) <
		     0 ||
		 sx_net_port_check(f->port, false) < 0)
		return sx_cli_usage_error("bench fleet", "'%s': expected HOST:PORT (port 1-65535)",
					  argv[optind]);
	if (f->ids_cfg.ca_dir == NULL && f->ids_cfg.ids_dir == NULL)
		return sx_cli_usage_error("bench fleet", "--ca DIR or --ids DIR is required");
	if (f->input != NULL && f->data_opt != NULL)
		return sx_cli_usage_error("bench fleet", "--input and --data exclude each other");
	if (f->conc == 0 || f->conc > f->ids_cfg.n)
		f->conc = f->ids_cfg.n;
	f->base.host = f->host;
	f->base.port = f->port;
	return -1;
}

/* Each device holds a socket, its file and its ring: the soft limit of
 * descriptors goes up to the hard one when that is not enough. */
static void raise_fd_limit(unsigned conc)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)conc * FLEET_FDS_PER_DEVICE + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
		fprintf(stderr,
			"sxfer bench fleet: warning: %llu file descriptors allowed, %u devices at "
			"once may need %llu (ulimit -n)\n",
			(unsigned long long)rl.rlim_cur, conc, (unsigned long long)want);
}

static int prepare(fleet *f, sx_err *err)
{
	f->devs = calloc(f->ids_cfg.n, sizeof(*f->devs));
	f->ids = calloc(f->ids_cfg.n, sizeof(*f->ids));
	if (f->devs == NULL || f->ids == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (unsigned i = 0; i < f->ids_cfg.n; i++) {
		f->devs[i].f = f;
		f->devs[i].idx = i;
		sx_bench_dev_name(i, f->devs[i].name);
	}
	if (sx_bench_mkdtemp(f->tmp, sizeof(f->tmp), "sxfer-fleet", err) < 0)
		return -1;
	f->have_tmp = true;
	if (snprintf(f->receipts, sizeof(f->receipts), "%s/receipts", f->tmp) >=
	    (int)sizeof(f->receipts))
		return sx_fail(err, SX_E_IO, "%s: path too long", f->tmp);
	if (sx_mkdirs(f->receipts, 0700, err) < 0 ||
	    sx_bench_ids_make(&f->ids_cfg, f->ids, &f->issued, err) < 0)
		return -1;
	return prepare_data(f, err);
}

static void fleet_free(fleet *f)
{
	for (unsigned i = 0; f->devs != NULL && i < f->ids_cfg.n; i++)
		if (f->devs[i].path != f->input)
			free(f->devs[i].path);
	for (unsigned i = 0; f->ids != NULL && i < f->ids_cfg.n; i++)
		sx_identity_free(&f->ids[i]);
	free(f->ids);
	free(f->devs);
	if (f->have_tmp)
		sx_bench_rmtree(f->tmp);
	sx_bench_gate_free(&f->gate);
}

int sx_cmd_bench_fleet(int argc, char **argv)
{
	fleet *f = calloc(1, sizeof(*f));
	fleet_sum s = {0};
	sx_err err = {0};
	int rc;
	if (f == NULL) {
		sx_fail(&err, SX_E_OTHER, "out of memory");
		return sx_cli_report(&err);
	}
	sx_bench_gate_init(&f->gate);
	if ((rc = parse(f, argc, argv)) >= 0)
		goto out;
	sx_bench_signals(&fleet_stop);
	sx_log_set_min("warn"); /* one line per device and file would drown the report */
	raise_fd_limit(f->conc);
	if (prepare(f, &err) < 0) {
		rc = sx_cli_report(&err);
		goto out;
	}
	if (f->prepare_only) {
		printf("sxfer bench fleet: %u identities ready (%u issued now)%s%s\n", f->ids_cfg.n,
		       f->issued, f->data_opt ? ", data in " : "",
		       f->data_opt ? SX_TEXT(f->data_opt) : "");
		rc = 0;
		goto out;
	}
	if (run_fleet(f, &err) < 0 || summarize(f, &s, &err) < 0) {
		rc = sx_cli_report(&err);
		goto out;
	}
	if (f->json)
		print_json(f, &s);
	else
		print_text(f, &s);
	rc = 0;
	if (s.failed > 0) {
		err = s.first_err;
		sx_err_prefix(&err, "%u of %u devices failed; the first: ", s.failed, f->ids_cfg.n);
		rc = sx_cli_report(&err);
	}
out:
	free(s.first);
	free(s.taken);
	free(s.total);
	fleet_free(f);
	free(f);
	return rc;
}
