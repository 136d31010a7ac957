/* engine/record: the sealed record layer (pure: buffers in, buffers out).
 * docs/PROTOCOL.md is the normative description of every byte here. */
#ifndef SX_RECORD_H
#define SX_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/sx_err.h"

typedef enum sx_suite {
	SX_SUITE_AES256GCM = 1, /* default */
	SX_SUITE_AES256CTR_HMAC = 2,
	SX_SUITE_CHACHA20POLY1305 = 3,
} sx_suite;

int sx_suite_parse(const char *s, sx_suite *out) SX_MUST_CHECK;
const char *sx_suite_name(sx_suite s);
size_t sx_suite_tag_len(sx_suite s);

/* Record header, authenticated as AAD:
 *   type (1) | flags (1) | reserved, zero (2) | body length, big-endian (4)
 * body = ciphertext || tag. */
#define SX_REC_HDR_LEN 8
#define SX_REC_TAG_MAX 32
#define SX_SECRET_LEN  32
#define SX_KEY_LEN     32
#define SX_IV_LEN      12

/* The body length field is 32 bits, so a body (ciphertext || tag) is at most
 * 4 GiB - 1 bytes. This is below every suite's per-invocation limit: the
 * AES-256-CTR counter block has a 32-bit block counter (2^32 blocks = 64 GiB),
 * GCM allows 2^36 - 32 bytes (NIST SP 800-38D), ChaCha20-Poly1305 2^38 - 64
 * (RFC 8439 §2.8). Receivers use a much smaller max_body of their own. */
#define SX_REC_BODY_MAX UINT32_MAX

/* Default ratchet interval: 64 GiB of plaintext per epoch (docs/PROTOCOL.md
 * "Key schedule"). rotate_bytes == 0 in sx_rdir_init means this value. */
#define SX_ROTATE_DEFAULT (64ull << 30)

/* HKDF-Expand-Label labels (without the "tls13 " prefix the function adds). */
#define SX_LABEL_C2S  "sxfer c2s"
#define SX_LABEL_S2C  "sxfer s2c"
#define SX_LABEL_KEY  "sxfer key"
#define SX_LABEL_IV   "sxfer iv"
#define SX_LABEL_HMAC "sxfer hmac"
#define SX_LABEL_KU   "sxfer ku"

enum {
	SX_REC_CTRL = 1, /* control message (engine/wire) */
	SX_REC_DATA = 2, /* file or stream data */
	SX_REC_EOS = 3,	 /* authenticated end of stream, empty body */
};

#define SX_REC_FLAG_COMPRESSED 0x01
#define SX_REC_FLAGS_KNOWN     SX_REC_FLAG_COMPRESSED /* other bits are refused */

/* One direction of a connection: the current epoch's keys and the implicit
 * sequence number. */
typedef struct sx_rdir {
	sx_suite suite;
	uint8_t secret[SX_SECRET_LEN]; /* current epoch traffic secret */
	uint8_t key[SX_KEY_LEN];
	uint8_t mac_key[SX_KEY_LEN]; /* AES-256-CTR + HMAC-SHA-256 only */
	uint8_t iv[SX_IV_LEN];
	uint64_t seq;	       /* next record's sequence number */
	uint64_t epoch;	       /* number of ratchet steps taken */
	uint64_t epoch_bytes;  /* plaintext bytes sealed/opened in this epoch */
	uint64_t rotate_bytes; /* ratchet after this many plaintext bytes */
	EVP_CIPHER_CTX *cctx;
	EVP_MAC_CTX *mctx;
	int cmode;   /* internal: what cctx is keyed for (none, seal, open) */
	bool failed; /* a failed open (or a broken seal) ends the direction */
} sx_rdir;

/* HKDF-Expand-Label of RFC 8446 §7.1 over SHA-256: HKDF-Expand (RFC 5869
 * §2.3) with info = HkdfLabel { uint16 length = out_len;
 * opaque label<7..255> = "tls13 " + label; opaque context<0..255> = ctx }.
 * label is a NUL-terminated string without the prefix. */
