/* The receiver, engine/transfer/serve*.c: accepting, admission, the event
 * loops and their threads, deadlines, and the completions dispatched to a
 * connection (serve_int.h has the state and how the files divide it). */
#include "engine/transfer/serve_int.h"

/* Waiting connections of this loop whose address has a handshake slot free
 * again begin theirs (oldest first; a waiting connection on another loop
 * is looked at by that loop, at the latest after its 250 ms wait). */
static void hs_start_waiting(server *s)
{
	/* Oldest first; one whose address has no slot free is passed over, not
	 * waited for: the next may come from an address that has one. */
	for (unsigned i = 0; i < s->ntab; i++)
		s->conns[i].hs_passed = false;
	for (;;) {
		conn *next = NULL;
		for (unsigned i = 0; i < s->ntab; i++) {
			conn *c = &s->conns[i];
			if (conn_used(c) && c->hs_wait && !conn_closing(c) && !c->hs_passed &&
			    (next == NULL || c->t0 < next->t0))
				next = c;
		}
		if (next == NULL)
			return;
		if (!sx_admit_promote(&s->sh->admit, next->akey)) {
			next->hs_passed = true;
			continue;
		}
		next->hs_wait = false;
		next->hs_slot = true;
		sx_err err = {0};
		if (sx_link_init(&next->link, s->ctx, &err) < 0)
			srv_conn_fail(s, next, &err);
		else
			srv_post_recv(s, next);
	}
}

/* The connection's handshake is over (done, failed or timed out), or it
 * never began one: its admission slot goes to the next one. */
void srv_hs_leave(server *s, conn *c)
{
	if (c->hs_wait) {
		sx_admit_unwait(&s->sh->admit, c->akey);
		c->hs_wait = false;
	}
	if (c->hs_slot) {
		sx_admit_leave(&s->sh->admit, c->akey);
		c->hs_slot = false;
		hs_start_waiting(s);
	}
}

/* A posted accept holds one of the max_conns + spill_max places, so the
 * loops together never take more connections than that (and at most
 * max_conns of them are served: inslot, srv_take_slot). A loop with more connections than
 * its share does not accept while another loop has an accept posted: the
 * least busy loops take new senders (the kernel hands each connection to one
 * of the accepts posted). When no loop has one, the loop that consumed the
 * last accept or freed a slot posts one whatever its share: the others would
 * only look again at their next wake-up (up to 250 ms), and senders would
 * wait in the backlog with slots free. */
static bool take(atomic_uint *n, unsigned max)
{
	unsigned v = atomic_load(n);
	while (v < max)
		if (atomic_compare_exchange_weak(n, &v, v + 1))
			return true;
	return false;
}

bool srv_take_slot(shared *sh)
{
	return take(&sh->inslot, sh->cfg->max_conns);
}

/* A few connections more than max_conns (spill_max, srv_limits_open) may
 * be accepted: one that finds every slot taken waits, unread, up to
 * SPILL_WAIT_MS for one to free, and then is told the server is busy
 * (serve_limits.c) rather than left unanswered in the listen backlog. */
void srv_post_accept(server *s)
{
	sx_err err = {0};
	if (s->accept_posted || s->stopping || s->lfd < 0 || s->nconns >= s->ntab)
		return;
	if (s->cfg->once && s->served + s->nconns > 0)
		return;
	if (s->accept_pause_ns != 0 && sx_now_ns() < s->accept_pause_ns)
		return;
	if (s->nconns > atomic_load(&s->sh->active) / atomic_load(&s->sh->loops) &&
	    atomic_load(&s->sh->accepts) > 0)
		return;
	if (!take(&s->sh->slots, s->cfg->max_conns + s->sh->spill_max))
		return;
	atomic_fetch_add(&s->sh->accepts, 1);
	if (sx_io_accept(s->io, s->lfd, tag_of(0xffffffffu, OP_ACCEPT, 0), &err) < 0) {
		atomic_fetch_sub(&s->sh->accepts, 1);
		atomic_fetch_sub(&s->sh->slots, 1);
		sx_log("error", "accept", "reason=%s", SX_LOGQ(err.msg));
		return;
	}
	s->accept_posted = true;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[48] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(out, cap, "%s:%d", host, port);
}

