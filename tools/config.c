/* tools/: configuration files (config.h). */
#include "tools/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sx_util.h"

#define FILE_ARGS_MAX 4096 /* options one file may give */

static bool in_list(const char *const *list, const char *s, size_t n)
{
	for (; list != NULL && *list != NULL; list++)
		if (strlen(*list) == n && strncmp(*list, s, n) == 0)
			return true;
	return false;
}

static const struct option *find_opt(const struct option *opts, const char *name, size_t n)
{
	for (; opts->name != NULL; opts++)
		if (strlen(opts->name) == n && strncmp(opts->name, name, n) == 0)
			return opts;
	return NULL;
}

/* ---- the command line's --config and --no-config -------------------------- */

static int find_config(const sx_conf_spec *spec, int argc, char **argv, const char **path,
		       bool *none, sx_err *err)
{
	char **copy = calloc((size_t)argc + 1, sizeof(char *));
	char shorts[64];
	int c;
	if (copy == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memcpy(copy, argv, (size_t)argc * sizeof(char *));
	snprintf(shorts, sizeof(shorts), ":%s", spec->shortopts ? spec->shortopts : "");
	*path = NULL;
	*none = false;
	optind = 0; /* a full reset of GNU getopt */
	opterr = 0;
	while ((c = getopt_long(argc, copy, shorts, spec->opts, NULL)) != -1) {
		if (c == SX_OPT_CONFIG && strcmp(optarg, "none") == 0)
			*none = true;
		else if (c == SX_OPT_CONFIG)
			*path = optarg;
		else if (c == SX_OPT_NO_CONFIG)
			*none = true;
	}
	free(copy);
	optind = 0;
	if (*none && *path != NULL)
		return sx_fail(err, SX_E_USAGE, "--config FILE and --no-config exclude each other");
	return 0;
}

/* ---- the file ---------------------------------------------------------------- */

typedef struct fline {
	const char *path;
	int no;
	char *key, *val; /* NUL-terminated in place */
} fline;

static int line_fail(const fline *l, sx_err *err, const char *fmt, ...) SX_PRINTF(3, 4);
static int line_fail(const fline *l, sx_err *err, const char *fmt, ...)
{
	char msg[SX_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sx_fail(err, SX_E_USAGE, "%s:%d: %s", l->path, l->no, msg);
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return s;
}

/* Splits one line into key and value. 1: a blank or comment line. */
static int split_line(char *s, fline *l, sx_err *err)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return 1;
	char *eq = strchr(s, '=');
	if (eq == NULL)
		return line_fail(l, err, "expected 'key = value'");
	l->key = trim(s, eq);
	if (*l->key == '\0')
		return line_fail(l, err, "a key is missing before '='");
	char *v = eq + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v == '"') {
		char *q = strchr(v + 1, '"');
		if (q == NULL)
			return line_fail(l, err, "%s: the quote is not closed", l->key);
		char *rest = q + 1;
		while (*rest == ' ' || *rest == '\t')
			rest++;
		if (*rest != '\0' && *rest != '#')
			return line_fail(l, err, "%s: text after the closing quote", l->key);
		*q = '\0';
		l->val = v + 1;
		return 0;
	}
	char *end = v;
	while (*end != '\0' && !(*end == '#' && (end == v || end[-1] == ' ' || end[-1] == '\t')))
		end++;
	l->val = trim(v, end);
	return 0;
}

