/* The identities of a simulated fleet (bench_util.h, sx_bench_ids_make):
 * issued once by a CA, in memory or into identity folders, so that a
 * load generator with hundreds of devices pays no key decryption per
 * device and no process per device. */
#include "tools/bench_util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "pki/sx_ca.h"
#include "tools/cli.h"

#define IDS_MEM_SECONDS 86400 /* in memory: valid one day */
#define IDS_DIR_DAYS	30    /* in folders: reused across runs */

void sx_bench_dev_name(unsigned idx, char buf[SX_BENCH_DEV_NAME_MAX])
{
	snprintf(buf, SX_BENCH_DEV_NAME_MAX, "dev-%04u", idx + 1);
}

typedef struct ids_ctx {
	const sx_bench_ids *cfg;
	sx_cli_pass ca_pass_src;
	sx_ca ca;
	bool ca_open;
	X509_CRL *crl; /* the CA's crl.pem, when it has one */
} ids_ctx;

/* The CA, opened at the first identity it has to issue. */
static int ids_ca(ids_ctx *c, sx_err *err)
{
	char path[SX_BENCH_PATH_MAX];
	sx_pass pass;
	if (c->ca_open)
		return 0;
	if (c->cfg->ca_dir == NULL)
		return sx_fail(err, SX_E_USAGE,
			       "identities to issue and no CA to issue them (--ca DIR)");
	c->ca_pass_src.file = c->cfg->ca_pass_file;
	c->ca_pass_src.prompt = "Passphrase of the CA key";
	sx_cli_pass_init(&pass, &c->ca_pass_src);
	if (sx_ca_open(c->cfg->ca_dir, &pass, &c->ca, err) < 0)
		return -1;
	c->ca_open = true;
	if (snprintf(path, sizeof(path), "%s/crl.pem", c->cfg->ca_dir) >= (int)sizeof(path))
		return sx_fail(err, SX_E_IO, "%s: path too long", c->cfg->ca_dir);
	if (access(path, F_OK) == 0 && sx_crl_load(path, &c->crl, err) < 0)
		return -1;
	return 0;
}

/* notAfter of a throwaway identity: a day from now, never beyond the CA's. */
static time_t mem_not_after(X509 *ca_cert, time_t now)
{
	time_t want = now + IDS_MEM_SECONDS;
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(ca_cert), &tm) == 1) {
		time_t ca_end = timegm(&tm);
		if (ca_end < want)
			want = ca_end;
	}
	return want;
}

/* One identity in memory: a P-256 key, a client certificate from the CA,
 * the CA's root as the trust anchor and its CRL. */
static int issue_mem(ids_ctx *c, const char *name, sx_identity *id, sx_err *err)
{
	time_t now = time(NULL);
	sx_cert_spec spec = {
	    .profile = SX_PROFILE_CLIENT, .name = name, .not_before = now - SX_BACKDATE_SECONDS};
	X509 *cert = NULL;
	int rc = -1;
	memset(id, 0, sizeof(*id));
	SX_GUARD(ids_ca(c, err));
	spec.not_after = mem_not_after(c->ca.cert, now);
	SX_GUARD(sx_key_generate(SX_KEY_P256, &id->key, err));
	SX_GUARD(sx_cert_build(&spec, id->key, c->ca.cert, c->ca.key, &cert, err));
	id->chain = sk_X509_new_null();
	id->anchors = sk_X509_new_null();
	SX_ENSURE(id->chain != NULL && id->anchors != NULL && sk_X509_push(id->chain, cert) > 0,
		  err, SX_E_OTHER, "out of memory");
	cert = NULL;
	SX_ENSURE(sk_X509_push(id->anchors, c->ca.cert) > 0, err, SX_E_OTHER, "out of memory");
	X509_up_ref(c->ca.cert);
	if (c->crl != NULL) {
		X509_CRL_up_ref(c->crl);
		id->crl = c->crl;
	}
	snprintf(id->name, sizeof(id->name), "%s", name);
	rc = 0;
out:
	X509_free(cert);
	if (rc < 0)
		sx_identity_free(id);
	return rc;
}

/* One identity folder: loaded when it holds a key and a certificate,
 * issued there first otherwise. */
static int load_dir(ids_ctx *c, const char *name, sx_identity *id, bool *issued, sx_err *err)
{
	char dir[SX_BENCH_PATH_MAX], key[SX_BENCH_PATH_MAX + 16], cert[SX_BENCH_PATH_MAX + 16];
	sx_cli_pass id_pass_src = {0};
	sx_pass plain = {.none = true}, pass;
	X509 *made = NULL;
	*issued = false;
	memset(id, 0, sizeof(*id));
	if (snprintf(dir, sizeof(dir), "%s/%s", c->cfg->ids_dir, name) >= (int)sizeof(dir))
		return sx_fail(err, SX_E_IO, "%s: path too long", c->cfg->ids_dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	if (access(key, F_OK) != 0 || access(cert, F_OK) != 0) {
		sx_cert_spec spec = {.profile = SX_PROFILE_CLIENT, .name = name, .replace = true};
		if (ids_ca(c, err) < 0 ||
		    sx_ca_issue_identity(&c->ca, &spec, SX_KEY_P256, IDS_DIR_DAYS, dir, &plain,
					 &made, err) < 0) {
			sx_err_prefix(err, "issuing %s: ", name);
			return -1;
		}
		X509_free(made);
		*issued = true;
	}
	/* A key someone encrypted: its passphrase as for any identity. */
	sx_cli_pass_init(&pass, &id_pass_src);
	int rc = sx_identity_load(dir, &pass, id, err);
	sx_cli_pass_wipe(&id_pass_src);
	return rc;
}

int sx_bench_ids_make(const sx_bench_ids *cfg, sx_identity *ids, unsigned *issued, sx_err *err)
{
	ids_ctx c = {.cfg = cfg, .ca = {.lock_fd = -1}};
	char name[SX_BENCH_DEV_NAME_MAX];
	int rc = -1;
	memset(ids, 0, cfg->n * sizeof(*ids));
	*issued = 0;
	for (unsigned i = 0; i < cfg->n; i++) {
		bool made = true;
		sx_bench_dev_name(i, name);
		if (cfg->ids_dir == NULL)
			SX_GUARD(issue_mem(&c, name, &ids[i], err));
		else
			SX_GUARD(load_dir(&c, name, &ids[i], &made, err));
		*issued += made ? 1 : 0;
	}
	rc = 0;
out:
	if (c.ca_open)
		sx_ca_close(&c.ca);
	X509_CRL_free(c.crl);
	sx_cli_pass_wipe(&c.ca_pass_src);
	return rc;
}
