/* engine/sign/text: the armored text format shared by .sxsig files and
 * receipts: a BEGIN line, "key: value" lines in a fixed order, an END line
 * (docs/SIGNATURES.md sections 5 and 7). A growable buffer for writing,
 * strict readers over the bounded cursor of engine/wire for reading. Pure. */
#include "engine/sign/sign_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "common/sx_util.h"

void sx_tb_add(sx_tbuf *t, const char *s, size_t n)
{
	size_t need;
	if (t->fail)
		return;
	if (!sx_add_ok(t->len, n, &need) || !sx_add_ok(need, 1, &need)) {
		t->fail = true;
		return;
	}
	if (need > t->cap) {
		/* Past t->max, or out of memory: the sticky failure, which the
		 * encoder reports with its cap (the text is dropped as a whole). */
		sx_err ignore = {0};
		if (sx_grow(&t->p, &t->cap, need, 1, t->max, "bytes of text", &ignore) < 0) {
			t->fail = true;
			return;
		}
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

void sx_tb_printf(sx_tbuf *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		t->fail = true;
	else
		sx_tb_add(t, buf, (size_t)n);
}

void sx_tb_hex(sx_tbuf *t, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char two[2];
	for (size_t i = 0; i < n; i++) {
		two[0] = digits[b[i] >> 4];
		two[1] = digits[b[i] & 15];
		sx_tb_add(t, two, 2);
	}
}

void sx_tb_b64(sx_tbuf *t, const uint8_t *b, size_t n)
{
	unsigned char out[4 * ((SX_SIG_MAX + 2) / 3) + 1];
	if (n > SX_SIG_MAX) {
		t->fail = true;
		return;
	}
	int m = EVP_EncodeBlock(out, b, (int)n);
	sx_tb_add(t, (const char *)out, (size_t)m);
}

/* RFC 3986 section 2.3 unreserved characters, and '/', stay as they are;
 * every other byte is %XX with upper-case hex (section 2.1). One spelling per
 * path, so the text form is canonical. */
static bool pct_plain(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
}

void sx_tb_pct(sx_tbuf *t, const char *s)
{
	static const char digits[] = "0123456789ABCDEF";
	for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
		if (pct_plain(*p)) {
			sx_tb_add(t, (const char *)p, 1);
		} else {
			char e[3] = {'%', digits[*p >> 4], digits[*p & 15]};
			sx_tb_add(t, e, 3);
		}
	}
}

void sx_tb_time(sx_tbuf *t, int64_t v)
{
	char buf[40];
	sx_time_format((time_t)v, buf, sizeof(buf));
	sx_tb_add(t, buf, strlen(buf));
}

/* Reading: every line and every field goes through the bounded cursor of
 * engine/wire, the one the wire messages are read with. Every line ends with
 * LF; a CR or a NUL anywhere is refused (docs/SIGNATURES.md: the encoding is
 * exact, so encode(decode(x)) == x). */
#define LINE_MAX_LEN 16384

const char *sx_line_err_text(int e)
{
	switch (e) {
	case LINE_TOO_LONG: return "a line longer than 16384 bytes";
	case LINE_CR: return "a CR (line ends are LF only)";
	case LINE_NUL: return "a NUL byte";
	default: return "the text is truncated";
	}
}

/* The next line, without its LF, as a cursor of its own. */
int sx_next_line(sx_cur *c, sx_cur *l)
{
	sx_cur t = *c;
	size_t left = sx_cur_left(c), scan = left > LINE_MAX_LEN ? LINE_MAX_LEN + 1 : left;
	const uint8_t *p, *nl;
	uint8_t lf;
	if (sx_cur_bytes(&t, scan, &p) < 0)
		return LINE_TRUNCATED;
	nl = memchr(p, '\n', scan);
	size_t n = nl ? (size_t)(nl - p) : scan;
	if (memchr(p, '\r', n) != NULL)
		return LINE_CR;
	if (memchr(p, '\0', n) != NULL)
		return LINE_NUL;
	if (nl == NULL)
		return scan > LINE_MAX_LEN ? LINE_TOO_LONG : LINE_TRUNCATED;
	if (sx_cur_bytes(c, n, &p) < 0 || sx_cur_u8(c, &lf) < 0)
		return LINE_TRUNCATED;
	*l = sx_cur_make(p, n);
	return 0;
}

/* What is left in a cursor, not consumed: its length, and the bytes at *p. */
static size_t cur_view(const sx_cur *c, const uint8_t **p)
{
	sx_cur t = *c;
	size_t n = sx_cur_left(c);
	*p = NULL;
	return sx_cur_bytes(&t, n, p) == 0 ? n : 0;
}

/* The whole of a cursor is exactly s. */
bool sx_text_is(const sx_cur *c, const char *s)
{
	const uint8_t *p;
	size_t n = cur_view(c, &p);
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* At most 64 bytes of what is left, for an error message. */
static int cur_show(const sx_cur *c, const char **s)
{
	const uint8_t *p;
	size_t n = cur_view(c, &p);
	*s = (const char *)p;
	return (int)(n > 64 ? 64 : n);
}

/* The next byte without consuming it; -1 at the end. */
int sx_text_peek(const sx_cur *c)
{
	sx_cur t = *c;
	uint8_t b;
	return sx_cur_u8(&t, &b) < 0 ? -1 : b;
}

/* Consumes ch when it is the next byte. */
bool sx_text_skip(sx_cur *c, uint8_t ch)
{
	uint8_t b;
	return sx_text_peek(c) == ch && sx_cur_u8(c, &b) == 0;
}

/* Consumes the bytes before the next `stop` (or the end) and gives them as a
 * cursor of their own; `stop` stays. */
static sx_cur cur_until(sx_cur *c, uint8_t stop)
{
	const uint8_t *p, *hit;
	size_t left = cur_view(c, &p);
	hit = left ? memchr(p, stop, left) : NULL;
	size_t n = hit ? (size_t)(hit - p) : left;
	if (sx_cur_bytes(c, n, &p) < 0)
		return sx_cur_make(p, 0);
	return sx_cur_make(p, n);
}

/* The rest of a cursor, consumed; *n bytes at *p. */
void sx_text_rest(sx_cur *c, const uint8_t **p, size_t *n)
{
	*n = sx_cur_left(c);
	if (sx_cur_bytes(c, *n, p) < 0)
		*n = 0;
}

static int key_index(const sx_kv_reader *r, const sx_cur *k)
{
	for (size_t i = 0; i < r->nkeys; i++)
		if (sx_text_is(k, r->keys[i]))
			return (int)i;
	return -1;
}

int sx_kv_find(const sx_kv_reader *r, const char *key)
{
	sx_cur k = sx_cur_make((const uint8_t *)key, strlen(key));
	return key_index(r, &k);
}

/* Reads the line for `key` (which must be the one expected here); *val is
 * the value: at least one byte, not starting with a space. */
int sx_kv_take(sx_kv_reader *r, const char *key, sx_cur *val)
{
	sx_cur l, k;
	int e = sx_next_line(&r->cur, &l);
	if (e == LINE_TRUNCATED)
		return sx_fail(r->err, SX_E_INTEGRITY, "missing field '%s' (text truncated)", key);
	if (e < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': %s", key, sx_line_err_text(e));
	if (sx_text_is(&l, r->end_marker))
		return sx_fail(r->err, SX_E_INTEGRITY, "missing field '%s'", key);
	k = cur_until(&l, ':');
	if (!sx_text_skip(&l, ':'))
		return sx_fail(r->err, SX_E_INTEGRITY, "malformed line where field '%s' belongs",
			       key);
	if (!sx_text_is(&k, key)) {
		int idx = key_index(r, &k);
		const char *ks;
		int kn = cur_show(&k, &ks);
		if (idx < 0)
			return sx_fail(r->err, SX_E_INTEGRITY, "unknown field '%.*s'", kn, ks);
		if ((size_t)idx < r->next)
			return sx_fail(r->err, SX_E_INTEGRITY, "field '%s' repeated", r->keys[idx]);
		return sx_fail(r->err, SX_E_INTEGRITY, "missing field '%s' (found '%s')", key,
			       r->keys[idx]);
	}
	r->next = (size_t)sx_kv_find(r, key) + 1;
	if (!sx_text_skip(&l, ' ') || sx_cur_left(&l) == 0 || sx_text_peek(&l) == ' ')
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': expected 'key: value'", key);
	*val = l;
	return 0;
}

/* Canonical unsigned decimal (no sign, no leading zero, within max): the
 * run of digits at the cursor, consumed. */
int sx_text_dec(sx_cur *c, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;
	uint8_t d;
	int first = sx_text_peek(c);
	while (sx_text_peek(c) >= '0' && sx_text_peek(c) <= '9') {
		if (sx_cur_u8(c, &d) < 0 || (n > 0 && first == '0'))
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(d - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(d - '0');
		n++;
	}
	if (n == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

int sx_kv_dec(sx_kv_reader *r, const char *key, uint64_t max, uint64_t *out)
{
	sx_cur v;
	if (sx_kv_take(r, key, &v) < 0)
		return -1;
	if (sx_text_dec(&v, max, out) < 0 || sx_cur_end(&v) < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not a number in range", key);
	return 0;
}

/* 2*outlen lower-case hex digits (one spelling), consumed. */
int sx_text_hex(sx_cur *c, uint8_t *out, size_t outlen)
{
	const uint8_t *s;
	if (sx_cur_bytes(c, 2 * outlen, &s) < 0)
		return -1;
	for (size_t i = 0; i < 2 * outlen; i++) {
		int d;
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(d << 4);
		else
			out[i / 2] |= (uint8_t)d;
	}
	return 0;
}

int sx_kv_hex(sx_kv_reader *r, const char *key, uint8_t *out, size_t outlen)
{
	sx_cur v;
	if (sx_kv_take(r, key, &v) < 0)
		return -1;
	if (sx_text_hex(&v, out, outlen) < 0 || sx_cur_end(&v) < 0)
		return sx_fail(r->err, SX_E_INTEGRITY,
			       "field '%s': expected %zu lower-case hex digits", key, 2 * outlen);
	return 0;
}

int sx_kv_time(sx_kv_reader *r, const char *key, int64_t *out)
{
	char v[40], back[40];
	const uint8_t *p;
	size_t n;
	sx_cur c;
	time_t t;
	if (sx_kv_take(r, key, &c) < 0)
		return -1;
	sx_text_rest(&c, &p, &n);
	if (n >= sizeof(v))
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not a UTC time", key);
	memcpy(v, p, n);
	v[n] = '\0';
	/* RFC 3339 section 5.6 in UTC, seconds only: re-formatting must give
	 * the same text, so only the canonical spelling is accepted. */
	if (sx_time_parse(v, &t) < 0 || t < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not a UTC time", key);
	sx_time_format(t, back, sizeof(back));
	if (strcmp(v, back) != 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': expected YYYY-MM-DDTHH:MM:SSZ",
			       key);
	*out = (int64_t)t;
	return 0;
}

int sx_kv_fixed(sx_kv_reader *r, const char *key, const char *want)
{
	sx_cur v;
	if (sx_kv_take(r, key, &v) < 0)
		return -1;
	if (!sx_text_is(&v, want)) {
		const char *vs;
		int vn = cur_show(&v, &vs);
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': unsupported value '%.*s'", key,
			       vn, vs);
	}
	return 0;
}

static int hexval(int x)
{
	if (x >= '0' && x <= '9')
		return x - '0';
	if (x >= 'A' && x <= 'F')
		return x - 'A' + 10;
	return -1; /* lower case is not the canonical spelling */
}

/* The rest of v, percent-decoded (RFC 3986 section 2.1) into out (cap
 * bytes, NUL-terminated) and checked with sx_path_check. */
int sx_pct_decode(sx_cur *v, char *out, size_t cap, sx_err *err, const char *key)
{
	size_t o = 0;
	sx_err e = {0};
	uint8_t c;
	const uint8_t *x;
	while (sx_cur_u8(v, &c) == 0) {
		if (c == '%') {
			int hi = -1, lo = -1;
			if (sx_cur_bytes(v, 2, &x) == 0) {
				hi = hexval(x[0]);
				lo = hexval(x[1]);
			}
			if (hi < 0 || lo < 0 || pct_plain((uint8_t)(hi << 4 | lo)))
				return sx_fail(err, SX_E_INTEGRITY,
					       "field '%s': bad or non-canonical %%-escape", key);
			c = (uint8_t)(hi << 4 | lo);
		} else if (!pct_plain(c)) {
			return sx_fail(err, SX_E_INTEGRITY,
				       "field '%s': character 0x%02x must be %%-escaped", key, c);
		}
		if (o + 1 >= cap)
			return sx_fail(err, SX_E_INTEGRITY, "field '%s': path too long", key);
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (sx_path_check((const uint8_t *)out, o, &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "field '%s': %s", key, e.msg);
	return 0;
}

int sx_kv_path(sx_kv_reader *r, const char *key, char *out, size_t cap)
{
	sx_cur v;
	if (sx_kv_take(r, key, &v) < 0)
		return -1;
	return sx_pct_decode(&v, out, cap, r->err, key);
}

int sx_kv_alg(sx_kv_reader *r, const char *key, sx_sigalg *out)
{
	sx_cur v;
	if (sx_kv_take(r, key, &v) < 0)
		return -1;
	for (unsigned a = SX_SIGALG_ECDSA_SHA256; a < SX_SIGALG_COUNT; a++)
		if (sx_text_is(&v, sx_sigalg_name((sx_sigalg)a))) {
			*out = (sx_sigalg)a;
			return 0;
		}
	const char *vs;
	int vn = cur_show(&v, &vs);
	return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': unknown algorithm '%.*s'", key, vn, vs);
}

#define B64_SIG_MAX (4 * ((SX_SIG_MAX + 2) / 3))

/* Strict base64 (RFC 4648 section 4): the value must be exactly what
 * encoding the decoded bytes gives back. */
int sx_kv_b64(sx_kv_reader *r, const char *key, uint8_t *out, size_t cap, size_t *len)
{
	unsigned char dec[B64_SIG_MAX], back[B64_SIG_MAX + 1];
	const uint8_t *v;
	size_t n, pad;
	sx_cur c;
	if (sx_kv_take(r, key, &c) < 0)
		return -1;
	sx_text_rest(&c, &v, &n);
	if (n > B64_SIG_MAX)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': too long", key);
	if (n == 0 || n % 4 != 0)
		goto bad;
	pad = (v[n - 1] == '=') + (v[n - 2] == '=');
	int m = EVP_DecodeBlock(dec, v, (int)n);
	if (m < 0 || (size_t)m < pad)
		goto bad;
	m -= (int)pad;
	if ((size_t)m > cap)
		return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': too long", key);
	if (EVP_EncodeBlock(back, dec, m) != (int)n || memcmp(back, v, n) != 0)
		goto bad;
	memcpy(out, dec, (size_t)m);
	*len = (size_t)m;
	return 0;
bad:
	ERR_clear_error();
	return sx_fail(r->err, SX_E_INTEGRITY, "field '%s': not canonical base64", key);
}

int sx_kv_begin(sx_cur *c, const char *marker, const char *what, sx_err *err)
{
	sx_cur l;
	int e = sx_next_line(c, &l);
	if (e < 0 && e != LINE_TRUNCATED)
		return sx_fail(err, SX_E_INTEGRITY, "not %s: its first line holds %s", what,
			       sx_line_err_text(e));
	if (e < 0 || !sx_text_is(&l, marker))
		return sx_fail(err, SX_E_INTEGRITY, "not %s: the first line must be '%s'", what,
			       marker);
	return 0;
}

int sx_kv_end(sx_kv_reader *r, const char *what)
{
	sx_cur l, k;
	int e = sx_next_line(&r->cur, &l);
	if (e < 0 && e != LINE_TRUNCATED)
		return sx_fail(r->err, SX_E_INTEGRITY, "%s: %s", what, sx_line_err_text(e));
	if (e == 0 && sx_text_is(&l, r->end_marker))
		return 0;
	if (e == 0) {
		k = cur_until(&l, ':');
		if (sx_text_skip(&l, ':')) {
			int idx = key_index(r, &k);
			const char *ks;
			int kn = cur_show(&k, &ks);
			if (idx >= 0)
				return sx_fail(r->err, SX_E_INTEGRITY, "field '%s' repeated",
					       r->keys[idx]);
			return sx_fail(r->err, SX_E_INTEGRITY, "unknown field '%.*s'", kn, ks);
		}
	}
	return sx_fail(r->err, SX_E_INTEGRITY, "%s: missing '%s'", what, r->end_marker);
}
