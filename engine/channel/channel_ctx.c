/* engine/channel: the TLS context (one SSL_CTX with our certificate, key,
 * trust anchors and the pki policy, shared by every connection of a
 * server), the callbacks OpenSSL calls during a handshake, and the two
 * readers of what those callbacks leave on a channel: why a handshake
 * stopped, and the verified peer. */
#include "engine/channel/channel_int.h"

#include "common/sx_util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* ---- callbacks ---------------------------------------------------------- */

static sx_chan *chan_of(const SSL *ssl)
{
	return SSL_get_app_data(ssl);
}

/* Maps the policy's reason onto an X.509 error code, so OpenSSL sends the
 * matching TLS alert (certificate_expired, certificate_revoked, unknown_ca,
 * ...). The reason text itself stays in the channel. */
static int policy_x509_error(const char *msg)
{
	if (strcasestr(msg, "revoked") != NULL)
		return X509_V_ERR_CERT_REVOKED;
	if (strcasestr(msg, "expired") != NULL)
		return X509_V_ERR_CERT_HAS_EXPIRED;
	if (strcasestr(msg, "not yet valid") != NULL)
		return X509_V_ERR_CERT_NOT_YET_VALID;
	if (strcasestr(msg, "issuer") != NULL || strcasestr(msg, "trust") != NULL ||
	    strcasestr(msg, "anchor") != NULL || strcasestr(msg, "chain") != NULL)
		return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
	if (strcasestr(msg, "usage") != NULL || strcasestr(msg, "purpose") != NULL)
		return X509_V_ERR_INVALID_PURPOSE;
	return X509_V_ERR_CERT_REJECTED;
}

/* Replaces OpenSSL's chain building: the pki policy is the one decision. */
static int verify_cb(X509_STORE_CTX *xs, void *arg)
{
	sx_chan_ctx *ctx = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	sx_chan *c = ssl != NULL ? chan_of(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xs);
	STACK_OF(X509) *inter = NULL;
	const char *who = ctx->server ? "client certificate" : "server certificate";
	sx_err tmp = {0};
	sx_err *err = c != NULL ? &c->verr : &tmp;
	int ok = 0;

	SX_ENSURE(c != NULL && leaf != NULL, err, SX_E_AUTH, "%s: missing", who);
	/* The intermediates the peer sent, without the leaf itself. */
	inter = sk_X509_new_null();
	SX_ENSURE(inter != NULL, err, SX_E_OTHER, "out of memory");
	for (int i = 0; sent != NULL && i < sk_X509_num(sent); i++) {
		X509 *x = sk_X509_value(sent, i);
		if (X509_cmp(x, leaf) == 0)
			continue;
		SX_ENSURE(sk_X509_push(inter, x) > 0, err, SX_E_OTHER, "out of memory");
	}
	if (chan_policy_check(c, leaf, inter, err) < 0) {
		sx_err_prefix(err, "%s: ", who);
		goto out;
	}
	c->verified = true;
	ok = 1;
out:
	sk_X509_free(inter);
	if (!ok)
		X509_STORE_CTX_set_error(xs, policy_x509_error(err->msg));
	else
		X509_STORE_CTX_set_error(xs, X509_V_OK);
	return ok;
}

