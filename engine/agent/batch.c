/* engine/agent: one batch. The files due are looked at once more (still
 * there, unchanged since queued, not open for writing), marked sending,
 * sent with sx_send_run, and each file's outcome is recorded in one
 * transaction: done once its batch's receipt verified, refused, or queued
 * again when the run ended first. Then --after, and the backoff when the
 * batch failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/sx_util.h"
#include "engine/agent/agent_int.h"
#include "engine/wire/sx_wire.h"

typedef struct outcome {
	bool have, stored, same;
	sx_class cls;
	char reason[SX_REASON_MAX + 1];
} outcome;

typedef struct batch {
	agent *a;
	uint64_t number;
	sx_aq_row *rows; /* the files due */
	size_t nrows;
	sx_aq_stat *st; /* each as it is sent */
	char **paths;	/* those sent: index into rows */
	const char **names;
	int *dirs;
	size_t *row_of;
	outcome *out;
	size_t n;
	uint64_t bytes;
} batch;

static void on_file(void *ctx, const sx_file_result *r)
{
	batch *b = ctx;
	if (r->arg < 0 || (size_t)r->arg >= b->n)
		return;
	outcome *o = &b->out[r->arg];
	o->have = true;
	o->stored = r->stored;
	o->same = r->same;
	o->cls = r->cls;
	snprintf(o->reason, sizeof(o->reason), "%s", r->reason ? r->reason : "");
}

static void skip_event(const agent *a, const char *rel, const char *result, const char *why)
{
	sx_log("warn", "agent_skip", "path=%s result=%s reason=%s", SX_LOGQ(rel), SX_LOGT(result),
	       SX_LOGQ(why));
	sx_agent_event ev = {.kind = SX_AEV_SKIP, .path = rel, .result = result, .message = why};
	agent_emit(a, &ev);
}

/* A name the receiver would refuse, or, signed, one it keeps signatures
 * under: never sent (as sxfer send skips them in a folder). */
static bool never_sendable(const agent *a, const char *rel, sx_err *why)
{
	const char *sfx = SX_SUFFIX_SIG, *dest = a->cfg->send.dest;
	size_t n = strlen(rel), k = strlen(sfx);
	unsigned flags = a->cfg->send.no_sign ? 0 : SX_PATH_SIGNED;
	char full[SX_DEST_MAX + SX_PATH_MAX + 2];
	/* as the receiver will see it: under --dest */
	int len = snprintf(full, sizeof(full), "%s%s%s", dest ? dest : "", dest ? "/" : "", rel);
	if (len < 0 || (size_t)len >= sizeof(full)) {
		sx_fail(why, SX_E_USAGE, "path too long under --dest");
		return true;
	}
	if (sx_path_check_file((const uint8_t *)full, (size_t)len, flags, why) < 0)
		return true;
	if (!a->cfg->send.no_sign && n > k && strcmp(rel + n - k, sfx) == 0) {
		sx_fail(why, SX_E_USAGE,
			"the receiver keeps the signature of a file under this name (--no-sign "
			"sends it)");
		return true;
	}
	return false;
}

/* Row i: into the batch, or left, deferred or dropped as it now is. */
static int pick(batch *b, size_t i, int64_t now, sx_err *err)
{
	agent *a = b->a;
	sx_aq_row *r = &b->rows[i];
	sx_err why = {0};
	switch (agent_check_file(a, r, now, &b->st[i])) {
	case CK_OK: break;
	case CK_GONE: return sx_aq_forget(a->q, r->path, err);
	case CK_CHANGED: {
		/* Written again since it was queued: it waits from now. */
		sx_aq_seen_result res;
		if (sx_aq_seen(a->q, r->path, &b->st[i], false, now, &res, err) < 0)
			return -1;
		return sx_aq_set(a->q, r->path, SX_AQ_QUEUED, NULL, 0, now + AGENT_RECHECK_MS, err);
	}
	case CK_BUSY:
	case CK_UNSETTLED:
		return sx_aq_set(a->q, r->path, SX_AQ_QUEUED, NULL, 0, now + AGENT_RECHECK_MS, err);
	}
	if (never_sendable(a, r->path, &why)) {
		skip_event(a, r->path, "skipped", why.msg);
		return sx_aq_set(a->q, r->path, SX_AQ_SKIPPED, &b->st[i], 0, 0, err);
	}
	if (b->number == 0 && sx_aq_next_batch(a->q, &b->number, err) < 0)
		return -1;
	b->paths[b->n] = r->path;
	b->names[b->n] = r->path;
	b->dirs[b->n] = a->root;
	b->row_of[b->n] = i;
	b->bytes += b->st[i].size;
	b->n++;
	return sx_aq_set(a->q, r->path, SX_AQ_SENDING, &b->st[i], b->number, 0, err);
}

