/* tools/: sxfer serve's options, shared by cmd_serve.c (the command line,
 * start-up) and serve_conf.c (per-device limits, SIGHUP). */
#ifndef SX_SERVE_OPTS_H
#define SX_SERVE_OPTS_H

#include <stdbool.h>

#include "engine/chat/sx_chat_hub.h"
#include "engine/transfer/sx_metrics.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"
#include "tools/config.h"

#define SX_SERVE_CONF_DEFAULT "/etc/sxfer/serve.conf"
#define SX_SERVE_CONF_ENV     "SXFER_SERVE_CONFIG"

enum {
	OPT_LIM_CONNS = 0x3000, /* --max-conns-per-device */
	OPT_LIM_FILE_SIZE,	/* --max-file-size */
	OPT_LIM_DAY,		/* --quota-per-day */
	OPT_LIM_TOTAL,		/* --quota-total */
	OPT_LIM_DEVICE		/* --device NAME.KEY=VALUE */
};

typedef struct serve_opts {
	sx_serve_cfg cfg;
	const char *id_dir, *crl_file, *port_file;
	bool no_ledger;
	bool help; /* --help: the usage was printed */
	sx_cli_pass ps;
	sx_limits_cfg lim;
	sx_metrics_cfg mc; /* --metrics and its companions */
	/* --chat and its companions (chat_set: one of --chat-*) */
	bool chat_on, chat_set;
	sx_chat_hub_cfg chat;
} serve_opts;

extern const sx_conf_spec sx_serve_spec;

/* cmd_serve.c: every option of cf into o (its strings point into cf);
 * SX_E_USAGE naming the option, and the file and line it came from. */
int sx_serve_parse(const sx_conf *cf, serve_opts *o, sx_err *err) SX_MUST_CHECK;

/* serve_conf.c: one of the OPT_LIM_* options (arg: the element of cf->argv
 * it came from, for the message). */
int sx_serve_limit_opt(const sx_conf *cf, int code, const char *value, const char *arg,
		       sx_limits_cfg *lim, sx_err *err) SX_MUST_CHECK;

/* serve_conf.c: what SIGHUP does (sx_serve_cfg.on_reload): the
 * configuration is read again as at start (the same command line, the
 * same file or default), its limits returned; what changed is logged, and
 * any other option that changed is logged as needing a restart. A
 * configuration that does not parse is refused whole (logged). */
typedef struct serve_reload {
	int argc;
	char **argv;	      /* the command line, as given */
	const sx_conf *start; /* what the server started with */
	sx_conf last;	      /* the last one whose limits were taken */
	bool have_last;
} serve_reload;

int sx_serve_reload(void *ctx, sx_limits_cfg *out);
void sx_serve_reload_free(serve_reload *r);

#endif
