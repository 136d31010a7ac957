/* engine/enroll, inside: the connection (conn.c: the channel over a
 * blocking socket, one request and one answer), shared by the service
 * (serve.c, serve_req.c) and the clients (client.c, idfiles.c). Nothing
 * outside this folder includes it.
 *
 * conn.c is the one file here that includes engine/channel: the others
 * work on messages, files and the CA, and need none of it. */
#ifndef SX_ENROLL_INT_H
#define SX_ENROLL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/enroll/sx_enroll.h"

typedef struct sx_chan_ctx sx_chan_ctx; /* engine/channel/sx_channel.h */
typedef struct enroll_conn enroll_conn;

/* The largest record body each side accepts: the service reads requests,
 * a client reads answers (a CRL of up to 4 MiB). */
#define ENROLL_SERVER_MAX_RECORD 65536u
#define ENROLL_CLIENT_MAX_RECORD (SX_ENROLL_REPLY_MAX + 64u)

/* The peer of a connection, as the channel left it. */
typedef struct enroll_peer {
	bool verified;	   /* a client certificate the policy accepted (clients: the server) */
	char problem[400]; /* why not ("no client certificate", the policy's reason) */
	char name[256];	   /* its certificate's CN ("" without one) */
	char fp[SX_CERT_FP_HEX_LEN];
	STACK_OF(X509) * chain; /* leaf first (borrowed from the connection); NULL: none */
} enroll_peer;

/* ---- conn.c ------------------------------------------------------------- */

/* The service's context: id is its TLS identity (with the CA root as the
 * one anchor and no CRL: the CA's index is the revocation authority), the
 * client's certificate optional, the root sent after the chain. */
int enroll_ctx_server(const sx_identity *id, X509 *root, sx_chan_ctx **out,
		      sx_err *err) SX_MUST_CHECK;
/* A client's context: pin (32 bytes) for sxfer enroll (id then holds
 * nothing), else id with its anchors and crl (NULL: none). */
int enroll_ctx_client(const sx_identity *id, X509_CRL *crl, const uint8_t *pin,
		      const char *server_name, sx_chan_ctx **out, sx_err *err) SX_MUST_CHECK;
void enroll_ctx_free(sx_chan_ctx *ctx);

/* A connection over the blocking socket fd (owned from here on, also on
 * failure). */
int enroll_conn_new(enroll_conn **out, int fd, sx_chan_ctx *ctx, sx_err *err) SX_MUST_CHECK;
/* Closes the socket (after the peer's end, or briefly waiting for it). */
void enroll_conn_free(enroll_conn *c);
/* The channel's handshake, within timeout_ms. On failure the alert that
 * explains it is still sent. */
int enroll_conn_handshake(enroll_conn *c, int timeout_ms, sx_err *err) SX_MUST_CHECK;
const enroll_peer *enroll_conn_peer(const enroll_conn *c);
/* One message in a sealed CTRL record, then an EOS record. */
int enroll_conn_send(enroll_conn *c, const sx_enroll_msg *m, int timeout_ms,
		     sx_err *err) SX_MUST_CHECK;
/* One message (it points into the connection's buffer until the next
 * call), then the EOS record that must follow it; within timeout_ms. */
int enroll_conn_recv(enroll_conn *c, sx_enroll_msg *m, int timeout_ms, sx_err *err) SX_MUST_CHECK;

/* ---- serve_req.c: what the service answers ------------------------------ */

typedef struct sx_ca sx_ca; /* pki/sx_ca.h */

/* What every connection thread of the service shares. */
typedef struct enroll_srv {
	sx_ca *ca;
	X509 *root; /* borrowed from ca */
	char root_fp[SX_CERT_FP_HEX_LEN];
	pthread_mutex_t rl_mu; /* the rate limit, and each token attempt under it */
	sx_ratelimit *rl;
} enroll_srv;

/* Who asks: the peer's address (as text for messages and logs, and its
 * key for the rate limit) and its certificate, if any. */
typedef struct enroll_asker {
	char addr[80];	  /* "192.0.2.7:50412", "[2001:db8::1]:50412" */
	char rl_name[64]; /* "192.0.2.7", "2001:db8::/64": what the limit counts */
	uint8_t rl_key[SX_RATELIMIT_KEY_LEN];
	const enroll_peer *peer;
} enroll_asker;

typedef struct enroll_answer {
	sx_enroll_msg msg; /* what to send */
	unsigned char *leaf_der, *root_der, *crl_der;
	char reason[SX_ENROLL_REASON_MAX + 1];
	bool tell; /* the client gets the reason whatever its class */
	/* for the log line */
	const char *kind, *result;
	char name[256], serial[80];
	sx_err why; /* the whole reason of a refusal (the client may get less) */
} enroll_answer;

