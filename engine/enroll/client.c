/* The clients of the enrollment service: sxfer enroll (a first
 * certificate for a key made here, with a one-time token, the service's
 * root pinned by fingerprint), sxfer renew (a new certificate for the
 * current one, over mutual TLS) and sxfer crl fetch (the CA's current
 * CRL). Everything that comes back is checked here before it is written:
 * the service is trusted to issue, not to say what was issued. */
#include "engine/enroll/enroll_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "pki/sx_ca.h"

int enroll_exchange(const sx_enroll_net *net, sx_chan_ctx *ctx, const sx_enroll_msg *req,
		    enroll_conn **conn, sx_enroll_msg *answer, sx_err *err)
{
	int t = net->timeout_ms > 0 ? net->timeout_ms : SX_ENROLL_TIMEOUT_MS;
	int fd = -1;
	*conn = NULL;
	SX_GUARD(sx_net_connect(net->host, net->port, t, &fd, err));
	SX_GUARD(enroll_conn_new(conn, fd, ctx, err));
	SX_GUARD(enroll_conn_handshake(*conn, t, err));
	SX_GUARD(enroll_conn_send(*conn, req, t, err));
	SX_GUARD(enroll_conn_recv(*conn, answer, t, err));
	if (answer->type == SX_EMSG_ERROR)
		return sx_fail(err, (sx_class)answer->err_class, "enrollment service: %.*s",
			       (int)answer->reason_len, (const char *)answer->reason);
	return 0;
out:
	return -1;
}

/* The answer must be of the kind asked for. */
int enroll_expect(const sx_enroll_msg *m, uint8_t type, sx_err *err)
{
	if (m->type == type)
		return 0;
	return sx_fail(err, SX_E_INTEGRITY, "the enrollment service answered %s, not %s",
		       sx_enroll_msg_name(m->type), sx_enroll_msg_name(type));
}

/* Strict DER: exactly the bytes of one object. */
int enroll_der_cert(const uint8_t *p, size_t n, X509 **out, sx_err *err)
{
	const unsigned char *q = p;
	*out = d2i_X509(NULL, &q, (long)n);
	if (*out == NULL || q != p + n) {
		X509_free(*out);
		*out = NULL;
		return sx_fail_ssl(err, SX_E_INTEGRITY, "the service sent a malformed certificate");
	}
	return 0;
}

int enroll_der_crl(const uint8_t *p, size_t n, X509_CRL **out, sx_err *err)
{
	const unsigned char *q = p;
	*out = d2i_X509_CRL(NULL, &q, (long)n);
	if (*out == NULL || q != p + n) {
		X509_CRL_free(*out);
		*out = NULL;
		return sx_fail_ssl(err, SX_E_INTEGRITY, "the service sent a malformed CRL");
	}
	return 0;
}

static sx_role role_of(const char *role)
{
	return strcmp(role, "server") == 0   ? SX_ROLE_SERVER
	       : strcmp(role, "client") == 0 ? SX_ROLE_CLIENT
					     : SX_ROLE_SIGNER;
}

/* The CRL that came with a certificate: signed by one of anchors (else the
 * service is not what it claims); kept (*keep) only while it is current. */
int enroll_check_crl(X509_CRL *crl, STACK_OF(X509) * anchors, bool *keep, sx_err *err)
{
	sx_err stale = {0};
	*keep = false;
	if (crl == NULL)
		return 0;
	if (sx_crl_verify_anchors(crl, anchors, err) < 0) {
		sx_err_prefix(err, "the CRL the service sent: ");
		return -1;
	}
	*keep = sx_crl_check_time(crl, 0, &stale) == 0;
	if (!*keep)
		sx_log("warn", "crl_not_kept", "reason=%s", SX_LOGQ(stale.msg));
	return 0;
}

/* An issued certificate, before anything is written: for our key, for the
 * name and role we hold or asked, valid under anchors (and the CRL). */
int enroll_check_issued(X509 *leaf, EVP_PKEY *key, const char *name, const char *role,
			STACK_OF(X509) * anchors, X509_CRL *crl, sx_err *err)
{
	char got[256];
	sx_policy pol = {.anchors = anchors, .crl = crl};
	SX_ENSURE(X509_check_private_key(leaf, key) == 1, err, SX_E_AUTH,
		  "the issued certificate is not for our key");
	SX_GUARD(sx_cert_name(leaf, got, sizeof(got), err));
	SX_ENSURE(strcmp(got, name) == 0, err, SX_E_AUTH,
		  "the issued certificate is for '%s', not '%s'", got, name);
	SX_ENSURE(strcmp(sx_cert_role(leaf), role) == 0, err, SX_E_AUTH,
		  "the issued certificate's role is %s, not %s", sx_cert_role(leaf), role);
	if (sx_policy_check(&pol, leaf, NULL, role_of(role), NULL, err) < 0) {
		sx_err_prefix(err, "the issued certificate: ");
		goto out;
	}
	return 0;
out:
	return -1;
}

