/* Lifetimes of certificates (when renewal is due) and what a verifier needs
 * of a CRL besides its time: its number and its issuer's signature. */
#include "pki/sx_pki.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

void sx_cert_lifetime(X509 *cert, time_t now, sx_lifetime *out)
{
	if (now == 0)
		now = time(NULL);
	memset(out, 0, sizeof(*out));
	out->not_before = asn1_time(X509_get0_notBefore(cert));
	out->not_after = asn1_time(X509_get0_notAfter(cert));
	out->total = (long long)out->not_after - (long long)out->not_before;
	out->left = (long long)out->not_after - (long long)now;
}

/* Renew at two thirds of the lifetime: due once less than a third is left
 * (3 * left < total, in integers). An expired certificate is due too. */
bool sx_lifetime_renew_due(const sx_lifetime *l)
{
	if (l->total <= 0 || l->left <= 0)
		return true;
	return 3 * l->left < l->total;
}

static void span(long long s, char *buf, size_t cap)
{
	if (s >= 2 * 86400)
		snprintf(buf, cap, "%lld days", s / 86400);
	else if (s >= 2 * 3600)
		snprintf(buf, cap, "%lld hours", s / 3600);
	else if (s >= 120)
		snprintf(buf, cap, "%lld minutes", s / 60);
	else
		snprintf(buf, cap, "%lld seconds", s);
}

void sx_lifetime_describe(const sx_lifetime *l, char *buf, size_t cap)
{
	char left[32], total[32];
	span(l->total > 0 ? l->total : 0, total, sizeof(total));
	if (l->left <= 0) {
		span(-l->left, left, sizeof(left));
		snprintf(buf, cap, "expired %s ago (lifetime %s)", left, total);
		return;
	}
	span(l->left, left, sizeof(left));
	long long pct = l->total > 0 ? l->left * 100 / l->total : 0;
	if (pct > 100)
		snprintf(buf, cap, "%s left, not valid yet (lifetime %s)", left, total);
	else
		snprintf(buf, cap, "%s left (%lld%% of %s)", left, pct, total);
}

int sx_crl_number(X509_CRL *crl, uint64_t *out, sx_err *err)
{
	int crit = -1;
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
	int rc = -1;
	*out = 0;
	if (n == NULL) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH, "the CRL has no crlNumber");
	}
	if (ASN1_INTEGER_get_uint64(out, n) != 1) {
		ERR_clear_error();
		(void)sx_fail(err, SX_E_AUTH, "the CRL's crlNumber is negative or too large");
		goto out;
	}
	rc = 0;
out:
	ASN1_INTEGER_free(n);
	return rc;
}

int sx_crl_verify_anchors(X509_CRL *crl, STACK_OF(X509) * anchors, sx_err *err)
{
	X509_NAME *issuer = X509_CRL_get_issuer(crl);
	char name[320] = "(unnamed issuer)";
	if (issuer != NULL && X509_NAME_oneline(issuer, name, (int)sizeof(name)) == NULL)
		snprintf(name, sizeof(name), "(unnamed issuer)");
	bool named = false;
	/* Every anchor of the issuer's name is tried: a root rolled over to a
	 * new key under the same name sits beside the old one. */
	for (int i = 0; anchors != NULL && i < sk_X509_num(anchors); i++) {
		X509 *a = sk_X509_value(anchors, i);
		if (X509_NAME_cmp(issuer, X509_get_subject_name(a)) != 0)
			continue;
		named = true;
		EVP_PKEY *pub = X509_get0_pubkey(a);
		if (pub != NULL && X509_CRL_verify(crl, pub) == 1)
			return 0;
		ERR_clear_error();
	}
	if (named)
		return sx_fail(err, SX_E_AUTH,
			       "the CRL's signature does not verify against the trust anchor %s",
			       name);
	return sx_fail(err, SX_E_AUTH, "the CRL is issued by %s, which is not a trust anchor here",
		       name);
}
