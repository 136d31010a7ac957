/* sxfer ls: what this identity may get from a server, and what it sent. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: sxfer ls --id IDDIR [options] HOST:PORT [REMOTE_PATH]\n"
    "\n"
    "Lists what this identity may fetch with `sxfer get`: without REMOTE_PATH the\n"
    "folders it may read (NAME/ and shared/ of the server's export, and uploads/,\n"
    "what it sent to the server), else the files and folders of REMOTE_PATH, one\n"
    "level, in name order: permission bits, size, modification time (UTC), 'sig'\n"
    "when NAME.sxsig is beside the file, and the path to give to `get`.\n"
    "\n"
    "  --id DIR             identity folder (key.pem, cert.pem, ca.pem, crl.pem)\n"
    "  --server-name NAME   name the server's certificate must carry (default: HOST)\n"
    "  --crl FILE           revocation list for the server's certificate\n"
    "  --io KIND            auto (default), uring or poll\n"
    "  --timeout SEC        network timeout (default 30)\n"
    "  --json               one JSON object: {\"entries\":[...]} on standard output\n"
    "  --verbose            a log line per event on stderr\n"
    "  --pass-file FILE     passphrase of the identity key (or SXFER_PASSPHRASE)\n"
    "\n"
    "Exit codes: 3 a path this identity may not read; 5 a path that does not exist.\n";

typedef struct lsout {
	bool json;
	unsigned long long n;
} lsout;

static void on_entry(void *ctx, const sx_list_entry *e)
{
	lsout *o = ctx;
	char when[32];
	struct tm tm;
	time_t t = (time_t)e->mtime_sec;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (o->json) {
		printf("%s{\"path\":", o->n ? "," : "");
		sx_cli_json_str(e->path);
		printf(",\"type\":\"%s\",\"size\":%llu,\"mode\":\"%04o\",\"mtime\":\"%s\","
		       "\"sxsig\":%s}",
		       e->is_dir ? "folder" : "file", (unsigned long long)e->size, e->mode, when,
		       e->has_sxsig ? "true" : "false");
	} else {
		printf("%04o %14llu %s %-3s %s%s\n", e->mode, (unsigned long long)e->size, when,
		       e->has_sxsig ? "sig" : "-", SX_TEXT(e->path), e->is_dir ? "/" : "");
	}
	o->n++;
}

int sx_cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, 0, 'i'},	    {"server-name", required_argument, 0, 'n'},
	    {"crl", required_argument, 0, 'r'},	    {"io", required_argument, 0, 'o'},
	    {"timeout", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
	    {"verbose", no_argument, 0, 'v'},	    {"pass-file", required_argument, 0, 'p'},
	    {"help", no_argument, 0, 'h'},	    {0, 0, 0, 0},
	};
	sx_get_cfg cfg = {.suite = SX_SUITE_AES256GCM, .timeout_ms = 30000, .list = true};
	const char *id_dir = NULL, *crl_file = NULL;
	bool verbose = false;
	lsout out = {0};
	sx_cli_pass ps = {0};
	uint64_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': id_dir = optarg; break;
		case 'n': cfg.server_name = optarg; break;
		case 'r': crl_file = optarg; break;
		case 'o':
			if (sx_io_kind_parse(optarg, &cfg.io) < 0)
				return sx_cli_usage_error("ls", "--io: auto, uring or poll");
			break;
		case 't':
			if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
				return sx_cli_usage_error("ls", "--timeout: seconds");
			cfg.timeout_ms = (int)(v * 1000);
			break;
		case 'j': out.json = true; break;
		case 'v': verbose = true; break;
		case 'p': ps.file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error("ls", "unknown option");
		}
	}
	if (id_dir == NULL)
		return sx_cli_usage_error("ls", "--id is required");
	if (argc - optind < 1 || argc - optind > 2)
		return sx_cli_usage_error("ls", "expected HOST:PORT and at most one REMOTE_PATH");
	char host[256], port[32];
	if (sx_net_split(argv[optind], host, sizeof(host), port, sizeof(port)) < 0 ||
	    sx_net_port_check(port, false) < 0)
		return sx_cli_usage_error("ls", "'%s': expected HOST:PORT", argv[optind]);
	cfg.host = host;
	cfg.port = port;
	cfg.paths = argv + optind + 1;
	cfg.npaths = argc - optind - 1;
	if (!verbose)
		sx_log_set_min("warn");

	sx_err err = {0};
	sx_identity id = {0};
	sx_pass pass;
	X509_CRL *crl = NULL;
	sx_get_stats st = {0};
	sx_cli_pass_init(&pass, &ps);
	if (sx_identity_load(id_dir, &pass, &id, &err) < 0 ||
	    (crl_file && sx_crl_load(crl_file, &crl, &err) < 0))
		goto done;
	cfg.id = &id;
	cfg.crl = crl;
	cfg.on_entry = on_entry;
	cfg.entry_ctx = &out;
	if (out.json)
		printf("{\"entries\":[");
	if (sx_get_run(&cfg, &st, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "ls failed");
	if (out.json) {
		printf("],\"result\":\"%s\",\"exit\":%d", err.cls ? "error" : "ok", (int)err.cls);
		if (err.cls) {
			printf(",\"message\":");
			sx_cli_json_str(err.msg);
		}
		printf("}\n");
	}
done:
	sx_identity_free(&id);
	X509_CRL_free(crl);
	if (err.cls != SX_OK)
		return sx_cli_report(&err);
	return 0;
}
