/* sxfer get: files and folders from a server's export (the server sends). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_rate.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: sxfer get --id IDDIR [options] HOST:PORT REMOTE_PATH... LOCAL_DIR\n"
    "\n"
    "Fetches files and folders from `sxfer serve --export`. REMOTE_PATH is\n"
    "relative to the server's export: NAME/... (this identity's own folder),\n"
    "shared/... or uploads/... (what this identity sent). A folder arrives with\n"
    "its tree, modes and mtimes, as `send` keeps them. The server signs what it\n"
    "sends; each batch is verified against its certificate before any file takes\n"
    "its final name, NAME.sxsig is written beside each file (so `sxfer verify\n"
    "--signer SERVER` checks it later) and a signed receipt goes back. Files are\n"
    "stored as the server stores them: a temporary, flushed, then renamed; an\n"
    "existing file is not replaced without --overwrite. LOCAL_DIR '-' writes one\n"
    "file to standard output, once it has been received and verified whole.\n"
    "A get that breaks off keeps the whole leaves of an unfinished file beside its\n"
    "name (a held part, 7 days); the next get of it fetches only the rest, and a\n"
    "file already there with the same content is not fetched again.\n"
    "\n"
    "  --id DIR             identity folder (key.pem, cert.pem, ca.pem, crl.pem)\n"
    "  --server-name NAME   name the server's certificate must carry (default: HOST)\n"
    "  --crl FILE           revocation list for the server's certificate\n"
    "                       (default: crl.pem of the identity folder, if any)\n"
    "  --suite S            aes256gcm (default), aes256ctr-hmac, chacha20poly1305\n"
    "  --chunk SIZE         record payload the server should use (default: its own)\n"
    "  --key-update SIZE    ratchet the record keys every SIZE bytes (default 64G)\n"
    "  --io KIND            auto (default), uring or poll\n"
    "  --open-threads N     threads that open and hash what arrives, this one\n"
    "                       included (default: one per core, at most 8; 0 or 1:\n"
    "                       all on this thread)\n"
    "  --timeout SEC        network timeout (default 30)\n"
    "  --limit-rate RATE    read at most RATE bytes per second (e.g. 500K, 10M), which\n"
    "                       holds the server's sending to it (default: no limit)\n"
    "  --overwrite          replace existing files\n"
    "  --no-direct          write every file through the page cache\n"
    "  --no-sign            ask for an unsigned session (no .sxsig, no receipt)\n"
    "  --quiet              no progress\n"
    "  --verbose            a log line per event on stderr\n"
    "  --json               print a JSON summary on standard output\n"
    "  --pass-file FILE     passphrase of the identity key (or SXFER_PASSPHRASE)\n"
    "\n"
    "Exit codes: 3 a path this identity may not read, or a certificate problem;\n"
    "4 what the server sent does not verify (nothing is left under a final name);\n"
    "5 a remote path that does not exist, or a local file in the way.\n";

typedef struct bar {
	bool on;
	uint64_t t0, last;
} bar;

static void on_progress(void *ctx, const sx_progress *p)
{
	bar *b = ctx;
	uint64_t now = sx_now_ns();
	if (!b->on || now - b->last < 100000000u)
		return;
	b->last = now;
	double secs = (double)(now - b->t0) / 1e9;
	double mib = (double)p->bytes_sent / 1048576.0;
	fprintf(stderr, "\r%.1f MiB  %.1f MiB/s  %llu file(s)  ", mib, secs > 0 ? mib / secs : 0.0,
		(unsigned long long)p->files_done);
}

/* Standard output: the one file, received and verified in a private
 * folder, is copied out and the folder removed. */
static int emit_file(const char *dir, const char *remote, sx_err *err)
{
	size_t b, n;
	sx_path_last(remote, &b, &n);
	char path[8192];
	snprintf(path, sizeof(path), "%s/%.*s", dir, (int)n, remote + b);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", path);
	char buf[1 << 16];
	int rc = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r == 0)
			break;
		if (r < 0) {
			rc = sx_fail_errno(err, SX_E_IO, errno, "%s", path);
			break;
		}
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(r - off));
			if (w < 0) {
				close(fd);
				return sx_fail_errno(err, SX_E_IO, errno, "standard output");
			}
			off += w;
		}
	}
	close(fd);
	return rc;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				(void)unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	(void)rmdir(dir);
}

