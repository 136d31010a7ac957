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
#define SX_SECRET_LEN 32

enum {
	SX_REC_CTRL = 1, /* control message (engine/wire) */
	SX_REC_DATA = 2, /* file or stream data */
	SX_REC_EOS = 3,	 /* authenticated end of stream, empty body */
};

#define SX_REC_FLAG_COMPRESSED 0x01

/* One direction of a connection: the current epoch's keys and the implicit
 * sequence number. */
typedef struct sx_rdir {
	sx_suite suite;
	uint8_t secret[SX_SECRET_LEN]; /* current epoch traffic secret */
	uint8_t key[32];
	uint8_t mac_key[32]; /* AES-256-CTR + HMAC-SHA-256 only */
	uint8_t iv[12];
	uint64_t seq;		/* next record's sequence number */
	uint64_t epoch;		/* number of ratchet steps taken */
	uint64_t epoch_bytes;	/* plaintext bytes sealed/opened in this epoch */
	uint64_t rotate_bytes;	/* ratchet after this many plaintext bytes */
	EVP_CIPHER_CTX *cctx;
	EVP_MAC_CTX *mctx;
} sx_rdir;

/* Splits the exporter output into the two direction secrets. */
int sx_keys_split(const uint8_t master[SX_SECRET_LEN], uint8_t c2s[SX_SECRET_LEN],
		  uint8_t s2c[SX_SECRET_LEN], sx_err *err) SX_MUST_CHECK;

int sx_rdir_init(sx_rdir *d, sx_suite suite, const uint8_t secret[SX_SECRET_LEN],
		 uint64_t rotate_bytes, sx_err *err) SX_MUST_CHECK;
void sx_rdir_free(sx_rdir *d); /* wipes */

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

#endif
