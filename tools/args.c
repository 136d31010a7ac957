#include "tools/args.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sx_args_need(const char *cmd, const char *what)
{
	return sx_cli_usage_error(cmd, "%s is required", what);
}

static int add_san(const char *cmd, const char *kind, const char *v, const char **list, size_t *n)
{
	if (*n >= SX_ARGS_SAN_MAX)
		return sx_cli_usage_error(cmd, "at most %d %s values", SX_ARGS_SAN_MAX, kind);
	list[(*n)++] = v;
	return -1;
}

static bool has_opt(const struct option *opts, int code)
{
	for (; opts->name != NULL; opts++)
		if (opts->val == code)
			return true;
	return false;
}

/* The passphrase options, once every option is read. */
static int pass_done(const char *cmd, const struct option *opts, sx_args *a)
{
	if (has_opt(opts, OPT_ID_PASS_FILE)) {
		a->id_pass_src.none = a->pass_src.none;
		a->pass_src.none = false;
		if (a->id_pass_src.file != NULL && a->id_pass_src.none)
			return sx_cli_usage_error(
			    cmd, "--id-pass-file and --no-passphrase exclude each other");
	}
	if (a->pass_src.file != NULL && a->pass_src.none)
		return sx_cli_usage_error(cmd,
					  "--pass-file and --no-passphrase exclude each other");
	a->id_pass_src.identity = true;
	sx_cli_pass_init(&a->pass, &a->pass_src);
	sx_cli_pass_init(&a->id_pass, &a->id_pass_src);
	return -1;
}

int sx_args_parse(const char *cmd, const char *usage, const struct option *opts, int argc,
		  char **argv, sx_args *a)
{
	int c, rc;
	memset(a, 0, sizeof(*a));
	a->key_type = SX_KEY_P256;
	optind = 0; /* full reset of GNU getopt */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP: fputs(usage, stdout); return 0;
		case OPT_CA: a->ca = optarg; break;
		case OPT_NAME: a->name = optarg; break;
		case OPT_OUT: a->out = optarg; break;
		case OPT_CSR: a->csr = optarg; break;
		case OPT_SERIAL: a->serial = optarg; break;
		case OPT_CERT: a->cert = optarg; break;
		case OPT_REASON: a->reason = optarg; break;
		case OPT_ROLE: a->role = optarg; break;
		case OPT_ID: a->id = optarg; break;
		case OPT_CRL: a->crl = optarg; break;
		case OPT_AT: a->at = optarg; break;
		case OPT_CHUNK: a->chunk = optarg; break;
		case OPT_SIGNER: a->signer = optarg; break;
		case OPT_RECEIPT: a->receipt = optarg; break;
		case OPT_TRANSCRIPT: a->transcript = optarg; break;
		case OPT_STREAM_PREFIX: a->stream_prefix = true; break;
		case OPT_PASS_FILE: a->pass_src.file = optarg; break;
		case OPT_NO_PASS: a->pass_src.none = true; break;
		case OPT_ID_PASS_FILE: a->id_pass_src.file = optarg; break;
		case OPT_TTL: a->ttl = optarg; break;
		case OPT_REPLACE: a->replace = true; break;
		case OPT_KEY_TYPE:
			if (sx_key_type_parse(optarg, &a->key_type) < 0)
				return sx_cli_usage_error(
				    cmd, "--key-type must be p256, ed25519 or rsa3072, not '%s'",
				    optarg);
			break;
		case OPT_DAYS:
			if ((rc = sx_cli_days(cmd, optarg, &a->days)) != 0)
				return rc;
			break;
		case OPT_DNS:
			if ((rc = add_san(cmd, "--dns", optarg, a->dns, &a->ndns)) >= 0)
				return rc;
			break;
		case OPT_IP:
			if ((rc = add_san(cmd, "--ip", optarg, a->ips, &a->nips)) >= 0)
				return rc;
			break;
		case ':': return sx_cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
		default: return sx_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if ((rc = pass_done(cmd, opts, a)) >= 0)
		return rc;
	a->npos = argc - optind;
	a->pos = argv + optind;
	return -1;
}

int sx_args_trust(const sx_args *a, sx_policy *pol, sx_err *err)
{
	char path[4096];
	struct stat st;
	bool dir = stat(a->ca, &st) == 0 && S_ISDIR(st.st_mode);
	if (snprintf(path, sizeof(path), dir ? "%s/ca.pem" : "%s", a->ca) >= (int)sizeof(path))
		return sx_fail(err, SX_E_IO, "%s: path too long", a->ca);
	if (sx_certs_load(path, &pol->anchors, err) < 0)
		return -1;
	if (a->crl != NULL)
		return sx_crl_load(a->crl, &pol->crl, err);
	/* An identity (or CA) folder: its CRL, as the channel uses it. */
	if (dir) {
		if (snprintf(path, sizeof(path), "%s/crl.pem", a->ca) >= (int)sizeof(path))
			return sx_fail(err, SX_E_IO, "%s: path too long", a->ca);
		if (access(path, F_OK) == 0)
			return sx_crl_load(path, &pol->crl, err);
	}
	return 0;
}
