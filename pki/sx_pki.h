/* pki/: keys, CSRs, the certificate authority, CRLs and the one
 * certificate-validation policy that every part of sxfer calls.
 *
 * Contract shared with engine/ (channel, signatures, enrollment): engine code
 * uses only what is declared here. */
#ifndef SX_PKI_H
#define SX_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/sx_err.h"

/* ---- keys --------------------------------------------------------------- */

typedef enum sx_key_type {
	SX_KEY_P256 = 0, /* default */
	SX_KEY_ED25519,
	SX_KEY_RSA3072,
} sx_key_type;

int sx_key_type_parse(const char *s, sx_key_type *out) SX_MUST_CHECK;
const char *sx_key_type_name(sx_key_type t);

/* Where a passphrase comes from. The pki layer asks for it only when it
 * needs one (writing an encrypted key, or loading a key that is encrypted).
 * get() writes at most cap-1 bytes and a NUL into buf and returns the length,
 * or -1 (with err filled). confirm is true when a new key is being written
 * (a prompt asks twice). */
typedef struct sx_pass {
	bool none; /* --no-passphrase: write plain keys */
	int (*get)(void *ctx, char *buf, size_t cap, bool confirm, sx_err *err);
	void *ctx;
} sx_pass;

int sx_key_generate(sx_key_type type, EVP_PKEY **out, sx_err *err) SX_MUST_CHECK;

/* PKCS#8, encrypted with AES-256-CBC under scrypt unless pass->none; the file
 * is created 0600 (atomic write). */
int sx_key_save(const char *path, EVP_PKEY *key, const sx_pass *pass, sx_err *err) SX_MUST_CHECK;

/* The scrypt cost of an encrypted key (docs/PKI.md "Private keys"): device
 * keys N = 2^14, r = 8, p = 1; the CA root p = 8 (eight times the work, the
 * same 16 MiB, inside OpenSSL's default 32 MiB limit). */
typedef enum sx_key_cost {
	SX_KEY_COST_DEVICE = 0,
	SX_KEY_COST_ROOT,
} sx_key_cost;
int sx_key_save_cost(const char *path, EVP_PKEY *key, const sx_pass *pass, sx_key_cost cost,
		     sx_err *err) SX_MUST_CHECK;

/* Refuses a file that is group- or world-accessible (naming the file), says
 * "wrong passphrase" for a wrong passphrase and "not a PEM private key" for a
 * corrupt file. */
int sx_key_load(const char *path, const sx_pass *pass, EVP_PKEY **out, sx_err *err) SX_MUST_CHECK;

/* "EC prime256v1 (256 bits)", "RSA 3072 bits", "Ed25519", ... into buf. */
void sx_key_describe(EVP_PKEY *key, char *buf, size_t cap);

/* Is the key strong enough for the policy (RSA >= 2048, EC P-256/384/521,
 * Ed25519, Ed448)? On failure: SX_E_AUTH "weak key: RSA 1024 bits" or
 * "unsupported key type ...". */
int sx_key_check_strength(EVP_PKEY *key, sx_err *err) SX_MUST_CHECK;

/* ---- certificates and files -------------------------------------------- */

/* Loads every certificate of a PEM file (leaf first). */
int sx_certs_load(const char *path, STACK_OF(X509) * *out, sx_err *err) SX_MUST_CHECK;
int sx_crl_load(const char *path, X509_CRL **out, sx_err *err) SX_MUST_CHECK;
/* Is the CRL current at now (0: the current time): thisUpdate not in the
 * future, a nextUpdate not past? SX_E_AUTH "CRL issued by ... is stale
 * (nextUpdate ...)" otherwise. Its signature is checked where it is used
 * (sx_policy_check). */
int sx_crl_check_time(X509_CRL *crl, time_t now, sx_err *err) SX_MUST_CHECK;

/* The fingerprint: SHA-256 over the DER certificate, as bytes (sx_hex
 * gives the 64 lower-case hex digits that logs and the CLI show). */
#define SX_CERT_FP_LEN	   32
#define SX_CERT_FP_HEX_LEN (2 * SX_CERT_FP_LEN + 1) /* hex digits and a NUL */
int sx_cert_fp(X509 *cert, uint8_t out[SX_CERT_FP_LEN], sx_err *err) SX_MUST_CHECK;

/* The common name of the subject (the "identity name"), into buf. */
int sx_cert_name(X509 *cert, char *buf, size_t cap, sx_err *err) SX_MUST_CHECK;

