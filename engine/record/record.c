/* engine/record: the sealed record layer. Pure: buffers in, buffers out.
 * docs/PROTOCOL.md "Record layer" and "Key schedule" describe every byte. */
#include "engine/record/sx_record.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/sx_util.h"

#define SX_TLS13_PREFIX	  "tls13 "
#define SX_HKDF_LABEL_MAX 255
#define SX_HKDF_CTX_MAX	  255
#define SX_HKDF_INFO_MAX  (2 + 1 + SX_HKDF_LABEL_MAX + 1 + SX_HKDF_CTX_MAX)
#define SX_SHA256_LEN	  32
#define SX_AEAD_TAG_LEN	  16
#define SX_HMAC_TAG_LEN	  32
#define SX_CTR_BLOCK_LEN  16
#define SX_SEQ_LEN	  8
/* EVP_CipherUpdate takes an int length: long records go through in 1 GiB
 * pieces (a multiple of every block size, so the keystream stays aligned). */
#define SX_UPDATE_CHUNK ((size_t)1 << 30)
/* AES-256-CTR: 2^32 counter values of 16 bytes per record. */
#define SX_CTR_MAX_PLAIN ((uint64_t)1 << 36)

_Static_assert((uint64_t)SX_REC_BODY_MAX < SX_CTR_MAX_PLAIN,
	       "a record body must fit the AES-256-CTR 32-bit block counter");

enum { SX_CMODE_NONE = 0, SX_CMODE_SEAL = 1, SX_CMODE_OPEN = 2 };

static const struct {
	sx_suite suite;
	const char *name;
	const char *alias;
} suites[] = {
    {SX_SUITE_AES256GCM, "aes-256-gcm", "aes256gcm"},
    {SX_SUITE_AES256CTR_HMAC, "aes-256-ctr-hmac-sha256", "aes256ctr-hmac"},
    {SX_SUITE_CHACHA20POLY1305, "chacha20-poly1305", "chacha20poly1305"},
};

int sx_suite_parse(const char *s, sx_suite *out)
{
	if (s == NULL || out == NULL)
		return -1;
	for (size_t i = 0; i < SX_ARRAY_LEN(suites); i++) {
		if (strcmp(s, suites[i].name) == 0 || strcmp(s, suites[i].alias) == 0) {
			*out = suites[i].suite;
			return 0;
		}
	}
	return -1;
}

const char *sx_suite_name(sx_suite s)
{
	for (size_t i = 0; i < SX_ARRAY_LEN(suites); i++)
		if (suites[i].suite == s)
			return suites[i].name;
	return "unknown";
}

size_t sx_suite_tag_len(sx_suite s)
{
	switch (s) {
	case SX_SUITE_AES256GCM: return SX_AEAD_TAG_LEN;
	case SX_SUITE_CHACHA20POLY1305: return SX_AEAD_TAG_LEN;
	case SX_SUITE_AES256CTR_HMAC: return SX_HMAC_TAG_LEN;
	}
	return 0;
}

static const EVP_CIPHER *suite_cipher(sx_suite s)
{
	switch (s) {
	case SX_SUITE_AES256GCM: return EVP_aes_256_gcm();
	case SX_SUITE_CHACHA20POLY1305: return EVP_chacha20_poly1305();
	case SX_SUITE_AES256CTR_HMAC: return EVP_aes_256_ctr();
	}
	return NULL;
}

