/* Relative paths as the receiver accepts them (FILE_BEGIN, DIR). Property:
 * an accepted path, read by a simple model of the rules in
 * engine/wire/sx_wire.h, is non-empty, relative, free of NUL and control
 * characters, of empty, '.' and '..' components, and within the limits. */
#include <string.h>

#include "engine/wire/sx_wire.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool model_accepts(const uint8_t *p, size_t len)
{
	size_t start = 0, depth = 0;
	if (len == 0 || len > SX_PATH_MAX || p[0] == '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		size_t n = i - start;
		const uint8_t *c = p + start;
		if (n == 0 || n > 255 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		depth++;
		start = i + 1;
	}
	return depth <= SX_PATH_DEPTH_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sx_err err = {0};
	int rc = sx_path_check(data, size, &err);
	FZ_CHECK((rc == 0) == model_accepts(data, size));
	if (rc == 0) {
		FZ_CHECK(memchr(data, 0, size) == NULL);
		FZ_CHECK(size < 2 || memcmp(data, "..", 2) != 0 || (size > 2 && data[2] != '/'));
	} else {
		FZ_CHECK(err.cls == SX_E_USAGE);
	}
	return 0;
}
