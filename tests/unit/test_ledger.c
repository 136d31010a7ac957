#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "engine/ledger/sx_ledger.h"
#include "engine/transfer/sx_ledger_check.h"

static char *dir;
static char db[4200];

static int setup(void **state)
{
	(void)state;
	dir = sx_test_tmpdir();
	if (dir == NULL)
		return -1;
	snprintf(db, sizeof(db), "%s/l.sqlite", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sx_test_rmtree(dir);
	free(dir);
	return 0;
}

static long long scalar(const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

static void exec_sql(const char *sql)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

static void test_ledger_default_path(void **state)
{
	(void)state;
	char buf[256];
	sx_err err = {0};
	assert_int_equal(sx_ledger_default_path("/srv/in/", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/srv/in.ledger.sqlite");
	assert_int_equal(sx_ledger_default_path("in", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "in.ledger.sqlite");
	assert_int_equal(sx_ledger_default_path("/", buf, sizeof(buf), &err), -1);
}

static void test_ledger_schema_created(void **state)
{
	(void)state;
	sx_ledger *lg = NULL;
	sx_err err = {0};
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_true(sx_ledger_was_clean(lg)); /* new */
	sx_ledger_close(lg);
	assert_int_equal(scalar("PRAGMA user_version"), SX_LEDGER_VERSION);
	assert_int_equal(scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
				"name IN ('devices', 'sessions', 'files', 'batches', 'meta')"),
			 5);
	assert_int_equal(scalar("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
				"name = 'files_path'"),
			 1);
	/* closed cleanly: the next server knows */
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_true(sx_ledger_was_clean(lg));
	/* a second server on the same ledger is refused */
	sx_ledger *lg2 = NULL;
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg2, &err), -1);
	assert_non_null(strstr(err.msg, "another sxfer serve"));
	sx_ledger_close(lg);
}

static void test_ledger_migrates_from_v0(void **state)
{
	(void)state;
	sx_ledger *lg = NULL;
	sx_err err = {0};
	/* a database of version 0: no schema of ours yet */
	exec_sql("CREATE TABLE unrelated(x); PRAGMA user_version = 0;");
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	sx_ledger_close(lg);
	assert_int_equal(scalar("PRAGMA user_version"), SX_LEDGER_VERSION);
	assert_int_equal(scalar("SELECT count(*) FROM files"), 0);
	/* a version this code does not know is refused, not changed */
	exec_sql("PRAGMA user_version = 99;");
	sx_err_clear(&err);
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), -1);
	assert_non_null(strstr(err.msg, "newer"));
	assert_int_equal(scalar("PRAGMA user_version"), 99);
	/* a query of a ledger that does not exist fails, and creates nothing */
	char none[4300];
	snprintf(none, sizeof(none), "%s/none.sqlite", dir);
	assert_int_equal(sx_ledger_open(none, SX_LEDGER_QUERY, &lg, &err), -1);
	assert_int_equal(access(none, F_OK), -1);
}

static void ev_file(sx_ledger *lg, uint64_t sid, uint32_t id, const char *path, uint64_t size,
		    sx_lfile_state st)
{
	sx_ledger_ev ev = {.kind = SX_LEV_FILE_BEGIN, .session = sid, .file_id = id};
	snprintf(ev.name, sizeof(ev.name), "cam-01");
	snprintf(ev.path, sizeof(ev.path), "%s", path);
	ev.has_size = true;
	ev.size = size;
	sx_ledger_event(lg, &ev);
	ev.kind = SX_LEV_FILE_END;
	ev.state = st;
	memset(ev.root, 0xab, sizeof(ev.root));
	ev.has_root = st == SX_LF_STORED;
	ev.batch = 1;
	sx_ledger_event(lg, &ev);
}

static void session(sx_ledger *lg, uint64_t *sid)
{
	sx_ledger_ev ev = {.kind = SX_LEV_SESSION_START};
	*sid = sx_ledger_session_id(lg);
	ev.session = *sid;
	snprintf(ev.name, sizeof(ev.name), "cam-01");
	snprintf(ev.fingerprint, sizeof(ev.fingerprint), "%064d", 7);
	snprintf(ev.addr, sizeof(ev.addr), "127.0.0.1:5000");
	sx_ledger_event(lg, &ev);
}

