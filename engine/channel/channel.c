/* engine/channel: TLS 1.3 over memory BIOs, the HELLO inside TLS, the
 * exporter that keys the record layer, and key confirmation.
 * docs/PROTOCOL.md ("Handshake") describes every step and byte. */
#include "engine/channel/channel_int.h"

#include "common/sx_util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* TLS record framing (RFC 8446 section 5.1). */
#define TLS_HDR_LEN	 5
#define TLS_TYPE_MIN	 20 /* change_cipher_spec */
#define TLS_TYPE_MAX	 23 /* application_data */
#define TLS_REC_MAX	 (16384 + 256)
#define TLS_VER_LEGACY	 0x0303
#define TLS_VER_FIRST_CH 0x0301 /* allowed on the very first ClientHello record */

#define SX_EXPORTER_LABEL "EXPORTER-sxfer/1 record keys"
/* ALPN || version || suite || rotate_bytes (BE64) || max_record (BE32); the
 * ALPN protocol is "sxfer/1" (7 bytes) or "sxfer-enroll/1" (14 bytes) */
#define SX_EXPORTER_CTX_TAIL (1 + 1 + 8 + 4)

/* The CONFIRM record is tiny; anything larger is refused before reading. */
#define SX_CONFIRM_BODY_MAX 64u

static int drain_wbio(sx_chan *c, sx_err *err);

/* ---- channel ------------------------------------------------------------ */

int sx_chan_new(sx_chan **out, sx_chan_ctx *ctx, sx_err *err)
{
	sx_chan *c = NULL;
	BIO *rb = NULL, *wb = NULL;
	int rc = -1;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	SX_ENSURE(c != NULL, err, SX_E_OTHER, "out of memory");
	c->ctx = ctx;
	c->first_record = true;
	c->peer_alert = -1;
	c->ssl = SSL_new(ctx->ssl_ctx);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || rb == NULL || wb == NULL) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "channel: cannot create TLS connection");
		goto out;
	}
	/* An empty memory BIO means "no data yet", not end of file. */
	BIO_set_mem_eof_return(rb, -1);
	SSL_set_bio(c->ssl, rb, wb);
	c->rbio = rb;
	c->wbio = wb;
	rb = wb = NULL;
	SX_ENSURE(SSL_set_app_data(c->ssl, c) == 1, err, SX_E_OTHER,
		  "channel: cannot attach state");
	if (ctx->server) {
		SSL_set_accept_state(c->ssl);
	} else {
		/* SNI carries DNS names only (RFC 6066 section 3). */
		if (!ctx->name_is_ip && SSL_set_tlsext_host_name(c->ssl, ctx->server_name) != 1) {
			(void)sx_fail_ssl(err, SX_E_USAGE, "channel: bad server name %s",
					  ctx->server_name);
			goto out;
		}
		SSL_set_connect_state(c->ssl);
		/* Writes the ClientHello, so the first sx_chan_output has it. */
		int r = SSL_do_handshake(c->ssl);
		if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
			(void)sx_fail_ssl(err, SX_E_OTHER, "channel: cannot start TLS");
			goto out;
		}
		SX_GUARD(drain_wbio(c, err));
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	BIO_free(rb);
	BIO_free(wb);
	sx_chan_free(c);
	return rc;
}

