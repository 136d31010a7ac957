/* sxfer ca: a small certificate authority (docs/PKI.md). Flag parsing and
 * printing only; the work is in pki/ca.c. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/sx_esc.h"
#include "common/sx_util.h"
#include "pki/sx_ca.h"
#include "tools/args.h"

#define PASS_HELP                                                                                  \
	"  --pass-file F    read the passphrase from F (else SXFER_PASSPHRASE, else a prompt)\n"   \
	"  --no-passphrase  write the new private key unencrypted\n"

static int report_fail(sx_err *err)
{
	return sx_cli_report(err);
}

static void note_plain_key(bool plain, const char *path)
{
	if (plain)
		fprintf(stderr, "sxfer: note: %s is NOT encrypted (--no-passphrase)\n", path);
}

/* The line `id show` prints for a certificate's fingerprint. */
static int print_fp(X509 *cert, sx_err *err)
{
	uint8_t fp[SX_CERT_FP_LEN];
	char hex[SX_CERT_FP_HEX_LEN];
	if (sx_cert_fp(cert, fp, err) < 0)
		return -1;
	sx_hex(fp, sizeof(fp), hex);
	printf("SHA-256:     %s\n", hex);
	return 0;
}

/* DIR/ca.pem: the root, without the key. */
static int load_root(const char *dir, STACK_OF(X509) * *certs, sx_err *err)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/ca.pem", dir) >= (int)sizeof(path))
		return sx_fail(err, SX_E_IO, "%s: path too long", dir);
	if (access(path, F_OK) != 0)
		return sx_fail(err, SX_E_IO, "%s: not a CA folder made by 'sxfer ca init' (no %s)",
			       dir, path);
	return sx_certs_load(path, certs, err);
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
	a.pass_src.prompt = "New CA key passphrase";
	if (sx_ca_init(a.ca, a.name ? a.name : "sxfer CA", a.key_type, a.days, &a.pass, &err) < 0)
		return report_fail(&err);
	printf("created CA '%s' (%s) in %s\n", SX_TEXT(a.name ? a.name : "sxfer CA"),
	       sx_key_type_name(a.key_type), SX_TEXT(a.ca));
	note_plain_key(a.pass_src.none, "the CA key");
	STACK_OF(X509) *certs = NULL;
	if (load_root(a.ca, &certs, &err) < 0 || print_fp(sk_X509_value(certs, 0), &err) < 0) {
		sk_X509_pop_free(certs, X509_free);
		return report_fail(&err);
	}
	sk_X509_pop_free(certs, X509_free);
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
	char serial[80], name[SX_CN_MAX * 4 + 1], until[32];
	sx_err e = {0};
	sx_cert_serial_hex(cert, serial, sizeof(serial));
	if (sx_cert_name(cert, name, sizeof(name), &e) < 0)
		snprintf(name, sizeof(name), "?");
	sx_asn1_time_format(X509_get0_notAfter(cert), until, sizeof(until));
	printf("issued '%s' (%s), serial %s, valid until %s -> %s\n", name, sx_cert_role(cert),
	       serial, until, where);
}

/* What the one-name rule revoked (--replace). */
static void print_superseded(const sx_ca *ca)
{
	for (size_t i = 0; i < ca->superseded.n; i++)
		printf("revoked serial %s (superseded); run 'sxfer ca crl' to publish a new CRL\n",
		       ca->superseded.e[i].serial);
}