static int batch_alloc(batch *b, size_t n, sx_err *err)
{
	size_t k = n ? n : 1;
	b->st = calloc(k, sizeof(*b->st));
	b->paths = calloc(k, sizeof(*b->paths));
	b->names = calloc(k, sizeof(*b->names));
	b->dirs = calloc(k, sizeof(*b->dirs));
	b->row_of = calloc(k, sizeof(*b->row_of));
	b->out = calloc(k, sizeof(*b->out));
	if (!b->st || !b->paths || !b->names || !b->dirs || !b->row_of || !b->out)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	return 0;
}

static void batch_free(batch *b)
{
	sx_aq_rows_free(b->rows, b->nrows);
	free(b->st);
	free(b->paths);
	free(b->names);
	free(b->dirs);
	free(b->row_of);
	free(b->out);
}

/* The files due, checked and marked sending, in one transaction. */
static int gather(batch *b, int64_t now, sx_err *err)
{
	agent *a = b->a;
	SX_GUARD(sx_aq_begin(a->q, err));
	SX_GUARD(sx_aq_take(a->q, now, a->cfg->batch_files, &b->rows, &b->nrows, err));
	SX_GUARD(batch_alloc(b, b->nrows, err));
	for (size_t i = 0; i < b->nrows; i++)
		SX_GUARD(pick(b, i, now, err));
	return sx_aq_commit(a->q, err);
out:
	sx_aq_rollback(a->q);
	return -1;
}

/* Each file's outcome into the queue, in one transaction; *unfinished:
 * files the run did not finish. */
static int record(batch *b, int64_t now, uint64_t *stored, uint64_t *unfinished, sx_err *err)
{
	agent *a = b->a;
	*stored = *unfinished = 0;
	SX_GUARD(sx_aq_begin(a->q, err));
	for (size_t i = 0; i < b->n; i++) {
		const outcome *o = &b->out[i];
		const char *rel = b->paths[i];
		sx_aq_state st = !o->have ? SX_AQ_QUEUED : o->stored ? SX_AQ_DONE : SX_AQ_REFUSED;
		int64_t next = st == SX_AQ_REFUSED ? now + SX_AGENT_REFUSED_WAIT_MS : 0;
		SX_GUARD(sx_aq_set(a->q, rel, st, NULL, b->number, next, err));
		*stored += st == SX_AQ_DONE;
		*unfinished += st == SX_AQ_QUEUED;
	}
	return sx_aq_commit(a->q, err);
out:
	sx_aq_rollback(a->q);
	return -1;
}

static void file_events(batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const outcome *o = &b->out[i];
		if (!o->have)
			continue;
		const char *res = o->stored ? (o->same ? "same" : "stored") : "refused";
		if (o->stored)
			sx_log("info", "agent_file", "path=%s batch=%llu result=%s size=%llu",
			       SX_LOGQ(b->paths[i]), (unsigned long long)b->number, SX_LOGT(res),
			       (unsigned long long)b->st[b->row_of[i]].size);
		else
			sx_log("warn", "agent_file", "path=%s batch=%llu result=%s reason=%s",
			       SX_LOGQ(b->paths[i]), (unsigned long long)b->number, SX_LOGT(res),
			       SX_LOGQ(o->reason));
		sx_agent_event ev = {.kind = SX_AEV_FILE,
				     .path = b->paths[i],
				     .result = res,
				     .batch = b->number,
				     .bytes = b->st[b->row_of[i]].size,
				     .message = o->stored ? NULL : o->reason};
		agent_emit(b->a, &ev);
	}
}

/* A failed batch: the next waits base doubling to max, drawn in [d/2, d]. */
static void backoff(agent *a, int64_t now, const sx_err *why)
{
	const sx_agent_cfg *cfg = a->cfg;
	uint64_t base = cfg->backoff_base_ms > 0 ? (uint64_t)cfg->backoff_base_ms : 1000;
	uint64_t max = cfg->backoff_max_ms > 0 ? (uint64_t)cfg->backoff_max_ms : 60000;
	uint64_t d = base;
	uint32_t rnd = 0;
	a->failed++;
	for (unsigned i = 1; i < a->failed && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)now;
	uint64_t wait = d / 2 + rnd % (d - d / 2 + 1);
	a->backoff_until = now + (int64_t)wait;
	sx_log("warn", "agent_wait", "failed=%u wait_ms=%llu class=%d reason=%s", a->failed,
	       (unsigned long long)wait, (int)why->cls, SX_LOGQ(why->msg));
	sx_agent_event ev = {.kind = SX_AEV_WAIT,
			     .wait_ms = wait,
			     .n = a->failed,
			     .message = why->msg,
			     .exit = (int)why->cls};
	agent_emit(a, &ev);
}

