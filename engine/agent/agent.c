/* engine/agent: start-up, the loop, and what the watched tree reports
 * (sx_agent.h, docs/AGENT.md). */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/agent/agent_int.h"

int64_t agent_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void agent_emit(const agent *a, const sx_agent_event *ev)
{
	if (a->cfg->on_event != NULL)
		a->cfg->on_event(a->cfg->event_ctx, ev);
}

int sx_agent_name(const char *watch, char *out, size_t cap, sx_err *err)
{
	char abs[PATH_MAX];
	size_t n = 0;
	if (realpath(watch, abs) == NULL)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", watch);
	for (const char *p = abs; *p != '\0' && n + 1 < cap; p++) {
		char c = *p;
		if (c == '/' && (n == 0 || p[1] == '\0'))
			continue; /* no leading or trailing '-' */
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		out[n++] = c == '/' ? '-' : plain ? c : '_';
	}
	if (n == 0)
		out[n++] = '-'; /* the root folder */
	out[n] = '\0';
	return 0;
}

/* --include / --exclude on the path relative to the watched folder. */
static bool wanted(const sx_agent_cfg *cfg, const char *rel)
{
	for (size_t i = 0; i < cfg->nexclude; i++)
		if (fnmatch(cfg->exclude[i], rel, 0) == 0)
			return false;
	if (cfg->ninclude == 0)
		return true;
	for (size_t i = 0; i < cfg->ninclude; i++)
		if (fnmatch(cfg->include[i], rel, 0) == 0)
			return true;
	return false;
}

