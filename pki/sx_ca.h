/* pki/: building certificates, CSRs and CRLs, and the CA folder (docs/PKI.md).
 * Used by the CLI (sxfer ca, sxfer id) and by tests; the engine needs only
 * sx_pki.h. */
#ifndef SX_CA_H
#define SX_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

#include "common/sx_err.h"
#include "pki/sx_pki.h"

#define SX_CA_DAYS_DEFAULT   3650
#define SX_LEAF_DAYS_DEFAULT 397
#define SX_CRL_DAYS_DEFAULT  7
#define SX_DAYS_MAX	     36500
#define SX_CN_MAX	     64	 /* RFC 5280 ub-common-name */
#define SX_SERIAL_HEX_MAX    33	 /* 16 bytes as hex + NUL */
#define SX_BACKDATE_SECONDS  300 /* notBefore = now - 5 minutes, for clock skew */

/* ---- certificate profiles ---------------------------------------------- */

#define SX_CA_ENTRIES_MAX (1u << 22) /* certificates in one CA index */

typedef enum sx_profile {
	SX_PROFILE_CA = 0,
	SX_PROFILE_SERVER,
	SX_PROFILE_CLIENT,
	SX_PROFILE_BOTH,
} sx_profile;

/* "server", "client", "both" (a CA is never parsed from a command line). */
int sx_profile_parse(const char *s, sx_profile *out) SX_MUST_CHECK;
const char *sx_profile_name(sx_profile p);

/* The role a certificate carries, from its basicConstraints and EKU:
 * "CA", "server", "client", "both" or "none". */
const char *sx_cert_role(X509 *cert);

/* A DNS name for a SAN: letters, digits, '-', '.', '_', a leading "*." . */
int sx_dns_check(const char *s, sx_err *err) SX_MUST_CHECK;

/* The subjectAltName as "DNS:a, IP:1.2.3.4" (empty when none). */
void sx_cert_sans(X509 *cert, char *buf, size_t cap);

/* A common name is 1..64 printable characters (no control characters). */
int sx_name_check(const char *name, sx_err *err) SX_MUST_CHECK;

typedef struct sx_cert_spec {
	sx_profile profile;
	const char *name; /* subject CN */
	const char *const *dns;
	size_t ndns;
	const char *const *ips;
	size_t nips;
	time_t not_before;
	time_t not_after;
	const BIGNUM *serial; /* NULL: a fresh 128-bit random positive serial */
	bool replace;	      /* ca issue/sign: revoke (superseded) the valid certificates of
				 the name instead of refusing (docs/PKI.md "One name, one
				 certificate") */
} sx_cert_spec;

/* A fresh random serial: 16 bytes, top bit cleared, never zero. */
int sx_serial_random(BIGNUM **out, sx_err *err) SX_MUST_CHECK;

/* Builds and signs a certificate for subject_key (its public half is used).
 * issuer NULL: self-signed by issuer_key (which must be subject_key). SHA-256
 * for ECDSA and RSA, no digest for Ed25519. */
int sx_cert_build(const sx_cert_spec *spec, EVP_PKEY *subject_key, X509 *issuer,
		  EVP_PKEY *issuer_key, X509 **out, sx_err *err) SX_MUST_CHECK;

/* PEM of certs[0..n) into path (atomic, mode). */
/* Writes what a memory BIO holds to path, atomically (sx_file_write_atomic). */
int sx_bio_save(const char *path, BIO *bio, mode_t mode, sx_err *err) SX_MUST_CHECK;
int sx_certs_save(const char *path, X509 *const *certs, size_t n, mode_t mode,
		  sx_err *err) SX_MUST_CHECK;

/* ---- CSRs --------------------------------------------------------------- */

int sx_csr_build(EVP_PKEY *key, const char *name, X509_REQ **out, sx_err *err) SX_MUST_CHECK;
int sx_csr_save(const char *path, X509_REQ *req, sx_err *err) SX_MUST_CHECK;
/* The CSR subject's common name. */
int sx_csr_name(X509_REQ *req, char *buf, size_t cap, sx_err *err) SX_MUST_CHECK;
/* Loads a PEM CSR and verifies its self-signature (SX_E_AUTH if broken). */
int sx_csr_load(const char *path, X509_REQ **out, sx_err *err) SX_MUST_CHECK;

/* ---- CRLs --------------------------------------------------------------- */

typedef struct sx_revoked {
	const BIGNUM *serial;
	time_t when;
	int reason; /* CRLReason code (RFC 5280 5.3.1) */
} sx_revoked;

/* "keyCompromise" <-> 1, ...; parse is case-insensitive. */
int sx_crl_reason_parse(const char *s, int *out) SX_MUST_CHECK;
const char *sx_crl_reason_name(int reason);

/* A v2 CRL with crlNumber, AKI, thisUpdate and nextUpdate, signed by ca. */
int sx_crl_build(X509 *ca, EVP_PKEY *ca_key, const sx_revoked *rev, size_t n, uint64_t number,
		 time_t this_update, time_t next_update, X509_CRL **out, sx_err *err) SX_MUST_CHECK;
