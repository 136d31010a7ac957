/* sxfer ledger: the server's ledger (docs/LEDGER.md): what it holds, and
 * whether it agrees with the files in OUT. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sx_util.h"
#include "engine/ledger/sx_ledger.h"
#include "engine/transfer/sx_ledger_check.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: sxfer ledger [--ledger FILE | --out DIR] devices|sessions|files [options]\n"
    "       sxfer ledger check [--ledger FILE] --out DIR [--repair]\n"
    "\n"
    "The ledger of `sxfer serve` (default: DIR.ledger.sqlite beside its --out DIR).\n"
    "\n"
    "  devices                 every identity seen: name, fingerprint, first and last seen\n"
    "  sessions                every session: peer, address, start, end, result, bytes\n"
    "  files                   every file: path, state, size, Merkle root, batch, receipt\n"
    "  check                   compare the ledger with the files in DIR: a stored file\n"
    "                          missing or of another size, a file left receiving, a\n"
    "                          complete file with its .sxsig the ledger does not have;\n"
    "                          exit 5 when there is any difference\n"
    "\n"
    "  --ledger FILE           the ledger (default: DIR.ledger.sqlite)\n"
    "  --out DIR               the server's output folder\n"
    "  --device NAME           only this identity\n"
    "  --since TIME            from TIME on: 2026-12-01T00:00:00Z, 2026-12-01, or a\n"
    "                          time ago such as 90m, 24h, 7d\n"
    "  --state STATE           files: receiving, stored, refused, failed or partial\n"
    "  --json                  one JSON array instead of a table\n"
    "  --repair                check: fix what can be (rows marked, files found\n"
    "                          complete added as stored from their .sxsig)\n";

static int parse_time(const char *s, int64_t *out)
{
	struct tm tm = {0};
	const char *end;
	uint64_t n;
	size_t len = strlen(s);
	if (len >= 2 && strchr("smhd", s[len - 1]) != NULL) {
		char num[32];
		if (len - 1 >= sizeof(num))
			return -1;
		memcpy(num, s, len - 1);
		num[len - 1] = '\0';
		if (sx_parse_u64(num, &n) < 0 || n > 100000000u)
			return -1;
		uint64_t mul = s[len - 1] == 's'   ? 1
			       : s[len - 1] == 'm' ? 60
			       : s[len - 1] == 'h' ? 3600
						   : 86400;
		*out = (int64_t)time(NULL) - (int64_t)(n * mul);
		return 0;
	}
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0') {
		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(s, "%Y-%m-%d", &tm)) == NULL || *end != '\0')
			return -1;
	}
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* Rows kept for a table: every value copied (the query reuses its
 * memory). */
typedef struct table {
	int ncols;
	char *names[SX_LEDGER_COLS_MAX];
	char **vals; /* rows * ncols */
	size_t rows, cap;
	bool json;
	bool any;
} table;

static int on_row(void *ctx, const sx_ledger_row *r)
{
	table *t = ctx;
	sx_err err = {0};
	if (t->json) {
		printf("%s\n  {", t->any ? "," : "");
		for (int i = 0; i < r->n; i++) {
			printf("%s", i ? ", " : "");
			sx_cli_json_str(r->name[i]);
			printf(": ");
			if (r->val[i] == NULL)
				printf("null");
			else if (r->num[i])
				printf("%s", r->val[i]);
			else
				sx_cli_json_str(r->val[i]);
		}
		printf("}");
		t->any = true;
		return ferror(stdout) ? -1 : 0;
	}
	if (t->ncols == 0) {
		t->ncols = r->n;
		for (int i = 0; i < r->n; i++)
			t->names[i] = strdup(r->name[i]);
	}
	if (sx_grow(&t->vals, &t->cap, (t->rows + 1) * (size_t)t->ncols, sizeof(char *),
		    SIZE_MAX / 16, "rows", &err) < 0)
		return -1;
	for (int i = 0; i < t->ncols; i++)
		t->vals[t->rows * (size_t)t->ncols + (size_t)i] =
		    strdup(i < r->n && r->val[i] != NULL ? r->val[i] : "-");
	t->rows++;
	return 0;
}

static void print_table(table *t)
{
	size_t w[SX_LEDGER_COLS_MAX] = {0};
	for (int i = 0; i < t->ncols; i++) {
		w[i] = t->names[i] != NULL ? strlen(t->names[i]) : 0;
		for (size_t r = 0; r < t->rows; r++) {
			const char *v = t->vals[r * (size_t)t->ncols + (size_t)i];
			if (v != NULL && strlen(v) > w[i])
				w[i] = strlen(v);
		}
	}
	for (int i = 0; i < t->ncols; i++)
		printf("%-*s%s", i + 1 < t->ncols ? (int)w[i] : 0,
		       t->names[i] != NULL ? t->names[i] : "", i + 1 < t->ncols ? "  " : "\n");
	for (size_t r = 0; r < t->rows; r++)
		for (int i = 0; i < t->ncols; i++) {
			const char *v = t->vals[r * (size_t)t->ncols + (size_t)i];
			char esc[1024];
			sx_esc(esc, sizeof(esc), v != NULL ? v : "", SX_ESC_CSTR, SX_ESC_TEXT);
			printf("%-*s%s", i + 1 < t->ncols ? (int)w[i] : 0, esc,
			       i + 1 < t->ncols ? "  " : "\n");
		}
	if (t->rows == 0)
		printf("(none)\n");
}

