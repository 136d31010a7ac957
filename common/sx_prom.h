/* The Prometheus text exposition format, version 0.0.4: a growable buffer
 * of metric families (# HELP, # TYPE) and their samples, for a scrape.
 *
 * Label values are UTF-8 with \\, \" and \n escaped as the format says;
 * any other control byte, DEL, C1 control or byte that is not well-formed
 * UTF-8 is written as the text \\xHH (a backslash, escaped, then xHH), so
 * any bytes give a valid exposition (common/sx_esc.h decides what a byte
 * is). Values print as integers (counters) or as the shortest decimal that
 * reads back the same (gauges, sums); NaN and the infinities as NaN, +Inf
 * and -Inf. Out of memory, the buffer stops growing and oom is set: the
 * caller answers with an error rather than a cut exposition. */
#ifndef SX_PROM_H
#define SX_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_prom {
	char *buf; /* NUL terminated */
	size_t len, cap;
	bool oom;
} sx_prom;

typedef struct sx_prom_label {
	const char *name; /* [a-zA-Z_][a-zA-Z0-9_]*, not checked */
	const char *value;
} sx_prom_label;

void sx_prom_init(sx_prom *p);
void sx_prom_free(sx_prom *p);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void sx_prom_family(sx_prom *p, const char *name, const char *type, const char *help);

/* One sample: name{labels} value. */
void sx_prom_u64(sx_prom *p, const char *name, const sx_prom_label *l, size_t n, uint64_t v);
void sx_prom_f64(sx_prom *p, const char *name, const sx_prom_label *l, size_t n, double v);

/* A histogram's samples: name_bucket{labels,le="bound"} with cumulative
 * counts for each of the nb upper bounds (ascending), then le="+Inf",
 * name_sum and name_count. counts has nb + 1 entries, per bucket (not
 * cumulative): counts[i] observations in (bounds[i-1], bounds[i]], and
 * counts[nb] those above the last bound. */
void sx_prom_hist(sx_prom *p, const char *name, const sx_prom_label *l, size_t n,
		  const double *bounds, const uint64_t *counts, size_t nb, double sum);

/* The escaped form of a label value into buf (cap >= 1), NUL terminated,
 * cut between whole escapes; returns the whole escaped length. */
size_t sx_prom_escape(char *buf, size_t cap, const char *s);

#endif