static void describe_cert(X509 *leaf, char *serial, size_t scap, char *until, size_t ucap)
{
	sx_cert_serial_hex(leaf, serial, scap);
	sx_asn1_time_format(X509_get0_notAfter(leaf), until, ucap);
}

void enroll_result_fill(sx_enroll_result *res, const enroll_conn *conn, X509 *leaf, X509 *root)
{
	uint8_t fp[SX_CERT_FP_LEN];
	sx_err none = {0};
	snprintf(res->server, sizeof(res->server), "%s", enroll_conn_peer(conn)->name);
	if (sx_cert_name(leaf, res->name, sizeof(res->name), &none) < 0)
		res->name[0] = '\0';
	snprintf(res->role, sizeof(res->role), "%s", sx_cert_role(leaf));
	sx_cert_sans(leaf, res->sans, sizeof(res->sans));
	describe_cert(leaf, res->serial, sizeof(res->serial), res->not_after,
		      sizeof(res->not_after));
	if (root != NULL && sx_cert_fp(root, fp, &none) == 0)
		sx_hex(fp, sizeof(fp), res->ca_fp);
}

/* ---- sxfer enroll ------------------------------------------------------- */

/* What the CSR asks for: the token's claims, or what the user says. */
static int enroll_ask(const sx_enroll_cfg *cfg, const sx_claims *tok, sx_claims *ask, sx_err *err)
{
	*ask = *tok;
	ask->expires = 0;
	ask->replace = false;
	memset(ask->ca_fp, 0, sizeof(ask->ca_fp));
	if (cfg->name != NULL) {
		SX_GUARD(sx_name_check(cfg->name, err));
		snprintf(ask->name, sizeof(ask->name), "%s", cfg->name);
	}
	if (cfg->role != NULL && sx_profile_parse(cfg->role, &ask->profile) < 0)
		return sx_fail(err, SX_E_USAGE, "--role must be server, client or both, not '%s'",
			       cfg->role);
	ask->has_profile = true;
	SX_ENSURE(cfg->ndns <= SX_TOKEN_SAN_MAX && cfg->nips <= SX_TOKEN_SAN_MAX, err, SX_E_USAGE,
		  "at most %d --dns and %d --ip", SX_TOKEN_SAN_MAX, SX_TOKEN_SAN_MAX);
	if (cfg->ndns > 0)
		ask->ndns = cfg->ndns;
	for (size_t i = 0; i < cfg->ndns; i++)
		snprintf(ask->dns[i], sizeof(ask->dns[i]), "%s", cfg->dns[i]);
	if (cfg->nips > 0)
		ask->nips = cfg->nips;
	for (size_t i = 0; i < cfg->nips; i++)
		snprintf(ask->ips[i], sizeof(ask->ips[i]), "%s", cfg->ips[i]);
	return 0;
out:
	return -1;
}

/* Before anything is sent: the token is for the pinned root, the folder
 * can take a new identity, the passphrase is known. */
static int enroll_prepare(const sx_enroll_cfg *cfg, uint8_t pin[SX_CERT_FP_LEN], sx_claims *ask,
			  enroll_pass *pc, bool *made, sx_err *err)
{
	sx_claims tok;
	char a[SX_CERT_FP_HEX_LEN], b[SX_CERT_FP_HEX_LEN];
	SX_GUARD(sx_enroll_fp_parse(cfg->ca_fp, pin, err));
	if (sx_token_parse(cfg->token, &tok, err) < 0) {
		sx_err_prefix(err, "the token: ");
		goto out;
	}
	sx_hex(tok.ca_fp, sizeof(tok.ca_fp), a);
	sx_hex(pin, SX_CERT_FP_LEN, b);
	SX_ENSURE(CRYPTO_memcmp(tok.ca_fp, pin, SX_CERT_FP_LEN) == 0, err, SX_E_AUTH,
		  "the token was made by the CA %s, not by the pinned root %s; it was not sent", a,
		  b);
	SX_GUARD(enroll_ask(cfg, &tok, ask, err));
	SX_GUARD(enroll_out_prepare(cfg->out_dir, made, err));
	return enroll_pass_ask(pc, err);
out:
	return -1;
}

