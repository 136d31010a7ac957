/* The receiver's per-device limits (sx_limits.h) and its answer when it is
 * full (docs/OPERATIONS.md, "Limits"): a device over a limit is refused
 * with a reason it can read before its data is sent (FILE_ERR at
 * FILE_BEGIN, class 5; an ERROR right after the handshake for one
 * connection too many of its identity), and a connection beyond max_conns
 * that found no slot is told the server is busy (ERROR, class 6: a sender
 * with --retry tries again). */
#include "engine/transfer/serve_int.h"

/* The stored bytes of every identity, when a quota-total needs them. */
static void count_stored(shared *sh, const char *trigger)
{
	uint64_t t0 = sx_now_ns(), folders = 0, bytes = 0;
	sx_err err = {0};
	if (!sx_limits_any(sh->lim, SX_LIM_TOTAL))
		return;
	if (sx_limits_count(sh->lim, sh->cfg->out_dir, &folders, &bytes, &err) < 0) {
		sx_log("error", "quota_count", "out=%s trigger=%s reason=%s",
		       SX_LOGQ(sh->cfg->out_dir), SX_LOGT(trigger), SX_LOGQ(err.msg));
		return;
	}
	sx_log("info", "quota_count", "out=%s trigger=%s folders=%llu bytes=%llu seconds=%.3f",
	       SX_LOGQ(sh->cfg->out_dir), SX_LOGT(trigger), (unsigned long long)folders,
	       (unsigned long long)bytes, (double)(sx_now_ns() - t0) / 1e9);
}

int srv_limits_open(shared *sh, sx_err *err)
{
	const sx_serve_cfg *cfg = sh->cfg;
	if (cfg->client != NULL)
		return 0;
	/* A few connections beyond max_conns, to be told the server is busy
	 * rather than wait unanswered in the listen backlog. */
	if (!cfg->once) {
		sh->spill_max = cfg->max_conns / 8 + 2;
		if (sh->spill_max > SPILL_MAX)
			sh->spill_max = SPILL_MAX;
	}
	SX_GUARD(sx_limits_new(&sh->lim, err));
	if (cfg->limits != NULL)
		sx_limits_set(sh->lim, cfg->limits);
	count_stored(sh, "start");
	return 0;
out:
	return -1;
}

void srv_limits_reload(shared *sh)
{
	const sx_serve_cfg *cfg = sh->cfg;
	sx_limits_cfg next = {0};
	if (sh->lim == NULL || cfg->on_reload == NULL)
		return;
	if (cfg->on_reload(cfg->reload_ctx, &next) < 0)
		return;
	sx_limits_set(sh->lim, &next);
	count_stored(sh, "sighup");
}

/* Authenticated only to be told why it is refused: CONFIRM, then the
 * ERROR (like a stale CRL's refusal in on_ready). */
static bool refuse(server *s, conn *c, const sx_err *why)
{
	srv_hs_send(s, c);
	srv_conn_fail(s, c, why);
	return false;
}

bool srv_lim_ready(server *s, conn *c)
{
	sx_err why = {0};
	if (c->spill) {
		/* A slot may have freed during its handshake. */
		if (!srv_take_slot(s->sh)) {
			sx_fail(&why, SX_E_NET,
				"server busy: all %u connection%s in use, try again later",
				s->cfg->max_conns, s->cfg->max_conns == 1 ? "" : "s");
			return refuse(s, c, &why);
		}
		c->spill = false;
	}
	if (s->sh->lim == NULL || s->cfg->client != NULL)
		return true;
	if (sx_limits_enter(s->sh->lim, c->link.k.peer_name, &c->lu, &why) < 0)
		return refuse(s, c, &why);
	return true;
}

int srv_lim_file(server *s, conn *c, rfile *f, uint64_t size, uint64_t from, sx_err *err)
{
	sx_err why = {0};
	if (c->lu == NULL)
		return 0;
	uint64_t need = size == SX_SIZE_UNKNOWN ? 0 : size - from;
	if (sx_limits_file_begin(s->sh->lim, c->lu, f->path, size, need, &f->lim_held, &why) < 0)
		return srv_send_file_err(s, c, f->id, &why, err) < 0 ? -1 : 1;
	f->lu = c->lu;
	return 0;
}

int srv_lim_data(server *s, conn *c, rfile *f, sx_err *err)
{
	sx_err why = {0};
	if (f->lu == NULL || f->announced != SX_SIZE_UNKNOWN || f->failed ||
	    f->state == F_DISCARD ||
	    sx_limits_stream(s->sh->lim, f->lu, f->path, f->received, &why) == 0)
		return 0;
	/* Refused while it runs: what comes after is hashed (a signed
	 * session's batch covers it) but dropped, and it is not kept. */
	f->failed = true;
	f->state = F_DISCARD;
	return srv_send_file_err(s, c, f->id, &why, err) < 0 ? -1 : 1;
}

void srv_lim_file_end(server *s, rfile *f)
{
	if (f->lu == NULL)
		return;
	uint64_t got = f->received > f->from ? f->received - f->from : 0;
	sx_limits_file_end(s->sh->lim, f->lu, f->lim_held, got, f->lim_stored ? f->received : 0);
	f->lu = NULL;
}

void srv_lim_conn_end(server *s, conn *c)
{
	if (!c->spill)
		atomic_fetch_sub(&s->sh->inslot, 1);
	atomic_fetch_sub(&s->sh->slots, 1);
	c->spill = false;
	if (c->lu != NULL)
		sx_limits_leave(s->sh->lim, c->lu);
	c->lu = NULL;
}
