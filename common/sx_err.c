#include "common/sx_err.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int vfail(sx_err *err, sx_class cls, const char *fmt, va_list ap)
{
	if (err == NULL || err->cls != SX_OK)
		return -1;
	err->cls = cls;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return -1;
}

static void append(sx_err *err, const char *tail)
{
	size_t n = strlen(err->msg);
	if (n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", tail);
}

int sx_fail(sx_err *err, sx_class cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, cls, fmt, ap);
	va_end(ap);
	return -1;
}

int sx_fail_ssl(sx_err *err, sx_class cls, const char *fmt, ...)
{
	int fresh = err != NULL && err->cls == SX_OK;
	va_list ap;
	va_start(ap, fmt);
	vfail(err, cls, fmt, ap);
	va_end(ap);
	unsigned long e = ERR_peek_last_error();
	if (fresh && e != 0) {
		const char *r = ERR_reason_error_string(e);
		char buf[256];
		if (r == NULL) {
			ERR_error_string_n(e, buf, sizeof(buf));
			r = buf;
		}
		append(err, r);
	}
	ERR_clear_error();
	return -1;
}

int sx_fail_errno(sx_err *err, sx_class cls, int errnum, const char *fmt, ...)
{
	int fresh = err != NULL && err->cls == SX_OK;
	va_list ap;
	va_start(ap, fmt);
	vfail(err, cls, fmt, ap);
	va_end(ap);
	if (fresh)
		append(err, strerror(errnum));
	return -1;
}

void sx_err_prefix(sx_err *err, const char *fmt, ...)
{
	char head[SX_ERR_MSG_MAX], old[SX_ERR_MSG_MAX];
	va_list ap;
	if (err == NULL || err->cls == SX_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	size_t h = strnlen(head, sizeof(err->msg) - 1);
	memcpy(err->msg, head, h);
	size_t rest = strnlen(old, sizeof(err->msg) - 1 - h);
	memcpy(err->msg + h, old, rest);
	err->msg[h + rest] = '\0';
}

void sx_err_clear(sx_err *err)
{
	err->cls = SX_OK;
	err->msg[0] = '\0';
}
