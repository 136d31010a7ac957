/* engine/sign, inside: what the files of this folder share and nothing
 * outside it includes. The public interface is sx_manifest.h. */
#ifndef SX_SIGN_INT_H
#define SX_SIGN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/sx_err.h"
#include "engine/sign/sx_manifest.h"
#include "engine/wire/sx_wire.h"
#include "pki/sx_pki.h"

/* ---- merkle.c: the two hashes of RFC 9162 section 2.1.1 ----------------- */

#define PFX_LEAF 0x00 /* RFC 9162 section 2.1.1 */
#define PFX_NODE 0x01

/* SHA-256(prefix || a || b) with ctx; -1 on an OpenSSL failure. */
int sx_hash_parts(EVP_MD_CTX *ctx, const EVP_MD *md, uint8_t prefix, const void *a, size_t alen,
		  const void *b, size_t blen, uint8_t out[SX_HASH_LEN]) SX_MUST_CHECK;
/* MTH({}) = SHA-256() */
int sx_hash_empty(uint8_t out[SX_HASH_LEN]) SX_MUST_CHECK;

/* ---- statement.c -------------------------------------------------------- */

/* The largest chunk size a signature or a receipt names. */
#define CHUNK_SIG_MAX (1u << 30)

/* A relative path by the rules of sx_path_check, its length into *len;
 * SX_E_INTEGRITY otherwise. */
int sx_path_ok(const char *path, size_t *len, sx_err *err) SX_MUST_CHECK;

/* ---- sig.c -------------------------------------------------------------- */

#define SX_SIGALG_COUNT (SX_SIGALG_RSA_PSS_SHA256 + 1)

/* The signature over a statement, with the algorithm the signer's key
 * dictates; what names it in the messages ("batch signature"). */
int sx_check_sig(X509 *signer, sx_sigalg alg, const uint8_t *msg, size_t len, const uint8_t *sig,
		 size_t siglen, const char *what, sx_err *err) SX_MUST_CHECK;

/* ---- text.c: the armored text of .sxsig files and receipts -------------- */

/* A growable text buffer (sx_grow) with a named cap (max: SX_SXSIG_TEXT_MAX
 * or SX_RECEIPT_TEXT_MAX); fail once anything did not fit, and the text is
 * then dropped as a whole. */
typedef struct sx_tbuf {
	char *p;
	size_t len, cap, max;
	bool fail;
} sx_tbuf;

void sx_tb_add(sx_tbuf *t, const char *s, size_t n);
void sx_tb_printf(sx_tbuf *t, const char *fmt, ...) SX_PRINTF(2, 3);
void sx_tb_hex(sx_tbuf *t, const uint8_t *b, size_t n);
void sx_tb_b64(sx_tbuf *t, const uint8_t *b, size_t n);
/* A path, percent-encoded in its one canonical spelling. */
void sx_tb_pct(sx_tbuf *t, const char *s);
void sx_tb_time(sx_tbuf *t, int64_t v);

/* Why sx_next_line refused a line. */
typedef enum sx_line_err {
	LINE_TRUNCATED = -1, /* no LF before the end of the text */
	LINE_TOO_LONG = -2,
	LINE_CR = -3,
	LINE_NUL = -4,
} sx_line_err;

const char *sx_line_err_text(int e);
/* The next line, without its LF, as a cursor of its own; 0 or a
 * sx_line_err. */
int sx_next_line(sx_cur *c, sx_cur *l) SX_MUST_CHECK;

/* The whole of a cursor is exactly s. */
bool sx_text_is(const sx_cur *c, const char *s);
/* The next byte without consuming it; -1 at the end. */
int sx_text_peek(const sx_cur *c);
/* Consumes ch when it is the next byte. */
bool sx_text_skip(sx_cur *c, uint8_t ch);
/* The rest of a cursor, consumed; *n bytes at *p. */
void sx_text_rest(sx_cur *c, const uint8_t **p, size_t *n);
/* Canonical unsigned decimal within max, consumed. */
int sx_text_dec(sx_cur *c, uint64_t max, uint64_t *out) SX_MUST_CHECK;
/* 2*outlen lower-case hex digits, consumed. */
int sx_text_hex(sx_cur *c, uint8_t *out, size_t outlen) SX_MUST_CHECK;
/* The rest of v, percent-decoded into out and checked with sx_path_check;
 * key names the field in the messages. */
int sx_pct_decode(sx_cur *v, char *out, size_t cap, sx_err *err, const char *key) SX_MUST_CHECK;

/* A reader of "key: value" lines, keys in a fixed order. */
typedef struct sx_kv_reader {
	sx_cur cur;
	const char *const *keys; /* every key of the format, in order */
	size_t nkeys;
	size_t next; /* index of the key expected next */
	const char *end_marker;
	sx_err *err;
} sx_kv_reader;

/* The index of key in r->keys, -1 when it is none of them. */
int sx_kv_find(const sx_kv_reader *r, const char *key);
/* Each reads the line of key (which must be the one expected next) and
 * fails with SX_E_INTEGRITY naming the field. */
int sx_kv_take(sx_kv_reader *r, const char *key, sx_cur *val) SX_MUST_CHECK;
int sx_kv_dec(sx_kv_reader *r, const char *key, uint64_t max, uint64_t *out) SX_MUST_CHECK;
int sx_kv_hex(sx_kv_reader *r, const char *key, uint8_t *out, size_t outlen) SX_MUST_CHECK;
int sx_kv_time(sx_kv_reader *r, const char *key, int64_t *out) SX_MUST_CHECK;
int sx_kv_fixed(sx_kv_reader *r, const char *key, const char *want) SX_MUST_CHECK;
int sx_kv_path(sx_kv_reader *r, const char *key, char *out, size_t cap) SX_MUST_CHECK;
int sx_kv_alg(sx_kv_reader *r, const char *key, sx_sigalg *out) SX_MUST_CHECK;
int sx_kv_b64(sx_kv_reader *r, const char *key, uint8_t *out, size_t cap,
	      size_t *len) SX_MUST_CHECK;
/* The first line is marker; what names the format ("a .sxsig"). */
int sx_kv_begin(sx_cur *c, const char *marker, const char *what, sx_err *err) SX_MUST_CHECK;
/* The line after the last field is r->end_marker. */
int sx_kv_end(sx_kv_reader *r, const char *what) SX_MUST_CHECK;

/* ---- chain.c: the signer's certificate chain after the armor ------------ */

/* The chain in PEM, as PEM_write_bio_X509 writes it. */
void sx_tb_chain(sx_tbuf *t, STACK_OF(X509) * chain);
/* 1 to SX_CHAIN_MAX certificates in strict PEM, up to the end of the text;
 * who ("signer", "receiver") names the chain in the messages. */
int sx_chain_read(sx_cur *c, STACK_OF(X509) * *out, const char *who, sx_err *err) SX_MUST_CHECK;
/* The one validation policy on chain[0] with the rest as intermediates. */
int sx_chain_policy(const sx_policy *pol, STACK_OF(X509) * chain, sx_role role, const char *who,
		    sx_err *err) SX_MUST_CHECK;

#endif
