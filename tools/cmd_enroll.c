/* sxfer enroll, sxfer renew, sxfer crl fetch: the clients of `sxfer ca
 * serve` (docs/PKI.md "Enrollment service, renewal and CRL distribution").
 * Flag parsing and printing only; the work is in engine/enroll. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "engine/enroll/sx_enroll.h"
#include "tools/cli.h"

#define NET_HELP                                                                                   \
	"  --server-name NAME   name the service's certificate must carry (default: HOST)\n"       \
	"  --timeout SEC        network timeout (default 30)\n"                                    \
	"  --json               print one JSON object on standard output\n"

/* What the three network commands share. */
typedef struct net_opts {
	sx_enroll_net net;
	char host[256], port[32];
	bool json;
	sx_cli_pass ps;
} net_opts;

/* --server-name, --timeout, --json, --pass-file: 1 when c was one. */
static int net_opt(const char *cmd, int c, net_opts *n, int *rc)
{
	uint64_t v;
	switch (c) {
	case 'n': n->net.server_name = optarg; return 1;
	case 't':
		if (sx_parse_u64(optarg, &v) < 0 || v == 0 || v > 86400) {
			*rc = sx_cli_usage_error(cmd, "--timeout: seconds, 1 to 86400");
			return 1;
		}
		n->net.timeout_ms = (int)v * 1000;
		return 1;
	case 'j': n->json = true; return 1;
	case 'p': n->ps.file = optarg; return 1;
	default: return 0;
	}
}

#define NET_OPTS                                                                                   \
	{"server-name", required_argument, 0, 'n'}, {"timeout", required_argument, 0, 't'},        \
	    {"json", no_argument, 0, 'j'}, {"pass-file", required_argument, 0, 'p'},               \
	{                                                                                          \
		"help", no_argument, 0, 'h'                                                        \
	}

/* The one positional argument, HOST:PORT. */
static int net_target(const char *cmd, int argc, char **argv, net_opts *n)
{
	if (argc - optind != 1)
		return sx_cli_usage_error(cmd, "expected HOST:PORT (once)");
	if (sx_net_split(argv[optind], n->host, sizeof(n->host), n->port, sizeof(n->port)) < 0 ||
	    sx_net_port_check(n->port, false) < 0)
		return sx_cli_usage_error(cmd, "'%s': expected HOST:PORT (port 1-65535)",
					  argv[optind]);
	n->net.host = n->host;
	n->net.port = n->port;
	return -1;
}

static void json_field(const char *key, const char *value, bool comma)
{
	printf("%s\"%s\":", comma ? "," : "", key);
	sx_cli_json_str(value);
}

/* The JSON object: result and exit, then the fields of a success. */
static void json_begin(int rc, const sx_err *err)
{
	printf("{\"result\":\"%s\",\"exit\":%d", rc ? "error" : "ok", rc);
	if (rc)
		json_field("message", err->msg, true);
}

static void json_cert(const sx_enroll_result *r)
{
	json_field("server", r->server, true);
	json_field("name", r->name, true);
	json_field("role", r->role, true);
	json_field("sans", r->sans, true);
	json_field("serial", r->serial, true);
	json_field("not_after", r->not_after, true);
	json_field("ca_fingerprint", r->ca_fp, true);
	printf(",\"crl_written\":%s", r->crl_written ? "true" : "false");
}

/* ---- sxfer enroll ------------------------------------------------------- */

static const char enroll_usage[] =
    "usage: sxfer enroll --ca-fingerprint HEX (--token T | --token-file F) HOST:PORT\n"
    "                    --out DIR [options]\n"
    "\n"
    "Makes a key here (it never leaves this machine) and asks `sxfer ca serve` for\n"
    "its certificate with a one-time token of `sxfer ca token`. The service's root\n"
    "must have the SHA-256 fingerprint HEX (`sxfer ca show` prints it): a service\n"
    "of another CA is refused before the token is sent. The request asks for the\n"
    "name, role and names of the token unless given below (the CA issues only what\n"
    "the token allows). Writes key.pem, cert.pem, ca.pem and crl.pem into DIR\n"
    "(0700; an identity already there is refused).\n"
    "\n"
    "  --ca-fingerprint HEX the root's SHA-256 fingerprint (64 hex digits, ':' allowed)\n"
    "  --token T            the token (visible in `ps`: prefer --token-file)\n"
    "  --token-file F       read the token from F ('-': standard input)\n"
    "  --out DIR            the new identity folder\n"
    "  --key-type T         p256 (default), ed25519 or rsa3072\n"
    "  --pass-file F        passphrase of the new key.pem (else SXFER_PASSPHRASE, else\n"
    "                       a prompt, asked before connecting)\n"
    "  --no-passphrase      write key.pem unencrypted\n"
    "  --name N, --role R   ask for this name, role (client, server, both)\n"
    "  --dns H, --ip A      ask for these subjectAltNames (repeatable)\n" NET_HELP;

