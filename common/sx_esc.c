#include "common/sx_esc.h"

#include <stdbool.h>
#include <string.h>

/* Length of the well-formed UTF-8 character at s[0, n) (RFC 3629 section
 * 4, the table of well-formed byte sequences), or 0 when s[0] does not
 * start one. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
	uint8_t b = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef)
		len = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		len = 4;
	else
		return 0; /* continuation byte, overlong lead C0/C1, F5-FF */
	if (b == 0xe0)
		lo = 0xa0; /* overlong */
	else if (b == 0xed)
		hi = 0x9f; /* surrogates */
	else if (b == 0xf0)
		lo = 0x90; /* overlong */
	else if (b == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

static const char hex[] = "0123456789abcdef";

static size_t put_u(char *out, unsigned v)
{
	out[0] = '\\';
	out[1] = 'u';
	out[2] = hex[(v >> 12) & 0xf];
	out[3] = hex[(v >> 8) & 0xf];
	out[4] = hex[(v >> 4) & 0xf];
	out[5] = hex[v & 0xf];
	return 6;
}

static size_t put_x(char *out, uint8_t b)
{
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[b >> 4];
	out[3] = hex[b & 0xf];
	return 4;
}

size_t sx_esc_unit(const uint8_t *s, size_t n, unsigned how, char out[SX_ESC_UNIT_MAX],
		   size_t *outlen)
{
	bool json = (how & SX_ESC_JSON) != 0;
	uint8_t b = s[0];
	size_t len = utf8_len(s, n);
	char named = 0;
	switch (b) {
	case '\n': named = 'n'; break;
	case '\r': named = 'r'; break;
	case '\t': named = 't'; break;
	case '\b': named = json ? 'b' : 0; break;
	case '\f': named = json ? 'f' : 0; break;
	case '"': named = json || (how & SX_ESC_QUOTE) ? '"' : 0; break;
	case '\\': named = json || (how & SX_ESC_BSLASH) ? '\\' : 0; break;
	default: break;
	}
	if (named) {
		out[0] = '\\';
		out[1] = named;
		*outlen = 2;
		return 1;
	}
	if (len == 1 && b >= 0x20 && b != 0x7f) {
		out[0] = (char)b;
		*outlen = 1;
		return 1;
	}
	if (len == 0) { /* not well-formed UTF-8: this byte alone */
		*outlen = json ? put_u(out, 0xfffd) : put_x(out, b);
		return 1;
	}
	if (len == 1 || (len == 2 && b == 0xc2 && s[1] <= 0x9f)) {
		/* C0, DEL, C1. A C1 control in the log and terminal forms is
		 * its two bytes escaped one by one: this one now, and the next
		 * one as the stray continuation byte it then is. */
		if (json) {
			*outlen = put_u(out, len == 1 ? b : s[1]);
			return len;
		}
		*outlen = put_x(out, b);
		return 1;
	}
	memcpy(out, s, len);
	*outlen = len;
	return len;
}

size_t sx_esc(char *dst, size_t cap, const char *s, size_t n, unsigned how)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t used = 0, total = 0;
	bool cut = false;
	if (s == NULL)
		n = 0;
	else if (n == SX_ESC_CSTR)
		n = strlen(s);
	while (n > 0) {
		char unit[SX_ESC_UNIT_MAX];
		size_t ulen = 0, took = sx_esc_unit(p, n, how, unit, &ulen);
		if (!cut && used + ulen < cap) {
			memcpy(dst + used, unit, ulen);
			used += ulen;
		} else {
			cut = true;
		}
		total += ulen;
		p += took;
		n -= took;
	}
	if (cap > 0)
		dst[used] = '\0';
	return total;
}

/* prefix, escaped s, suffix; "..." before the suffix when s is cut. */
static const char *wrap(char *buf, size_t cap, const char *s, size_t n, unsigned how,
			const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	if (cap < pl + sl + 4) {
		if (cap > 0)
			buf[0] = '\0';
		return buf;
	}
	memcpy(buf, prefix, pl);
	size_t room = cap - pl - sl; /* escaped text and its NUL */
	bool cut = sx_esc(buf + pl, room, s, n, how) >= room;
	if (cut) /* again with room for "...": whole escapes only */
		(void)sx_esc(buf + pl, room - 3, s, n, how);
	size_t used = strlen(buf + pl);
	if (cut) {
		memcpy(buf + pl + used, "...", 3);
		used += 3;
	}
	memcpy(buf + pl + used, suffix, sl + 1);
	return buf;
}

const char *sx_log_quote(char *buf, size_t cap, const char *s, size_t n)
{
	return wrap(buf, cap, s, n, SX_ESC_LOG, "\"", "\"");
}

const char *sx_text(char *buf, size_t cap, const char *s, size_t n)
{
	return wrap(buf, cap, s, n, SX_ESC_TEXT, "", "");
}

static bool token_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("._:/@+-[]%", c) != NULL;
}

const char *sx_log_token(char *buf, size_t cap, const char *s, size_t n)
{
	size_t len = s == NULL ? 0 : n == SX_ESC_CSTR ? strlen(s) : n;
	bool word = len > 0 && len < cap;
	for (size_t i = 0; word && i < len; i++)
		word = s[i] != '\0' && token_byte(s[i]);
	if (!word)
		return sx_log_quote(buf, cap, s, len);
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}