void sx_chan_free(sx_chan *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	sk_X509_pop_free(c->peer_chain, X509_free);
	if (c->have_keys) {
		sx_rdir_free(&c->tx);
		sx_rdir_free(&c->rx);
	}
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

bool sx_chan_is_server(const sx_chan *c)
{
	return c->ctx->server;
}

bool sx_chan_ready(const sx_chan *c)
{
	return c->state == ST_READY;
}

/* ---- output queue ------------------------------------------------------- */

/* Room at the end of the queue; nothing already queued moves. */
static int out_reserve(sx_chan *c, size_t more, sx_err *err)
{
	if (more > SX_CHAN_OUT_MAX - c->out_len)
		return sx_fail(err, SX_E_OTHER, "channel: output queue is full");
	return 0;
}

/* Moves everything OpenSSL wrote (handshake flights, HELLO, alerts) into the
 * output queue, so nothing is left behind in the memory BIO. */
static int drain_wbio(sx_chan *c, sx_err *err)
{
	size_t pend;
	while ((pend = BIO_ctrl_pending(c->wbio)) > 0) {
		if (out_reserve(c, pend, err) < 0)
			return -1;
		int n = BIO_read(c->wbio, c->out + c->out_len, (int)pend);
		if (n <= 0)
			return sx_fail_ssl(err, SX_E_OTHER, "channel: cannot read TLS output");
		c->out_len += (size_t)n;
	}
	return 0;
}

void sx_chan_output(sx_chan *c, const uint8_t **out, size_t *n)
{
	sx_err ignore = {0};
	/* A full queue leaves the rest in the BIO until the queue drains. */
	(void)drain_wbio(c, &ignore);
	*out = c->out + c->out_off;
	*n = c->out_len - c->out_off;
}

void sx_chan_consume(sx_chan *c, size_t n)
{
	size_t left = c->out_len - c->out_off;
	c->out_off += n < left ? n : left;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

/* ---- key schedule ------------------------------------------------------- */

/* One exporter call (RFC 8446 section 7.5) binds the keys to the TLS session
 * and to every negotiated HELLO parameter; docs/PROTOCOL.md ("Handshake"). */
static int derive_keys(sx_chan *c, sx_err *err)
{
	uint8_t context[SX_CHAN_ALPN_MAX + SX_EXPORTER_CTX_TAIL];
	uint8_t master[SX_SECRET_LEN], c2s[SX_SECRET_LEN], s2c[SX_SECRET_LEN];
	sx_wbuf w = sx_wbuf_make(context, sizeof(context));
	const size_t alpn_len = strlen(c->ctx->alpn);
	int rc = -1;

	sx_put_bytes(&w, c->ctx->alpn, alpn_len);
	sx_put_u8(&w, c->hello.version);
	sx_put_u8(&w, c->hello.suite);
	sx_put_u64(&w, c->hello.rotate_bytes);
	sx_put_u32(&w, c->hello.max_record);
	SX_ENSURE(!w.overflow && w.len == alpn_len + SX_EXPORTER_CTX_TAIL, err, SX_E_OTHER,
		  "channel: exporter context does not fit");
	if (SSL_export_keying_material(c->ssl, master, sizeof(master), SX_EXPORTER_LABEL,
				       strlen(SX_EXPORTER_LABEL), context, w.len, 1) != 1) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "channel: TLS exporter failed");
		goto out;
	}
	SX_GUARD(sx_keys_split(master, c2s, s2c, err));
	const uint8_t *txs = c->ctx->server ? s2c : c2s;
	const uint8_t *rxs = c->ctx->server ? c2s : s2c;
	SX_GUARD(sx_rdir_init(&c->tx, (sx_suite)c->hello.suite, txs, c->hello.rotate_bytes, err));
	if (sx_rdir_init(&c->rx, (sx_suite)c->hello.suite, rxs, c->hello.rotate_bytes, err) < 0) {
		sx_rdir_free(&c->tx);
		goto out;
	}
	c->have_keys = true;
	rc = 0;
out:
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(c2s, sizeof(c2s));
	OPENSSL_cleanse(s2c, sizeof(s2c));
	return rc;
}

/* ---- the two roles after the TLS handshake ------------------------------- */

