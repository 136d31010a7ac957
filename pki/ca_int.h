/* pki/: what the CA's files share among themselves (ca.c, ca_db.c,
 * token.c, ca_svc.c, csr.c); nothing outside pki/ includes this. */
#ifndef SX_CA_INT_H
#define SX_CA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "pki/sx_ca.h"

#define SX_INDEX_MAX	  (64 * 1024 * 1024)
#define SX_TOKEN_HASH_HEX 65 /* SHA-256 of a token's text: 64 hex digits and a NUL */

/* DIR/file into buf; SX_E_IO when it does not fit. */
int sx_ca_path(char *buf, size_t cap, const char *dir, const char *file, sx_err *err) SX_MUST_CHECK;

/* flock(LOCK_EX) on DIR/lock; *fd_out is closed to release it. */
int sx_ca_lock_take(const char *dir, int *fd_out, sx_err *err) SX_MUST_CHECK;

/* DIR/index.txt, read and replaced atomically. */
int sx_ca_db_load(const char *dir, sx_ca_db *db, sx_err *err) SX_MUST_CHECK;
int sx_ca_db_store(const char *dir, const sx_ca_db *db, sx_err *err) SX_MUST_CHECK;
int sx_ca_db_push(sx_ca_db *db, const sx_ca_entry *e, sx_err *err) SX_MUST_CHECK;
sx_ca_entry *sx_ca_db_find(const sx_ca_db *db, const char *serial);

int sx_asn1_to_time_t(const ASN1_TIME *t, time_t *out) SX_MUST_CHECK;

/* The signature digest for a key: SHA-256, none for Ed25519 and Ed448. */
const EVP_MD *sx_sig_md(EVP_PKEY *key);

/* A subjectAltName from typed values (DNS names checked with sx_dns_check,
 * IP literals parsed), never from a configuration string. *out is NULL
 * when there is none. */
int sx_sans_build(const char *const *dns, size_t ndns, const char *const *ips, size_t nips,
		  GENERAL_NAMES **out, sx_err *err) SX_MUST_CHECK;

/* The root and its key from DIR (no lock: both are written once, by
 * ca init); checks they match. */
int sx_ca_load_root(sx_ca *ca, const char *dir, const sx_pass *pass, sx_err *err) SX_MUST_CHECK;

/* The one-name rule (docs/PKI.md "One name, one certificate"): the entries
 * of db named name that are valid at now (not revoked, not expired) are
 * copied to *found. When there is one and !replace: SX_E_AUTH "name 'x'
 * already has a valid certificate (serial S, until T); <hint>". */
int sx_ca_name_rule(const sx_ca_db *db, const char *name, bool replace, time_t now,
		    const char *hint, sx_ca_db *found, sx_err *err) SX_MUST_CHECK;

/* A leaf for subject_key from spec, with a serial unused in ca->db; no
 * file is written. spec->not_before/not_after 0: now (backdated) for days
 * (0: the default), never beyond the root. serial receives its hex. */
int sx_ca_build_leaf(sx_ca *ca, const sx_cert_spec *spec, EVP_PKEY *subject_key, unsigned days,
		     X509 **out, char serial[SX_SERIAL_HEX_MAX], sx_err *err) SX_MUST_CHECK;

/* Records a built leaf: DIR/certs/<SERIAL>.pem, then one atomic index
 * update that adds it and marks the entries of supersede revoked
 * (superseded). ca->db is unchanged on failure. */
int sx_ca_record_leaf(sx_ca *ca, X509 *cert, const char *serial, const char *name,
		      sx_profile profile, const sx_ca_db *supersede, sx_err *err) SX_MUST_CHECK;

/* The one-name rule (hint "--replace revokes it"), then a new leaf
 * recorded in the index; what it revoked is in ca->superseded. */
int sx_ca_issue(sx_ca *ca, const sx_cert_spec *spec, EVP_PKEY *subject_key, unsigned days,
		X509 **out, sx_err *err) SX_MUST_CHECK;

/* ---- tokens (token.c) ---------------------------------------------------- */

/* One line of DIR/tokens.txt (docs/PKI.md "Tokens"). */
typedef struct sx_token_rec {
	bool used;
	char hash[SX_TOKEN_HASH_HEX]; /* SHA-256 of the token's text, lower-case hex */
	time_t expires, used_at;
	char serial[SX_SERIAL_HEX_MAX]; /* issued with it; "" when none */
	sx_profile profile;
	bool replace;
	char name[SX_CN_MAX + 1];
	char *sans; /* "DNS:a,IP:10.0.0.1" or "" (malloc'd) */
} sx_token_rec;

typedef struct sx_token_db {
	sx_token_rec *r;
	size_t n, cap;
} sx_token_db;

void sx_token_db_free(sx_token_db *db);
/* DIR/tokens.txt (absent: no tokens). */
int sx_token_db_load(const char *dir, sx_token_db *db, sx_err *err) SX_MUST_CHECK;
/* Replaces DIR/tokens.txt atomically, leaving out records that expired
 * more than a day before now. */
int sx_token_db_store(const char *dir, const sx_token_db *db, time_t now,
		      sx_err *err) SX_MUST_CHECK;
sx_token_rec *sx_token_db_find(const sx_token_db *db, const char *hash);

/* The SHA-256 of a token's text as hex (what tokens.txt records). */
int sx_token_hash(const char *text, char hash[SX_TOKEN_HASH_HEX], sx_err *err) SX_MUST_CHECK;

#endif
