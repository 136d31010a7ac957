/* sx_send_run: a run of attempts (docs/PROTOCOL.md, "Resume and
 * re-sending"). The entries are walked once; each attempt is a fresh
 * connection that sends what the earlier ones did not finish (the receiver
 * offers what it holds of a file cut off, so the attempt resumes it). An
 * attempt that failed on the network (refused, reset, cut, truncated, a
 * stall of the timeout, the server shutting down) is followed by another
 * after a wait that doubles from retry_base_ms to retry_max_ms, drawn
 * uniformly in [d/2, d]; an attempt that moved anything forward (a file
 * answered, data sent) starts the count and the backoff again, so a link cut
 * every few MiB still completes. Authentication, integrity refusals, local
 * I/O and usage errors are never retried. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/transfer/send_int.h"

#define RETRY_BASE_MS_DEFAULT 1000u
#define RETRY_MAX_MS_DEFAULT  60000u

unsigned sx_send_retry_wait_ms(unsigned n, unsigned base_ms, unsigned max_ms, uint32_t rnd)
{
	uint64_t d = base_ms;
	if (max_ms < base_ms)
		max_ms = base_ms;
	for (unsigned i = 1; i < n && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	uint64_t lo = d / 2;
	return (unsigned)(lo + rnd % (d - lo + 1));
}

/* Sleeps ms, in steps of at most 100 ms so that abort (when set) ends the
 * wait early. */
static void sleep_ms(unsigned ms, const atomic_bool *abort)
{
	while (ms > 0 && !(abort != NULL && atomic_load(abort))) {
		unsigned step = ms > 100 ? 100 : ms;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ms -= step;
	}
}

uint64_t sx_send_done_bytes(const send_run *run)
{
	uint64_t n = 0;
	for (size_t i = 0; i < run->ents.n; i++)
		if (!run->ents.v[i].is_dir && run->ents.v[i].done)
			n += run->ents.v[i].size;
	return n;
}

/* Progress as the next attempt starts: what is done, nothing of the rest
 * (a file cut off counts again as its attempt resumes it). */
static void progress_reset(send_run *run)
{
	run->prog.bytes_sent = 0;
	run->prog.files_done = 0;
	for (size_t i = 0; i < run->ents.n; i++)
		if (!run->ents.v[i].is_dir && run->ents.v[i].done) {
			run->prog.bytes_sent += run->ents.v[i].size;
			run->prog.files_done++;
		}
}

/* Whether attempt number `failed` in a row may be followed by another, and
 * after how long. */
static bool retry_wait(const sx_send_cfg *cfg, const send_run *run, unsigned failed, unsigned next,
		       const sx_err *why, unsigned *wait_ms)
{
	uint32_t rnd = 0;
	if (!run->retryable || cfg->serving || failed > cfg->retries ||
	    (cfg->abort != NULL && atomic_load(cfg->abort)))
		return false;
	if (run->stream_begun) {
		sx_log("warn", "retry", "reason=%s",
		       SX_LOGQ("standard input was cut off: it cannot be sent again"));
		return false;
	}
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)time(NULL);
	*wait_ms = sx_send_retry_wait_ms(
	    failed, cfg->retry_base_ms > 0 ? (unsigned)cfg->retry_base_ms : RETRY_BASE_MS_DEFAULT,
	    cfg->retry_max_ms > 0 ? (unsigned)cfg->retry_max_ms : RETRY_MAX_MS_DEFAULT, rnd);
	sx_log("warn", "retry", "attempt=%u failed=%u wait_ms=%u class=%d reason=%s", next, failed,
	       *wait_ms, (int)why->cls, SX_LOGQ(why->msg));
	return true;
}

int sx_send_run(const sx_send_cfg *cfg, sx_send_stats *stats, sx_err *err)
{
	send_run run = {.prog = {.total_known = true}};
	uint64_t t0 = sx_now_ns();
	unsigned failed = 0, wait_ms = 0;
	memset(stats, 0, sizeof(*stats));
	if (sx_entries_build(&run.ents, cfg, !cfg->no_sign, &run.prog, err) < 0) {
		sx_entries_free(&run.ents);
		return -1;
	}
	for (;;) {
		sx_err e = {0};
		stats->attempts++;
		if (sx_send_attempt(cfg, stats, &run, &e) == 0)
			break;
		/* A failure after an attempt that moved forward is the first
		 * of a new series. */
		failed = run.progressed ? 1 : failed + 1;
		if (!retry_wait(cfg, &run, failed, stats->attempts + 1, &e, &wait_ms)) {
			*err = e;
			break;
		}
		if (cfg->on_retry != NULL)
			cfg->on_retry(cfg->retry_ctx, stats->attempts + 1, wait_ms, &e);
		sleep_ms(wait_ms, cfg->abort);
		progress_reset(&run);
	}
	stats->seconds = (double)(sx_now_ns() - t0) / 1e9;
	sx_entries_free(&run.ents);
	return err->cls == SX_OK ? 0 : -1;
}