/* The token's text from --token-file (or standard input), trimmed. */
static int read_token(const char *file, char *buf, size_t cap, sx_err *err)
{
	size_t n = 0;
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (f == NULL)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", file);
	n = fread(buf, 1, cap - 1, f);
	bool more = !feof(f) && fgetc(f) != EOF;
	if (f != stdin)
		fclose(f);
	if (more)
		return sx_fail(err, SX_E_USAGE, "%s: more than a token", file);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0)
		return sx_fail(err, SX_E_USAGE, "%s: no token", file);
	return 0;
}

static void enroll_print(int rc, const sx_err *err, const sx_enroll_result *r, const char *dir,
			 bool json)
{
	if (json) {
		json_begin(rc, err);
		if (rc == 0) {
			json_cert(r);
			json_field("out", dir, true);
		}
		printf("}\n");
	} else if (rc == 0) {
		printf("enrolled '%s' (%s%s%s), serial %s, valid until %s -> %s\n",
		       SX_TEXT(r->name), r->role, r->sans[0] ? "; " : "", SX_TEXT(r->sans),
		       r->serial, r->not_after, SX_TEXT(dir));
		printf("issued by the root %s via %s%s\n", r->ca_fp, SX_TEXT(r->server),
		       r->crl_written ? "; crl.pem written" : "");
	}
	if (rc)
		sx_cli_report(err);
}

static int enroll_opts(int argc, char **argv, sx_enroll_cfg *cfg, net_opts *n,
		       const char **token_file, const char **dns, const char **ips)
{
	static const struct option opts[] = {
	    {"ca-fingerprint", required_argument, 0, 'F'},
	    {"token", required_argument, 0, 'T'},
	    {"token-file", required_argument, 0, 'K'},
	    {"out", required_argument, 0, 'o'},
	    {"key-type", required_argument, 0, 'k'},
	    {"no-passphrase", no_argument, 0, 'N'},
	    {"name", required_argument, 0, 'a'},
	    {"role", required_argument, 0, 'r'},
	    {"dns", required_argument, 0, 'd'},
	    {"ip", required_argument, 0, 'i'},
	    NET_OPTS,
	    {0, 0, 0, 0},
	};
	int c, rc = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (net_opt("enroll", c, n, &rc)) {
			if (rc >= 0)
				return rc;
			continue;
		}
		switch (c) {
		case 'F': cfg->ca_fp = optarg; break;
		case 'T': cfg->token = optarg; break;
		case 'K': *token_file = optarg; break;
		case 'o': cfg->out_dir = optarg; break;
		case 'k':
			if (sx_key_type_parse(optarg, &cfg->key_type) < 0)
				return sx_cli_usage_error("enroll", "--key-type: p256, ed25519 or "
								    "rsa3072");
			break;
		case 'N': n->ps.none = true; break;
		case 'a': cfg->name = optarg; break;
		case 'r': cfg->role = optarg; break;
		case 'd':
		case 'i':
			if ((c == 'd' ? cfg->ndns : cfg->nips) >= 16)
				return sx_cli_usage_error("enroll", "at most 16 --dns and 16 --ip");
			if (c == 'd')
				dns[cfg->ndns++] = optarg;
			else
				ips[cfg->nips++] = optarg;
			break;
		case 'h': fputs(enroll_usage, stdout); return 0;
		default: return sx_cli_usage_error("enroll", "unknown option");
		}
	}
	return -1;
}

