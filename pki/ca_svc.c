/* The CA as a service (`ca serve`, docs/PKI.md "Tokens"): the root and its
 * key are loaded once; every operation takes an in-process mutex (callers
 * may be threads) and the CA's flock, re-reads the index and the tokens
 * under them, writes atomically and lets go, so `ca issue`, `ca revoke` or
 * `ca token` run beside a running service.
 *
 * Enrollment spends the token before it issues: the token's record is
 * marked used (with the serial about to be issued) and written durably,
 * then the certificate file and the index. A crash in between leaves a
 * spent token and no certificate (make a new token), never a token that
 * can be used twice. */
#include "pki/ca_int.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/sx_util.h"

#define RENEW_SAN_MAX 64

struct sx_ca_svc {
	pthread_mutex_t mu;
};

int sx_ca_svc_open(const char *dir, const sx_pass *pass, sx_ca **out, sx_err *err)
{
	int rc = -1;
	sx_ca *ca = calloc(1, sizeof(*ca));
	*out = NULL;
	SX_ENSURE(ca != NULL, err, SX_E_OTHER, "out of memory");
	ca->lock_fd = -1;
	ca->svc = calloc(1, sizeof(*ca->svc));
	SX_ENSURE(ca->svc != NULL, err, SX_E_OTHER, "out of memory");
	if (pthread_mutex_init(&ca->svc->mu, NULL) != 0) {
		free(ca->svc);
		ca->svc = NULL;
		sx_fail(err, SX_E_OTHER, "cannot create the CA's mutex");
		goto out;
	}
	SX_GUARD(sx_ca_load_root(ca, dir, pass, err));
	/* A broken index is reported now rather than at the first request. */
	SX_GUARD(sx_ca_db_load(dir, &ca->db, err));
	sx_ca_db_free(&ca->db);
	*out = ca;
	ca = NULL;
	rc = 0;
out:
	sx_ca_svc_close(ca);
	return rc;
}

void sx_ca_svc_close(sx_ca *ca)
{
	if (ca == NULL)
		return;
	if (ca->svc != NULL) {
		pthread_mutex_destroy(&ca->svc->mu);
		free(ca->svc);
	}
	sx_ca_close(ca);
	free(ca);
}

X509 *sx_ca_svc_root(sx_ca *ca)
{
	return ca->cert;
}

/* The mutex, the flock, then a fresh index. */
static int svc_begin(sx_ca *ca, sx_err *err)
{
	if (ca->svc == NULL)
		return sx_fail(err, SX_E_OTHER, "the CA was not opened as a service");
	pthread_mutex_lock(&ca->svc->mu);
	if (sx_ca_lock_take(ca->dir, &ca->lock_fd, err) == 0 &&
	    sx_ca_db_load(ca->dir, &ca->db, err) == 0)
		return 0;
	if (ca->lock_fd >= 0)
		close(ca->lock_fd);
	ca->lock_fd = -1;
	pthread_mutex_unlock(&ca->svc->mu);
	return -1;
}

static void svc_end(sx_ca *ca)
{
	sx_ca_db_free(&ca->db);
	sx_ca_db_free(&ca->superseded);
	if (ca->lock_fd >= 0)
		close(ca->lock_fd); /* releases the flock */
	ca->lock_fd = -1;
	pthread_mutex_unlock(&ca->svc->mu);
}

int sx_ca_svc_crl(sx_ca *ca, X509_CRL **out, sx_err *err)
{
	char path[4096];
	*out = NULL;
	if (sx_ca_path(path, sizeof(path), ca->dir, "crl.pem", err) < 0)
		return -1;
	if (access(path, F_OK) != 0)
		return 0;		    /* none yet */
	return sx_crl_load(path, out, err); /* replaced atomically: no lock needed */
}

/* ---- enrollment ------------------------------------------------------------ */