/* The option one line gives: *arg is malloc'd, or NULL for `key = false`. */
static int line_arg(const sx_conf_spec *spec, const fline *l, char **arg, sx_err *err)
{
	size_t kn = strlen(l->key);
	const struct option *o = find_opt(spec->opts, l->key, kn);
	const char *dot = strchr(l->key, '.');
	int n = -1;
	*arg = NULL;
	if (o != NULL && (o->val == SX_OPT_CONFIG || o->val == SX_OPT_NO_CONFIG ||
			  strcmp(o->name, "help") == 0 || in_list(spec->deny, l->key, kn)))
		return line_fail(l, err, "'%s' cannot be set in a configuration file", l->key);
	if (o == NULL && dot != NULL && dot[1] != '\0' &&
	    in_list(spec->dotted, l->key, (size_t)(dot - l->key)))
		n = asprintf(arg, "--%.*s=%s=%s", (int)(dot - l->key), l->key, dot + 1, l->val);
	else if (o == NULL)
		return line_fail(l, err, "unknown key '%s'", l->key);
	else if (o->has_arg == no_argument) {
		if (strcmp(l->val, "false") == 0)
			return 0;
		if (strcmp(l->val, "true") != 0)
			return line_fail(l, err, "%s: '%s' is not true or false", l->key, l->val);
		n = asprintf(arg, "--%s", o->name);
	} else if (*l->val == '\0' && o->has_arg == required_argument)
		return line_fail(l, err, "%s needs a value", l->key);
	else if (*l->val == '\0')
		n = asprintf(arg, "--%s", o->name);
	else
		n = asprintf(arg, "--%s=%s", o->name, l->val);
	if (n < 0) {
		*arg = NULL;
		return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	return 0;
}

/* Adds the options of the file's text to cf (argv[1..], lines). */
static int parse_text(const sx_conf_spec *spec, char *text, sx_conf *cf, sx_err *err)
{
	fline l = {.path = cf->path};
	size_t cap = 0, lcap = 0;
	char *p = text;
	while (*p != '\0') {
		char *nl = strchr(p, '\n');
		char *next = nl != NULL ? nl + 1 : p + strlen(p);
		if (nl != NULL)
			*nl = '\0';
		size_t n = strlen(p);
		if (n > 0 && p[n - 1] == '\r')
			p[--n] = '\0';
		l.no++;
		if (n > SX_CONF_LINE_MAX)
			return line_fail(&l, err, "a line longer than %d bytes", SX_CONF_LINE_MAX);
		int r = split_line(p, &l, err);
		char *arg = NULL;
		if (r < 0 || (r == 0 && line_arg(spec, &l, &arg, err) < 0))
			return -1;
		if (arg != NULL) {
			if (sx_grow(&cf->argv, &cap, (size_t)cf->nfile + 2, sizeof(char *),
				    FILE_ARGS_MAX, "options in a configuration file", err) < 0 ||
			    sx_grow(&cf->lines, &lcap, (size_t)cf->nfile + 1, sizeof(int),
				    FILE_ARGS_MAX, "options in a configuration file", err) < 0) {
				free(arg);
				return -1;
			}
			cf->argv[1 + cf->nfile] = arg;
			cf->lines[cf->nfile++] = l.no;
		}
		p = next;
	}
	return 0;
}

static int read_file(const sx_conf_spec *spec, sx_conf *cf, sx_err *err)
{
	uint8_t *data = NULL;
	size_t len = 0;
	sx_err e = {0};
	if (sx_file_read(cf->path, SX_CONF_FILE_MAX, &data, &len, &e) < 0)
		return sx_fail(err, SX_E_USAGE, "configuration: %s", e.msg);
	int rc = -1;
	if (strlen((char *)data) != len)
		sx_fail(err, SX_E_USAGE, "%s: a NUL byte: not a configuration file", cf->path);
	else
		rc = parse_text(spec, (char *)data, cf, err);
	free(data);
	return rc;
}

int sx_conf_load(const sx_conf_spec *spec, int argc, char **argv, sx_conf *cf, sx_err *err)
{
	const char *path = NULL;
	bool none = false;
	memset(cf, 0, sizeof(*cf));
	SX_GUARD(find_config(spec, argc, argv, &path, &none, err));
	if (path == NULL && !none) {
		const char *env = spec->default_env ? getenv(spec->default_env) : NULL;
		const char *def = env != NULL && *env != '\0' ? env : spec->default_path;
		if (def != NULL && access(def, F_OK) == 0)
			path = def;
	}
	if (path != NULL) {
		SX_ENSURE(strlen(path) < sizeof(cf->path), err, SX_E_USAGE,
			  "--config: the path is too long");
		snprintf(cf->path, sizeof(cf->path), "%s", path);
		SX_GUARD(read_file(spec, cf, err));
	}
	/* argv[0], the file's options, the command line's arguments, NULL */
	char **all = realloc(cf->argv, ((size_t)cf->nfile + (size_t)argc + 1) * sizeof(char *));
	SX_ENSURE(all != NULL, err, SX_E_OTHER, "out of memory");
	cf->argv = all;
	all[0] = argv[0];
	for (int i = 1; i < argc; i++)
		all[cf->nfile + i] = argv[i];
	all[cf->nfile + argc] = NULL;
	cf->argc = cf->nfile + argc;
	return 0;
out:
	sx_conf_free(cf);
	return -1;
}

void sx_conf_free(sx_conf *cf)
{
	for (int i = 0; i < cf->nfile; i++)
		free(cf->argv[1 + i]);
	free(cf->argv);
	free(cf->lines);
	memset(cf, 0, sizeof(*cf));
}

const char *sx_conf_where(const sx_conf *cf, const char *arg, char *buf, size_t cap)
{
	for (int i = 0; arg != NULL && i < cf->nfile; i++)
		if (cf->argv[1 + i] == arg) {
			snprintf(buf, cap, "%s:%d", cf->path, cf->lines[i]);
			return buf;
		}
	return NULL;
}

int sx_conf_fail(const sx_conf *cf, const char *arg, sx_err *err, const char *fmt, ...)
{
	char msg[SX_ERR_MSG_MAX], where[4200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sx_conf_where(cf, arg, where, sizeof(where)) == NULL)
		return sx_fail(err, SX_E_USAGE, "%s", msg);
	return sx_fail(err, SX_E_USAGE, "%s: %s", where,
		       strncmp(msg, "--", 2) == 0 ? msg + 2 : msg);
}

/* ---- comparing two configurations ------------------------------------------ */

typedef struct kv {
	char *key, *val;
} kv;

typedef struct kvs {
	kv *v;
	size_t n, cap;
} kvs;

static void kvs_free(kvs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
}

static kv *kvs_find(const kvs *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return &l->v[i];
	return NULL;
}

/* key gets val: replacing the last one, or added after it (join). */
static int kvs_put(kvs *l, const char *key, size_t klen, const char *val, bool join, sx_err *err)
{
	char *k = strndup(key, klen), *v = NULL;
	kv *e = k != NULL ? kvs_find(l, k) : NULL;
	int n = 0;
	if (k == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	if (e != NULL && join)
		n = asprintf(&v, "%s, %s", e->val, val);
	else
		v = strdup(val);
	if (n < 0 || v == NULL) {
		free(k);
		return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	if (e != NULL) {
		free(k);
		free(e->val);
		e->val = v;
		return 0;
	}
	if (sx_grow(&l->v, &l->cap, l->n + 1, sizeof(kv), 1u << 20, "options", err) < 0) {
		free(k);
		free(v);
		return -1;
	}
	l->v[l->n++] = (kv){.key = k, .val = v};
	return 0;
}

/* What each option of cf ends up as. */
static int collect(const sx_conf_spec *spec, const char *const *repeat, const sx_conf *cf, kvs *out,
		   sx_err *err)
{
	char **copy = calloc((size_t)cf->argc + 1, sizeof(char *));
	char shorts[64], key[512];
	int c, li = -1, rc = 0;
	if (copy == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memcpy(copy, cf->argv, (size_t)cf->argc * sizeof(char *));
	snprintf(shorts, sizeof(shorts), ":%s", spec->shortopts ? spec->shortopts : "");
	optind = 0;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(cf->argc, copy, shorts, spec->opts, &li)) != -1) {
		if (c == '?' || c == ':' || li < 0 || c == SX_OPT_CONFIG || c == SX_OPT_NO_CONFIG) {
			li = -1;
			continue;
		}
		const struct option *o = &spec->opts[li];
		size_t on = strlen(o->name);
		const char *val = optarg != NULL ? optarg : "true";
		const char *eq = optarg != NULL ? strchr(optarg, '=') : NULL;
		li = -1;
		if (in_list(spec->dotted, o->name, on) && eq != NULL) {
			snprintf(key, sizeof(key), "%s.%.*s", o->name, (int)(eq - optarg), optarg);
			rc = kvs_put(out, key, strlen(key), eq + 1, false, err);
		} else {
			rc = kvs_put(out, o->name, on, val, in_list(repeat, o->name, on), err);
		}
	}
	free(copy);
	optind = 0;
	return rc;
}

int sx_conf_diff(const sx_conf_spec *spec, const char *const *repeat, const sx_conf *a,
		 const sx_conf *b, sx_conf_diff_fn fn, void *ctx, sx_err *err)
{
	kvs la = {0}, lb = {0};
	int rc = -1;
	SX_GUARD(collect(spec, repeat, a, &la, err));
	SX_GUARD(collect(spec, repeat, b, &lb, err));
	for (size_t i = 0; i < la.n; i++) {
		kv *o = kvs_find(&lb, la.v[i].key);
		if (o == NULL || strcmp(o->val, la.v[i].val) != 0)
			fn(ctx, la.v[i].key, la.v[i].val, o != NULL ? o->val : NULL);
	}
	for (size_t i = 0; i < lb.n; i++)
		if (kvs_find(&la, lb.v[i].key) == NULL)
			fn(ctx, lb.v[i].key, NULL, lb.v[i].val);
	rc = 0;
out:
	kvs_free(&la);
	kvs_free(&lb);
	return rc;
}
