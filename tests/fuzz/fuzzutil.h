/* tests/fuzz: what the libFuzzer targets and the seed generator share: the
 * fixed record key, a property check that aborts (so libFuzzer keeps the
 * input), a memory file for the loaders that take a path, and an identity
 * built in memory for the TLS targets. */
#ifndef SX_FUZZUTIL_H
#define SX_FUZZUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/record/sx_record.h"
#include "pki/sx_pki.h"

/* Records in the corpus are sealed with this secret and this ratchet
 * interval (small, so that a few records cross a key update). */
extern const uint8_t fz_secret[SX_SECRET_LEN];
#define FZ_ROTATE 4096u

/* Every property a target checks: a failure is a finding. */
#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fz_fail(__FILE__, __LINE__, #cond);                                        \
	} while (0)

__attribute__((noreturn)) void fz_fail(const char *file, int line, const char *what);

/* .sxsig files and receipts are canonical up to the signer's certificate
 * chain: the text before it is exactly what the encoder writes. (The PEM
 * chain is read by OpenSSL, which accepts variants of the same certificates,
 * such as bytes it skips inside the base64.) */
void fz_canonical_head(const uint8_t *in, size_t n, const char *enc, size_t elen);

/* The suite selected by one input byte (every suite is reachable). */
sx_suite fz_suite(uint8_t b);

/* A direction keyed with fz_secret; aborts when the library refuses. */
void fz_rdir(sx_rdir *d, sx_suite suite);

/* Puts data in a memory file and returns a path that opens it
 * ("/proc/self/fd/N"); valid until the next call. */
const char *fz_memfile(const uint8_t *data, size_t len);

/* A CA and two leaves under it, built in memory once per process:
 * server (role server, DNS fuzz.test) and client (role client). */
#define FZ_SERVER_NAME "fuzz.test"
void fz_identities(const sx_identity **server, const sx_identity **client);

#endif