int sx_crl_save(const char *path, X509_CRL *crl, sx_err *err) SX_MUST_CHECK;

/* ---- the CA folder ------------------------------------------------------
 * DIR/ca.pem, DIR/ca.key.pem, DIR/index.txt, DIR/crlnumber, DIR/crl.pem,
 * DIR/certs/<SERIAL>.pem, DIR/lock. */

typedef struct sx_ca_entry {
	char serial[SX_SERIAL_HEX_MAX]; /* uppercase hex */
	char name[SX_CN_MAX + 1];
	sx_profile profile;
	time_t not_after;
	time_t revoked_at; /* 0: not revoked */
	int reason;
} sx_ca_entry;

typedef struct sx_ca_db {
	sx_ca_entry *e;
	size_t n, cap;
} sx_ca_db;

void sx_ca_db_free(sx_ca_db *db);
/* Text form of index.txt, both directions (pure). */
int sx_ca_db_parse(const char *text, size_t len, sx_ca_db *db, sx_err *err) SX_MUST_CHECK;
int sx_ca_db_format(const sx_ca_db *db, char **out, size_t *len, sx_err *err) SX_MUST_CHECK;

typedef struct sx_ca {
	char dir[2048];
	X509 *cert;
	EVP_PKEY *key;
	int lock_fd;
	sx_ca_db db;
	sx_ca_db superseded;   /* what the last issue or sign revoked (superseded) */
	struct sx_ca_svc *svc; /* sx_ca_svc_open only: the in-process lock */
} sx_ca;

/* Creates DIR with a self-signed root. Refuses an existing CA. */
int sx_ca_init(const char *dir, const char *name, sx_key_type type, unsigned days,
	       const sx_pass *pass, sx_err *err) SX_MUST_CHECK;

/* Loads the root and its key (checking they match; the passphrase is
 * asked before the lock is taken, so a prompt never holds up other
 * commands or a running service), then takes the CA's lock (flock on
 * DIR/lock, held until sx_ca_close) and loads the index. */
int sx_ca_open(const char *dir, const sx_pass *pass, sx_ca *ca, sx_err *err) SX_MUST_CHECK;
void sx_ca_close(sx_ca *ca);

/* Marks a serial (hex) revoked in the index. */
int sx_ca_revoke(sx_ca *ca, const char *serial_hex, int reason, sx_err *err) SX_MUST_CHECK;

/* Builds the next CRL (crlNumber incremented durably first), stores it as
 * DIR/crl.pem too. */
int sx_ca_crl(sx_ca *ca, unsigned days, X509_CRL **out, sx_err *err) SX_MUST_CHECK;

/* Reads the index without the key or the lock (the index is always replaced
 * atomically, so a reader sees a whole version). */
int sx_ca_list(const char *dir, sx_ca_db *db, sx_err *err) SX_MUST_CHECK;

/* `sxfer ca issue`: a new key (saved with pass, the identity key's own
 * passphrase source, never the CA key's) and certificate straight into an
 * identity folder (key.pem, cert.pem, ca.pem, crl.pem when the CA has one).
 * Refuses to overwrite an existing key.pem or cert.pem. The one-name rule
 * (docs/PKI.md "One name, one certificate"): a name with a valid
 * certificate is refused (SX_E_AUTH) unless spec->replace, which revokes
 * them (superseded; listed in ca->superseded afterwards). */
int sx_ca_issue_identity(sx_ca *ca, const sx_cert_spec *spec, sx_key_type type, unsigned days,
			 const char *outdir, const sx_pass *pass, X509 **out,
			 sx_err *err) SX_MUST_CHECK;

/* `sxfer ca sign`: verifies the CSR's self-signature and issues from the
 * operator's spec only (spec->name is required): the CSR gives the public
 * key; its name and extensions are not used. The one-name rule as for
 * sx_ca_issue_identity. The leaf is written to out_path, the root to
 * ca.pem beside it (refused before anything is issued when a ca.pem there
 * holds another root) and the CA's crl.pem beside it when the folder has
 * none. */
int sx_ca_sign_csr(sx_ca *ca, const char *csr_path, const sx_cert_spec *spec, unsigned days,
		   const char *out_path, X509 **out, sx_err *err) SX_MUST_CHECK;

/* ---- enrollment: tokens, requests and the CA as a service ---------------
 * (pki/token.c, pki/csr.c, pki/ca_svc.c; docs/PKI.md "Tokens"). */

#define SX_TOKEN_SAN_MAX     16
#define SX_TOKEN_TEXT_MAX    2048
#define SX_TOKEN_TTL_DEFAULT (15 * 60)
#define SX_TOKEN_TTL_MAX     (30 * 86400)

