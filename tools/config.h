/* tools/: a command's configuration file (docs/OPERATIONS.md,
 * "Configuration"). One `key = value` line per option, the key a long
 * option's name without "--"; `#` starts a comment (at the start of a line,
 * or after a blank); a value may be "quoted" (then it may hold a '#');
 * an option without a value is `key = true` (`false`: not given); an option
 * given more than once repeats its key. A command reads it in three steps:
 *
 *   sx_conf cf;
 *   if (sx_conf_load(&spec, argc, argv, &cf, &err) < 0) ...   // exit 2
 *   while ((c = getopt_long(cf.argc, cf.argv, ...)) != -1)
 *           ... a bad value: sx_conf_fail(&cf, cf.argv[optind - 1], &err, "--key: ...")
 *   sx_conf_free(&cf);
 *
 * cf.argv is the command's argv[0], the file's options (each one element,
 * "--key=value"), then the command line's arguments: getopt reads the file
 * first, so the command line overrides it (a later value replaces an
 * earlier; a repeated option adds up). The command's option table lists
 * SX_CONF_OPTS (--config FILE, --no-config) and its getopt loop skips their
 * codes: sx_conf_load has taken them. */
#ifndef SX_CONFIG_H
#define SX_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/sx_err.h"

enum { SX_OPT_CONFIG = 0x4000, SX_OPT_NO_CONFIG };

#define SX_CONF_OPTS                                                                               \
	{"config", required_argument, NULL, SX_OPT_CONFIG},                                        \
	{                                                                                          \
		"no-config", no_argument, NULL, SX_OPT_NO_CONFIG                                   \
	}

#define SX_CONF_FILE_MAX (1u << 20) /* bytes of a configuration file */
#define SX_CONF_LINE_MAX 8192	    /* bytes of one line */

typedef struct sx_conf_spec {
	const char *cmd;	   /* "serve": for messages */
	const struct option *opts; /* the command's getopt table (with SX_CONF_OPTS) */
	const char *shortopts;	   /* its short options, as getopt takes them ("h") */
	/* The file read when neither --config nor --no-config is given, if it
	 * exists: env, when set (tests, a second instance), else path. */
	const char *default_path; /* "/etc/sxfer/serve.conf" */
	const char *default_env;  /* "SXFER_SERVE_CONFIG" */
	/* Options whose values may be written as keys: for "device", the line
	 * `device.cam-07.quota-total = 20G` gives --device=cam-07.quota-total=20G
	 * (sx_conf_diff compares such values by what comes before the '='). */
	const char *const *dotted; /* NULL-terminated, or NULL */
	/* Options a file may not set (besides help, config and no-config). */
	const char *const *deny; /* NULL-terminated, or NULL */
} sx_conf_spec;

typedef struct sx_conf {
	char path[4096]; /* the file read; "" when none */
	int argc;
	char **argv; /* argv[0], the file's options, the command line's arguments */
	int nfile;   /* argv[1..nfile] came from the file, */
	int *lines;  /* from these lines (lines[i] for argv[i + 1]) */
} sx_conf;

/* Finds --config/--no-config on the command line (getopt over a copy of
 * argv), reads the file (or the default one when it exists) and builds
 * cf->argv. An unreadable file, an unknown key, a malformed line or a
 * boolean that is not true or false fails with SX_E_USAGE naming the file
 * and the line ("serve.conf:7: unknown key 'max-con'"). */
int sx_conf_load(const sx_conf_spec *spec, int argc, char **argv, sx_conf *cf,
		 sx_err *err) SX_MUST_CHECK;
void sx_conf_free(sx_conf *cf);

/* "FILE:LINE" into buf when arg (an element of cf->argv) came from the
 * file; NULL when it came from the command line. */
const char *sx_conf_where(const sx_conf *cf, const char *arg, char *buf, size_t cap);

/* Fails err with SX_E_USAGE and the message; when arg came from the file,
 * as "FILE:LINE: " and the message without its leading "--" (so that
 * "--max-conns: '-3' is not ..." reads "serve.conf:9: max-conns: '-3' is
 * not ..."). Returns -1. */
int sx_conf_fail(const sx_conf *cf, const char *arg, sx_err *err, const char *fmt, ...)
    SX_PRINTF(4, 5);

/* Compares the options two configurations give (each option's last value;
 * all values of a repeated one; a dotted option's values each by its key,
 * "device.cam-07.quota-total"): fn is called for each key whose value
 * differs, with NULL for "not given" and "true" for an option without a
 * value. repeat lists options that add up (NULL-terminated, or NULL).
 * Uses getopt: call it where no other thread parses options. */
typedef void (*sx_conf_diff_fn)(void *ctx, const char *key, const char *was, const char *now);
int sx_conf_diff(const sx_conf_spec *spec, const char *const *repeat, const sx_conf *a,
		 const sx_conf *b, sx_conf_diff_fn fn, void *ctx, sx_err *err) SX_MUST_CHECK;

#endif
