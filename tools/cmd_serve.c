/* sxfer serve: receive from many authenticated senders on one event loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/chat/sx_chat.h"
#include "engine/chat/sx_chat_hub.h"
#include "engine/ledger/sx_ledger.h"
#include "engine/transfer/sx_metrics.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"
#include "tools/serve_opts.h"
#include "tools/sx_version.h"

static const char usage[] =
    "usage: sxfer serve --listen ADDR:PORT --id IDDIR --out DIR [options]\n"
    "\n"
    "Stores what each sender sends under DIR/<sender's identity name>/.\n"
    "\n"
    "  --config FILE           read options from FILE first: `key = value` lines,\n"
    "                          the keys these options' names (listen = 0.0.0.0:7000,\n"
    "                          once = true); the command line overrides it (default:\n"
    "                          " SX_SERVE_CONF_DEFAULT " when it exists, or the file\n"
    "                          $" SX_SERVE_CONF_ENV " names; docs/OPERATIONS.md)\n"
    "  --no-config             read no configuration file (also --config none)\n"
    "  --listen ADDR:PORT      address to listen on (port 1-65535, or 0: any free port)\n"
    "  --id DIR                identity folder (key.pem, cert.pem, ca.pem, crl.pem)\n"
    "  --out DIR               where received files are stored\n"
    "  --crl FILE              revocation list for client certificates\n"
    "                          (default: crl.pem of the identity folder, if any);\n"
    "                          watched while the server runs: a new CRL put there\n"
    "                          (rename it into place) is used within 2 seconds\n"
    "  --once                  serve one connection, exit with its result\n"
    "  --max-conns N           concurrent connections (default 64); at most\n"
    "                          three quarters of them still in their handshake.\n"
    "                          When all are taken, N/8+2 more wait up to 2 s for\n"
    "                          one, then are told \"server busy\" (class 6)\n"
    "  --max-handshakes-per-addr N\n"
    "                          handshakes in progress from one address (an IPv4\n"
    "                          address or an IPv6 /64; default 8)\n"
    "  --threads N             event loops, each on its own thread and ring;\n"
    "                          new senders go to the least busy (default: one\n"
    "                          per core, at most 8; --once uses one)\n"
    "  --open-threads N        threads that open and hash the records of one\n"
    "                          loop, the loop included: its workers take the\n"
    "                          records of a signed stream while the server has\n"
    "                          fewer connections than cores (default: one per core,\n"
    "                          at most 8; 0 or 1: every record on its loop)\n"
    "  --overwrite             replace existing files\n"
    "  --no-direct             write every file through the page cache (default:\n"
    "                          files of 4 MiB or more use direct I/O where the\n"
    "                          file system supports it)\n"
    "  --require-signed        refuse senders that do not sign their files\n"
    "                          (send --no-sign): they exit 3\n"
    "  --io KIND               auto (default), uring or poll\n"
    "  --max-record SIZE       largest record accepted (default 16M)\n"
    "  --handshake-timeout S   seconds from accept to an authenticated peer\n"
    "                          (default 10)\n"
    "  --idle-timeout S        seconds (default 60)\n"
    "  --partial-ttl DURATION  how long the part of a broken transfer is held for\n"
    "                          a resume: N with s, m, h or d (default 7d)\n"
    "  --export DIR            read-only files for `sxfer get` and `sxfer ls`: an\n"
    "                          identity NAME may read DIR/NAME/ and DIR/shared/\n"
    "                          (and, without --export too, what it uploaded, as\n"
    "                          uploads/); symlinks and paths leading out are refused\n"
    "  --compress MODE         zstd per record of what the server sends (get):\n"
    "                          auto (default), on, off or a level 1-19\n"
    "  --receipts DIR          keep the signed receipts of `get` clients in DIR\n"
    "                          (default: each verified receipt is only logged)\n"
    "  --ledger FILE           the ledger of identities, sessions, files and\n"
    "                          receipts, in SQLite (default: DIR.ledger.sqlite,\n"
    "                          beside DIR, never in it; docs/LEDGER.md)\n"
    "  --no-ledger             keep no ledger\n"
    "  --port-file FILE        write the bound port to FILE once listening\n"
    "  --pass-file FILE        passphrase of the identity key (or SXFER_PASSPHRASE)\n"
    "  --metrics ADDR:PORT     Prometheus metrics at http://ADDR:PORT/metrics on a\n"
    "                          listener of their own (default: none). Plain HTTP,\n"
    "                          no authentication: only a loopback address\n"
    "                          (127.0.0.1, ::1) is taken without --metrics-public\n"
    "  --metrics-public        allow --metrics on any address (keep it behind a\n"
    "                          firewall: anyone who reaches it reads the metrics)\n"
    "  --metrics-port-file FILE  write the metrics port to FILE once listening\n"
    "  --metrics-per-device N  series per device for the N devices that stored the\n"
    "                          most bytes, the rest summed as device=\"other\"\n"
    "                          (1 to 1000; default: no series per device)\n"
    "  --log-format FMT        log lines as logfmt (default) or json, one object\n"
    "                          per line (docs/METRICS.md; every command takes it)\n"
    "\n"
    "Chat (`sxfer chat`; docs/PROTOCOL.md \"Chat\"):\n"
    "  --chat                  relay signed chat messages between connected\n"
    "                          identities (default: off; a chat client is told so)\n"
    "  --chat-dir DIR          the server's chat transcript and the queues of\n"
    "                          offline identities (default: the state folder's\n"
    "                          chat-server/)\n"
    "  --chat-max-text SIZE    the largest text of one message (default 64K,\n"
    "                          at most 1M)\n"
    "  --chat-rate N           messages per second per identity, a burst of 2N\n"
    "                          (default 10)\n"
    "  --chat-max-to N         members of a direct conversation (default 32)\n"
    "  --chat-queue-max N      messages waiting for one offline identity\n"
    "                          (default 1000)\n"
    "  --chat-queue-age DURATION  how long they wait: N with s, m, h or d\n"
    "                          (default 7d)\n"
    "\n"
    "Per-device limits (for every device; --device NAME.KEY=VALUE, or the key\n"
    "device.NAME.KEY in the file, for one name; 'none' lifts a limit):\n"
    "  --max-conns-per-device N  connections at once of one identity; one more is\n"
    "                          refused after its handshake, told why\n"
    "  --max-file-size SIZE    the largest file (512M, 10G); a larger one is refused\n"
    "                          at its FILE_BEGIN, before its data (a stream once\n"
    "                          it passes SIZE)\n"
    "  --quota-per-day SIZE    bytes received per identity per UTC day\n"
    "  --quota-total SIZE      bytes stored under DIR/NAME/ (counted at start and at\n"
    "                          each SIGHUP, kept up to date in between)\n"
    "  --device NAME.KEY=VALUE one of the four above for the identity NAME\n"
    "A file over a limit is refused (FILE_ERR, class 5: the sender exits 5) and\n"
    "the rest of the session goes on.\n"
    "\n"
    "Before listening it checks that the identity may serve (a valid certificate\n"
    "with serverAuth, a current CRL) and that DIR can be written, and recovers\n"
    "what a previous run that was killed left in DIR: a stream's temporary with\n"
    "a verified checkpoint becomes NAME.partial with NAME.partial.sxsig, the\n"
    "temporary of a file of known size becomes a held part (its whole leaves,\n"
    "offered to the same sender for a resume until --partial-ttl), any other\n"
    "temporary is removed (one log line each); expired held parts go too.\n"
    "\n"
    "Received files keep the sender's permission bits masked with the server's\n"
    "umask (usually 022); DIR and the per-sender folders are created 0750.\n"
    "\n"
    "SIGINT or SIGTERM: stop accepting, abort transfers in flight (their\n"
    "temporaries are removed) and exit 0. SIGHUP: read the CRL again now, and\n"
    "the configuration's limits (what changed is logged; other options changed\n"
    "need a restart, logged too; a file that no longer parses is refused whole).\n"
    "A new CRL is used only when it is signed by a trust anchor, is current\n"
    "and its crlNumber is higher than the last one's; otherwise the CRL in use\n"
    "stays (logged). Connections are not dropped: a device revoked while\n"
    "connected may finish its session; its new connections are refused. A CRL\n"
    "that goes stale while the server runs is logged (at once, then once a\n"
    "minute) and every new device is refused, told why (docs/REVOCATION.md).\n"
    "One log line per event on stderr.\n";

static volatile sig_atomic_t stop_flag, reload_flag;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_flag = 1;
	else
		stop_flag = 1;
}

/* N with a unit (s, m, h, d; seconds without), above 0 and at most ten
 * years. */
