/* sxfer send: files, folders or standard input to a server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"
#include "tools/send_opts.h"

static const char usage[] =
    "usage: sxfer send --id IDDIR [options] HOST:PORT PATH...\n"
    "\n"
    "Sends files and folders (a folder arrives with its tree, as scp -r) to\n"
    "`sxfer serve`. PATH '-' sends standard input as a stream named by --name.\n"
    "In a folder, what cannot be sent (a symbolic link or other special file, a\n"
    "name the receiver refuses, and, signed, X.sxsig beside X) is skipped with a\n"
    "warning; the rest is sent and the exit code is then 5.\n"
    "\n" SX_SEND_OPTIONS_HELP
    "  --name NAME          name of the standard-input stream (default: stdin)\n"
    "  --batch-files N      a signed batch closes after N files (default 4096),\n"
    "  --batch-seconds S    or S seconds after its first file (default 10)\n"
    "\n"
    "Receipts go to " SX_RECEIPTS_SUB "/ of the state folder ($STATE_DIRECTORY, else\n"
    "$XDG_STATE_HOME/sxfer, else $HOME/.local/state/sxfer) unless --receipts says;\n"
    "the leaf cache that speeds up resuming goes beside them, in leaves/.\n";

typedef struct bar {
	bool on;
	uint64_t t0, last;
} bar;

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
	sx_cli_human((double)p->bytes_sent, done, sizeof(done));
	sx_cli_human((double)p->bytes_total, total, sizeof(total));
	sx_cli_human(rate, r, sizeof(r));
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

/* What the send did: JSON on standard output, or a few lines for a person. */
static void summary(const sx_send_cfg *cfg, const sx_send_stats *st, const sx_err *err, int rc,
		    bool json, bool quiet)
{
	if (json) {
		printf("{\"result\":\"%s\",\"exit\":%d,", rc ? "error" : "ok", rc);
		if (rc) {
			printf("\"message\":");
			sx_cli_json_str(err->msg);
			putchar(',');
		}
		printf("\"files_ok\":%llu,\"files_failed\":%llu,\"files_skipped\":%llu,"
		       "\"bytes\":%llu,\"seconds\":%.3f,\"mib_per_s\":%.1f,\"suite\":",
		       (unsigned long long)st->files_ok, (unsigned long long)st->files_failed,
		       (unsigned long long)st->files_skipped, (unsigned long long)st->bytes,
		       st->seconds,
		       st->seconds > 0 ? (double)st->bytes / 1048576.0 / st->seconds : 0.0);
		sx_cli_json_str(sx_suite_name(st->suite ? st->suite : cfg->suite));
		printf(",\"io\":");
		sx_cli_json_str(st->io_backend);
		printf(",\"peer\":");
		sx_cli_json_str(st->peer_name);
		printf(",\"peer_fingerprint\":");
		sx_cli_json_str(st->peer_fingerprint);
		printf(",\"signed\":%s,\"batches\":%llu,"
		       "\"checkpoints\":%llu,\"receipts\":%llu,\"receipts_dir\":",
		       cfg->no_sign ? "false" : "true", (unsigned long long)st->batches,
		       (unsigned long long)st->checkpoints, (unsigned long long)st->receipts);
		sx_cli_json_str(st->receipts_dir);
		printf(",\"compress\":");
		sx_cli_json_str(zmode_name(cfg->zmode, cfg->zlevel));
		printf(",\"compressed_bytes\":%llu,\"data_records\":%llu,"
		       "\"compressed_records\":%llu,\"direct_bytes\":%llu,",
		       (unsigned long long)st->wire_bytes, (unsigned long long)st->records,
		       (unsigned long long)st->records_compressed,
		       (unsigned long long)st->direct_bytes);
		printf("\"wire_bytes\":%llu,\"files_resumed\":%llu,\"bytes_resumed\":%llu,"
		       "\"files_same\":%llu,\"attempts\":%u,",
		       (unsigned long long)st->wire_bytes, (unsigned long long)st->files_resumed,
		       (unsigned long long)st->bytes_resumed, (unsigned long long)st->files_same,
		       st->attempts);
		printf("\"bytes_compared\":%llu,\"leaves_cached\":%llu,\"files_grew\":%llu}\n",
		       (unsigned long long)st->bytes_compared,
		       (unsigned long long)st->leaves_cached, (unsigned long long)st->files_grew);
	} else if (rc == 0 && !quiet) {
		fprintf(stderr, "sent %llu file(s), %llu bytes in %.2f s (%.1f MiB/s) to %s\n",
			(unsigned long long)st->files_ok, (unsigned long long)st->bytes,
			st->seconds,
			st->seconds > 0 ? (double)st->bytes / 1048576.0 / st->seconds : 0.0,
			SX_TEXT(st->peer_name));
		if (st->files_resumed > 0 || st->files_same > 0 || st->attempts > 1)
			fprintf(stderr,
				"%llu file(s) resumed (%llu bytes not sent again), %llu already "
				"there; %u attempt(s)\n",
				(unsigned long long)st->files_resumed,
				(unsigned long long)st->bytes_resumed,
				(unsigned long long)st->files_same, st->attempts);
		if (st->records_compressed > 0)
			fprintf(stderr,
				"compressed %llu of %llu record(s): %llu bytes on the wire, "
				"ratio %.2f\n",
				(unsigned long long)st->records_compressed,
				(unsigned long long)st->records, (unsigned long long)st->wire_bytes,
				st->wire_bytes > 0 ? (double)st->bytes / (double)st->wire_bytes
						   : 0.0);
		if (!cfg->no_sign)
			fprintf(stderr,
				"signed in %llu batch(es); %llu receipt(s) verified, in %s\n",
				(unsigned long long)st->batches, (unsigned long long)st->receipts,
				SX_TEXT(st->receipts_dir));
	}
	if (!json && st->files_grew > 0)
		fprintf(stderr,
			"sxfer: warning: %llu file(s) grew while they were being sent: each was "
			"sent at the size it had when it was begun\n",
			(unsigned long long)st->files_grew);
}

int sx_cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
	    SX_SEND_OPTIONS,
	    {"name", required_argument, 0, 'N'},
	    {"batch-seconds", required_argument, 0, 'T'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	sx_send_cfg cfg;
	sx_send_opts o;
	uint64_t v;
	int c, rc;
	sx_send_opts_init(&cfg, &o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		sx_err bad = {0};
		if ((rc = sx_send_opt(c, optarg, &cfg, &o, &bad)) < 0)
			return sx_cli_usage_error("send", "%s", bad.msg);
		if (rc == 0)
			continue;
		switch (c) {
		case 'N': cfg.stream_name = optarg; break;
		case 'T':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
				return sx_cli_usage_error("send", "--batch-seconds: 1 to 86400");
			cfg.batch_ms = (int)v * 1000;
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error("send", "unknown option");
		}
	}
	bool quiet = o.quiet, json = o.json;
	if (o.id_dir == NULL)
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
	X509_CRL *crl = NULL;
	sx_send_stats st = {0};
	bar b = {.on = !quiet && !json && isatty(STDERR_FILENO), .t0 = sx_now_ns()};
	if (sx_send_opts_load(&o, &cfg, &id, &crl, &err) < 0)
		goto done;
	sx_log_set_min(o.verbose ? "debug" : "info");
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
	summary(&cfg, &st, &err, rc, json, quiet);
	if (rc)
		sx_cli_report(&err);
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}
