/* engine/agent: the agent's queue in SQLite (sx_agentq.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/sx_util.h"
#include "engine/agent/sx_agentq.h"

#define AQ_VERSION 1

struct sx_aq {
	sqlite3 *db;
	bool in_tx; /* between sx_aq_begin and sx_aq_commit */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, state INTEGER NOT NULL,"
    " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " queued_ms INTEGER NOT NULL, next_ms INTEGER NOT NULL DEFAULT 0,"
    " closed INTEGER NOT NULL DEFAULT 0, batch INTEGER NOT NULL DEFAULT 0,"
    " tries INTEGER NOT NULL DEFAULT 0, after INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS files_state ON files(state, next_ms, queued_ms);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

static int db_fail(sx_aq *q, sx_err *err, const char *what)
{
	return sx_fail(err, SX_E_IO, "agent queue: %s: %s", what, sqlite3_errmsg(q->db));
}

static int exec(sx_aq *q, const char *sql, sx_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	sx_fail(err, SX_E_IO, "agent queue: %s", msg ? msg : sqlite3_errmsg(q->db));
	sqlite3_free(msg);
	return -1;
}

static int prep(sx_aq *q, const char *sql, sqlite3_stmt **st, sx_err *err)
{
	if (sqlite3_prepare_v2(q->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(q, err, "prepare");
	return 0;
}

/* Steps a statement that returns no row, and finalizes it. */
static int run(sx_aq *q, sqlite3_stmt *st, sx_err *err)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(q, err, "write");
	return 0;
}

int sx_aq_open(const char *path, sx_aq **out, sx_err *err)
{
	sx_aq *q = calloc(1, sizeof(*q));
	int ver = 0;
	sqlite3_stmt *st = NULL;
	*out = NULL;
	if (q == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	if (sqlite3_open_v2(path, &q->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		sx_fail(err, SX_E_IO, "%s: %s", path,
			q->db ? sqlite3_errmsg(q->db) : "cannot open the agent queue");
		goto out;
	}
	sqlite3_busy_timeout(q->db, 5000);
	/* WAL: a killed process leaves each transaction whole or absent;
	 * NORMAL: a crash of the process loses nothing, a power cut at most
	 * the last transactions (docs/AGENT.md: a lost mark is a re-send the
	 * receiver answers "already there", or a file that is gone). */
	SX_GUARD(exec(q, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err));
	SX_GUARD(prep(q, "PRAGMA user_version", &st, err));
	if (sqlite3_step(st) == SQLITE_ROW)
		ver = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	SX_ENSURE(ver <= AQ_VERSION, err, SX_E_IO,
		  "%s: agent queue of a newer version (%d) than this sxfer knows", path, ver);
	SX_GUARD(exec(q, schema, err));
	SX_GUARD(exec(q, "PRAGMA user_version=1", err));
	*out = q;
	return 0;
out:
	sx_err_prefix(err, "%s: ", path);
	sx_aq_close(q);
	return -1;
}

void sx_aq_close(sx_aq *q)
{
	if (q == NULL)
		return;
	sqlite3_close(q->db);
	free(q);
}

int sx_aq_begin(sx_aq *q, sx_err *err)
{
	if (exec(q, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	q->in_tx = true;
	return 0;
}

int sx_aq_commit(sx_aq *q, sx_err *err)
{
	q->in_tx = false;
	if (exec(q, "COMMIT", err) < 0) {
		sx_aq_rollback(q);
		return -1;
	}
	return 0;
}

void sx_aq_rollback(sx_aq *q)
{
	q->in_tx = false;
	if (sqlite3_get_autocommit(q->db) == 0)
		(void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

static void read_row(sqlite3_stmt *st, sx_aq_row *r)
{
	const char *p = (const char *)sqlite3_column_text(st, 0);
	r->path = strdup(p ? p : "");
	r->state = (sx_aq_state)sqlite3_column_int(st, 1);
	r->st.size = (uint64_t)sqlite3_column_int64(st, 2);
	r->st.mtime_ns = sqlite3_column_int64(st, 3);
	r->st.ino = (uint64_t)sqlite3_column_int64(st, 4);
	r->queued_ms = sqlite3_column_int64(st, 5);
	r->next_ms = sqlite3_column_int64(st, 6);
	r->closed = sqlite3_column_int(st, 7) != 0;
	r->batch = (uint64_t)sqlite3_column_int64(st, 8);
	r->tries = (unsigned)sqlite3_column_int(st, 9);
	r->after = sqlite3_column_int(st, 10) != 0;
}

#define ROW_COLS "path, state, size, mtime_ns, ino, queued_ms, next_ms, closed, batch, tries, after"

int sx_aq_get(sx_aq *q, const char *path, sx_aq_row *row, bool *found, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*found = false;
	memset(row, 0, sizeof(*row));
	SX_GUARD(prep(q, "SELECT " ROW_COLS " FROM files WHERE path = ?1", &st, err));
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_row(st, row);
		*found = true;
		SX_ENSURE(row->path != NULL, err, SX_E_OTHER, "out of memory");
	} else if (rc != SQLITE_DONE) {
		db_fail(q, err, "read");
		goto out;
	}
	sqlite3_finalize(st);
	return 0;
out:
	sqlite3_finalize(st);
	return -1;
}

static bool same_stat(const sx_aq_stat *a, const sx_aq_stat *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ino == b->ino;
}

static int insert(sx_aq *q, const char *path, const sx_aq_stat *s, bool closed, int64_t now,
		  sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (prep(q,
		 "INSERT OR REPLACE INTO files(path, state, size, mtime_ns, ino, queued_ms, "
		 "closed) VALUES(?1, 0, ?2, ?3, ?4, ?5, ?6)",
		 &st, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)s->size);
	sqlite3_bind_int64(st, 3, s->mtime_ns);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)s->ino);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int(st, 6, closed);
	return run(q, st, err);
}

int sx_aq_seen(sx_aq *q, const char *path, const sx_aq_stat *s, bool closed, int64_t now,
	       sx_aq_seen_result *res, sx_err *err)
{
	sx_aq_row r;
	bool found;
	int rc = -1;
	sqlite3_stmt *st = NULL;
	SX_GUARD(sx_aq_get(q, path, &r, &found, err));
	if (!found) {
		*res = SX_AQ_ADDED;
		rc = insert(q, path, s, closed, now, err);
		goto out;
	}
	if (r.state == SX_AQ_QUEUED || r.state == SX_AQ_REFUSED) {
		/* Written again while it waited: it waits from now, as it is
		 * now; an event says it was closed, a scan leaves that as is. */
		*res = SX_AQ_UPDATED;
		if (same_stat(&r.st, s) && (!closed || r.closed)) {
			rc = 0;
			goto out;
		}
		SX_GUARD(prep(q,
			      "UPDATE files SET size = ?2, mtime_ns = ?3, ino = ?4, queued_ms = "
			      "?5, closed = max(closed, ?6) WHERE path = ?1",
			      &st, err));
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)s->size);
		sqlite3_bind_int64(st, 3, s->mtime_ns);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)s->ino);
		sqlite3_bind_int64(st, 5, same_stat(&r.st, s) ? r.queued_ms : now);
		sqlite3_bind_int(st, 6, closed);
		rc = run(q, st, err);
		goto out;
	}
	*res = r.state == SX_AQ_DONE && !same_stat(&r.st, s) ? SX_AQ_CHANGED : SX_AQ_KNOWN;
	rc = 0;
out:
	free(r.path);
	return rc;
}

