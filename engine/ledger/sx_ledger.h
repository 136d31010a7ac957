/* engine/ledger: the server's ledger, a SQLite database of every identity
 * seen, every session, every file received and every batch receipted
 * (docs/LEDGER.md). The receiving loops hand events to sx_ledger_event,
 * which copies them into a bounded queue and never blocks on the disk: a
 * writer thread applies them in transactions of at most
 * SX_LEDGER_GROUP_MAX events or SX_LEDGER_GROUP_MS milliseconds. When the
 * queue is full an event is dropped and counted (a warning in the log),
 * never waited for.
 *
 * The ledger uses common only; what compares it with the files on disk
 * (sx_ledger_check) lives in engine/transfer, which can read .sxsig files. */
#ifndef SX_LEDGER_H
#define SX_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"

#define SX_LEDGER_VERSION   1	 /* PRAGMA user_version of the newest schema */
#define SX_LEDGER_QUEUE	    1024 /* events waiting for the writer (about 6 KiB each) */
#define SX_LEDGER_GROUP_MAX 512	 /* events per transaction, at most */
#define SX_LEDGER_GROUP_MS  100	 /* a transaction at least this often */
#define SX_LEDGER_SUFFIX    ".ledger.sqlite"

#define SX_LEDGER_NAME_MAX   256
#define SX_LEDGER_PATH_MAX   4097
#define SX_LEDGER_REASON_MAX 256

typedef struct sx_ledger sx_ledger;

typedef enum sx_lfile_state {
	SX_LF_RECEIVING = 0,
	SX_LF_STORED,
	SX_LF_REFUSED,
	SX_LF_FAILED,
	SX_LF_PARTIAL
} sx_lfile_state;

/* "receiving", "stored", ...; NULL for an unknown state. */
const char *sx_lfile_state_name(sx_lfile_state st);
/* The state of a name; -1 when unknown. */
int sx_lfile_state_parse(const char *name);

typedef enum sx_lev_kind {
	SX_LEV_SESSION_START = 1, /* identity seen, session opened */
	SX_LEV_SESSION_END,	  /* ok/failed, bytes, files */
	SX_LEV_FILE_BEGIN,	  /* a file being received */
	SX_LEV_FILE_END,	  /* stored, refused, failed or partial */
	SX_LEV_BATCH		  /* a batch receipted */
} sx_lev_kind;

/* One event, copied whole into the queue: strings are bounded (cut, never
 * overflowing). */
typedef struct sx_ledger_ev {
	sx_lev_kind kind;
	int64_t time;	  /* unix seconds; 0: now */
	uint64_t session; /* from sx_ledger_session_id */
	uint32_t file_id; /* the sender's file number in the session */
	sx_lfile_state state;
	bool ok;		      /* SESSION_END: the session completed */
	bool sign;		      /* the file (or the session) is signed */
	bool has_root;		      /* root is set */
	bool has_size;		      /* size is known (not a stream still running) */
	uint64_t size;		      /* file: its size; session: bytes received */
	uint64_t verified;	      /* file: bytes covered by a verified signature */
	uint64_t files, failed;	      /* SESSION_END: files stored and refused */
	uint64_t batch;		      /* batch number (1, 2, ...); 0: none */
	uint32_t batch_files, stored; /* BATCH */
	unsigned conn;		      /* the server's connection number (log lines) */
	uint8_t root[32];	      /* file or batch Merkle root */
	uint8_t sig[1024];	      /* BATCH: the receipt's signature */
	size_t sig_len;
	char name[SX_LEDGER_NAME_MAX];	   /* the sender's certificate name */
	char fingerprint[65];		   /* its certificate's SHA-256 */
	char addr[64];			   /* SESSION_START: where from */
	char path[SX_LEDGER_PATH_MAX];	   /* FILE_*: relative to OUT/<name>/ */
	char reason[SX_LEDGER_REASON_MAX]; /* why it failed or was refused */
} sx_ledger_ev;

/* The default ledger of OUT: OUT with SX_LEDGER_SUFFIX (beside OUT, never
 * in it: no sender's folder can be it). */
int sx_ledger_default_path(const char *out_dir, char *buf, size_t cap, sx_err *err) SX_MUST_CHECK;

enum {
	SX_LEDGER_SERVER = 1, /* a server's: locked, a writer thread, the clean mark */
	SX_LEDGER_QUERY = 2,  /* read only, the file must exist */
	SX_LEDGER_REPAIR = 4  /* writes without a writer (sxfer ledger check --repair) */
};

/* Opens (creating, for SERVER) the database and brings its schema to
 * SX_LEDGER_VERSION. SERVER also takes an exclusive lock (one server per
 * ledger) and marks the ledger in use until sx_ledger_close. */