static int client_send_hello(sx_chan *c, sx_err *err)
{
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	uint8_t buf[SX_HELLO_LEN];

	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (alpn_len != strlen(c->ctx->alpn) || memcmp(alpn, c->ctx->alpn, alpn_len) != 0)
		return sx_fail(err, SX_E_AUTH, "server did not select ALPN %s", c->ctx->alpn);
	if (chan_note_peer(c, err) < 0)
		return -1;
	c->hello.version = SX_PROTO_VERSION;
	c->hello.suite = (uint8_t)c->ctx->suite;
	c->hello.max_record = c->ctx->max_record;
	c->hello.rotate_bytes = c->ctx->rotate_bytes;
	sx_hello_encode(&c->hello, buf);
	/* One TLS application-data record. */
	if (SSL_write(c->ssl, buf, sizeof(buf)) != (int)sizeof(buf))
		return sx_fail_ssl(err, SX_E_OTHER, "channel: cannot send HELLO");
	if (drain_wbio(c, err) < 0 || derive_keys(c, err) < 0)
		return -1;
	c->state = ST_WAIT_CONFIRM;
	return 0;
}

static int server_check_hello(const sx_hello *h, sx_err *err)
{
	if (h->version != SX_PROTO_VERSION)
		return sx_fail(err, SX_E_AUTH, "client speaks protocol version %u, we speak %u",
			       h->version, SX_PROTO_VERSION);
	if (sx_suite_tag_len((sx_suite)h->suite) == 0)
		return sx_fail(err, SX_E_AUTH, "client asks for unknown record suite %u", h->suite);
	if (h->max_record < SX_MAX_RECORD_MIN)
		return sx_fail(err, SX_E_AUTH, "client max record %u is below the minimum %u",
			       h->max_record, SX_MAX_RECORD_MIN);
	/* Both sides ratchet at the same byte count, so the server cannot
	 * silently lower it: it refuses what is out of range. */
	if (h->rotate_bytes < 1 || h->rotate_bytes > SX_ROTATE_MAX)
		return sx_fail(err, SX_E_AUTH,
			       "client key rotation interval %llu is outside 1 byte .. 64 GiB",
			       (unsigned long long)h->rotate_bytes);
	return 0;
}

/* Reads the HELLO, derives keys and queues the sealed CONFIRM. Returns 0
 * also when the HELLO has not arrived yet (state unchanged). */
static int server_read_hello(sx_chan *c, sx_err *err)
{
	uint8_t buf[SX_HELLO_LEN + 1];
	uint8_t rec[SX_REC_HDR_LEN + SX_CONFIRM_BODY_MAX];
	size_t rec_len = 0;
	int rc = -1;

	int n = SSL_read(c->ssl, buf, sizeof(buf));
	if (n <= 0) {
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN)
			return sx_fail(err, SX_E_NET, "client closed TLS before sending HELLO");
		return chan_tls_failure(c, "reading HELLO", err);
	}
	SX_ENSURE(n == SX_HELLO_LEN, err, SX_E_AUTH, "client HELLO has %d bytes, expected %d", n,
		  SX_HELLO_LEN);
	SX_GUARD(sx_hello_decode(buf, (size_t)n, &c->hello, err));
	SX_GUARD(server_check_hello(&c->hello, err));
	SX_GUARD(chan_note_peer(c, err));
	SX_GUARD(derive_keys(c, err));
	c->peer_max_record = c->hello.max_record;

	/* Key confirmation: the first sealed record, s2c seq 0. */
	sx_msg m = {.type = SX_MSG_CONFIRM, .max_record = c->ctx->max_record};
	sx_wbuf w = sx_wbuf_make(rec + SX_REC_HDR_LEN,
				 sizeof(rec) - SX_REC_HDR_LEN - sx_suite_tag_len(c->tx.suite));
	sx_msg_encode(&m, &w);
	SX_ENSURE(!w.overflow, err, SX_E_OTHER, "channel: CONFIRM does not fit");
	SX_GUARD(sx_record_seal(&c->tx, SX_REC_CTRL, 0, rec, w.len, &rec_len, err));
	/* TLS bytes first, then the CONFIRM. */
	SX_GUARD(drain_wbio(c, err));
	SX_GUARD(out_reserve(c, rec_len, err));
	memcpy(c->out + c->out_len, rec, rec_len);
	c->out_len += rec_len;
	c->state = ST_READY;
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(rec, sizeof(rec));
	return rc;
}