static bool type_known(uint8_t type)
{
	return type == SX_REC_CTRL || type == SX_REC_DATA || type == SX_REC_EOS;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 8446 §7.1 HKDF-Expand-Label; HKDF-Expand is RFC 5869 §2.3. */
int sx_hkdf_expand_label(const uint8_t *secret, size_t secret_len, const char *label,
			 const uint8_t *ctx, size_t ctx_len, uint8_t *out, size_t out_len,
			 sx_err *err)
{
	int rc = -1;
	uint8_t info[SX_HKDF_INFO_MAX];
	size_t n = 0;
	const size_t plen = sizeof(SX_TLS13_PREFIX) - 1;
	size_t llen = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;

	SX_ENSURE(secret != NULL && secret_len > 0 && label != NULL && out != NULL, err, SX_E_OTHER,
		  "HKDF-Expand-Label: missing argument");
	llen = strnlen(label, SX_HKDF_LABEL_MAX + 1);
	/* opaque label<7..255> holds the prefix and the label. */
	SX_ENSURE(plen + llen >= 7 && plen + llen <= SX_HKDF_LABEL_MAX, err, SX_E_OTHER,
		  "HKDF-Expand-Label: label length %zu outside 1..%zu", llen,
		  SX_HKDF_LABEL_MAX - plen);
	SX_ENSURE(ctx_len <= SX_HKDF_CTX_MAX && (ctx_len == 0 || ctx != NULL), err, SX_E_OTHER,
		  "HKDF-Expand-Label: context length %zu over %d", ctx_len, SX_HKDF_CTX_MAX);
	/* RFC 5869 §2.3: L <= 255 * HashLen (which also fits the uint16). */
	SX_ENSURE(out_len > 0 && out_len <= 255 * SX_SHA256_LEN, err, SX_E_OTHER,
		  "HKDF-Expand-Label: output length %zu outside 1..%d", out_len,
		  255 * SX_SHA256_LEN);

	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(plen + llen);
	memcpy(info + n, SX_TLS13_PREFIX, plen);
	n += plen;
	memcpy(info + n, label, llen);
	n += llen;
	info[n++] = (uint8_t)ctx_len;
	if (ctx_len > 0)
		memcpy(info + n, ctx, ctx_len);
	n += ctx_len;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL || (kctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "HKDF-Expand-Label: HKDF unavailable");
		goto out;
	}
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
	    OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "HKDF-Expand-Label \"%s\" failed", label);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0 && out != NULL)
		OPENSSL_cleanse(out, out_len);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* The channel's exporter output (RFC 8446 §7.5) keys both directions; each
 * gets its own secret so the two never share a (key, nonce). */
int sx_keys_split(const uint8_t master[SX_SECRET_LEN], uint8_t c2s[SX_SECRET_LEN],
		  uint8_t s2c[SX_SECRET_LEN], sx_err *err)
{
	int rc = -1;
	SX_GUARD(sx_hkdf_expand_label(master, SX_SECRET_LEN, SX_LABEL_C2S, NULL, 0, c2s,
				      SX_SECRET_LEN, err));
	SX_GUARD(sx_hkdf_expand_label(master, SX_SECRET_LEN, SX_LABEL_S2C, NULL, 0, s2c,
				      SX_SECRET_LEN, err));
	rc = 0;
out:
	if (rc < 0) {
		OPENSSL_cleanse(c2s, SX_SECRET_LEN);
		OPENSSL_cleanse(s2c, SX_SECRET_LEN);
	}
	return rc;
}

/* Derives the current epoch's key, iv (and MAC key) from d->secret, and drops
 * the previous epoch's key schedule from the cipher context. */
static int epoch_keys(sx_rdir *d, sx_err *err)
{
	int rc = -1;
	SX_GUARD(sx_hkdf_expand_label(d->secret, SX_SECRET_LEN, SX_LABEL_KEY, NULL, 0, d->key,
				      SX_KEY_LEN, err));
	SX_GUARD(sx_hkdf_expand_label(d->secret, SX_SECRET_LEN, SX_LABEL_IV, NULL, 0, d->iv,
				      SX_IV_LEN, err));
	if (d->suite == SX_SUITE_AES256CTR_HMAC) {
		SX_GUARD(sx_hkdf_expand_label(d->secret, SX_SECRET_LEN, SX_LABEL_HMAC, NULL, 0,
					      d->mac_key, SX_KEY_LEN, err));
		OSSL_PARAM mp[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		    OSSL_PARAM_construct_end(),
		};
		if (EVP_MAC_init(d->mctx, d->mac_key, SX_KEY_LEN, mp) != 1) {
			(void)sx_fail_ssl(err, SX_E_OTHER, "record layer: HMAC key setup failed");
			goto out;
		}
	}
	/* The reset frees (and OpenSSL cleanses) the old key schedule; the new
	 * key goes in on first use, once the direction (seal/open) is known. */
	if (EVP_CIPHER_CTX_reset(d->cctx) != 1) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "record layer: cipher reset failed");
		goto out;
	}
	d->cmode = SX_CMODE_NONE;
	rc = 0;
