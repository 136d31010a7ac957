/* sxfer send: files, folders or standard input to a server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: sxfer send --id IDDIR [options] HOST:PORT PATH...\n"
    "\n"
    "Sends files and folders (a folder arrives with its tree, as scp -r) to\n"
    "`sxfer serve`. PATH '-' sends standard input as a stream named by --name.\n"
    "In a folder, what cannot be sent (a symbolic link or other special file, a\n"
    "name the receiver refuses, and, signed, X.sxsig beside X) is skipped with a\n"
    "warning; the rest is sent and the exit code is then 5.\n"
    "\n"
    "  --id DIR             identity folder (key.pem, cert.pem, ca.pem, crl.pem)\n"
    "  --server-name NAME   name the server's certificate must carry (default: HOST)\n"
    "  --crl FILE           revocation list for the server's certificate and its\n"
    "                       receipts (default: crl.pem of the identity folder, if any)\n"
    "  --suite S            aes256gcm (default), aes256ctr-hmac, chacha20poly1305\n"
    "  --chunk SIZE         record payload size (default 1M; e.g. 256K, 4M)\n"
    "  --compress MODE      zstd per record: auto (default: level 1; a file whose\n"
    "                       64K sample does not shrink by 10% goes uncompressed,\n"
    "                       sampled again every 64 records), on (level 3),\n"
    "                       LEVEL (1-19) or off; 'off' is faster for compressible\n"
    "                       data on links above about 3 Gbit/s\n"
    "  --key-update SIZE    ratchet the record keys every SIZE bytes (default 64G)\n"
    "  --io KIND            auto (default), uring or poll\n"
    "  --name NAME          name of the standard-input stream (default: stdin)\n"
    "  --dest SUBDIR        land under SUBDIR of this identity's folder on the\n"
    "                       server (OUT/NAME/SUBDIR/...): a relative path without\n"
    "                       '..' or empty parts, created as needed\n"
    "  --timeout SEC        network timeout (default 30)\n"
    "  --quiet              no progress bar\n"
    "  --json               print a JSON summary on standard output\n"
    "  --verbose            also a log line per file resumed or already there\n"
    "  --zerocopy           io_uring zero-copy sends (measured: no gain on loopback)\n"
    "  --no-direct          read every file through the page cache (default: files of\n"
    "                       4 MiB or more that are mostly not cached are read with\n"
    "                       direct I/O where the file system supports it)\n"
    "  --no-sign            no batch signatures, .sxsig files or receipts (plain channel)\n"
    "  --receipts DIR       where the receiver's signed receipts are stored\n"
    "                       (default: " SX_RECEIPTS_SUB "/ of the state folder:\n"
    "                       $STATE_DIRECTORY, else $XDG_STATE_HOME/sxfer, else\n"
    "                       $HOME/.local/state/sxfer); the leaf cache that speeds up\n"
    "                       resuming goes beside it, in leaves/\n"
    "  --batch-files N      a signed batch closes after N files (default 4096),\n"
    "  --batch-bytes SIZE   or SIZE bytes (default 1G),\n"
    "  --batch-seconds S    or S seconds after its first file (default 10)\n"
    "  --checkpoint K       a signed checkpoint every K chunks of a stream (default 64)\n"
    "  --retry N            after a network failure (refused, reset, cut, a stall of\n"
    "                       --timeout, the server shutting down) connect again up to\n"
    "                       N times (default 5; 0: never), each attempt resuming what\n"
    "                       the receiver holds; an attempt that moved forward starts\n"
    "                       the count again. Waits 1 s doubling to 60 s, randomized\n"
    "  --retry-wait MS[:MS] the first wait and the longest, in milliseconds\n"
    "  --no-resume          ask the receiver nothing: every file from its first byte\n"
    "  --pass-file FILE     passphrase of the identity key (or SXFER_PASSPHRASE)\n";

typedef struct bar {
	bool on;
	uint64_t t0, last;
} bar;

static void human(double v, char *buf, size_t cap)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, cap, "%.1f %s", v, u[i]);
}

static void on_progress(void *ctx, const sx_progress *p)
{
	bar *b = ctx;
	uint64_t now = sx_now_ns();
	bool final = p->total_known && p->bytes_sent == p->bytes_total;
	if (!b->on || (now - b->last < 100000000u && !final))
		return;
	b->last = now;
	double secs = (double)(now - b->t0) / 1e9;
	double rate = secs > 0 ? (double)p->bytes_sent / secs : 0;
	char done[32], total[32], r[32];
	human((double)p->bytes_sent, done, sizeof(done));
	human((double)p->bytes_total, total, sizeof(total));
	human(rate, r, sizeof(r));
	if (p->total_known && p->bytes_total > 0) {
		double frac = (double)p->bytes_sent / (double)p->bytes_total;
		int w = 30, fill = (int)(frac * w);
		char line[64];
		for (int i = 0; i < w; i++)
			line[i] = i < fill ? '#' : '.';
		line[w] = '\0';
		double eta = rate > 0 ? (double)(p->bytes_total - p->bytes_sent) / rate : 0;
		fprintf(stderr, "\r[%s] %3.0f%% %s / %s  %s/s  ETA %02d:%02d  ", line, frac * 100,
			done, total, r, (int)eta / 60, (int)eta % 60);
	} else {
		fprintf(stderr, "\r%s  %s/s  ", done, r);
	}
}

static void on_retry(void *ctx, unsigned attempt, unsigned wait_ms, const sx_err *why)
{
	const bool *quiet = ctx;
	if (!*quiet)
		fprintf(stderr, "\nsxfer: %s; attempt %u in %.1f s\n", SX_TEXT(why->msg), attempt,
			wait_ms / 1000.0);
}

/* --retry-wait MS[:MS] */
static int parse_retry_wait(const char *arg, sx_send_cfg *cfg)
{
	char a[32];
	uint64_t lo, hi;
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
	if (n == 0 || n >= sizeof(a))
		return -1;
	memcpy(a, arg, n);
	a[n] = '\0';
	if (sx_parse_u64(a, &lo) < 0 || lo == 0 || lo > 3600000)
		return -1;
	hi = lo > 60000 ? lo : 60000;
	if (colon && (sx_parse_u64(colon + 1, &hi) < 0 || hi < lo || hi > 3600000))
		return -1;
	cfg->retry_base_ms = (int)lo;
	cfg->retry_max_ms = (int)hi;
	return 0;
}

