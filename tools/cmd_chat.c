/* sxfer chat: signed messages through `sxfer serve --chat`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "engine/chat/sx_chat.h"
#include "engine/chat/sx_chat_client.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: sxfer chat --id IDDIR [options] HOST:PORT\n"
    "\n"
    "Talks to `sxfer serve --chat`: each line of standard input is one message,\n"
    "signed by this identity, to the identities of --to (a direct conversation,\n"
    "queued on the server for those offline) or to the room of --room (who is\n"
    "connected and joined). Every message received is verified against its\n"
    "author's certificate and the conversation's hash chain before it is shown\n"
    "and kept in the transcript; one that does not verify ends the session\n"
    "(exit 4). At the end a signed receipt is sent for every conversation the\n"
    "session touched. On a terminal: a prompt, /who lists who is here, /quit or\n"
    "Ctrl-D ends.\n"
    "\n"
    "options:\n"
    "  --id DIR             identity folder (key.pem, cert.pem, ca.pem, crl.pem)\n"
    "  --to NAME            a recipient (again for more): a direct conversation\n"
    "  --room ROOM          join ROOM; lines go there unless --to is given\n"
    "  --transcript FILE    the transcript (default: chat/NAME.jsonl of the state\n"
    "                       folder, NAME this identity's)\n"
    "  --json               one JSON object per line on standard output: each line\n"
    "                       kept in the transcript, and refused, members and\n"
    "                       notice events\n"
    "  --wait SECONDS       after the input ends, receive for SECONDS more\n"
    "  --count N            end once N messages of others have been received\n"
    "  --io KIND            auto (default), uring or poll\n"
    "  --server-name NAME   name the server's certificate must carry (default: HOST)\n"
    "  --crl FILE           revocation list for the server's and the authors'\n"
    "                       certificates (default: crl.pem of the identity folder)\n"
    "  --timeout SEC        connecting and joining, and the answer to each\n"
    "                       message (default 30)\n"
    "  --pass-file FILE     passphrase of the identity key (or SXFER_PASSPHRASE)\n"
    "\n"
    "examples:\n"
    "  sxfer chat --id ~/id server:7000 --room ops\n"
    "  echo 'backup done' | sxfer chat --id ~/id server:7000 --to alice --to bob\n"
    "  sxfer chat --id cam-01 server:7000 --wait 5 </dev/null   # what waits for it\n"
    "\n"
    "Exit codes: 0 ok; 1 a message was refused by the server (each refusal is\n"
    "printed); 2 usage; 3 a certificate; 4 a message, receipt or transcript that\n"
    "does not verify; 5 the transcript file or the input; 6 network.\n";

enum {
	CO_ID = 600,
	CO_TO,
	CO_ROOM,
	CO_TRANSCRIPT,
	CO_JSON,
	CO_IO,
	CO_SERVER_NAME,
	CO_CRL,
	CO_TIMEOUT,
	CO_WAIT,
	CO_COUNT,
	CO_PASS_FILE,
};

typedef struct chat_opts {
	sx_chat_cfg cfg;
	const char *id_dir, *crl_file;
	const char *to[SX_CHAT_TO_MAX];
	sx_cli_pass pass;
} chat_opts;

static int number(const char *opt, const char *arg, uint64_t max, uint64_t *v)
{
	if (sx_parse_u64(arg, v) < 0 || *v > max)
		return sx_cli_usage_error("chat", "%s: a number from 0 to %llu", opt,
					  (unsigned long long)max);
	return 0;
}

/* One option: 0 taken, or the exit code of a usage error. */
static int take(chat_opts *o, int c, const char *arg)
{
	sx_chat_cfg *cfg = &o->cfg;
	uint64_t v;
	switch (c) {
	case CO_ID: o->id_dir = arg; return 0;
	case CO_TO:
		if (cfg->nto == SX_CHAT_TO_MAX)
			return sx_cli_usage_error("chat", "--to: at most %d recipients",
						  SX_CHAT_TO_MAX);
		o->to[cfg->nto++] = arg;
		return 0;
	case CO_ROOM: cfg->room = arg; return 0;
	case CO_TRANSCRIPT: cfg->transcript = arg; return 0;
	case CO_JSON: cfg->json = true; return 0;
	case CO_IO:
		if (sx_io_kind_parse(arg, &cfg->io) < 0)
			return sx_cli_usage_error("chat", "--io: auto, uring or poll");
		return 0;
	case CO_SERVER_NAME: cfg->server_name = arg; return 0;
	case CO_CRL: o->crl_file = arg; return 0;
	case CO_TIMEOUT:
		if (number("--timeout", arg, 86400, &v) != 0 || v == 0)
			return sx_cli_usage_error("chat", "--timeout: seconds, 1 to 86400");
		cfg->timeout_ms = (int)v * 1000;
		return 0;
	case CO_WAIT:
		if (number("--wait", arg, 86400, &v) != 0)
			return 2;
		cfg->wait_ms = (int)v * 1000;
		return 0;
	case CO_COUNT:
		if (number("--count", arg, 1000000000, &v) != 0)
			return 2;
		cfg->count = v;
		return 0;
	case CO_PASS_FILE: o->pass.file = arg; return 0;
	default: return sx_cli_usage_error("chat", "unknown option");
	}
}

