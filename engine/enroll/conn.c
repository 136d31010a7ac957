/* The enrollment connection: the channel (TLS 1.3 with ALPN
 * sxfer-enroll/1, HELLO, CONFIRM) driven over a blocking socket, then one
 * sealed message and an EOS record each way (docs/PROTOCOL.md
 * "Enrollment"). */
#include "engine/enroll/enroll_int.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/channel/sx_channel.h"
#include "engine/channel/sx_link.h"
#include "engine/channel/sx_net.h"

#define EOS_BUF	      (SX_REC_HDR_LEN + SX_REC_TAG_MAX)
#define CLOSE_WAIT_MS 1000 /* how long a closing side waits for the peer's end */

struct enroll_conn {
	int fd;
	bool server;
	sx_link link;
	enroll_peer peer;
	uint8_t *rx; /* one record: header, the largest body we accept */
	size_t rx_cap;
	uint8_t eos[EOS_BUF];
};

int enroll_ctx_server(const sx_identity *id, X509 *root, sx_chan_ctx **out, sx_err *err)
{
	STACK_OF(X509) *extra = sk_X509_new_null();
	int rc = -1;
	SX_ENSURE(extra != NULL && sk_X509_push(extra, root) > 0, err, SX_E_OTHER, "out of memory");
	sx_chan_cfg cfg = {.server = true,
			   .id = id,
			   .max_record = ENROLL_SERVER_MAX_RECORD,
			   .alpn = SX_ALPN_ENROLL,
			   .peer_optional = true,
			   .extra_chain = extra};
	rc = sx_chan_ctx_new(out, &cfg, err);
out:
	sk_X509_free(extra);
	return rc;
}

int enroll_ctx_client(const sx_identity *id, X509_CRL *crl, const uint8_t *pin,
		      const char *server_name, sx_chan_ctx **out, sx_err *err)
{
	sx_chan_cfg cfg =
	    sx_chan_client(id, crl, server_name, SX_SUITE_AES256GCM, 0, ENROLL_CLIENT_MAX_RECORD);
	cfg.alpn = SX_ALPN_ENROLL;
	cfg.pin_fp = pin;
	return sx_chan_ctx_new(out, &cfg, err);
}

void enroll_ctx_free(sx_chan_ctx *ctx)
{
	sx_chan_ctx_free(ctx);
}

int enroll_conn_new(enroll_conn **out, int fd, sx_chan_ctx *ctx, sx_err *err)
{
	enroll_conn *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (c == NULL) {
		close(fd);
		return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	c->fd = fd;
	if (sx_link_init(&c->link, ctx, err) < 0) {
		enroll_conn_free(c);
		return -1;
	}
	c->server = sx_chan_is_server(c->link.chan);
	*out = c;
	return 0;
}

/* A graceful end: our side is done; the peer's end (or a short wait)
 * before the close, so that nothing it sent makes the close a reset that
 * could discard our last bytes on its side. */
static void close_gently(int fd)
{
	uint8_t sink[512];
	uint64_t end = sx_now_ns() + (uint64_t)CLOSE_WAIT_MS * 1000000u;
	(void)shutdown(fd, SHUT_WR);
	for (;;) {
		uint64_t now = sx_now_ns();
		if (now >= end)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)((end - now) / 1000000u) + 1) <= 0)
			break;
		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	}
	close(fd);
}

void enroll_conn_free(enroll_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close_gently(c->fd);
	sx_link_free(&c->link);
	if (c->rx != NULL)
		OPENSSL_clear_free(c->rx, c->rx_cap);
	OPENSSL_cleanse(c->eos, sizeof(c->eos));
	free(c);
}

const enroll_peer *enroll_conn_peer(const enroll_conn *c)
{
	return &c->peer;
}

/* Milliseconds left until end (a monotonic time in ns); at least 1. */
static int left_ms(uint64_t end)
{
	uint64_t now = sx_now_ns();
	return now >= end ? 1 : (int)((end - now) / 1000000u) + 1;
}

/* The channel's pending output (TLS flights, alerts, the CONFIRM). */
static int flush_hs(enroll_conn *c, uint64_t end, sx_err *err)
{
	const uint8_t *p;
	size_t n;
	if (c->link.chan == NULL)
		return 0;
	sx_link_hs_output(&c->link, &p, &n);
	if (n > 0 && sx_net_send_all(c->fd, p, n, left_ms(end), err) < 0)
		return -1;
	sx_link_hs_sent(&c->link);
	return 0;
}

static void note_peer(enroll_conn *c)
{
	const sx_chan_result *k = &c->link.k;
	c->peer.verified = k->peer_verified;
	memcpy(c->peer.problem, k->peer_problem, sizeof(c->peer.problem));
	memcpy(c->peer.name, k->peer_name, sizeof(c->peer.name));
	memcpy(c->peer.fp, k->peer_fingerprint, sizeof(c->peer.fp));
	c->peer.chain =
	    k->peer_chain != NULL && sk_X509_num(k->peer_chain) > 0 ? k->peer_chain : NULL;
}

