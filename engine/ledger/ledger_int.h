/* engine/ledger internals shared by ledger.c (the database, the writer
 * thread) and ledger_query.c (queries and repairs). Not public. */
#ifndef SX_LEDGER_INT_H
#define SX_LEDGER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <sqlite3.h>

#include "engine/ledger/sx_ledger.h"

/* the prepared statements of the writer */
enum {
	ST_DEVICE,
	ST_SESS_START,
	ST_SESS_END,
	ST_FBEGIN,
	ST_FEND,
	ST_FINSERT,
	ST_BATCH,
	ST_RECEIPT,
	ST_N
};

struct sx_ledger {
	sqlite3 *db;
	int mode;
	int lock_fd;
	bool clean; /* the previous server closed it */
	char path[4096];
	sqlite3_stmt *st[ST_N];
	atomic_uint_fast64_t next_session;
	/* the queue: a ring of SX_LEDGER_QUEUE events */
	pthread_mutex_t mu;
	pthread_cond_t cv, idle;
	sx_ledger_ev *q;
	size_t head, count;
	bool stop, busy, started;
	uint64_t queued, applied; /* events queued and applied, ever */
	atomic_uint_fast64_t dropped, commits;
	uint64_t dropped_logged;
	pthread_t thread;
};

/* An SQLite failure as SX_E_IO, naming what failed. */
int lg_db_fail(sqlite3 *db, sx_err *err, const char *what);
int lg_exec(sqlite3 *db, const char *sql, sx_err *err);
/* Binds s, or NULL when empty. */
void lg_bind_str(sqlite3_stmt *st, int i, const char *s);

#endif
