/* tools/: sxfer serve's per-device limits from its options, and what a
 * SIGHUP does with its configuration (serve_opts.h, docs/OPERATIONS.md). */
#include <stdio.h>
#include <string.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"
#include "tools/serve_opts.h"

#define LIM_KEYS "max-conns-per-device, max-file-size, quota-per-day or quota-total"

/* A limit's value: 'none', a count (connections) or a size. */
static int lim_value(int which, const char *s, uint64_t *v)
{
	if (strcmp(s, "none") == 0) {
		*v = SX_LIM_NONE;
		return 0;
	}
	if (which == SX_LIM_CONNS)
		return sx_parse_u64(s, v) < 0 || *v == 0 || *v > 4096 ? -1 : 0;
	return sx_parse_size(s, v);
}

static const char *lim_expect(int which)
{
	return which == SX_LIM_CONNS ? "a number from 1 to 4096, or none"
				     : "a size such as 512M or 10G, or none";
}

static int lim_which(const char *key, size_t n)
{
	for (int i = 0; i < SX_LIM_N; i++)
		if (strlen(sx_lim_key(i)) == n && strncmp(sx_lim_key(i), key, n) == 0)
			return i;
	return -1;
}

/* --device NAME.KEY=VALUE (the file's device.NAME.KEY = VALUE): NAME is
 * all before the last '.' of what precedes the '=' (a name may hold dots). */
static int device_opt(const sx_conf *cf, const char *value, const char *arg, sx_limits_cfg *lim,
		      sx_err *err)
{
	const char *eq = strchr(value, '=');
	const char *dot = NULL;
	char name[256];
	uint64_t v;
	sx_err why = {0};
	for (const char *p = value; eq != NULL && p < eq; p++)
		if (*p == '.')
			dot = p;
	if (eq == NULL || dot == NULL || dot == value)
		return sx_conf_fail(cf, arg, err, "--device '%s': expected NAME.KEY=VALUE, KEY %s",
				    value, LIM_KEYS);
	int which = lim_which(dot + 1, (size_t)(eq - dot - 1));
	if (which < 0)
		return sx_conf_fail(cf, arg, err, "--device '%s': unknown limit '%.*s' (%s)", value,
				    (int)(eq - dot - 1), dot + 1, LIM_KEYS);
	if ((size_t)(dot - value) >= sizeof(name))
		return sx_conf_fail(cf, arg, err, "--device '%s': the name is too long", value);
	memcpy(name, value, (size_t)(dot - value));
	name[dot - value] = '\0';
	if (sx_name_check(name, &why) < 0)
		return sx_conf_fail(cf, arg, err, "--device '%s': %s", value, why.msg);
	if (lim_value(which, eq + 1, &v) < 0)
		return sx_conf_fail(cf, arg, err, "--device '%s': '%s' is not %s", value, eq + 1,
				    lim_expect(which));
	return sx_limits_cfg_set(lim, name, which, v, err);
}

int sx_serve_limit_opt(const sx_conf *cf, int code, const char *value, const char *arg,
		       sx_limits_cfg *lim, sx_err *err)
{
	uint64_t v;
	if (code == OPT_LIM_DEVICE)
		return device_opt(cf, value, arg, lim, err);
	int which = code - OPT_LIM_CONNS;
	if (lim_value(which, value, &v) < 0)
		return sx_conf_fail(cf, arg, err, "--%s: '%s' is not %s", sx_lim_key(which), value,
				    lim_expect(which));
	return sx_limits_cfg_set(lim, NULL, which, v, err);
}

/* ---- SIGHUP ---------------------------------------------------------------- */

static bool reloadable(const char *key)
{
	return strncmp(key, "device.", 7) == 0 || lim_which(key, strlen(key)) >= 0;
}

typedef struct changes {
	char buf[2048];
	size_t len;
} changes;

static void on_changed(void *ctx, const char *key, const char *was, const char *now)
{
	changes *ch = ctx;
	if (!reloadable(key) || ch->len >= sizeof(ch->buf) - 1)
		return;
	int n = snprintf(ch->buf + ch->len, sizeof(ch->buf) - ch->len, "%s%s %s -> %s",
			 ch->len > 0 ? ", " : "", key, was ? was : "(not set)",
			 now ? now : "(not set)");
	if (n > 0)
		ch->len += (size_t)n < sizeof(ch->buf) - ch->len ? (size_t)n
								 : sizeof(ch->buf) - 1 - ch->len;
}

static void on_restart(void *ctx, const char *key, const char *was, const char *now)
{
	(void)ctx;
	if (reloadable(key))
		return;
	sx_log("warn", "config_reload", "key=%s reason=%s running=%s file=%s", SX_LOGQ(key),
	       SX_LOGQ("needs a restart"), SX_LOGQ(was ? was : "(not set)"),
	       SX_LOGQ(now ? now : "(not set)"));
}

int sx_serve_reload(void *ctx, sx_limits_cfg *out)
{
	serve_reload *r = ctx;
	sx_conf cf;
	serve_opts o;
	changes ch = {0};
	sx_err err = {0};
	if (sx_conf_load(&sx_serve_spec, r->argc, r->argv, &cf, &err) < 0)
		goto refused;
	if (sx_serve_parse(&cf, &o, &err) < 0) {
		sx_conf_free(&cf);
		goto refused;
	}
	/* Against what runs: options that would need a restart; against the
	 * last limits taken: what changes now. */
	if (sx_conf_diff(&sx_serve_spec, NULL, r->start, &cf, on_restart, NULL, &err) < 0 ||
	    sx_conf_diff(&sx_serve_spec, NULL, r->have_last ? &r->last : r->start, &cf, on_changed,
			 &ch, &err) < 0) {
		sx_limits_cfg_free(&o.lim);
		sx_conf_free(&cf);
		goto refused;
	}
	sx_log("info", "config_reload", "path=%s changed=%s",
	       SX_LOGQ(cf.path[0] != '\0' ? cf.path : "(no file)"),
	       SX_LOGQ(ch.len > 0 ? ch.buf : "nothing"));
	*out = o.lim;
	if (r->have_last)
		sx_conf_free(&r->last);
	r->last = cf;
	r->have_last = true;
	return 0;
refused:
	sx_log("error", "config_reload", "reason=%s kept=%s", SX_LOGQ(err.msg),
	       SX_LOGQ("the settings in use"));
	return -1;
}

void sx_serve_reload_free(serve_reload *r)
{
	if (r->have_last)
		sx_conf_free(&r->last);
	r->have_last = false;
}
