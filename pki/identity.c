/* Identity folders: key.pem, cert.pem (leaf then intermediates), ca.pem
 * (trust anchors), optional crl.pem. */
#include "pki/sx_pki.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

static int path_in(char *buf, size_t cap, const char *dir, const char *file, sx_err *err)
{
	if (snprintf(buf, cap, "%s/%s", dir, file) >= (int)cap)
		return sx_fail(err, SX_E_IO, "%s: path too long", dir);
	return 0;
}

int sx_identity_load(const char *dir, const sx_pass *pass, sx_identity *id, sx_err *err)
{
	int rc = -1;
	char path[4096];
	memset(id, 0, sizeof(*id));

	SX_GUARD(path_in(path, sizeof(path), dir, "cert.pem", err));
	SX_GUARD(sx_certs_load(path, &id->chain, err));
	SX_GUARD(sx_cert_name(sk_X509_value(id->chain, 0), id->name, sizeof(id->name), err));
	SX_GUARD(path_in(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_certs_load(path, &id->anchors, err));
	SX_GUARD(path_in(path, sizeof(path), dir, "crl.pem", err));
	if (access(path, F_OK) == 0)
		SX_GUARD(sx_crl_load(path, &id->crl, err));
	SX_GUARD(path_in(path, sizeof(path), dir, "key.pem", err));
	SX_GUARD(sx_key_load(path, pass, &id->key, err));
	if (X509_check_private_key(sk_X509_value(id->chain, 0), id->key) != 1) {
		ERR_clear_error();
		sx_fail(err, SX_E_AUTH, "%s: the key does not match the certificate in %s/cert.pem",
			path, dir);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		sx_identity_free(id);
	return rc;
}

void sx_identity_free(sx_identity *id)
{
	EVP_PKEY_free(id->key);
	sk_X509_pop_free(id->chain, X509_free);
	sk_X509_pop_free(id->anchors, X509_free);
	X509_CRL_free(id->crl);
	memset(id, 0, sizeof(*id));
}
