/* What `ca issue` and `ca sign` write outside the CA folder: an identity
 * folder (key.pem, cert.pem, ca.pem, crl.pem), or a certificate file with
 * the CA's ca.pem (and crl.pem) beside it. */
#include "pki/ca_int.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/sx_util.h"

static int copy_file(const char *from, const char *to, mode_t mode, sx_err *err)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = sx_file_read(from, SX_INDEX_MAX, &data, &len, err);
	if (rc == 0)
		rc = sx_file_write_atomic(to, data, len, mode, err);
	free(data);
	return rc;
}

/* DIR/crl.pem copied to to, when the CA has one and to does not exist. */
static int copy_crl(const sx_ca *ca, const char *to, sx_err *err)
{
	char from[4096];
	if (sx_ca_path(from, sizeof(from), ca->dir, "crl.pem", err) < 0)
		return -1;
	if (access(from, F_OK) != 0 || access(to, F_OK) == 0)
		return 0;
	return copy_file(from, to, 0644, err);
}

int sx_ca_issue_identity(sx_ca *ca, const sx_cert_spec *spec, sx_key_type type, unsigned days,
			 const char *outdir, const sx_pass *pass, X509 **out, sx_err *err)
{
	int rc = -1;
	char path[4096];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	sx_ca_db found = {0};

	*out = NULL;
	SX_GUARD(sx_ca_path(path, sizeof(path), outdir, "key.pem", err));
	SX_ENSURE(access(path, F_OK) != 0, err, SX_E_IO,
		  "%s: already exists; refusing to overwrite an identity", path);
	SX_GUARD(sx_ca_path(path, sizeof(path), outdir, "cert.pem", err));
	SX_ENSURE(access(path, F_OK) != 0, err, SX_E_IO,
		  "%s: already exists; refusing to overwrite an identity", path);
	/* The one-name rule before any file is written (checked again when
	 * issuing; the CA's lock is held all along). */
	SX_GUARD(sx_name_check(spec->name, err));
	SX_GUARD(sx_ca_name_rule(&ca->db, spec->name, spec->replace, time(NULL),
				 "--replace revokes it", &found, err));
	SX_GUARD(sx_mkdirs(outdir, 0700, err));
	if (chmod(outdir, 0700) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: chmod", outdir);
		goto out;
	}
	SX_GUARD(sx_key_generate(type, &key, err));
	SX_GUARD(sx_ca_path(path, sizeof(path), outdir, "key.pem", err));
	SX_GUARD(sx_key_save(path, key, pass, err));
	SX_GUARD(sx_ca_issue(ca, spec, key, days, &cert, err));
	SX_GUARD(sx_ca_path(path, sizeof(path), outdir, "cert.pem", err));
	SX_GUARD(sx_certs_save(path, &cert, 1, 0644, err));
	SX_GUARD(sx_ca_path(path, sizeof(path), outdir, "ca.pem", err));
	SX_GUARD(sx_certs_save(path, &ca->cert, 1, 0644, err));
	SX_GUARD(sx_ca_path(path, sizeof(path), outdir, "crl.pem", err));
	SX_GUARD(copy_crl(ca, path, err));
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	sx_ca_db_free(&found);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* The folder of a file path ("." for a bare name) into buf. */
static int folder_of(const char *path, char *buf, size_t cap, sx_err *err)
{
	char copy[4096];
	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy) ||
	    snprintf(buf, cap, "%s", dirname(copy)) >= (int)cap)
		return sx_fail(err, SX_E_IO, "%s: path too long", path);
	return 0;
}

/* ca.pem beside the certificate must hold this CA's root, or be absent. */
static int check_ca_pem(const sx_ca *ca, const char *capath, bool *present, sx_err *err)
{
	STACK_OF(X509) *certs = NULL;
	char subj[320];
	int rc = -1;
	*present = access(capath, F_OK) == 0;
	if (!*present)
		return 0;
	if (sx_certs_load(capath, &certs, err) < 0) {
		sx_err_prefix(err, "refusing to overwrite it: ");
		return -1;
	}
	for (int i = 0; rc < 0 && i < sk_X509_num(certs); i++)
		if (X509_cmp(sk_X509_value(certs, i), ca->cert) == 0)
			rc = 0;
	if (rc < 0) {
		sx_cert_subject(sk_X509_value(certs, 0), subj, sizeof(subj));
		sx_fail(err, SX_E_IO,
			"%s holds another CA certificate (%s), not the root of %s; refusing to "
			"overwrite it: write the certificate into another folder",
			capath, subj, ca->dir);
	}
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int sx_ca_sign_csr(sx_ca *ca, const char *csr_path, const sx_cert_spec *spec, unsigned days,
		   const char *out_path, X509 **out, sx_err *err)
{
	int rc = -1;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	char folder[4096], path[4096];
	bool have_ca = false;

	*out = NULL;
	SX_ENSURE(spec->name != NULL, err, SX_E_USAGE,
		  "the certificate's name is needed (--name); the CSR's is not used");
	SX_GUARD(sx_csr_load(csr_path, &req, err));
	if (sx_key_check_strength(X509_REQ_get0_pubkey(req), err) < 0) {
		sx_err_prefix(err, "%s: ", csr_path);
		goto out;
	}
	SX_GUARD(folder_of(out_path, folder, sizeof(folder), err));
	SX_GUARD(sx_ca_path(path, sizeof(path), folder, "ca.pem", err));
	SX_GUARD(check_ca_pem(ca, path, &have_ca, err));
	SX_GUARD(sx_ca_issue(ca, spec, X509_REQ_get0_pubkey(req), days, &cert, err));
	SX_GUARD(sx_certs_save(out_path, &cert, 1, 0644, err));
	if (!have_ca)
		SX_GUARD(sx_certs_save(path, &ca->cert, 1, 0644, err));
	SX_GUARD(sx_ca_path(path, sizeof(path), folder, "crl.pem", err));
	SX_GUARD(copy_crl(ca, path, err));
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	X509_free(cert);
	X509_REQ_free(req);
	return rc;
}