/* Admits a new connection's handshake. When every slot for connections not
 * yet authenticated is taken, one of this loop's gives way: first one of
 * the address holding the most slots, when that is at least two more than
 * the newcomer's address holds (a few hosts cannot keep every other address
 * out), else the oldest that has run for HS_STALE_MS (peers that hold
 * handshakes open without finishing them cannot keep a device out for
 * longer than that). */
static sx_admit_result admit(server *s, const uint8_t akey[SX_ADMIT_KEY_LEN])
{
	sx_admit_result r = sx_admit_enter(&s->sh->admit, akey);
	if (r != SX_ADMIT_FULL)
		return r;
	uint64_t now = sx_now_ns();
	unsigned mine = sx_admit_count(&s->sh->admit, akey), most = 0;
	conn *heavy = NULL, *old = NULL;
	for (unsigned i = 0; i < s->ntab; i++) {
		conn *c = &s->conns[i];
		if (!conn_used(c) || conn_closing(c) || !(c->hs_slot || c->hs_wait))
			continue;
		unsigned k = sx_admit_count(&s->sh->admit, c->akey);
		if (k > most || (k == most && heavy != NULL && c->t0 < heavy->t0)) {
			most = k;
			heavy = c;
		}
		if (now - c->t0 >= (uint64_t)HS_STALE_MS * 1000000u &&
		    (old == NULL || c->t0 < old->t0))
			old = c;
	}
	bool by_address = heavy != NULL && most >= mine + 2;
	conn *victim = by_address ? heavy : old;
	if (victim == NULL)
		return r;
	sx_err why = {0};
	sx_fail(&why, SX_E_NET, "%s",
		by_address ? "handshake slots full: the address holding the most gives one up"
			   : "handshake slots full: the oldest unfinished handshake gives way");
	srv_conn_fail(s, victim, &why);
	return sx_admit_enter(&s->sh->admit, akey);
}

/* A connection on fd takes a free entry of this loop's table: NULL when
 * there is none. */
conn *srv_conn_add(server *s, int fd, const char *addr)
{
	conn *c = NULL;
	for (unsigned i = 0; i < s->ntab; i++)
		if (!conn_used(&s->conns[i])) {
			c = &s->conns[i];
			c->idx = i;
			break;
		}
	if (c == NULL)
		return NULL;
	c->st = C_HANDSHAKE;
	c->id = atomic_fetch_add(&s->sh->next_id, 1);
	c->fd = fd;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	atomic_fetch_add(&s->sh->active, 1);
	(void)sx_io_file_add(s->io, fd); /* removed in conn_free, before the close */
	c->cur_file = -1;
	c->rx_cur = -1;
	c->t0 = sx_now_ns();
	s->nconns++;
	return c;
}

/* Closed at once, before any TLS: no slot, no memory. A flood of these is
 * logged once a second, with how many were left out. */
static void log_refused(server *s, const char *addr, sx_admit_result ar)
{
	uint64_t now = sx_now_ns();
	if (now - s->refused_log_ns < 1000000000u) {
		s->refused_unlogged++;
		return;
	}
	sx_log("warn", "conn_refused", "addr=%s reason=%s unlogged=%llu", SX_LOGT(addr),
	       SX_LOGQ(ar == SX_ADMIT_ADDR_FULL ? "too many handshakes from this address"
						: "too many handshakes in progress"),
	       (unsigned long long)s->refused_unlogged);
	s->refused_log_ns = now;
	s->refused_unlogged = 0;
}

/* An admitted connection's handshake begins, or waits its address's turn:
 * a waiting connection is not read until then (hs_start_waiting), its
 * ClientHello stays in the socket. */
static void hs_begin(server *s, conn *c, sx_admit_result ar)
{
	sx_err err = {0};
	c->hs_slot = ar == SX_ADMIT_OK;
	c->hs_wait = ar == SX_ADMIT_WAIT;
	c->deadline = sx_now_ns() + (uint64_t)s->cfg->handshake_timeout_ms * 1000000u;
	if (c->hs_wait)
		return;
	if (sx_link_init(&c->link, s->ctx, &err) < 0)
		srv_conn_fail(s, c, &err);
	else
		srv_post_recv(s, c);
}

/* A connection beyond max_conns: it waits, unread and outside admission,
 * for a slot (spill_check). */