/* The names the options give: checked before anything is opened. */
static int check_names(const chat_opts *o)
{
	sx_err bad = {0};
	for (size_t i = 0; i < o->cfg.nto; i++)
		if (sx_chat_name_check(o->to[i], strlen(o->to[i]), &bad) < 0)
			return sx_cli_usage_error("chat", "--to '%s': %s", SX_TEXT(o->to[i]),
						  bad.msg);
	if (o->cfg.room != NULL && sx_chat_name_check(o->cfg.room, strlen(o->cfg.room), &bad) < 0)
		return sx_cli_usage_error("chat", "--room '%s': %s", SX_TEXT(o->cfg.room), bad.msg);
	return 0;
}

static int parse(chat_opts *o, int argc, char **argv, char *host, char *port)
{
	static const struct option opts[] = {
	    {"id", required_argument, 0, CO_ID},
	    {"to", required_argument, 0, CO_TO},
	    {"room", required_argument, 0, CO_ROOM},
	    {"transcript", required_argument, 0, CO_TRANSCRIPT},
	    {"json", no_argument, 0, CO_JSON},
	    {"io", required_argument, 0, CO_IO},
	    {"server-name", required_argument, 0, CO_SERVER_NAME},
	    {"crl", required_argument, 0, CO_CRL},
	    {"timeout", required_argument, 0, CO_TIMEOUT},
	    {"wait", required_argument, 0, CO_WAIT},
	    {"count", required_argument, 0, CO_COUNT},
	    {"pass-file", required_argument, 0, CO_PASS_FILE},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if ((rc = take(o, c, optarg)) != 0)
			return rc;
	}
	if (o->id_dir == NULL)
		return sx_cli_usage_error("chat", "--id is required");
	if (argc - optind != 1)
		return sx_cli_usage_error("chat", "expected HOST:PORT");
	if (sx_net_split(argv[optind], host, 256, port, 32) < 0)
		return sx_cli_usage_error("chat", "'%s': expected HOST:PORT",
					  SX_TEXT(argv[optind]));
	if (sx_net_port_check(port, false) < 0)
		return sx_cli_usage_error("chat", "'%s': the port must be 1 to 65535",
					  SX_TEXT(argv[optind]));
	return check_names(o) != 0 ? 2 : -1;
}

/* With --json, the session's last object: how it ended. */
static void end_json(const sx_chat_result *res, const sx_err *err, int rc)
{
	printf("{\"type\":\"end\",\"exit\":%d,\"posted\":%llu,\"received\":%llu,"
	       "\"refused\":%llu,\"receipts\":%llu,\"transcript\":",
	       rc, (unsigned long long)res->posted, (unsigned long long)res->received,
	       (unsigned long long)res->refused, (unsigned long long)res->receipts);
	sx_cli_json_str(res->transcript);
	if (err->cls != SX_OK) {
		printf(",\"message\":");
		sx_cli_json_str(err->msg);
	}
	printf("}\n");
	fflush(stdout);
}

int sx_cmd_chat(int argc, char **argv)
{
	static chat_opts o;
	char host[256], port[32];
	memset(&o, 0, sizeof(o));
	int rc = parse(&o, argc, argv, host, port);
	if (rc >= 0)
		return rc;
	sx_chat_cfg *cfg = &o.cfg;
	sx_err err = {0};
	sx_identity id = {0};
	X509_CRL *crl = NULL;
	sx_chat_result res = {0};
	sx_pass pass;
	cfg->host = host;
	cfg->port = port;
	cfg->to = o.to;
	cfg->in_fd = STDIN_FILENO;
	cfg->out = stdout;
	cfg->diag = stderr;
	cfg->interactive = !cfg->json && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	sx_cli_pass_init(&pass, &o.pass);
	if (sx_identity_load(o.id_dir, &pass, &id, &err) < 0 ||
	    (o.crl_file != NULL && sx_crl_load(o.crl_file, &crl, &err) < 0))
		goto done;
	cfg->id = &id;
	cfg->crl = crl;
	if (sx_chat_run(cfg, &res, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "chat failed");
done:
	rc = err.cls != SX_OK ? (int)err.cls : res.refused > 0 ? 1 : 0;
	if (cfg->json)
		end_json(&res, &err, rc);
	if (err.cls != SX_OK)
		sx_cli_report(&err);
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}
