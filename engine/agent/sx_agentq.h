/* engine/agent/queue: the camera agent's persistent queue, one SQLite
 * database in its state folder (docs/AGENT.md, "The queue"). One row per
 * file of the watched folder, by its path relative to that folder:
 *
 *   queued   seen complete (closed after writing, moved in, or found by a
 *            scan); waits for a batch
 *   sending  in the batch being sent (a start-up puts these back to queued:
 *            a batch cut off is sent again, and the receiver's "already
 *            there" keeps that from being a second copy)
 *   done     stored, covered by a verified receipt; never sent again
 *   refused  the receiver refused it; tried again after next_ms
 *   skipped  cannot be sent (a name the receiver refuses); never sent
 *
 * Each call is one transaction unless it runs between sx_aq_begin and
 * sx_aq_commit; the database is in WAL mode, so a process killed at any
 * point leaves every transaction whole or absent. Times are wall-clock
 * milliseconds (they outlive the process). */
#ifndef SX_AGENTQ_H
#define SX_AGENTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"

typedef struct sx_aq sx_aq;

typedef enum sx_aq_state {
	SX_AQ_QUEUED = 0,
	SX_AQ_SENDING = 1,
	SX_AQ_DONE = 2,
	SX_AQ_REFUSED = 3,
	SX_AQ_SKIPPED = 4,
} sx_aq_state;

/* What identifies a file's content for the agent: when any of these
 * changes, the file changed. */
typedef struct sx_aq_stat {
	uint64_t size;
	int64_t mtime_ns;
	uint64_t ino;
} sx_aq_stat;

typedef struct sx_aq_row {
	char *path;
	sx_aq_state state;
	sx_aq_stat st; /* as queued; done: as sent */
	int64_t queued_ms;
	int64_t next_ms; /* not before (a deferred or refused file) */
	bool closed;	 /* seen closed after writing or moved in (not only scanned) */
	uint64_t batch;
	unsigned tries;
	bool after; /* done: --after has been applied */
} sx_aq_row;

/* What sx_aq_seen did. */
typedef enum sx_aq_seen_result {
	SX_AQ_ADDED = 0, /* a new file, queued */
	SX_AQ_UPDATED,	 /* already queued: its stat is now this one */
	SX_AQ_KNOWN,	 /* done, sending or skipped, and unchanged: nothing to do */
	SX_AQ_CHANGED,	 /* done, and different now: not sent again (docs/AGENT.md) */
} sx_aq_seen_result;

int sx_aq_open(const char *path, sx_aq **q, sx_err *err) SX_MUST_CHECK;
void sx_aq_close(sx_aq *q);

int sx_aq_begin(sx_aq *q, sx_err *err) SX_MUST_CHECK;
int sx_aq_commit(sx_aq *q, sx_err *err) SX_MUST_CHECK;
/* Ends an open transaction without its changes (after a failure). */
void sx_aq_rollback(sx_aq *q);

/* A complete file seen at now (closed: by an event, not only a scan). */
int sx_aq_seen(sx_aq *q, const char *path, const sx_aq_stat *st, bool closed, int64_t now,
	       sx_aq_seen_result *res, sx_err *err) SX_MUST_CHECK;

/* Start-up: what a stopped batch left as sending is queued again; *n
 * of them. */
int sx_aq_recover(sx_aq *q, uint64_t *n, sx_err *err) SX_MUST_CHECK;

/* Queued (or refused) files due at now: how many, the oldest queued time
 * among them, and the earliest next_ms of those not due yet (0: none). */
int sx_aq_due(sx_aq *q, int64_t now, uint64_t *n, int64_t *oldest, int64_t *wake,
	      sx_err *err) SX_MUST_CHECK;

/* Up to max files due at now, oldest first (*rows is malloc'd). */
int sx_aq_take(sx_aq *q, int64_t now, size_t max, sx_aq_row **rows, size_t *n,
	       sx_err *err) SX_MUST_CHECK;
/* Done files whose --after is not applied yet (after a stop in between). */
int sx_aq_after_pending(sx_aq *q, size_t max, sx_aq_row **rows, size_t *n,
			sx_err *err) SX_MUST_CHECK;
void sx_aq_rows_free(sx_aq_row *rows, size_t n);

/* Sets a file's state; st (NULL: unchanged), batch and next_ms as given;
 * tries counts up for SX_AQ_REFUSED. */
int sx_aq_set(sx_aq *q, const char *path, sx_aq_state state, const sx_aq_stat *st, uint64_t batch,
	      int64_t next_ms, sx_err *err) SX_MUST_CHECK;
/* --after applied to a done file that stays where it is (keep). */
int sx_aq_after_applied(sx_aq *q, const char *path, sx_err *err) SX_MUST_CHECK;
/* The file is gone from the watched folder (deleted, moved, vanished). */
int sx_aq_forget(sx_aq *q, const char *path, sx_err *err) SX_MUST_CHECK;

/* One row (*found false when there is none); row->path is malloc'd. */
int sx_aq_get(sx_aq *q, const char *path, sx_aq_row *row, bool *found, sx_err *err) SX_MUST_CHECK;
/* Files in state st. */
int sx_aq_count(sx_aq *q, sx_aq_state st, uint64_t *n, sx_err *err) SX_MUST_CHECK;
/* The next batch number (kept in the database: numbers are not reused). */
int sx_aq_next_batch(sx_aq *q, uint64_t *batch, sx_err *err) SX_MUST_CHECK;

#endif
