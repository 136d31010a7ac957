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

struct sx_link;
struct sx_err;

/* Writes all of p to the blocking socket fd: 0, or -1. */
int sx_test_send_all(int fd, const void *p, size_t n);
/* Drives l's handshake (engine/channel/sx_link.h) over the blocking socket
 * fd until the link is ready: 0, or -1 with err set. */
int sx_test_handshake(struct sx_link *l, int fd, struct sx_err *err);

/* Decodes hex into out (cap bytes); returns the byte count or -1. */
long sx_test_unhex(const char *hex, uint8_t *out, size_t cap);

#endif