/* The files of the batch through the send path. */
static int send_batch(batch *b, sx_send_stats *st, sx_err *why)
{
	agent *a = b->a;
	sx_send_cfg sc = a->cfg->send;
	sc.paths = b->paths;
	sc.npaths = (int)b->n;
	sc.path_dirs = b->dirs;
	sc.path_names = b->names;
	sc.on_file = on_file;
	sc.file_ctx = b;
	sc.abort = a->cfg->stop;
	sc.on_progress = NULL;
	if (sc.receipts_dir == NULL)
		sc.receipts_dir = a->receipts;
	/* One signed batch for the agent's batch where the limits allow. */
	if (sc.batch_files == 0 || sc.batch_files < b->n)
		sc.batch_files = (uint32_t)b->n;
	sx_log("info", "agent_send", "batch=%llu files=%zu bytes=%llu",
	       (unsigned long long)b->number, b->n, (unsigned long long)b->bytes);
	int rc = sx_send_run(&sc, st, why);
	if (rc < 0 && why->cls == SX_OK)
		sx_fail(why, SX_E_OTHER, "send failed");
	return rc;
}

static void batch_event(const batch *b, const sx_send_stats *st, uint64_t stored, bool ok,
			const sx_err *why)
{
	if (ok)
		sx_log(
		    "info", "agent_batch",
		    "batch=%llu files=%zu stored=%llu same=%llu bytes=%llu seconds=%.3f result=ok",
		    (unsigned long long)b->number, b->n, (unsigned long long)stored,
		    (unsigned long long)st->files_same, (unsigned long long)st->bytes, st->seconds);
	else
		sx_log("warn", "agent_batch",
		       "batch=%llu files=%zu stored=%llu same=%llu bytes=%llu seconds=%.3f "
		       "result=error class=%d reason=%s",
		       (unsigned long long)b->number, b->n, (unsigned long long)stored,
		       (unsigned long long)st->files_same, (unsigned long long)st->bytes,
		       st->seconds, (int)why->cls, SX_LOGQ(why->msg));
	sx_agent_event ev = {.kind = SX_AEV_BATCH,
			     .batch = b->number,
			     .files = b->n,
			     .n = stored,
			     .bytes = st->bytes,
			     .seconds = st->seconds,
			     .ok = ok,
			     .exit = ok ? 0 : (int)why->cls,
			     .message = ok ? NULL : why->msg};
	agent_emit(b->a, &ev);
}

int agent_batch(agent *a, sx_err *err)
{
	batch b = {.a = a};
	sx_send_stats st = {0};
	sx_err why = {0};
	uint64_t stored = 0, unfinished = 0;
	int rc = -1;
	SX_GUARD(gather(&b, agent_now_ms(), err));
	if (b.n == 0) {
		rc = 0;
		goto out;
	}
	int sent = send_batch(&b, &st, &why);
	int64_t now = agent_now_ms();
	SX_GUARD(record(&b, now, &stored, &unfinished, err));
	file_events(&b);
	/* Files refused are the receiver's answer, not a failure to reach it:
	 * only a run that left files unfinished waits before the next. */
	bool ok = sent == 0 || unfinished == 0;
	batch_event(&b, &st, stored, sent == 0, &why);
	if (sent < 0)
		a->last = why;
	else
		sx_err_clear(&a->last);
	if (!ok && a->cfg->once) {
		a->failed++; /* no wait: --once ends here */
	} else if (!ok && !(a->cfg->stop && atomic_load(a->cfg->stop))) {
		backoff(a, now, &why);
	} else {
		a->failed = 0;
		a->backoff_until = 0;
	}
	for (size_t i = 0; i < b.n; i++)
		if (b.out[i].have && b.out[i].stored)
			SX_GUARD(agent_after(a, b.paths[i], &b.st[b.row_of[i]], err));
	rc = 0;
out:
	batch_free(&b);
	return rc;
}
