/* What the enrollment service answers: ENROLL (a one-time token, under
 * the per-address limit of failed attempts), RENEW (only for a client
 * whose certificate the channel verified) and the CRL request
 * (docs/PROTOCOL.md "Enrollment", docs/PKI.md "Enrollment service,
 * renewal and CRL distribution"). */
#include "engine/enroll/enroll_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"

static void set_reason(enroll_answer *a, const char *text)
{
	size_t n = strlen(text);
	if (n > SX_ENROLL_REASON_MAX)
		n = SX_ENROLL_REASON_MAX;
	memcpy(a->reason, text, n);
	a->reason[n] = '\0';
}

void enroll_answer_error(enroll_answer *a, const sx_err *why)
{
	sx_class cls = why->cls == SX_OK ? SX_E_OTHER : why->cls;
	a->why = *why;
	a->result = cls == SX_E_AUTH ? "refused" : "failed";
	/* The client learns why it is refused; a failure of the service itself
	 * (its files, say) stays in the service's log, unless a->tell. */
	if (cls == SX_E_AUTH || cls == SX_E_INTEGRITY || cls == SX_E_USAGE || a->tell)
		set_reason(a, why->msg);
	else
		set_reason(a, "the enrollment service failed (its log says why)");
	a->msg = (sx_enroll_msg){.type = SX_EMSG_ERROR,
				 .err_class = (uint8_t)cls,
				 .reason = (const uint8_t *)a->reason,
				 .reason_len = strlen(a->reason)};
}

static int der_of_cert(X509 *x, unsigned char **out, size_t *len, sx_err *err)
{
	int n = i2d_X509(x, out);
	if (n <= 0)
		return sx_fail_ssl(err, SX_E_OTHER, "encoding a certificate");
	*len = (size_t)n;
	return 0;
}

/* ISSUED: the new leaf, the root, and the CA's current CRL when it has
 * one (so a new identity starts with a CRL). */
static int answer_issued(enroll_srv *s, X509 *leaf, enroll_answer *a, sx_err *err)
{
	X509_CRL *crl = NULL;
	sx_err none = {0};
	a->msg.type = SX_EMSG_ISSUED;
	SX_GUARD(der_of_cert(leaf, &a->leaf_der, &a->msg.leaf_len, err));
	SX_GUARD(der_of_cert(s->root, &a->root_der, &a->msg.root_len, err));
	a->msg.leaf = a->leaf_der;
	a->msg.root = a->root_der;
	if (sx_ca_svc_crl(s->ca, &crl, &none) == 0 && crl != NULL) {
		int n = i2d_X509_CRL(crl, &a->crl_der);
		SX_ENSURE(n > 0, err, SX_E_OTHER, "encoding the CRL");
		a->msg.crl = a->crl_der;
		a->msg.crl_len = (size_t)n;
	}
	if (sx_cert_name(leaf, a->name, sizeof(a->name), &none) < 0)
		a->name[0] = '\0';
	sx_cert_serial_hex(leaf, a->serial, sizeof(a->serial));
	a->result = "issued";
	X509_CRL_free(crl);
	return 0;
out:
	X509_CRL_free(crl);
	return -1;
}

static int parse_csr(const sx_enroll_msg *req, X509_REQ **csr, enroll_answer *a, sx_err *err)
{
	sx_err none = {0};
	if (sx_csr_from_der(req->csr, req->csr_len, csr, err) < 0) {
		sx_err_prefix(err, "the request's CSR: ");
		return -1;
	}
	if (a->name[0] == '\0' && sx_csr_name(*csr, a->name, sizeof(a->name), &none) < 0)
		a->name[0] = '\0';
	return 0;
}

/* ENROLL: refused at once while the address has too many failed attempts
 * (the CA is not touched); a failure counts against it. Attempts run one
 * at a time under the limit's lock (the CA takes its own anyway), so a
 * burst of parallel attempts cannot pass the check together. */
