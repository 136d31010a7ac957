/* Certificate requests that ask for claims (enrollment, docs/PKI.md
 * "Tokens"): a name (the subject's CN), a role (extendedKeyUsage) and
 * subjectAltNames, carried in a PKCS#10 extensionRequest. */
#include "pki/ca_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "common/sx_util.h"

#define SX_CSR_DER_MAX (64 * 1024)

static int add_eku(STACK_OF(X509_EXTENSION) * exts, sx_profile profile, sx_err *err)
{
	int rc = -1;
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	X509_EXTENSION *ext = NULL;
	SX_ENSURE(eku != NULL, err, SX_E_OTHER, "out of memory");
	if (profile != SX_PROFILE_CLIENT)
		SX_ENSURE(sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) > 0, err,
			  SX_E_OTHER, "out of memory");
	if (profile != SX_PROFILE_SERVER)
		SX_ENSURE(sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)) > 0, err,
			  SX_E_OTHER, "out of memory");
	ext = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku);
	if (ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0) {
		sx_fail_ssl(err, SX_E_OTHER, "building the request's extendedKeyUsage");
		goto out;
	}
	ext = NULL;
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	sk_ASN1_OBJECT_free(eku); /* the objects are static (OBJ_nid2obj) */
	return rc;
}

static int add_san_ext(STACK_OF(X509_EXTENSION) * exts, const sx_claims *ask, sx_err *err)
{
	const char *dns[SX_TOKEN_SAN_MAX], *ips[SX_TOKEN_SAN_MAX];
	GENERAL_NAMES *gens = NULL;
	X509_EXTENSION *ext = NULL;
	int rc = -1;
	SX_ENSURE(ask->ndns <= SX_TOKEN_SAN_MAX && ask->nips <= SX_TOKEN_SAN_MAX, err, SX_E_USAGE,
		  "at most %d DNS names and %d IP addresses", SX_TOKEN_SAN_MAX, SX_TOKEN_SAN_MAX);
	for (size_t i = 0; i < ask->ndns; i++)
		dns[i] = ask->dns[i];
	for (size_t i = 0; i < ask->nips; i++)
		ips[i] = ask->ips[i];
	SX_GUARD(sx_sans_build(dns, ask->ndns, ips, ask->nips, &gens, err));
	if (gens == NULL)
		return 0;
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
	if (ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0) {
		sx_fail_ssl(err, SX_E_OTHER, "building the request's subjectAltName");
		goto out;
	}
	ext = NULL;
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	GENERAL_NAMES_free(gens);
	return rc;
}

int sx_csr_build_ask(EVP_PKEY *key, const sx_claims *ask, X509_REQ **out, sx_err *err)
{
	int rc = -1;
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	bool role = ask->has_profile && (int)ask->profile >= 0;

	*out = NULL;
	SX_ENSURE(req != NULL && exts != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_name_check(ask->name, err));
	SX_ENSURE(!role || (ask->profile >= SX_PROFILE_SERVER && ask->profile <= SX_PROFILE_BOTH),
		  err, SX_E_USAGE, "a request asks for a server, client or both role");
	if (role)
		SX_GUARD(add_eku(exts, ask->profile, err));
	SX_GUARD(add_san_ext(exts, ask, err));
	if (X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
				       MBSTRING_UTF8, (const unsigned char *)ask->name, -1, -1,
				       0) != 1 ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 ||
	    (sk_X509_EXTENSION_num(exts) > 0 && X509_REQ_add_extensions(req, exts) != 1) ||
	    X509_REQ_sign(req, key, sx_sig_md(key)) <= 0) {
		sx_fail_ssl(err, SX_E_OTHER, "building the request for '%s'", ask->name);
		goto out;
	}
	*out = req;
	req = NULL;
	rc = 0;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return rc;
}

/* DNS and IP entries only, at most SX_TOKEN_SAN_MAX of each. */
static int read_sans(X509_EXTENSION *ext, sx_claims *ask, sx_err *err)
{
	GENERAL_NAMES *gens = X509V3_EXT_d2i(ext);
	int rc = -1;
	SX_ENSURE(gens != NULL, err, SX_E_AUTH, "the request's subjectAltName is malformed");
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		int type;
		const ASN1_STRING *v =
		    GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &type);
		const unsigned char *d = ASN1_STRING_get0_data(v);
		int len = ASN1_STRING_length(v);
		if (type == GEN_DNS) {
			SX_ENSURE(ask->ndns < SX_TOKEN_SAN_MAX && len > 0 && len < 254 &&
				      memchr(d, '\0', (size_t)len) == NULL,
				  err, SX_E_AUTH, "the request asks for too many or bad DNS names");
			memcpy(ask->dns[ask->ndns], d, (size_t)len);
			ask->dns[ask->ndns][len] = '\0';
			SX_GUARD(sx_dns_check(ask->dns[ask->ndns++], err));
		} else if (type == GEN_IPADD && (len == 4 || len == 16)) {
			SX_ENSURE(ask->nips < SX_TOKEN_SAN_MAX, err, SX_E_AUTH,
				  "the request asks for too many IP addresses");
			inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ask->ips[ask->nips++],
				  sizeof(ask->ips[0]));
		} else {
			SX_ENSURE(false, err, SX_E_AUTH,
				  "the request asks for a subjectAltName other than DNS or IP");
		}
	}
	rc = 0;