/* A client that offers no ALPN at all is refused here: OpenSSL calls the
 * select callback only when the extension is present. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	(void)arg;
	const unsigned char *ext;
	size_t len;
	sx_chan *c = chan_of(ssl);
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
				      &len) == 1)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (c != NULL)
		(void)sx_fail(&c->verr, SX_E_AUTH, "client offered no ALPN protocol (need %s)",
			      SX_ALPN);
	*al = SSL_AD_NO_APPLICATION_PROTOCOL;
	return SSL_CLIENT_HELLO_ERROR;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)arg;
	const size_t want = strlen(SX_ALPN);
	sx_chan *c = chan_of(ssl);
	/* in: a list of 8-bit-length-prefixed protocol names (RFC 7301 3.1). */
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];
		if (n == 0 || n > inlen - i - 1)
			break;
		if (n == want && memcmp(in + i + 1, SX_ALPN, want) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	if (c != NULL)
		(void)sx_fail(&c->verr, SX_E_AUTH, "client does not offer ALPN %s", SX_ALPN);
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void info_cb(const SSL *ssl, int where, int ret)
{
	if ((where & SSL_CB_ALERT) == 0 || (where & SSL_CB_READ) == 0)
		return;
	sx_chan *c = chan_of(ssl);
	if (c != NULL)
		c->peer_alert = ret & 0xff;
}

/* ---- context ------------------------------------------------------------ */

static bool is_ip_literal(const char *s)
{
	uint8_t buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int check_cfg(const sx_chan_cfg *cfg, sx_err *err)
{
	const sx_identity *id = cfg->id;
	SX_ENSURE(id != NULL && id->key != NULL && id->chain != NULL && sk_X509_num(id->chain) > 0,
		  err, SX_E_USAGE, "channel: no identity (key and certificate) configured");
	SX_ENSURE(id->anchors != NULL && sk_X509_num(id->anchors) > 0, err, SX_E_USAGE,
		  "channel: no trust anchor configured");
	SX_ENSURE(cfg->max_record >= SX_MAX_RECORD_MIN, err, SX_E_USAGE,
		  "channel: max record %u is below the minimum %u", cfg->max_record,
		  SX_MAX_RECORD_MIN);
	if (cfg->server)
		return 0;
	SX_ENSURE(cfg->server_name != NULL && cfg->server_name[0] != '\0', err, SX_E_USAGE,
		  "channel: no server name to check the server certificate against");
	SX_ENSURE(strlen(cfg->server_name) < 256, err, SX_E_USAGE,
		  "channel: server name is too long");
	SX_ENSURE(cfg->suite == 0 || sx_suite_tag_len(cfg->suite) > 0, err, SX_E_USAGE,
		  "channel: unknown record suite %d", (int)cfg->suite);
	SX_ENSURE(cfg->rotate_bytes <= SX_ROTATE_MAX, err, SX_E_USAGE,
		  "channel: key rotation interval must be at most 64 GiB");
	return 0;
out:
	return -1;
}

int sx_chan_ctx_new(sx_chan_ctx **out, const sx_chan_cfg *cfg, sx_err *err)
{
	static const unsigned char alpn_wire[] = {7, 's', 'x', 'f', 'e', 'r', '/', '1'};
	sx_chan_ctx *ctx = NULL;
	SSL_CTX *sc = NULL;
	int rc = -1;

	*out = NULL;
	SX_GUARD(check_cfg(cfg, err));
	ctx = calloc(1, sizeof(*ctx));
	SX_ENSURE(ctx != NULL, err, SX_E_OTHER, "out of memory");
	ctx->server = cfg->server;
	ctx->id = cfg->id;
	/* 0 means the default; the HELLO always carries the effective value. */
	ctx->suite = cfg->suite != 0 ? cfg->suite : SX_SUITE_AES256GCM;
	ctx->rotate_bytes = cfg->rotate_bytes != 0 ? cfg->rotate_bytes : SX_ROTATE_MAX;
	ctx->max_record = cfg->max_record;
	ctx->policy.anchors = cfg->id->anchors;
	/* Both ends check the peer's revocation: against the CRL given, else
	 * the one of their identity folder (which `ca issue` writes there). */
	chan_crl_init(ctx, cfg->crl != NULL ? cfg->crl : cfg->id->crl);
	if (!cfg->server) {
		snprintf(ctx->server_name, sizeof(ctx->server_name), "%s", cfg->server_name);
		ctx->name_is_ip = is_ip_literal(ctx->server_name);
	}

	sc = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
	if (sc == NULL) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "channel: cannot create TLS context");
		goto out;
	}
	ctx->ssl_ctx = sc;
	if (SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) != 1) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "channel: cannot require TLS 1.3");
		goto out;
	}
	SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	SX_ENSURE(SSL_CTX_set_num_tickets(sc, 0) == 1, err, SX_E_OTHER,
		  "channel: cannot disable session tickets");
	SSL_CTX_set_read_ahead(sc, 0);

	/* Our chain: leaf, then the intermediates. */
	X509 *leaf = sk_X509_value(cfg->id->chain, 0);
	if (SSL_CTX_use_certificate(sc, leaf) != 1) {
		(void)sx_fail_ssl(err, SX_E_AUTH, "channel: our certificate is not usable");
		goto out;
	}
	for (int i = 1; i < sk_X509_num(cfg->id->chain); i++) {
		if (SSL_CTX_add1_chain_cert(sc, sk_X509_value(cfg->id->chain, i)) != 1) {
			(void)sx_fail_ssl(err, SX_E_AUTH,
					  "channel: our intermediate certificate is not usable");
			goto out;
		}
	}
	if (SSL_CTX_use_PrivateKey(sc, cfg->id->key) != 1 || SSL_CTX_check_private_key(sc) != 1) {
		(void)sx_fail_ssl(err, SX_E_AUTH,
				  "channel: our private key does not match our certificate");
		goto out;
	}

	SSL_CTX_set_verify(
	    sc, cfg->server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
	    NULL);
	SSL_CTX_set_cert_verify_callback(sc, verify_cb, ctx);
	SSL_CTX_set_info_callback(sc, info_cb);
	if (cfg->server) {
		SSL_CTX_set_client_hello_cb(sc, client_hello_cb, ctx);
		SSL_CTX_set_alpn_select_cb(sc, alpn_select_cb, ctx);
	} else if (SSL_CTX_set_alpn_protos(sc, alpn_wire, sizeof(alpn_wire)) != 0) {
		/* Note: 0 is success for this one. */
		(void)sx_fail_ssl(err, SX_E_OTHER, "channel: cannot set ALPN");
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	rc = 0;
out:
	sx_chan_ctx_free(ctx);
	return rc;
}

