/* engine/channel, inside: what channel.c (the handshake state machine) and
 * channel_ctx.c (the TLS context and its callbacks) share, and nothing
 * outside this folder includes. The public interface is sx_channel.h. */
#ifndef SX_CHANNEL_INT_H
#define SX_CHANNEL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include <openssl/ssl.h>

#include "common/sx_err.h"
#include "engine/channel/sx_channel.h"

/* Bounds of the HELLO parameters, checked by both roles. */
#define SX_MAX_RECORD_MIN 4096u
#define SX_ROTATE_MAX	  (64ull << 30) /* 64 GiB, also the default (docs/PROTOCOL.md) */

/* The output queue: a handshake flight is a few KiB. Fixed, so bytes handed
 * out by sx_chan_output never move until consumed (an io_uring send may still
 * be reading them while more input arrives). */
#define SX_CHAN_OUT_MAX (64u * 1024u)

/* An ALPN protocol name is 1..255 bytes (RFC 7301 3.1). */
#define SX_CHAN_ALPN_MAX 255

struct sx_chan_ctx {
	SSL_CTX *ssl_ctx;
	bool server;
	const sx_identity *id;
	sx_policy policy; /* anchors; its crl stays NULL: the CRL is crl below */
	/* The CRL peers are checked against (a reference; NULL: none), swapped
	 * while handshakes run: read only through sx_chan_ctx_crl, under
	 * crl_lock (channel_crl.c). */
	pthread_mutex_t crl_lock;
	X509_CRL *crl;
	bool crl_init;
	char server_name[256];
	bool name_is_ip;
	sx_suite suite;
	uint64_t rotate_bytes;
	uint32_t max_record;
	char alpn[SX_CHAN_ALPN_MAX + 1]; /* the one protocol offered or selected */
	bool peer_optional;		 /* server: see sx_chan_cfg */
	bool pinned;			 /* client: the anchor is pin_fp among the sent */
	uint8_t pin_fp[SX_CERT_FP_LEN];
};

typedef enum chan_state {
	ST_TLS = 0,	 /* TLS handshake; server: also waiting for HELLO */
	ST_WAIT_CONFIRM, /* client: HELLO sent, keys derived */
	ST_READY,
	ST_FAILED,
} chan_state;

struct sx_chan {
	sx_chan_ctx *ctx;
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	chan_state state;
	bool first_record; /* no TLS record received yet */
	bool verified;	   /* our verify callback accepted the peer */
	int peer_alert;	   /* last alert received from the peer, -1 if none */
	sx_err verr;	   /* why the verify or ALPN callback refused the peer */
	sx_err fail;	   /* sticky failure, repeated by later calls */

	uint8_t out[SX_CHAN_OUT_MAX]; /* bytes to send: out[out_off .. out_len) */
	size_t out_len, out_off;

	bool have_keys;
	sx_rdir tx, rx;
	sx_hello hello;
	uint32_t peer_max_record;
	char peer_name[256];
	char peer_fp[SX_CERT_FP_HEX_LEN];
	STACK_OF(X509) * peer_chain; /* leaf first, as verified */
	/* peer_optional servers: the peer's certificate passed the policy (or
	 * why not); always true once a required peer has been noted */
	bool peer_verified;
	char peer_problem[400];
	char refusal[400]; /* sx_chan_result.refusal */
};

/* channel_ctx.c: why OpenSSL stopped (a callback's reason, the peer's
 * alert, OpenSSL's error queue) as a failure of err; always -1. */
int chan_tls_failure(sx_chan *c, const char *what, sx_err *err);
/* channel_ctx.c: once the verify callback accepted the peer, its name,
 * fingerprint and chain (leaf first) into c; on a peer_optional server also
 * a peer that sent no certificate or one the policy refused. */
int chan_note_peer(sx_chan *c, sx_err *err) SX_MUST_CHECK;
/* channel_ctx.c: what an ALPN protocol is ("file transfer: sxfer serve"),
 * for the messages of peers that do not speak the same one. */
const char *chan_alpn_service(const char *alpn);

/* channel_crl.c: the CRL of a context (a reference taken; freed with
 * the context). */
void chan_crl_init(sx_chan_ctx *ctx, X509_CRL *crl);
void chan_crl_free(sx_chan_ctx *ctx);
/* channel_crl.c: the verify callback's policy decision on the peer, with
 * the context's current CRL. A server whose CRL is not current accepts a
 * client that passes every other check and is not listed by that CRL,
 * with c->refusal saying why it will be refused after the handshake. */
int chan_policy_check(sx_chan *c, X509 *leaf, STACK_OF(X509) * inter, sx_err *err) SX_MUST_CHECK;

#endif