static int parse_ttl(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	uint64_t v, unit = 1;
	if (n == 0 || n >= sizeof(num))
		return -1;
	switch (s[n - 1]) {
	case 's':
		unit = 1;
		n--;
		break;
	case 'm':
		unit = 60;
		n--;
		break;
	case 'h':
		unit = 3600;
		n--;
		break;
	case 'd':
		unit = 86400;
		n--;
		break;
	default: break;
	}
	memcpy(num, s, n);
	num[n] = '\0';
	if (n == 0 || sx_parse_u64(num, &v) < 0 || v == 0 || v > 3650ull * 86400 / unit)
		return -1;
	*out = v * unit;
	return 0;
}

/* Long options without a letter (metrics, chat). */
enum {
	OPT_METRICS = 0x100,
	OPT_METRICS_PUBLIC,
	OPT_METRICS_PORT_FILE,
	OPT_METRICS_PER_DEVICE,
	OPT_CHAT,
	OPT_CHAT_DIR,
	OPT_CHAT_MAX_TEXT,
	OPT_CHAT_RATE,
	OPT_CHAT_MAX_TO,
	OPT_CHAT_QUEUE_MAX,
	OPT_CHAT_QUEUE_AGE
};

/* One of the options above into mc (the port file in mc->listen_ctx). */
static int metrics_opt(const sx_conf *cf, int c, const char *arg, sx_metrics_cfg *mc, sx_err *err)
{
	uint64_t v;
	switch (c) {
	case OPT_METRICS: mc->listen = optarg; break;
	case OPT_METRICS_PUBLIC: mc->public_ok = true; break;
	case OPT_METRICS_PORT_FILE: mc->listen_ctx = (void *)optarg; break;
	default:
		if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > SX_METRICS_DEVICES_MAX)
			return sx_conf_fail(
			    cf, arg, err, "--metrics-per-device: '%s' is not a number from 1 to %d",
			    optarg, SX_METRICS_DEVICES_MAX);
		mc->per_device = (unsigned)v;
	}
	return 0;
}