/* A complete file reported by the watched tree (sx_watch_fn). */
static int on_seen(void *ctx, const char *rel, const struct stat *st, bool closed, sx_err *err)
{
	agent *a = ctx;
	sx_aq_seen_result res;
	sx_aq_stat s = {.size = (uint64_t)st->st_size,
			.mtime_ns =
			    (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec,
			.ino = (uint64_t)st->st_ino};
	if (!wanted(a->cfg, rel))
		return 0;
	if (sx_aq_seen(a->q, rel, &s, closed, agent_now_ms(), &res, err) < 0)
		return -1;
	if (res == SX_AQ_ADDED)
		sx_log("debug", "agent_queued", "path=%s size=%llu closed=%s", SX_LOGQ(rel),
		       (unsigned long long)s.size, SX_LOGT(closed ? "yes" : "no"));
	if (res == SX_AQ_CHANGED) {
		const char *why = "changed after it was sent: not sent again";
		sx_log("warn", "agent_skip", "path=%s result=changed reason=%s", SX_LOGQ(rel),
		       SX_LOGQ(why));
		sx_agent_event ev = {
		    .kind = SX_AEV_SKIP, .path = rel, .result = "changed", .message = why};
		agent_emit(a, &ev);
	}
	return 0;
}

/* Takes the events that wait, in one transaction. */
static int take_events(agent *a, sx_err *err)
{
	SX_GUARD(sx_aq_begin(a->q, err));
	SX_GUARD(sx_watch_read(a->w, on_seen, a, err));
	return sx_aq_commit(a->q, err);
out:
	sx_aq_rollback(a->q);
	return -1;
}

/* move:DIR outside the watched tree (it would be sent again). */
static int open_move_dir(agent *a, sx_err *err)
{
	char w[PATH_MAX], m[PATH_MAX];
	const char *dir = a->cfg->move_dir;
	SX_GUARD(sx_mkdirs(dir, 0750, err));
	SX_ENSURE(realpath(a->cfg->watch, w) != NULL && realpath(dir, m) != NULL, err, SX_E_IO,
		  "%s: cannot resolve the move folder", dir);
	size_t n = strlen(w);
	SX_ENSURE(!(strncmp(m, w, n) == 0 && (m[n] == '\0' || m[n] == '/' || n == 1)), err,
		  SX_E_USAGE, "--after move:%s: the folder is inside the watched folder %s", dir,
		  a->cfg->watch);
	a->move_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	SX_ENSURE(a->move_fd >= 0, err, SX_E_IO, "%s: cannot open the move folder", dir);
	return 0;
out:
	return -1;
}

/* The watched folder, the state folder (locked: one agent per state), the
 * queue and the receipts. */
static int agent_open(agent *a, sx_err *err)
{
	const sx_agent_cfg *cfg = a->cfg;
	char path[PATH_MAX];
	a->root = open(cfg->watch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->root < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot open the watched folder",
				     cfg->watch);
	SX_GUARD(sx_mkdirs(cfg->state, 0700, err));
	snprintf(path, sizeof(path), "%s/lock", cfg->state);
	a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (a->lock_fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", path);
	SX_ENSURE(flock(a->lock_fd, LOCK_EX | LOCK_NB) == 0, err, SX_E_IO,
		  "%s: another agent uses this state folder (--name tells agents apart)",
		  cfg->state);
	SX_ENSURE(snprintf(a->receipts, sizeof(a->receipts), "%s/receipts", cfg->state) <
		      (int)sizeof(a->receipts),
		  err, SX_E_IO, "%s: path too long", cfg->state);
	if (!cfg->send.no_sign && cfg->send.receipts_dir == NULL)
		SX_GUARD(sx_mkdirs(a->receipts, 0700, err));
	snprintf(path, sizeof(path), "%s/queue.sqlite", cfg->state);
	SX_GUARD(sx_aq_open(path, &a->q, err));
	if (cfg->after == SX_AFTER_MOVE)
		SX_GUARD(open_move_dir(a, err));
	return 0;
out:
	return -1;
}

/* What a stop left (a batch in flight, --after not applied), then the
 * watches and the first scan. */
static int agent_start(agent *a, sx_err *err)
{
	uint64_t recovered = 0, queued = 0;
	SX_GUARD(sx_aq_recover(a->q, &recovered, err));
	SX_GUARD(agent_after_pending(a, err));
	SX_GUARD(sx_watch_open(&a->w, a->root, err));
	SX_GUARD(sx_aq_begin(a->q, err));
	if (sx_watch_scan(a->w, on_seen, a, err) < 0) {
		sx_aq_rollback(a->q);
		goto out;
	}
	SX_GUARD(sx_aq_commit(a->q, err));
	SX_GUARD(sx_aq_count(a->q, SX_AQ_QUEUED, &queued, err));
	sx_log("info", "agent_start", "watch=%s state=%s folders=%u queued=%llu recovered=%llu",
	       SX_LOGQ(a->cfg->watch), SX_LOGQ(a->cfg->state), sx_watch_count(a->w),
	       (unsigned long long)queued, (unsigned long long)recovered);
	sx_agent_event ev = {.kind = SX_AEV_START, .files = queued, .n = sx_watch_count(a->w)};
	agent_emit(a, &ev);
	return 0;
out:
	return -1;
}

static bool stopping(const agent *a)
{
	return a->cfg->stop != NULL && atomic_load(a->cfg->stop);
}

/* When the next batch may go (wall ms; -1: nothing queued). */
static int next_batch_at(agent *a, int64_t now, int64_t *at, uint64_t *due, sx_err *err)
{
	int64_t oldest, wake;
	if (sx_aq_due(a->q, now, due, &oldest, &wake, err) < 0)
		return -1;
	*at = -1;
	if (*due > 0)
		*at = a->cfg->once || *due >= a->cfg->batch_files ? now
								  : oldest + a->cfg->batch_wait_ms;
	else if (wake > 0)
		*at = wake;
	if (*at >= 0 && *at < a->backoff_until)
		*at = a->backoff_until;
	return 0;
}

static int agent_loop(agent *a, sx_err *err)
{
	struct pollfd p = {.fd = sx_watch_fd(a->w), .events = POLLIN};
	while (!stopping(a)) {
		int64_t now = agent_now_ms(), at;
		uint64_t due;
		SX_GUARD(next_batch_at(a, now, &at, &due, err));
		if (a->cfg->once && (due == 0 || a->failed > 0))
			break;
		if (at >= 0 && at <= now) {
			SX_GUARD(agent_batch(a, err));
			continue;
		}
		int64_t wait = at < 0 || at - now > 1000 ? 1000 : at - now;
		int n = poll(&p, 1, (int)wait);
		if (n < 0 && errno != EINTR)
			return sx_fail_errno(err, SX_E_IO, errno, "poll");
		if (n > 0)
			SX_GUARD(take_events(a, err));
	}
	return 0;
out:
	return -1;
}

int sx_agent_run(const sx_agent_cfg *cfg, sx_err *err)
{
	agent a = {.cfg = cfg, .root = -1, .move_fd = -1, .lock_fd = -1};
	uint64_t queued = 0;
	int rc = -1;
	SX_GUARD(agent_open(&a, err));
	SX_GUARD(agent_start(&a, err));
	SX_GUARD(agent_loop(&a, err));
	SX_GUARD(sx_aq_count(a.q, SX_AQ_QUEUED, &queued, err));
	sx_log("info", "agent_stop", "queued=%llu", (unsigned long long)queued);
	sx_agent_event ev = {.kind = SX_AEV_STOP, .files = queued};
	agent_emit(&a, &ev);
	rc = 0;
	if (cfg->once && a.last.cls != SX_OK) {
		*err = a.last; /* the exit code of the last failed batch */
		rc = -1;
	}
out:
	sx_watch_close(a.w);
	sx_aq_close(a.q);
	if (a.root >= 0)
		close(a.root);
	if (a.move_fd >= 0)
		close(a.move_fd);
	if (a.lock_fd >= 0)
		close(a.lock_fd);
	return rc;
}