static void spill_add(server *s, int fd, const char *addr, const uint8_t *akey)
{
	conn *c = srv_conn_add(s, fd, addr);
	if (c == NULL) { /* not reached: the entry was taken with the accept */
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		return;
	}
	memcpy(c->akey, akey, SX_ADMIT_KEY_LEN);
	c->spill = c->spill_wait = true;
	s->spill_waiting++;
	c->deadline = c->t0 + (uint64_t)SPILL_WAIT_MS * 1000000u;
	sx_log("info", "conn_open", "conn=%u addr=%s loop=%u waiting=%s", c->id, SX_LOGT(c->addr),
	       s->loop, SX_LOGT("full"));
}

/* The oldest connection waiting beyond max_conns takes a slot freed since,
 * or, once it has waited SPILL_WAIT_MS, goes through admission and its
 * handshake to be told the server is busy (srv_lim_ready). */
static void spill_check(server *s)
{
	while (s->spill_waiting > 0) {
		conn *c = NULL;
		for (unsigned i = 0; i < s->ntab; i++) {
			conn *x = &s->conns[i];
			if (conn_used(x) && x->spill_wait && (c == NULL || x->t0 < c->t0))
				c = x;
		}
		if (c == NULL)
			return;
		bool slot = srv_take_slot(s->sh);
		if (!slot && sx_now_ns() < c->deadline)
			return;
		c->spill_wait = false;
		s->spill_waiting--;
		c->spill = !slot;
		c->t0 = sx_now_ns(); /* its handshake's age starts now (admit) */
		sx_admit_result ar = admit(s, c->akey);
		if (ar != SX_ADMIT_OK && ar != SX_ADMIT_WAIT) {
			sx_err why = {0};
			log_refused(s, c->addr, ar);
			sx_fail(&why, SX_E_NET, "%s",
				ar == SX_ADMIT_ADDR_FULL ? "too many handshakes from this address"
							 : "too many handshakes in progress");
			srv_conn_fail(s, c, &why);
			continue;
		}
		hs_begin(s, c, ar);
	}
}

static void on_accept(server *s, int64_t res)
{
	s->accept_posted = false;
	atomic_fetch_sub(&s->sh->accepts, 1);
	if (res < 0) {
		atomic_fetch_sub(&s->sh->slots, 1);
		if (res != -ECANCELED)
			sx_log("warn", "accept", "reason=%s", SX_LOGQ(strerror((int)-res)));
		/* Out of descriptors or memory: trying again at once would
		 * spin; the loop tries again after a pause. */
		if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS)
			s->accept_pause_ns = sx_now_ns() + ACCEPT_PAUSE_MS * 1000000u;
		srv_post_accept(s);
		return;
	}
	int fd = (int)res;
	if (s->stopping) {
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		return;
	}
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	char addr[64];
	uint8_t akey[SX_ADMIT_KEY_LEN];
	(void)getpeername(fd, (struct sockaddr *)&ss, &sl);
	addr_text(&ss, addr, sizeof(addr));
	sx_admit_key(&ss, akey);
	if (!srv_take_slot(s->sh)) {
		spill_add(s, fd, addr, akey);
		srv_post_accept(s);
		return;
	}
	sx_admit_result ar = admit(s, akey);
	if (ar != SX_ADMIT_OK && ar != SX_ADMIT_WAIT) {
		log_refused(s, addr, ar);
		atomic_fetch_sub(&s->sh->inslot, 1);
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		SRV_COUNT(s, conns_refused, 1);
		srv_post_accept(s);
		return;
	}
	conn *c = srv_conn_add(s, fd, addr);
	if (c == NULL) { /* not reached: the entry was taken with the accept */
		sx_admit_leave(&s->sh->admit, akey);
		atomic_fetch_sub(&s->sh->inslot, 1);
		atomic_fetch_sub(&s->sh->slots, 1);
		close(fd);
		return;
	}
	memcpy(c->akey, akey, sizeof(akey));
	sx_log("info", "conn_open", "conn=%u addr=%s loop=%u", c->id, SX_LOGT(c->addr), s->loop);
	hs_begin(s, c, ar);
	srv_post_accept(s);
}