static void claims_sans(const sx_claims *c, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < c->ndns + c->nips && used < cap; i++) {
		int n = snprintf(buf + used, cap - used, "%s%s:%s", used ? ", " : "",
				 i < c->ndns ? "DNS" : "IP",
				 i < c->ndns ? c->dns[i] : c->ips[i - c->ndns]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (buf[0] == '\0')
		snprintf(buf, cap, "(none)");
}

/* The same DNS names (any order and case) and IP addresses (canonical). */
static bool sans_equal(const sx_claims *a, const sx_claims *b)
{
	bool taken[SX_TOKEN_SAN_MAX] = {false};
	if (a->ndns != b->ndns || a->nips != b->nips)
		return false;
	for (size_t i = 0; i < a->ndns; i++) {
		size_t j = 0;
		while (j < b->ndns && (taken[j] || strcasecmp(a->dns[i], b->dns[j]) != 0))
			j++;
		if (j == b->ndns)
			return false;
		taken[j] = true;
	}
	memset(taken, 0, sizeof(taken));
	for (size_t i = 0; i < a->nips; i++) {
		size_t j = 0;
		while (j < b->nips && (taken[j] || strcmp(a->ips[i], b->ips[j]) != 0))
			j++;
		if (j == b->nips)
			return false;
		taken[j] = true;
	}
	return true;
}

/* What the request asks for must be exactly what the token allows (no
 * role asked: the token's). */
static int claims_match(const sx_claims *tok, const sx_claims *ask, sx_err *err)
{
	char a[1200], t[1200];
	if (strcmp(ask->name, tok->name) != 0)
		return sx_fail(err, SX_E_AUTH,
			       "the request asks for name '%s'; the token is for '%s'", ask->name,
			       tok->name);
	if (ask->has_profile && ask->profile != tok->profile)
		return sx_fail(err, SX_E_AUTH,
			       "the request asks for role '%s'; the token is for '%s'",
			       sx_profile_name(ask->profile), sx_profile_name(tok->profile));
	if (!sans_equal(tok, ask)) {
		claims_sans(ask, a, sizeof(a));
		claims_sans(tok, t, sizeof(t));
		return sx_fail(err, SX_E_AUTH,
			       "the request asks for subjectAltName '%s'; the token is for '%s'", a,
			       t);
	}
	return 0;
}

/* The token's record: known, unused, not expired. */
static int token_usable(sx_ca *ca, const sx_token_db *tdb, const char *hash, const sx_claims *tok,
			time_t now, sx_token_rec **out, sx_err *err)
{
	uint8_t fp[SX_CERT_FP_LEN];
	char t[32];
	sx_token_rec *r = sx_token_db_find(tdb, hash);
	*out = NULL;
	if (r == NULL) {
		if (sx_cert_fp(ca->cert, fp, err) == 0 && memcmp(fp, tok->ca_fp, sizeof(fp)) != 0)
			return sx_fail(err, SX_E_AUTH, "unknown token (made by another CA)");
		return sx_fail(err, SX_E_AUTH, "unknown token");
	}
	if (r->used) {
		sx_time_format(r->used_at, t, sizeof(t));
		return sx_fail(err, SX_E_AUTH, "token already used (at %s, serial %s)", t,
			       r->serial[0] ? r->serial : "-");
	}
	if (now >= r->expires) {
		sx_time_format(r->expires, t, sizeof(t));
		return sx_fail(err, SX_E_AUTH, "token expired (at %s)", t);
	}
	*out = r;
	return 0;
}

/* The request: self-signature, claims equal to the token's, a strong key. */
static int request_ok(X509_REQ *csr, const sx_claims *tok, sx_err *err)
{
	sx_claims ask;
	if (sx_csr_ask(csr, &ask, err) < 0 || claims_match(tok, &ask, err) < 0)
		return -1;
	return sx_key_check_strength(X509_REQ_get0_pubkey(csr), err);
}

static void log_superseded(const sx_ca_db *found, const char *name, const char *serial)
{
	for (size_t i = 0; i < found->n; i++)
		sx_log("info", "ca_superseded", "serial=%s name=%s by=%s",
		       SX_LOGQ(found->e[i].serial), SX_LOGQ(name), SX_LOGQ(serial));
}

int sx_ca_svc_enroll(sx_ca *ca, const char *token, X509_REQ *csr, X509 **out, sx_err *err)
{
	int rc = -1;
	sx_claims tok;
	char hash[SX_TOKEN_HASH_HEX], serial[SX_SERIAL_HEX_MAX];
	const char *dns[SX_TOKEN_SAN_MAX], *ips[SX_TOKEN_SAN_MAX];
	sx_token_db tdb = {0};
	sx_token_rec *rec = NULL;
	sx_ca_db found = {0};
	sx_cert_spec spec = {0};
	X509 *cert = NULL;
	bool locked = false;
	time_t now = time(NULL);

	*out = NULL;
	if (sx_token_parse(token, &tok, err) < 0) {
		err->cls = SX_E_AUTH;
		sx_err_prefix(err, "unknown token: ");
		goto out;
	}
	SX_GUARD(sx_token_hash(token, hash, err));
	SX_GUARD(svc_begin(ca, err));
	locked = true;
	SX_GUARD(sx_token_db_load(ca->dir, &tdb, err));
	SX_GUARD(token_usable(ca, &tdb, hash, &tok, now, &rec, err));
	SX_GUARD(request_ok(csr, &tok, err));
	SX_GUARD(sx_ca_name_rule(&ca->db, tok.name, tok.replace, now,
				 "a token made with 'sxfer ca token --replace' revokes it", &found,
				 err));
	for (size_t i = 0; i < tok.ndns; i++)
		dns[i] = tok.dns[i];
	for (size_t i = 0; i < tok.nips; i++)
		ips[i] = tok.ips[i];
	spec = (sx_cert_spec){.profile = tok.profile,
			      .name = tok.name,
			      .dns = dns,
			      .ndns = tok.ndns,
			      .ips = ips,
			      .nips = tok.nips};
	SX_GUARD(sx_ca_build_leaf(ca, &spec, X509_REQ_get0_pubkey(csr), 0, &cert, serial, err));
	/* Spent first, durably; then issued. */
	rec->used = true;
	rec->used_at = now;
	memcpy(rec->serial, serial, sizeof(serial));
	SX_GUARD(sx_token_db_store(ca->dir, &tdb, now, err));
	if (sx_ca_record_leaf(ca, cert, serial, tok.name, tok.profile, &found, err) < 0) {
		sx_err_prefix(err, "the token is spent (make a new one): ");
		goto out;
	}
	log_superseded(&found, tok.name, serial);
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	if (locked)
		svc_end(ca);
	sx_ca_db_free(&found);
	sx_token_db_free(&tdb);
	X509_free(cert);
	OPENSSL_cleanse(&tok, sizeof(tok));
	return rc;
}

/* ---- renewal --------------------------------------------------------------- */

typedef struct renew_sans {
	char dns[RENEW_SAN_MAX][256];
	char ips[RENEW_SAN_MAX][INET6_ADDRSTRLEN];
	const char *dnsp[RENEW_SAN_MAX], *ipsp[RENEW_SAN_MAX];
	size_t ndns, nips;
} renew_sans;

/* current's DNS and IP SANs, for the new certificate. */
static int copy_sans(X509 *current, renew_sans *s, sx_err *err)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(current, NID_subject_alt_name, NULL, NULL);
	int rc = -1;
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		int type;
		const ASN1_STRING *v =
		    GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &type);
		const unsigned char *d = ASN1_STRING_get0_data(v);
		int len = ASN1_STRING_length(v);
		if (type == GEN_DNS && len > 0 && len < 256 && s->ndns < RENEW_SAN_MAX) {
			memcpy(s->dns[s->ndns], d, (size_t)len);
			s->dnsp[s->ndns] = s->dns[s->ndns];
			s->ndns++;
		} else if (type == GEN_IPADD && (len == 4 || len == 16) &&
			   s->nips < RENEW_SAN_MAX) {
			inet_ntop(len == 4 ? AF_INET : AF_INET6, d, s->ips[s->nips],
				  sizeof(s->ips[0]));
			s->ipsp[s->nips] = s->ips[s->nips];
			s->nips++;
		} else {
			SX_ENSURE(false, err, SX_E_AUTH,
				  "the certificate has a subjectAltName this CA does not renew");
		}
	}
	rc = 0;
