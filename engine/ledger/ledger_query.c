/* The ledger's queries (sxfer ledger devices|sessions|files) and the
 * repairs of sxfer ledger check: read and mark rows, outside the writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/ledger/ledger_int.h"

/* ---- queries and repairs ------------------------------------------------ */

#define ISO(col) "strftime('%Y-%m-%dT%H:%M:%SZ', " col ", 'unixepoch')"

int sx_ledger_query(sx_ledger *lg, sx_ledger_table t, const sx_ledger_filter *f,
		    sx_ledger_row_fn fn, void *ctx, sx_err *err)
{
	const char *sql = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, r;
	switch (t) {
	case SX_LQ_DEVICES:
		sql = "SELECT name, fingerprint, " ISO("first_seen") " AS first_seen, " ISO(
		    "last_seen") " AS last_seen, (SELECT count(*) FROM sessions s WHERE s.device = "
				 "d.name AND s.fingerprint = d.fingerprint) AS sessions "
				 "FROM devices d WHERE (?1 IS NULL OR name = ?1) AND last_seen >= "
				 "?2 "
				 "ORDER BY name, first_seen";
		break;
	case SX_LQ_SESSIONS:
		sql = "SELECT id, device, addr, " ISO("started") " AS started, " ISO(
		    "ended") " AS ended, result, bytes, files, failed, reason FROM sessions "
			     "WHERE (?1 IS NULL OR device = ?1) AND started >= ?2 ORDER BY id";
		break;
	case SX_LQ_FILES:
		sql =
		    "SELECT id, session_id AS session, device, path, state, size, root, verified, "
		    "signed, batch, receipt, " ISO("started") " AS started, " ISO(
			"ended") " AS ended, note FROM files WHERE (?1 IS NULL OR device = ?1) "
				 "AND started >= ?2 AND (?3 IS NULL OR state = ?3) ORDER BY id";
		break;
	}
	if (sql == NULL || sqlite3_prepare_v2(lg->db, sql, -1, &st, NULL) != SQLITE_OK)
		return lg_db_fail(lg->db, err, "cannot prepare the query");
	lg_bind_str(st, 1, f->device);
	sqlite3_bind_int64(st, 2, f->since);
	lg_bind_str(st, 3, f->state >= 0 ? sx_lfile_state_name((sx_lfile_state)f->state) : NULL);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		sx_ledger_row row = {.n = sqlite3_column_count(st)};
		if (row.n > SX_LEDGER_COLS_MAX)
			row.n = SX_LEDGER_COLS_MAX;
		for (int i = 0; i < row.n; i++) {
			int ty = sqlite3_column_type(st, i);
			row.name[i] = sqlite3_column_name(st, i);
			row.val[i] =
			    ty == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, i);
			row.num[i] = ty == SQLITE_INTEGER || ty == SQLITE_FLOAT;
		}
		if (fn(ctx, &row) < 0) {
			sx_fail(err, SX_E_IO, "cannot write the output");
			goto out;
		}
	}
	if (r != SQLITE_DONE) {
		lg_db_fail(lg->db, err, "query");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static int each_file(sx_ledger *lg, const char *sql, sx_ledger_file_fn fn, void *ctx, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;
	if (sqlite3_prepare_v2(lg->db, sql, -1, &st, NULL) != SQLITE_OK)
		return lg_db_fail(lg->db, err, "cannot prepare the check");
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		sx_ledger_file f = {
		    .id = sqlite3_column_int64(st, 0),
		    .session = (uint64_t)sqlite3_column_int64(st, 1),
		    .device = (const char *)sqlite3_column_text(st, 2),
		    .path = (const char *)sqlite3_column_text(st, 3),
		    .state = (sx_lfile_state)sx_lfile_state_parse(
			(const char *)sqlite3_column_text(st, 4)),
		    .has_size = sqlite3_column_type(st, 5) != SQLITE_NULL,
		    .size = (uint64_t)sqlite3_column_int64(st, 5),
		    .started = sqlite3_column_int64(st, 6),
		};
		if (fn(ctx, &f) < 0)
			goto out;
	}
	if (r != SQLITE_DONE) {
		lg_db_fail(lg->db, err, "check");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

int sx_ledger_each_check(sx_ledger *lg, bool stored, sx_ledger_file_fn fn, void *ctx, sx_err *err)
{
	/* The newest stored row of each file: an older one was replaced
	 * (--overwrite) and says nothing of the disk now. */
	if (stored &&
	    each_file(lg,
		      /* one grouping pass: a subquery per row was quadratic (the
		       * planner took the state index for it) */
		      "SELECT id, session_id, device, path, state, size, started FROM files "
		      "WHERE id IN (SELECT max(id) FROM files WHERE state = 'stored' "
		      "GROUP BY device, path) ORDER BY id",
		      fn, ctx, err) < 0)
		return -1;
	return each_file(lg,
			 "SELECT id, session_id, device, path, state, size, started FROM files "
			 "WHERE state = 'receiving' ORDER BY id",
			 fn, ctx, err);
}

int sx_ledger_last_time(sx_ledger *lg, int64_t *t, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*t = 0;
	if (sqlite3_prepare_v2(lg->db,
			       "SELECT max(coalesce((SELECT max(started) FROM sessions), 0), "
			       "coalesce((SELECT max(ended) FROM sessions), 0), "
			       "coalesce((SELECT max(started) FROM files), 0), "
			       "coalesce((SELECT max(ended) FROM files), 0))",
			       -1, &st, NULL) != SQLITE_OK)
		return lg_db_fail(lg->db, err, "cannot prepare the last time");
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		*t = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (r != SQLITE_ROW)
		return lg_db_fail(lg->db, err, "last time");
	return 0;
}

int sx_ledger_has_stored(sx_ledger *lg, const char *device, const char *path, bool *yes,
			 sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(lg->db,
			       /* "+state": the (device, path) index, never the
				* state one (a scan of every stored row per call) */
			       "SELECT 1 FROM files WHERE device = ?1 AND path = ?2 AND +state = "
			       "'stored' LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return lg_db_fail(lg->db, err, "cannot prepare the check");
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	*yes = r == SQLITE_ROW;
	sqlite3_finalize(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return lg_db_fail(lg->db, err, "check");
	return 0;
}

static int run(sx_ledger *lg, sqlite3_stmt *st, sx_err *err)
{
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return lg_db_fail(lg->db, err, "repair");
	return 0;
}

int sx_ledger_mark(sx_ledger *lg, int64_t id, sx_lfile_state st_, const char *note, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(
		lg->db,
		"UPDATE files SET state = ?2, note = ?3, ended = coalesce(ended, ?4) "
		"WHERE id = ?1",
		-1, &st, NULL) != SQLITE_OK)
		return lg_db_fail(lg->db, err, "cannot prepare the repair");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, sx_lfile_state_name(st_), -1, SQLITE_STATIC);
	lg_bind_str(st, 3, note);
	sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
	return run(lg, st, err);
}

int sx_ledger_add_found(sx_ledger *lg, const char *device, const char *path, uint64_t size,
			const uint8_t root[32], bool sign, int64_t mtime, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	char hex[65];
	if (sqlite3_prepare_v2(lg->db,
			       "INSERT INTO files(device, path, size, root, state, verified, "
			       "signed, started, ended, note) VALUES(?1, ?2, ?3, ?4, 'stored', ?5, "
			       "?6, ?7, ?8, 'found on disk (ledger check --repair)')",
			       -1, &st, NULL) != SQLITE_OK)
		return lg_db_fail(lg->db, err, "cannot prepare the repair");
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)size);
	if (root != NULL) {
		sx_hex(root, 32, hex);
		sqlite3_bind_text(st, 4, hex, -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int64(st, 5, sign ? (int64_t)size : 0);
	sqlite3_bind_int(st, 6, sign);
	sqlite3_bind_int64(st, 7, mtime);
	sqlite3_bind_int64(st, 8, (int64_t)time(NULL));
	return run(lg, st, err);
}

int sx_ledger_close_open_sessions(sx_ledger *lg, sx_err *err)
{
	return lg_exec(lg->db,
		       "UPDATE sessions SET result = 'interrupted', reason = 'the server stopped "
		       "(crash or kill) during the session' WHERE result = 'open'",
		       err);
}

int sx_ledger_begin(sx_ledger *lg, sx_err *err)
{
	return lg_exec(lg->db, "BEGIN IMMEDIATE", err);
}

int sx_ledger_commit(sx_ledger *lg, sx_err *err)
{
	return lg_exec(lg->db, "COMMIT", err);
}
