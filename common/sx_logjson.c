/* sx_log's JSON form: the logfmt line it builds, read back into its
 * key=value pairs and written again as one JSON object. The line's quoting
 * is sx_log_quote's (common/sx_esc.h): a value is either a bare word or a
 * double-quoted string in which \" \\ \n \r \t and \xHH are the only
 * escapes, so reading it back is exact. */
#include "common/sx_util.h"

#include <string.h>

typedef struct jout {
	char *o;
	size_t len, cap; /* cap excludes the room kept for the end */
} jout;

static bool jput(jout *j, const char *s, size_t n)
{
	if (j->len + n > j->cap)
		return false;
	memcpy(j->o + j->len, s, n);
	j->len += n;
	return true;
}

static bool jstr(jout *j, const char *s, size_t n)
{
	if (!jput(j, "\"", 1))
		return false;
	size_t room = j->cap - j->len;
	size_t need = sx_esc(j->o + j->len, room, s, n, SX_ESC_JSON);
	if (need >= room)
		return false;
	j->len += need;
	return jput(j, "\"", 1);
}

/* A bare value that reads as a JSON number of at most 15 digits (exact in
 * a double): -?(0|[1-9][0-9]*)(.[0-9]+)? */
static bool is_number(const char *s, size_t n)
{
	size_t i = 0, digits = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < n && s[i + 1] != '.'))
		return false;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < n && s[i] == '.') {
		if (++i >= n)
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	return i == n && digits <= 15;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The quoted value starting after its opening quote at *pp: its bytes
 * unescaped into raw (cap >= strlen(*pp)); *pp moves past the closing
 * quote (or to the end of a line cut inside the value). */
static size_t unquote(const char **pp, char *raw)
{
	const char *p = *pp;
	size_t n = 0;
	while (*p != '\0' && *p != '"') {
		if (*p != '\\' || p[1] == '\0') {
			raw[n++] = *p++;
			continue;
		}
		char e = p[1];
		int hi = e == 'x' ? hexval(p[2]) : -1, lo = hi >= 0 ? hexval(p[3]) : -1;
		if (hi >= 0 && lo >= 0) {
			raw[n++] = (char)(hi << 4 | lo);
			p += 4;
			continue;
		}
		if (e == 'n' || e == 'r' || e == 't' || e == '"' || e == '\\') {
			raw[n++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
		} else { /* not an escape of ours: both bytes as they are */
			raw[n++] = '\\';
			raw[n++] = e;
		}
		p += 2;
	}
	*pp = *p == '"' ? p + 1 : p;
	return n;
}

/* One pair at p (past any spaces): appended to j as "key":value. */
static bool pair(jout *j, const char **pp, char *raw, bool first)
{
	const char *p = *pp, *key = p;
	while (*p != '\0' && *p != '=' && *p != ' ')
		p++;
	size_t klen = (size_t)(p - key), vlen = 0;
	bool quoted = false, ok;
	const char *val = "";
	if (*p == '=') {
		p++;
		if (*p == '"') {
			p++;
			vlen = unquote(&p, raw);
			val = raw;
			quoted = true;
		} else {
			val = p;
			while (*p != '\0' && *p != ' ')
				p++;
			vlen = (size_t)(p - val);
		}
	}
	*pp = p;
	ok = (first || jput(j, ",", 1)) && jstr(j, key, klen) && jput(j, ":", 1);
	if (!quoted && is_number(val, vlen))
		return ok && jput(j, val, vlen);
	return ok && jstr(j, val, vlen);
}

size_t sx_log_json(const char *line, char *out, size_t cap)
{
	static const char cut[] = ",\"log_cut\":true";
	char raw[SX_LOG_LINE_MAX];
	if (cap < sizeof(cut) + 3) {
		if (cap > 0)
			out[0] = '\0';
		return 0;
	}
	jout j = {.o = out, .len = 0, .cap = cap - sizeof(cut) - 2};
	const char *p = line;
	bool first = true, whole = true;
	(void)jput(&j, "{", 1);
	while (*p != '\0') {
		if (*p == ' ') {
			p++;
			continue;
		}
		size_t at = j.len;
		/* a value longer than raw cannot come from a line sx_log made;
		 * the pair is dropped as one that does not fit */
		if (strlen(p) >= sizeof(raw) || !pair(&j, &p, raw, first)) {
			j.len = at;
			whole = false;
			break;
		}
		first = false;
	}
	j.cap = cap - 2;
	if (!whole)
		(void)jput(&j, first ? cut + 1 : cut, first ? sizeof(cut) - 2 : sizeof(cut) - 1);
	out[j.len++] = '}';
	out[j.len] = '\0';
	return j.len;
}