out:
	ERR_clear_error();
	GENERAL_NAMES_free(gens);
	return rc;
}

/* current: issued by this root (signature), in the index, not revoked, not
 * expired; *entry points into ca->db. */
static int renew_check(sx_ca *ca, X509 *current, const char *subj, time_t now, sx_ca_entry **entry,
		       sx_err *err)
{
	char serial[80], norm[SX_SERIAL_HEX_MAX], t[32];
	time_t na = 0;
	sx_ca_entry *e;
	if (X509_check_issued(ca->cert, current) != X509_V_OK ||
	    X509_verify(current, X509_get0_pubkey(ca->cert)) != 1) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH, "%s: not issued by this CA", subj);
	}
	sx_cert_serial_hex(current, serial, sizeof(serial));
	if (sx_serial_normalize(serial, norm) < 0 || (e = sx_ca_db_find(&ca->db, norm)) == NULL)
		return sx_fail(err, SX_E_AUTH, "%s: serial %s is not in the index of this CA", subj,
			       serial);
	if (e->revoked_at != 0) {
		sx_time_format(e->revoked_at, t, sizeof(t));
		return sx_fail(err, SX_E_AUTH,
			       "%s: certificate is revoked (serial %s, reason %s, since %s)", subj,
			       e->serial, sx_crl_reason_name(e->reason), t);
	}
	if (sx_asn1_to_time_t(X509_get0_notAfter(current), &na) < 0 || now >= na) {
		sx_asn1_time_format(X509_get0_notAfter(current), t, sizeof(t));
		return sx_fail(err, SX_E_AUTH, "%s: certificate has expired (notAfter %s)", subj,
			       t);
	}
	*entry = e;
	return 0;
}