int sx_cmd_get(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, 0, 'i'},
	    {"server-name", required_argument, 0, 'n'},
	    {"crl", required_argument, 0, 'r'},
	    {"suite", required_argument, 0, 's'},
	    {"chunk", required_argument, 0, 'c'},
	    {"key-update", required_argument, 0, 'k'},
	    {"io", required_argument, 0, 'o'},
	    {"timeout", required_argument, 0, 't'},
	    {"overwrite", no_argument, 0, 'w'},
	    {"no-direct", no_argument, 0, 'D'},
	    {"no-sign", no_argument, 0, 'S'},
	    {"quiet", no_argument, 0, 'q'},
	    {"verbose", no_argument, 0, 'v'},
	    {"json", no_argument, 0, 'j'},
	    {"pass-file", required_argument, 0, 'p'},
	    {"limit-rate", required_argument, 0, 'L'},
	    {"open-threads", required_argument, 0, 'T'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	sx_get_cfg cfg = {.suite = SX_SUITE_AES256GCM, .timeout_ms = 30000, .direct = true};
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
				return sx_cli_usage_error("get", "unknown suite '%s'", optarg);
			break;
		case 'c':
			if (sx_parse_size(optarg, &v) < 0 || v < SX_CHUNK_MIN || v > (16u << 20))
				return sx_cli_usage_error("get", "--chunk: a size from 4K to 16M");
			cfg.chunk = (uint32_t)v;
			break;
		case 'k':
			if (sx_parse_size(optarg, &v) < 0 || v == 0)
				return sx_cli_usage_error("get",
							  "--key-update: a size such as 64G");
			cfg.rotate_bytes = v;
			break;
		case 'o':
			if (sx_io_kind_parse(optarg, &cfg.io) < 0)
				return sx_cli_usage_error("get", "--io: auto, uring or poll");
			break;
		case 't':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
				return sx_cli_usage_error("get", "--timeout: seconds");
			cfg.timeout_ms = (int)(v * 1000);
			break;
		case 'L':
			if (sx_parse_size(optarg, &v) < 0 || v < SX_RATE_MIN)
				return sx_cli_usage_error(
				    "get",
				    "--limit-rate: bytes per second, at least 1K (e.g. 500K, 10M)");
			cfg.limit_rate = v;
			break;
		case 'T':
			if (sx_parse_u64(optarg, &v) < 0 || v > SX_OPEN_THREADS_MAX)
				return sx_cli_usage_error("get", "--open-threads: 0 to %d",
							  SX_OPEN_THREADS_MAX);
			cfg.open_threads = v == 0 ? 1 : (unsigned)v; /* 0: the loop alone */
			break;
		case 'w': cfg.overwrite = true; break;
		case 'D': cfg.direct = false; break;
		case 'S': cfg.no_sign = true; break;
		case 'q': quiet = true; break;
		case 'v': verbose = true; break;
		case 'j': json = true; break;
		case 'p': ps.file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error("get", "unknown option");
		}
	}
	if (id_dir == NULL)
		return sx_cli_usage_error("get", "--id is required");
	if (argc - optind < 3)
		return sx_cli_usage_error("get",
					  "expected HOST:PORT, REMOTE_PATH... and LOCAL_DIR");
	char host[256], port[32];
	if (sx_net_split(argv[optind], host, sizeof(host), port, sizeof(port)) < 0)
		return sx_cli_usage_error("get", "'%s': expected HOST:PORT", argv[optind]);
	if (sx_net_port_check(port, false) < 0)
		return sx_cli_usage_error("get", "'%s': the port must be 1 to 65535", argv[optind]);
	cfg.host = host;
	cfg.port = port;
	cfg.paths = argv + optind + 1;
	cfg.npaths = argc - optind - 2;
	const char *local = argv[argc - 1];
	char stage[4096] = "";
	cfg.single = strcmp(local, "-") == 0;
	if (cfg.single && cfg.npaths != 1)
		return sx_cli_usage_error("get", "'-' (standard output) takes one REMOTE_PATH");
	if (!verbose)
		sx_log_set_min("warn");
	signal(SIGPIPE, SIG_IGN);

	sx_err err = {0};
	sx_identity id = {0};
	sx_pass pass;
	X509_CRL *crl = NULL;
	sx_get_stats st = {0};
	bar b = {.on = !quiet && !json && isatty(STDERR_FILENO), .t0 = sx_now_ns()};
	int rc;
	sx_cli_pass_init(&pass, &ps);
	if (sx_identity_load(id_dir, &pass, &id, &err) < 0 ||
	    (crl_file && sx_crl_load(crl_file, &crl, &err) < 0))
		goto done;
	(void)sx_cert_life_warn(&id, 0); /* renewal due: said before anything is asked */
	if (cfg.single) {
		const char *tmp = getenv("TMPDIR");
		snprintf(stage, sizeof(stage), "%s/sxfer-get-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(stage) == NULL) {
			sx_fail_errno(&err, SX_E_IO, errno, "%s", stage);
			stage[0] = '\0';
			goto done;
		}
		local = stage;
	}
	cfg.out_dir = local;
	cfg.id = &id;
	cfg.crl = crl;
	cfg.on_progress = on_progress;
	cfg.progress_ctx = &b;
	if (sx_get_run(&cfg, &st, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "get failed");
	if (b.on)
		fputc('\n', stderr);
	if (err.cls == SX_OK && cfg.single)
		(void)emit_file(stage, cfg.paths[0], &err);
done:
	if (stage[0] != '\0')
		remove_tree(stage);
	rc = err.cls == SX_OK ? 0 : (int)err.cls;
	if (json) {
		printf("{\"result\":\"%s\",\"exit\":%d,", rc ? "error" : "ok", rc);
		if (rc) {
			printf("\"message\":");
			sx_cli_json_str(err.msg);
			putchar(',');
		}
		printf("\"files_ok\":%llu,\"files_failed\":%llu,\"bytes\":%llu,\"seconds\":%.3f,"
		       "\"mib_per_s\":%.1f,\"suite\":",
		       (unsigned long long)st.files_ok, (unsigned long long)st.files_failed,
		       (unsigned long long)st.bytes, st.seconds,
		       st.seconds > 0 ? (double)st.bytes / 1048576.0 / st.seconds : 0.0);
		sx_cli_json_str(sx_suite_name(st.suite ? st.suite : cfg.suite));
		printf(",\"io\":");
		sx_cli_json_str(st.io_backend ? st.io_backend : "");
		printf(",\"peer\":");
		sx_cli_json_str(st.peer_name);
		printf(",\"peer_fingerprint\":");
		sx_cli_json_str(st.peer_fingerprint);
		printf(",\"signed\":%s,\"batches\":%llu,\"files_resumed\":%llu,"
		       "\"bytes_resumed\":%llu,\"files_same\":%llu}\n",
		       st.sign ? "true" : "false", (unsigned long long)st.batches,
		       (unsigned long long)st.files_resumed, (unsigned long long)st.bytes_resumed,
		       (unsigned long long)st.files_same);
	} else if (rc == 0 && !quiet) {
		fprintf(stderr,
			"received %llu file(s), %llu bytes in %.2f s (%.1f MiB/s) from %s\n",
			(unsigned long long)st.files_ok, (unsigned long long)st.bytes, st.seconds,
			st.seconds > 0 ? (double)st.bytes / 1048576.0 / st.seconds : 0.0,
			SX_TEXT(st.peer_name));
		if (st.files_resumed > 0 || st.files_same > 0)
			fprintf(stderr,
				"resumed %llu file(s) (%llu bytes not fetched again), %llu file(s) "
				"already there\n",
				(unsigned long long)st.files_resumed,
				(unsigned long long)st.bytes_resumed,
				(unsigned long long)st.files_same);
		if (st.sign)
			fprintf(stderr,
				"signed by %s in %llu batch(es), verified; NAME.sxsig beside each "
				"file; receipts sent\n",
				SX_TEXT(st.peer_name), (unsigned long long)st.batches);
	}
	if (rc)
		sx_cli_report(&err);
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}
