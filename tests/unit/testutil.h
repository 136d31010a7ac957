/* Shared helpers for the cmocka unit tests. */
#ifndef SX_TESTUTIL_H
#define SX_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* A fresh temporary folder for one test; removed (recursively) by
 * sx_test_rmtree. */
char *sx_test_tmpdir(void);
void sx_test_rmtree(const char *dir);

/* Decodes hex into out (cap bytes); returns the byte count or -1. */
long sx_test_unhex(const char *hex, uint8_t *out, size_t cap);

#endif