out:
	return rc;
}

/* The one-way key update, as QUIC's "quic ku" (RFC 9001 §6):
 * secret' = HKDF-Expand-Label(secret, "sxfer ku", "", 32). The old secret
 * and keys are overwritten, so a later compromise does not expose them. */
static int ratchet(sx_rdir *d, sx_err *err)
{
	int rc = -1;
	uint8_t next[SX_SECRET_LEN];
	SX_GUARD(sx_hkdf_expand_label(d->secret, SX_SECRET_LEN, SX_LABEL_KU, NULL, 0, next,
				      SX_SECRET_LEN, err));
	memcpy(d->secret, next, SX_SECRET_LEN);
	OPENSSL_cleanse(d->key, sizeof(d->key));
	OPENSSL_cleanse(d->mac_key, sizeof(d->mac_key));
	OPENSSL_cleanse(d->iv, sizeof(d->iv));
	SX_GUARD(epoch_keys(d, err));
	d->epoch++;
	d->epoch_bytes = 0;
	rc = 0;
out:
	OPENSSL_cleanse(next, sizeof(next));
	return rc;
}

int sx_rdir_init(sx_rdir *d, sx_suite suite, const uint8_t secret[SX_SECRET_LEN],
		 uint64_t rotate_bytes, sx_err *err)
{
	int rc = -1;
	EVP_MAC *mac = NULL;

	SX_ENSURE(d != NULL && secret != NULL, err, SX_E_OTHER, "record layer: missing argument");
	memset(d, 0, sizeof(*d));
	SX_ENSURE(suite_cipher(suite) != NULL, err, SX_E_USAGE, "record layer: unknown suite %d",
		  (int)suite);
	d->suite = suite;
	d->rotate_bytes = rotate_bytes == 0 ? SX_ROTATE_DEFAULT : rotate_bytes;
	memcpy(d->secret, secret, SX_SECRET_LEN);
	if ((d->cctx = EVP_CIPHER_CTX_new()) == NULL) {
		(void)sx_fail_ssl(err, SX_E_OTHER, "record layer: out of memory");
		goto out;
	}
	if (suite == SX_SUITE_AES256CTR_HMAC) {
		if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
		    (d->mctx = EVP_MAC_CTX_new(mac)) == NULL) {
			(void)sx_fail_ssl(err, SX_E_OTHER, "record layer: HMAC unavailable");
			goto out;
		}
	}
	SX_GUARD(epoch_keys(d, err));
	rc = 0;
out:
	EVP_MAC_free(mac); /* the context holds its own reference */
	if (rc < 0)
		sx_rdir_free(d);
	return rc;
}

void sx_rdir_free(sx_rdir *d)
{
	if (d == NULL)
		return;
	EVP_CIPHER_CTX_free(d->cctx);
	EVP_MAC_CTX_free(d->mctx);
	OPENSSL_cleanse(d, sizeof(*d));
}