/* A readable subject for messages: "CN=name" (or the one-line DN). */
void sx_cert_subject(X509 *cert, char *buf, size_t cap);

/* ASN1 time / time_t as "2026-01-01T00:00:00Z" (32 bytes are enough). */
void sx_asn1_time_format(const ASN1_TIME *t, char *buf, size_t cap);
void sx_time_format(time_t t, char *buf, size_t cap);

/* Parses "2026-01-01T00:00:00Z", "2026-01-01" or "@<unix seconds>". */
int sx_time_parse(const char *s, time_t *out) SX_MUST_CHECK;

/* Serial as uppercase hex without leading zeros (at least "0"). */
void sx_cert_serial_hex(X509 *cert, char *buf, size_t cap);

/* An identity folder: key.pem, cert.pem (leaf then intermediates), ca.pem
 * (trust anchor), optional crl.pem. */
typedef struct sx_identity {
	EVP_PKEY *key;
	STACK_OF(X509) * chain; /* [0] is the leaf */
	STACK_OF(X509) * anchors;
	X509_CRL *crl;	/* NULL when the folder has none */
	char name[256]; /* subject CN of the leaf */
} sx_identity;

int sx_identity_load(const char *dir, const sx_pass *pass, sx_identity *id,
		     sx_err *err) SX_MUST_CHECK;
void sx_identity_free(sx_identity *id);

/* ---- lifetimes and CRL numbers (docs/PKI.md "Renewal") ---------------- */

typedef struct sx_lifetime {
	time_t not_before, not_after;
	long long total; /* seconds from notBefore to notAfter */
	long long left;	 /* seconds from now to notAfter (negative: expired) */
} sx_lifetime;

/* now 0: the current time. */
void sx_cert_lifetime(X509 *cert, time_t now, sx_lifetime *out);
/* Less than a third of the lifetime is left: renewal is due (renew at two
 * thirds of the lifetime). */
bool sx_lifetime_renew_due(const sx_lifetime *l);
/* "120 days left (30% of 397 days)", "expired 3 days ago", ... into buf. */
void sx_lifetime_describe(const sx_lifetime *l, char *buf, size_t cap);

/* The CRL's crlNumber (RFC 5280 5.2.3): SX_E_AUTH when it has none or it
 * does not fit 64 bits. */
int sx_crl_number(X509_CRL *crl, uint64_t *out, sx_err *err) SX_MUST_CHECK;
/* Is the CRL issued and signed by one of anchors? SX_E_AUTH naming the
 * issuer otherwise. Time is not checked here (sx_crl_check_time). */
int sx_crl_verify_anchors(X509_CRL *crl, STACK_OF(X509) * anchors, sx_err *err) SX_MUST_CHECK;

/* ---- the validation policy ---------------------------------------------- */

typedef enum sx_role {
	SX_ROLE_ANY = 0,
	SX_ROLE_SERVER, /* the peer must carry serverAuth */
	SX_ROLE_CLIENT, /* the peer must carry clientAuth */
	SX_ROLE_SIGNER, /* an identity of either role: a signature or receipt made by a
			   sender or receiver, which can be a client or a server (sxfer get) */
} sx_role;

typedef struct sx_policy {
	STACK_OF(X509) * anchors; /* trust anchors (borrowed) */
	X509_CRL *crl;		  /* optional (borrowed); past nextUpdate is an error */
	time_t now;		  /* 0: the current time */
} sx_policy;

/* The one decision: is this peer certificate acceptable?
 *   leaf:   the peer's certificate
 *   chain:  intermediates the peer sent (may be NULL)
 *   role:   which extendedKeyUsage is required
 *   name:   when non-NULL, a DNS name or IP literal that must match a SAN
 * Checks: chain to an anchor; time validity; EKU for the role; SAN; CRL
 * (revoked, stale, bad signature); key strength (RSA >= 2048, EC >= P-256,
 * Ed25519); a leaf claiming CA:TRUE. On failure: SX_E_AUTH with the precise
 * reason (e.g. "certificate has expired (notAfter 2026-01-01T00:00:00Z)"). */
int sx_policy_check(const sx_policy *pol, X509 *leaf, STACK_OF(X509) * chain, sx_role role,
		    const char *name, sx_err *err) SX_MUST_CHECK;

/* *out: a new stack holding a reference to each certificate of chain (one
 * function for every copy of a peer's chain). */
int sx_chain_copy(STACK_OF(X509) * *out, STACK_OF(X509) * chain, sx_err *err) SX_MUST_CHECK;

#endif