static void check_deadlines(server *s)
{
	uint64_t now = sx_now_ns();
	for (unsigned i = 0; i < s->ntab; i++) {
		conn *c = &s->conns[i];
		if (!conn_used(c) || c->spill_wait) /* spill_check's */
			continue;
		if (conn_closing(c)) {
			/* A peer that does not read our last records must not hold
			 * the slot: shutting the socket makes the send fail. */
			if (now >= c->deadline)
				srv_conn_shutdown(s, c, true);
			continue;
		}
		/* The clock runs only while we wait for the peer (a receive or a
		 * send in flight), not while our own flushes hold receiving back. */
		if (c->link.ready && !c->recv_posted && !c->tx_sending && !c->hs_sending) {
			c->deadline = now + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
			continue;
		}
		if (now < c->deadline)
			continue;
		sx_err err = {0};
		sx_fail(&err, SX_E_NET, "%s timeout", c->link.ready ? "idle" : "handshake");
		srv_conn_fail(s, c, &err);
	}
}

static void dispatch(server *s, const sx_cqe *q)
{
	unsigned ci = (unsigned)(q->tag >> 32);
	int op = (int)((q->tag >> 24) & 0xff);
	unsigned sub = (unsigned)(q->tag & 0xffffff);
	if (op == OP_ACCEPT) {
		on_accept(s, q->res);
		return;
	}
	if (op == OP_POOL) {
		srv_on_pool(s, q->res);
		return;
	}
	/* A connection is freed only once nothing of it is in flight. */
	if (ci >= s->ntab || !conn_used(&s->conns[ci]))
		sx_io_bug("receiver: completion for a connection not in use", q->tag);
	conn *c = &s->conns[ci];
	c->inflight--;
	switch (op) {
	case OP_RECV: srv_on_recv(s, c, q->res); break;
	case OP_HS_SEND:
	case OP_SEND: srv_on_send(s, c, op, sub, q->res); break;
	case OP_WRITE: srv_on_write(s, c, sub, q->res); break;
	case OP_SYNC: srv_on_sync(s, c, (int)sub, q->res); break;
	case OP_CKSYNC: srv_on_cksync(s, c, (int)sub, q->res); break;
	case OP_SAME: srv_on_same(s, c, (int)sub, q->res); break;
	default: sx_io_bug("receiver: completion of an unknown operation", q->tag);
	}
	if (conn_used(c))
		srv_maybe_free(s, c);
}

int srv_loop_run(server *s, sx_err *err)
{
	const sx_serve_cfg *cfg = s->cfg;
	/* Each ring registers the listening socket itself (on its own
	 * thread); sx_io_close unregisters it before the socket is closed. */
	if (s->lfd >= 0)
		(void)sx_io_file_add(s->io, s->lfd);
	srv_post_accept(s);
	for (;;) {
		/* Only loop 0 reads the flag the signal handler sets (it runs on
		 * that thread); the others learn of it through sh->stop. */
		if (s->loop == 0 && cfg->stop && *cfg->stop)
			atomic_store(&s->sh->stop, true);
		if (s->loop == 0 && cfg->reload && *cfg->reload) {
			*cfg->reload = 0;
			srv_watch_hup(s->sh); /* SIGHUP: the CRL is read again */
		}
		bool stop = atomic_load(&s->sh->stop) || atomic_load(&s->sh->failed);
		if (stop && !s->stopping) {
			s->stopping = true;
			if (s->loop == 0)
				sx_log("info", "shutdown", "connections=%u",
				       atomic_load(&s->sh->active));
			if (s->accept_posted && sx_io_cancel_fd(s->io, s->lfd, err) < 0)
				return -1;
			for (unsigned i = 0; i < s->ntab; i++)
				if (conn_used(&s->conns[i])) {
					sx_err why = {0};
					sx_fail(&why, SX_E_NET, "server shutting down");
					srv_conn_fail(s, &s->conns[i], &why);
					if (conn_used(&s->conns[i]))
						s->conns[i].deadline = sx_now_ns(); /* no grace */
				}
		}
		if (s->stopping && s->nconns == 0 && !s->accept_posted)
			return 0;
		if (cfg->once && s->served > 0 && s->nconns == 0)
			return 0;
		sx_cqe cqe[64];
		int tmo = 250;
		/* The client's --limit-rate: up when its bucket has filled. */
		if (s->rate_wait_ns > 0 && s->rate_wait_ns < 250000000u)
			tmo = (int)((s->rate_wait_ns + 999999) / 1000000);
		int n = sx_io_wait(s->io, cqe, SX_ARRAY_LEN(cqe), tmo, err);
		if (n < 0)
			return -1;
		for (int i = 0; i < n; i++)
			dispatch(s, &cqe[i]);
		if (s->rate_wait_ns > 0 && s->nconns > 0 && conn_used(&s->conns[0])) {
			s->rate_wait_ns = 0;
			srv_post_recv(s, &s->conns[0]);
		}
		srv_pool_check(s);
		check_deadlines(s);
		spill_check(s);
		srv_held_sweep(s);
		/* Another loop's handshakes may have ended: a waiting
		 * connection's address may have a slot again. */
		hs_start_waiting(s);
		/* Another loop's connections may have ended: a share is free. */
		srv_post_accept(s);
	}
}

