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
#include <openssl/x509v3.h>

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

/* A pinning client (sxfer enroll): the anchor is the one certificate the
 * server sent whose SHA-256 fingerprint is the pinned one; it must be a
 * self-signed CA certificate, and the server's leaf must chain to it under
 * the policy (role server, the server name; no CRL: the client has none). */
static int pinned_check(const sx_chan_ctx *ctx, X509 *leaf, STACK_OF(X509) * inter,
			STACK_OF(X509) * sent, sx_err *err)
{
	char hex[SX_CERT_FP_HEX_LEN];
	X509 *root = NULL;
	sx_policy pol = {0};
	int rc = -1;
	sx_hex(ctx->pin_fp, sizeof(ctx->pin_fp), hex);
	for (int i = 0; sent != NULL && i < sk_X509_num(sent) && root == NULL; i++) {
		uint8_t fp[SX_CERT_FP_LEN];
		X509 *x = sk_X509_value(sent, i);
		SX_GUARD(sx_cert_fp(x, fp, err));
		if (CRYPTO_memcmp(fp, ctx->pin_fp, sizeof(fp)) == 0)
			root = x;
	}
	SX_ENSURE(root != NULL, err, SX_E_AUTH,
		  "enrollment server's certificate does not chain to the pinned root %s", hex);
	SX_ENSURE(X509_check_ca(root) >= 1 && X509_self_signed(root, 1) == 1, err, SX_E_AUTH,
		  "the pinned certificate %s is not a self-signed CA certificate", hex);
	pol.anchors = sk_X509_new_null();
	SX_ENSURE(pol.anchors != NULL && sk_X509_push(pol.anchors, root) > 0, err, SX_E_OTHER,
		  "out of memory");
	rc = sx_policy_check(&pol, leaf, inter, SX_ROLE_SERVER, ctx->server_name, err);
out:
	sk_X509_free(pol.anchors);
	return rc;
}

/* A peer_optional server (the enrollment service) accepts a client the
 * policy refuses: the reason is kept for sx_chan_result.peer_problem and
 * the handshake goes on (TLS still checks the CertificateVerify, so the
 * client holds the key of what it sent). Returns 1 then, 0 otherwise. */
