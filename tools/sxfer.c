/* sxfer: one binary, git-style subcommands generated from one table. */
#include <liburing.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "tools/cli.h"
#include "tools/sx_version.h"

static int cmd_help(int argc, char **argv);

static const sx_cmd commands[] = {
    {"ca", sx_cmd_ca, "run a small certificate authority (init, issue, sign, revoke, crl, list)"},
    {"id", sx_cmd_id, "create, show and verify identities (key, CSR, certificate)"},
    {"enroll", sx_cmd_enroll, "get a first certificate from `ca serve` with a one-time token"},
    {"renew", sx_cmd_renew, "renew this identity's certificate at `ca serve`"},
    {"crl", sx_cmd_crl, "fetch the CA's current CRL from `ca serve` (crl fetch)"},
    {"serve", sx_cmd_serve, "receive files from authenticated senders"},
    {"send", sx_cmd_send, "send files, folders or a stream to a server"},
    {"agent", sx_cmd_agent, "watch a folder and upload each file once it is complete"},
    {"get", sx_cmd_get, "fetch files and folders from a server's export (signed by it)"},
    {"chat", sx_cmd_chat, "signed messages between identities through `serve --chat`"},
    {"ls", sx_cmd_ls, "list what this identity may get from a server"},
    {"sign", sx_cmd_sign, "sign local files offline: FILE.sxsig under one batch signature"},
    {"verify", sx_cmd_verify, "verify files against their .sxsig, or a signed receipt"},
    {"ledger", sx_cmd_ledger, "the server's ledger: devices, sessions, files; check against OUT"},
    {"bench", sx_cmd_bench, "measure this machine: crypto primitives and a loopback transfer"},
    {"help", cmd_help, "show this overview, or the help of one command"},
};

static void overview(FILE *f)
{
	fprintf(f, "usage: sxfer <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'sxfer <command> --help' for the options of one command.\n"
		   "'sxfer --version': the version, and the OpenSSL and liburing in use.\n"
		   "Every command takes --log-format logfmt|json (default logfmt, or\n"
		   "SXFER_LOG_FORMAT): its log lines on stderr as key=value pairs, or as one\n"
		   "JSON object per line with the same keys.\n"
		   "Exit codes: 0 ok, 1 other failure, 2 usage, 3 authentication or certificate,\n"
		   "            4 integrity, 5 local I/O, 6 network or timeout.\n");
}

static const sx_cmd *find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	if (argc >= 2) {
		const sx_cmd *c = find(argv[1]);
		if (c == NULL || c->main == cmd_help) {
			fprintf(stderr, "sxfer help: unknown command '%s'\n", argv[1]);
			return 2;
		}
		char *sub[] = {argv[1], "--help", NULL};
		return c->main(2, sub);
	}
	overview(stdout);
	return 0;
}

/* The version, then the libraries that do the cryptography and the I/O: a bug
 * report needs all three. OpenSSL reports the library loaded at run time. */
static int print_version(void)
{
	printf("sxfer %s\n%s\n", SX_VERSION, OpenSSL_version(OPENSSL_VERSION));
#ifdef IO_URING_VERSION_MAJOR
	printf("liburing %d.%d\n", io_uring_major_version(), io_uring_minor_version());
#else
	printf("liburing %s\n", SX_URING_BUILD_VERSION);
#endif
	return 0;
}

/* --log-format FMT (or --log-format=FMT), anywhere before a "--", is taken
 * out of argv whatever the command; without it SXFER_LOG_FORMAT. 0, or 2
 * after a usage message. */
static int take_log_format(int *argc, char **argv)
{
	const char *name = getenv("SXFER_LOG_FORMAT"), *what = "SXFER_LOG_FORMAT";
	int out = 1, i = 1;
	sx_log_format f;
	for (; i < *argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--log-format") == 0) {
			if (i + 1 == *argc)
				break;
			name = argv[++i];
			what = "--log-format";
		} else if (strncmp(argv[i], "--log-format=", 13) == 0) {
			name = argv[i] + 13;
			what = "--log-format";
		} else {
			argv[out++] = argv[i];
		}
	}
	if (i < *argc && strcmp(argv[i], "--") != 0) {
		fprintf(stderr, "sxfer: --log-format needs a value: logfmt or json\n");
		return 2;
	}
	while (i < *argc)
		argv[out++] = argv[i++];
	argv[out] = NULL;
	*argc = out;
	if (name == NULL || name[0] == '\0')
		return 0;
	if (sx_log_format_parse(name, &f) < 0) {
		fprintf(stderr, "sxfer: %s '%s': logfmt or json\n", what, SX_TEXT(name));
		return 2;
	}
	sx_log_set_format(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (take_log_format(&argc, argv) != 0)
		return 2;
	if (argc < 2) {
		overview(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return print_version();
	const sx_cmd *c = find(argv[1]);
	if (c == NULL) {
		fprintf(stderr, "sxfer: unknown command '%s'\n\n", argv[1]);
		overview(stderr);
		return 2;
	}
	return c->main(argc - 1, argv + 1);
}