int sx_ledger_open(const char *path, int mode, sx_ledger **out, sx_err *err) SX_MUST_CHECK;
/* SERVER: was the ledger closed cleanly by the last server (false after a
 * crash: the events of its last moments may be missing)? */
bool sx_ledger_was_clean(const sx_ledger *lg);
/* SERVER: starts the writer thread. */
int sx_ledger_start(sx_ledger *lg, sx_err *err) SX_MUST_CHECK;
/* Writes what is queued, stops the writer, marks the ledger clean, closes.
 * NULL is fine. */
void sx_ledger_close(sx_ledger *lg);

/* A new session number (never blocks). */
uint64_t sx_ledger_session_id(sx_ledger *lg);
/* Copies ev into the queue; drops it (counted) when the queue is full.
 * Never blocks on the disk. lg may be NULL (no ledger). */
void sx_ledger_event(sx_ledger *lg, const sx_ledger_ev *ev);
/* Events dropped so far because the queue was full. */
uint64_t sx_ledger_dropped(const sx_ledger *lg);
/* Waits until every event queued before the call is committed (tests). */
void sx_ledger_sync(sx_ledger *lg);
/* Transactions committed by the writer so far (tests). */
uint64_t sx_ledger_commits(const sx_ledger *lg);

/* ---- queries and repairs (no writer thread running) -------------------- */

typedef enum sx_ledger_table { SX_LQ_DEVICES = 1, SX_LQ_SESSIONS, SX_LQ_FILES } sx_ledger_table;

typedef struct sx_ledger_filter {
	const char *device; /* NULL: all */
	int64_t since;	    /* unix seconds; 0: all */
	int state;	    /* files: an sx_lfile_state; -1: all */
} sx_ledger_filter;

#define SX_LEDGER_COLS_MAX 16

/* One row of a query: column names, values as text (NULL for SQL NULL)
 * and whether each is a number (for JSON). */
typedef struct sx_ledger_row {
	int n;
	const char *name[SX_LEDGER_COLS_MAX];
	const char *val[SX_LEDGER_COLS_MAX];
	bool num[SX_LEDGER_COLS_MAX];
} sx_ledger_row;

typedef int (*sx_ledger_row_fn)(void *ctx, const sx_ledger_row *row);

int sx_ledger_query(sx_ledger *lg, sx_ledger_table t, const sx_ledger_filter *f,
		    sx_ledger_row_fn fn, void *ctx, sx_err *err) SX_MUST_CHECK;

/* A file row as the check sees it. */
typedef struct sx_ledger_file {
	int64_t id;
	uint64_t session;
	const char *device, *path;
	sx_lfile_state state;
	bool has_size;
	uint64_t size;
	int64_t started;
} sx_ledger_file;

typedef int (*sx_ledger_file_fn)(void *ctx, const sx_ledger_file *f);

/* Every file that is the newest stored row of its (device, path), then
 * every row still receiving. */
/* stored: also the newest stored row of each file (else only the rows
 * still receiving). */
int sx_ledger_each_check(sx_ledger *lg, bool stored, sx_ledger_file_fn fn, void *ctx,
			 sx_err *err) SX_MUST_CHECK;
/* Is there a stored row for device/path? */
/* The newest time (Unix seconds) in the ledger: of a session or a file,
 * begun or ended; 0 when it is empty. After a crash, what the ledger lost
 * (its last 100 ms) happened after it. */
int sx_ledger_last_time(sx_ledger *lg, int64_t *t, sx_err *err) SX_MUST_CHECK;
int sx_ledger_has_stored(sx_ledger *lg, const char *device, const char *path, bool *yes,
			 sx_err *err) SX_MUST_CHECK;
/* Sets the state (and a note) of row id. */
int sx_ledger_mark(sx_ledger *lg, int64_t id, sx_lfile_state st, const char *note,
		   sx_err *err) SX_MUST_CHECK;
/* Adds a stored row for a file found on disk. */
int sx_ledger_add_found(sx_ledger *lg, const char *device, const char *path, uint64_t size,
			const uint8_t root[32], bool sign, int64_t mtime,
			sx_err *err) SX_MUST_CHECK;
/* Sessions never ended (a crash): result "interrupted". */
int sx_ledger_close_open_sessions(sx_ledger *lg, sx_err *err) SX_MUST_CHECK;
/* Runs every statement of the repair in one transaction. */
int sx_ledger_begin(sx_ledger *lg, sx_err *err) SX_MUST_CHECK;
int sx_ledger_commit(sx_ledger *lg, sx_err *err) SX_MUST_CHECK;

#endif