static int optional_peer_refused(const sx_chan_ctx *ctx, sx_chan *c, sx_err *err)
{
	if (!ctx->server || !ctx->peer_optional || c == NULL)
		return 0;
	snprintf(c->peer_problem, sizeof(c->peer_problem), "%.*s", (int)sizeof(c->peer_problem) - 1,
		 err->msg);
	sx_err_clear(err);
	return 1;
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
	int ok = 0, rc;

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
	rc = ctx->pinned ? pinned_check(ctx, leaf, inter, sent, err)
			 : chan_policy_check(c, leaf, inter, err);
	if (rc < 0) {
		sx_err_prefix(err, "%s: ", who);
		ok = optional_peer_refused(ctx, c, err);
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

/* What a protocol is, for the messages of a client and a server that do
 * not speak the same one. */
const char *chan_alpn_service(const char *alpn)
{
	if (strcmp(alpn, SX_ALPN) == 0)
		return "file transfer: sxfer serve";
	if (strcmp(alpn, SX_ALPN_ENROLL) == 0)
		return "enrollment: sxfer ca serve";
	return "unknown";
}

/* A client that offers no ALPN at all is refused here: OpenSSL calls the
 * select callback only when the extension is present. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	const sx_chan_ctx *ctx = arg;
	const unsigned char *ext;
	size_t len;
	sx_chan *c = chan_of(ssl);
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
				      &len) == 1)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (c != NULL)
		(void)sx_fail(&c->verr, SX_E_AUTH, "client offered no ALPN protocol (need %s)",
			      ctx->alpn);
	*al = SSL_AD_NO_APPLICATION_PROTOCOL;
	return SSL_CLIENT_HELLO_ERROR;
}

/* The protocols a client offered, printable, for the refusal's message. */
static void alpn_offered(const unsigned char *in, unsigned int inlen, char *buf, size_t cap)
{
	size_t at = 0;
	buf[0] = '\0';
	for (unsigned int i = 0; i < inlen && at + 4 < cap;) {
		unsigned int n = in[i];
		if (n == 0 || n > inlen - i - 1)
			break;
		if (at > 0) {
			buf[at++] = ',';
			buf[at++] = ' ';
		}
		for (unsigned int k = 0; k < n && at + 1 < cap; k++) {
			unsigned char ch = in[i + 1 + k];
			buf[at++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		buf[at] = '\0';
		i += 1 + n;
	}
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	const sx_chan_ctx *ctx = arg;
	const size_t want = strlen(ctx->alpn);
	sx_chan *c = chan_of(ssl);
	char offered[128];
	/* in: a list of 8-bit-length-prefixed protocol names (RFC 7301 3.1). */
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];
		if (n == 0 || n > inlen - i - 1)
			break;
		if (n == want && memcmp(in + i + 1, ctx->alpn, want) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	alpn_offered(in, inlen, offered, sizeof(offered));
	if (c != NULL)
		(void)sx_fail(&c->verr, SX_E_AUTH,
			      "client does not offer ALPN %s (%s); it offers %s", ctx->alpn,
			      chan_alpn_service(ctx->alpn), offered);
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

static bool has_identity(const sx_identity *id)
{
	return id != NULL && id->key != NULL && id->chain != NULL && sk_X509_num(id->chain) > 0;
}

/* The settings of sx_chan_cfg added for the enrollment service: each
 * belongs to one role, and the ALPN name is 1..255 bytes. */
static int check_cfg_enroll(const sx_chan_cfg *cfg, sx_err *err)
{
	if (cfg->alpn != NULL && (cfg->alpn[0] == '\0' || strlen(cfg->alpn) > SX_CHAN_ALPN_MAX))
		return sx_fail(err, SX_E_USAGE, "channel: an ALPN protocol is 1 to 255 bytes");
	if (cfg->server && cfg->pin_fp != NULL)
		return sx_fail(err, SX_E_USAGE, "channel: only a client pins the server's root");
	if (!cfg->server && (cfg->peer_optional || cfg->extra_chain != NULL))
		return sx_fail(err, SX_E_USAGE,
			       "channel: an optional peer and extra certificates are for servers");
	return 0;
}

static int check_cfg(const sx_chan_cfg *cfg, sx_err *err)
{
	const sx_identity *id = cfg->id;
	bool pinned = !cfg->server && cfg->pin_fp != NULL;
	SX_GUARD(check_cfg_enroll(cfg, err));
	/* A pinning client may have no identity at all: it is enrolling. */
	SX_ENSURE(has_identity(id) || (pinned && id != NULL && id->key == NULL), err, SX_E_USAGE,
		  "channel: no identity (key and certificate) configured");
	SX_ENSURE(pinned || (id->anchors != NULL && sk_X509_num(id->anchors) > 0), err, SX_E_USAGE,
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

/* Our chain (leaf, then the intermediates, then a server's extra
 * certificates) and our key; a pinning client may have none. */
static int use_identity(SSL_CTX *sc, const sx_chan_cfg *cfg, sx_err *err)
{
	const sx_identity *id = cfg->id;
	if (!has_identity(id))
		return 0;
	if (SSL_CTX_use_certificate(sc, sk_X509_value(id->chain, 0)) != 1)
		return sx_fail_ssl(err, SX_E_AUTH, "channel: our certificate is not usable");
	for (int i = 1; i < sk_X509_num(id->chain); i++) {
		if (SSL_CTX_add1_chain_cert(sc, sk_X509_value(id->chain, i)) != 1)
			return sx_fail_ssl(err, SX_E_AUTH,
					   "channel: our intermediate certificate is not usable");
	}
	for (int i = 0; cfg->extra_chain != NULL && i < sk_X509_num(cfg->extra_chain); i++) {
		X509 *x = sk_X509_value(cfg->extra_chain, i);
		bool dup = false;
		for (int k = 0; k < sk_X509_num(id->chain) && !dup; k++)
			dup = X509_cmp(x, sk_X509_value(id->chain, k)) == 0;
		if (!dup && SSL_CTX_add1_chain_cert(sc, x) != 1)
			return sx_fail_ssl(err, SX_E_AUTH,
					   "channel: an extra certificate is not usable");
	}
	if (SSL_CTX_use_PrivateKey(sc, id->key) != 1 || SSL_CTX_check_private_key(sc) != 1)
		return sx_fail_ssl(err, SX_E_AUTH,
				   "channel: our private key does not match our certificate");
	return 0;
}

/* The settings of the enrollment service (see sx_chan_cfg). */
static void enroll_settings(sx_chan_ctx *ctx, const sx_chan_cfg *cfg)
{
	snprintf(ctx->alpn, sizeof(ctx->alpn), "%s", cfg->alpn != NULL ? cfg->alpn : SX_ALPN);
	ctx->peer_optional = cfg->server && cfg->peer_optional;
	ctx->pinned = !cfg->server && cfg->pin_fp != NULL;
	if (ctx->pinned)
		memcpy(ctx->pin_fp, cfg->pin_fp, sizeof(ctx->pin_fp));
}

/* Who must send a certificate, who checks it, and the ALPN protocol. */
static int set_peer_rules(SSL_CTX *sc, sx_chan_ctx *ctx, sx_err *err)
{
	unsigned char alpn_wire[1 + SX_CHAN_ALPN_MAX];
	size_t n = strlen(ctx->alpn);
	int mode = SSL_VERIFY_PEER;
	/* A peer_optional server asks for a certificate but goes on without. */
	if (ctx->server && !ctx->peer_optional)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(sc, mode, NULL);
	SSL_CTX_set_cert_verify_callback(sc, verify_cb, ctx);
	SSL_CTX_set_info_callback(sc, info_cb);
	if (ctx->server) {
		SSL_CTX_set_client_hello_cb(sc, client_hello_cb, ctx);
		SSL_CTX_set_alpn_select_cb(sc, alpn_select_cb, ctx);
		return 0;
	}
	alpn_wire[0] = (unsigned char)n;
	memcpy(alpn_wire + 1, ctx->alpn, n);
	/* Note: 0 is success for this one. */
	if (SSL_CTX_set_alpn_protos(sc, alpn_wire, (unsigned)(n + 1)) != 0)
		return sx_fail_ssl(err, SX_E_OTHER, "channel: cannot set ALPN");
	return 0;
}

int sx_chan_ctx_new(sx_chan_ctx **out, const sx_chan_cfg *cfg, sx_err *err)
{
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
	enroll_settings(ctx, cfg);

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
	SX_GUARD(use_identity(sc, cfg, err));
	SX_GUARD(set_peer_rules(sc, ctx, err));
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
		/* Another service listens there (a transfer client at the
		 * enrollment service, or the other way round). */
		if (c->peer_alert == SSL_AD_NO_APPLICATION_PROTOCOL && !c->ctx->server)
			sx_err_prefix(err, "server does not speak %s (%s): ", c->ctx->alpn,
				      chan_alpn_service(c->ctx->alpn));
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

/* The peer's chain, leaf first, kept for signatures and receipts. On the
 * client OpenSSL's list starts with the leaf, on the server not. */
static int note_chain(sx_chan *c, X509 *peer, sx_err *err)
{
	uint8_t fp[SX_CERT_FP_LEN];
	STACK_OF(X509) *sent = SSL_get_peer_cert_chain(c->ssl);
	SX_GUARD(sx_cert_fp(peer, fp, err));
	sx_hex(fp, sizeof(fp), c->peer_fp);
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

/* A peer_optional server's client that sent no certificate, or one the
 * policy refused (its reason is in c->peer_problem): what it sent is kept,
 * marked not verified. */
static int note_unverified_peer(sx_chan *c, X509 *peer, sx_err *err)
{
	sx_err ignore = {0};
	c->peer_verified = false;
	if (peer == NULL) {
		snprintf(c->peer_problem, sizeof(c->peer_problem), "no client certificate");
		return 0;
	}
	if (c->peer_problem[0] == '\0')
		snprintf(c->peer_problem, sizeof(c->peer_problem),
			 "client certificate was not verified");
	if (sx_cert_name(peer, c->peer_name, sizeof(c->peer_name), &ignore) < 0)
		c->peer_name[0] = '\0';
	return note_chain(c, peer, err);
}

/* The peer the verify callback accepted: name, fingerprint, chain. */
int chan_note_peer(sx_chan *c, sx_err *err)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	const char *who = c->ctx->server ? "client" : "server";
	if (c->ctx->peer_optional && !c->verified)
		return note_unverified_peer(c, peer, err);
	SX_ENSURE(peer != NULL && c->verified, err, SX_E_AUTH, "%s certificate was not verified",
		  who);
	if (sx_cert_name(peer, c->peer_name, sizeof(c->peer_name), err) < 0) {
		sx_err_prefix(err, "%s certificate: ", who);
		goto out;
	}
	SX_GUARD(note_chain(c, peer, err));
	c->peer_verified = true;
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