/* The caller has authenticated the holder of current (the enrollment
 * service: TLS client authentication with it). Renewal is exempt from the
 * one-name rule and does not revoke current: it expires on its own. */
int sx_ca_svc_renew(sx_ca *ca, X509 *current, X509_REQ *csr, X509 **out, sx_err *err)
{
	int rc = -1;
	char subj[320], name[SX_CN_MAX * 4 + 1], serial[SX_SERIAL_HEX_MAX];
	renew_sans *sans = calloc(1, sizeof(*sans));
	sx_ca_entry *e = NULL;
	sx_cert_spec spec = {0};
	X509 *cert = NULL;
	EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
	time_t now = time(NULL), nb = 0, na = 0;
	bool locked = false;

	*out = NULL;
	SX_ENSURE(sans != NULL, err, SX_E_OTHER, "out of memory");
	sx_cert_subject(current, subj, sizeof(subj));
	SX_ENSURE(pub != NULL && X509_REQ_verify(csr, pub) == 1, err, SX_E_AUTH,
		  "the request's self-signature does not verify");
	SX_GUARD(sx_key_check_strength(pub, err));
	SX_GUARD(sx_cert_name(current, name, sizeof(name), err));
	SX_GUARD(copy_sans(current, sans, err));
	SX_ENSURE(sx_asn1_to_time_t(X509_get0_notBefore(current), &nb) == 0 &&
		      sx_asn1_to_time_t(X509_get0_notAfter(current), &na) == 0 && na > nb,
		  err, SX_E_AUTH, "%s: unreadable validity", subj);
	SX_GUARD(svc_begin(ca, err));
	locked = true;
	SX_GUARD(renew_check(ca, current, subj, now, &e, err));
	SX_ENSURE(strcmp(e->name, name) == 0, err, SX_E_AUTH, "%s: the index names serial %s '%s'",
		  subj, e->serial, e->name);
	spec = (sx_cert_spec){.profile = e->profile,
			      .name = e->name,
			      .dns = sans->dnsp,
			      .ndns = sans->ndns,
			      .ips = sans->ipsp,
			      .nips = sans->nips};
	/* The same lifetime as current, from now (backdated); build_leaf keeps
	 * it inside the root's. */
	spec.not_before = now - SX_BACKDATE_SECONDS;
	spec.not_after = spec.not_before + (na - nb);
	snprintf(name, sizeof(name), "%s", e->name);
	SX_GUARD(sx_ca_build_leaf(ca, &spec, pub, 0, &cert, serial, err));
	SX_GUARD(sx_ca_record_leaf(ca, cert, serial, name, spec.profile, NULL, err));
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	ERR_clear_error();
	if (locked)
		svc_end(ca);
	X509_free(cert);
	free(sans);
	return rc;
}
