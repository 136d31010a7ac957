/* engine/ledger: the server's ledger in SQLite (docs/LEDGER.md). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "common/sx_util.h"
#include "engine/ledger/ledger_int.h"

/* The migrations, in order: migrations[i] brings user_version i to i + 1.
 * A database of a newer version than this code knows is refused. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE devices(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    " UNIQUE(name, fingerprint));"
    "CREATE TABLE sessions(id INTEGER PRIMARY KEY, device TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, addr TEXT, conn INTEGER, started INTEGER NOT NULL,"
    " ended INTEGER, result TEXT NOT NULL DEFAULT 'open', bytes INTEGER NOT NULL DEFAULT 0,"
    " files INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, reason TEXT);"
    "CREATE INDEX sessions_device ON sessions(device, started);"
    "CREATE INDEX sessions_started ON sessions(started);"
    "CREATE TABLE files(id INTEGER PRIMARY KEY, session_id INTEGER, file_no INTEGER,"
    " device TEXT NOT NULL, path TEXT NOT NULL, size INTEGER, root TEXT,"
    " state TEXT NOT NULL CHECK(state IN"
    " ('receiving','stored','refused','failed','partial')),"
    " verified INTEGER NOT NULL DEFAULT 0, signed INTEGER NOT NULL DEFAULT 0,"
    " batch INTEGER, receipt TEXT, started INTEGER NOT NULL, ended INTEGER, note TEXT);"
    "CREATE INDEX files_session ON files(session_id, file_no);"
    "CREATE INDEX files_path ON files(device, path);"
    "CREATE INDEX files_state ON files(state);"
    "CREATE INDEX files_started ON files(started);"
    "CREATE TABLE batches(id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL,"
    " batch_no INTEGER NOT NULL, files INTEGER NOT NULL, stored INTEGER NOT NULL,"
    " root TEXT NOT NULL, signature TEXT NOT NULL, receipt TEXT NOT NULL,"
    " time INTEGER NOT NULL);"
    "CREATE INDEX batches_session ON batches(session_id, batch_no);",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const char *const state_names[] = {"receiving", "stored", "refused", "failed", "partial"};

const char *sx_lfile_state_name(sx_lfile_state st)
{
	if ((unsigned)st >= sizeof(state_names) / sizeof(state_names[0]))
		return NULL;
	return state_names[st];
}

int sx_lfile_state_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (strcmp(name, state_names[i]) == 0)
			return (int)i;
	return -1;
}

static const char *const stmt_sql[ST_N] = {
    [ST_DEVICE] = "INSERT INTO devices(name, fingerprint, first_seen, last_seen) "
		  "VALUES(?1, ?2, ?3, ?3) ON CONFLICT(name, fingerprint) "
		  "DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
    [ST_SESS_START] = "INSERT OR REPLACE INTO sessions(id, device, fingerprint, addr, conn, "
		      "started) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_SESS_END] = "UPDATE sessions SET ended = ?2, result = ?3, bytes = ?4, files = ?5, "
		    "failed = ?6, reason = ?7 WHERE id = ?1",
    [ST_FBEGIN] = "INSERT INTO files(session_id, file_no, device, path, size, state, signed, "
		  "started) VALUES(?1, ?2, ?3, ?4, ?5, 'receiving', ?6, ?7)",
    [ST_FEND] = "UPDATE files SET state = ?3, size = coalesce(?4, size), "
		"root = coalesce(?5, root), verified = ?6, batch = ?7, ended = ?8, note = ?9 "
		"WHERE id = (SELECT max(id) FROM files WHERE session_id = ?1 AND file_no = ?2)",
    [ST_FINSERT] = "INSERT INTO files(session_id, file_no, device, path, size, root, state, "
		   "verified, signed, batch, started, ended, note) "
		   "VALUES(?1, ?2, ?10, ?11, ?4, ?5, ?3, ?6, ?12, ?7, ?8, ?8, ?9)",
    [ST_BATCH] = "INSERT INTO batches(session_id, batch_no, files, stored, root, signature, "
		 "receipt, time) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_RECEIPT] = "UPDATE files SET receipt = ?3 WHERE session_id = ?1 AND batch = ?2",
};

int lg_db_fail(sqlite3 *db, sx_err *err, const char *what)
{
	return sx_fail(err, SX_E_IO, "ledger: %s: %s", what,
		       db != NULL ? sqlite3_errmsg(db) : "out of memory");
}

int lg_exec(sqlite3 *db, const char *sql, sx_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sx_fail(err, SX_E_IO, "ledger: %s", msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int user_version(sqlite3 *db, int *v, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return lg_db_fail(db, err, "cannot read the schema version");
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Brings the schema to SX_LEDGER_VERSION, one transaction per step. */
static int migrate(sqlite3 *db, sx_err *err)
{
	int v = 0;
	char sql[64];
	if (user_version(db, &v, err) < 0)
		return -1;
	if (v > NMIGRATIONS)
		return sx_fail(err, SX_E_IO,
			       "ledger: schema version %d is newer than this sxfer knows (%d)", v,
			       NMIGRATIONS);
	for (; v < NMIGRATIONS; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (lg_exec(db, "BEGIN IMMEDIATE", err) < 0)
			return -1;
		if (lg_exec(db, migrations[v], err) < 0 || lg_exec(db, sql, err) < 0) {
			(void)lg_exec(db, "ROLLBACK", &(sx_err){0});
			sx_err_prefix(err, "migrating to version %d: ", v + 1);
			return -1;
		}
		if (lg_exec(db, "COMMIT", err) < 0)
			return -1;
	}
	return 0;
}

