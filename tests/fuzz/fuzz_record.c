/* The sealed record layer with a fixed key (docs/PROTOCOL.md "Record
 * layer"). The first input byte picks the suite, the second the mode:
 *   even: the rest is a stream of records, opened one after the other at
 *         sequence numbers 0, 1, ... (so the corpus's real records open and
 *         cross a key update; mutations exercise every refusal);
 *   odd:  byte 2 is the type, byte 3 the flags, bytes 4-5 a position, the
 *         rest a plaintext. Properties: what seals opens to the same type,
 *         flags and plaintext; a record with any one bit flipped does not
 *         open and releases no plaintext. */
#include <stdlib.h>
#include <string.h>

#include "engine/record/sx_record.h"
#include "tests/fuzz/fuzzutil.h"

#define FZ_BODY_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void open_stream(sx_suite suite, const uint8_t *p, size_t len)
{
	sx_rdir d;
	sx_err err = {0};
	fz_rdir(&d, suite);
	while (len >= SX_REC_HDR_LEN) {
		size_t body = 0;
		if (sx_record_check_header(&d, p, FZ_BODY_MAX, &body, &err) < 0) {
			FZ_CHECK(err.cls == SX_E_INTEGRITY);
			break;
		}
		size_t n = SX_REC_HDR_LEN + body;
		if (n > len)
			n = len; /* truncated: must be refused */
		/* An exact copy, so a read past the record is caught. */
		uint8_t *rec = malloc(n), type, flags, *pt;
		size_t pt_len;
		FZ_CHECK(rec != NULL);
		memcpy(rec, p, n);
		int rc = sx_record_open(&d, rec, n, &type, &flags, &pt, &pt_len, &err);
		if (rc == 0) {
			FZ_CHECK(n == SX_REC_HDR_LEN + body);
			FZ_CHECK(pt >= rec && pt_len <= n && pt + pt_len <= rec + n);
			FZ_CHECK(type != SX_REC_EOS || pt_len == 0);
		} else {
			FZ_CHECK(pt == NULL && pt_len == 0 && err.cls == SX_E_INTEGRITY);
		}
		free(rec);
		if (rc < 0)
			break;
		p += n;
		len -= n;
	}
	sx_rdir_free(&d);
}

static void round_trip(sx_suite suite, uint8_t type, uint8_t flags, size_t pos, const uint8_t *p,
		       size_t plen)
{
	sx_rdir tx, rx;
	sx_err err = {0};
	size_t cap = SX_REC_HDR_LEN + plen + SX_REC_TAG_MAX, rec_len = 0, pt_len;
	uint8_t *rec = malloc(cap), *copy = malloc(cap), *pt, t, f;
	FZ_CHECK(rec != NULL && copy != NULL);
	fz_rdir(&tx, suite);
	memcpy(rec + SX_REC_HDR_LEN, p, plen);
	if (sx_record_seal(&tx, type, flags, rec, plen, &rec_len, &err) < 0) {
		FZ_CHECK(err.cls == SX_E_OTHER);
		goto out;
	}
	FZ_CHECK(rec_len == SX_REC_HDR_LEN + plen + sx_suite_tag_len(suite));
	memcpy(copy, rec, rec_len);

	fz_rdir(&rx, suite);
	FZ_CHECK(sx_record_open(&rx, rec, rec_len, &t, &f, &pt, &pt_len, &err) == 0);
	FZ_CHECK(t == type && f == flags && pt_len == plen);
	FZ_CHECK(plen == 0 || memcmp(pt, p, plen) == 0);
	sx_rdir_free(&rx);

	/* One flipped bit anywhere: header (AAD), ciphertext or tag. */
	copy[pos % rec_len] ^= (uint8_t)(1u << (pos % 8));
	fz_rdir(&rx, suite);
	FZ_CHECK(sx_record_open(&rx, copy, rec_len, &t, &f, &pt, &pt_len, &err) < 0);
	FZ_CHECK(pt == NULL && pt_len == 0 && t == 0 && f == 0);
	sx_rdir_free(&rx);
out:
	sx_rdir_free(&tx);
	free(rec);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	sx_suite suite = fz_suite(data[0]);
	if ((data[1] & 1) == 0) {
		open_stream(suite, data + 2, size - 2);
		return 0;
	}
	if (size < 6)
		return 0;
	round_trip(suite, data[2], data[3], (size_t)data[4] << 8 | data[5], data + 6, size - 6);
	return 0;
}
