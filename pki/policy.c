/* The one certificate-validation policy (docs/PKI.md "Validation policy").
 * Pure: no file I/O; the clock is read only when policy->now is 0. The
 * checks run in a fixed order and the first failure is reported. */
#include "pki/sx_pki.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/sx_util.h"

int sx_key_check_strength(EVP_PKEY *key, sx_err *err)
{
	char group[64];
	size_t glen = 0;
	if (key == NULL)
		return sx_fail(err, SX_E_AUTH, "certificate has no usable public key");
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(key) < 2048)
			return sx_fail(err, SX_E_AUTH,
				       "weak key: RSA %d bits (at least 2048 needed)",
				       EVP_PKEY_get_bits(key));
		return 0;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), &glen) != 1) {
			ERR_clear_error();
			return sx_fail(err, SX_E_AUTH, "weak key: EC key on an unnamed curve");
		}
		if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
		    strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0 ||
		    strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
			return 0;
		return sx_fail(err, SX_E_AUTH, "weak key: EC curve %s (P-256 or stronger needed)",
			       group);
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448: return 0;
	default:
		return sx_fail(err, SX_E_AUTH, "weak key: unsupported key type %s",
			       OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
	}
}

/* Maps the X509_verify_cert error to the policy's reason text. */
static int chain_failure(X509_STORE_CTX *ctx, X509 *leaf, sx_err *err)
{
	int code = X509_STORE_CTX_get_error(ctx);
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	char subj[320], when[32];
	if (cur == NULL)
		cur = leaf;
	sx_cert_subject(cur, subj, sizeof(subj));
	switch (code) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		sx_asn1_time_format(X509_get0_notAfter(cur), when, sizeof(when));
		return sx_fail(err, SX_E_AUTH, "%s: certificate has expired (notAfter %s)", subj,
			       when);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		sx_asn1_time_format(X509_get0_notBefore(cur), when, sizeof(when));
		return sx_fail(err, SX_E_AUTH, "%s: certificate is not yet valid (notBefore %s)",
			       subj, when);
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return sx_fail(err, SX_E_AUTH, "%s: self-signed certificate (not the trusted CA)",
			       subj);
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return sx_fail(err, SX_E_AUTH,
			       "%s: unable to get local issuer certificate / not issued by the "
			       "trusted CA",
			       subj);
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return sx_fail(err, SX_E_AUTH, "%s: certificate signature does not verify", subj);
	case X509_V_ERR_INVALID_CA:
		return sx_fail(err, SX_E_AUTH, "%s: issuer is not a valid CA certificate", subj);
	default:
		return sx_fail(err, SX_E_AUTH, "%s: %s", subj, X509_verify_cert_error_string(code));
	}
}

static int check_eku(X509 *leaf, sx_role role, const char *subj, sx_err *err)
{
	uint32_t flags = X509_get_extension_flags(leaf);
	uint32_t need = role == SX_ROLE_SERVER	 ? XKU_SSL_SERVER
			: role == SX_ROLE_SIGNER ? XKU_SSL_SERVER | XKU_SSL_CLIENT
						 : XKU_SSL_CLIENT;
	const char *what = role == SX_ROLE_SERVER   ? "serverAuth"
			   : role == SX_ROLE_SIGNER ? "clientAuth or serverAuth"
						    : "clientAuth";
	if (role == SX_ROLE_ANY)
		return 0;
	/* A missing EKU means "any use" to OpenSSL; this policy wants it said. */
	if (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(leaf) & need))
		return sx_fail(err, SX_E_AUTH, "%s: certificate lacks extendedKeyUsage %s", subj,
			       what);
	return 0;
}

static int check_name(X509 *leaf, const char *name, const char *subj, sx_err *err)
{
	unsigned char addr[16];
	int r;
	if (name == NULL)
		return 0;
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
		r = X509_check_ip_asc(leaf, name, 0);
	else
		r = X509_check_host(leaf, name, 0,
				    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
				    NULL);
	if (r != 1) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH,
			       "%s: name '%s' does not match the certificate's subjectAltName",
			       subj, name);
	}
	return 0;
}

/* "CN=name" of the CRL's issuer, as sx_cert_subject names a certificate. */
static void crl_issuer(X509_CRL *crl, char *buf, size_t cap)
{
	X509_NAME *n = X509_CRL_get_issuer(crl);
	int i = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
	ASN1_STRING *d = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)) : NULL;
	unsigned char *utf8 = NULL;
	int len = d != NULL ? ASN1_STRING_to_UTF8(&utf8, d) : -1;
	if (len > 0)
		snprintf(buf, cap, "CN=%.*s", len, (const char *)utf8);
	else if (X509_NAME_oneline(n, buf, (int)cap) == NULL)
		snprintf(buf, cap, "(unnamed issuer)");
	OPENSSL_free(utf8);
}

int sx_crl_check_time(X509_CRL *crl, time_t now, sx_err *err)
{
	char isubj[320], when[32];
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	crl_issuer(crl, isubj, sizeof(isubj));
	if (now == 0)
		now = time(NULL);
	/* X509_cmp_time gives 0 for a time it cannot read: never "current". */
	int cmp = X509_cmp_time(X509_CRL_get0_lastUpdate(crl), &now);
	if (cmp == 0)
		return sx_fail(err, SX_E_AUTH, "CRL issued by %s has an unreadable thisUpdate",
			       isubj);
	if (cmp > 0) {
		sx_asn1_time_format(X509_CRL_get0_lastUpdate(crl), when, sizeof(when));
		return sx_fail(err, SX_E_AUTH, "CRL issued by %s is not yet valid (thisUpdate %s)",
			       isubj, when);
	}
	if (next == NULL)
		return sx_fail(err, SX_E_AUTH, "CRL issued by %s has no nextUpdate", isubj);
	cmp = X509_cmp_time(next, &now);
	if (cmp == 0)
		return sx_fail(err, SX_E_AUTH, "CRL issued by %s has an unreadable nextUpdate",
			       isubj);
	if (cmp < 0) {
		sx_asn1_time_format(next, when, sizeof(when));
		return sx_fail(err, SX_E_AUTH, "CRL issued by %s is stale (nextUpdate %s)", isubj,
			       when);
	}
	return 0;
}

