/* engine/enroll: the CA as a network service (`sxfer ca serve`) and its
 * three clients: `sxfer enroll` (a one-time token for a first certificate,
 * the server's root pinned by fingerprint), `sxfer renew` (a new
 * certificate for the current one, over mutual TLS) and `sxfer crl fetch`
 * (the CA's current CRL).
 *
 * The connection is the channel of every sxfer connection (TLS 1.3, HELLO,
 * CONFIRM) with the ALPN protocol sxfer-enroll/1; then the client sends one
 * request in a sealed CTRL record and an EOS record, the server one answer
 * and an EOS record, and closes. docs/PROTOCOL.md "Enrollment" is the
 * normative description of every byte; docs/PKI.md "Enrollment service,
 * renewal and CRL distribution" says what each step protects against. */
#ifndef SX_ENROLL_H
#define SX_ENROLL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/sx_err.h"
#include "pki/sx_pki.h"

/* ---- messages (bodies of sealed CTRL records) --------------------------- */

/* Type codes: a range of their own, apart from the transfer messages. */
enum {
	SX_EMSG_ENROLL = 0x40,	/* client: token, CSR */
	SX_EMSG_RENEW = 0x41,	/* client: CSR (its certificate is the TLS one) */
	SX_EMSG_CRL_REQ = 0x42, /* client: the current CRL, please */
	SX_EMSG_ISSUED = 0x48,	/* server: leaf, root, current CRL (may be empty) */
	SX_EMSG_CRL = 0x49,	/* server: the current CRL */
	SX_EMSG_ERROR = 0x4f,	/* server: refused or failed (class, reason) */
};

#define SX_ENROLL_TOKEN_MAX  2048	/* bytes of a token (SX_TOKEN_TEXT_MAX) */
#define SX_ENROLL_CSR_MAX    16384	/* bytes of a CSR (DER) */
#define SX_ENROLL_CERT_MAX   16384	/* bytes of a certificate (DER) */
#define SX_ENROLL_CRL_MAX    (4u << 20) /* bytes of a CRL (DER) */
#define SX_ENROLL_REASON_MAX 400	/* bytes of an ERROR's reason */
#define SX_ENROLL_REQ_MAX    (1u + 2u + 2048u + 2u + 16384u)
#define SX_ENROLL_REPLY_MAX  (1u + 2u + 16384u + 2u + 16384u + 4u + (4u << 20))

typedef struct sx_enroll_msg {
	uint8_t type;
	const uint8_t *token; /* ENROLL: visible ASCII (0x21..0x7e), 1..2048 bytes */
	size_t token_len;
	const uint8_t *csr; /* ENROLL, RENEW: DER, 1..16384 bytes */
	size_t csr_len;
	const uint8_t *leaf; /* ISSUED: DER, 1..16384 bytes */
	size_t leaf_len;
	const uint8_t *root; /* ISSUED: DER, 1..16384 bytes */
	size_t root_len;
	const uint8_t *crl; /* ISSUED: 0..4 MiB (0: the CA has made none); CRL: 1..4 MiB */
	size_t crl_len;
	uint8_t err_class;     /* ERROR: an sx_class, 1..6 */
	const uint8_t *reason; /* ERROR: 0..400 bytes */
	size_t reason_len;
} sx_enroll_msg;

/* Encodes into out (cap bytes): its length, or 0 when a field is out of
 * its bounds or the message does not fit. */
size_t sx_enroll_msg_encode(const sx_enroll_msg *m, uint8_t *out, size_t cap);
/* Decodes a CTRL record body: every length within its bound, nothing left
 * over, an unknown type refused; SX_E_INTEGRITY "malformed enrollment
 * message: ...". Pointers in m point into body. */
int sx_enroll_msg_decode(const uint8_t *body, size_t len, sx_enroll_msg *m,
			 sx_err *err) SX_MUST_CHECK;
/* "ENROLL", "RENEW", "CRL request", "ISSUED", "CRL", "ERROR", "unknown". */
const char *sx_enroll_msg_name(uint8_t type);

/* ---- failed token attempts, per address --------------------------------- */

/* At most `limit` failed enrollments per `window` seconds from one address
 * (an IPv4 address, or the /64 of an IPv6 address), in a table of a fixed
 * number of addresses; when it is full, the address whose last failure is
 * the oldest makes room. Not thread-safe (the server holds a lock). */
typedef struct sx_ratelimit sx_ratelimit;

#define SX_RATELIMIT_KEY_LEN 16
#define SX_RATELIMIT_MAX     32 /* the largest limit */

int sx_ratelimit_new(sx_ratelimit **out, unsigned limit, unsigned window_s, size_t slots,
		     sx_err *err) SX_MUST_CHECK;
void sx_ratelimit_free(sx_ratelimit *rl);
/* The key of a peer address: an IPv4 address (also IPv4-mapped IPv6), or
 * the first 64 bits of an IPv6 address. */
void sx_ratelimit_key(const struct sockaddr *sa, uint8_t key[SX_RATELIMIT_KEY_LEN]);
/* 0: the address may try; else the seconds until it may. now_s: a
 * monotonic clock in seconds. */
unsigned sx_ratelimit_check(sx_ratelimit *rl, const uint8_t key[SX_RATELIMIT_KEY_LEN],
			    uint64_t now_s);