static void *loop_thread(void *arg)
{
	server *s = arg;
	if (s->io == NULL) {
		/* Made here: a ring belongs to the thread that submits to it
		 * (IORING_SETUP_SINGLE_ISSUER). */
		sx_err e = {0};
		if (sx_io_open(&s->io, s->kind, s->depth, &e) < 0) {
			sx_log("warn", "loops", "loop=%u reason=%s", s->loop, SX_LOGQ(e.msg));
			return NULL; /* the other loops serve */
		}
		atomic_fetch_add(&s->sh->loops, 1);
	}
	s->rc = srv_loop_run(s, &s->err);
	if (s->rc < 0)
		atomic_store(&s->sh->failed, true);
	if (s->loop > 0) {
		/* Closed here too: draining a ring (after a failure, with ops
		 * still in flight) submits to it and waits on it, which only
		 * its own thread may do. */
		sx_io_close(s->io);
		s->io = NULL;
		srv_pool_free(s); /* after the ring: its eventfd read is gone */
	}
	return NULL;
}

/* Raises the soft limit on descriptors to the hard one (a server's files
 * are its work) and shares what is left after the fixed costs between the
 * connections. */
static unsigned fd_budget(const sx_serve_cfg *cfg, unsigned spill)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return FD_BUDGET_MIN;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = was;
	}
	/* a connection beyond max_conns holds its socket only */
	uint64_t fixed = FD_RESERVE + (uint64_t)cfg->max_conns * FD_PER_CONN + spill;
	uint64_t share = rl.rlim_cur > fixed ? (rl.rlim_cur - fixed) / cfg->max_conns : 0;
	unsigned b = share > FD_BUDGET_MAX ? FD_BUDGET_MAX : (unsigned)share;
	if (b < FD_BUDGET_MIN)
		b = FD_BUDGET_MIN;
	sx_log("info", "limits", "nofile=%llu per_conn_file_fds=%u",
	       (unsigned long long)rl.rlim_cur, b);
	return b;
}

static unsigned loop_count(const sx_serve_cfg *cfg)
{
	unsigned n = cfg->threads;
	if (cfg->once)
		return 1; /* one connection: one loop */
	if (n == 0) {
		cpu_set_t set;
		n = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
	}
	if (n > SX_SERVE_THREADS_MAX)
		n = SX_SERVE_THREADS_MAX;
	return n < 1 ? 1 : n;
}

static void loop_free(server *s)
{
	if (s->io != NULL)
		sx_io_close(s->io);
	srv_pool_free(s); /* after the ring, before the buffers its jobs use */
	free(s->conns);
}

/* Each loop's table of connections; loop 0's ring (the others open theirs
 * on their own thread). */