static int check_crl(X509_CRL *crl, X509 *leaf, X509 *issuer, time_t now, const char *subj,
		     sx_err *err)
{
	char isubj[320], when[32], serial[80];
	X509_REVOKED *rev = NULL;
	EVP_PKEY *ipub = X509_get0_pubkey(issuer);
	sx_cert_subject(issuer, isubj, sizeof(isubj));
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0)
		return sx_fail(err, SX_E_AUTH, "CRL is not issued by %s, the issuer of %s", isubj,
			       subj);
	if (ipub == NULL || X509_CRL_verify(crl, ipub) != 1) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH, "CRL signature does not verify against %s", isubj);
	}
	if (sx_crl_check_time(crl, now, err) < 0)
		return -1;
	if (X509_CRL_get0_by_cert(crl, &rev, leaf) == 1 && rev != NULL) {
		int crit = 0, reason = 0;
		ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL);
		const char *rname = "unspecified";
		static const char *const names[] = {
		    "unspecified",	  "keyCompromise", "cACompromise",
		    "affiliationChanged", "superseded",	   "cessationOfOperation",
		    "certificateHold",	  "unknown",	   "removeFromCRL",
		    "privilegeWithdrawn", "aACompromise"};
		if (e != NULL) {
			reason = (int)ASN1_ENUMERATED_get(e);
			rname = reason >= 0 && (size_t)reason < SX_ARRAY_LEN(names) ? names[reason]
										    : "unknown";
			ASN1_ENUMERATED_free(e);
		}
		sx_cert_serial_hex(leaf, serial, sizeof(serial));
		sx_asn1_time_format(X509_REVOKED_get0_revocationDate(rev), when, sizeof(when));
		return sx_fail(err, SX_E_AUTH,
			       "%s: certificate is revoked (serial %s, reason %s, since %s)", subj,
			       serial, rname, when);
	}
	ERR_clear_error();
	return 0;
}

int sx_policy_check(const sx_policy *pol, X509 *leaf, STACK_OF(X509) * chain, sx_role role,
		    const char *name, sx_err *err)
{
	int rc = -1;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *verified = NULL;
	char subj[320];
	time_t now = pol->now != 0 ? pol->now : time(NULL);

	SX_ENSURE(leaf != NULL, err, SX_E_AUTH, "no certificate to check");
	sx_cert_subject(leaf, subj, sizeof(subj));
	SX_ENSURE(pol->anchors != NULL && sk_X509_num(pol->anchors) > 0, err, SX_E_AUTH,
		  "%s: no trust anchor is configured", subj);

	/* 1. chain to an anchor, signatures and time validity of every link */
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	SX_ENSURE(store != NULL && ctx != NULL, err, SX_E_OTHER, "out of memory");
	for (int i = 0; i < sk_X509_num(pol->anchors); i++)
		SX_ENSURE(X509_STORE_add_cert(store, sk_X509_value(pol->anchors, i)) == 1, err,
			  SX_E_OTHER, "cannot add a trust anchor");
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "cannot set up certificate verification");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, now);
	if (X509_verify_cert(ctx) != 1) {
		ERR_clear_error();
		chain_failure(ctx, leaf, err);
		goto out;
	}
	verified = X509_STORE_CTX_get1_chain(ctx);
	SX_ENSURE(verified != NULL && sk_X509_num(verified) >= 1, err, SX_E_AUTH,
		  "%s: no verified chain", subj);

	/* 2. an end-entity certificate must not be a CA */
	SX_ENSURE(!(X509_get_extension_flags(leaf) & EXFLAG_CA), err, SX_E_AUTH,
		  "%s: leaf certificate claims CA:TRUE", subj);

	/* 3. key strength of every certificate in the chain */
	for (int i = 0; i < sk_X509_num(verified); i++) {
		X509 *c = sk_X509_value(verified, i);
		if (sx_key_check_strength(X509_get0_pubkey(c), err) < 0) {
			char csubj[320];
			sx_cert_subject(c, csubj, sizeof(csubj));
			sx_err_prefix(err, "%s: ", csubj);
			goto out;
		}
	}

	/* 4. keyUsage (when present) allows signatures; EKU for the role */
	SX_ENSURE(!(X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) ||
		      (X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE),
		  err, SX_E_AUTH, "%s: certificate keyUsage lacks digitalSignature", subj);
	SX_GUARD(check_eku(leaf, role, subj, err));

	/* 5. the expected name, against the SAN only */
	SX_GUARD(check_name(leaf, name, subj, err));

	/* 6. revocation, when a CRL is configured */
	if (pol->crl != NULL) {
		X509 *issuer = sk_X509_num(verified) > 1 ? sk_X509_value(verified, 1)
							 : sk_X509_value(verified, 0);
		SX_GUARD(check_crl(pol->crl, leaf, issuer, now, subj, err));
	}
	rc = 0;
out:
	sk_X509_pop_free(verified, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}