void sx_ratelimit_fail(sx_ratelimit *rl, const uint8_t key[SX_RATELIMIT_KEY_LEN], uint64_t now_s);
/* Addresses in the table (tests). */
size_t sx_ratelimit_count(const sx_ratelimit *rl);

/* ---- the service: sxfer ca serve ---------------------------------------- */

#define SX_ENROLL_CONNS_DEFAULT	  64
#define SX_ENROLL_FAIL_LIMIT	  10 /* failed token attempts per address ... */
#define SX_ENROLL_FAIL_WINDOW_S	  60 /* ... per this many seconds */
#define SX_ENROLL_HS_TIMEOUT_MS	  10000
#define SX_ENROLL_IDLE_TIMEOUT_MS 30000
#define SX_ENROLL_TIMEOUT_MS	  30000 /* clients: the default --timeout */
#define SX_ENROLL_RATE_SLOTS	  4096	/* addresses the rate limit remembers */

typedef struct sx_enroll_serve_cfg {
	const char *listen;	     /* ADDR:PORT (port 0: any free one) */
	const char *ca_dir;	     /* the CA folder */
	const sx_pass *pass;	     /* the CA key's passphrase */
	const sx_identity *id;	     /* the TLS identity: a server certificate of the CA */
	unsigned max_conns;	     /* 0: SX_ENROLL_CONNS_DEFAULT; beyond, closed at once */
	unsigned fail_limit;	     /* 0: SX_ENROLL_FAIL_LIMIT */
	unsigned fail_window_s;	     /* 0: SX_ENROLL_FAIL_WINDOW_S */
	int handshake_timeout_ms;    /* 0: SX_ENROLL_HS_TIMEOUT_MS */
	int idle_timeout_ms;	     /* 0: SX_ENROLL_IDLE_TIMEOUT_MS */
	volatile sig_atomic_t *stop; /* set (SIGINT, SIGTERM): stop and return 0 */
	void (*on_listen)(void *ctx, int port);
	void *listen_ctx;
} sx_enroll_serve_cfg;

/* Opens the CA, checks that id is a server certificate of it, listens and
 * serves until *stop. One log line per request. */
int sx_enroll_serve_run(const sx_enroll_serve_cfg *cfg, sx_err *err) SX_MUST_CHECK;

/* ---- the clients: sxfer enroll, sxfer renew, sxfer crl fetch ------------ */

/* What every client has: where the service is, and how long to wait. */
typedef struct sx_enroll_net {
	const char *host, *port;
	const char *server_name; /* NULL: host */
	int timeout_ms;		 /* 0: SX_ENROLL_TIMEOUT_MS */
} sx_enroll_net;

typedef struct sx_enroll_cfg {
	sx_enroll_net net;
	const char *token;   /* the token's text */
	const char *ca_fp;   /* the root's SHA-256 fingerprint, 64 hex digits (':' allowed) */
	const char *out_dir; /* the new identity folder */
	sx_key_type key_type;
	const sx_pass *pass; /* for key.pem (asked before connecting) */
	/* What to ask for instead of the token's claims (NULL/0: the token's). */
	const char *name;
	const char *role; /* server, client or both */
	const char *const *dns;
	size_t ndns;
	const char *const *ips;
	size_t nips;
} sx_enroll_cfg;

typedef struct sx_renew_cfg {
	sx_enroll_net net;
	const char *id_dir;
	const sx_pass *pass;
	bool new_key; /* a new key (of the same type); else the CSR is signed with the current */
} sx_renew_cfg;

typedef struct sx_crl_fetch_cfg {
	sx_enroll_net net;
	const char *id_dir;
	const sx_pass *pass;
} sx_crl_fetch_cfg;

/* What a client did, for its output. */
typedef struct sx_enroll_result {
	char server[256];		 /* the service's certificate CN */
	char name[256];			 /* the identity's name */
	char role[16];			 /* "client", "server", "both" */
	char sans[1024];		 /* "DNS:a, IP:1.2.3.4" */
	char serial[80], old_serial[80]; /* uppercase hex */
	char not_after[32], old_not_after[32];
	char ca_fp[SX_CERT_FP_HEX_LEN];	     /* the root */
	bool new_key;			     /* renew: the key changed */
	bool crl_written;		     /* crl.pem written (enroll, renew, crl fetch) */
	bool crl_unchanged;		     /* crl fetch: the same crlNumber as before */
	uint64_t crl_number, old_crl_number; /* crl fetch (old: 0 when there was none) */
	bool had_crl;
	int crl_revoked;   /* entries of the CRL written */
	char crl_next[32]; /* its nextUpdate */
} sx_enroll_result;

int sx_enroll_run(const sx_enroll_cfg *cfg, sx_enroll_result *res, sx_err *err) SX_MUST_CHECK;
int sx_renew_run(const sx_renew_cfg *cfg, sx_enroll_result *res, sx_err *err) SX_MUST_CHECK;
int sx_crl_fetch_run(const sx_crl_fetch_cfg *cfg, sx_enroll_result *res, sx_err *err) SX_MUST_CHECK;

/* "AB:cd..." or "abcd..." (64 hex digits, any case, ':' between pairs
 * allowed) into 32 bytes; SX_E_USAGE otherwise. */
int sx_enroll_fp_parse(const char *s, uint8_t fp[SX_CERT_FP_LEN], sx_err *err) SX_MUST_CHECK;

#endif
