/* sxfer ca: a small certificate authority (docs/PKI.md). Flag parsing and
 * printing only; the work is in pki/ca.c. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/sx_esc.h"
#include "pki/sx_ca.h"
#include "tools/args.h"

#define PASS_HELP                                                                                  \
	"  --pass-file F    read the passphrase from F (else SXFER_PASSPHRASE, else a prompt)\n"   \
	"  --no-passphrase  write the new private key unencrypted\n"

static int report_fail(sx_err *err)
{
	return sx_cli_report(err);
}

static void note_plain_key(const sx_args *a, const char *path)
{
	if (a->pass_src.none)
		fprintf(stderr, "sxfer: note: %s is NOT encrypted (--no-passphrase)\n", path);
}

static int ca_init(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca init --ca DIR [--name CN] [--key-type p256|ed25519|rsa3072] "
	    "[--days N]\n"
	    "Creates a CA folder with a self-signed root (refuses an existing CA).\n"
	    "  --ca DIR         the CA folder to create\n"
	    "  --name CN        the root's common name (default \"sxfer CA\")\n"
	    "  --key-type T     p256 (default), ed25519 or rsa3072\n"
	    "  --days N         validity of the root (default 3650)\n" PASS_HELP;
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("key-type", required_argument, OPT_KEY_TYPE),
					     SX_OPT("days", required_argument, OPT_DAYS),
					     SX_OPT_PASS,
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	int rc = sx_args_parse("ca init", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca init", "--ca DIR");
	if (a.npos > 0)
		return sx_cli_usage_error("ca init", "unexpected argument '%s'", a.pos[0]);
	if (sx_ca_init(a.ca, a.name ? a.name : "sxfer CA", a.key_type, a.days, &a.pass, &err) < 0)
		return report_fail(&err);
	printf("created CA '%s' (%s) in %s\n", a.name ? a.name : "sxfer CA",
	       sx_key_type_name(a.key_type), a.ca);
	note_plain_key(&a, "the CA key");
	return 0;
}

static int parse_role(const char *cmd, const char *s, sx_profile *out)
{
	if (s == NULL)
		return sx_args_need(cmd, "--role server|client|both");
	if (sx_profile_parse(s, out) < 0)
		return sx_cli_usage_error(cmd, "--role must be server, client or both, not '%s'",
					  s);
	return -1;
}

static void print_issued(X509 *cert, const char *where)
{
	char serial[80], name[SX_NAME_MAX * 4 + 1], until[32];
	sx_err e = {0};
	sx_cert_serial_hex(cert, serial, sizeof(serial));
	if (sx_cert_name(cert, name, sizeof(name), &e) < 0)
		snprintf(name, sizeof(name), "?");
	sx_asn1_time_format(X509_get0_notAfter(cert), until, sizeof(until));
	printf("issued '%s' (%s), serial %s, valid until %s -> %s\n", name, sx_cert_role(cert),
	       serial, until, where);
}

static int ca_issue(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca issue --ca DIR --name NAME --role server|client|both\n"
	    "                      [--dns HOST]... [--ip ADDR]... --out IDDIR [--days N]\n"
	    "                      [--key-type p256|ed25519|rsa3072]\n"
	    "Creates a key and a certificate straight into an identity folder\n"
	    "(key.pem, cert.pem, ca.pem, and crl.pem when the CA has one).\n"
	    "  --dns, --ip      subjectAltName entries (repeatable; servers need one)\n"
	    "  --days N         validity (default 397, never beyond the CA's)\n" PASS_HELP
	    "The same passphrase source unlocks the CA key and encrypts the new key.\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("role", required_argument, OPT_ROLE),
					     SX_OPT("dns", required_argument, OPT_DNS),
					     SX_OPT("ip", required_argument, OPT_IP),
					     SX_OPT("out", required_argument, OPT_OUT),
					     SX_OPT("days", required_argument, OPT_DAYS),
					     SX_OPT("key-type", required_argument, OPT_KEY_TYPE),
					     SX_OPT_PASS,
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_ca ca;
	X509 *cert = NULL;
	sx_cert_spec spec = {0};
	int rc = sx_args_parse("ca issue", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca issue", "--ca DIR");
	if (a.name == NULL)
		return sx_args_need("ca issue", "--name NAME");
	if (a.out == NULL)
		return sx_args_need("ca issue", "--out IDDIR");
	if ((rc = parse_role("ca issue", a.role, &spec.profile)) >= 0)
		return rc;
	if (a.npos > 0)
		return sx_cli_usage_error("ca issue", "unexpected argument '%s'", a.pos[0]);
	spec.name = a.name;
	spec.dns = a.dns;
	spec.ndns = a.ndns;
	spec.ips = a.ips;
	spec.nips = a.nips;
	if (sx_ca_open(a.ca, &a.pass, &ca, &err) < 0)
		return report_fail(&err);
	rc = sx_ca_issue_identity(&ca, &spec, a.key_type, a.days, a.out, &a.pass, &cert, &err);
	sx_ca_close(&ca);
	if (rc < 0)
		return report_fail(&err);
	print_issued(cert, a.out);
	note_plain_key(&a, "the new key.pem");
	X509_free(cert);
	return 0;
}

/* ca sign names the certificate itself: the CSR's CN is only a hint. */
static int need_name(const char *csr_path)
{
	X509_REQ *req = NULL;
	char cn[SX_NAME_MAX * 4 + 1];
	sx_err err = {0};
	int rc;
	if (sx_csr_load(csr_path, &req, &err) == 0 && sx_csr_name(req, cn, sizeof(cn), &err) == 0)
		rc = sx_cli_usage_error("ca sign",
					"--name NAME is required (the CSR asks for '%s': give "
					"--name '%s' if that is the identity's name)",
					cn, cn);
	else
		rc = sx_args_need("ca sign", "--name NAME");
	X509_REQ_free(req);
	return rc;
}

