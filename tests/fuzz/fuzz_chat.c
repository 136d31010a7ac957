/* Chat messages (docs/PROTOCOL.md "Chat") and transcript lines
 * (docs/SIGNATURES.md section 11.2). The first byte chooses:
 *   even: a chat message body. Property: what decodes encodes to the same
 *         bytes (one spelling), and decodes again.
 *   odd:  transcript text, line by line through a verifier that knows no
 *         certificate. Property: a line that decodes encodes to the same
 *         bytes; nothing crashes or leaks whatever the lines claim. */
#include <stdlib.h>
#include <string.h>

#include "engine/chat/sx_chat.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_msg(const uint8_t *p, size_t n)
{
	static sx_chat_msg m, again;
	static uint8_t enc[SX_CHAT_MSG_MAX];
	sx_err err = {0};
	if (sx_chat_msg_decode(p, n, &m, &err) < 0)
		return;
	sx_wbuf w = sx_wbuf_make(enc, sizeof(enc));
	sx_chat_msg_encode(&m, &w);
	FZ_CHECK(!w.overflow);
	FZ_CHECK(w.len == n && memcmp(enc, p, n) == 0);
	FZ_CHECK(sx_chat_msg_decode(enc, w.len, &again, &err) == 0);
}

static void lines(const uint8_t *p, size_t n)
{
	static sx_chat_line l;
	sx_chat_ver *v = NULL;
	sx_policy pol = {0};
	sx_err err = {0};
	size_t pos = 0;
	FZ_CHECK(sx_chat_ver_new(&v, &pol, NULL, &err) == 0);
	while (pos < n) {
		const uint8_t *nl = memchr(p + pos, '\n', n - pos);
		size_t len = nl != NULL ? (size_t)(nl - (p + pos)) : n - pos;
		sx_err e = {0};
		if (sx_chat_line_decode((const char *)p + pos, len, &l, &e) == 0) {
			char *s = NULL;
			size_t sl = 0;
			FZ_CHECK(sx_chat_line_encode(&l, &s, &sl, &e) == 0);
			FZ_CHECK(sl == len && memcmp(s, p + pos, len) == 0);
			free(s);
		}
		sx_chat_line_free(&l);
		(void)sx_chat_ver_line(v, (const char *)p + pos, len, NULL, &e);
		pos += len + 1;
	}
	sx_chat_ver_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		one_msg(data + 1, size - 1);
	else
		lines(data + 1, size - 1);
	return 0;
}
