#include "common/sx_prom.h"

#include "common/sx_err.h"
#include "common/sx_esc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROM_MAX (64u << 20) /* an exposition never grows past this */

void sx_prom_init(sx_prom *p)
{
	memset(p, 0, sizeof(*p));
}

void sx_prom_free(sx_prom *p)
{
	free(p->buf);
	memset(p, 0, sizeof(*p));
}

static bool room(sx_prom *p, size_t more)
{
	if (p->oom)
		return false;
	if (p->len + more + 1 <= p->cap)
		return true;
	size_t cap = p->cap ? p->cap : 4096;
	while (cap < p->len + more + 1 && cap <= PROM_MAX)
		cap *= 2;
	char *nb = cap <= PROM_MAX ? realloc(p->buf, cap) : NULL;
	if (nb == NULL) {
		p->oom = true;
		return false;
	}
	p->buf = nb;
	p->cap = cap;
	return true;
}

static void put(sx_prom *p, const char *s, size_t n)
{
	if (!room(p, n))
		return;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void puts_(sx_prom *p, const char *s)
{
	put(p, s, strlen(s));
}

static void putf(sx_prom *p, const char *fmt, ...) SX_PRINTF(2, 3);
static void putf(sx_prom *p, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(p, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* One unit of a label value: the format's own escapes for \, " and a
 * newline; the text \\xHH (or \\r, \\t) for what it cannot carry raw. */
static size_t esc_unit(const uint8_t *s, size_t n, char out[SX_ESC_UNIT_MAX + 1], size_t *olen)
{
	char u[SX_ESC_UNIT_MAX];
	size_t ul = 0, took = sx_esc_unit(s, n, SX_ESC_LOG, u, &ul);
	if (u[0] != '\\' || (ul == 2 && (u[1] == '\\' || u[1] == '"' || u[1] == 'n'))) {
		memcpy(out, u, ul);
		*olen = ul;
		return took;
	}
	out[0] = '\\'; /* \r, \t, \xHH: the backslash itself escaped */
	memcpy(out + 1, u, ul);
	*olen = ul + 1;
	return took;
}

size_t sx_prom_escape(char *buf, size_t cap, const char *s)
{
	const uint8_t *p = (const uint8_t *)(s ? s : "");
	size_t n = strlen((const char *)p), used = 0, total = 0;
	bool cut = false;
	while (n > 0) {
		char u[SX_ESC_UNIT_MAX + 1];
		size_t ul = 0, took = esc_unit(p, n, u, &ul);
		if (!cut && used + ul < cap) {
			memcpy(buf + used, u, ul);
			used += ul;
		} else {
			cut = true;
		}
		total += ul;
		p += took;
		n -= took;
	}
	if (cap > 0)
		buf[used] = '\0';
	return total;
}

static void put_value_esc(sx_prom *p, const char *s)
{
	const uint8_t *q = (const uint8_t *)(s ? s : "");
	size_t n = strlen((const char *)q);
	while (n > 0) {
		char u[SX_ESC_UNIT_MAX + 1];
		size_t ul = 0, took = esc_unit(q, n, u, &ul);
		put(p, u, ul);
		q += took;
		n -= took;
	}
}

void sx_prom_family(sx_prom *p, const char *name, const char *type, const char *help)
{
	puts_(p, "# HELP ");
	puts_(p, name);
	put(p, " ", 1);
	for (const char *h = help; *h != '\0'; h++) {
		if (*h == '\\')
			puts_(p, "\\\\");
		else if (*h == '\n')
			puts_(p, "\\n");
		else
			put(p, h, 1);
	}
	puts_(p, "\n# TYPE ");
	puts_(p, name);
	put(p, " ", 1);
	puts_(p, type);
	put(p, "\n", 1);
}

/* name{a="x",b="y"  (the brace left open when more follows) */
static void series(sx_prom *p, const char *name, const char *suffix, const sx_prom_label *l,
		   size_t n, const char *le)
{
	puts_(p, name);
	puts_(p, suffix);
	if (n == 0 && le == NULL)
		return;
	put(p, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			put(p, ",", 1);
		puts_(p, l[i].name);
		puts_(p, "=\"");
		put_value_esc(p, l[i].value);
		put(p, "\"", 1);
	}
	if (le != NULL) {
		puts_(p, n > 0 ? ",le=\"" : "le=\"");
		puts_(p, le);
		put(p, "\"", 1);
	}
	put(p, "}", 1);
}

static void fmt_f64(char *out, size_t cap, double v)
{
	if (isnan(v))
		snprintf(out, cap, "NaN");
	else if (isinf(v))
		snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
	else {
		/* the shortest of %.15g .. %.17g that reads back as v */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(out, cap, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
}

void sx_prom_u64(sx_prom *p, const char *name, const sx_prom_label *l, size_t n, uint64_t v)
{
	series(p, name, "", l, n, NULL);
	putf(p, " %llu\n", (unsigned long long)v);
}

void sx_prom_f64(sx_prom *p, const char *name, const sx_prom_label *l, size_t n, double v)
{
	char num[40];
	fmt_f64(num, sizeof(num), v);
	series(p, name, "", l, n, NULL);
	put(p, " ", 1);
	puts_(p, num);
	put(p, "\n", 1);
}

void sx_prom_hist(sx_prom *p, const char *name, const sx_prom_label *l, size_t n,
		  const double *bounds, const uint64_t *counts, size_t nb, double sum)
{
	uint64_t cum = 0;
	char le[40], num[40];
	for (size_t i = 0; i <= nb; i++) {
		cum += counts[i];
		if (i < nb)
			fmt_f64(le, sizeof(le), bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		series(p, name, "_bucket", l, n, le);
		putf(p, " %llu\n", (unsigned long long)cum);
	}
	fmt_f64(num, sizeof(num), sum);
	series(p, name, "_sum", l, n, NULL);
	put(p, " ", 1);
	puts_(p, num);
	put(p, "\n", 1);
	series(p, name, "_count", l, n, NULL);
	putf(p, " %llu\n", (unsigned long long)cum);
}
