/* tools/: the sxfer command line. Parses flags, builds a configuration, calls
 * one engine or pki entry and maps the error class to the exit code. */
#ifndef SX_CLI_H
#define SX_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "common/sx_err.h"
#include "pki/sx_pki.h"

typedef struct sx_cmd {
	const char *name;
	int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
	const char *summary;
} sx_cmd;

int sx_cmd_ca(int argc, char **argv);
int sx_cmd_id(int argc, char **argv);
int sx_cmd_serve(int argc, char **argv);
int sx_cmd_send(int argc, char **argv);
int sx_cmd_agent(int argc, char **argv); /* the camera upload agent */
int sx_cmd_get(int argc, char **argv);
int sx_cmd_ls(int argc, char **argv);
int sx_cmd_chat(int argc, char **argv);
int sx_cmd_sign(int argc, char **argv);
int sx_cmd_verify(int argc, char **argv);
int sx_cmd_bench(int argc, char **argv);
int sx_cmd_bench_fleet(int argc, char **argv);	    /* sxfer bench fleet */
int sx_cmd_bench_handshakes(int argc, char **argv); /* sxfer bench handshakes */
int sx_cmd_bench_pipe(int argc, char **argv);	    /* sxfer bench pipe */
int sx_cmd_ledger(int argc, char **argv);
int sx_cmd_ca_serve(int argc, char **argv); /* sxfer ca serve */
int sx_cmd_enroll(int argc, char **argv);
int sx_cmd_renew(int argc, char **argv);
int sx_cmd_crl(int argc, char **argv);

/* Prints "sxfer: <message>" on stderr and returns the exit code of the class. */
int sx_cli_report(const sx_err *err);

/* Prints "sxfer <cmd>: <message>" and the hint to use --help; returns 2. */
int sx_cli_usage_error(const char *cmd, const char *fmt, ...) SX_PRINTF(2, 3);

/* Writes s as a JSON string on standard output: quoted and escaped
 * (common/sx_esc.h, SX_ESC_JSON), valid UTF-8 JSON for any bytes. */
void sx_cli_json_str(const char *s);

/* Passphrase source for pki: SXFER_PASSPHRASE, then --pass-file, then a
 * no-echo prompt on the terminal. A new identity key of `ca issue`
 * (identity): --id-pass-file, then SXFER_ID_PASSPHRASE, then a prompt (never
 * the CA key's passphrase). */
typedef struct sx_cli_pass {
	const char *file;   /* --pass-file (--id-pass-file) or NULL */
	bool none;	    /* --no-passphrase */
	bool identity;	    /* the new identity key of ca issue */
	const char *prompt; /* the prompt's words; NULL: "Passphrase" */
	bool have;	    /* sx_cli_pass_ask: kept in buf until sx_cli_pass_wipe */
	int len;
	char buf[1024];
} sx_cli_pass;

void sx_cli_pass_init(sx_pass *out, sx_cli_pass *src);
/* Asks (reads) the passphrase now, so that it is known before a lock is
 * taken (`ca issue` asks a new identity key's under the CA's lock, which
 * `ca serve` waits for); pki then gets it from src without asking. */
int sx_cli_pass_ask(sx_cli_pass *src, bool confirm, sx_err *err) SX_MUST_CHECK;
void sx_cli_pass_wipe(sx_cli_pass *src);

/* Second-level commands ("sxfer ca init"): one table, usage generated from
 * it. argv[0] is the command name ("ca"). */
typedef struct sx_subcmd {
	const char *name;
	int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
	const char *help;
} sx_subcmd;

int sx_cli_dispatch(const char *cmd, const sx_subcmd *tab, size_t n, int argc, char **argv);

/* Parses a --days value (1..36500); returns 0 or prints a usage error and
 * returns 2. */
int sx_cli_days(const char *cmd, const char *s, unsigned *out);

/* A byte count for people: "1.5 GiB" (binary units, one decimal). */
void sx_cli_human(double v, char *buf, size_t cap);

/* A server's on_listen: the bound port into the file ctx names (atomically;
 * nothing when ctx is NULL; a failure is logged). */
void sx_cli_write_port(void *ctx, int port);

#endif
