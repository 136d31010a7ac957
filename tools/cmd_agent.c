/* sxfer agent: the camera upload agent (engine/agent, docs/AGENT.md). */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/sx_state.h"
#include "common/sx_util.h"
#include "engine/agent/sx_agent.h"
#include "engine/wire/sx_wire.h"
#include "tools/cli.h"
#include "tools/config.h"
#include "tools/send_opts.h"

static const char usage[] =
    "usage: sxfer agent --id IDDIR --watch DIR [options] HOST:PORT\n"
    "       sxfer agent --config FILE [options]\n"
    "\n"
    "Watches DIR and the folders under it and uploads each file once it is\n"
    "complete (closed after writing, or moved in; never one still open for\n"
    "writing), in batches through the path of `sxfer send`, signed by default,\n"
    "each batch's receipt verified. A persistent queue in the state folder\n"
    "keeps every file sent exactly once across restarts and server outages;\n"
    "the agent waits and tries again (backoff capped by --retry-wait) for as\n"
    "long as the server cannot be reached. SIGTERM or SIGINT: stops between\n"
    "two records, the queue consistent, exit 0. docs/AGENT.md says more.\n"
    "\n"
    "  --watch DIR          the folder to watch (required)\n"
    "  --server HOST:PORT   the server (instead of the argument)\n"
    "  --config FILE        options from FILE: `key = value` lines, each key a long\n"
    "                       option's name (`server = media.example.org:7000`,\n"
    "                       `after = delete`, `include = *.mp4`); options on the\n"
    "                       command line win; --no-config reads none\n"
    "  --name NAME          the agent's name: its state is in STATE/agent/NAME\n"
    "                       (default: from the watched folder's absolute path,\n"
    "                       /srv/cam/clips giving srv-cam-clips)\n"
    "  --state DIR          the agent's state folder itself (queue.sqlite, receipts/)\n"
    "  --include GLOB       send only files whose path under DIR matches one\n"
    "                       --include (fnmatch; '*' also matches '/'; repeatable)\n"
    "  --exclude GLOB       never send files whose path matches (repeatable)\n"
    "  --batch-files N      a batch goes once N files are queued (default 100),\n"
    "  --batch-wait SEC     or SEC after its oldest file was queued (default 2;\n"
    "                       fractions such as 0.5 allowed)\n"
    "  --settle SEC         where the kernel cannot tell whether a file is open for\n"
    "                       writing (no lease), a file found by a scan waits until\n"
    "                       it is SEC unchanged (default 5)\n"
    "  --after ACTION       once a verified receipt covers a file: keep (default),\n"
    "                       delete, or move:DIR (to DIR/<path under the watched\n"
    "                       folder>; DIR outside it); never a file changed since\n"
    "                       it was sent\n"
    "  --once               send what is complete now, then exit (the exit code of\n"
    "                       the last failed batch, if one failed)\n" SX_SEND_OPTIONS_HELP "\n"
    "The state folder is $STATE_DIRECTORY, else $XDG_STATE_HOME/sxfer, else\n"
    "$HOME/.local/state/sxfer; receipts go to its agent/NAME/receipts unless\n"
    "--receipts says. Within a batch --retry defaults to 0: the agent retries.\n";

static atomic_bool stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_flag, true);
}

/* "2", "0.5", "1.25": seconds into milliseconds (at most a day). */
static int parse_ms(const char *s, int *ms)
{
	char whole[16] = {0};
	uint64_t w, f = 0;
	const char *dot = strchr(s, '.');
	size_t n = dot ? (size_t)(dot - s) : strlen(s);
	if (n == 0 || n >= sizeof(whole))
		return -1;
	memcpy(whole, s, n);
	if (sx_parse_u64(whole, &w) < 0 || w > 86400)
		return -1;
	if (dot != NULL) {
		size_t k = strlen(dot + 1);
		if (k == 0 || k > 3 || sx_parse_u64(dot + 1, &f) < 0)
			return -1;
		for (; k < 3; k++)
			f *= 10;
	}
	*ms = (int)(w * 1000 + f);
	return 0;
}

typedef struct out {
	bool json, quiet;
	const char *watch;
} out;