static int loops_init(shared *sh, server *loops, unsigned nloops, sx_err *err)
{
	const sx_serve_cfg *cfg = sh->cfg;
	for (unsigned i = 0; i < nloops; i++) {
		server *s = &loops[i];
		*s = (server){.cfg = cfg,
			      .sh = sh,
			      .loop = i,
			      .ctx = sh->ctx,
			      .lfd = -1,
			      .ntab = cfg->max_conns + sh->spill_max};
		s->conns = calloc(s->ntab, sizeof(conn));
		if (s->conns == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		/* Every loop uses the backend the first one got (one fallback
		 * line in the log, not one per loop). */
		s->kind = cfg->io;
		s->depth = s->ntab * (RX_SLOTS + SYNC_MAX + 4) + 8;
		if (i > 0 && s->kind == SX_IO_AUTO)
			s->kind = strcmp(sx_io_name(loops[0].io), "io_uring") == 0 ? SX_IO_URING
										   : SX_IO_POLL;
		if (i == 0 && sx_io_open(&s->io, s->kind, s->depth, err) < 0)
			return -1;
	}
	return 0;
}

int sx_serve_run(const sx_serve_cfg *cfg, sx_err *err)
{
	unsigned nloops = loop_count(cfg);
	shared sh = {.cfg = cfg, .lfd = -1, .cores = srv_cores()};
	server *loops = calloc(nloops, sizeof(server));
	int rc = -1, port = 0, out_lock = -1;
	sx_chan_cfg cc = {
	    .server = true, .id = cfg->id, .crl = cfg->crl, .max_record = cfg->max_record};
	sigset_t block, old;
	if (loops == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_serve_prepare(cfg, &out_lock, err));
	SX_GUARD(srv_ledger_open(&sh, err));
	SX_GUARD(srv_limits_open(&sh, err));
	SX_GUARD(sx_chan_ctx_new(&sh.ctx, &cc, err));
	(void)sx_cert_life_warn(cfg->id, 0);
	SX_GUARD(srv_watch_start(&sh, err));
	SX_GUARD(srv_chat_open(&sh, err));
	sh.fd_budget = fd_budget(cfg, sh.spill_max);
	/* A quarter of the connections (at least one from two on) is kept for
	 * peers that have authenticated; half of it may go to handshakes from
	 * addresses that hold none (docs/ARCHITECTURE.md, "Admission and
	 * limits"). */
	unsigned hs_max = cfg->max_conns - cfg->max_conns / 4;
	SX_GUARD(sx_admit_init(&sh.admit, hs_max, hs_max + (cfg->max_conns - hs_max) / 2,
			       cfg->hs_per_addr ? cfg->hs_per_addr : SX_HS_PER_ADDR_DEFAULT, err));
	atomic_store(&sh.loops, 1);
	SX_GUARD(loops_init(&sh, loops, nloops, err));
	SX_GUARD(srv_metrics_start(&sh, nloops, err));
	SX_GUARD(sx_net_listen(cfg->listen, &sh.lfd, &port, err));
	for (unsigned i = 0; i < nloops; i++)
		loops[i].lfd = sh.lfd;
	sx_log("info", "listen",
	       "addr=%s port=%d io=%s out=%s max_conns=%u loops=%u open_threads=%u",
	       SX_LOGT(cfg->listen), port, SX_LOGT(sx_io_name(loops[0].io)), SX_LOGQ(cfg->out_dir),
	       cfg->max_conns, nloops, srv_open_threads(&loops[0]));
	if (cfg->on_listen)
		cfg->on_listen(cfg->listen_ctx, port);
	/* Signals stay with this thread, which runs loop 0. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (unsigned i = 1; i < nloops; i++) {
		int e = pthread_create(&loops[i].thread, NULL, loop_thread, &loops[i]);
		if (e != 0) {
			/* Fewer loops serve as well: the started ones share the
			 * work. */
			sx_log("warn", "loops",
			       "reason=\"cannot start a loop thread\" cause=%s loops=%u",
			       SX_LOGQ(strerror(e)), i);
			break;
		}
		loops[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	loop_thread(&loops[0]);
	for (unsigned i = 1; i < nloops; i++)
		if (loops[i].started)
			pthread_join(loops[i].thread, NULL);
	/* --once whose connection was a get: its thread finishes the session
	 * (unless a signal stops the server). */
	srv_out_drain(&sh, cfg->stop, true);
	for (unsigned i = 0; i < nloops; i++)
		if (loops[i].rc < 0 && (i == 0 || loops[i].started)) {
			*err = loops[i].err;
			goto out;
		}
	rc = 0;
	if (cfg->once && loops[0].once_result != SX_OK)
		rc = sx_fail(err, loops[0].once_result, "the session failed (see the log)");
	else if (cfg->once && atomic_load(&sh.out_result) != SX_OK)
		rc = sx_fail(err, (sx_class)atomic_load(&sh.out_result),
			     "the session failed (see the log)");
out:
	srv_metrics_stop(&sh);
	srv_wait_keepers(&sh);
	srv_out_drain(&sh, cfg->stop, false);
	srv_chat_close(&sh); /* before the CRL's thread, the limits, the TLS context */
	for (unsigned i = 0; i < nloops; i++)
		loop_free(&loops[i]);
	if (sh.lfd >= 0)
		close(sh.lfd);
	if (out_lock >= 0)
		close(out_lock);
	sx_ledger_close(sh.ledger);
	srv_watch_stop(&sh);
	sx_limits_free(sh.lim); /* after the thread that reloads them */
	sx_chan_ctx_free(sh.ctx);
	sx_admit_free(&sh.admit);
	free(loops);
	return rc;
}