static int ca_sign(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca sign --ca DIR --csr FILE --name NAME --role server|client|both\n"
	    "                     [--dns HOST]... [--ip ADDR]... --out CERT [--days N]\n"
	    "Verifies the CSR's self-signature and issues a certificate for its key from\n"
	    "these options only (the CSR's name and extensions are not used); a server\n"
	    "certificate with no --dns/--ip gets NAME as its DNS name.\n"
	    "  --pass-file F    read the CA key's passphrase from F\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("csr", required_argument, OPT_CSR),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("role", required_argument, OPT_ROLE),
					     SX_OPT("dns", required_argument, OPT_DNS),
					     SX_OPT("ip", required_argument, OPT_IP),
					     SX_OPT("out", required_argument, OPT_OUT),
					     SX_OPT("days", required_argument, OPT_DAYS),
					     SX_OPT_PASS,
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_ca ca;
	X509 *cert = NULL;
	sx_cert_spec spec = {0};
	int rc = sx_args_parse("ca sign", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca sign", "--ca DIR");
	if (a.csr == NULL)
		return sx_args_need("ca sign", "--csr FILE");
	if (a.out == NULL)
		return sx_args_need("ca sign", "--out CERT");
	if ((rc = parse_role("ca sign", a.role, &spec.profile)) >= 0)
		return rc;
	if (a.npos > 0)
		return sx_cli_usage_error("ca sign", "unexpected argument '%s'", a.pos[0]);
	if (a.name == NULL)
		return need_name(a.csr);
	spec.name = a.name;
	spec.dns = a.dns;
	spec.ndns = a.ndns;
	spec.ips = a.ips;
	spec.nips = a.nips;
	if (sx_ca_open(a.ca, &a.pass, &ca, &err) < 0)
		return report_fail(&err);
	rc = sx_ca_sign_csr(&ca, a.csr, &spec, a.days, a.out, &cert, &err);
	sx_ca_close(&ca);
	if (rc < 0)
		return report_fail(&err);
	print_issued(cert, a.out);
	X509_free(cert);
	return 0;
}

static int ca_revoke(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca revoke --ca DIR (--serial HEX | --cert FILE) [--reason R]\n"
	    "Marks a certificate revoked in the CA's index; run 'sxfer ca crl' to publish.\n"
	    "  --reason R       unspecified (default), keyCompromise, cACompromise,\n"
	    "                   affiliationChanged, superseded, cessationOfOperation,\n"
	    "                   privilegeWithdrawn\n"
	    "  --pass-file F    read the CA key's passphrase from F\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("serial", required_argument, OPT_SERIAL),
					     SX_OPT("cert", required_argument, OPT_CERT),
					     SX_OPT("reason", required_argument, OPT_REASON),
					     SX_OPT_PASS,
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_ca ca;
	int reason = 0;
	char serial[80];
	STACK_OF(X509) *certs = NULL;
	int rc = sx_args_parse("ca revoke", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca revoke", "--ca DIR");
	if ((a.serial == NULL) == (a.cert == NULL))
		return sx_cli_usage_error("ca revoke", "give exactly one of --serial and --cert");
	if (a.reason != NULL && sx_crl_reason_parse(a.reason, &reason) < 0)
		return sx_cli_usage_error("ca revoke", "unknown --reason '%s'", a.reason);
	if (a.npos > 0)
		return sx_cli_usage_error("ca revoke", "unexpected argument '%s'", a.pos[0]);
	if (a.cert != NULL) {
		if (sx_certs_load(a.cert, &certs, &err) < 0)
			return report_fail(&err);
		sx_cert_serial_hex(sk_X509_value(certs, 0), serial, sizeof(serial));
		sk_X509_pop_free(certs, X509_free);
	} else {
		snprintf(serial, sizeof(serial), "%s", a.serial);
	}
	if (sx_ca_open(a.ca, &a.pass, &ca, &err) < 0)
		return report_fail(&err);
	rc = sx_ca_revoke(&ca, serial, reason, &err);
	sx_ca_close(&ca);
	if (rc < 0)
		return report_fail(&err);
	printf("revoked serial %s (%s); run 'sxfer ca crl' to publish a new CRL\n", serial,
	       sx_crl_reason_name(reason));
	return 0;
}

static int ca_crl(int argc, char **argv)
{
	static const char usage[] = "usage: sxfer ca crl --ca DIR --out FILE [--days N]\n"
				    "Issues the next CRL (also kept as DIR/crl.pem).\n"
				    "  --days N         nextUpdate, days from now (default 7)\n"
				    "  --pass-file F    read the CA key's passphrase from F\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("out", required_argument, OPT_OUT),
					     SX_OPT("days", required_argument, OPT_DAYS),
					     SX_OPT_PASS,
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_ca ca;
	X509_CRL *crl = NULL;
	char next[32];
	int rc = sx_args_parse("ca crl", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca crl", "--ca DIR");
	if (a.out == NULL)
		return sx_args_need("ca crl", "--out FILE");
	if (a.npos > 0)
		return sx_cli_usage_error("ca crl", "unexpected argument '%s'", a.pos[0]);
	if (sx_ca_open(a.ca, &a.pass, &ca, &err) < 0)
		return report_fail(&err);
	rc = sx_ca_crl(&ca, a.days, &crl, &err);
	sx_ca_close(&ca);
	if (rc == 0)
		rc = sx_crl_save(a.out, crl, &err);
	if (rc < 0) {
		X509_CRL_free(crl);
		return report_fail(&err);
	}
	sx_asn1_time_format(X509_CRL_get0_nextUpdate(crl), next, sizeof(next));
	printf("CRL with %d revoked certificate(s), nextUpdate %s -> %s\n",
	       sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), next, a.out);
	X509_CRL_free(crl);
	return 0;
}

static int ca_list(int argc, char **argv)
{
	static const char usage[] = "usage: sxfer ca list --ca DIR\n"
				    "Lists issued certificates: serial, name, role, notAfter, "
				    "status (valid, revoked, expired).\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA), SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_ca_db db;
	time_t now = time(NULL);
	int rc = sx_args_parse("ca list", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca list", "--ca DIR");
	if (a.npos > 0)
		return sx_cli_usage_error("ca list", "unexpected argument '%s'", a.pos[0]);
	if (sx_ca_list(a.ca, &db, &err) < 0)
		return report_fail(&err);
	printf("%-32s  %-7s  %-20s  %-8s  %s\n", "SERIAL", "ROLE", "NOT AFTER", "STATUS", "NAME");
	for (size_t i = 0; i < db.n; i++) {
		const sx_ca_entry *e = &db.e[i];
		char until[32];
		const char *status = e->revoked_at	  ? "revoked"
				     : e->not_after < now ? "expired"
							  : "valid";
		sx_time_format(e->not_after, until, sizeof(until));
		printf("%-32s  %-7s  %-20s  %-8s  %s\n", e->serial, sx_profile_name(e->profile),
		       until, status, SX_TEXT(e->name));
	}
	sx_ca_db_free(&db);
	return 0;
}

static const sx_subcmd ca_cmds[] = {
    {"init", ca_init, "create a CA folder with a self-signed root"},
    {"issue", ca_issue, "create a key and certificate into an identity folder"},
    {"sign", ca_sign, "issue a certificate for a CSR"},
    {"revoke", ca_revoke, "revoke a certificate by serial or file"},
    {"crl", ca_crl, "issue the next CRL"},
    {"list", ca_list, "list issued certificates and their status"},
};

int sx_cmd_ca(int argc, char **argv)
{
	return sx_cli_dispatch("ca", ca_cmds, sizeof(ca_cmds) / sizeof(ca_cmds[0]), argc, argv);
}