static int meta_get(sqlite3 *db, const char *key, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

static int meta_set(sqlite3 *db, const char *key, const char *val, sx_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1,
			       &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = 0;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		lg_db_fail(db, err, "cannot write the meta table");
	return rc;
}

int sx_ledger_default_path(const char *out_dir, char *buf, size_t cap, sx_err *err)
{
	size_t n = strlen(out_dir);
	while (n > 1 && out_dir[n - 1] == '/')
		n--; /* OUT/ is OUT: the ledger goes beside it, not into it */
	if (n == 1 && out_dir[0] == '/')
		return sx_fail(err, SX_E_USAGE, "--out /: give the ledger's place with --ledger");
	int w = snprintf(buf, cap, "%.*s%s", (int)n, out_dir, SX_LEDGER_SUFFIX);
	if (w < 0 || (size_t)w >= cap)
		return sx_fail(err, SX_E_USAGE, "%s: the path is too long for its ledger", out_dir);
	return 0;
}

static int lock_ledger(sx_ledger *lg, sx_err *err)
{
	/* One server per ledger (session numbers come from this process).
	 * flock does not touch SQLite's own (POSIX) locks. */
	lg->lock_fd = open(lg->path, O_RDONLY | O_CLOEXEC);
	if (lg->lock_fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot open the ledger", lg->path);
	if (flock(lg->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return sx_fail(err, SX_E_IO, "%s: another sxfer serve uses this ledger",
				       lg->path);
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot lock the ledger", lg->path);
	}
	return 0;
}

static int64_t max_session(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM sessions", -1, &st, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int sx_ledger_open(const char *path, int mode, sx_ledger **out, sx_err *err)
{
	sx_ledger *lg = calloc(1, sizeof(*lg));
	char val[32];
	int flags = SQLITE_OPEN_NOMUTEX;
	*out = NULL;
	if (lg == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	lg->mode = mode;
	lg->lock_fd = -1;
	pthread_mutex_init(&lg->mu, NULL);
	pthread_cond_init(&lg->cv, NULL);
	pthread_cond_init(&lg->idle, NULL);
	snprintf(lg->path, sizeof(lg->path), "%s", path);
	if (mode & SX_LEDGER_QUERY)
		flags |= SQLITE_OPEN_READONLY;
	else
		flags |=
		    SQLITE_OPEN_READWRITE | ((mode & SX_LEDGER_SERVER) ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(path, &lg->db, flags, NULL) != SQLITE_OK) {
		sx_fail(err, SX_E_IO, "%s: cannot open the ledger: %s", path,
			lg->db != NULL ? sqlite3_errmsg(lg->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(lg->db, 5000);
	if (mode & SX_LEDGER_SERVER)
		SX_GUARD(lock_ledger(lg, err));
	if (!(mode & SX_LEDGER_QUERY)) {
		/* WAL: readers (sxfer ledger) never wait for the server;
		 * NORMAL: a commit is durable at the next checkpoint, and the
		 * check after a crash makes up for the last moments. */
		SX_GUARD(lg_exec(lg->db, "PRAGMA journal_mode = WAL", err));
		SX_GUARD(lg_exec(lg->db, "PRAGMA synchronous = NORMAL", err));
		SX_GUARD(migrate(lg->db, err));
	} else {
		int v = 0;
		SX_GUARD(user_version(lg->db, &v, err));
		SX_ENSURE(v == SX_LEDGER_VERSION, err, SX_E_IO,
			  "%s: ledger schema version %d, this sxfer reads %d (start the server "
			  "once to migrate it)",
			  path, v, SX_LEDGER_VERSION);
	}
	if (mode & SX_LEDGER_SERVER) {
		lg->clean =
		    meta_get(lg->db, "clean", val, sizeof(val)) < 0 || strcmp(val, "1") == 0;
		SX_GUARD(meta_set(lg->db, "clean", "0", err));
		atomic_store(&lg->next_session, (uint64_t)max_session(lg->db) + 1);
		for (int i = 0; i < ST_N; i++)
			if (sqlite3_prepare_v3(lg->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					       &lg->st[i], NULL) != SQLITE_OK) {
				lg_db_fail(lg->db, err, "cannot prepare a statement");
				goto out;
			}
		lg->q = calloc(SX_LEDGER_QUEUE, sizeof(*lg->q));
		SX_ENSURE(lg->q != NULL, err, SX_E_OTHER, "out of memory");
	}
	*out = lg;
	return 0;
out:
	sx_err_prefix(err, "%s: ", path);
	lg->mode = 0; /* not marked clean: it was not in use */
	sx_ledger_close(lg);
	return -1;
}

bool sx_ledger_was_clean(const sx_ledger *lg)
{
	return lg->clean;
}

uint64_t sx_ledger_session_id(sx_ledger *lg)
{
	return lg == NULL ? 0 : atomic_fetch_add(&lg->next_session, 1);
}

uint64_t sx_ledger_dropped(const sx_ledger *lg)
{
	return atomic_load(&((sx_ledger *)lg)->dropped);
}

uint64_t sx_ledger_commits(const sx_ledger *lg)
{
	return atomic_load(&((sx_ledger *)lg)->commits);
}

void sx_ledger_event(sx_ledger *lg, const sx_ledger_ev *ev)
{
	if (lg == NULL || lg->q == NULL)
		return;
	pthread_mutex_lock(&lg->mu);
	if (lg->count == SX_LEDGER_QUEUE || lg->stop) {
		pthread_mutex_unlock(&lg->mu);
		atomic_fetch_add(&lg->dropped, 1);
		return;
	}
	sx_ledger_ev *e = &lg->q[(lg->head + lg->count) % SX_LEDGER_QUEUE];
	*e = *ev;
	if (e->time == 0)
		e->time = (int64_t)time(NULL);
	/* bounded strings: a caller's copy is NUL terminated, here for sure */
	e->name[sizeof(e->name) - 1] = e->fingerprint[sizeof(e->fingerprint) - 1] = '\0';
	e->addr[sizeof(e->addr) - 1] = e->path[sizeof(e->path) - 1] = '\0';
	e->reason[sizeof(e->reason) - 1] = '\0';
	if (e->sig_len > sizeof(e->sig))
		e->sig_len = sizeof(e->sig);
	lg->count++;
	lg->queued++;
	/* The writer wakes by itself every SX_LEDGER_GROUP_MS; sooner only
	 * when a full group waits. */
	if (lg->count >= SX_LEDGER_GROUP_MAX)
		pthread_cond_signal(&lg->cv);
	pthread_mutex_unlock(&lg->mu);
}

static void hexstr(const uint8_t *b, size_t n, char *out)
{
	sx_hex(b, n, out);
}

static int64_t opt_i64(bool has, uint64_t v)
{
	return has ? (int64_t)v : -1;
}

static void bind_opt(sqlite3_stmt *st, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v);
}

void lg_bind_str(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL || s[0] == '\0')
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static int step(sx_ledger *lg, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		sx_log("warn", "ledger", "reason=%s", SX_LOGQ(sqlite3_errmsg(lg->db)));
		return -1;
	}
	return 0;
}

/* One event into the open transaction. */
static void apply(sx_ledger *lg, const sx_ledger_ev *e)
{
	sqlite3_stmt *st;
	char root[65] = "", sig[2 * 1024 + 1] = "", rid[65] = "";
	switch (e->kind) {
	case SX_LEV_SESSION_START:
		st = lg->st[ST_DEVICE];
		sqlite3_bind_text(st, 1, e->name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, e->fingerprint, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, e->time);
		(void)step(lg, st);
		st = lg->st[ST_SESS_START];
		sqlite3_bind_int64(st, 1, (int64_t)e->session);
		sqlite3_bind_text(st, 2, e->name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, e->fingerprint, -1, SQLITE_TRANSIENT);
		lg_bind_str(st, 4, e->addr);
		sqlite3_bind_int64(st, 5, e->conn);
		sqlite3_bind_int64(st, 6, e->time);
		(void)step(lg, st);
		break;
	case SX_LEV_SESSION_END:
		st = lg->st[ST_SESS_END];
		sqlite3_bind_int64(st, 1, (int64_t)e->session);
		sqlite3_bind_int64(st, 2, e->time);
		sqlite3_bind_text(st, 3, e->ok ? "ok" : "failed", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)e->size);
		sqlite3_bind_int64(st, 5, (int64_t)e->files);
		sqlite3_bind_int64(st, 6, (int64_t)e->failed);
		lg_bind_str(st, 7, e->reason);
		(void)step(lg, st);
		if (e->name[0] != '\0') {
			st = lg->st[ST_DEVICE];
			sqlite3_bind_text(st, 1, e->name, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 2, e->fingerprint, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 3, e->time);
			(void)step(lg, st);
		}
		break;
	case SX_LEV_FILE_BEGIN:
		st = lg->st[ST_FBEGIN];
		sqlite3_bind_int64(st, 1, (int64_t)e->session);
		sqlite3_bind_int64(st, 2, e->file_id);
		sqlite3_bind_text(st, 3, e->name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, e->path, -1, SQLITE_TRANSIENT);
		bind_opt(st, 5, opt_i64(e->has_size, e->size));
		sqlite3_bind_int(st, 6, e->sign);
		sqlite3_bind_int64(st, 7, e->time);
		(void)step(lg, st);
		break;
	case SX_LEV_FILE_END:
		if (e->has_root)
			hexstr(e->root, 32, root);
		/* An update of the row its FILE_BEGIN made; a file refused
		 * before it began has none: a row of its own. */
		for (int ins = 0; ins < 2; ins++) {
			st = lg->st[ins ? ST_FINSERT : ST_FEND];
			sqlite3_bind_int64(st, 1, (int64_t)e->session);
			sqlite3_bind_int64(st, 2, e->file_id);
			sqlite3_bind_text(st, 3, sx_lfile_state_name(e->state), -1, SQLITE_STATIC);
			bind_opt(st, 4, opt_i64(e->has_size, e->size));
			lg_bind_str(st, 5, root);
			sqlite3_bind_int64(st, 6, (int64_t)e->verified);
			bind_opt(st, 7, e->batch > 0 ? (int64_t)e->batch : -1);
			sqlite3_bind_int64(st, 8, e->time);
			lg_bind_str(st, 9, e->reason);
			if (ins) {
				sqlite3_bind_text(st, 10, e->name, -1, SQLITE_TRANSIENT);
				sqlite3_bind_text(st, 11, e->path, -1, SQLITE_TRANSIENT);
				sqlite3_bind_int(st, 12, e->sign);
			}
			if (step(lg, st) < 0 || sqlite3_changes(lg->db) > 0 || e->path[0] == '\0')
				break;
		}
		break;
	case SX_LEV_BATCH: {
		uint8_t md[32];
		unsigned mdlen = 0;
		hexstr(e->root, 32, root);
		hexstr(e->sig, e->sig_len, sig);
		/* The receipt's id: SHA-256 of its signature. */
		if (EVP_Digest(e->sig, e->sig_len, md, &mdlen, EVP_sha256(), NULL) == 1)
			hexstr(md, 32, rid);
		st = lg->st[ST_BATCH];
		sqlite3_bind_int64(st, 1, (int64_t)e->session);
		sqlite3_bind_int64(st, 2, (int64_t)e->batch);
		sqlite3_bind_int64(st, 3, e->batch_files);
		sqlite3_bind_int64(st, 4, e->stored);
		sqlite3_bind_text(st, 5, root, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 6, sig, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 7, rid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 8, e->time);
		(void)step(lg, st);
		st = lg->st[ST_RECEIPT];
		sqlite3_bind_int64(st, 1, (int64_t)e->session);
		sqlite3_bind_int64(st, 2, (int64_t)e->batch);
		sqlite3_bind_text(st, 3, rid, -1, SQLITE_TRANSIENT);
		(void)step(lg, st);
		break;
	}
	}
}

/* The writer: every SX_LEDGER_GROUP_MS (or once SX_LEDGER_GROUP_MAX events
 * wait), what is queued goes in one transaction. The events are applied
 * from the ring itself: the loops only append behind them. */
static void *writer(void *arg)
{
	sx_ledger *lg = arg;
	sx_err err = {0};
	pthread_mutex_lock(&lg->mu);
	for (;;) {
		if (lg->count < SX_LEDGER_GROUP_MAX && !lg->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += SX_LEDGER_GROUP_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&lg->cv, &lg->mu, &ts);
		}
		size_t n = lg->count < SX_LEDGER_GROUP_MAX ? lg->count : SX_LEDGER_GROUP_MAX;
		size_t head = lg->head;
		uint64_t dropped = atomic_load(&lg->dropped);
		if (n == 0) {
			pthread_cond_broadcast(&lg->idle);
			if (lg->stop)
				break;
			continue;
		}
		lg->busy = true;
		pthread_mutex_unlock(&lg->mu);
		if (dropped > lg->dropped_logged) {
			sx_log("warn", "ledger",
			       "dropped=%llu reason=\"the ledger's queue was full; events were "
			       "dropped, not waited for\"",
			       (unsigned long long)dropped);
			lg->dropped_logged = dropped;
		}
		if (lg_exec(lg->db, "BEGIN", &err) == 0) {
			for (size_t i = 0; i < n; i++)
				apply(lg, &lg->q[(head + i) % SX_LEDGER_QUEUE]);
			if (lg_exec(lg->db, "COMMIT", &err) == 0)
				atomic_fetch_add(&lg->commits, 1);
			else
				(void)lg_exec(lg->db, "ROLLBACK", &(sx_err){0});
		}
		if (err.cls != SX_OK) {
			sx_log("error", "ledger", "events=%zu reason=%s", n, SX_LOGQ(err.msg));
			sx_err_clear(&err);
		}
		pthread_mutex_lock(&lg->mu);
		lg->busy = false;
		lg->head = (lg->head + n) % SX_LEDGER_QUEUE;
		lg->count -= n;
		lg->applied += n;
		pthread_cond_broadcast(&lg->idle);
	}
	pthread_mutex_unlock(&lg->mu);
	return NULL;
}

int sx_ledger_start(sx_ledger *lg, sx_err *err)
{
	int e = pthread_create(&lg->thread, NULL, writer, lg);
	if (e != 0)
		return sx_fail_errno(err, SX_E_OTHER, e, "ledger: cannot start its writer");
	lg->started = true;
	return 0;
}

void sx_ledger_sync(sx_ledger *lg)
{
	if (lg == NULL || !lg->started)
		return;
	pthread_mutex_lock(&lg->mu);
	uint64_t want = lg->queued;
	pthread_cond_signal(&lg->cv);
	while (lg->applied < want)
		pthread_cond_wait(&lg->idle, &lg->mu);
	pthread_mutex_unlock(&lg->mu);
}

void sx_ledger_close(sx_ledger *lg)
{
	if (lg == NULL)
		return;
	if (lg->started) {
		pthread_mutex_lock(&lg->mu);
		lg->stop = true;
		pthread_cond_signal(&lg->cv);
		pthread_mutex_unlock(&lg->mu);
		pthread_join(lg->thread, NULL);
		uint64_t dropped = atomic_load(&lg->dropped);
		if (dropped > 0)
			sx_log("warn", "ledger", "dropped=%llu path=%s",
			       (unsigned long long)dropped, SX_LOGQ(lg->path));
	}
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(lg->st[i]);
	sx_err err = {0};
	/* Marked clean only with nothing dropped: else the next start checks
	 * the ledger against the disk. */
	if ((lg->mode & SX_LEDGER_SERVER) && atomic_load(&lg->dropped) == 0 &&
	    meta_set(lg->db, "clean", "1", &err) < 0)
		sx_log("warn", "ledger", "reason=%s", SX_LOGQ(err.msg));
	sqlite3_close(lg->db);
	if (lg->lock_fd >= 0)
		close(lg->lock_fd);
	free(lg->q);
	pthread_mutex_destroy(&lg->mu);
	pthread_cond_destroy(&lg->cv);
	pthread_cond_destroy(&lg->idle);
	free(lg);
}