/* Advances OpenSSL after a record was written to the rbio. */
static int tls_step(sx_chan *c, sx_err *err)
{
	if (!SSL_is_init_finished(c->ssl)) {
		int r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				return 0;
			return chan_tls_failure(c, "TLS handshake", err);
		}
		if (!c->ctx->server)
			return client_send_hello(c, err);
	}
	if (c->ctx->server)
		return server_read_hello(c, err);
	return 0;
}

/* The client's view of a TLS record after HELLO: the server refusing us
 * (an alert, encrypted in TLS 1.3), or a close. */
static int client_tls_after_hello(sx_chan *c, sx_err *err)
{
	uint8_t b;
	int n = SSL_read(c->ssl, &b, 1);
	if (n > 0) {
		OPENSSL_cleanse(&b, sizeof(b));
		return sx_fail(err, SX_E_NET, "server sent TLS application data after HELLO");
	}
	int e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_WANT_READ)
		return 0; /* e.g. a post-handshake message; nothing to do */
	if (c->peer_alert >= 0 && e != SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH, "server refused the handshake: %s",
			       SSL_alert_desc_string_long(c->peer_alert));
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return sx_fail(err, SX_E_AUTH, "server closed TLS without confirming the keys");
	}
	return chan_tls_failure(c, "TLS after HELLO", err);
}

/* ---- input -------------------------------------------------------------- */

/* Checks the TLS record header at in (len bytes available, maybe fewer than
 * a header). *rec_len is 0 when more bytes are needed. Checks what is
 * already there, so a peer that is not speaking TLS fails at once. */
static int tls_frame(sx_chan *c, const uint8_t *in, size_t len, size_t *rec_len, sx_err *err)
{
	sx_cur cur = sx_cur_make(in, len < TLS_HDR_LEN ? len : TLS_HDR_LEN);
	uint8_t type = 0, vmaj = 0, vmin = 0;
	uint16_t body = 0;
	bool first = c->first_record && c->ctx->server;

	*rec_len = 0;
	if (sx_cur_u8(&cur, &type) == 0 && (type < TLS_TYPE_MIN || type > TLS_TYPE_MAX))
		goto bad;
	if (sx_cur_u8(&cur, &vmaj) == 0 && vmaj != 0x03)
		goto bad;
	if (sx_cur_u8(&cur, &vmin) == 0 &&
	    !(vmin == (TLS_VER_LEGACY & 0xff) || (first && vmin == (TLS_VER_FIRST_CH & 0xff))))
		goto bad;
	if (sx_cur_u16(&cur, &body) < 0)
		return 0; /* header incomplete */
	if (body > TLS_REC_MAX || body == 0)
		goto bad;
	if (len - TLS_HDR_LEN < body)
		return 0;
	*rec_len = TLS_HDR_LEN + body;
	return 0;
bad:
	if (c->first_record)
		return sx_fail(err, SX_E_NET, "peer is not speaking TLS");
	return sx_fail(err, SX_E_NET, "malformed TLS record from %s",
		       c->ctx->server ? "client" : "server");
}

static int feed_tls(sx_chan *c, const uint8_t *in, size_t len, size_t *used, sx_err *err)
{
	size_t rec_len;
	*used = 0;
	if (tls_frame(c, in, len, &rec_len, err) < 0)
		return -1;
	if (rec_len == 0)
		return 0;
	if (BIO_write(c->rbio, in, (int)rec_len) != (int)rec_len)
		return sx_fail_ssl(err, SX_E_OTHER, "channel: cannot buffer TLS input");
	c->first_record = false;
	*used = rec_len;
	return 0;
}