static const char *zmode_name(sx_zmode m, int level)
{
	static char buf[16];
	if (m == SX_ZMODE_OFF)
		return "off";
	if (m == SX_ZMODE_AUTO)
		return "auto";
	snprintf(buf, sizeof(buf), "%d", level);
	return buf;
}

int sx_cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, 0, 'i'},
	    {"server-name", required_argument, 0, 'n'},
	    {"crl", required_argument, 0, 'r'},
	    {"suite", required_argument, 0, 's'},
	    {"chunk", required_argument, 0, 'c'},
	    {"key-update", required_argument, 0, 'k'},
	    {"io", required_argument, 0, 'o'},
	    {"name", required_argument, 0, 'N'},
	    {"timeout", required_argument, 0, 't'},
	    {"quiet", no_argument, 0, 'q'},
	    {"json", no_argument, 0, 'j'},
	    {"verbose", no_argument, 0, 'V'},
	    {"pass-file", required_argument, 0, 'p'},
	    {"threads", required_argument, 0, 'W'},
	    {"zerocopy", no_argument, 0, 'Z'},
	    {"no-direct", no_argument, 0, 'D'},
	    {"no-sign", no_argument, 0, 'S'},
	    {"receipts", required_argument, 0, 'R'},
	    {"batch-files", required_argument, 0, 'F'},
	    {"batch-bytes", required_argument, 0, 'B'},
	    {"batch-seconds", required_argument, 0, 'T'},
	    {"checkpoint", required_argument, 0, 'K'},
	    {"compress", required_argument, 0, 'z'},
	    {"retry", required_argument, 0, 'y'},
	    {"retry-wait", required_argument, 0, 'w'},
	    {"no-resume", no_argument, 0, 'U'},
	    {"dest", required_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	sx_send_cfg cfg = {.suite = SX_SUITE_AES256GCM,
			   .chunk = SX_CHUNK_DEFAULT,
			   .timeout_ms = 30000,
			   .zmode = SX_ZMODE_AUTO,
			   .zlevel = SX_ZLEVEL_AUTO,
			   .retries = 5};
	const char *id_dir = NULL, *crl_file = NULL;
	bool quiet = false, json = false, verbose = false;
	sx_cli_pass ps = {0};
	uint64_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': id_dir = optarg; break;
		case 'n': cfg.server_name = optarg; break;
		case 'r': crl_file = optarg; break;
		case 's':
			if (sx_suite_parse(optarg, (sx_suite *)&cfg.suite) < 0)
				return sx_cli_usage_error("send", "unknown suite '%s'", optarg);
			break;
		case 'c':
			if (sx_parse_size(optarg, &v) < 0 || v < SX_CHUNK_MIN || v > (64u << 20))
				return sx_cli_usage_error("send", "--chunk: a size from 4K to 64M");
			cfg.chunk = (uint32_t)v;
			break;
		case 'k':
			if (sx_parse_size(optarg, &v) < 0 || v == 0)
				return sx_cli_usage_error("send",
							  "--key-update: a size such as 64G");
			cfg.rotate_bytes = v;
			break;
		case 'o':
			if (sx_io_kind_parse(optarg, &cfg.io) < 0)
				return sx_cli_usage_error("send", "--io: auto, uring or poll");
			break;
		case 'N': cfg.stream_name = optarg; break;
		case 't':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
				return sx_cli_usage_error("send", "--timeout: seconds");
			cfg.timeout_ms = (int)(v * 1000);
			break;
		case 'q': quiet = true; break;
		case 'j': json = true; break;
		case 'V': verbose = true; break;
		case 'p': ps.file = optarg; break;
		case 'S': cfg.no_sign = true; break;
		case 'Z': cfg.zerocopy = true; break;
		case 'D': cfg.no_direct = true; break;
		case 'W':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 8)
				return sx_cli_usage_error("send", "--threads: 1 to 8");
			cfg.threads = (unsigned)v;
			break;
		case 'R': cfg.receipts_dir = optarg; break;
		case 'F':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 4096)
				return sx_cli_usage_error("send", "--batch-files: 1 to 4096");
			cfg.batch_files = (uint32_t)v;
			break;
		case 'B':
			if (sx_parse_size(optarg, &v) < 0 || v == 0)
				return sx_cli_usage_error("send",
							  "--batch-bytes: a size such as 1G");
			cfg.batch_bytes = v;
			break;
		case 'T':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
				return sx_cli_usage_error("send", "--batch-seconds: 1 to 86400");
			cfg.batch_ms = (int)v * 1000;
			break;
		case 'K':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 1000000)
				return sx_cli_usage_error("send",
							  "--checkpoint: chunks, 1 to 1000000");
			cfg.checkpoint_records = (uint32_t)v;
			break;
		case 'z':
			if (sx_zmode_parse(optarg, &cfg.zmode, &cfg.zlevel) < 0)
				return sx_cli_usage_error(
				    "send", "--compress: auto, on, off or a level 1-19");
			break;
		case 'y':
			if (sx_parse_u64(optarg, &v) < 0 || v > 1000)
				return sx_cli_usage_error("send", "--retry: 0 to 1000");
			cfg.retries = (unsigned)v;
			break;
		case 'w':
			if (parse_retry_wait(optarg, &cfg) < 0)
				return sx_cli_usage_error(
				    "send",
				    "--retry-wait: MS or MS:MS, milliseconds, 1 to 3600000");
			break;
		case 'U': cfg.no_resume = true; break;
		case 'd': {
			sx_err derr = {0};
			if (sx_send_dest_check(optarg, &derr) < 0)
				return sx_cli_usage_error("send", "%s", derr.msg);
			cfg.dest = optarg;
			break;
		}
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error("send", "unknown option");
		}
	}
	if (id_dir == NULL)
		return sx_cli_usage_error("send", "--id is required");
	if (argc - optind < 2)
		return sx_cli_usage_error("send", "expected HOST:PORT and at least one PATH");
	char host[256], port[32];
	if (sx_net_split(argv[optind], host, sizeof(host), port, sizeof(port)) < 0)
		return sx_cli_usage_error("send", "'%s': expected HOST:PORT", argv[optind]);
	if (sx_net_port_check(port, false) < 0)
		return sx_cli_usage_error("send", "'%s': the port must be 1 to 65535",
					  argv[optind]);
	int nstdin = 0;
	for (int i = optind + 1; i < argc; i++)
		nstdin += strcmp(argv[i], "-") == 0;
	if (nstdin > 1)
		return sx_cli_usage_error("send", "standard input can be sent once");
	cfg.host = host;
	cfg.port = port;
	cfg.paths = argv + optind + 1;
	cfg.npaths = argc - optind - 1;

	sx_err err = {0};
	sx_identity id = {0};
	sx_pass pass;
	X509_CRL *crl = NULL;
	sx_send_stats st = {0};
	bar b = {.on = !quiet && !json && isatty(STDERR_FILENO), .t0 = sx_now_ns()};
	int rc;
	sx_cli_pass_init(&pass, &ps);
	if (sx_identity_load(id_dir, &pass, &id, &err) < 0 ||
	    (crl_file && sx_crl_load(crl_file, &crl, &err) < 0))
		goto done;
	cfg.id = &id;
	cfg.crl = crl;
	sx_log_set_min(verbose ? "debug" : "info");
	(void)sx_cert_life_warn(&id, 0); /* renewal due: said before anything is sent */
	cfg.on_progress = on_progress;
	cfg.progress_ctx = &b;
	cfg.on_retry = on_retry;
	cfg.retry_ctx = &quiet;
	if (sx_send_run(&cfg, &st, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "send failed");
	if (b.on)
		fputc('\n', stderr);
done:
	rc = err.cls == SX_OK ? 0 : (int)err.cls;
	if (json) {
		printf("{\"result\":\"%s\",\"exit\":%d,", rc ? "error" : "ok", rc);
		if (rc) {
			printf("\"message\":");
			sx_cli_json_str(err.msg);
			putchar(',');
		}
		printf("\"files_ok\":%llu,\"files_failed\":%llu,\"files_skipped\":%llu,"
		       "\"bytes\":%llu,\"seconds\":%.3f,\"mib_per_s\":%.1f,\"suite\":",
		       (unsigned long long)st.files_ok, (unsigned long long)st.files_failed,
		       (unsigned long long)st.files_skipped, (unsigned long long)st.bytes,
		       st.seconds,
		       st.seconds > 0 ? (double)st.bytes / 1048576.0 / st.seconds : 0.0);
		sx_cli_json_str(sx_suite_name(st.suite ? st.suite : cfg.suite));
		printf(",\"io\":");
		sx_cli_json_str(st.io_backend);
		printf(",\"peer\":");
		sx_cli_json_str(st.peer_name);
		printf(",\"peer_fingerprint\":");
		sx_cli_json_str(st.peer_fingerprint);
		printf(",\"signed\":%s,\"batches\":%llu,"
		       "\"checkpoints\":%llu,\"receipts\":%llu,\"receipts_dir\":",
		       cfg.no_sign ? "false" : "true", (unsigned long long)st.batches,
		       (unsigned long long)st.checkpoints, (unsigned long long)st.receipts);
		sx_cli_json_str(st.receipts_dir);
		printf(",\"compress\":");
		sx_cli_json_str(zmode_name(cfg.zmode, cfg.zlevel));
		printf(",\"compressed_bytes\":%llu,\"data_records\":%llu,"
		       "\"compressed_records\":%llu,\"direct_bytes\":%llu,",
		       (unsigned long long)st.wire_bytes, (unsigned long long)st.records,
		       (unsigned long long)st.records_compressed,
		       (unsigned long long)st.direct_bytes);
		printf("\"wire_bytes\":%llu,\"files_resumed\":%llu,\"bytes_resumed\":%llu,"
		       "\"files_same\":%llu,\"attempts\":%u,",
		       (unsigned long long)st.wire_bytes, (unsigned long long)st.files_resumed,
		       (unsigned long long)st.bytes_resumed, (unsigned long long)st.files_same,
		       st.attempts);
		printf("\"bytes_compared\":%llu,\"leaves_cached\":%llu,\"files_grew\":%llu}\n",
		       (unsigned long long)st.bytes_compared, (unsigned long long)st.leaves_cached,
		       (unsigned long long)st.files_grew);
	} else if (rc == 0 && !quiet) {
		fprintf(stderr, "sent %llu file(s), %llu bytes in %.2f s (%.1f MiB/s) to %s\n",
			(unsigned long long)st.files_ok, (unsigned long long)st.bytes, st.seconds,
			st.seconds > 0 ? (double)st.bytes / 1048576.0 / st.seconds : 0.0,
			SX_TEXT(st.peer_name));
		if (st.files_resumed > 0 || st.files_same > 0 || st.attempts > 1)
			fprintf(stderr,
				"%llu file(s) resumed (%llu bytes not sent again), %llu already "
				"there; %u attempt(s)\n",
				(unsigned long long)st.files_resumed,
				(unsigned long long)st.bytes_resumed,
				(unsigned long long)st.files_same, st.attempts);
		if (st.records_compressed > 0)
			fprintf(stderr,
				"compressed %llu of %llu record(s): %llu bytes on the wire, "
				"ratio %.2f\n",
				(unsigned long long)st.records_compressed,
				(unsigned long long)st.records, (unsigned long long)st.wire_bytes,
				st.wire_bytes > 0 ? (double)st.bytes / (double)st.wire_bytes : 0.0);
		if (!cfg.no_sign)
			fprintf(stderr,
				"signed in %llu batch(es); %llu receipt(s) verified, in %s\n",
				(unsigned long long)st.batches, (unsigned long long)st.receipts,
				SX_TEXT(st.receipts_dir));
	}
	if (!json && st.files_grew > 0)
		fprintf(stderr,
			"sxfer: warning: %llu file(s) grew while they were being sent: each was "
			"sent at the size it had when it was begun\n",
			(unsigned long long)st.files_grew);
	if (rc)
		sx_cli_report(&err);
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}