int sx_aq_recover(sx_aq *q, uint64_t *n, sx_err *err)
{
	*n = 0;
	if (exec(q, "UPDATE files SET state = 0 WHERE state = 1", err) < 0)
		return -1;
	*n = (uint64_t)sqlite3_changes(q->db);
	return 0;
}

int sx_aq_due(sx_aq *q, int64_t now, uint64_t *n, int64_t *oldest, int64_t *wake, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*n = 0;
	*oldest = 0;
	*wake = 0;
	SX_GUARD(prep(q,
		      "SELECT count(*), min(queued_ms), (SELECT min(next_ms) FROM files "
		      "WHERE state IN (0, 3) AND next_ms > ?1) FROM files "
		      "WHERE state IN (0, 3) AND next_ms <= ?1",
		      &st, err));
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_fail(q, err, "read");
		goto out;
	}
	*n = (uint64_t)sqlite3_column_int64(st, 0);
	*oldest = sqlite3_column_int64(st, 1);
	*wake = sqlite3_column_int64(st, 2);
	sqlite3_finalize(st);
	return 0;
out:
	sqlite3_finalize(st);
	return -1;
}

/* The rows a statement returns (its parameters bound), at most max. */
static int collect(sx_aq *q, sqlite3_stmt *st, size_t max, sx_aq_row **rows, size_t *n, sx_err *err)
{
	size_t cap = 0;
	int rc;
	*rows = NULL;
	*n = 0;
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sx_grow(rows, &cap, *n + 1, sizeof(**rows), max, "queued files", err) < 0)
			goto out;
		read_row(st, &(*rows)[*n]);
		(*n)++;
		SX_ENSURE((*rows)[*n - 1].path != NULL, err, SX_E_OTHER, "out of memory");
	}
	if (*n < max && rc != SQLITE_DONE) {
		db_fail(q, err, "read");
		goto out;
	}
	sqlite3_finalize(st);
	return 0;