int sx_hkdf_expand_label(const uint8_t *secret, size_t secret_len, const char *label,
			 const uint8_t *ctx, size_t ctx_len, uint8_t *out, size_t out_len,
			 sx_err *err) SX_MUST_CHECK;

/* Splits the exporter output into the two direction secrets. */
int sx_keys_split(const uint8_t master[SX_SECRET_LEN], uint8_t c2s[SX_SECRET_LEN],
		  uint8_t s2c[SX_SECRET_LEN], sx_err *err) SX_MUST_CHECK;

/* d is overwritten (it must not hold a live direction). rotate_bytes == 0
 * means SX_ROTATE_DEFAULT. A direction is used either to seal or to open. */
int sx_rdir_init(sx_rdir *d, sx_suite suite, const uint8_t secret[SX_SECRET_LEN],
		 uint64_t rotate_bytes, sx_err *err) SX_MUST_CHECK;
void sx_rdir_free(sx_rdir *d); /* wipes; safe on a zeroed or freed sx_rdir */

/* Validates a received header before anything is allocated or read:
 * reserved bits zero, known type, max_body >= body length >= tag length. */
int sx_record_check_header(const sx_rdir *d, const uint8_t hdr[SX_REC_HDR_LEN], size_t max_body,
			   size_t *body_len, sx_err *err) SX_MUST_CHECK;

/* Seals in place. rec holds SX_REC_HDR_LEN bytes of room, then plen bytes of
 * plaintext, then room for the tag. Returns the record length in *rec_len. */
int sx_record_seal(sx_rdir *d, uint8_t type, uint8_t flags, uint8_t *rec, size_t plen,
		   size_t *rec_len, sx_err *err) SX_MUST_CHECK;

/* Opens in place: rec is header + body of rec_len bytes. The tag is checked
 * before any plaintext is released; on failure the buffer is wiped and the
 * error is SX_E_INTEGRITY. On success *pt points into rec. */
int sx_record_open(sx_rdir *d, uint8_t *rec, size_t rec_len, uint8_t *type, uint8_t *flags,
		   uint8_t **pt, size_t *pt_len, sx_err *err) SX_MUST_CHECK;

/* Sealing on other threads (engine/pool): the event loop reserves, in
 * order, what sealing a record of plen bytes would take from the direction
 * (its sequence number and the epoch's secret, advancing and ratcheting the
 * direction exactly as sx_record_seal does), and a lane on a worker seals
 * with that reservation. The record is byte for byte the one sx_record_seal
 * would have produced. The job holds a secret: wipe it after use. */
typedef struct sx_rlane_job {
	sx_suite suite;
	uint64_t seq;
	uint64_t epoch;
	uint8_t secret[SX_SECRET_LEN];
} sx_rlane_job;

typedef struct sx_rlane {
	sx_rdir d;
	uint64_t epoch;
	bool ready;
} sx_rlane;

int sx_record_reserve(sx_rdir *d, size_t plen, sx_rlane_job *job, sx_err *err) SX_MUST_CHECK;
int sx_rlane_seal(sx_rlane *l, const sx_rlane_job *job, uint8_t type, uint8_t flags, uint8_t *rec,
		  size_t plen, size_t *rec_len, sx_err *err) SX_MUST_CHECK;
/* Opening on other threads, the mirror of the above: the receiving loop
 * checks a record's header (sx_record_check_header), reserves in order with
 * sx_record_reserve(d, body length - tag length), and a lane opens the
 * record with that reservation exactly as sx_record_open on d would have
 * (same checks, same error text, plaintext in place). A failed open leaves
 * d usable: the caller must end the direction (d->failed = true), as
 * sx_record_open would have. */
int sx_rlane_open(sx_rlane *l, const sx_rlane_job *job, uint8_t *rec, size_t rec_len, uint8_t *type,
		  uint8_t *flags, uint8_t **pt, size_t *pt_len, sx_err *err) SX_MUST_CHECK;
void sx_rlane_free(sx_rlane *l);

#endif