static int answer_enroll(enroll_srv *s, const enroll_asker *who, const sx_enroll_msg *req,
			 X509 **out, enroll_answer *a, sx_err *err)
{
	char token[SX_ENROLL_TOKEN_MAX + 1];
	X509_REQ *csr = NULL;
	uint64_t now = sx_now_ns() / 1000000000u;
	int rc = -1;
	memcpy(token, req->token, req->token_len);
	token[req->token_len] = '\0';
	pthread_mutex_lock(&s->rl_mu);
	unsigned wait = sx_ratelimit_check(s->rl, who->rl_key, now);
	if (wait > 0) {
		(void)sx_fail(err, SX_E_AUTH,
			      "too many failed enrollment attempts from %s; retry in %u s",
			      who->rl_name, wait);
		a->result = "limited";
		goto out;
	}
	if (parse_csr(req, &csr, a, err) == 0)
		rc = sx_ca_svc_enroll(s->ca, token, csr, out, err);
	if (rc < 0)
		sx_ratelimit_fail(s->rl, who->rl_key, now);
out:
	pthread_mutex_unlock(&s->rl_mu);
	OPENSSL_cleanse(token, sizeof(token));
	X509_REQ_free(csr);
	return rc;
}

/* RENEW: the channel verified the client's certificate (chain, time,
 * role); the CA checks it is in its index and not revoked. */
static int answer_renew(enroll_srv *s, const enroll_asker *who, const sx_enroll_msg *req,
			X509 **out, enroll_answer *a, sx_err *err)
{
	const enroll_peer *p = who->peer;
	X509_REQ *csr = NULL;
	int rc = -1;
	snprintf(a->name, sizeof(a->name), "%s", p->name);
	SX_ENSURE(p->verified && p->chain != NULL, err, SX_E_AUTH,
		  "renewal needs a valid certificate of this CA: %s", p->problem);
	SX_GUARD(parse_csr(req, &csr, a, err));
	rc = sx_ca_svc_renew(s->ca, sk_X509_value(p->chain, 0), csr, out, err);
out:
	X509_REQ_free(csr);
	return rc;
}

static int answer_crl(enroll_srv *s, enroll_answer *a, sx_err *err)
{
	X509_CRL *crl = NULL;
	int n;
	if (sx_ca_svc_crl(s->ca, &crl, err) < 0)
		return -1;
	if (crl == NULL) {
		a->tell = true; /* the device can do nothing else about it */
		return sx_fail(err, SX_E_IO,
			       "the CA has made no CRL yet (its operator runs "
			       "sxfer ca crl)");
	}
	n = i2d_X509_CRL(crl, &a->crl_der);
	X509_CRL_free(crl);
	if (n <= 0)
		return sx_fail_ssl(err, SX_E_OTHER, "encoding the CRL");
	a->msg = (sx_enroll_msg){.type = SX_EMSG_CRL, .crl = a->crl_der, .crl_len = (size_t)n};
	a->result = "crl";
	return 0;
}

void enroll_answer_request(enroll_srv *s, const enroll_asker *who, const sx_enroll_msg *req,
			   enroll_answer *a)
{
	sx_err err = {0};
	X509 *issued = NULL;
	int rc = -1;
	switch (req->type) {
	case SX_EMSG_ENROLL:
		a->kind = "enroll";
		rc = answer_enroll(s, who, req, &issued, a, &err);
		break;
	case SX_EMSG_RENEW:
		a->kind = "renew";
		rc = answer_renew(s, who, req, &issued, a, &err);
		break;
	case SX_EMSG_CRL_REQ:
		a->kind = "crl";
		snprintf(a->name, sizeof(a->name), "%s", who->peer->name);
		rc = answer_crl(s, a, &err);
		break;
	default:
		a->kind = "other";
		(void)sx_fail(&err, SX_E_INTEGRITY, "a %s message is not a request",
			      sx_enroll_msg_name(req->type));
	}
	if (rc == 0 && issued != NULL)
		rc = answer_issued(s, issued, a, &err);
	if (rc < 0) {
		const char *limited = a->result;
		enroll_answer_error(a, &err);
		if (limited != NULL)
			a->result = limited;
	}
	X509_free(issued);
}

void enroll_answer_free(enroll_answer *a)
{
	OPENSSL_free(a->leaf_der);
	OPENSSL_free(a->root_der);
	OPENSSL_free(a->crl_der);
	memset(a, 0, sizeof(*a));
}