out:
	sqlite3_finalize(st);
	sx_aq_rows_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return -1;
}

int sx_aq_take(sx_aq *q, int64_t now, size_t max, sx_aq_row **rows, size_t *n, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*rows = NULL;
	*n = 0;
	if (prep(q,
		 "SELECT " ROW_COLS " FROM files WHERE state IN (0, 3) AND next_ms <= ?1 "
		 "ORDER BY queued_ms, path LIMIT ?2",
		 &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	return collect(q, st, max, rows, n, err);
}

int sx_aq_after_pending(sx_aq *q, size_t max, sx_aq_row **rows, size_t *n, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*rows = NULL;
	*n = 0;
	if (prep(q,
		 "SELECT " ROW_COLS " FROM files WHERE state = 2 AND after = 0 "
		 "ORDER BY batch, path LIMIT ?1",
		 &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
	return collect(q, st, max, rows, n, err);
}

void sx_aq_rows_free(sx_aq_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].path);
	free(rows);
}

int sx_aq_set(sx_aq *q, const char *path, sx_aq_state state, const sx_aq_stat *s, uint64_t batch,
	      int64_t next_ms, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (prep(q,
		 "UPDATE files SET state = ?2, batch = ?3, next_ms = ?4, "
		 "tries = tries + (?2 = 3), after = 0, size = coalesce(?5, size), "
		 "mtime_ns = coalesce(?6, mtime_ns), ino = coalesce(?7, ino) WHERE path = ?1",
		 &st, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)state);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)batch);
	sqlite3_bind_int64(st, 4, next_ms);
	if (s != NULL) {
		sqlite3_bind_int64(st, 5, (sqlite3_int64)s->size);
		sqlite3_bind_int64(st, 6, s->mtime_ns);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)s->ino);
	}
	return run(q, st, err);
}

int sx_aq_after_applied(sx_aq *q, const char *path, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (prep(q, "UPDATE files SET after = 1 WHERE path = ?1", &st, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	return run(q, st, err);
}

int sx_aq_forget(sx_aq *q, const char *path, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (prep(q, "DELETE FROM files WHERE path = ?1", &st, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	return run(q, st, err);
}

int sx_aq_count(sx_aq *q, sx_aq_state state, uint64_t *n, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*n = 0;
	if (prep(q, "SELECT count(*) FROM files WHERE state = ?1", &st, err) < 0)
		return -1;
	sqlite3_bind_int(st, 1, (int)state);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_fail(q, err, "read");
}

int sx_aq_next_batch(sx_aq *q, uint64_t *batch, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	*batch = 0;
	if (prep(q,
		 "INSERT INTO meta(key, value) VALUES('batch', 1) ON CONFLICT(key) "
		 "DO UPDATE SET value = value + 1 RETURNING value",
		 &st, err) < 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*batch = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_fail(q, err, "batch number");
}
