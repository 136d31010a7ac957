/* The handshake bytes a connection reads before the record layer: the TLS
 * record framing the channel checks itself (RFC 8446 section 5.1), the TLS
 * 1.3 handshake messages OpenSSL parses, and the link's handshake buffer
 * (engine/link, engine/channel). Byte 0 picks the side that reads the
 * input (even: a server reading a client; odd: a client reading a server,
 * after its ClientHello) and, in its other bits, the size of the pieces the
 * input arrives in (0: all at once). */
#include <stdlib.h>
#include <string.h>

#include "engine/channel/sx_link.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sx_chan_ctx *ctx_of(bool server)
{
	static sx_chan_ctx *ctx[2];
	if (ctx[server] == NULL) {
		const sx_identity *srv, *cli;
		sx_err err = {0};
		fz_identities(&srv, &cli);
		sx_chan_cfg cfg = {
		    .server = server,
		    .id = server ? srv : cli,
		    .server_name = FZ_SERVER_NAME,
		    .max_record = 64u * 1024u,
		};
		if (sx_chan_ctx_new(&ctx[server], &cfg, &err) < 0)
			fz_fail(__FILE__, __LINE__, err.msg);
	}
	return ctx[server];
}

/* What the link would send: drained and dropped. */
static void drain(sx_link *l)
{
	const uint8_t *out;
	size_t n;
	for (int i = 0; i < 4; i++) {
		sx_link_hs_output(l, &out, &n);
		if (n == 0)
			break;
		sx_link_hs_sent(l);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool server = (data[0] & 1) == 0;
	size_t piece = (size_t)(data[0] >> 1) * 61u;
	const uint8_t *in = data + 1;
	size_t left = size - 1;
	sx_link *l = calloc(1, sizeof(*l));
	sx_err err = {0};
	FZ_CHECK(l != NULL);
	FZ_CHECK(sx_link_init(l, ctx_of(server), &err) == 0);
	drain(l);
	while (left > 0 && !l->ready) {
		uint8_t *buf;
		size_t room;
		sx_link_hs_recv_buf(l, &buf, &room);
		FZ_CHECK(room > 0);
		size_t n = left < room ? left : room;
		if (piece != 0 && n > piece)
			n = piece;
		memcpy(buf, in, n);
		in += n;
		left -= n;
		int rc = sx_link_hs_input(l, n, &err);
		drain(l);
		if (rc < 0) {
			FZ_CHECK(err.cls != SX_OK && err.msg[0] != '\0');
			break;
		}
	}
	/* A peer without our CA's keys never gets a channel ready. */
	FZ_CHECK(!l->ready);
	sx_link_free(l);
	free(l);
	return 0;
}
