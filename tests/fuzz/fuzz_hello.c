/* The client's HELLO, the first bytes the server reads inside TLS
 * (docs/PROTOCOL.md "Handshake"). Property: a HELLO that decodes encodes
 * back to exactly the same 16 bytes (the format has no slack). */
#include <string.h>

#include "engine/wire/sx_wire.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sx_hello h;
	sx_err err = {0};
	uint8_t again[SX_HELLO_LEN];
	if (sx_hello_decode(data, size, &h, &err) < 0) {
		FZ_CHECK(err.cls != SX_OK && err.msg[0] != '\0');
		return 0;
	}
	FZ_CHECK(size == SX_HELLO_LEN && h.version == SX_PROTO_VERSION);
	sx_hello_encode(&h, again);
	FZ_CHECK(memcmp(again, data, SX_HELLO_LEN) == 0);
	return 0;
}