int sx_cmd_enroll(int argc, char **argv)
{
	sx_enroll_cfg cfg = {.key_type = SX_KEY_P256};
	net_opts n = {0};
	const char *token_file = NULL, *dns[16], *ips[16];
	char token[SX_ENROLL_TOKEN_MAX + 2];
	sx_enroll_result r = {0};
	sx_err err = {0};
	sx_pass pass;
	int rc = enroll_opts(argc, argv, &cfg, &n, &token_file, dns, ips);
	if (rc >= 0)
		return rc;
	if (cfg.ca_fp == NULL || cfg.out_dir == NULL)
		return sx_cli_usage_error("enroll", "--ca-fingerprint and --out are required");
	if ((cfg.token == NULL) == (token_file == NULL))
		return sx_cli_usage_error("enroll", "give one of --token and --token-file");
	if (n.ps.none && n.ps.file != NULL)
		return sx_cli_usage_error("enroll", "--pass-file and --no-passphrase exclude each "
						    "other");
	if ((rc = net_target("enroll", argc, argv, &n)) >= 0)
		return rc;
	cfg.dns = dns;
	cfg.ips = ips;
	cfg.net = n.net;
	sx_cli_pass_init(&pass, &n.ps);
	cfg.pass = &pass;
	if (token_file != NULL && read_token(token_file, token, sizeof(token), &err) == 0)
		cfg.token = token;
	if (err.cls == SX_OK && sx_enroll_run(&cfg, &r, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "enroll failed");
	OPENSSL_cleanse(token, sizeof(token));
	rc = err.cls == SX_OK ? 0 : (int)err.cls;
	enroll_print(rc, &err, &r, cfg.out_dir, n.json);
	if (rc == 0 && !n.json && n.ps.none)
		fprintf(stderr, "sxfer: note: %s/key.pem is NOT encrypted (--no-passphrase)\n",
			SX_TEXT(cfg.out_dir));
	return rc;
}

/* ---- sxfer renew -------------------------------------------------------- */

static const char renew_usage[] =
    "usage: sxfer renew --id DIR HOST:PORT [--new-key] [options]\n"
    "\n"
    "Asks `sxfer ca serve` for a new certificate for the identity in DIR, over\n"
    "mutual TLS with its current certificate (which must be valid: neither\n"
    "expired nor revoked; the service's certificate is checked against DIR/ca.pem).\n"
    "The new certificate has the same name, role and subjectAltNames. DIR is\n"
    "updated in place: key.pem and cert.pem are kept as key.pem.old and\n"
    "cert.pem.old until the new files are durable, then removed; crl.pem is\n"
    "replaced by the CA's current CRL.\n"
    "\n"
    "  --id DIR             the identity folder\n"
    "  --new-key            a new key of the same type (default: the CSR is signed\n"
    "                       with the current key, which stays)\n"
    "  --pass-file F        passphrase of key.pem (or SXFER_PASSPHRASE); a new key is\n"
    "                       encrypted with it too (unencrypted if key.pem is)\n" NET_HELP;

static void renew_print(int rc, const sx_err *err, const sx_enroll_result *r, const char *dir,
			bool json)
{
	if (json) {
		json_begin(rc, err);
		if (rc == 0) {
			json_cert(r);
			json_field("old_serial", r->old_serial, true);
			json_field("old_not_after", r->old_not_after, true);
			printf(",\"new_key\":%s", r->new_key ? "true" : "false");
			json_field("id", dir, true);
		}
		printf("}\n");
	} else if (rc == 0) {
		printf("renewed '%s' (%s) in %s: serial %s -> %s, valid until %s -> %s\n",
		       SX_TEXT(r->name), r->role, SX_TEXT(dir), r->old_serial, r->serial,
		       r->old_not_after, r->not_after);
		printf("%s%s\n", r->new_key ? "new key" : "same key",
		       r->crl_written ? "; crl.pem updated" : "");
	}
	if (rc)
		sx_cli_report(err);
}

/* The options of renew and crl fetch: --id DIR, the network options and,
 * for renew only, --new-key; then HOST:PORT. -1 to go on, else the exit
 * code. */
static int parse_id_net(const char *cmd, const char *usage, bool renew, int argc, char **argv,
			const char **id_dir, bool *new_key, net_opts *n)
{
	static const struct option opts[] = {
	    {"id", required_argument, 0, 'i'},
	    {"new-key", no_argument, 0, 'K'},
	    NET_OPTS,
	    {0, 0, 0, 0},
	};
	int c, rc = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (net_opt(cmd, c, n, &rc)) {
			if (rc >= 0)
				return rc;
			continue;
		}
		switch (c) {
		case 'i': *id_dir = optarg; break;
		case 'K':
			if (!renew)
				return sx_cli_usage_error(cmd, "unknown option '--new-key'");
			*new_key = true;
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error(cmd, "unknown option");
		}
	}
	if (*id_dir == NULL)
		return sx_cli_usage_error(cmd, "--id is required");
	return net_target(cmd, argc, argv, n);
}