static void test_ledger_groups_events(void **state)
{
	(void)state;
	sx_ledger *lg = NULL;
	sx_err err = {0};
	uint64_t sid;
	char path[64];
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_int_equal(sx_ledger_start(lg, &err), 0);
	session(lg, &sid);
	assert_true(sid >= 1);
	for (int i = 0; i < 300; i++) {
		snprintf(path, sizeof(path), "d/f%d.bin", i);
		ev_file(lg, sid, (uint32_t)i + 1, path, 100 + (uint64_t)i,
			i % 10 == 0 ? SX_LF_REFUSED : SX_LF_STORED);
	}
	sx_ledger_ev end = {.kind = SX_LEV_SESSION_END, .session = sid, .ok = true};
	end.files = 270;
	end.size = 12345;
	sx_ledger_event(lg, &end);
	sx_ledger_sync(lg);
	/* 602 events in a few transactions, not one each */
	assert_true(sx_ledger_commits(lg) >= 1);
	assert_true(sx_ledger_commits(lg) <= 4);
	assert_int_equal(sx_ledger_dropped(lg), 0);
	sx_ledger_close(lg);
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE state = 'stored'"), 270);
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE state = 'refused'"), 30);
	assert_int_equal(scalar("SELECT count(*) FROM files"), 300);
	assert_int_equal(scalar("SELECT bytes FROM sessions WHERE result = 'ok'"), 12345);
	assert_int_equal(scalar("SELECT count(*) FROM devices"), 1);
	/* a refused file that never began has a row of its own */
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_int_equal(sx_ledger_start(lg, &err), 0);
	sx_ledger_ev ref = {.kind = SX_LEV_FILE_END, .session = sid, .file_id = 999};
	ref.state = SX_LF_REFUSED;
	snprintf(ref.name, sizeof(ref.name), "cam-01");
	snprintf(ref.path, sizeof(ref.path), "exists.bin");
	sx_ledger_event(lg, &ref);
	sx_ledger_close(lg); /* flushes */
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE path = 'exists.bin' AND "
				"state = 'refused'"),
			 1);
}

static void test_ledger_full_queue_drops(void **state)
{
	(void)state;
	sx_ledger *lg = NULL;
	sx_err err = {0};
	uint64_t sid;
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	/* no writer yet: the queue fills, and the rest is dropped, not
	 * waited for */
	for (int i = 0; i < SX_LEDGER_QUEUE + 10; i++)
		session(lg, &sid);
	assert_int_equal(sx_ledger_dropped(lg), 10);
	assert_int_equal(sx_ledger_start(lg, &err), 0);
	sx_ledger_close(lg);
	assert_int_equal(scalar("SELECT count(*) FROM sessions"), SX_LEDGER_QUEUE);
	/* events were lost: not marked clean, the next start checks */
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_false(sx_ledger_was_clean(lg));
	sx_ledger_close(lg);
}

typedef struct rows {
	int n;
	char last[64];
} rows;

static int count_row(void *ctx, const sx_ledger_row *r)
{
	rows *c = ctx;
	c->n++;
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->name[i], "path") == 0 && r->val[i] != NULL)
			snprintf(c->last, sizeof(c->last), "%s", r->val[i]);
	return 0;
}

static void test_ledger_queries(void **state)
{
	(void)state;
	sx_ledger *lg = NULL;
	sx_err err = {0};
	uint64_t sid;
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_int_equal(sx_ledger_start(lg, &err), 0);
	session(lg, &sid);
	ev_file(lg, sid, 1, "a.bin", 10, SX_LF_STORED);
	ev_file(lg, sid, 2, "b.bin", 20, SX_LF_FAILED);
	ev_file(lg, sid, 3, "c.bin", 30, SX_LF_STORED);
	sx_ledger_close(lg);
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_QUERY, &lg, &err), 0);
	rows r = {0};
	sx_ledger_filter f = {.state = -1};
	assert_int_equal(sx_ledger_query(lg, SX_LQ_FILES, &f, count_row, &r, &err), 0);
	assert_int_equal(r.n, 3);
	f.state = SX_LF_FAILED;
	r = (rows){0};
	assert_int_equal(sx_ledger_query(lg, SX_LQ_FILES, &f, count_row, &r, &err), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.last, "b.bin");
	f = (sx_ledger_filter){.state = -1, .device = "nobody"};
	r = (rows){0};
	assert_int_equal(sx_ledger_query(lg, SX_LQ_FILES, &f, count_row, &r, &err), 0);
	assert_int_equal(r.n, 0);
	f = (sx_ledger_filter){.state = -1, .since = (int64_t)time(NULL) + 3600};
	r = (rows){0};
	assert_int_equal(sx_ledger_query(lg, SX_LQ_SESSIONS, &f, count_row, &r, &err), 0);
	assert_int_equal(r.n, 0);
	f.since = 0;
	assert_int_equal(sx_ledger_query(lg, SX_LQ_SESSIONS, &f, count_row, &r, &err), 0);
	assert_int_equal(r.n, 1);
	r = (rows){0};
	assert_int_equal(sx_ledger_query(lg, SX_LQ_DEVICES, &f, count_row, &r, &err), 0);
	assert_int_equal(r.n, 1);
	sx_ledger_close(lg);
}

