/* The receive path of a connection after the handshake (engine/link):
 * bytes arrive in pieces of any size, the assembler cuts them into records
 * (header first, then exactly its body), opens each with a fixed key, and
 * the receiver decodes what it opened: a CTRL record's control message, a
 * compressed DATA record's zstd frame. Input: byte 0 picks the suite, byte 1
 * the size of the pieces (0: as much as asked for), byte 2 the largest
 * record body the receiver accepts; the rest is the byte stream. */
#include <stdlib.h>
#include <string.h>

#include "engine/transfer/sx_compress.h"
#include "engine/channel/sx_link.h"
#include "engine/wire/sx_wire.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ZSTD_DCtx *dctx;

static void on_record(uint8_t type, uint8_t flags, const uint8_t *pt, size_t len)
{
	sx_err err = {0};
	if (type == SX_REC_CTRL) {
		sx_msg m;
		if (sx_msg_decode(pt, len, &m, &err) == 0 &&
		    (m.type == SX_MSG_FILE_BEGIN || m.type == SX_MSG_DIR))
			(void)sx_path_check(m.path, m.path_len, &err);
	} else if (type == SX_REC_DATA && (flags & SX_REC_FLAG_COMPRESSED)) {
		static uint8_t out[256 * 1024];
		size_t got = 0;
		if (sx_zrec_decompress(dctx, pt, len, UINT64_MAX, out, sizeof(out), &got, &err) ==
		    0)
			FZ_CHECK(got >= 1 && got <= sizeof(out));
	} else {
		FZ_CHECK(type == SX_REC_DATA || type == SX_REC_EOS);
		FZ_CHECK(flags == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	if (dctx == NULL && (dctx = ZSTD_createDCtx()) == NULL)
		abort();
	sx_suite suite = fz_suite(data[0]);
	size_t piece = data[1], max_body = 64u + (size_t)data[2] * 256u;
	const uint8_t *in = data + 3;
	size_t left = size - 3;
	size_t cap = SX_REC_HDR_LEN + max_body + sx_suite_tag_len(suite);
	sx_link *l = calloc(1, sizeof(*l));
	uint8_t *buf = malloc(cap);
	sx_err err = {0};
	FZ_CHECK(l != NULL && buf != NULL);
	fz_rdir(&l->k.rx, suite);
	l->ready = true;
	l->max_body = max_body;
	sx_link_rx_set(l, buf, cap);
	while (left > 0) {
		uint8_t *want, type, flags, *pt;
		size_t n, pt_len;
		bool complete;
		sx_link_rx_want(l, &want, &n);
		FZ_CHECK(n > 0 && want >= buf && want + n <= buf + cap);
		if (n > left)
			n = left;
		if (piece != 0 && n > piece)
			n = piece;
		memcpy(want, in, n);
		in += n;
		left -= n;
		if (sx_link_rx_input(l, n, &complete, &type, &flags, &pt, &pt_len, &err) < 0) {
			FZ_CHECK(err.cls == SX_E_INTEGRITY);
			break;
		}
		if (complete) {
			FZ_CHECK(pt_len <= max_body && pt >= buf && pt + pt_len <= buf + cap);
			on_record(type, flags, pt, pt_len);
		}
	}
	sx_link_free(l);
	free(l);
	free(buf);
	return 0;
}
