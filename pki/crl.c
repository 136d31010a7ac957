/* CRLs: loading, building (v2, crlNumber, AKI) and the reason names. */
#include "pki/sx_ca.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/sx_util.h"

#define SX_CRL_FILE_MAX (16 * 1024 * 1024)

/* RFC 5280 5.3.1 CRLReason; 6 (certificateHold) and 7 (unused) are not
 * offered: a hold cannot be undone in this CA. */
static const struct {
	int code;
	const char *name;
} reasons[] = {
    {0, "unspecified"},	       {1, "keyCompromise"}, {2, "cACompromise"},
    {3, "affiliationChanged"}, {4, "superseded"},    {5, "cessationOfOperation"},
    {9, "privilegeWithdrawn"},
};

int sx_crl_reason_parse(const char *s, int *out)
{
	for (size_t i = 0; s != NULL && i < SX_ARRAY_LEN(reasons); i++) {
		if (strcasecmp(s, reasons[i].name) == 0) {
			*out = reasons[i].code;
			return 0;
		}
	}
	return -1;
}

const char *sx_crl_reason_name(int reason)
{
	for (size_t i = 0; i < SX_ARRAY_LEN(reasons); i++)
		if (reasons[i].code == reason)
			return reasons[i].name;
	return reason == 6 ? "certificateHold" : reason == 8 ? "removeFromCRL" : "unknown";
}

int sx_crl_load(const char *path, X509_CRL **out, sx_err *err)
{
	int rc = -1;
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509_CRL *crl = NULL;
	char *tail = NULL;
	*out = NULL;
	SX_GUARD(sx_file_read(path, SX_CRL_FILE_MAX, &data, &len, err));
	bio = BIO_new_mem_buf(data, (int)len);
	SX_ENSURE(bio != NULL, err, SX_E_OTHER, "out of memory");
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (crl == NULL) {
		sx_fail_ssl(err, SX_E_IO, "%s: not a PEM CRL", path);
		goto out;
	}
	/* One CRL per file, and nothing after it but line ends: a second CRL
	 * (say a newer one appended to an older one) would otherwise be
	 * ignored without a word, and the revocations it adds with it. */
	long rest = BIO_get_mem_data(bio, &tail);
	for (long i = 0; i < rest; i++)
		SX_ENSURE(tail[i] == '\n' || tail[i] == '\r' || tail[i] == ' ' || tail[i] == '\t',
			  err, SX_E_IO, "%s: text after the CRL (one CRL per file)", path);
	*out = crl;
	crl = NULL;
	rc = 0;
out:
	X509_CRL_free(crl);
	BIO_free(bio);
	free(data);
	return rc;
}

static int add_revoked(X509_CRL *crl, const sx_revoked *r, sx_err *err)
{
	int rc = -1;
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(r->serial, NULL);
	ASN1_TIME *when = ASN1_TIME_set(NULL, r->when);
	ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
	if (rev == NULL || serial == NULL || when == NULL || reason == NULL ||
	    X509_REVOKED_set_serialNumber(rev, serial) != 1 ||
	    X509_REVOKED_set_revocationDate(rev, when) != 1 ||
	    ASN1_ENUMERATED_set(reason, r->reason) != 1 ||
	    X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0) != 1 ||
	    X509_CRL_add0_revoked(crl, rev) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "adding a revoked entry to the CRL");
		goto out;
	}
	rev = NULL;
	rc = 0;
out:
	X509_REVOKED_free(rev);
	ASN1_INTEGER_free(serial);
	ASN1_TIME_free(when);
	ASN1_ENUMERATED_free(reason);
	return rc;
}

int sx_crl_build(X509 *ca, EVP_PKEY *ca_key, const sx_revoked *rev, size_t n, uint64_t number,
		 time_t this_update, time_t next_update, X509_CRL **out, sx_err *err)
{
	int rc = -1;
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t1 = ASN1_TIME_set(NULL, this_update);
	ASN1_TIME *t2 = ASN1_TIME_set(NULL, next_update);
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	X509_EXTENSION *aki = NULL;
	X509V3_CTX ctx;
	int id = EVP_PKEY_get_base_id(ca_key);
	const EVP_MD *md = id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();

	*out = NULL;
	if (crl == NULL || t1 == NULL || t2 == NULL || num == NULL ||
	    X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, t1) != 1 || X509_CRL_set1_nextUpdate(crl, t2) != 1 ||
	    ASN1_INTEGER_set_uint64(num, number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "building the CRL");
		goto out;
	}
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
	aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
	if (aki == NULL || X509_CRL_add_ext(crl, aki, -1) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "adding the CRL's authorityKeyIdentifier");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		SX_GUARD(add_revoked(crl, &rev[i], err));
	if (X509_CRL_sort(crl) != 1 || X509_CRL_sign(crl, ca_key, md) <= 0) {
		sx_fail_ssl(err, SX_E_OTHER, "signing the CRL");
		goto out;
	}
	*out = crl;
	crl = NULL;
	rc = 0;
out:
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t1);
	ASN1_TIME_free(t2);
	X509_CRL_free(crl);
	return rc;
}

int sx_crl_save(const char *path, X509_CRL *crl, sx_err *err)
{
	int rc = -1;
	BIO *bio = BIO_new(BIO_s_mem());
	SX_ENSURE(bio != NULL, err, SX_E_OTHER, "out of memory");
	if (PEM_write_bio_X509_CRL(bio, crl) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "%s: encoding the CRL", path);
		goto out;
	}
	SX_GUARD(sx_bio_save(path, bio, 0644, err));
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}