/* Answers one request (ISSUED, CRL or ERROR). */
void enroll_answer_request(enroll_srv *s, const enroll_asker *who, const sx_enroll_msg *req,
			   enroll_answer *a);
/* An ERROR for a request that could not be read. */
void enroll_answer_error(enroll_answer *a, const sx_err *why);
void enroll_answer_free(enroll_answer *a);

/* ---- idfiles.c: the clients' files ------------------------------------- */

/* A passphrase source that asks once (enroll: before connecting, so that
 * no prompt waits once the token is spent) and then repeats the answer. */
typedef struct enroll_pass {
	sx_pass pass; /* give this one to pki */
	const sx_pass *src;
	char buf[1024];
	size_t len;
	bool have;
} enroll_pass;

void enroll_pass_init(enroll_pass *pc, const sx_pass *src);
int enroll_pass_ask(enroll_pass *pc, sx_err *err) SX_MUST_CHECK;
void enroll_pass_wipe(enroll_pass *pc);

/* sxfer enroll: DIR holds no key.pem or cert.pem (made 0700 if needed:
 * *made); then key.pem, ca.pem, crl.pem (when crl) and cert.pem, last. */
int enroll_out_prepare(const char *dir, bool *made, sx_err *err) SX_MUST_CHECK;
int enroll_out_write(const char *dir, EVP_PKEY *key, const sx_pass *pass, X509 *leaf, X509 *root,
		     X509_CRL *crl, sx_err *err) SX_MUST_CHECK;
/* sxfer renew: key.pem and cert.pem kept as .old, the new ones written as
 * .new and renamed, crl.pem (when crl) replaced, the .old removed.
 * new_key NULL: the key stays. */
int enroll_renew_replace(const char *dir, EVP_PKEY *new_key, const sx_pass *pass, X509 *leaf,
			 X509_CRL *crl, sx_err *err) SX_MUST_CHECK;
/* Before a renewal: what an earlier one cut off left. Cut between its two
 * renames (a new key, the previous certificate), the previous key goes back
 * (*restored); the .old and .new names of any earlier renewal are removed
 * (the pair under key.pem and cert.pem is then whole). */
int enroll_renew_recover(const char *dir, bool *restored, sx_err *err) SX_MUST_CHECK;
int enroll_key_encrypted(const char *dir, bool *encrypted, sx_err *err) SX_MUST_CHECK;
/* sxfer crl fetch: DIR/crl.pem (NULL when there is none), and its
 * replacement. */
int enroll_crl_current(const char *dir, X509_CRL **out, sx_err *err) SX_MUST_CHECK;
int enroll_crl_write(const char *dir, X509_CRL *crl, sx_err *err) SX_MUST_CHECK;

/* ---- client.c ----------------------------------------------------------- */

/* Connects, completes the handshake, sends req and receives the answer
 * (*conn holds it: free with enroll_conn_free). An ERROR answer is
 * returned as a failure of its class, "enrollment service: <reason>". */
int enroll_exchange(const sx_enroll_net *net, sx_chan_ctx *ctx, const sx_enroll_msg *req,
		    enroll_conn **conn, sx_enroll_msg *answer, sx_err *err) SX_MUST_CHECK;
/* The answer is of the kind asked for. */
int enroll_expect(const sx_enroll_msg *m, uint8_t type, sx_err *err) SX_MUST_CHECK;
/* Strict DER: exactly the bytes of one object (SX_E_INTEGRITY otherwise). */
int enroll_der_cert(const uint8_t *p, size_t n, X509 **out, sx_err *err) SX_MUST_CHECK;
int enroll_der_crl(const uint8_t *p, size_t n, X509_CRL **out, sx_err *err) SX_MUST_CHECK;
/* A CRL that came from the service: signed by one of anchors (else
 * refused); *keep when it is also current (a stale one is not written). */
int enroll_check_crl(X509_CRL *crl, STACK_OF(X509) * anchors, bool *keep,
		     sx_err *err) SX_MUST_CHECK;
/* An issued certificate, before anything is written: for key, with this
 * name and role ("client", "server", "both"), valid under anchors and crl. */
int enroll_check_issued(X509 *leaf, EVP_PKEY *key, const char *name, const char *role,
			STACK_OF(X509) * anchors, X509_CRL *crl, sx_err *err) SX_MUST_CHECK;
/* res: the service, and the certificate's name, role, SANs, serial,
 * notAfter; the root's fingerprint (root may be NULL). */
void enroll_result_fill(sx_enroll_result *res, const enroll_conn *conn, X509 *leaf, X509 *root);

#endif