/* --metrics and its companions together (cfg->metrics is set in
 * serve_main, and only with --metrics). */
static int metrics_check(const sx_metrics_cfg *mc, sx_err *err)
{
	char host[256], port[32];
	if (mc->listen == NULL) {
		if (mc->public_ok || mc->per_device > 0 || mc->listen_ctx != NULL)
			return sx_fail(err, SX_E_USAGE,
				       "--metrics-public, --metrics-port-file and "
				       "--metrics-per-device need --metrics");
		return 0;
	}
	if (sx_net_split(mc->listen, host, sizeof(host), port, sizeof(port)) < 0 ||
	    sx_net_port_check(port, true) < 0)
		return sx_fail(err, SX_E_USAGE, "--metrics '%s': expected ADDR:PORT (port 0-65535)",
			       mc->listen);
	return 0;
}

static const struct option opts[] = {
    {"listen", required_argument, 0, 'l'},
    {"id", required_argument, 0, 'i'},
    {"out", required_argument, 0, 'O'},
    {"crl", required_argument, 0, 'r'},
    {"once", no_argument, 0, '1'},
    {"max-conns", required_argument, 0, 'm'},
    {"max-handshakes-per-addr", required_argument, 0, 'A'},
    {"threads", required_argument, 0, 'T'},
    {"open-threads", required_argument, 0, 'W'},
    {"overwrite", no_argument, 0, 'w'},
    {"no-direct", no_argument, 0, 'D'},
    {"require-signed", no_argument, 0, 'S'},
    {"io", required_argument, 0, 'o'},
    {"max-record", required_argument, 0, 'R'},
    {"handshake-timeout", required_argument, 0, 'H'},
    {"idle-timeout", required_argument, 0, 'I'},
    {"port-file", required_argument, 0, 'P'},
    {"export", required_argument, 0, 'E'},
    {"compress", required_argument, 0, 'z'},
    {"receipts", required_argument, 0, 'C'},
    {"pass-file", required_argument, 0, 'p'},
    {"ledger", required_argument, 0, 'L'},
    {"no-ledger", no_argument, 0, 'N'},
    {"partial-ttl", required_argument, 0, 't'},
    {"max-conns-per-device", required_argument, 0, OPT_LIM_CONNS},
    {"max-file-size", required_argument, 0, OPT_LIM_FILE_SIZE},
    {"quota-per-day", required_argument, 0, OPT_LIM_DAY},
    {"quota-total", required_argument, 0, OPT_LIM_TOTAL},
    {"device", required_argument, 0, OPT_LIM_DEVICE},
    {"metrics", required_argument, 0, OPT_METRICS},
    {"metrics-public", no_argument, 0, OPT_METRICS_PUBLIC},
    {"metrics-port-file", required_argument, 0, OPT_METRICS_PORT_FILE},
    {"metrics-per-device", required_argument, 0, OPT_METRICS_PER_DEVICE},
    {"chat", no_argument, 0, OPT_CHAT},
    {"chat-dir", required_argument, 0, OPT_CHAT_DIR},
    {"chat-max-text", required_argument, 0, OPT_CHAT_MAX_TEXT},
    {"chat-rate", required_argument, 0, OPT_CHAT_RATE},
    {"chat-max-to", required_argument, 0, OPT_CHAT_MAX_TO},
    {"chat-queue-max", required_argument, 0, OPT_CHAT_QUEUE_MAX},
    {"chat-queue-age", required_argument, 0, OPT_CHAT_QUEUE_AGE},
    SX_CONF_OPTS,
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static const char *const dotted[] = {"device", NULL};

const sx_conf_spec sx_serve_spec = {.cmd = "serve",
				    .opts = opts,
				    .shortopts = "h",
				    .default_path = SX_SERVE_CONF_DEFAULT,
				    .default_env = SX_SERVE_CONF_ENV,
				    .dotted = dotted};

/* A whole number from lo to hi, or a usage error naming the option. */
static int number(const sx_conf *cf, const char *arg, const char *name, uint64_t lo, uint64_t hi,
		  uint64_t *v, sx_err *err)
{
	if (sx_parse_u64(optarg, v) < 0 || *v < lo || *v > hi)
		return sx_conf_fail(cf, arg, err, "--%s: '%s' is not a number from %llu to %llu",
				    name, optarg, (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}

/* The options about connections and their budgets. 1: not one of them. */
static int parse_conns(const sx_conf *cf, int c, const char *arg, serve_opts *o, sx_err *err)
{
	sx_serve_cfg *cfg = &o->cfg;
	uint64_t v;
	switch (c) {
	case 'm':
		SX_GUARD(number(cf, arg, "max-conns", 1, 4096, &v, err));
		cfg->max_conns = (unsigned)v;
		return 0;
	case 'A':
		SX_GUARD(number(cf, arg, "max-handshakes-per-addr", 1, 4096, &v, err));
		cfg->hs_per_addr = (unsigned)v;
		return 0;
	case 'T':
		SX_GUARD(number(cf, arg, "threads", 1, SX_SERVE_THREADS_MAX, &v, err));
		cfg->threads = (unsigned)v;
		return 0;
	case 'W':
		SX_GUARD(number(cf, arg, "open-threads", 0, SX_OPEN_THREADS_MAX, &v, err));
		cfg->open_threads = v == 0 ? 1 : (unsigned)v; /* 0: the loop alone */
		return 0;
	case 'H':
	case 'I':
		SX_GUARD(number(cf, arg, c == 'H' ? "handshake-timeout" : "idle-timeout", 1, 86400,
				&v, err));
		*(c == 'H' ? &cfg->handshake_timeout_ms : &cfg->idle_timeout_ms) = (int)v * 1000;
		return 0;
	case 'R':
		if (sx_parse_size(optarg, &v) < 0 || v < 16384 || v > (256u << 20))
			return sx_conf_fail(cf, arg, err,
					    "--max-record: '%s' is not a size from 16K to 256M",
					    optarg);
		cfg->max_record = (uint32_t)v;
		return 0;
	case 'o':
		if (sx_io_kind_parse(optarg, &cfg->io) < 0)
			return sx_conf_fail(cf, arg, err, "--io: '%s' is not auto, uring or poll",
					    optarg);
		return 0;
	case 'z':
		if (sx_zmode_parse(optarg, &cfg->zmode, &cfg->zlevel) < 0)
			return sx_conf_fail(cf, arg, err,
					    "--compress: '%s' is not auto, on, off or a level 1-19",
					    optarg);
		return 0;
	case 't':
		if (parse_ttl(optarg, &cfg->partial_ttl_s) < 0)
			return sx_conf_fail(cf, arg, err,
					    "--partial-ttl: '%s' is not a duration above 0, e.g. "
					    "90m, 12h or 7d",
					    optarg);
		return 0;
	default: return 1;
	}
out:
	return -1;
}

/* The chat options. 1: not one of them. */
static int parse_chat(const sx_conf *cf, int c, const char *arg, serve_opts *o, sx_err *err)
{
	sx_chat_hub_cfg *ch = &o->chat;
	uint64_t v;
	switch (c) {
	case OPT_CHAT: o->chat_on = true; break;
	case OPT_CHAT_DIR: ch->dir = optarg; break;
	case OPT_CHAT_MAX_TEXT:
		if (sx_parse_size(optarg, &v) < 0 || v == 0 || v > SX_CHAT_TEXT_MAX)
			return sx_conf_fail(cf, arg, err,
					    "--chat-max-text: '%s' is not a size from 1 to 1M",
					    optarg);
		ch->max_text = (uint32_t)v;
		break;
	case OPT_CHAT_RATE:
		SX_GUARD(number(cf, arg, "chat-rate", 1, SX_CHAT_RATE_MAX, &v, err));
		ch->rate = (uint32_t)v;
		break;
	case OPT_CHAT_MAX_TO:
		SX_GUARD(number(cf, arg, "chat-max-to", 2, SX_CHAT_TO_MAX, &v, err));
		ch->max_to = (uint32_t)v;
		break;
	case OPT_CHAT_QUEUE_MAX:
		SX_GUARD(number(cf, arg, "chat-queue-max", 1, SX_CHAT_QUEUE_MAX, &v, err));
		ch->queue_max = (uint32_t)v;
		break;
	case OPT_CHAT_QUEUE_AGE:
		if (parse_ttl(optarg, &ch->queue_age_s) < 0)
			return sx_conf_fail(cf, arg, err,
					    "--chat-queue-age: '%s' is not a duration above 0, "
					    "e.g. 90m, 12h or 7d",
					    optarg);
		break;
	default: return 1;
	}
	if (c != OPT_CHAT)
		o->chat_set = true;
	return 0;
out:
	return -1;
}

/* One option (its code c, the element of cf->argv it came from). */
static int parse_one(const sx_conf *cf, int c, const char *arg, serve_opts *o, sx_err *err)
{
	sx_serve_cfg *cfg = &o->cfg;
	int rc = parse_conns(cf, c, arg, o, err);
	if (rc <= 0)
		return rc;
	rc = parse_chat(cf, c, arg, o, err);
	if (rc <= 0)
		return rc;
	switch (c) {
	case 'l': cfg->listen = optarg; break;
	case 'i': o->id_dir = optarg; break;
	case 'O': cfg->out_dir = optarg; break;
	case 'r': o->crl_file = optarg; break;
	case '1': cfg->once = true; break;
	case 'w': cfg->overwrite = true; break;
	case 'D': cfg->direct = false; break;
	case 'S': cfg->require_signed = true; break;
	case 'P': o->port_file = optarg; break;
	case 'E': cfg->export_dir = optarg; break;
	case 'C': cfg->receipts_dir = optarg; break;
	case 'p': o->ps.file = optarg; break;
	case 'L': cfg->ledger = optarg; break;
	case 'N': o->no_ledger = true; break;
	case SX_OPT_CONFIG:
	case SX_OPT_NO_CONFIG: break; /* taken by sx_conf_load */
	case OPT_LIM_CONNS:
	case OPT_LIM_FILE_SIZE:
	case OPT_LIM_DAY:
	case OPT_LIM_TOTAL:
	case OPT_LIM_DEVICE: return sx_serve_limit_opt(cf, c, optarg, arg, &o->lim, err);
	case OPT_METRICS:
	case OPT_METRICS_PUBLIC:
	case OPT_METRICS_PORT_FILE:
	case OPT_METRICS_PER_DEVICE: return metrics_opt(cf, c, arg, &o->mc, err);
	case ':': return sx_conf_fail(cf, arg, err, "%s needs a value", arg);
	default: return sx_conf_fail(cf, arg, err, "unknown option '%s'", arg);
	}
	return 0;
}

/* What the options say together. */
static int check_all(const serve_opts *o, sx_err *err)
{
	const sx_serve_cfg *cfg = &o->cfg;
	char host[256], port[32];
	if (cfg->listen == NULL || o->id_dir == NULL || cfg->out_dir == NULL)
		return sx_fail(err, SX_E_USAGE, "--listen, --id and --out are required");
	if (sx_net_split(cfg->listen, host, sizeof(host), port, sizeof(port)) < 0)
		return sx_fail(err, SX_E_USAGE, "--listen '%s': expected ADDR:PORT", cfg->listen);
	if (sx_net_port_check(port, true) < 0)
		return sx_fail(err, SX_E_USAGE, "--listen '%s': the port must be 0 to 65535",
			       cfg->listen);
	if (o->no_ledger && cfg->ledger != NULL)
		return sx_fail(err, SX_E_USAGE, "--ledger and --no-ledger exclude each other");
	if (o->chat_set && !o->chat_on)
		return sx_fail(err, SX_E_USAGE, "the --chat-* options need --chat");
	return metrics_check(&o->mc, err);
}

int sx_serve_parse(const sx_conf *cf, serve_opts *o, sx_err *err)
{
	int c;
	memset(o, 0, sizeof(*o));
	o->cfg = (sx_serve_cfg){.max_conns = 64,
				.direct = true,
				.max_record = SX_MAX_RECORD_DEFAULT,
				.handshake_timeout_ms = SX_TIMEOUT_HANDSHAKE_MS,
				.idle_timeout_ms = SX_TIMEOUT_IDLE_MS,
				.zmode = SX_ZMODE_AUTO,
				.zlevel = SX_ZLEVEL_AUTO};
	sx_chat_hub_cfg_init(&o->chat);
	optind = 0; /* a full reset of GNU getopt: sx_conf_load used it */
	opterr = 0;
	while ((c = getopt_long(cf->argc, cf->argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			o->help = true;
			return 0;
		}
		/* The element getopt just read: the option (its value too, in
		 * the "--key=value" form a file's options always have). */
		if (parse_one(cf, c, cf->argv[optind - 1], o, err) < 0)
			goto fail;
	}
	if (optind != cf->argc) {
		sx_fail(err, SX_E_USAGE, "unexpected argument '%s'", cf->argv[optind]);
		goto fail;
	}
	if (check_all(o, err) < 0)
		goto fail;
	return 0;
fail:
	sx_limits_cfg_free(&o->lim);
	return -1;
}

static int serve_main(serve_opts *o, serve_reload *rl, sx_err *err)
{
	sx_serve_cfg *cfg = &o->cfg;
	char ledger[4096], crl_path[4096];
	sx_identity id = {0};
	sx_pass pass;
	X509_CRL *crl = NULL;
	int rc = -1;
	if (!o->no_ledger && cfg->ledger == NULL) {
		SX_GUARD(sx_ledger_default_path(cfg->out_dir, ledger, sizeof(ledger), err));
		cfg->ledger = ledger;
	}
	if (o->no_ledger)
		cfg->ledger = NULL;
	sx_cli_pass_init(&pass, &o->ps);
	SX_GUARD(sx_identity_load(o->id_dir, &pass, &id, err));
	if (o->crl_file != NULL)
		SX_GUARD(sx_crl_load(o->crl_file, &crl, err));
	cfg->id = &id;
	cfg->crl = crl;
	/* The file watched for a new CRL: --crl, else the identity folder's
	 * crl.pem (which may appear later). */
	SX_ENSURE(o->crl_file != NULL || (size_t)snprintf(crl_path, sizeof(crl_path), "%s/crl.pem",
							  o->id_dir) < sizeof(crl_path),
		  err, SX_E_USAGE, "--id: the folder's path is too long");
	cfg->crl_path = o->crl_file != NULL ? o->crl_file : crl_path;
	cfg->stop = &stop_flag;
	cfg->reload = &reload_flag;
	cfg->on_listen = sx_cli_write_port;
	cfg->listen_ctx = (void *)o->port_file;
	cfg->limits = &o->lim;
	if (o->mc.listen != NULL) {
		o->mc.version = SX_VERSION;
		o->mc.on_listen = sx_cli_write_port;
		cfg->metrics = &o->mc;
	}
	if (o->chat_on)
		cfg->chat = &o->chat;
	cfg->on_reload = sx_serve_reload;
	cfg->reload_ctx = rl;
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* SIGHUP: the limits and the CRL are read again (serve_crl.c). */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sx_serve_run(cfg, err) < 0 && err->cls == SX_OK)
		sx_fail(err, SX_E_OTHER, "serve failed");
	rc = err->cls == SX_OK ? 0 : -1;
out:
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}

int sx_cmd_serve(int argc, char **argv)
{
	sx_conf cf;
	serve_opts o;
	sx_err err = {0};
	if (sx_conf_load(&sx_serve_spec, argc, argv, &cf, &err) < 0)
		return sx_cli_usage_error("serve", "%s", err.msg);
	if (sx_serve_parse(&cf, &o, &err) < 0) {
		sx_conf_free(&cf);
		return sx_cli_usage_error("serve", "%s", err.msg);
	}
	if (o.help) {
		fputs(usage, stdout);
		sx_conf_free(&cf);
		return 0;
	}
	if (cf.path[0] != '\0')
		sx_log("info", "config", "path=%s options=%d", SX_LOGQ(cf.path), cf.nfile);
	serve_reload rl = {.argc = argc, .argv = argv, .start = &cf};
	int rc = serve_main(&o, &rl, &err) < 0 ? sx_cli_report(&err) : 0;
	sx_limits_cfg_free(&o.lim);
	sx_serve_reload_free(&rl);
	sx_conf_free(&cf);
	return rc;
}