void sx_chan_ctx_free(sx_chan_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	chan_crl_free(ctx);
	free(ctx);
}

/* ---- what the callbacks leave ------------------------------------------- */

/* Why did OpenSSL stop? In order: our own callbacks' reason, the peer's
 * alert, a missing client certificate, then OpenSSL's error queue. */
int chan_tls_failure(sx_chan *c, const char *what, sx_err *err)
{
	const char *peer = c->ctx->server ? "client" : "server";
	unsigned long e = ERR_peek_last_error();

	if (c->verr.cls != SX_OK) {
		(void)sx_fail(err, c->verr.cls, "%s", c->verr.msg);
		ERR_clear_error();
		return -1;
	}
	if (c->peer_alert >= 0) {
		(void)sx_fail(err, SX_E_AUTH, "%s refused the handshake: %s", peer,
			      SSL_alert_desc_string_long(c->peer_alert));
		ERR_clear_error();
		return -1;
	}
	if (c->ctx->server && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH, "client sent no certificate");
	}
	return sx_fail_ssl(err, SX_E_AUTH, "%s with %s failed", what, peer);
}

/* The peer the verify callback accepted: name, fingerprint, chain. */
int chan_note_peer(sx_chan *c, sx_err *err)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	const char *who = c->ctx->server ? "client" : "server";
	SX_ENSURE(peer != NULL && c->verified, err, SX_E_AUTH, "%s certificate was not verified",
		  who);
	if (sx_cert_name(peer, c->peer_name, sizeof(c->peer_name), err) < 0) {
		sx_err_prefix(err, "%s certificate: ", who);
		goto out;
	}
	uint8_t fp[SX_CERT_FP_LEN];
	SX_GUARD(sx_cert_fp(peer, fp, err));
	sx_hex(fp, sizeof(fp), c->peer_fp);
	/* Keep the peer's chain (leaf first) for signatures and receipts. On
	 * the client OpenSSL's list starts with the leaf, on the server not. */
	STACK_OF(X509) *sent = SSL_get_peer_cert_chain(c->ssl);
	c->peer_chain = sk_X509_new_null();
	SX_ENSURE(c->peer_chain != NULL && sk_X509_push(c->peer_chain, peer) > 0, err, SX_E_OTHER,
		  "out of memory");
	X509_up_ref(peer);
	for (int i = 0; sent != NULL && i < sk_X509_num(sent); i++) {
		X509 *x = sk_X509_value(sent, i);
		if (X509_cmp(x, peer) == 0)
			continue;
		SX_ENSURE(sk_X509_push(c->peer_chain, x) > 0, err, SX_E_OTHER, "out of memory");
		X509_up_ref(x);
	}
	return 0;
out:
	return -1;
}

sx_chan_cfg sx_chan_client(const sx_identity *id, X509_CRL *crl, const char *server_name,
			   sx_suite suite, uint64_t rotate_bytes, uint32_t max_record)
{
	return (sx_chan_cfg){.server = false,
			     .id = id,
			     .crl = crl,
			     .server_name = server_name,
			     .suite = suite,
			     .rotate_bytes = rotate_bytes,
			     .max_record = max_record};
}
