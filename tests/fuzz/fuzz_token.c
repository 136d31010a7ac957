/* Enrollment tokens (`sxfer enroll --token T`, docs/PKI.md "Tokens"): the
 * text a device is handed, parsed for the name, role and SANs it asks for.
 * Properties: what parses has NUL-terminated fields within their bounds, a
 * known role, and parses again to the same claims; the text's hash (the
 * CA's record key) is defined for it. The input is the token text. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "pki/sx_ca.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > SX_TOKEN_TEXT_MAX + 16)
		return 0;
	char *text = malloc(size + 1);
	sx_claims *a = calloc(2, sizeof(*a));
	sx_err err = {0};
	FZ_CHECK(text != NULL && a != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	if (sx_token_parse(text, &a[0], &err) < 0) {
		FZ_CHECK(err.cls != SX_OK);
		goto out;
	}
	FZ_CHECK(memchr(a[0].name, '\0', sizeof(a[0].name)) != NULL && a[0].name[0] != '\0');
	FZ_CHECK(a[0].profile == SX_PROFILE_CLIENT || a[0].profile == SX_PROFILE_SERVER ||
		 a[0].profile == SX_PROFILE_BOTH);
	FZ_CHECK(a[0].ndns <= SX_TOKEN_SAN_MAX && a[0].nips <= SX_TOKEN_SAN_MAX);
	for (size_t i = 0; i < a[0].ndns; i++)
		FZ_CHECK(memchr(a[0].dns[i], '\0', sizeof(a[0].dns[i])) != NULL);
	for (size_t i = 0; i < a[0].nips; i++)
		FZ_CHECK(memchr(a[0].ips[i], '\0', sizeof(a[0].ips[i])) != NULL);
	FZ_CHECK(sx_token_parse(text, &a[1], &err) == 0);
	FZ_CHECK(memcmp(&a[0], &a[1], sizeof(a[0])) == 0);
out:
	ERR_clear_error();
	free(text);
	free(a);
	return 0;
}
