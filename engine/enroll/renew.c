/* sxfer renew and sxfer crl fetch: an identity that has a certificate of
 * the CA talks to the enrollment service over mutual TLS, the service's
 * certificate checked against the identity's ca.pem as for any transfer. */
#include "engine/enroll/enroll_int.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"

/* The identity's CRL checks the service's certificate while it is current;
 * a stale one is left out (renewing or fetching a CRL is what one does
 * once it is stale). */
static X509_CRL *usable_crl(const sx_identity *id)
{
	sx_err stale = {0};
	if (id->crl == NULL)
		return NULL;
	if (sx_crl_check_time(id->crl, 0, &stale) == 0)
		return id->crl;
	sx_log("warn", "crl_stale", "reason=%s", SX_LOGQ(stale.msg));
	return NULL;
}

/* The type of a new key: that of the current one. */
static sx_key_type key_type_of(EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_ED25519: return SX_KEY_ED25519;
	case EVP_PKEY_RSA: return SX_KEY_RSA3072;
	default: return SX_KEY_P256;
	}
}

static void describe_old(X509 *old, sx_enroll_result *res)
{
	sx_cert_serial_hex(old, res->old_serial, sizeof(res->old_serial));
	sx_asn1_time_format(X509_get0_notAfter(old), res->old_not_after,
			    sizeof(res->old_not_after));
}

/* Connects with id, sends req, returns the answer of type want. */
static int ask_service(const sx_enroll_net *net, const sx_identity *id, const sx_enroll_msg *req,
		       uint8_t want, enroll_conn **conn, sx_enroll_msg *m, sx_err *err)
{
	sx_chan_ctx *ctx = NULL;
	int rc = -1;
	SX_GUARD(enroll_ctx_client(id, usable_crl(id), NULL,
				   net->server_name ? net->server_name : net->host, &ctx, err));
	SX_GUARD(enroll_exchange(net, ctx, req, conn, m, err));
	rc = enroll_expect(m, want, err);
out:
	enroll_ctx_free(ctx);
	return rc;
}

/* Does crl replace cur (none, or a lower crlNumber)? */
static bool newer_crl(X509_CRL *crl, X509_CRL *cur)
{
	uint64_t a = 0, b = 0;
	sx_err none = {0};
	if (cur == NULL)
		return true;
	if (sx_crl_number(crl, &a, &none) < 0)
		return false;
	return sx_crl_number(cur, &b, &none) < 0 || a > b;
}

/* The renewed certificate: same name, role and SANs, our key, valid under
 * the identity's anchors; the CRL that came with it, when usable. */
static int renew_check(const sx_enroll_msg *m, const sx_identity *id, EVP_PKEY *key, X509 **leaf,
		       X509_CRL **crl, sx_err *err)
{
	X509 *old = sk_X509_value(id->chain, 0);
	char a[1024], b[1024];
	bool keep = false;
	SX_GUARD(enroll_der_cert(m->leaf, m->leaf_len, leaf, err));
	if (m->crl_len > 0) {
		SX_GUARD(enroll_der_crl(m->crl, m->crl_len, crl, err));
		SX_GUARD(enroll_check_crl(*crl, id->anchors, &keep, err));
		if (!keep || !newer_crl(*crl, id->crl)) {
			X509_CRL_free(*crl);
			*crl = NULL;
		}
	}
	sx_cert_sans(old, a, sizeof(a));
	sx_cert_sans(*leaf, b, sizeof(b));
	SX_ENSURE(strcmp(a, b) == 0, err, SX_E_AUTH,
		  "the renewed certificate's names (%s) differ from the current ones (%s)", b, a);
	return enroll_check_issued(*leaf, key, id->name, sx_cert_role(old), id->anchors, *crl, err);
out:
	return -1;
}

/* The key the request is for, and the request. */
static int renew_request(const sx_renew_cfg *cfg, const sx_identity *id, EVP_PKEY **key,
			 unsigned char **der, int *len, sx_err *err)
{
	X509_REQ *csr = NULL;
	int rc = -1;
	if (cfg->new_key) {
		SX_GUARD(sx_key_generate(key_type_of(id->key), key, err));
	} else {
		SX_ENSURE(EVP_PKEY_up_ref(id->key) == 1, err, SX_E_OTHER, "out of memory");
		*key = id->key;
	}
	SX_GUARD(sx_csr_build(*key, id->name, &csr, err));
	*len = i2d_X509_REQ(csr, der);
	SX_ENSURE(*len > 0, err, SX_E_OTHER, "encoding the request");
	rc = 0;
out:
	X509_REQ_free(csr);
	return rc;
}