static void table_free(table *t)
{
	for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++)
		free(t->vals[i]);
	free(t->vals);
	for (int i = 0; i < t->ncols; i++)
		free(t->names[i]);
}

typedef struct checkout {
	bool json, any;
} checkout;

static void on_diff(void *ctx, const char *what, const char *device, const char *path,
		    const char *detail, const char *fix)
{
	checkout *o = ctx;
	char d[512], p[4200], x[512];
	if (o->json) {
		printf("%s\n  {\"difference\": ", o->any ? "," : "");
		sx_cli_json_str(what);
		printf(", \"device\": ");
		sx_cli_json_str(device);
		printf(", \"path\": ");
		sx_cli_json_str(path);
		printf(", \"detail\": ");
		sx_cli_json_str(detail);
		printf(", \"repaired\": ");
		if (fix != NULL)
			sx_cli_json_str(fix);
		else
			printf("null");
		printf("}");
		o->any = true;
		return;
	}
	sx_esc(d, sizeof(d), device, SX_ESC_CSTR, SX_ESC_TEXT);
	sx_esc(p, sizeof(p), path, SX_ESC_CSTR, SX_ESC_TEXT);
	sx_esc(x, sizeof(x), detail, SX_ESC_CSTR, SX_ESC_TEXT);
	printf("%s: %s/%s: %s%s%s\n", what, d, p, x, fix != NULL ? " -> now " : "",
	       fix != NULL ? fix : "");
}

int sx_cmd_ledger(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ledger", required_argument, 0, 'L'},
	    {"out", required_argument, 0, 'O'},
	    {"device", required_argument, 0, 'd'},
	    {"since", required_argument, 0, 's'},
	    {"state", required_argument, 0, 'S'},
	    {"json", no_argument, 0, 'j'},
	    {"repair", no_argument, 0, 'r'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *path = NULL, *out = NULL;
	sx_ledger_filter f = {.state = -1};
	bool json = false, repair = false;
	char def[4096];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'L': path = optarg; break;
		case 'O': out = optarg; break;
		case 'd': f.device = optarg; break;
		case 's':
			if (parse_time(optarg, &f.since) < 0)
				return sx_cli_usage_error("ledger",
							  "--since '%s': 2026-12-01T00:00:00Z, "
							  "2026-12-01, or 90m, 24h, 7d",
							  optarg);
			break;
		case 'S':
			if ((f.state = sx_lfile_state_parse(optarg)) < 0)
				return sx_cli_usage_error("ledger",
							  "--state: receiving, stored, refused, "
							  "failed or partial");
			break;
		case 'j': json = true; break;
		case 'r': repair = true; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error("ledger", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return sx_cli_usage_error("ledger", "one of devices, sessions, files or check");
	const char *what = argv[optind];
	sx_ledger_table t = strcmp(what, "devices") == 0    ? SX_LQ_DEVICES
			    : strcmp(what, "sessions") == 0 ? SX_LQ_SESSIONS
			    : strcmp(what, "files") == 0    ? SX_LQ_FILES
							    : 0;
	bool check = strcmp(what, "check") == 0;
	if (t == 0 && !check)
		return sx_cli_usage_error("ledger",
					  "unknown '%s': devices, sessions, files or check", what);
	if (check && out == NULL)
		return sx_cli_usage_error("ledger", "check needs --out DIR");
	if (repair && !check)
		return sx_cli_usage_error("ledger", "--repair goes with check");
	sx_err err = {0};
	if (path == NULL) {
		if (out == NULL)
			return sx_cli_usage_error("ledger",
						  "--ledger FILE or --out DIR is required");
		if (sx_ledger_default_path(out, def, sizeof(def), &err) < 0)
			return sx_cli_usage_error("ledger", "%s", err.msg);
		path = def;
	}
	sx_ledger *lg = NULL;
	if (sx_ledger_open(path, repair ? SX_LEDGER_REPAIR : SX_LEDGER_QUERY, &lg, &err) < 0)
		return sx_cli_report(&err);
	int rc = 0;
	if (check) {
		checkout o = {.json = json};
		uint64_t diffs = 0;
		sx_ledger_check_cfg cc = {
		    .out_dir = out, .repair = repair, .walk = true, .on_diff = on_diff, .ctx = &o};
		if (json)
			printf("[");
		if (sx_ledger_check(lg, &cc, &diffs, &err) < 0)
			rc = sx_cli_report(&err);
		else if (json)
			printf("%s]\n", o.any ? "\n" : "");
		else
			printf("%llu difference%s%s\n", (unsigned long long)diffs,
			       diffs == 1 ? "" : "s", repair && diffs > 0 ? ", repaired" : "");
		if (rc == 0 && diffs > 0 && !repair)
			rc = 5;
	} else {
		table tb = {.json = json};
		if (json)
			printf("[");
		if (sx_ledger_query(lg, t, &f, on_row, &tb, &err) < 0)
			rc = sx_cli_report(&err);
		else if (json)
			printf("%s]\n", tb.any ? "\n" : "");
		else
			print_table(&tb);
		table_free(&tb);
	}
	sx_ledger_close(lg);
	if (fflush(stdout) != 0 && rc == 0)
		rc = 5;
	return rc;
}