static void put(const char *rel, size_t n)
{
	char p[4400];
	snprintf(p, sizeof(p), "%s/out/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('x', f);
	fclose(f);
}

static void count_diff(void *ctx, const char *what, const char *device, const char *path,
		       const char *detail, const char *fix)
{
	(void)what;
	(void)device;
	(void)path;
	(void)detail;
	(void)fix;
	(*(int *)ctx)++;
}

static void test_ledger_check_repair(void **state)
{
	(void)state;
	sx_ledger *lg = NULL;
	sx_err err = {0};
	uint64_t sid, diffs = 0;
	char out[4300];
	snprintf(out, sizeof(out), "%s/out", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	snprintf(out, sizeof(out), "%s/out/cam-01", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	snprintf(out, sizeof(out), "%s/out", dir);
	put("cam-01/ok.bin", 10);
	put("cam-01/short.bin", 5);
	put("cam-01/cut.ts.partial", 7);
	assert_int_equal(sx_ledger_open(db, SX_LEDGER_SERVER, &lg, &err), 0);
	assert_int_equal(sx_ledger_start(lg, &err), 0);
	session(lg, &sid);
	ev_file(lg, sid, 1, "ok.bin", 10, SX_LF_STORED);
	ev_file(lg, sid, 2, "short.bin", 20, SX_LF_STORED); /* 5 bytes on disk */
	ev_file(lg, sid, 3, "gone.bin", 30, SX_LF_STORED);  /* not on disk */
	sx_ledger_ev ev = {.kind = SX_LEV_FILE_BEGIN, .session = sid, .file_id = 4};
	snprintf(ev.name, sizeof(ev.name), "cam-01");
	snprintf(ev.path, sizeof(ev.path), "cut.ts"); /* left receiving: .partial */
	sx_ledger_event(lg, &ev);
	ev.file_id = 5;
	snprintf(ev.path, sizeof(ev.path), "lost.bin"); /* left receiving: nothing */
	sx_ledger_event(lg, &ev);
	sx_ledger_close(lg);

	assert_int_equal(sx_ledger_open(db, SX_LEDGER_QUERY, &lg, &err), 0);
	int seen = 0;
	sx_ledger_check_cfg cc = {
	    .out_dir = out, .walk = true, .on_diff = count_diff, .ctx = &seen};
	assert_int_equal(sx_ledger_check(lg, &cc, &diffs, &err), 0);
	assert_int_equal(diffs, 4);
	assert_int_equal(seen, 4);
	sx_ledger_close(lg);
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE state = 'receiving'"), 2);

	assert_int_equal(sx_ledger_open(db, SX_LEDGER_REPAIR, &lg, &err), 0);
	cc.repair = true;
	assert_int_equal(sx_ledger_check(lg, &cc, &diffs, &err), 0);
	assert_int_equal(diffs, 4);
	cc.repair = false;
	assert_int_equal(sx_ledger_check(lg, &cc, &diffs, &err), 0);
	assert_int_equal(diffs, 0);
	sx_ledger_close(lg);
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE path = 'cut.ts' AND state = "
				"'partial'"),
			 1);
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE path = 'lost.bin' AND state = "
				"'failed'"),
			 1);
	assert_int_equal(scalar("SELECT count(*) FROM files WHERE state = 'stored'"), 1);
	assert_int_equal(scalar("SELECT count(*) FROM sessions WHERE result = 'interrupted'"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ledger_default_path),
	    cmocka_unit_test_setup_teardown(test_ledger_schema_created, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_migrates_from_v0, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_groups_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_full_queue_drops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_queries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_check_repair, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
