#include "tools/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"

int sx_cli_report(const sx_err *err)
{
	int code = err->cls == SX_OK ? SX_E_OTHER : (int)err->cls;
	/* The message may carry file names and text from the peer. */
	fprintf(stderr, "sxfer: %s\n", err->msg[0] ? SX_TEXT(err->msg) : "failed");
	return code;
}

int sx_cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The message may quote an argument as it was given. */
	fprintf(stderr, "sxfer %s: %s\nRun 'sxfer %s --help' for usage.\n", cmd, SX_TEXT(msg), cmd);
	return SX_E_USAGE;
}

static int strip_newline(char *buf, size_t n)
{
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return (int)n;
}

#define NO_TTY_CA                                                                                  \
	"a passphrase is needed: set SXFER_PASSPHRASE, use --pass-file, or run on a terminal"
#define NO_TTY_ID                                                                                  \
	"the new identity key needs its own passphrase: use --id-pass-file F or set "              \
	"SXFER_ID_PASSPHRASE (the CA key's passphrase is not used for it), or --no-passphrase "    \
	"for an unencrypted key"

static int prompt(const char *label, const char *no_tty, char *buf, size_t cap, sx_err *err)
{
	struct termios old, quiet;
	FILE *tty = fopen("/dev/tty", "r+");
	if (tty == NULL)
		return sx_fail(err, SX_E_USAGE, "%s", no_tty);
	int fd = fileno(tty);
	fprintf(tty, "%s", label);
	fflush(tty);
	int have_term = tcgetattr(fd, &old) == 0;
	if (have_term) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	char *r = fgets(buf, (int)cap, tty);
	if (have_term)
		tcsetattr(fd, TCSAFLUSH, &old);
	fprintf(tty, "\n");
	fclose(tty);
	if (r == NULL)
		return sx_fail(err, SX_E_USAGE, "no passphrase entered");
	return strip_newline(buf, strlen(buf));
}

static int pass_env(const char *name, char *buf, size_t cap, sx_err *err)
{
	const char *env = getenv(name);
	size_t n = env ? strlen(env) : 0;
	if (env == NULL)
		return -2; /* not set */
	if (n + 1 > cap)
		return sx_fail(err, SX_E_USAGE, "%s is too long", name);
	memcpy(buf, env, n + 1);
	return (int)n;
}

static int pass_file(const char *path, char *buf, size_t cap, sx_err *err)
{
	uint8_t *data = NULL;
	size_t len = 0;
	if (sx_file_read(path, 4096, &data, &len, err) < 0)
		return -1;
	int n = strip_newline((char *)data, len);
	if ((size_t)n + 1 > cap) {
		OPENSSL_clear_free(data, len);
		return sx_fail(err, SX_E_USAGE, "%s: passphrase is too long", path);
	}
	memcpy(buf, data, (size_t)n + 1);
	OPENSSL_clear_free(data, len);
	return n;
}

/* A no-echo prompt, asked twice for a new key. */
static int pass_prompt(const sx_cli_pass *src, char *buf, size_t cap, bool confirm, sx_err *err)
{
	const char *words = src && src->prompt ? src->prompt : "Passphrase";
	const char *no_tty = src && src->identity ? NO_TTY_ID : NO_TTY_CA;
	char label[128], again[1024];
	snprintf(label, sizeof(label), "%s: ", words);
	int n = prompt(label, no_tty, buf, cap, err);
	if (n < 0 || !confirm)
		return n;
	snprintf(label, sizeof(label), "%s (again): ", words);
	int m = prompt(label, no_tty, again, sizeof(again), err);
	int same = m == n && strcmp(again, buf) == 0;
	OPENSSL_cleanse(again, sizeof(again));
	if (m < 0)
		return -1;
	if (!same)
		return sx_fail(err, SX_E_USAGE, "the two passphrases differ");
	return n;
}