int sx_renew_run(const sx_renew_cfg *cfg, sx_enroll_result *res, sx_err *err)
{
	sx_identity id = {0};
	enroll_pass pc;
	enroll_conn *conn = NULL;
	EVP_PKEY *key = NULL;
	unsigned char *csr = NULL;
	int csr_len = 0, rc = -1;
	X509 *leaf = NULL;
	X509_CRL *crl = NULL;
	bool encrypted = true;
	sx_enroll_msg req = {.type = SX_EMSG_RENEW}, m;
	memset(res, 0, sizeof(*res));
	enroll_pass_init(&pc, cfg->pass);
	bool restored = false;
	SX_GUARD(enroll_renew_recover(cfg->id_dir, &restored, err));
	if (restored)
		sx_log("warn", "renew_recovered", "id=%s reason=%s", SX_LOGQ(cfg->id_dir),
		       SX_LOGQ("an earlier renewal was cut off between its renames: the previous "
			       "key is back beside the previous certificate"));
	SX_GUARD(enroll_key_encrypted(cfg->id_dir, &encrypted, err));
	/* A new key is kept as the current one is: encrypted or not. */
	pc.pass.none = pc.pass.none || !encrypted;
	SX_GUARD(sx_identity_load(cfg->id_dir, &pc.pass, &id, err));
	describe_old(sk_X509_value(id.chain, 0), res);
	SX_GUARD(renew_request(cfg, &id, &key, &csr, &csr_len, err));
	req.csr = csr;
	req.csr_len = (size_t)csr_len;
	SX_GUARD(ask_service(&cfg->net, &id, &req, SX_EMSG_ISSUED, &conn, &m, err));
	SX_GUARD(renew_check(&m, &id, key, &leaf, &crl, err));
	SX_GUARD(
	    enroll_renew_replace(cfg->id_dir, cfg->new_key ? key : NULL, &pc.pass, leaf, crl, err));
	enroll_result_fill(res, conn, leaf, sk_X509_value(id.anchors, 0));
	res->new_key = cfg->new_key;
	res->crl_written = crl != NULL;
	rc = 0;
out:
	enroll_pass_wipe(&pc);
	enroll_conn_free(conn);
	sx_identity_free(&id);
	EVP_PKEY_free(key);
	OPENSSL_free(csr);
	X509_free(leaf);
	X509_CRL_free(crl);
	return rc;
}

/* ---- sxfer crl fetch ---------------------------------------------------- */

/* The CRL to write: signed by the identity's CA, current, and not older
 * (by crlNumber) than the crl.pem it replaces. */
static int crl_check(X509_CRL *crl, const sx_crl_fetch_cfg *cfg, const sx_identity *id,
		     sx_enroll_result *res, sx_err *err)
{
	X509_CRL *cur = NULL;
	int rc = -1;
	if (sx_crl_verify_anchors(crl, id->anchors, err) < 0) {
		sx_err_prefix(err, "the CRL the service sent: ");
		goto out;
	}
	if (sx_crl_check_time(crl, 0, err) < 0) {
		sx_err_prefix(err, "the CRL the service sent: ");
		goto out;
	}
	SX_GUARD(sx_crl_number(crl, &res->crl_number, err));
	SX_GUARD(enroll_crl_current(cfg->id_dir, &cur, err));
	res->had_crl = cur != NULL;
	if (cur != NULL && sx_crl_number(cur, &res->old_crl_number, err) < 0) {
		sx_err_prefix(err, "%s/crl.pem: ", cfg->id_dir);
		goto out;
	}
	SX_ENSURE(cur == NULL || res->crl_number >= res->old_crl_number, err, SX_E_AUTH,
		  "the service's CRL (number %llu) is older than %s/crl.pem (number %llu); "
		  "not written",
		  (unsigned long long)res->crl_number, cfg->id_dir,
		  (unsigned long long)res->old_crl_number);
	res->crl_unchanged = cur != NULL && res->crl_number == res->old_crl_number;
	rc = 0;
out:
	X509_CRL_free(cur);
	return rc;
}

int sx_crl_fetch_run(const sx_crl_fetch_cfg *cfg, sx_enroll_result *res, sx_err *err)
{
	sx_identity id = {0};
	enroll_conn *conn = NULL;
	X509_CRL *crl = NULL;
	sx_enroll_msg req = {.type = SX_EMSG_CRL_REQ}, m;
	int rc = -1;
	memset(res, 0, sizeof(*res));
	SX_GUARD(sx_identity_load(cfg->id_dir, cfg->pass, &id, err));
	SX_GUARD(ask_service(&cfg->net, &id, &req, SX_EMSG_CRL, &conn, &m, err));
	SX_GUARD(enroll_der_crl(m.crl, m.crl_len, &crl, err));
	SX_GUARD(crl_check(crl, cfg, &id, res, err));
	if (!res->crl_unchanged)
		SX_GUARD(enroll_crl_write(cfg->id_dir, crl, err));
	snprintf(res->server, sizeof(res->server), "%s", enroll_conn_peer(conn)->name);
	snprintf(res->name, sizeof(res->name), "%s", id.name);
	res->crl_written = !res->crl_unchanged;
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	res->crl_revoked = rev != NULL ? sk_X509_REVOKED_num(rev) : 0;
	sx_asn1_time_format(X509_CRL_get0_nextUpdate(crl), res->crl_next, sizeof(res->crl_next));
	rc = 0;
out:
	enroll_conn_free(conn);
	sx_identity_free(&id);
	X509_CRL_free(crl);
	return rc;
}
