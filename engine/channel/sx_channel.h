/* engine/channel: the TLS 1.3 handshake (OpenSSL over memory BIOs, so the
 * engine owns every byte on the socket), the HELLO exchange inside TLS, the
 * exporter (RFC 8446 section 7.5) that keys the record layer, and key
 * confirmation. Nothing above this file calls SSL_*.
 *
 * It is a byte-in/byte-out state machine with no socket of its own:
 *   - sx_chan_input() takes bytes received from the peer. During the TLS
 *     phase it consumes whole TLS records only (it parses the 5-byte TLS
 *     record header), so that when the channel becomes ready, the bytes it
 *     did not consume are the first sxfer records.
 *   - sx_chan_output() hands out bytes to send (TLS records, then the
 *     server's sealed CONFIRM record).
 *   - once sx_chan_ready(), the caller takes the two record directions with
 *     sx_chan_take() and the channel can be freed.
 *
 * Client: TLS handshake -> sends HELLO inside TLS -> derives keys -> waits
 *   for the server's sealed CONFIRM record (key confirmation: a client sends
 *   no file data before it has opened a sealed record from the server; in TLS
 *   1.3 its handshake can finish before the server has rejected its
 *   certificate) -> ready.
 * Server: TLS handshake (client certificate required, checked by the pki
 *   policy with role client and the CRL) -> reads HELLO -> derives keys ->
 *   queues the sealed CONFIRM -> ready. */
#ifndef SX_CHANNEL_H
#define SX_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/record/sx_record.h"
#include "engine/wire/sx_wire.h"
#include "pki/sx_pki.h"

typedef struct sx_chan sx_chan;

/* Shared by every connection of a server (or the one of a client): the
 * SSL_CTX with our certificate, key, trust anchors and policy. */
typedef struct sx_chan_ctx sx_chan_ctx;

typedef struct sx_chan_cfg {
	bool server;
	const sx_identity *id; /* our key, chain and trust anchors (borrowed) */
	X509_CRL *crl;	       /* revocation list for the peer (borrowed); NULL: id->crl */
	/* client only */
	const char *server_name; /* checked against the server's SAN */
	sx_suite suite;		 /* 0: SX_SUITE_AES256GCM */
	uint64_t rotate_bytes;	 /* 0: 64 GiB (the maximum) */
	/* both: largest record body we accept */
	uint32_t max_record;
	/* both: the ALPN protocol (NULL: SX_ALPN); the enrollment service
	 * uses SX_ALPN_ENROLL, so neither service talks to the other's client */
	const char *alpn;
	/* server: a client certificate is optional, and one the policy refuses
	 * does not fail the handshake: sx_chan_result says whether and why
	 * (the enrollment service; TLS still proves the key's possession). It
	 * may be of either role (a server renews its certificate too). */
	bool peer_optional;
	/* server: certificates sent after our chain (the enrollment service
	 * sends its root, so that a client pinning it by fingerprint finds it) */
	STACK_OF(X509) * extra_chain;
	/* client: the trust anchor is the certificate of this SHA-256
	 * fingerprint among those the server sends (sxfer enroll); id may then
	 * hold no key and no certificate, and no anchors */
	const uint8_t *pin_fp;
} sx_chan_cfg;

int sx_chan_ctx_new(sx_chan_ctx **out, const sx_chan_cfg *cfg, sx_err *err) SX_MUST_CHECK;
/* The settings of a client (sxfer send, sxfer get). */
sx_chan_cfg sx_chan_client(const sx_identity *id, X509_CRL *crl, const char *server_name,
			   sx_suite suite, uint64_t rotate_bytes, uint32_t max_record);
void sx_chan_ctx_free(sx_chan_ctx *ctx);
/* Replaces the CRL new handshakes check peers against (a reference is
 * taken; NULL: none). Thread-safe: handshakes already past the check keep
 * the CRL they used. */
int sx_chan_ctx_set_crl(sx_chan_ctx *ctx, X509_CRL *crl, sx_err *err) SX_MUST_CHECK;
/* The CRL new handshakes check peers against, as a new reference
 * (X509_CRL_free it), or NULL. Thread-safe. */
X509_CRL *sx_chan_ctx_crl(sx_chan_ctx *ctx);

/* A client's ClientHello is queued by sx_chan_new: send sx_chan_output()
 * first. */
int sx_chan_new(sx_chan **out, sx_chan_ctx *ctx, sx_err *err) SX_MUST_CHECK;
void sx_chan_free(sx_chan *c);

/* Feeds received bytes; *used is how many were consumed. A partial record
 * (TLS or the CONFIRM) is not consumed: offer it again with more bytes, so
 * the caller's receive buffer must hold one whole TLS record (5 + 16640
 * bytes). Nothing is consumed once ready. After a failure, still send what
 * sx_chan_output() holds (the TLS alert that tells the peer why), then close;
 * the failure is repeated by later calls. Failures: SX_E_AUTH
 * for certificate/handshake refusals (with the reason: the policy's, or the
 * peer's alert), SX_E_NET for a malformed TLS stream, SX_E_INTEGRITY for a
 * CONFIRM that does not open. */
int sx_chan_input(sx_chan *c, const uint8_t *in, size_t len, size_t *used,
		  sx_err *err) SX_MUST_CHECK;

/* Bytes waiting to be sent: *out points to them, *n their count;
 * sx_chan_consume(c, n) once they are sent. The bytes stay in place until
 * consumed, even across sx_chan_input calls (new bytes are only appended), so
 * an asynchronous send may read them directly. */
void sx_chan_output(sx_chan *c, const uint8_t **out, size_t *n);
void sx_chan_consume(sx_chan *c, size_t n);

/* Ready: handshake done, keys derived, key confirmation done (client) or
 * queued (server; send the pending output before anything else). */
bool sx_chan_ready(const sx_chan *c);
bool sx_chan_is_server(const sx_chan *c);

typedef struct sx_chan_result {
	sx_rdir tx, rx;
	sx_hello hello;		     /* the negotiated parameters */
	uint32_t peer_max_record;    /* largest record body the peer accepts */
	char peer_name[256];	     /* the peer certificate's CN */
	char peer_fingerprint[65];   /* SHA-256 of the peer's certificate */
	STACK_OF(X509) * peer_chain; /* the peer's certificates, leaf first (owned) */
	/* peer_optional servers: a certificate was sent and the policy accepted
	 * it; else peer_problem says why not ("no client certificate", the
	 * policy's reason). Always true elsewhere. */
	bool peer_verified;
	char peer_problem[400];
	/* servers: the handshake completed only so that the client can be told
	 * why it is refused (the server's own CRL is stale): send an ERROR
	 * with this reason and close; nothing else is accepted. "" otherwise. */
	char refusal[400];
} sx_chan_result;

/* Moves the keys out (the channel keeps none) and fills the peer details. */
void sx_chan_take(sx_chan *c, sx_chan_result *out);

#endif