int enroll_conn_handshake(enroll_conn *c, int timeout_ms, sx_err *err)
{
	uint64_t end = sx_now_ns() + (uint64_t)timeout_ms * 1000000u;
	sx_err ignore = {0};
	uint8_t *buf;
	size_t cap;
	for (;;) {
		SX_GUARD(flush_hs(c, end, err));
		if (c->link.ready)
			break;
		sx_link_hs_recv_buf(&c->link, &buf, &cap);
		long n = sx_net_recv_some(c->fd, buf, cap, left_ms(end), err);
		if (n < 0) {
			sx_err_prefix(err, "handshake: ");
			goto out;
		}
		SX_ENSURE(n > 0, err, SX_E_NET,
			  "the peer closed the connection during the handshake");
		if (sx_link_hs_input(&c->link, (size_t)n, err) < 0) {
			/* The alert that says why goes out first. */
			(void)flush_hs(c, end, &ignore);
			goto out;
		}
	}
	note_peer(c);
	return 0;
out:
	return -1;
}

int enroll_conn_send(enroll_conn *c, const sx_enroll_msg *m, int timeout_ms, sx_err *err)
{
	sx_rdir *tx = &c->link.k.tx;
	size_t tag = sx_suite_tag_len(tx->suite);
	/* The fields, and at most 16 bytes of type, lengths and class. */
	size_t body =
	    16 + m->token_len + m->csr_len + m->leaf_len + m->root_len + m->crl_len + m->reason_len;
	size_t cap, len, rec_len = 0, eos_len = 0;
	uint8_t *buf = NULL;
	int rc = -1;
	if (body > SX_ENROLL_REPLY_MAX)
		body = SX_ENROLL_REPLY_MAX;
	cap = SX_REC_HDR_LEN + body + tag + EOS_BUF;
	buf = malloc(cap);
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	len = sx_enroll_msg_encode(m, buf + SX_REC_HDR_LEN, body);
	SX_ENSURE(len > 0, err, SX_E_OTHER, "cannot encode the %s message",
		  sx_enroll_msg_name(m->type));
	SX_ENSURE(len + tag <= c->link.k.peer_max_record, err, SX_E_NET,
		  "the %s message (%zu bytes) is larger than the peer accepts (%u)",
		  sx_enroll_msg_name(m->type), len, c->link.k.peer_max_record);
	SX_GUARD(sx_record_seal(tx, SX_REC_CTRL, 0, buf, len, &rec_len, err));
	SX_GUARD(sx_record_seal(tx, SX_REC_EOS, 0, buf + rec_len, 0, &eos_len, err));
	SX_GUARD(sx_net_send_all(c->fd, buf, rec_len + eos_len, timeout_ms, err));
	rc = 0;
out:
	if (buf != NULL)
		OPENSSL_clear_free(buf, cap);
	return rc;
}

/* One whole record into buf (cap bytes), opened in place. */
static int recv_record(enroll_conn *c, uint8_t *buf, size_t cap, uint64_t end, uint8_t *type,
		       uint8_t **pt, size_t *pt_len, sx_err *err)
{
	bool complete = false;
	uint8_t flags = 0;
	sx_link_rx_set(&c->link, buf, cap);
	c->link.max_body = cap - SX_REC_HDR_LEN;
	while (!complete) {
		uint8_t *p;
		size_t want, n;
		sx_link_rx_want(&c->link, &p, &want);
		if (sx_link_rx_early(&c->link) > 0) {
			n = sx_link_rx_feed(&c->link);
		} else {
			long got = sx_net_recv_some(c->fd, p, want, left_ms(end), err);
			if (got < 0)
				return -1;
			if (got == 0)
				return sx_fail(
				    err, SX_E_NET,
				    "the peer closed the connection before the end of its "
				    "message");
			n = (size_t)got;
		}
		if (sx_link_rx_input(&c->link, n, &complete, type, &flags, pt, pt_len, err) < 0)
			return -1;
	}
	if (flags != 0)
		return sx_fail(err, SX_E_INTEGRITY, "a record with flags 0x%02x", flags);
	return 0;
}

int enroll_conn_recv(enroll_conn *c, sx_enroll_msg *m, int timeout_ms, sx_err *err)
{
	uint64_t end = sx_now_ns() + (uint64_t)timeout_ms * 1000000u;
	uint8_t type, *pt, *eos_pt;
	size_t pt_len, eos_len;
	if (c->rx == NULL) {
		/* The largest body this side announced (HELLO or CONFIRM). */
		c->rx_cap = SX_REC_HDR_LEN +
			    (c->server ? ENROLL_SERVER_MAX_RECORD : ENROLL_CLIENT_MAX_RECORD);
		c->rx = malloc(c->rx_cap);
		if (c->rx == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	if (recv_record(c, c->rx, c->rx_cap, end, &type, &pt, &pt_len, err) < 0)
		return -1;
	if (type != SX_REC_CTRL)
		return sx_fail(err, SX_E_INTEGRITY, "expected a message, got a record of type %u",
			       type);
	if (sx_enroll_msg_decode(pt, pt_len, m, err) < 0)
		return -1;
	if (recv_record(c, c->eos, sizeof(c->eos), end, &type, &eos_pt, &eos_len, err) < 0)
		return -1;
	if (type != SX_REC_EOS)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s: expected the end of the stream, got a record "
			       "of type %u",
			       sx_enroll_msg_name(m->type), type);
	return 0;
}
