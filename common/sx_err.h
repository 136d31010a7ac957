/* One result convention for all of sxfer.
 *
 * A function that can fail returns int: 0 on success, -1 on failure, and
 * fills the caller's sx_err with a class and a sentence a person can act on
 * (which file, which peer, which check). The class is the process exit code
 * (README "Exit codes"), so the CLI maps errors without a table. */
#ifndef SX_ERR_H
#define SX_ERR_H

#include <stddef.h>

#define SX_MUST_CHECK	__attribute__((warn_unused_result))
#define SX_PRINTF(a, b) __attribute__((format(printf, a, b)))

typedef enum sx_class {
	SX_OK = 0,
	SX_E_OTHER = 1,	    /* anything not below */
	SX_E_USAGE = 2,	    /* bad command line or configuration */
	SX_E_AUTH = 3,	    /* authentication or certificate failure */
	SX_E_INTEGRITY = 4, /* tampered, truncated, replayed or oversized data */
	SX_E_IO = 5,	    /* local file, permission or disk failure */
	SX_E_NET = 6,	    /* network failure or timeout */
} sx_class;

#define SX_ERR_MSG_MAX 512

typedef struct sx_err {
	sx_class cls;
	char msg[SX_ERR_MSG_MAX];
} sx_err;

/* Records the first failure: a later sx_fail on an already-failed err keeps
 * the original cause (the innermost reason is the useful one). Returns -1. */
int sx_fail(sx_err *err, sx_class cls, const char *fmt, ...) SX_PRINTF(3, 4);

/* As sx_fail, then appends ": <reason>" from OpenSSL's error queue (if any)
 * and clears the queue. */
int sx_fail_ssl(sx_err *err, sx_class cls, const char *fmt, ...) SX_PRINTF(3, 4);

/* As sx_fail, then appends ": <strerror(errnum)>". */
int sx_fail_errno(sx_err *err, sx_class cls, int errnum, const char *fmt, ...) SX_PRINTF(4, 5);

/* Prefixes the message of an already-failed err with context ("loading x: "). */
void sx_err_prefix(sx_err *err, const char *fmt, ...) SX_PRINTF(2, 3);

void sx_err_clear(sx_err *err);

/* Guard macros: the success path reads top to bottom, failures jump to the
 * function's single exit label `out`, which frees and wipes. */
#define SX_GUARD(expr)                                                                             \
	do {                                                                                       \
		if ((expr) < 0)                                                                    \
			goto out;                                                                  \
	} while (0)

#define SX_ENSURE(cond, err, cls, ...)                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			(void)sx_fail((err), (cls), __VA_ARGS__);                                  \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

#endif