/* What a token allows, and what a CSR asks for (the same shape). */
typedef struct sx_claims {
	char name[SX_CN_MAX + 1];
	sx_profile profile; /* client, server or both */
	bool has_profile;   /* a CSR may ask for no role (then: the token's) */
	char dns[SX_TOKEN_SAN_MAX][256];
	size_t ndns;
	char ips[SX_TOKEN_SAN_MAX][64]; /* canonical text ("::1", "10.0.0.1") */
	size_t nips;
	time_t expires; /* tokens only */
	bool replace;	/* tokens only: may replace a valid certificate of the name */
	uint8_t ca_fp[SX_CERT_FP_LEN]; /* tokens only: SHA-256 of the root that made it */
} sx_claims;

/* `ca token`: a new one-time token for c (c->expires set by the caller, in
 * the future and at most SX_TOKEN_TTL_MAX away; c->ca_fp is filled here and
 * IP literals are made canonical), recorded in DIR/tokens.txt under the
 * CA's lock. No CA key is needed: the folder's permissions protect the
 * records as they protect the index. text receives the token (at most
 * SX_TOKEN_TEXT_MAX bytes with its NUL); it is never stored. */
int sx_ca_token_new(const char *dir, sx_claims *c, char *text, size_t cap,
		    sx_err *err) SX_MUST_CHECK;
/* The claims a token's text carries (no lookup, nothing verified): the
 * enrolling device reads its name, role and SANs from it. SX_E_USAGE for
 * text that is not a token (exactly as `ca token` printed it: no spaces or
 * line ends). */
int sx_token_parse(const char *text, sx_claims *c, sx_err *err) SX_MUST_CHECK;

/* A CSR asking for a name, a role and SANs (an extensionRequest with
 * extendedKeyUsage and subjectAltName), signed by key (SHA-256; none for
 * Ed25519). No role asked (no extendedKeyUsage) when !ask->has_profile or
 * ask->profile < 0. */
int sx_csr_build_ask(EVP_PKEY *key, const sx_claims *ask, X509_REQ **out,
		     sx_err *err) SX_MUST_CHECK;
/* What a CSR asks for (its self-signature is verified first): the CN, the
 * role from its extendedKeyUsage (serverAuth: server, clientAuth: client,
 * both: both; none: has_profile false) and its DNS and IP SANs. Any other
 * SAN type or EKU purpose is refused (SX_E_AUTH); other extensions are
 * ignored. */
int sx_csr_ask(X509_REQ *req, sx_claims *ask, sx_err *err) SX_MUST_CHECK;
/* A DER CSR of at most 64 KiB, consumed exactly (SX_E_INTEGRITY
 * otherwise); its signature is not checked here (sx_csr_ask does). */
int sx_csr_from_der(const uint8_t *der, size_t len, X509_REQ **out, sx_err *err) SX_MUST_CHECK;

/* The CA as a service (`ca serve`): root and key loaded once (the
 * passphrase asked once, without the lock); every operation takes an
 * in-process mutex (callers may be threads) and the CA's lock, and re-reads
 * the index and tokens under them, so `ca revoke`, `ca issue` or `ca token`
 * run beside a running service. */
int sx_ca_svc_open(const char *dir, const sx_pass *pass, sx_ca **out, sx_err *err) SX_MUST_CHECK;
void sx_ca_svc_close(sx_ca *ca); /* NULL is fine */
/* Enrollment: the token (its text) must be recorded, unused and not
 * expired, and what the CSR asks for must equal its claims exactly (no
 * role asked: the token's); the key must be strong enough; the one-name
 * rule applies (claims.replace lets it revoke the old one, superseded).
 * The token is marked used (with the serial) durably before the
 * certificate is recorded, so a crash can spend a token without a
 * certificate but never let it be used twice. SX_E_AUTH: "token already
 * used (at T, serial S)", "token expired (at T)", "unknown token", "the
 * request asks for name 'x'; the token is for 'y'" (role, subjectAltName
 * likewise), "name 'x' already has a valid certificate (...)". */
int sx_ca_svc_enroll(sx_ca *ca, const char *token, X509_REQ *csr, X509 **out,
		     sx_err *err) SX_MUST_CHECK;
/* Renewal: current must be signed by this root, in its index, not revoked
 * and not expired; the new certificate has current's name, role (from the
 * index) and SANs, the CSR's key (its self-signature verified), and
 * current's lifetime (notAfter - notBefore) from now, never beyond the
 * root's. The caller has authenticated the holder of current. Exempt from
 * the one-name rule; current is not revoked (it expires on its own). */
int sx_ca_svc_renew(sx_ca *ca, X509 *current, X509_REQ *csr, X509 **out, sx_err *err) SX_MUST_CHECK;
/* The current CRL (DIR/crl.pem as `ca crl` last wrote it); *out NULL (and
 * 0) when the CA has made none yet. */
int sx_ca_svc_crl(sx_ca *ca, X509_CRL **out, sx_err *err) SX_MUST_CHECK;
/* The root (borrowed). */
X509 *sx_ca_svc_root(sx_ca *ca);

/* Normalises a hex serial ("0x0a:bc" -> "ABC"); -1 if not hex or too long. */
int sx_serial_normalize(const char *in, char out[SX_SERIAL_HEX_MAX]) SX_MUST_CHECK;

#endif