/* The server's sealed CONFIRM: header, then (once complete) open with rx. */
static int client_read_confirm(sx_chan *c, const uint8_t *in, size_t len, size_t *used, sx_err *err)
{
	uint8_t rec[SX_REC_HDR_LEN + SX_CONFIRM_BODY_MAX];
	size_t body_len, total;
	uint8_t type, flags, *pt;
	size_t pt_len;
	sx_msg m;
	int rc = -1;

	*used = 0;
	if (len < SX_REC_HDR_LEN)
		return 0;
	if (sx_record_check_header(&c->rx, in, SX_CONFIRM_BODY_MAX, &body_len, err) < 0) {
		sx_err_prefix(err, "server key confirmation: ");
		return -1;
	}
	total = SX_REC_HDR_LEN + body_len;
	if (len < total)
		return 0;
	memcpy(rec, in, total);
	if (sx_record_open(&c->rx, rec, total, &type, &flags, &pt, &pt_len, err) < 0) {
		sx_err_prefix(err, "server key confirmation failed (keys differ): ");
		goto out;
	}
	SX_ENSURE(type == SX_REC_CTRL, err, SX_E_INTEGRITY,
		  "server key confirmation: expected a control record, got type %u", type);
	if (sx_msg_decode(pt, pt_len, &m, err) < 0) {
		sx_err_prefix(err, "server key confirmation: ");
		goto out;
	}
	SX_ENSURE(m.type == SX_MSG_CONFIRM, err, SX_E_INTEGRITY,
		  "server key confirmation: expected CONFIRM, got message 0x%02x", m.type);
	SX_ENSURE(m.max_record >= SX_MAX_RECORD_MIN, err, SX_E_INTEGRITY,
		  "server max record %u is below the minimum %u", m.max_record, SX_MAX_RECORD_MIN);
	c->peer_max_record = m.max_record;
	*used = total;
	c->state = ST_READY;
	rc = 0;
out:
	OPENSSL_cleanse(rec, sizeof(rec));
	return rc;
}

int sx_chan_input(sx_chan *c, const uint8_t *in, size_t len, size_t *used, sx_err *err)
{
	size_t pos = 0, n;
	int rc = -1;

	*used = 0;
	if (c->state == ST_FAILED)
		return sx_fail(err, c->fail.cls, "%s", c->fail.msg);
	while (c->state != ST_READY && pos < len) {
		const uint8_t *p = in + pos;
		size_t left = len - pos;
		if (c->state == ST_WAIT_CONFIRM && (p[0] < TLS_TYPE_MIN || p[0] > TLS_TYPE_MAX)) {
			SX_GUARD(client_read_confirm(c, p, left, &n, err));
			if (n == 0)
				break;
			pos += n;
			continue;
		}
		SX_GUARD(feed_tls(c, p, left, &n, err));
		if (n == 0)
			break;
		pos += n;
		if (c->state == ST_TLS)
			SX_GUARD(tls_step(c, err));
		else
			SX_GUARD(client_tls_after_hello(c, err));
	}
	/* Hand out whatever OpenSSL queued (flights, HELLO, alerts). */
	SX_GUARD(drain_wbio(c, err));
	*used = pos;
	rc = 0;
out:
	if (rc < 0) {
		sx_err tmp = {0};
		/* The alert that explains our refusal must still go out. */
		(void)drain_wbio(c, &tmp);
		c->state = ST_FAILED;
		c->fail = *err;
		*used = pos;
	}
	return rc;
}

void sx_chan_take(sx_chan *c, sx_chan_result *out)
{
	memset(out, 0, sizeof(*out));
	if (c->have_keys) {
		memcpy(&out->tx, &c->tx, sizeof(out->tx));
		memcpy(&out->rx, &c->rx, sizeof(out->rx));
		OPENSSL_cleanse(&c->tx, sizeof(c->tx));
		OPENSSL_cleanse(&c->rx, sizeof(c->rx));
		c->have_keys = false;
	}
	out->hello = c->hello;
	out->peer_max_record = c->peer_max_record;
	memcpy(out->peer_name, c->peer_name, sizeof(out->peer_name));
	memcpy(out->peer_fingerprint, c->peer_fp, sizeof(out->peer_fingerprint));
	out->peer_chain = c->peer_chain;
	c->peer_chain = NULL;
	out->peer_verified = c->peer_verified;
	memcpy(out->peer_problem, c->peer_problem, sizeof(out->peer_problem));
	memcpy(out->refusal, c->refusal, sizeof(out->refusal));
}
