/* sxfer id: identities (key, CSR, certificate). Flag parsing and printing
 * only; the work is in pki/. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"
#include "tools/args.h"

static int in_dir(char *buf, size_t cap, const char *dir, const char *file, sx_err *err)
{
	if (snprintf(buf, cap, "%s/%s", dir, file) >= (int)cap)
		return sx_fail(err, SX_E_IO, "%s: path too long", dir);
	return 0;
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int id_new(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer id new --out DIR --name NAME [--key-type p256|ed25519|rsa3072]\n"
	    "Creates DIR/key.pem (encrypted PKCS#8, 0600) and DIR/csr.pem for 'sxfer ca sign'.\n"
	    "  --pass-file F    read the passphrase from F (else SXFER_PASSPHRASE, else a "
	    "prompt)\n"
	    "  --no-passphrase  write the private key unencrypted\n";
	static const struct option opts[] = {SX_OPT("out", required_argument, OPT_OUT),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("key-type", required_argument, OPT_KEY_TYPE),
					     SX_OPT_PASS,
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	char path[4096];
	int rc = sx_args_parse("id new", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.out == NULL)
		return sx_args_need("id new", "--out DIR");
	if (a.name == NULL)
		return sx_args_need("id new", "--name NAME");
	if (a.npos > 0)
		return sx_cli_usage_error("id new", "unexpected argument '%s'", a.pos[0]);
	rc = -1;
	SX_GUARD(sx_name_check(a.name, &err));
	SX_GUARD(in_dir(path, sizeof(path), a.out, "key.pem", &err));
	SX_ENSURE(access(path, F_OK) != 0, &err, SX_E_IO,
		  "%s: already exists; refusing to overwrite a key", path);
	SX_GUARD(sx_mkdirs(a.out, 0700, &err));
	if (chmod(a.out, 0700) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "%s: chmod", a.out);
		goto out;
	}
	SX_GUARD(sx_key_generate(a.key_type, &key, &err));
	SX_GUARD(sx_csr_build(key, a.name, &req, &err));
	SX_GUARD(sx_key_save(path, key, &a.pass, &err));
	SX_GUARD(in_dir(path, sizeof(path), a.out, "csr.pem", &err));
	SX_GUARD(sx_csr_save(path, req, &err));
	printf("created %s/key.pem (%s%s) and %s\n", a.out, sx_key_type_name(a.key_type),
	       a.pass_src.none ? ", NOT encrypted" : ", encrypted", path);
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_REQ_free(req);
	return rc < 0 ? sx_cli_report(&err) : 0;
}

static int id_show(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer id show [--id DIR | --cert FILE]\n"
	    "Shows the certificate of an identity folder (default: the current folder):\n"
	    "subject, SANs, issuer, serial, validity and the lifetime left, key type,\n"
	    "SHA-256 fingerprint, role.\n"
	    "Reads cert.pem only; no passphrase is needed.\n";
	static const struct option opts[] = {SX_OPT("id", required_argument, OPT_ID),
					     SX_OPT("cert", required_argument, OPT_CERT),
					     SX_OPT_HELP, SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	STACK_OF(X509) *certs = NULL;
	char path[4096], buf[1024], issuer[320], serial[80], t1[32], t2[32], kd[96];
	char fp[SX_CERT_FP_HEX_LEN];
	uint8_t fpb[SX_CERT_FP_LEN];
	sx_lifetime life;
	X509 *c;
	int rc = sx_args_parse("id show", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.npos > 0)
		return sx_cli_usage_error("id show", "unexpected argument '%s'", a.pos[0]);
	if (a.id != NULL && a.cert != NULL)
		return sx_cli_usage_error("id show", "give --id or --cert, not both");
	rc = -1;
	if (a.cert != NULL)
		snprintf(path, sizeof(path), "%s", a.cert);
	else
		SX_GUARD(in_dir(path, sizeof(path), a.id ? a.id : ".", "cert.pem", &err));
	SX_GUARD(sx_certs_load(path, &certs, &err));
	c = sk_X509_value(certs, 0);
	sx_cert_subject(c, buf, sizeof(buf));
	printf("certificate: %s\n", SX_TEXT(path));
	printf("subject:     %s\n", SX_TEXT(buf));
	sx_cert_sans(c, buf, sizeof(buf));
	printf("SANs:        %s\n", buf[0] ? SX_TEXT(buf) : "(none)");
	if (X509_NAME_oneline(X509_get_issuer_name(c), issuer, sizeof(issuer)) == NULL)
		snprintf(issuer, sizeof(issuer), "?");
	printf("issuer:      %s\n", SX_TEXT(issuer));
	sx_cert_serial_hex(c, serial, sizeof(serial));
	printf("serial:      %s\n", serial);
	sx_asn1_time_format(X509_get0_notBefore(c), t1, sizeof(t1));
	sx_asn1_time_format(X509_get0_notAfter(c), t2, sizeof(t2));
	printf("valid:       %s to %s\n", t1, t2);
	sx_cert_lifetime(c, 0, &life);
	sx_lifetime_describe(&life, buf, sizeof(buf));
	printf("lifetime:    %s%s\n", buf,
	       life.left > 0 && sx_lifetime_renew_due(&life) ? "; renewal due" : "");
	sx_key_describe(X509_get0_pubkey(c), kd, sizeof(kd));
	printf("key type:    %s\n", kd);
	SX_GUARD(sx_cert_fp(c, fpb, &err));
	sx_hex(fpb, sizeof(fpb), fp);
	printf("SHA-256:     %s\n", fp);
	printf("role:        %s\n", sx_cert_role(c));
	if (sk_X509_num(certs) > 1)
		printf("chain:       %d intermediate certificate(s)\n", sk_X509_num(certs) - 1);
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return rc < 0 ? sx_cli_report(&err) : 0;
}

static int id_verify(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer id verify --ca CA [--crl CRL] [--role server|client] [--name NAME]\n"
	    "                       [--at TIME] CERT\n"
	    "Runs the validation policy on CERT (a PEM file, leaf then intermediates, or an\n"
	    "identity folder) and prints 'ok' or the reason (exit code 3).\n"
	    "  --ca CA          PEM file of trust anchors, or a folder holding ca.pem\n"
	    "                   (and crl.pem, used unless --crl is given)\n"
	    "  --crl CRL        check revocation against this CRL\n"
	    "  --role R         require extendedKeyUsage serverAuth or clientAuth\n"
	    "  --name NAME      DNS name or IP address that must match a subjectAltName\n"
	    "  --at TIME        verify at TIME (2026-01-31, 2026-01-31T12:00:00Z or @unix)\n";
	static const struct option opts[] = {SX_OPT("ca", required_argument, OPT_CA),
					     SX_OPT("crl", required_argument, OPT_CRL),
					     SX_OPT("role", required_argument, OPT_ROLE),
					     SX_OPT("name", required_argument, OPT_NAME),
					     SX_OPT("at", required_argument, OPT_AT),
					     SX_OPT_HELP,
					     SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_policy pol = {0};
	sx_role role = SX_ROLE_ANY;
	STACK_OF(X509) *certs = NULL;
	X509 *leaf = NULL;
	char certpath[4096], subj[320];
	int rc = sx_args_parse("id verify", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("id verify", "--ca CA");
	if (a.npos != 1)
		return sx_cli_usage_error("id verify", "give exactly one certificate to verify");
	if (a.role != NULL) {
		if (strcmp(a.role, "server") == 0)
			role = SX_ROLE_SERVER;
		else if (strcmp(a.role, "client") == 0)
			role = SX_ROLE_CLIENT;
		else
			return sx_cli_usage_error(
			    "id verify", "--role must be server or client, not '%s'", a.role);
	}
	if (a.at != NULL && sx_time_parse(a.at, &pol.now) < 0)
		return sx_cli_usage_error("id verify", "--at: cannot parse time '%s'", a.at);
	rc = -1;
	if (is_dir(a.pos[0]))
		SX_GUARD(in_dir(certpath, sizeof(certpath), a.pos[0], "cert.pem", &err));
	else
		snprintf(certpath, sizeof(certpath), "%s", a.pos[0]);
	SX_GUARD(sx_args_trust(&a, &pol, &err));
	SX_GUARD(sx_certs_load(certpath, &certs, &err));
	leaf = sk_X509_shift(certs);
	if (sx_policy_check(&pol, leaf, certs, role, a.name, &err) < 0) {
		sx_err_prefix(&err, "%s: ", certpath);
		goto out;
	}
	sx_cert_subject(leaf, subj, sizeof(subj));
	printf("%s: ok (%s, role %s)\n", certpath, subj, sx_cert_role(leaf));
	rc = 0;
out:
	X509_free(leaf);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(pol.anchors, X509_free);
	X509_CRL_free(pol.crl);
	return rc < 0 ? sx_cli_report(&err) : 0;
}

static const sx_subcmd id_cmds[] = {
    {"new", id_new, "create a private key and a CSR"},
    {"show", id_show, "show an identity's certificate"},
    {"verify", id_verify, "check a certificate against the validation policy"},
};

int sx_cmd_id(int argc, char **argv)
{
	return sx_cli_dispatch("id", id_cmds, sizeof(id_cmds) / sizeof(id_cmds[0]), argc, argv);
}