int sx_record_check_header(const sx_rdir *d, const uint8_t hdr[SX_REC_HDR_LEN], size_t max_body,
			   size_t *body_len, sx_err *err)
{
	int rc = -1;
	uint32_t blen;
	size_t tag_len;

	if (body_len != NULL)
		*body_len = 0;
	SX_ENSURE(d != NULL && hdr != NULL && body_len != NULL, err, SX_E_OTHER,
		  "record layer: missing argument");
	tag_len = sx_suite_tag_len(d->suite);
	SX_ENSURE(tag_len != 0, err, SX_E_OTHER, "record layer: not initialised");
	blen = get_be32(hdr + 4);
	SX_ENSURE(hdr[2] == 0 && hdr[3] == 0, err, SX_E_INTEGRITY,
		  "record %llu: reserved header bytes are 0x%02x%02x, not zero",
		  (unsigned long long)d->seq, hdr[2], hdr[3]);
	SX_ENSURE(type_known(hdr[0]), err, SX_E_INTEGRITY, "record %llu: unknown record type %u",
		  (unsigned long long)d->seq, hdr[0]);
	SX_ENSURE((hdr[1] & ~SX_REC_FLAGS_KNOWN) == 0, err, SX_E_INTEGRITY,
		  "record %llu: unknown flags 0x%02x", (unsigned long long)d->seq, hdr[1]);
	SX_ENSURE(blen >= tag_len, err, SX_E_INTEGRITY,
		  "record %llu: body of %u bytes is shorter than the %zu-byte tag",
		  (unsigned long long)d->seq, blen, tag_len);
	SX_ENSURE(blen <= max_body, err, SX_E_INTEGRITY,
		  "record %llu: body of %u bytes exceeds the limit of %zu bytes",
		  (unsigned long long)d->seq, blen, max_body);
	SX_ENSURE(hdr[0] != SX_REC_EOS || blen == tag_len, err, SX_E_INTEGRITY,
		  "record %llu: end-of-stream record carries %zu bytes of data",
		  (unsigned long long)d->seq, (size_t)blen - tag_len);
	*body_len = blen;
	rc = 0;
out:
	return rc;
}

/* RFC 8446 §5.3: the 64-bit sequence number, big-endian, XORed into the low
 * 8 bytes of the 12-byte IV. For AES-256-CTR the 16-byte counter block is
 * this nonce followed by a 32-bit big-endian block counter starting at 0. */
static void make_iv(const sx_rdir *d, uint8_t iv[SX_CTR_BLOCK_LEN])
{
	uint8_t seq[SX_SEQ_LEN];
	put_be64(seq, d->seq);
	memcpy(iv, d->iv, SX_IV_LEN);
	for (int i = 0; i < SX_SEQ_LEN; i++)
		iv[SX_IV_LEN - SX_SEQ_LEN + i] ^= seq[i];
	memset(iv + SX_IV_LEN, 0, SX_CTR_BLOCK_LEN - SX_IV_LEN);
}

/* Sets the per-record IV; the key goes in only once per epoch (and again if
 * the context is switched between sealing and opening, which one direction
 * never does). */
static int cipher_start(sx_rdir *d, int mode, const uint8_t *iv, sx_err *err)
{
	int enc = mode == SX_CMODE_SEAL;
	if (d->cmode != mode) {
		if (EVP_CipherInit_ex(d->cctx, suite_cipher(d->suite), NULL, d->key, NULL, enc) !=
		    1)
			return sx_fail_ssl(err, SX_E_OTHER,
					   "record layer: cipher key setup failed");
		d->cmode = mode;
	}
	if (EVP_CipherInit_ex(d->cctx, NULL, NULL, NULL, iv, enc) != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "record layer: cipher IV setup failed");
	return 0;
}

static int cipher_run(sx_rdir *d, const uint8_t *aad, uint8_t *buf, size_t len, sx_err *err)
{
	int outl = 0;
	if (aad != NULL && EVP_CipherUpdate(d->cctx, NULL, &outl, aad, SX_REC_HDR_LEN) != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "record layer: AAD rejected");
	while (len > 0) {
		size_t n = len < SX_UPDATE_CHUNK ? len : SX_UPDATE_CHUNK;
		if (EVP_CipherUpdate(d->cctx, buf, &outl, buf, (int)n) != 1 || (size_t)outl != n)
			return sx_fail_ssl(err, SX_E_OTHER, "record layer: cipher failed");
		buf += n;
		len -= n;
	}
	return 0;
}

/* Tag of AES-256-CTR + HMAC-SHA-256 (encrypt-then-MAC):
 * HMAC-SHA-256(mac_key, seq (8, big-endian) || header (8) || ciphertext). */
