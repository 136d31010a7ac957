/* sxfer bench pipe: the receive and send pipelines one side at a time,
 * without a peer or a network, each against its floor on one core measured
 * in the same run (tools/bench_pipe.h). The session is recorded once (a
 * random plaintext in an input file, its records sealed in memory); then
 * each round measures each side's floor and runs every configuration once,
 * pages warmed before each; a last untimed round checks what each
 * configuration produced. */
#include <errno.h>
#include <getopt.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/bench_pipe.h"
#include "tools/bench_util.h"
#include "tools/cli.h"

#define PIPE_SIZE_DEFAULT (1ull << 30)
#define PIPE_SIZE_MAX	  (32ull << 30)
#define PIPE_RUNS_DEFAULT 7
#define PIPE_RUNS_MAX	  BP_RUNS_MAX
#define PIPE_WARM_EXTRA	  64 /* MiB beyond the data, by default */
#define PIPE_WARM_MAX	  (1ull << 20)
#define PIPE_LEAF_MIN	  512u /* the receiver's bounds of a hash chunk */
#define PIPE_LEAF_MAX	  (64u << 20)
#define PIPE_CHUNK_MAX	  (64u << 20) /* the sender's --chunk */

static const char usage[] =
    "usage: sxfer bench pipe [options]\n"
    "\n"
    "Measures sxfer's receive and send pipelines one side at a time, with no peer\n"
    "and no network, against their floor on one core measured in the same run.\n"
    "Receive: the records of a session sealed once beforehand are copied from\n"
    "memory into the receive buffers (the copy recv() makes), checked, opened,\n"
    "hashed, and written to a file at their offsets. Send: an input file in\n"
    "memory is read, hashed and sealed, and the records written to /dev/null.\n"
    "Prints wall time, GiB/s, CPU seconds per GiB, the ratio to the floor and\n"
    "the speedup over one thread (min and median of the runs). The temporary\n"
    "folder is $TMPDIR, else /dev/shm when it is writable, else /tmp; it is\n"
    "removed at the end. Needs about three times --size of memory.\n"
    "\n"
    "  --side SIDE      recv, send or both (the default)\n"
    "  --threads LIST   thread counts, such as 1,2,4 or 1-4 (default: 1 to the\n"
    "                   cores, at most 8); 1: all on the loop thread, N: the loop\n"
    "                   and N-1 workers\n"
    "  --size SIZE      data per run (default 1G)\n"
    "  --chunk SIZE     record payload (default 1M, the sender's)\n"
    "  --leaf SIZE      Merkle leaf size (default: the chunk, as the sender)\n"
    "  --sign           signed runs only (Merkle leaves hashed)\n"
    "  --no-sign        unsigned runs only\n"
    "  --both           signed and unsigned runs (the default)\n"
    "  --suite S        aes256gcm (the default), aes256ctr-hmac or chacha20poly1305\n"
    "  --runs N         runs of each configuration (default 7)\n"
    "  --warm MIB       MiB written and freed before each run (default: the\n"
    "                   size in MiB + 64; 0: none)\n"
    "  --io KIND        auto (the default), uring or poll\n"
    "  --out PATH       where the receive side writes: a folder, a file name that\n"
    "                   does not exist, or a device such as /dev/null (default:\n"
    "                   the temporary folder)\n"
    "  --json           print one JSON object instead of the table\n";

static volatile sig_atomic_t pipe_stop;

static void on_signal(int sig)
{
	(void)sig;
	pipe_stop = 1;
}

/* ---- options -------------------------------------------------------------- */

static int parse_num(const char *s, char **end, uint64_t *v)
{
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long long x = strtoull(s, end, 10);
	if (errno != 0)
		return -1;
	*v = x;
	return 0;
}

/* "1,2,4", "1-4" or both mixed; each count 1..BP_THREADS_MAX, kept in
 * ascending order, once each. */
static int parse_threads(const char *s, bp_bench *b)
{
	bool on[BP_THREADS_MAX + 1] = {0};
	char *end;
	uint64_t lo, hi;
	for (;;) {
		if (parse_num(s, &end, &lo) < 0)
			return -1;
		hi = lo;
		if (*end == '-' && parse_num(end + 1, &end, &hi) < 0)
			return -1;
		if (lo < 1 || hi > BP_THREADS_MAX || lo > hi)
			return -1;
		for (uint64_t t = lo; t <= hi; t++)
			on[t] = true;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -1;
		s = end + 1;
	}
	b->nthreads = 0;
	for (unsigned t = 1; t <= BP_THREADS_MAX; t++)
		if (on[t])
			b->threads[b->nthreads++] = t;
	return 0;
}