out:
	if (rc < 0)
		err->cls = SX_E_AUTH; /* a bad DNS name is the request's fault */
	GENERAL_NAMES_free(gens);
	return rc;
}

/* serverAuth only: server; clientAuth only: client; both: both. */
static int read_eku(X509_EXTENSION *ext, sx_claims *ask, sx_err *err)
{
	EXTENDED_KEY_USAGE *eku = X509V3_EXT_d2i(ext);
	bool srv = false, cli = false;
	int rc = -1;
	SX_ENSURE(eku != NULL, err, SX_E_AUTH, "the request's extendedKeyUsage is malformed");
	for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
		int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
		char oid[80];
		if (nid == NID_server_auth)
			srv = true;
		else if (nid == NID_client_auth)
			cli = true;
		else {
			OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, i), 0);
			SX_ENSURE(false, err, SX_E_AUTH,
				  "the request asks for extendedKeyUsage %s (only serverAuth and "
				  "clientAuth are granted)",
				  oid);
		}
	}
	SX_ENSURE(srv || cli, err, SX_E_AUTH, "the request's extendedKeyUsage is empty");
	ask->profile = srv && cli ? SX_PROFILE_BOTH : srv ? SX_PROFILE_SERVER : SX_PROFILE_CLIENT;
	ask->has_profile = true;
	rc = 0;
out:
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return rc;
}

/* Other extensions are ignored: the certificate is built from the
 * token's claims, never from the request. */
int sx_csr_ask(X509_REQ *req, sx_claims *ask, sx_err *err)
{
	int rc = -1;
	EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
	STACK_OF(X509_EXTENSION) *exts = NULL;
	bool seen_san = false, seen_eku = false;

	memset(ask, 0, sizeof(*ask));
	SX_ENSURE(pub != NULL, err, SX_E_AUTH, "the request's public key cannot be read");
	SX_ENSURE(X509_REQ_verify(req, pub) == 1, err, SX_E_AUTH,
		  "the request's self-signature does not verify");
	SX_GUARD(sx_csr_name(req, ask->name, sizeof(ask->name), err));
	if (sx_name_check(ask->name, err) < 0) {
		err->cls = SX_E_AUTH;
		goto out;
	}
	exts = X509_REQ_get_extensions(req);
	SX_ENSURE(exts != NULL || X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) < 0, err,
		  SX_E_AUTH, "the request's extensions are malformed");
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (nid == NID_subject_alt_name) {
			SX_ENSURE(!seen_san, err, SX_E_AUTH, "the request repeats subjectAltName");
			seen_san = true;
			SX_GUARD(read_sans(ext, ask, err));
		} else if (nid == NID_ext_key_usage) {
			SX_ENSURE(!seen_eku, err, SX_E_AUTH,
				  "the request repeats extendedKeyUsage");
			seen_eku = true;
			SX_GUARD(read_eku(ext, ask, err));
		}
	}
	rc = 0;
out:
	ERR_clear_error();
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	if (rc < 0)
		memset(ask, 0, sizeof(*ask));
	return rc;
}

int sx_csr_from_der(const uint8_t *der, size_t len, X509_REQ **out, sx_err *err)
{
	const unsigned char *p = der;
	X509_REQ *req;
	*out = NULL;
	if (len == 0 || len > SX_CSR_DER_MAX)
		return sx_fail(err, SX_E_INTEGRITY,
			       "a certificate request of %zu bytes (at most %d)", len,
			       SX_CSR_DER_MAX);
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL) {
		ERR_clear_error();
		return sx_fail(err, SX_E_INTEGRITY, "not a DER certificate request");
	}
	if (p != der + len) {
		X509_REQ_free(req);
		return sx_fail(err, SX_E_INTEGRITY, "bytes after the certificate request");
	}
	*out = req;
	return 0;
}