/* --json: one object per event on standard output. */
static void json_event(const out *o, const sx_agent_event *ev)
{
	static const char *const kinds[] = {"start", "batch", "file", "after",
					    "skip",  "wait",  "stop"};
	printf("{\"event\":\"%s\"", kinds[ev->kind]);
	if (ev->kind == SX_AEV_START) {
		printf(",\"watch\":");
		sx_cli_json_str(o->watch);
	}
	if (ev->path != NULL) {
		printf(",\"path\":");
		sx_cli_json_str(ev->path);
	}
	if (ev->result != NULL)
		printf(",\"result\":\"%s\"", ev->result);
	if (ev->kind == SX_AEV_BATCH)
		printf(",\"result\":\"%s\",\"exit\":%d,\"files\":%llu,\"stored\":%llu",
		       ev->ok ? "ok" : "error", ev->exit, (unsigned long long)ev->files,
		       (unsigned long long)ev->n);
	if (ev->kind == SX_AEV_BATCH || ev->kind == SX_AEV_FILE)
		printf(",\"batch\":%llu,\"bytes\":%llu", (unsigned long long)ev->batch,
		       (unsigned long long)ev->bytes);
	if (ev->kind == SX_AEV_BATCH)
		printf(",\"seconds\":%.3f", ev->seconds);
	if (ev->kind == SX_AEV_WAIT)
		printf(",\"wait_ms\":%llu,\"failed\":%llu,\"exit\":%d",
		       (unsigned long long)ev->wait_ms, (unsigned long long)ev->n, ev->exit);
	if (ev->kind == SX_AEV_START || ev->kind == SX_AEV_STOP)
		printf(",\"queued\":%llu", (unsigned long long)ev->files);
	if (ev->kind == SX_AEV_START)
		printf(",\"folders\":%llu", (unsigned long long)ev->n);
	if (ev->message != NULL && ev->message[0] != '\0') {
		printf(",\"message\":");
		sx_cli_json_str(ev->message);
	}
	printf("}\n");
}

static void on_event(void *ctx, const sx_agent_event *ev)
{
	const out *o = ctx;
	char b[32];
	if (o->json) {
		json_event(o, ev);
	} else if (o->quiet) {
		return;
	} else if (ev->kind == SX_AEV_START) {
		printf("watching %s: %llu folder(s), %llu file(s) queued\n", SX_TEXT(o->watch),
		       (unsigned long long)ev->n, (unsigned long long)ev->files);
	} else if (ev->kind == SX_AEV_BATCH) {
		sx_cli_human((double)ev->bytes, b, sizeof(b));
		printf("batch %llu: %llu file(s), %llu stored, %s in %.2f s: %s%s%s\n",
		       (unsigned long long)ev->batch, (unsigned long long)ev->files,
		       (unsigned long long)ev->n, b, ev->seconds, ev->ok ? "ok" : "error",
		       ev->ok ? "" : ": ", ev->ok ? "" : SX_TEXT(ev->message));
	} else if (ev->kind == SX_AEV_WAIT) {
		printf("next batch in %.1f s (%llu failed in a row)\n", ev->wait_ms / 1000.0,
		       (unsigned long long)ev->n);
	} else if (ev->kind == SX_AEV_STOP) {
		printf("stopped: %llu file(s) queued\n", (unsigned long long)ev->files);
	}
	fflush(stdout);
}

enum {
	AO_WATCH = 700,
	AO_SERVER,
	AO_NAME,
	AO_STATE,
	AO_INCLUDE,
	AO_EXCLUDE,
	AO_BATCH_WAIT,
	AO_SETTLE,
	AO_AFTER,
	AO_ONCE,
};

