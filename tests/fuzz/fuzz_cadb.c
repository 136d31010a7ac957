/* The CA's index (DIR/index.txt, pki/ca.c), read by every `sxfer ca`
 * command. Property: parse, format, parse gives the same entries, and the
 * two formatted texts are byte for byte the same. */
#include <stdlib.h>
#include <string.h>

#include "pki/sx_ca.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sx_ca_db d1, d2;
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;
	sx_err err = {0};
	if (sx_ca_db_parse((const char *)data, size, &d1, &err) < 0) {
		FZ_CHECK(d1.e == NULL && d1.n == 0 && err.cls == SX_E_INTEGRITY);
		return 0;
	}
	FZ_CHECK(sx_ca_db_format(&d1, &t1, &l1, &err) == 0);
	FZ_CHECK(sx_ca_db_parse(t1, l1, &d2, &err) == 0);
	FZ_CHECK(d1.n == d2.n);
	for (size_t i = 0; i < d1.n; i++) {
		const sx_ca_entry *a = &d1.e[i], *b = &d2.e[i];
		FZ_CHECK(strcmp(a->serial, b->serial) == 0 && strcmp(a->name, b->name) == 0);
		FZ_CHECK(a->profile == b->profile && a->not_after == b->not_after);
		FZ_CHECK(a->revoked_at == b->revoked_at && a->reason == b->reason);
	}
	FZ_CHECK(sx_ca_db_format(&d2, &t2, &l2, &err) == 0);
	FZ_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
	free(t1);
	free(t2);
	sx_ca_db_free(&d1);
	sx_ca_db_free(&d2);
	return 0;
}