int sx_cmd_renew(int argc, char **argv)
{
	sx_renew_cfg cfg = {0};
	net_opts n = {0};
	sx_enroll_result r = {0};
	sx_err err = {0};
	sx_pass pass;
	int rc =
	    parse_id_net("renew", renew_usage, true, argc, argv, &cfg.id_dir, &cfg.new_key, &n);
	if (rc >= 0)
		return rc;
	cfg.net = n.net;
	sx_cli_pass_init(&pass, &n.ps);
	cfg.pass = &pass;
	if (sx_renew_run(&cfg, &r, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "renew failed");
	rc = err.cls == SX_OK ? 0 : (int)err.cls;
	renew_print(rc, &err, &r, cfg.id_dir, n.json);
	return rc;
}

/* ---- sxfer crl fetch ---------------------------------------------------- */

static const char fetch_usage[] =
    "usage: sxfer crl fetch --id DIR HOST:PORT [options]\n"
    "\n"
    "Fetches the CA's current CRL from `sxfer ca serve` over mutual TLS and\n"
    "replaces DIR/crl.pem with it (atomically) once it is checked: signed by the\n"
    "CA of DIR/ca.pem, current (not past its nextUpdate), and not older than the\n"
    "crl.pem it replaces (its crlNumber does not go back).\n"
    "\n"
    "  --id DIR             the identity folder\n"
    "  --pass-file F        passphrase of key.pem (or SXFER_PASSPHRASE)\n" NET_HELP;

static void fetch_print(int rc, const sx_err *err, const sx_enroll_result *r, const char *dir,
			bool json)
{
	if (json) {
		json_begin(rc, err);
		if (rc == 0) {
			json_field("server", r->server, true);
			printf(",\"crl_number\":%llu", (unsigned long long)r->crl_number);
			if (r->had_crl)
				printf(",\"old_crl_number\":%llu",
				       (unsigned long long)r->old_crl_number);
			printf(",\"revoked\":%d,\"crl_written\":%s", r->crl_revoked,
			       r->crl_written ? "true" : "false");
			json_field("next_update", r->crl_next, true);
			json_field("id", dir, true);
		}
		printf("}\n");
	} else if (rc == 0) {
		char was[64] = "";
		if (r->had_crl)
			snprintf(was, sizeof(was), " (was %llu)",
				 (unsigned long long)r->old_crl_number);
		printf("%s/crl.pem: %s CRL number %llu%s, %d revoked, nextUpdate %s\n",
		       SX_TEXT(dir), r->crl_unchanged ? "unchanged," : "written,",
		       (unsigned long long)r->crl_number, was, r->crl_revoked, r->crl_next);
	}
	if (rc)
		sx_cli_report(err);
}

static int crl_fetch(int argc, char **argv)
{
	sx_crl_fetch_cfg cfg = {0};
	net_opts n = {0};
	sx_enroll_result r = {0};
	sx_err err = {0};
	sx_pass pass;
	bool unused = false;
	int rc =
	    parse_id_net("crl fetch", fetch_usage, false, argc, argv, &cfg.id_dir, &unused, &n);
	if (rc >= 0)
		return rc;
	cfg.net = n.net;
	sx_cli_pass_init(&pass, &n.ps);
	cfg.pass = &pass;
	if (sx_crl_fetch_run(&cfg, &r, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "crl fetch failed");
	rc = err.cls == SX_OK ? 0 : (int)err.cls;
	fetch_print(rc, &err, &r, cfg.id_dir, n.json);
	return rc;
}

static const sx_subcmd crl_cmds[] = {
    {"fetch", crl_fetch, "fetch the CA's current CRL into an identity folder"},
};

int sx_cmd_crl(int argc, char **argv)
{
	return sx_cli_dispatch("crl", crl_cmds, sizeof(crl_cmds) / sizeof(crl_cmds[0]), argc, argv);
}
