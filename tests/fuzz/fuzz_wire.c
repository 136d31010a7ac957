/* Control messages, the bodies of sealed CTRL records (docs/PROTOCOL.md
 * "Control messages"). Property: decode, encode, decode gives the same
 * message, and the second encoding is the first byte for byte. */
#include <string.h>

#include "engine/wire/sx_wire.h"
#include "tests/fuzz/fuzzutil.h"

#define FZ_MSG_MAX (1u + 64u + 2u + 65535u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void same_msg(const sx_msg *a, const sx_msg *b)
{
	FZ_CHECK(a->type == b->type && a->file_id == b->file_id && a->size == b->size);
	FZ_CHECK(a->mode == b->mode && a->mtime_sec == b->mtime_sec &&
		 a->mtime_nsec == b->mtime_nsec);
	FZ_CHECK(a->max_record == b->max_record && a->err_class == b->err_class);
	FZ_CHECK(same_bytes(a->path, a->path_len, b->path, b->path_len));
	/* The encoder sends at most SX_REASON_MAX bytes of a reason. */
	size_t rlen = a->reason_len > SX_REASON_MAX ? SX_REASON_MAX : a->reason_len;
	FZ_CHECK(same_bytes(a->reason, rlen, b->reason, b->reason_len));
	FZ_CHECK(memcmp(a->transfer_id, b->transfer_id, sizeof(a->transfer_id)) == 0);
	FZ_CHECK(a->flags == b->flags && a->hash_chunk == b->hash_chunk);
	FZ_CHECK(memcmp(a->root, b->root, sizeof(a->root)) == 0);
	FZ_CHECK(a->batch_no == b->batch_no && a->time == b->time && a->nfiles == b->nfiles &&
		 a->leaves == b->leaves);
	FZ_CHECK(same_bytes(a->sig, a->sig_len, b->sig, b->sig_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t enc1[FZ_MSG_MAX], enc2[FZ_MSG_MAX];
	sx_msg m1, m2;
	sx_err err = {0};
	if (sx_msg_decode(data, size, &m1, &err) < 0) {
		FZ_CHECK(err.cls == SX_E_INTEGRITY);
		return 0;
	}
	/* What the receiver does next with a path. */
	if (m1.type == SX_MSG_FILE_BEGIN || m1.type == SX_MSG_DIR)
		(void)sx_path_check(m1.path, m1.path_len, &err);

	sx_wbuf w1 = sx_wbuf_make(enc1, sizeof(enc1));
	sx_msg_encode(&m1, &w1);
	FZ_CHECK(!w1.overflow);
	FZ_CHECK(sx_msg_decode(enc1, w1.len, &m2, &err) == 0);
	same_msg(&m1, &m2);
	sx_wbuf w2 = sx_wbuf_make(enc2, sizeof(enc2));
	sx_msg_encode(&m2, &w2);
	FZ_CHECK(!w2.overflow && same_bytes(enc1, w1.len, enc2, w2.len));
	return 0;
}