static int pass_read(sx_cli_pass *src, char *buf, size_t cap, bool confirm, sx_err *err)
{
	int n;
	if (src != NULL && src->identity) {
		if (src->file != NULL)
			return pass_file(src->file, buf, cap, err);
		if ((n = pass_env("SXFER_ID_PASSPHRASE", buf, cap, err)) != -2)
			return n;
		return pass_prompt(src, buf, cap, confirm, err);
	}
	if ((n = pass_env("SXFER_PASSPHRASE", buf, cap, err)) != -2)
		return n;
	if (src != NULL && src->file != NULL)
		return pass_file(src->file, buf, cap, err);
	return pass_prompt(src, buf, cap, confirm, err);
}

static int pass_get(void *ctx, char *buf, size_t cap, bool confirm, sx_err *err)
{
	sx_cli_pass *src = ctx;
	if (src == NULL || !src->have)
		return pass_read(src, buf, cap, confirm, err);
	if ((size_t)src->len + 1 > cap)
		return sx_fail(err, SX_E_USAGE, "the passphrase is too long");
	memcpy(buf, src->buf, (size_t)src->len + 1);
	return src->len;
}

int sx_cli_pass_ask(sx_cli_pass *src, bool confirm, sx_err *err)
{
	int n;
	if (src->none || src->have)
		return 0;
	n = pass_read(src, src->buf, sizeof(src->buf), confirm, err);
	if (n < 0) {
		OPENSSL_cleanse(src->buf, sizeof(src->buf));
		return -1;
	}
	src->len = n;
	src->have = true;
	return 0;
}

void sx_cli_pass_wipe(sx_cli_pass *src)
{
	OPENSSL_cleanse(src->buf, sizeof(src->buf));
	src->len = 0;
	src->have = false;
}

void sx_cli_pass_init(sx_pass *out, sx_cli_pass *src)
{
	out->none = src->none;
	out->get = pass_get;
	out->ctx = src;
}

int sx_cli_dispatch(const char *cmd, const sx_subcmd *tab, size_t n, int argc, char **argv)
{
	bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
				  strcmp(argv[1], "help") == 0);
	if (argc < 2 || help) {
		FILE *f = help ? stdout : stderr;
		fprintf(f, "usage: sxfer %s <subcommand> [options]\n\nsubcommands:\n", cmd);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "  %-8s %s\n", tab[i].name, tab[i].help);
		fprintf(f, "\nRun 'sxfer %s <subcommand> --help' for its options.\n", cmd);
		return help ? 0 : SX_E_USAGE;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(tab[i].name, argv[1]) == 0)
			return tab[i].main(argc - 1, argv + 1);
	return sx_cli_usage_error(cmd, "unknown subcommand '%s'", argv[1]);
}

int sx_cli_days(const char *cmd, const char *s, unsigned *out)
{
	uint64_t v = 0;
	if (sx_parse_u64(s, &v) < 0 || v == 0 || v > 36500)
		return sx_cli_usage_error(cmd, "--days must be a number from 1 to 36500, not '%s'",
					  s);
	*out = (unsigned)v;
	return 0;
}

void sx_cli_json_str(const char *s)
{
	const uint8_t *p = (const uint8_t *)(s ? s : "");
	size_t n = strlen((const char *)p);
	putchar('"');
	while (n > 0) {
		char unit[SX_ESC_UNIT_MAX];
		size_t ulen = 0, took = sx_esc_unit(p, n, SX_ESC_JSON, unit, &ulen);
		fwrite(unit, 1, ulen, stdout);
		p += took;
		n -= took;
	}
	putchar('"');
}

void sx_cli_human(double v, char *buf, size_t cap)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, cap, "%.1f %s", v, u[i]);
}

void sx_cli_write_port(void *ctx, int port)
{
	const char *file = ctx;
	char buf[16];
	sx_err err = {0};
	if (file == NULL)
		return;
	int n = snprintf(buf, sizeof(buf), "%d\n", port);
	if (sx_file_write_atomic(file, buf, (size_t)n, 0644, &err) < 0)
		sx_log("error", "port_file", "reason=%s", SX_LOGQ(err.msg));
}