static int hmac_tag(sx_rdir *d, const uint8_t *hdr, const uint8_t *ct, size_t len,
		    uint8_t tag[SX_HMAC_TAG_LEN], sx_err *err)
{
	uint8_t seq[SX_SEQ_LEN];
	size_t outl = 0;
	put_be64(seq, d->seq);
	/* A NULL key restarts HMAC with the epoch's key already in the context. */
	if (EVP_MAC_init(d->mctx, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(d->mctx, seq, sizeof(seq)) != 1 ||
	    EVP_MAC_update(d->mctx, hdr, SX_REC_HDR_LEN) != 1 ||
	    EVP_MAC_update(d->mctx, ct, len) != 1 ||
	    EVP_MAC_final(d->mctx, tag, &outl, SX_HMAC_TAG_LEN) != 1 || outl != SX_HMAC_TAG_LEN)
		return sx_fail_ssl(err, SX_E_OTHER, "record layer: HMAC failed");
	return 0;
}

/* Counts plaintext toward the epoch and ratchets right after the record that
 * reaches rotate_bytes, so both sides switch at the same sequence number. */
static int account(sx_rdir *d, size_t plen, sx_err *err)
{
	if (UINT64_MAX - d->epoch_bytes < plen)
		d->epoch_bytes = UINT64_MAX;
	else
		d->epoch_bytes += plen;
	if (d->epoch_bytes >= d->rotate_bytes)
		return ratchet(d, err);
	return 0;
}

static int usable(const sx_rdir *d, sx_err *err)
{
	if (d == NULL || d->cctx == NULL || sx_suite_tag_len(d->suite) == 0)
		return sx_fail(err, SX_E_OTHER, "record layer: not initialised");
	if (d->failed)
		return sx_fail(err, SX_E_INTEGRITY,
			       "record layer: direction already failed at record %llu",
			       (unsigned long long)d->seq);
	/* The connection ends before the implicit counter could wrap and
	 * repeat a nonce (RFC 8446 §5.3). */
	if (d->seq == UINT64_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "sequence number exhausted");
	return 0;
}

int sx_record_reserve(sx_rdir *d, size_t plen, sx_rlane_job *job, sx_err *err)
{
	SX_GUARD(usable(d, err));
	job->suite = d->suite;
	job->seq = d->seq;
	job->epoch = d->epoch;
	memcpy(job->secret, d->secret, SX_SECRET_LEN);
	/* Exactly what sealing this record would do to the direction: the next
	 * sequence number, and the ratchet when the epoch is full. */
	d->seq++;
	if (account(d, plen, err) < 0) {
		/* As a failed seal: the direction is unusable from here. */
		d->failed = true;
		OPENSSL_cleanse(job->secret, sizeof(job->secret));
		return -1;
	}
	return 0;
out:
	return -1;
}

/* Keys the lane for the job's epoch (a lane never ratchets by itself: its
 * epoch comes with each job) and puts it at the job's sequence number. */
static int lane_at(sx_rlane *l, const sx_rlane_job *job, sx_err *err)
{
	/* The secret itself, not only the epoch: the workers of a receiving
	 * loop open the records of several connections, whose epochs have
	 * the same numbers. */
	if (!l->ready || l->epoch != job->epoch || l->d.suite != job->suite ||
	    CRYPTO_memcmp(l->d.secret, job->secret, SX_SECRET_LEN) != 0) {
		if (l->ready)
			sx_rdir_free(&l->d);
		l->ready = false;
		/* A lane never ratchets by itself: its epoch comes with each
		 * job. */
		if (sx_rdir_init(&l->d, job->suite, job->secret, UINT64_MAX, err) < 0)
			return -1;
		l->ready = true;
		l->epoch = job->epoch;
	}
	l->d.seq = job->seq;
	l->d.epoch_bytes = 0;
	/* A failed record ends the connection, not the lane: the owner of
	 * the direction marks it failed (sx_rlane_open's contract). */
	l->d.failed = false;
	return 0;
}

int sx_rlane_seal(sx_rlane *l, const sx_rlane_job *job, uint8_t type, uint8_t flags, uint8_t *rec,
		  size_t plen, size_t *rec_len, sx_err *err)
{
	if (lane_at(l, job, err) < 0)
		return -1;
	return sx_record_seal(&l->d, type, flags, rec, plen, rec_len, err);
}

int sx_rlane_open(sx_rlane *l, const sx_rlane_job *job, uint8_t *rec, size_t rec_len, uint8_t *type,
		  uint8_t *flags, uint8_t **pt, size_t *pt_len, sx_err *err)
{
	if (lane_at(l, job, err) < 0)
		return -1;
	return sx_record_open(&l->d, rec, rec_len, type, flags, pt, pt_len, err);
}

void sx_rlane_free(sx_rlane *l)
{
	if (l->ready)
		sx_rdir_free(&l->d);
	l->ready = false;
}

int sx_record_seal(sx_rdir *d, uint8_t type, uint8_t flags, uint8_t *rec, size_t plen,
		   size_t *rec_len, sx_err *err)
{
	int rc = -1;
	bool started = false;
	uint8_t iv[SX_CTR_BLOCK_LEN];
	size_t tag_len = 0, body_len;
	uint8_t *body, *tag;
	int outl = 0;

	if (rec_len != NULL)
		*rec_len = 0;
	SX_GUARD(usable(d, err));
	SX_ENSURE(rec != NULL && rec_len != NULL, err, SX_E_OTHER,
		  "record layer: missing argument");
	SX_ENSURE(type_known(type), err, SX_E_OTHER, "record layer: unknown record type %u", type);
	SX_ENSURE((flags & ~SX_REC_FLAGS_KNOWN) == 0, err, SX_E_OTHER,
		  "record layer: unknown flags 0x%02x", flags);
	SX_ENSURE(type != SX_REC_EOS || plen == 0, err, SX_E_OTHER,
		  "record layer: end-of-stream record with %zu bytes of data", plen);
	tag_len = sx_suite_tag_len(d->suite);
	SX_ENSURE(plen <= SX_REC_BODY_MAX - tag_len, err, SX_E_OTHER,
		  "record layer: %zu bytes of plaintext exceed the record limit of %zu", plen,
		  (size_t)(SX_REC_BODY_MAX - tag_len));
	/* AES-256-CTR: the 32-bit block counter must not wrap into the nonce.
	 * Implied by the 32-bit length field (see the assertion above), and
	 * checked here so a wider length field could not silently break it. */
	SX_ENSURE(d->suite != SX_SUITE_AES256CTR_HMAC || plen <= SX_CTR_MAX_PLAIN, err, SX_E_OTHER,
		  "record layer: %zu bytes exceed the AES-256-CTR record limit", plen);
	body_len = plen + tag_len;
	body = rec + SX_REC_HDR_LEN;
	tag = body + plen;

	rec[0] = type;
	rec[1] = flags;
	rec[2] = 0;
	rec[3] = 0;
	rec[4] = (uint8_t)(body_len >> 24);
	rec[5] = (uint8_t)(body_len >> 16);
	rec[6] = (uint8_t)(body_len >> 8);
	rec[7] = (uint8_t)body_len;
	make_iv(d, iv);

	started = true;
	SX_GUARD(cipher_start(d, SX_CMODE_SEAL, iv, err));
	if (d->suite == SX_SUITE_AES256CTR_HMAC) {
		SX_GUARD(cipher_run(d, NULL, body, plen, err));
		SX_GUARD(hmac_tag(d, rec, body, plen, tag, err));
	} else {
		SX_GUARD(cipher_run(d, rec, body, plen, err));
		if (EVP_EncryptFinal_ex(d->cctx, tag, &outl) != 1 || outl != 0 ||
		    EVP_CIPHER_CTX_ctrl(d->cctx, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, tag) != 1) {
			(void)sx_fail_ssl(err, SX_E_OTHER, "record layer: AEAD seal failed");
			goto out;
		}
	}
	d->seq++;
	SX_GUARD(account(d, plen, err));
	*rec_len = SX_REC_HDR_LEN + body_len;
	rc = 0;
out:
	if (rc < 0 && started) {
		/* Half-sealed plaintext must not go out, and a direction whose
		 * state is unknown must not seal again. */
		d->failed = true;
		OPENSSL_cleanse(rec, SX_REC_HDR_LEN + plen + tag_len);
	}
	return rc;
}

int sx_record_open(sx_rdir *d, uint8_t *rec, size_t rec_len, uint8_t *type, uint8_t *flags,
		   uint8_t **pt, size_t *pt_len, sx_err *err)
{
	int rc = -1;
	uint8_t iv[SX_CTR_BLOCK_LEN];
	uint8_t mac[SX_HMAC_TAG_LEN];
	size_t body_len = 0, tag_len, plen;
	uint8_t *body, *tag;
	unsigned long long seq = d != NULL ? (unsigned long long)d->seq : 0;
	int outl = 0;

	/* Safe outputs first: nothing is released unless the tag checks. */
	if (type != NULL)
		*type = 0;
	if (flags != NULL)
		*flags = 0;
	if (pt != NULL)
		*pt = NULL;
	if (pt_len != NULL)
		*pt_len = 0;
	SX_GUARD(usable(d, err));
	SX_ENSURE(rec != NULL && type != NULL && flags != NULL && pt != NULL && pt_len != NULL, err,
		  SX_E_OTHER, "record layer: missing argument");
	SX_ENSURE(rec_len >= SX_REC_HDR_LEN, err, SX_E_INTEGRITY,
		  "record %llu truncated: %zu bytes, shorter than the header", seq, rec_len);
	SX_GUARD(sx_record_check_header(d, rec, SX_REC_BODY_MAX, &body_len, err));
	SX_ENSURE(body_len == rec_len - SX_REC_HDR_LEN, err, SX_E_INTEGRITY,
		  "record %llu: header announces %zu body bytes but %zu are present", seq, body_len,
		  rec_len - SX_REC_HDR_LEN);
	tag_len = sx_suite_tag_len(d->suite);
	plen = body_len - tag_len;
	body = rec + SX_REC_HDR_LEN;
	tag = body + plen;
	make_iv(d, iv);

	if (d->suite == SX_SUITE_AES256CTR_HMAC) {
		/* Encrypt-then-MAC: the tag is verified, in constant time,
		 * before a byte is decrypted. */
		SX_GUARD(hmac_tag(d, rec, body, plen, mac, err));
		SX_ENSURE(CRYPTO_memcmp(mac, tag, SX_HMAC_TAG_LEN) == 0, err, SX_E_INTEGRITY,
			  "record %llu failed authentication", seq);
		SX_GUARD(cipher_start(d, SX_CMODE_OPEN, iv, err));
		SX_GUARD(cipher_run(d, NULL, body, plen, err));
	} else {
		/* The AEAD decrypts in place, then checks the tag in Final;
		 * on a mismatch the buffer is wiped below, so no plaintext is
		 * released. */
		SX_GUARD(cipher_start(d, SX_CMODE_OPEN, iv, err));
		SX_GUARD(cipher_run(d, rec, body, plen, err));
		if (EVP_CIPHER_CTX_ctrl(d->cctx, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, tag) != 1) {
			(void)sx_fail_ssl(err, SX_E_OTHER, "record layer: AEAD tag setup failed");
			goto out;
		}
		if (EVP_DecryptFinal_ex(d->cctx, mac, &outl) != 1 || outl != 0) {
			ERR_clear_error();
			(void)sx_fail(err, SX_E_INTEGRITY, "record %llu failed authentication",
				      seq);
			goto out;
		}
	}
	d->seq++;
	SX_GUARD(account(d, plen, err));
	*type = rec[0];
	*flags = rec[1];
	*pt = body;
	*pt_len = plen;
	rc = 0;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	if (rc < 0 && d != NULL && rec != NULL && d->cctx != NULL) {
		/* A bad record ends the connection (as a TLS fatal alert):
		 * the direction refuses anything further. */
		d->failed = true;
		OPENSSL_cleanse(rec, rec_len);
	}
	return rc;
}
