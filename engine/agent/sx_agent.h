/* engine/agent: the camera upload agent (docs/AGENT.md). It watches a
 * folder tree (sx_watch.h), keeps what is to be sent in a persistent queue
 * (sx_agentq.h), sends complete files in batches through sx_send_run
 * (signed by default, each receipt verified), and applies --after to what
 * a verified receipt covers. It runs until *stop is set, waiting and
 * retrying with a capped backoff whenever the server cannot be reached. */
#ifndef SX_AGENT_H
#define SX_AGENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/transfer/sx_transfer.h"

#define SX_AGENT_BATCH_FILES_DEFAULT 100u
#define SX_AGENT_BATCH_WAIT_MS	     2000
#define SX_AGENT_SETTLE_MS	     5000
#define SX_AGENT_REFUSED_WAIT_MS     (3600 * 1000) /* a refused file is tried again hourly */
#define SX_AGENT_GLOBS_MAX	     64

typedef enum sx_after { SX_AFTER_KEEP = 0, SX_AFTER_DELETE, SX_AFTER_MOVE } sx_after;

/* What happened, for the command line's status lines and JSON. */
typedef enum sx_agent_ev {
	SX_AEV_START, /* watching: files = queued at start, n = folders watched */
	SX_AEV_BATCH, /* a batch ended: batch, files, bytes, seconds, ok, message */
	SX_AEV_FILE,  /* a file of a batch: path, result stored|same|refused, message */
	SX_AEV_AFTER, /* --after: path, result deleted|moved|kept, message */
	SX_AEV_SKIP,  /* a file not sent (now or never): path, result, message */
	SX_AEV_WAIT,  /* the next batch waits wait_ms (the server cannot be reached) */
	SX_AEV_STOP,  /* stopped: files = still queued */
} sx_agent_ev;

typedef struct sx_agent_event {
	sx_agent_ev kind;
	const char *path;
	const char *result;
	const char *message;
	uint64_t batch, files, bytes, wait_ms, n;
	double seconds;
	bool ok;
	int exit; /* the class of a failed batch */
} sx_agent_event;

typedef struct sx_agent_cfg {
	/* connection and sending options (the identity, the server, signing,
	 * retries within a batch, --limit-rate...); paths, on_file and abort
	 * are set per batch */
	sx_send_cfg send;
	const char *watch; /* the folder watched */
	const char *state; /* this agent's state folder (queue.sqlite, receipts/) */
	const char *include[SX_AGENT_GLOBS_MAX];
	size_t ninclude; /* none: every file */
	const char *exclude[SX_AGENT_GLOBS_MAX];
	size_t nexclude;
	uint32_t batch_files; /* a batch goes with this many files, */
	int batch_wait_ms;    /* or this long after its oldest file was queued */
	int settle_ms;	      /* a file found by a scan, where leases cannot tell, is
				 complete once unchanged this long */
	sx_after after;
	const char *move_dir; /* SX_AFTER_MOVE: files go to move_dir/<relative path> */
	int backoff_base_ms, backoff_max_ms; /* waits after a failed batch (0: 1 s, 60 s) */
	bool once;			     /* send what is complete now, then return */
	const atomic_bool *stop;	     /* set by SIGTERM/SIGINT */
	void (*on_event)(void *ctx, const sx_agent_event *ev);
	void *event_ctx;
} sx_agent_cfg;

/* Runs until *stop (0), or until the first batch with nothing left to send
 * with cfg->once (0, or the class of the last failed batch). Fails at
 * start for what cannot work (the folder, the state, the queue). */
int sx_agent_run(const sx_agent_cfg *cfg, sx_err *err) SX_MUST_CHECK;

/* The name of an agent's state folder for watch folder path: its absolute
 * path with '/' as '-' and anything but [A-Za-z0-9._-] as '_'
 * ("/srv/cam/clips" gives "srv-cam-clips"). */
int sx_agent_name(const char *watch, char *out, size_t cap, sx_err *err) SX_MUST_CHECK;

#endif
