/* Option parsing shared by `sxfer ca` and `sxfer id`: one getopt_long loop,
 * one set of option codes; each subcommand lists the options it accepts. */
#ifndef SX_ARGS_H
#define SX_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "pki/sx_pki.h"
#include "tools/cli.h"

#define SX_ARGS_SAN_MAX 32

enum {
	OPT_HELP = 'h',
	OPT_CA = 256,
	OPT_NAME,
	OPT_KEY_TYPE,
	OPT_DAYS,
	OPT_PASS_FILE,
	OPT_NO_PASS,
	OPT_ROLE,
	OPT_DNS,
	OPT_IP,
	OPT_OUT,
	OPT_CSR,
	OPT_SERIAL,
	OPT_CERT,
	OPT_REASON,
	OPT_ID,
	OPT_CRL,
	OPT_AT,
	OPT_CHUNK,
	OPT_SIGNER,
	OPT_RECEIPT,
	OPT_TRANSCRIPT,
	OPT_STREAM_PREFIX,
	OPT_ID_PASS_FILE,
	OPT_TTL,
	OPT_REPLACE,
};

#define SX_OPT(name, arg, code)                                                                    \
	{                                                                                          \
		name, arg, NULL, code                                                              \
	}
#define SX_OPT_HELP SX_OPT("help", no_argument, OPT_HELP)
#define SX_OPT_PASS                                                                                \
	SX_OPT("pass-file", required_argument, OPT_PASS_FILE),                                     \
	    SX_OPT("no-passphrase", no_argument, OPT_NO_PASS)
#define SX_OPT_END                                                                                 \
	{                                                                                          \
		NULL, 0, NULL, 0                                                                   \
	}

typedef struct sx_args {
	const char *ca, *name, *out, *csr, *serial, *cert, *reason, *role, *id, *crl, *at;
	const char *chunk, *signer, *receipt, *transcript; /* sxfer sign / verify */
	bool stream_prefix;				   /* sxfer verify */
	sx_key_type key_type;
	unsigned days; /* 0: the default */
	sx_cli_pass pass_src;
	sx_pass pass;
	/* ca issue: the new identity key's own source (--id-pass-file,
	 * SXFER_ID_PASSPHRASE, a prompt); --no-passphrase applies to it. */
	sx_cli_pass id_pass_src;
	sx_pass id_pass;
	const char *ttl; /* ca token */
	bool replace;	 /* ca issue, ca sign, ca token */
	const char *dns[SX_ARGS_SAN_MAX];
	size_t ndns;
	const char *ips[SX_ARGS_SAN_MAX];
	size_t nips;
	int npos; /* positional arguments */
	char **pos;
} sx_args;

/* Returns -1 to go on, or the exit code to return now (0 after --help, 2 for
 * a usage error, which has been printed). cmd is "ca issue". When opts has
 * --id-pass-file, --no-passphrase is about the new identity key
 * (id_pass), not the key --pass-file unlocks. */
int sx_args_parse(const char *cmd, const char *usage, const struct option *opts, int argc,
		  char **argv, sx_args *a);

/* The trust of `--ca CA [--crl CRL]`: anchors from CA (a PEM file, or a
 * folder holding ca.pem); the CRL from --crl, else the folder's crl.pem when
 * CA is a folder that has one. */
int sx_args_trust(const sx_args *a, sx_policy *pol, sx_err *err) SX_MUST_CHECK;

/* "a required option is missing" usage error (returns 2). */
int sx_args_need(const char *cmd, const char *what);

#endif
