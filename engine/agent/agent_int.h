/* engine/agent internals: the state of a running agent, shared by agent.c
 * (start, the loop, events of the watched tree), batch.c (one batch) and
 * after.c (whether a file is complete, and --after). */
#ifndef SX_AGENT_INT_H
#define SX_AGENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/agent/sx_agent.h"
#include "engine/agent/sx_agentq.h"
#include "engine/agent/sx_watch.h"

#define AGENT_RECHECK_MS 1000 /* a file open for writing, or changed: looked at again */

typedef struct agent {
	const sx_agent_cfg *cfg;
	int root;    /* the watched folder */
	int move_fd; /* --after move:DIR, or -1 */
	int lock_fd; /* the state folder's lock, held while running */
	sx_aq *q;
	sx_watch *w;
	char receipts[4096];
	unsigned failed;       /* batches that failed in a row */
	int64_t backoff_until; /* no batch before this (wall ms) */
	sx_err last;	       /* why the last batch failed (SX_OK: it did not), for cfg->once */
} agent;

/* Wall-clock milliseconds. */
int64_t agent_now_ms(void);
void agent_emit(const agent *a, const sx_agent_event *ev);

/* What a queued file is when a batch looks at it (after.c). */
typedef enum agent_check {
	CK_OK = 0,   /* complete: sent in this batch, as *now */
	CK_GONE,     /* not there any more (or not a regular file): forgotten */
	CK_CHANGED,  /* changed since it was queued: queued again as *now */
	CK_BUSY,     /* open for writing (a lease could not be had): later */
	CK_UNSETTLED /* found by a scan, leases cannot tell, modified too recently */
} agent_check;

agent_check agent_check_file(const agent *a, const sx_aq_row *r, int64_t now_ms, sx_aq_stat *now);
/* --after for a file a verified receipt covers, sent as sent. */
int agent_after(agent *a, const char *rel, const sx_aq_stat *sent, sx_err *err) SX_MUST_CHECK;
/* --after for the done files a stop left it pending for. */
int agent_after_pending(agent *a, sx_err *err) SX_MUST_CHECK;

/* One batch of the files due now (batch.c): 0 also when the batch failed
 * (the agent waits and tries again); -1 only when the queue cannot be
 * written. */
int agent_batch(agent *a, sx_err *err) SX_MUST_CHECK;

#endif