static int ca_issue(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca issue --ca DIR --name NAME --role server|client|both\n"
	    "                      [--dns HOST]... [--ip ADDR]... --out IDDIR [--days N]\n"
	    "                      [--key-type p256|ed25519|rsa3072] [--replace]\n"
	    "                      [--pass-file F] [--id-pass-file F | --no-passphrase]\n"
	    "Creates a key and a certificate straight into an identity folder\n"
	    "(key.pem, cert.pem, ca.pem, and crl.pem when the CA has one).\n"
	    "  --dns, --ip      subjectAltName entries (repeatable; servers need one)\n"
	    "  --days N         validity (default 397, never beyond the CA's)\n"
	    "  --replace        NAME already has a valid certificate: revoke it (superseded)\n"
	    "                   instead of refusing\n"
	    "Two keys, two passphrases; the CA's passphrase never encrypts the new key:\n"
	    "  --pass-file F    the CA key's passphrase (else SXFER_PASSPHRASE, else a prompt)\n"
	    "  --id-pass-file F the new key's passphrase (else SXFER_ID_PASSPHRASE, else a\n"
	    "                   prompt asked twice; with none of these and no terminal: an\n"
	    "                   error)\n"
	    "  --no-passphrase  write the new key unencrypted, for a device with no operator\n"
	    "                   (the CA key's passphrase is still needed)\n";
	static const struct option opts[] = {
	    SX_OPT("ca", required_argument, OPT_CA),
	    SX_OPT("name", required_argument, OPT_NAME),
	    SX_OPT("role", required_argument, OPT_ROLE),
	    SX_OPT("dns", required_argument, OPT_DNS),
	    SX_OPT("ip", required_argument, OPT_IP),
	    SX_OPT("out", required_argument, OPT_OUT),
	    SX_OPT("days", required_argument, OPT_DAYS),
	    SX_OPT("key-type", required_argument, OPT_KEY_TYPE),
	    SX_OPT("replace", no_argument, OPT_REPLACE),
	    SX_OPT("id-pass-file", required_argument, OPT_ID_PASS_FILE),
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
	spec.replace = a.replace;
	a.pass_src.prompt = "CA key passphrase";
	a.id_pass_src.prompt = "New identity key passphrase";
	/* Asked before the CA's lock is taken: `ca serve` waits for it. */
	if (sx_cli_pass_ask(&a.id_pass_src, true, &err) < 0) {
		sx_err_prefix(&err, "%s/key.pem: ", a.out);
		return report_fail(&err);
	}
	if (sx_ca_open(a.ca, &a.pass, &ca, &err) < 0) {
		sx_cli_pass_wipe(&a.id_pass_src);
		return report_fail(&err);
	}
	rc = sx_ca_issue_identity(&ca, &spec, a.key_type, a.days, a.out, &a.id_pass, &cert, &err);
	sx_cli_pass_wipe(&a.id_pass_src);
	if (rc == 0) {
		print_issued(cert, a.out);
		print_superseded(&ca);
	}
	sx_ca_close(&ca);
	if (rc < 0)
		return report_fail(&err);
	note_plain_key(a.id_pass_src.none, "the new key.pem");
	X509_free(cert);
	return 0;
}

/* ca sign names the certificate itself: the CSR's CN is only a hint. */
static int need_name(const char *csr_path)
{
	X509_REQ *req = NULL;
	char cn[SX_CN_MAX * 4 + 1];
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
	    "                     [--replace]\n"
	    "Verifies the CSR's self-signature and issues a certificate for its key from\n"
	    "these options only (the CSR's name and extensions are not used); a server\n"
	    "certificate with no --dns/--ip gets NAME as its DNS name. The CA's ca.pem (and\n"
	    "crl.pem, when the folder has none) is written beside CERT, so that `id new`\n"
	    "then `ca sign --out ID/cert.pem` makes a whole identity folder; a ca.pem of\n"
	    "another CA there is refused, never overwritten.\n"
	    "  --replace        NAME already has a valid certificate: revoke it (superseded)\n"
	    "                   instead of refusing\n"
	    "  --pass-file F    read the CA key's passphrase from F\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("csr", required_argument, OPT_CSR),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("role", required_argument, OPT_ROLE),
					     SX_OPT("dns", required_argument, OPT_DNS),
					     SX_OPT("ip", required_argument, OPT_IP),
					     SX_OPT("out", required_argument, OPT_OUT),
					     SX_OPT("days", required_argument, OPT_DAYS),
					     SX_OPT("replace", no_argument, OPT_REPLACE),
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
	spec.replace = a.replace;
	a.pass_src.prompt = "CA key passphrase";
	if (sx_ca_open(a.ca, &a.pass, &ca, &err) < 0)
		return report_fail(&err);
	rc = sx_ca_sign_csr(&ca, a.csr, &spec, a.days, a.out, &cert, &err);
	if (rc == 0) {
		print_issued(cert, a.out);
		print_superseded(&ca);
	}
	sx_ca_close(&ca);
	if (rc < 0)
		return report_fail(&err);
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
	a.pass_src.prompt = "CA key passphrase";
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
	a.pass_src.prompt = "CA key passphrase";
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
	static const char usage[] =
	    "usage: sxfer ca list --ca DIR\n"
	    "Lists issued certificates: serial, role, notAfter, status "
	    "(valid, revoked, expired), the reason of a revocation, name.\n";
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
	printf("%-32s  %-7s  %-20s  %-8s  %-20s  %s\n", "SERIAL", "ROLE", "NOT AFTER", "STATUS",
	       "REASON", "NAME");
	for (size_t i = 0; i < db.n; i++) {
		const sx_ca_entry *e = &db.e[i];
		char until[32];
		const char *status = e->revoked_at	  ? "revoked"
				     : e->not_after < now ? "expired"
							  : "valid";
		sx_time_format(e->not_after, until, sizeof(until));
		printf("%-32s  %-7s  %-20s  %-8s  %-20s  %s\n", e->serial,
		       sx_profile_name(e->profile), until, status,
		       e->revoked_at ? sx_crl_reason_name(e->reason) : "-", SX_TEXT(e->name));
	}
	sx_ca_db_free(&db);
	return 0;
}

static int ca_show(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca show --ca DIR\n"
	    "Shows the CA's root: subject, validity, key type and SHA-256 fingerprint (the\n"
	    "same line 'sxfer id show --cert DIR/ca.pem' prints), and the certificates it\n"
	    "issued. Reads ca.pem and index.txt only; no passphrase is needed.\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA), SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	STACK_OF(X509) *certs = NULL;
	sx_ca_db db = {0};
	char buf[320], t1[32], t2[32];
	size_t valid = 0, revoked = 0;
	time_t now = time(NULL);
	sx_lifetime life;
	X509 *root;
	int rc = sx_args_parse("ca show", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca show", "--ca DIR");
	if (a.npos > 0)
		return sx_cli_usage_error("ca show", "unexpected argument '%s'", a.pos[0]);
	rc = -1;
	SX_GUARD(load_root(a.ca, &certs, &err));
	SX_GUARD(sx_ca_list(a.ca, &db, &err));
	root = sk_X509_value(certs, 0);
	sx_cert_subject(root, buf, sizeof(buf));
	printf("CA folder:   %s\n", SX_TEXT(a.ca));
	printf("subject:     %s\n", SX_TEXT(buf));
	sx_asn1_time_format(X509_get0_notBefore(root), t1, sizeof(t1));
	sx_asn1_time_format(X509_get0_notAfter(root), t2, sizeof(t2));
	printf("valid:       %s to %s\n", t1, t2);
	sx_cert_lifetime(root, 0, &life);
	sx_lifetime_describe(&life, buf, sizeof(buf));
	printf("lifetime:    %s\n", buf);
	sx_key_describe(X509_get0_pubkey(root), buf, sizeof(buf));
	printf("key type:    %s\n", buf);
	SX_GUARD(print_fp(root, &err));
	for (size_t i = 0; i < db.n; i++) {
		revoked += db.e[i].revoked_at != 0;
		valid += db.e[i].revoked_at == 0 && db.e[i].not_after > now;
	}
	printf("issued:      %zu (%zu valid, %zu revoked, %zu expired)\n", db.n, valid, revoked,
	       db.n - valid - revoked);
	rc = 0;
out:
	sx_ca_db_free(&db);
	sk_X509_pop_free(certs, X509_free);
	return rc < 0 ? report_fail(&err) : 0;
}

/* 90s, 15m, 2h, 7d: 1 second to 30 days. */
static int parse_ttl(const char *s, time_t *out)
{
	static const struct {
		char unit;
		long long secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	size_t n = strlen(s);
	char num[24];
	uint64_t v = 0;
	if (n < 2 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	if (sx_parse_u64(num, &v) < 0 || v == 0 || v > SX_TOKEN_TTL_MAX)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (s[n - 1] == units[i].unit) {
			if ((long long)v * units[i].secs > SX_TOKEN_TTL_MAX)
				return -1;
			*out = (time_t)((long long)v * units[i].secs);
			return 0;
		}
	}
	return -1;
}

static void token_summary(const sx_claims *c, const char *ttl, const char *dir)
{
	char until[32], sans[1200] = "";
	size_t used = 0;
	for (size_t i = 0; i < c->ndns + c->nips && used < sizeof(sans); i++)
		used += (size_t)snprintf(sans + used, sizeof(sans) - used, "%s%s:%s",
					 used ? ", " : "", i < c->ndns ? "DNS" : "IP",
					 i < c->ndns ? c->dns[i] : c->ips[i - c->ndns]);
	sx_time_format(c->expires, until, sizeof(until));
	fprintf(stderr,
		"sxfer: one-time token for '%s' (%s%s%s%s), valid for %s (until %s), recorded in "
		"%s/tokens.txt\n",
		SX_TEXT(c->name), sx_profile_name(c->profile), sans[0] ? "; " : "", SX_TEXT(sans),
		c->replace ? "; replaces a valid certificate of the name" : "", SX_TEXT(ttl), until,
		SX_TEXT(dir));
}

static int ca_token(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer ca token --ca DIR --name NAME [--role client|server|both]\n"
	    "                      [--dns HOST]... [--ip ADDR]... [--ttl DURATION] [--replace]\n"
	    "Makes a one-time enrollment token and records it (by its SHA-256 only) in\n"
	    "DIR/tokens.txt. The token alone is printed on standard output, a summary on\n"
	    "standard error. A device enrolling with it gets a certificate for exactly\n"
	    "these claims, once. No CA key is needed: keep the CA folder private.\n"
	    "  --role R         client (default), server or both\n"
	    "  --dns, --ip      subjectAltName entries (at most 16 of each)\n"
	    "  --ttl DURATION   how long the token is valid: 90s, 15m, 2h, 7d (default 15m,\n"
	    "                   at most 30d)\n"
	    "  --replace        the enrollment revokes (superseded) a valid certificate of\n"
	    "                   NAME instead of being refused\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("role", required_argument, OPT_ROLE),
					     SX_OPT("dns", required_argument, OPT_DNS),
					     SX_OPT("ip", required_argument, OPT_IP),
					     SX_OPT("ttl", required_argument, OPT_TTL),
					     SX_OPT("replace", no_argument, OPT_REPLACE),
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_claims c = {0};
	char text[SX_TOKEN_TEXT_MAX];
	time_t ttl = SX_TOKEN_TTL_DEFAULT;
	int rc = sx_args_parse("ca token", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("ca token", "--ca DIR");
	if (a.name == NULL)
		return sx_args_need("ca token", "--name NAME");
	if ((rc = parse_role("ca token", a.role ? a.role : "client", &c.profile)) >= 0)
		return rc;
	if (a.ttl != NULL && parse_ttl(a.ttl, &ttl) < 0)
		return sx_cli_usage_error("ca token",
					  "--ttl must be a duration such as 90s, 15m, 2h or 7d "
					  "(at most 30d), not '%s'",
					  a.ttl);
	if (a.ndns > SX_TOKEN_SAN_MAX || a.nips > SX_TOKEN_SAN_MAX)
		return sx_cli_usage_error("ca token", "at most %d --dns and %d --ip values",
					  SX_TOKEN_SAN_MAX, SX_TOKEN_SAN_MAX);
	if (a.npos > 0)
		return sx_cli_usage_error("ca token", "unexpected argument '%s'", a.pos[0]);
	if (strlen(a.name) >= sizeof(c.name))
		return sx_cli_usage_error("ca token", "name must be 1 to %d characters", SX_CN_MAX);
	memcpy(c.name, a.name, strlen(a.name) + 1);
	c.has_profile = true;
	for (size_t i = 0; i < a.ndns; i++)
		if (snprintf(c.dns[c.ndns++], sizeof(c.dns[0]), "%s", a.dns[i]) >=
		    (int)sizeof(c.dns[0]))
			return sx_cli_usage_error("ca token", "--dns '%s' is too long", a.dns[i]);
	for (size_t i = 0; i < a.nips; i++)
		if (snprintf(c.ips[c.nips++], sizeof(c.ips[0]), "%s", a.ips[i]) >=
		    (int)sizeof(c.ips[0]))
			return sx_cli_usage_error("ca token", "'%s' is not an IP address",
						  a.ips[i]);
	c.replace = a.replace;
	c.expires = time(NULL) + ttl;
	if (sx_ca_token_new(a.ca, &c, text, sizeof(text), &err) < 0)
		return report_fail(&err);
	printf("%s\n", text);
	fflush(stdout);
	token_summary(&c, a.ttl ? a.ttl : "15m", a.ca);
	return 0;
}

static const sx_subcmd ca_cmds[] = {
    {"init", ca_init, "create a CA folder with a self-signed root"},
    {"issue", ca_issue, "create a key and certificate into an identity folder"},
    {"sign", ca_sign, "issue a certificate for a CSR"},
    {"revoke", ca_revoke, "revoke a certificate by serial or file"},
    {"crl", ca_crl, "issue the next CRL"},
    {"list", ca_list, "list issued certificates and their status"},
    {"show", ca_show, "show the CA's root and its fingerprint"},
    {"token", ca_token, "make a one-time enrollment token"},
    {"serve", sx_cmd_ca_serve, "run the CA as an enrollment service (enroll, renew, CRL)"},
};

int sx_cmd_ca(int argc, char **argv)
{
	return sx_cli_dispatch("ca", ca_cmds, sizeof(ca_cmds) / sizeof(ca_cmds[0]), argc, argv);
}