/* The key, and the request for it. */
static int enroll_request(const sx_enroll_cfg *cfg, const sx_claims *ask, EVP_PKEY **key,
			  unsigned char **csr_der, int *csr_len, sx_err *err)
{
	X509_REQ *csr = NULL;
	int rc = -1;
	SX_GUARD(sx_key_generate(cfg->key_type, key, err));
	SX_GUARD(sx_csr_build_ask(*key, ask, &csr, err));
	*csr_len = i2d_X509_REQ(csr, csr_der);
	SX_ENSURE(*csr_len > 0, err, SX_E_OTHER, "encoding the request");
	rc = 0;
out:
	X509_REQ_free(csr);
	return rc;
}

/* ISSUED for us: root the pinned one, leaf as asked, CRL from that root. */
static int enroll_check(const sx_enroll_msg *m, const uint8_t *pin, EVP_PKEY *key,
			const sx_claims *ask, X509 **leaf, X509 **root, X509_CRL **crl, sx_err *err)
{
	STACK_OF(X509) *anchors = NULL;
	uint8_t fp[SX_CERT_FP_LEN];
	bool keep = false;
	int rc = -1;
	SX_GUARD(enroll_expect(m, SX_EMSG_ISSUED, err));
	SX_GUARD(enroll_der_cert(m->leaf, m->leaf_len, leaf, err));
	SX_GUARD(enroll_der_cert(m->root, m->root_len, root, err));
	SX_GUARD(sx_cert_fp(*root, fp, err));
	SX_ENSURE(CRYPTO_memcmp(fp, pin, sizeof(fp)) == 0, err, SX_E_AUTH,
		  "the service sent another root than the pinned one");
	if (m->crl_len > 0)
		SX_GUARD(enroll_der_crl(m->crl, m->crl_len, crl, err));
	anchors = sk_X509_new_null();
	SX_ENSURE(anchors != NULL && sk_X509_push(anchors, *root) > 0, err, SX_E_OTHER,
		  "out of memory");
	SX_GUARD(enroll_check_crl(*crl, anchors, &keep, err));
	if (!keep) {
		X509_CRL_free(*crl);
		*crl = NULL;
	}
	rc = enroll_check_issued(*leaf, key, ask->name, sx_profile_name(ask->profile), anchors,
				 *crl, err);
out:
	sk_X509_free(anchors);
	return rc;
}

int sx_enroll_run(const sx_enroll_cfg *cfg, sx_enroll_result *res, sx_err *err)
{
	uint8_t pin[SX_CERT_FP_LEN];
	sx_claims ask;
	enroll_pass pc;
	sx_identity none = {0};
	sx_chan_ctx *ctx = NULL;
	enroll_conn *conn = NULL;
	EVP_PKEY *key = NULL;
	unsigned char *csr = NULL;
	int csr_len = 0, rc = -1;
	X509 *leaf = NULL, *root = NULL;
	X509_CRL *crl = NULL;
	sx_enroll_msg req = {.type = SX_EMSG_ENROLL}, m;
	bool made = false;
	memset(res, 0, sizeof(*res));
	enroll_pass_init(&pc, cfg->pass);
	SX_GUARD(enroll_prepare(cfg, pin, &ask, &pc, &made, err));
	SX_GUARD(enroll_request(cfg, &ask, &key, &csr, &csr_len, err));
	SX_GUARD(enroll_ctx_client(&none, NULL, pin,
				   cfg->net.server_name ? cfg->net.server_name : cfg->net.host,
				   &ctx, err));
	req.token = (const uint8_t *)cfg->token;
	req.token_len = strlen(cfg->token);
	req.csr = csr;
	req.csr_len = (size_t)csr_len;
	SX_GUARD(enroll_exchange(&cfg->net, ctx, &req, &conn, &m, err));
	SX_GUARD(enroll_check(&m, pin, key, &ask, &leaf, &root, &crl, err));
	SX_GUARD(enroll_out_write(cfg->out_dir, key, &pc.pass, leaf, root, crl, err));
	enroll_result_fill(res, conn, leaf, root);
	res->crl_written = crl != NULL;
	rc = 0;
out:
	/* A folder made for nothing goes again (only if it is empty). */
	if (rc < 0 && made)
		(void)rmdir(cfg->out_dir);
	enroll_pass_wipe(&pc);
	enroll_conn_free(conn);
	enroll_ctx_free(ctx);
	EVP_PKEY_free(key);
	OPENSSL_free(csr);
	X509_free(leaf);
	X509_free(root);
	X509_CRL_free(crl);
	return rc;
}