static void default_threads(bp_bench *b)
{
	cpu_set_t set;
	unsigned n = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
	if (n < 1)
		n = 1;
	if (n > BP_THREADS_MAX)
		n = BP_THREADS_MAX;
	b->nthreads = n;
	for (unsigned i = 0; i < n; i++)
		b->threads[i] = i + 1;
}

static int parse_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t v;
	if (sx_parse_size(s, &v) < 0 || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

typedef struct pipe_args {
	const char *side, *suite, *out;
	bool leaf_set, warm_set;
} pipe_args;

/* One option; 0, or the exit code of a usage error. */
static int parse_opt(int c, const char *arg, bp_bench *b, pipe_args *a)
{
	uint64_t v;
	switch (c) {
	case 'S': a->side = arg; return 0;
	case 'T':
		if (parse_threads(arg, b) < 0)
			return sx_cli_usage_error("bench pipe",
						  "--threads: counts from 1 to %d, "
						  "such as 1,2,4 or 1-4",
						  BP_THREADS_MAX);
		return 0;
	case 'z':
		if (parse_range(arg, 1, PIPE_SIZE_MAX, &b->size) < 0)
			return sx_cli_usage_error("bench pipe", "--size: a size from 1 to 32G");
		return 0;
	case 'c':
		if (parse_range(arg, SX_CHUNK_MIN, PIPE_CHUNK_MAX, &v) < 0)
			return sx_cli_usage_error("bench pipe", "--chunk: a size from 4K to 64M");
		b->chunk = (uint32_t)v;
		return 0;
	case 'l':
		if (parse_range(arg, PIPE_LEAF_MIN, PIPE_LEAF_MAX, &v) < 0)
			return sx_cli_usage_error("bench pipe", "--leaf: a size from 512 to 64M");
		b->leaf = (uint32_t)v;
		a->leaf_set = true;
		return 0;
	case 'g':
	case 'G':
	case 'B':
		b->signs[0] = c != 'g'; /* unsigned runs */
		b->signs[1] = c != 'G'; /* signed runs */
		return 0;
	case 's': a->suite = arg; return 0;
	case 'r':
		if (sx_parse_u64(arg, &v) < 0 || v < 1 || v > PIPE_RUNS_MAX)
			return sx_cli_usage_error("bench pipe", "--runs: 1 to %d", PIPE_RUNS_MAX);
		b->runs = (unsigned)v;
		return 0;
	case 'w':
		if (sx_parse_u64(arg, &b->warm_mib) < 0 || b->warm_mib > PIPE_WARM_MAX)
			return sx_cli_usage_error("bench pipe", "--warm: MiB, 0 to %llu",
						  PIPE_WARM_MAX);
		a->warm_set = true;
		return 0;
	case 'o':
		if (sx_io_kind_parse(arg, &b->env.io) < 0)
			return sx_cli_usage_error("bench pipe", "--io: auto, uring or poll");
		return 0;
	case 'O': a->out = arg; return 0;
	case 'j': b->json = true; return 0;
	default: return sx_cli_usage_error("bench pipe", "unknown option");
	}
}

/* What the options leave to the end: the side, the suite, the defaults
 * that depend on other options. 0, or the exit code of a usage error. */
static int settle(bp_bench *b, const pipe_args *a)
{
	if (strcmp(a->side, "both") == 0)
		b->sides[BP_RECV] = b->sides[BP_SEND] = true;
	else if (strcmp(a->side, "recv") == 0)
		b->sides[BP_RECV] = true;
	else if (strcmp(a->side, "send") == 0)
		b->sides[BP_SEND] = true;
	else
		return sx_cli_usage_error("bench pipe", "--side: recv, send or both");
	if (sx_suite_parse(a->suite, &b->suite) < 0)
		return sx_cli_usage_error("bench pipe", "unknown suite '%s'", a->suite);
	if (!a->leaf_set)
		b->leaf = b->chunk; /* the sender hashes one leaf per chunk */
	if (!a->warm_set)
		b->warm_mib = ((b->size + (1u << 20) - 1) >> 20) + PIPE_WARM_EXTRA;
	if (b->nthreads == 0)
		default_threads(b);
	return 0;
}

/* ---- the folders ---------------------------------------------------------- */

static const char *fs_name(const char *path, bool *tmpfs)
{
	struct statfs fs;
	*tmpfs = false;
	if (statfs(path, &fs) < 0)
		return "an unknown file system";
	switch ((unsigned long)fs.f_type) {
	case TMPFS_MAGIC: *tmpfs = true; return "tmpfs";
	case EXT4_SUPER_MAGIC: return "ext2/3/4";
	case XFS_SUPER_MAGIC: return "xfs";
	case BTRFS_SUPER_MAGIC: return "btrfs";
	case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
	default: return "another file system";
	}
}

/* $TMPDIR, else /dev/shm (tmpfs: no disk in the figures), else /tmp. */
static int make_tmp(bp_bench *b, sx_err *err)
{
	if (sx_bench_mkdtemp(b->tmp, sizeof(b->tmp), "sxfer-pipe", err) < 0) {
		b->tmp[0] = '\0';
		return -1;
	}
	b->tmp_fs = fs_name(b->tmp, &b->tmp_tmpfs);
	snprintf(b->s.in_path, sizeof(b->s.in_path), "%s/in.bin", b->tmp);
	return 0;
}

/* --out: a folder, a device, or a name that does not exist yet (never a
 * file of the user's). 0, or the exit code of a usage error. */
static int pick_out(bp_bench *b, const char *arg)
{
	bp_out *o = &b->out;
	struct stat st;
	if (arg == NULL) {
		o->kind = BP_OUT_DIR;
		snprintf(o->path, sizeof(o->path), "%s", b->tmp);
		o->fs = b->tmp_fs;
		o->tmpfs = b->tmp_tmpfs;
		return 0;
	}
	if (snprintf(o->path, sizeof(o->path), "%s", arg) >= (int)sizeof(o->path))
		return sx_cli_usage_error("bench pipe", "--out: path too long");
	errno = 0;
	if (stat(arg, &st) < 0 && errno != ENOENT)
		return sx_cli_usage_error("bench pipe", "--out: '%s': %s", arg, strerror(errno));
	if (errno == ENOENT) {
		char dir[BP_PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", arg);
		char *slash = strrchr(dir, '/');
		if (slash == NULL)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		o->kind = BP_OUT_NAME;
		o->fs = fs_name(dir, &o->tmpfs);
	} else if (S_ISDIR(st.st_mode)) {
		o->kind = BP_OUT_DIR;
		o->fs = fs_name(arg, &o->tmpfs);
	} else if (S_ISCHR(st.st_mode)) {
		o->kind = BP_OUT_DEV;
		o->fs = "a device";
	} else {
		return sx_cli_usage_error("bench pipe",
					  "--out: '%s' exists and is no folder or device "
					  "(give a folder, a new name or /dev/null)",
					  arg);
	}
	return 0;
}

/* ---- the rounds ----------------------------------------------------------- */

static void make_confs(bp_bench *b)
{
	b->nconf = 0;
	for (int side = 0; side < BP_SIDES; side++)
		for (int sign = 1; sign >= 0; sign--)
			for (size_t t = 0; t < b->nthreads; t++)
				if (b->sides[side] && b->signs[sign])
					b->confs[b->nconf++] = (bp_conf){.side = side,
									 .threads = b->threads[t],
									 .sign = sign != 0};
}

static int one_run(bp_bench *b, const bp_conf *c, bool check, bp_result *r, sx_err *err)
{
	bp_run run = {.threads = c->threads, .sign = c->sign, .check = check, .out_fd = -1};
	int rc;
	if (c->side == BP_SEND)
		return bp_send_run(&b->s, &b->env, &run, r, err);
	rc = bp_recv_run(&b->s, &b->env, &run, r, err);
	if (rc == 0 && run.out_fd >= 0) {
		rc = bp_out_check(&b->s, run.out_fd, run.out_path, err);
		if (rc < 0)
			sx_err_prefix(err, "receive, %u thread(s): ", c->threads);
	}
	bp_out_close(&b->out, run.out_path, run.out_fd);
	return rc;
}

static int rounds(bp_bench *b, sx_err *err)
{
	for (unsigned r = 0; r < b->runs; r++) {
		for (int side = 0; side < BP_SIDES; side++) {
			if (!b->sides[side])
				continue;
			bp_floor *f = &b->floors[side * b->runs + r];
			if (bp_warm(b->warm_mib, err) < 0 ||
			    (side == BP_RECV ? bp_floor_recv(&b->s, &b->env, f, err)
					     : bp_floor_send(&b->s, &b->env, f, err)) < 0)
				return -1;
			for (size_t c = 0; c < b->nconf; c++) {
				if (b->confs[c].side != side)
					continue;
				if (bp_warm(b->warm_mib, err) < 0 ||
				    one_run(b, &b->confs[c], false, &b->res[c * b->runs + r], err) <
					0)
					return -1;
			}
		}
	}
	/* Untimed: what each configuration produced, compared once. */
	for (size_t c = 0; c < b->nconf; c++) {
		bp_result ignored;
		if (one_run(b, &b->confs[c], true, &ignored, err) < 0)
			return -1;
	}
	return 0;
}

static int bench_pipe(bp_bench *b, const pipe_args *a, int *usage_rc, sx_err *err)
{
	b->s.in_fd = -1;
	SX_GUARD(make_tmp(b, err));
	*usage_rc = pick_out(b, a->out);
	if (*usage_rc != 0)
		return -1;
	make_confs(b);
	b->res = calloc(b->nconf * b->runs, sizeof(*b->res));
	b->floors = calloc(BP_SIDES * b->runs, sizeof(*b->floors));
	SX_ENSURE(b->res != NULL && b->floors != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(bp_session_make(&b->s, b->suite, b->size, b->chunk, b->leaf, &b->env, err));
	SX_GUARD(rounds(b, err));
	return 0;
out:
	return -1;
}

int sx_cmd_bench_pipe(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"side", required_argument, 0, 'S'},  {"threads", required_argument, 0, 'T'},
	    {"size", required_argument, 0, 'z'},  {"chunk", required_argument, 0, 'c'},
	    {"leaf", required_argument, 0, 'l'},  {"sign", no_argument, 0, 'g'},
	    {"no-sign", no_argument, 0, 'G'},	  {"both", no_argument, 0, 'B'},
	    {"suite", required_argument, 0, 's'}, {"runs", required_argument, 0, 'r'},
	    {"warm", required_argument, 0, 'w'},  {"io", required_argument, 0, 'o'},
	    {"out", required_argument, 0, 'O'},	  {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},	  {0, 0, 0, 0},
	};
	pipe_args a = {.side = "both", .suite = "aes256gcm"};
	sx_err err = {0};
	int c, rc = 0, usage_rc = 0;
	bp_bench *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		sx_fail(&err, SX_E_OTHER, "out of memory");
		return sx_cli_report(&err);
	}
	b->size = PIPE_SIZE_DEFAULT;
	b->chunk = SX_CHUNK_DEFAULT;
	b->runs = PIPE_RUNS_DEFAULT;
	b->signs[0] = b->signs[1] = true;
	b->env = (bp_env){.io = SX_IO_AUTO, .out = &b->out, .stop = &pipe_stop};
	b->s.in_fd = -1;
	optind = 1;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			goto done;
		}
		rc = parse_opt(c, optarg, b, &a);
	}
	if (rc == 0 && optind < argc)
		rc = sx_cli_usage_error("bench pipe", "unexpected argument '%s'", argv[optind]);
	if (rc == 0)
		rc = settle(b, &a);
	if (rc != 0)
		goto done;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (bench_pipe(b, &a, &usage_rc, &err) < 0) {
		rc = usage_rc != 0 ? usage_rc : sx_cli_report(&err);
		if (b->json && usage_rc == 0) {
			printf("{\"result\":\"error\",\"exit\":%d,\"message\":", rc);
			sx_cli_json_str(err.msg);
			printf("}\n");
		}
	} else if (b->json) {
		bp_print_json(b);
	} else {
		bp_print_table(b);
	}
done:
	bp_session_free(&b->s);
	if (b->tmp[0] != '\0')
		sx_bench_rmtree(b->tmp);
	free(b->res);
	free(b->floors);
	free(b);
	return rc;
}