static const struct option opts[] = {
    SX_SEND_OPTIONS,
    {"watch", required_argument, 0, AO_WATCH},
    {"server", required_argument, 0, AO_SERVER},
    {"name", required_argument, 0, AO_NAME},
    {"state", required_argument, 0, AO_STATE},
    {"include", required_argument, 0, AO_INCLUDE},
    {"exclude", required_argument, 0, AO_EXCLUDE},
    {"batch-wait", required_argument, 0, AO_BATCH_WAIT},
    {"settle", required_argument, 0, AO_SETTLE},
    {"after", required_argument, 0, AO_AFTER},
    {"once", no_argument, 0, AO_ONCE},
    SX_CONF_OPTS,
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* No default file: each agent is told its own (sxfer-agent@NAME.service:
 * --config /etc/sxfer/agent-NAME.conf). */
static const sx_conf_spec agent_spec = {.cmd = "agent", .opts = opts, .shortopts = "h"};

typedef struct agent_opts {
	const char *name, *state, *server;
	bool help;
} agent_opts;

/* --after keep|delete|move:DIR */
static int parse_after(const char *s, sx_agent_cfg *cfg, sx_err *err)
{
	if (strcmp(s, "keep") == 0)
		cfg->after = SX_AFTER_KEEP;
	else if (strcmp(s, "delete") == 0)
		cfg->after = SX_AFTER_DELETE;
	else if (strncmp(s, "move:", 5) == 0 && s[5] != '\0') {
		cfg->after = SX_AFTER_MOVE;
		cfg->move_dir = s + 5;
	} else
		return sx_fail(err, SX_E_USAGE, "--after: '%s' is not keep, delete or move:DIR", s);
	return 0;
}

static int add_glob(const char **list, size_t *n, const char *g, const char *opt, sx_err *err)
{
	if (*n >= SX_AGENT_GLOBS_MAX)
		return sx_fail(err, SX_E_USAGE, "%s: at most %d", opt, SX_AGENT_GLOBS_MAX);
	list[(*n)++] = g;
	return 0;
}

/* One of the agent's own options: 1 not one, 0 taken, -1 a bad value. */
static int agent_opt(int c, const char *arg, sx_agent_cfg *cfg, agent_opts *ao, sx_err *err)
{
	switch (c) {
	case AO_WATCH: cfg->watch = arg; return 0;
	case AO_SERVER: ao->server = arg; return 0;
	case AO_NAME: ao->name = arg; return 0;
	case AO_STATE: ao->state = arg; return 0;
	case AO_INCLUDE: return add_glob(cfg->include, &cfg->ninclude, arg, "--include", err);
	case AO_EXCLUDE: return add_glob(cfg->exclude, &cfg->nexclude, arg, "--exclude", err);
	case AO_BATCH_WAIT:
		if (parse_ms(arg, &cfg->batch_wait_ms) < 0)
			return sx_fail(err, SX_E_USAGE,
				       "--batch-wait: '%s' is not seconds such as 2 or 0.5", arg);
		return 0;
	case AO_SETTLE:
		if (parse_ms(arg, &cfg->settle_ms) < 0)
			return sx_fail(err, SX_E_USAGE,
				       "--settle: '%s' is not seconds such as 5 or 0.5", arg);
		return 0;
	case AO_AFTER: return parse_after(arg, cfg, err);
	case AO_ONCE: cfg->once = true; return 0;
	case SX_OPT_CONFIG:
	case SX_OPT_NO_CONFIG: return 0; /* taken by sx_conf_load */
	case 'h': ao->help = true; return 0;
	case ':': return sx_fail(err, SX_E_USAGE, "%s needs a value", arg);
	default: return 1;
	}
}

/* The agent's state folder: --state, else STATE/agent/NAME. */
static int state_folder(const sx_agent_cfg *cfg, const agent_opts *ao, char *out, size_t cap,
			sx_err *err)
{
	char root[4096], name[256];
	if (ao->state != NULL) {
		snprintf(out, cap, "%s", ao->state);
		return 0;
	}
	if (ao->name != NULL) {
		sx_err why = {0};
		if (strchr(ao->name, '/') || ao->name[0] == '.' ||
		    sx_path_check((const uint8_t *)ao->name, strlen(ao->name), &why) < 0)
			return sx_fail(err, SX_E_USAGE, "--name '%s': one plain name", ao->name);
		snprintf(name, sizeof(name), "%s", ao->name);
	} else if (sx_agent_name(cfg->watch, name, sizeof(name), err) < 0) {
		return -1;
	}
	if (snprintf(root, sizeof(root), "agent/%s", name) >= (int)sizeof(root))
		return sx_fail(err, SX_E_USAGE, "--name: too long");
	if (sx_state_dir(out, cap, root, err) < 0) {
		sx_err_prefix(err, "where to keep the agent's queue (--state DIR): ");
		return -1;
	}
	return 0;
}

/* The options of the configuration file, then the command line's: a bad
 * value names the file and line it came from. */
static int parse(const sx_conf *cf, sx_agent_cfg *cfg, sx_send_opts *so, agent_opts *ao,
		 sx_err *err)
{
	int c;
	optind = 0; /* a full reset of GNU getopt: sx_conf_load used it */
	opterr = 0;
	while ((c = getopt_long(cf->argc, cf->argv, ":h", opts, NULL)) != -1) {
		const char *arg = cf->argv[optind - 1];
		sx_err bad = {0};
		int rc = sx_send_opt(c, optarg, &cfg->send, so, &bad);
		if (rc > 0)
			rc = agent_opt(c, c == ':' ? arg : optarg, cfg, ao, &bad);
		if (rc > 0)
			return sx_conf_fail(cf, arg, err, "unknown option '%s'", arg);
		if (rc < 0)
			return sx_conf_fail(cf, arg, err, "%s", bad.msg);
		if (ao->help)
			return 0;
	}
	if (optind < cf->argc && ao->server == NULL)
		ao->server = cf->argv[optind++];
	if (optind < cf->argc)
		return sx_fail(err, SX_E_USAGE, "unexpected argument '%s'", cf->argv[optind]);
	if (so->id_dir == NULL)
		return sx_fail(err, SX_E_USAGE, "--id is required");
	if (cfg->watch == NULL)
		return sx_fail(err, SX_E_USAGE, "--watch is required");
	if (ao->server == NULL)
		return sx_fail(err, SX_E_USAGE, "expected HOST:PORT (or --server)");
	return 0;
}

/* What the options give, into cfg: the server, the batch settings, the
 * state folder. */
static int settle_cfg(sx_agent_cfg *cfg, agent_opts *ao, char host[256], char port[32], char *state,
		      size_t cap, sx_err *err)
{
	if (sx_net_split(ao->server, host, 256, port, 32) < 0 || sx_net_port_check(port, false) < 0)
		return sx_fail(err, SX_E_USAGE, "'%s': expected HOST:PORT", ao->server);
	cfg->send.host = host;
	cfg->send.port = port;
	cfg->batch_files =
	    cfg->send.batch_files ? cfg->send.batch_files : SX_AGENT_BATCH_FILES_DEFAULT;
	cfg->backoff_base_ms = cfg->send.retry_base_ms;
	cfg->backoff_max_ms = cfg->send.retry_max_ms;
	if (state_folder(cfg, ao, state, cap, err) < 0)
		return -1;
	cfg->state = state;
	return 0;
}

static int agent_main(sx_agent_cfg *cfg, sx_send_opts *so, sx_err *err)
{
	sx_identity id = {0};
	X509_CRL *crl = NULL;
	int rc = -1;
	SX_GUARD(sx_send_opts_load(so, &cfg->send, &id, &crl, err));
	sx_log_set_min(so->verbose ? "debug" : "info");
	(void)sx_cert_life_warn(&id, 0);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	cfg->stop = &stop_flag;
	if (sx_agent_run(cfg, err) < 0 && err->cls == SX_OK)
		sx_fail(err, SX_E_OTHER, "agent failed");
	rc = err->cls == SX_OK ? 0 : -1;
out:
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}

int sx_cmd_agent(int argc, char **argv)
{
	sx_agent_cfg cfg = {.batch_wait_ms = SX_AGENT_BATCH_WAIT_MS,
			    .settle_ms = SX_AGENT_SETTLE_MS};
	sx_send_opts so;
	agent_opts ao = {0};
	char host[256], port[32], state[4096];
	sx_err err = {0};
	sx_conf cf;
	int rc;
	sx_send_opts_init(&cfg.send, &so);
	cfg.send.retries = 0; /* the agent retries, batch after batch */
	if (sx_conf_load(&agent_spec, argc, argv, &cf, &err) < 0)
		return sx_cli_usage_error("agent", "%s", err.msg);
	if (parse(&cf, &cfg, &so, &ao, &err) < 0) {
		sx_conf_free(&cf);
		return sx_cli_usage_error("agent", "%s", err.msg);
	}
	if (ao.help) {
		fputs(usage, stdout);
		sx_conf_free(&cf);
		return 0;
	}
	out o = {.json = so.json, .quiet = so.quiet, .watch = cfg.watch};
	cfg.on_event = on_event;
	cfg.event_ctx = &o;
	if (cf.path[0] != '\0')
		sx_log("info", "config", "path=%s options=%d", SX_LOGQ(cf.path), cf.nfile);
	if (settle_cfg(&cfg, &ao, host, port, state, sizeof(state), &err) < 0)
		rc = err.cls == SX_E_USAGE ? sx_cli_usage_error("agent", "%s", err.msg)
					   : sx_cli_report(&err);
	else
		rc = agent_main(&cfg, &so, &err) < 0 ? sx_cli_report(&err) : 0;
	sx_conf_free(&cf);
	return rc;
}
