/* engine/channel: the CRL a channel context checks peers against, swapped
 * while handshakes run (sxfer serve reloads it: docs/REVOCATION.md), and
 * the policy decision of the verify callback around it: a server whose own
 * CRL is no longer current still completes the handshake of a client the
 * policy accepts otherwise, so that the client can be told why it is
 * refused (sx_chan_result.refusal) instead of reading "bad certificate". */
#include "engine/channel/channel_int.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

void chan_crl_init(sx_chan_ctx *ctx, X509_CRL *crl)
{
	pthread_mutex_init(&ctx->crl_lock, NULL);
	if (crl != NULL)
		X509_CRL_up_ref(crl);
	ctx->crl = crl;
	ctx->crl_init = true;
}

void chan_crl_free(sx_chan_ctx *ctx)
{
	if (!ctx->crl_init)
		return;
	X509_CRL_free(ctx->crl);
	ctx->crl = NULL;
	pthread_mutex_destroy(&ctx->crl_lock);
	ctx->crl_init = false;
}

X509_CRL *sx_chan_ctx_crl(sx_chan_ctx *ctx)
{
	X509_CRL *crl;
	pthread_mutex_lock(&ctx->crl_lock);
	crl = ctx->crl;
	if (crl != NULL)
		X509_CRL_up_ref(crl);
	pthread_mutex_unlock(&ctx->crl_lock);
	return crl;
}

int sx_chan_ctx_set_crl(sx_chan_ctx *ctx, X509_CRL *crl, sx_err *err)
{
	X509_CRL *old;
	if (crl != NULL && X509_CRL_up_ref(crl) != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "channel: cannot take a reference to the CRL");
	pthread_mutex_lock(&ctx->crl_lock);
	old = ctx->crl;
	ctx->crl = crl;
	pthread_mutex_unlock(&ctx->crl_lock);
	/* A handshake still using the old one holds its own reference. */
	X509_CRL_free(old);
	return 0;
}

/* Why a server with this CRL refuses everyone, as the client reads it. */
static void refusal_text(X509_CRL *crl, time_t now, const sx_err *why, char *buf, size_t cap)
{
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	char when[32];
	if (next != NULL && X509_cmp_time(next, &now) < 0) {
		sx_asn1_time_format(next, when, sizeof(when));
		snprintf(buf, cap,
			 "server refused: the server's revocation list is stale (nextUpdate %s); "
			 "it accepts no device until its operator installs a current one",
			 when);
	} else {
		snprintf(buf, cap,
			 "server refused: the server's revocation list is not usable (%.320s)",
			 why->msg);
	}
}

/* A certificate the server's last CRL lists stays refused when that CRL is
 * no longer current: a stale list only ever refuses more. */
static int stale_listed(X509_CRL *crl, X509 *leaf, sx_err *err)
{
	X509_REVOKED *rev = NULL;
	char subj[320], serial[80];
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(leaf)) != 0 ||
	    X509_CRL_get0_by_cert(crl, &rev, leaf) != 1 || rev == NULL) {
		ERR_clear_error();
		return 0;
	}
	sx_cert_subject(leaf, subj, sizeof(subj));
	sx_cert_serial_hex(leaf, serial, sizeof(serial));
	return sx_fail(err, SX_E_AUTH,
		       "%s: certificate is revoked (serial %s, listed by the server's last CRL, "
		       "which is stale)",
		       subj, serial);
}

int chan_policy_check(sx_chan *c, X509 *leaf, STACK_OF(X509) * inter, sx_err *err)
{
	const sx_chan_ctx *ctx = c->ctx;
	sx_policy pol = ctx->policy;
	/* The enrollment service's clients renew certificates of either role. */
	sx_role role = !ctx->server	    ? SX_ROLE_SERVER
		       : ctx->peer_optional ? SX_ROLE_SIGNER
					    : SX_ROLE_CLIENT;
	const char *name = ctx->server ? NULL : ctx->server_name;
	time_t now = pol.now != 0 ? pol.now : time(NULL);
	sx_err why = {0};
	X509_CRL *crl = sx_chan_ctx_crl(c->ctx);
	int rc = -1;

	c->refusal[0] = '\0';
	pol.crl = crl;
	pol.now = now;
	if (!ctx->server || crl == NULL || sx_crl_check_time(crl, now, &why) == 0) {
		rc = sx_policy_check(&pol, leaf, inter, role, name, err);
		goto out;
	}
	/* The server's own CRL is not current: every client is refused, but
	 * one that passes every other check is told so after the handshake. */
	pol.crl = NULL;
	SX_GUARD(sx_policy_check(&pol, leaf, inter, role, name, err));
	SX_GUARD(stale_listed(crl, leaf, err));
	refusal_text(crl, now, &why, c->refusal, sizeof(c->refusal));
	rc = 0;
out:
	X509_CRL_free(crl);
	return rc;
}
