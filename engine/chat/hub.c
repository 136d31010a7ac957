/* engine/chat: the hub's thread, its ring, and each connection's input and
 * output (the messages themselves: hub_msg.c).
 *
 * A connection handed by a receive loop (sx_chat_hub_add, any thread) waits
 * in a list until the hub's eventfd wakes it (a read of it is always
 * pending in the ring). From then on it is the hub's alone:
 *   - one receive in flight into a buffer sized for the server's text
 *     limit; a whole record is opened and its message handled at once;
 *   - sealed records wait in one buffer while another is being sent (one
 *     send in flight); a peer that lets more than HUB_OUT_MAX bytes pile up
 *     (it does not read) is dropped;
 *   - it ends: its last records (ERROR, EOS) go out, our side is shut for
 *     writing, its input is read and dropped until it closes or
 *     HUB_GRACE_MS pass, then what is in flight is cancelled and, once
 *     nothing is, it is freed (between turns of the loop, never inside a
 *     handler, so a handler may end any connection while it walks them).
 * A chat connection may idle for as long as it likes (TCP keepalive finds
 * the peers that vanish); serve's stop flag ends every connection, told
 * why. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/chat/hub_int.h"
#include "engine/wire/sx_wire.h"

void sx_chat_hub_cfg_init(sx_chat_hub_cfg *c)
{
	*c = (sx_chat_hub_cfg){.max_text = SX_CHAT_TEXT_DEFAULT,
			       .rate = SX_CHAT_RATE_DEFAULT,
			       .max_to = SX_CHAT_MAX_TO_DEFAULT,
			       .queue_max = SX_CHAT_QUEUE_DEFAULT,
			       .queue_age_s = SX_CHAT_QUEUE_AGE_DEFAULT};
}

static inline uint64_t htag(unsigned idx, int op)
{
	return ((uint64_t)idx << 8) | (unsigned)op;
}

hub_ident *hub_ident_get(sx_chat_hub *h, const char *name)
{
	for (size_t i = 0; i < h->nids; i++)
		if (strcmp(h->ids[i].name, name) == 0)
			return &h->ids[i];
	sx_err e = {0};
	if (sx_grow(&h->ids, &h->ids_cap, h->nids + 1, sizeof(*h->ids), 1u << 20, "identities",
		    &e) < 0)
		return NULL;
	hub_ident *id = &h->ids[h->nids++];
	memset(id, 0, sizeof(*id));
	snprintf(id->name, sizeof(id->name), "%s", name);
	return id;
}

bool hub_online(const sx_chat_hub *h, const char *name)
{
	for (size_t i = 0; i < h->conns_cap; i++) {
		const hconn *c = h->conns[i];
		if (c != NULL && c->joined && !c->closing && strcmp(c->name, name) == 0)
			return true;
	}
	return false;
}

/* ---- output ------------------------------------------------------------------ */

static void end_hard(sx_chat_hub *h, hconn *c, sx_class cls, const char *why)
{
	sx_err e = {0};
	sx_fail(&e, cls, "%s", why);
	hub_end(h, c, &e, false);
	c->out_len = 0; /* nothing more is sent */
}

static void kick(sx_chat_hub *h, hconn *c)
{
	if (c->sending || c->out_len == 0 || c->shut || c->cancelled)
		return;
	uint8_t *p = c->fly;
	size_t cap = c->fly_cap;
	c->fly = c->out;
	c->fly_cap = c->out_cap;
	c->fly_len = c->out_len;
	c->out = p;
	c->out_cap = cap;
	c->out_len = 0;
	sx_err e = {0};
	if (sx_io_send(h->io, c->fd, c->fly, c->fly_len, htag(c->idx, HOP_SEND), &e) < 0) {
		end_hard(h, c, SX_E_NET, e.msg);
		return;
	}
	c->sending = true;
	c->inflight++;
}

int hub_send_rec(sx_chat_hub *h, hconn *c, uint8_t type, const uint8_t *body, size_t len,
		 sx_err *err)
{
	size_t rlen;
	if (c->closing || c->shut)
		return 0; /* ending: what was queued before goes out, nothing new */
	size_t need = c->out_len + SX_REC_HDR_LEN + len + SX_REC_TAG_MAX;
	if (need > c->out_allow) {
		sx_log("warn", "chat_slow", "conn=%u peer=%s waiting_bytes=%zu reason=%s", c->id,
		       SX_LOGQ(c->name), c->out_len,
		       SX_LOGQ("the peer does not read what it is sent: dropped"));
		end_hard(h, c, SX_E_NET, "the peer does not read what it is sent");
		return 0;
	}
	if (sx_grow(&c->out, &c->out_cap, need, 1, (size_t)UINT32_MAX, "records to send", err) < 0)
		return -1;
	if (len > 0)
		memcpy(c->out + c->out_len + SX_REC_HDR_LEN, body, len);
	if (sx_record_seal(&c->link.k.tx, type, 0, c->out + c->out_len, len, &rlen, err) < 0)
		return -1;
	c->out_len += rlen;
	c->queued_bytes += rlen;
	kick(h, c);
	return 0;
}

int hub_send(sx_chat_hub *h, hconn *c, const sx_chat_msg *m, sx_err *err)
{
	sx_wbuf w = sx_wbuf_make(h->body, h->body_cap);
	sx_chat_msg_encode(m, &w);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "a chat message 0x%02x does not fit", m->type);
	return hub_send_rec(h, c, SX_REC_CTRL, h->body, w.len, err);
}

void hub_end(sx_chat_hub *h, hconn *c, const sx_err *why, bool send_error)
{
	if (c->closing)
		return;
	c->why = *why;
	if (send_error && c->link.ready) {
		uint8_t buf[SX_REASON_MAX + 64];
		sx_msg m = {.type = SX_MSG_ERROR,
			    .err_class = (uint8_t)why->cls,
			    .reason = (const uint8_t *)why->msg,
			    .reason_len = strnlen(why->msg, SX_REASON_MAX)};
		sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
		sx_err e = {0};
		sx_msg_encode(&m, &w);
		if (!w.overflow && hub_send_rec(h, c, SX_REC_CTRL, buf, w.len, &e) < 0)
			c->out_len = 0;
	}
	c->closing = true;
	c->deadline = sx_now_ns() + (uint64_t)HUB_GRACE_MS * 1000000u;
}

void hub_bye(sx_chat_hub *h, hconn *c)
{
	sx_err e = {0};
	if (c->closing)
		return;
	if (hub_send_rec(h, c, SX_REC_EOS, NULL, 0, &e) < 0)
		c->out_len = 0;
	c->closing = true;
	c->deadline = sx_now_ns() + (uint64_t)HUB_GRACE_MS * 1000000u;
}

/* ---- input ------------------------------------------------------------------- */

static void post_recv(sx_chat_hub *h, hconn *c)
{
	uint8_t *buf;
	size_t len;
	sx_err e = {0};
	if (c->recv_posted || c->cancelled || (c->closing && !c->shut))
		return;
	if (c->shut) {
		buf = c->rx; /* dropped */
		len = c->rx_cap;
	} else {
		sx_link_rx_want(&c->link, &buf, &len);
	}
	if (sx_io_recv(h->io, c->fd, buf, len, htag(c->idx, HOP_RECV), &e) < 0) {
		end_hard(h, c, SX_E_NET, e.msg);
		c->deadline = 0;
		return;
	}
	c->recv_posted = true;
	c->inflight++;
}

/* A whole record of c, opened. */
static void on_record(sx_chat_hub *h, hconn *c, uint8_t type, const uint8_t *pt, size_t len)
{
	sx_err e = {0};
	if (type == SX_REC_EOS) {
		hub_bye(h, c);
		return;
	}
	if (type != SX_REC_CTRL || len == 0) {
		sx_fail(&e, SX_E_INTEGRITY, "a chat connection carries only chat messages");
		hub_end(h, c, &e, true);
		return;
	}
	if (pt[0] == SX_MSG_ERROR) {
		sx_msg m;
		if (sx_msg_decode(pt, len, &m, &e) == 0)
			sx_fail(&e, (sx_class)m.err_class, "%s: %.*s", c->name, (int)m.reason_len,
				(const char *)m.reason);
		hub_end(h, c, &e, false);
		return;
	}
	if (pt[0] < SX_MSG_CHAT_FIRST || pt[0] > SX_MSG_CHAT_LAST) {
		sx_fail(&e, SX_E_INTEGRITY, "unexpected message 0x%02x on a chat connection",
			pt[0]);
		hub_end(h, c, &e, true);
		return;
	}
	if (sx_chat_msg_decode(pt, len, h->min, &e) < 0 || hub_on_msg(h, c, &e) < 0)
		hub_end(h, c, &e, true);
}

static void on_recv(sx_chat_hub *h, hconn *c, int64_t res)
{
	c->recv_posted = false;
	c->inflight--;
	if (c->shut) {
		if (res <= 0)
			c->deadline = 0; /* the peer closed: done */
		else
			post_recv(h, c);
		return;
	}
	if (c->closing)
		return;
	if (res <= 0) {
		end_hard(h, c, SX_E_NET,
			 res == 0 ? "the peer closed the connection without a goodbye"
				  : "the connection failed");
		c->deadline = 0;
		return;
	}
	bool complete;
	uint8_t type, flags, *pt;
	size_t len;
	sx_err e = {0};
	if (sx_link_rx_input(&c->link, (size_t)res, &complete, &type, &flags, &pt, &len, &e) < 0) {
		if (strstr(e.msg, "exceeds the limit") != NULL)
			sx_err_prefix(&e,
				      "a record larger than a chat message of this server (text "
				      "of at most %u bytes): ",
				      h->cfg.max_text);
		hub_end(h, c, &e, true);
		return;
	}
	if (complete)
		on_record(h, c, type, pt, len);
	post_recv(h, c);
}

static void on_send(sx_chat_hub *h, hconn *c, int64_t res)
{
	c->sending = false;
	c->inflight--;
	if (res < 0) {
		end_hard(h, c, SX_E_NET, "the connection failed while sending");
		c->deadline = 0;
		return;
	}
	c->sent += c->fly_len;
	c->fly_len = 0;
	if (c->q_busy && c->sent >= c->q_until) {
		hub_q_done(&h->qs, c->name);
		c->q_busy = false;
		sx_log("info", "chat_queue", "conn=%u name=%s action=delivered", c->id,
		       SX_LOGQ(c->name));
	}
	if (c->out_len == 0)
		c->out_allow = HUB_OUT_MAX; /* the queue's burst is out */
	kick(h, c);
}

/* ---- a connection's life ------------------------------------------------------- */

static void conn_free(sx_chat_hub *h, hconn *c)
{
	double secs = (double)(sx_now_ns() - c->t0) / 1e9;
	bool ok = c->why.cls == SX_OK;
	sx_log(ok ? "info" : "warn", "chat_close",
	       "conn=%u addr=%s peer=%s room=%s posts=%llu delivered=%llu refused=%llu "
	       "seconds=%.3f result=%s cause=%s",
	       c->id, SX_LOGT(c->addr), SX_LOGQ(c->name), SX_LOGQ(c->room),
	       (unsigned long long)c->posts, (unsigned long long)c->delivered,
	       (unsigned long long)c->refused, secs, SX_LOGT(ok ? "ok" : "failed"),
	       SX_LOGQ(c->why.msg));
	if (c->q_busy)
		hub_q_abort(&h->qs, c->name);
	if (c->fd >= 0)
		close(c->fd);
	sx_link_free(&c->link);
	if (c->on_end != NULL)
		c->on_end(c->end_ctx);
	h->conns[c->idx] = NULL;
	h->nconns--;
	atomic_store_explicit(&h->st.conns, h->nconns, memory_order_relaxed);
	free(c->rx);
	free(c->out);
	free(c->fly);
	free(c->certs);
	for (size_t i = 0; i < c->nreceipted; i++)
		free(c->receipted[i]);
	free(c->receipted);
	free(c->join);
	free(c->held);
	free(c);
}

/* Between turns: closing connections move on, finished ones go. */
static void reap(sx_chat_hub *h)
{
	uint64_t now = sx_now_ns();
	for (size_t i = 0; i < h->conns_cap; i++) {
		hconn *c = h->conns[i];
		if (c == NULL || !c->closing)
			continue;
		if (c->joined) {
			hub_on_leave(h, c);
			c->joined = false;
		}
		if (!c->shut && !c->sending && c->out_len == 0) {
			c->shut = true;
			(void)shutdown(c->fd, SHUT_WR);
			post_recv(h, c);
		}
		if (!c->cancelled && now >= c->deadline) {
			sx_err e = {0};
			c->cancelled = true;
			if (c->inflight > 0 && sx_io_cancel_fd(h->io, c->fd, &e) < 0)
				sx_log("warn", "chat_close", "conn=%u cause=%s", c->id,
				       SX_LOGQ(e.msg));
		}
		if (c->cancelled && c->inflight == 0)
			conn_free(h, c);
	}
}

static void adopt(sx_chat_hub *h, hconn *c)
{
	sx_err e = {0};
	size_t idx = 0;
	while (idx < h->conns_cap && h->conns[idx] != NULL)
		idx++;
	if (idx == h->conns_cap && sx_grow(&h->conns, &h->conns_cap, idx + 1, sizeof(*h->conns),
					   1u << 20, "connections", &e) < 0) {
		close(c->fd);
		sx_link_free(&c->link);
		if (c->on_end != NULL)
			c->on_end(c->end_ctx);
		free(c->rx);
		free(c->join);
		free(c);
		return;
	}
	c->idx = (unsigned)idx;
	h->conns[idx] = c;
	h->nconns++;
	atomic_store_explicit(&h->st.conns, h->nconns, memory_order_relaxed);
	int one = 1, idle = 60, intvl = 10, cnt = 6;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	if (h->stopping) {
		sx_fail(&e, SX_E_NET, "the server is stopping");
		hub_end(h, c, &e, true);
		return;
	}
	if (hub_on_join(h, c, &e) < 0) {
		hub_end(h, c, &e, true);
		return;
	}
	post_recv(h, c);
}

static void post_efd(sx_chat_hub *h)
{
	sx_err e = {0};
	if (h->eread)
		return;
	if (sx_io_read(h->io, h->efd, &h->ebuf, sizeof(h->ebuf), SX_IO_OFF_CUR, htag(0, HOP_EFD),
		       &e) < 0) {
		sx_log("error", "chat_hub", "cause=%s", SX_LOGQ(e.msg));
		return;
	}
	h->eread = true;
}

static void take_pending(sx_chat_hub *h)
{
	pthread_mutex_lock(&h->mu);
	hub_pend *p = h->pend;
	h->pend = NULL;
	pthread_mutex_unlock(&h->mu);
	/* in the order they came */
	hub_pend *rev = NULL;
	while (p != NULL) {
		hub_pend *n = p->next;
		p->next = rev;
		rev = p;
		p = n;
	}
	while (rev != NULL) {
		hub_pend *n = rev->next;
		adopt(h, rev->c);
		free(rev);
		rev = n;
	}
}

static void dispatch(sx_chat_hub *h, const sx_cqe *q)
{
	int op = (int)(q->tag & 0xff);
	unsigned idx = (unsigned)(q->tag >> 8);
	if (op == HOP_EFD) {
		h->eread = false;
		take_pending(h);
		if (!atomic_load(&h->quit))
			post_efd(h);
		return;
	}
	if (idx >= h->conns_cap || h->conns[idx] == NULL)
		sx_io_bug("chat hub completion", q->tag);
	hconn *c = h->conns[idx];
	if (op == HOP_RECV)
		on_recv(h, c, q->res);
	else if (op == HOP_SEND)
		on_send(h, c, q->res);
	else
		sx_io_bug("chat hub operation", q->tag);
}

static void stop_all(sx_chat_hub *h)
{
	sx_err e = {0};
	h->stopping = true;
	sx_fail(&e, SX_E_NET, "the server is stopping");
	for (size_t i = 0; i < h->conns_cap; i++)
		if (h->conns[i] != NULL)
			hub_end(h, h->conns[i], &e, true);
}

static void crl_poll(sx_chat_hub *h)
{
	uint64_t now = sx_now_ns();
	if (h->env.crl_now == NULL || now - h->crl_ns < (uint64_t)HUB_CRL_MS * 1000000u)
		return;
	h->crl_ns = now;
	X509_CRL *crl = h->env.crl_now(h->env.crl_ctx);
	if (crl == h->pol.crl) {
		X509_CRL_free(crl);
		return;
	}
	X509_CRL_free(h->crl);
	h->crl = crl;
	h->pol.crl = crl;
	hub_crl_check(h);
}

/* Queues whose every entry expired are removed at start and then hourly. */
static void sweep_poll(sx_chat_hub *h)
{
	uint64_t now = sx_now_ns();
	if (h->sweep_ns != 0 && now - h->sweep_ns < (uint64_t)HUB_SWEEP_MS * 1000000u)
		return;
	h->sweep_ns = now;
	(void)hub_q_sweep(&h->qs, hub_now_ms());
}

static int hub_loop(sx_chat_hub *h, sx_err *err)
{
	sx_cqe cqe[64];
	post_efd(h);
	for (;;) {
		bool stop = atomic_load(&h->quit) || (h->env.stop != NULL && *h->env.stop);
		if (stop && !h->stopping)
			stop_all(h);
		if (!h->stopping) {
			crl_poll(h);
			sweep_poll(h);
		}
		reap(h);
		if (atomic_load(&h->quit) && h->nconns == 0) {
			pthread_mutex_lock(&h->mu);
			bool none = h->pend == NULL;
			pthread_mutex_unlock(&h->mu);
			if (none)
				return 0;
			take_pending(h);
			continue;
		}
		int n = sx_io_wait(h->io, cqe, SX_ARRAY_LEN(cqe), HUB_TICK_MS, err);
		if (n < 0)
			return -1;
		for (int i = 0; i < n; i++)
			dispatch(h, &cqe[i]);
	}
}

static void *hub_main(void *arg)
{
	sx_chat_hub *h = arg;
	sx_err e = {0};
	int rc = sx_io_open(&h->io, h->env.io, HUB_IO_DEPTH, &e);
	pthread_mutex_lock(&h->mu);
	h->ready = true;
	h->ready_rc = rc;
	h->ready_err = e;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (rc < 0)
		return NULL;
	if (hub_loop(h, &e) < 0) {
		sx_log("error", "chat_hub", "reason=%s cause=%s", SX_LOGQ("the chat hub stopped"),
		       SX_LOGQ(e.msg));
	}
	/* Drains what is left in flight (a failed ring: every operation). */
	sx_io_close(h->io);
	h->io = NULL;
	for (size_t i = 0; i < h->conns_cap; i++)
		if (h->conns[i] != NULL) {
			if (h->conns[i]->why.cls == SX_OK)
				sx_fail(&h->conns[i]->why, SX_E_OTHER, "the chat hub stopped");
			conn_free(h, h->conns[i]);
		}
	return NULL;
}

/* ---- start, stop, hand-over ------------------------------------------------------ */

static void hub_free(sx_chat_hub *h)
{
	hub_tr_close(h);
	hub_q_close(&h->qs);
	if (h->efd >= 0)
		close(h->efd);
	X509_CRL_free(h->crl);
	free(h->min);
	free(h->mout);
	free(h->body);
	free(h->conns);
	free(h->ids);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
}

static int cfg_check(const sx_chat_hub_cfg *c, sx_err *err)
{
	if (c->max_text == 0 || c->max_text > SX_CHAT_TEXT_MAX)
		return sx_fail(err, SX_E_USAGE, "--chat-max-text: from 1 to %u bytes",
			       SX_CHAT_TEXT_MAX);
	if (c->rate == 0 || c->rate > SX_CHAT_RATE_MAX)
		return sx_fail(err, SX_E_USAGE, "--chat-rate: from 1 to %u", SX_CHAT_RATE_MAX);
	if (c->max_to < 2 || c->max_to > SX_CHAT_TO_MAX)
		return sx_fail(err, SX_E_USAGE, "--chat-max-to: from 2 to %u", SX_CHAT_TO_MAX);
	if (c->queue_max == 0 || c->queue_max > SX_CHAT_QUEUE_MAX)
		return sx_fail(err, SX_E_USAGE, "--chat-queue-max: from 1 to %u",
			       SX_CHAT_QUEUE_MAX);
	if (c->queue_age_s == 0)
		return sx_fail(err, SX_E_USAGE, "--chat-queue-age: above 0");
	return 0;
}

#ifdef SXFER_TEST_HOOKS
/* SXFER_TEST_HOSTILE_CHAT=MODE:K (tests only): the K-th DELIVER is
 * dropped, altered, replayed, reordered or dropped behind a NOTICE head
 * that names it (skiphead) (hub_msg.c); leak relays everything to every
 * connection (K ignored); mute sends no ACCEPTED for the K-th POST kept. */
static void hostile_init(sx_chat_hub *h)
{
	const char *v = getenv("SXFER_TEST_HOSTILE_CHAT");
	static const char *const modes[] = {"drop",	"alter", "replay", "reorder",
					    "skiphead", "leak",	 "mute"};
	if (v == NULL)
		return;
	const char *colon = strchr(v, ':');
	uint64_t k;
	if (colon == NULL || sx_parse_u64(colon + 1, &k) < 0 || k == 0)
		return;
	for (int i = 0; i < (int)SX_ARRAY_LEN(modes); i++)
		if (strlen(modes[i]) == (size_t)(colon - v) &&
		    strncmp(v, modes[i], (size_t)(colon - v)) == 0) {
			h->hostile = (hub_hostile)(i + 1);
			h->hostile_k = k;
			sx_log("warn", "chat_hub", "test_hook=%s deliver=%llu", SX_LOGT(modes[i]),
			       (unsigned long long)k);
		}
}
#endif

static int hub_open(sx_chat_hub *h, const sx_chat_hub_env *env, sx_err *err)
{
	h->env = *env;
	h->cfg = *env->cfg;
	h->tr_fd = -1;
	h->efd = -1;
	h->qs.dirfd = -1;
	SX_GUARD(cfg_check(&h->cfg, err));
	h->pol.anchors = env->id->anchors;
	h->pol.crl = env->crl != NULL ? env->crl : env->id->crl;
	h->min = calloc(1, sizeof(*h->min));
	h->mout = calloc(1, sizeof(*h->mout));
	h->body_cap = h->cfg.max_text + HUB_MSG_EXTRA + HUB_OUT_EXTRA;
	h->body = malloc(h->body_cap);
	SX_ENSURE(h->min != NULL && h->mout != NULL && h->body != NULL, err, SX_E_OTHER,
		  "out of memory");
	SX_GUARD(hub_tr_open(h, err));
	SX_GUARD(hub_q_open(&h->qs, h->dir, h->cfg.queue_max, h->cfg.queue_age_s, err));
	h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	SX_ENSURE(h->efd >= 0, err, SX_E_OTHER, "cannot make the chat hub's eventfd");
#ifdef SXFER_TEST_HOOKS
	hostile_init(h);
#endif
	return 0;
out:
	return -1;
}

int sx_chat_hub_start(sx_chat_hub **out, const sx_chat_hub_env *env, sx_err *err)
{
	sx_chat_hub *h = calloc(1, sizeof(*h));
	*out = NULL;
	if (h == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (hub_open(h, env, err) < 0)
		goto fail;
	int e = pthread_create(&h->th, NULL, hub_main, h);
	if (e != 0) {
		sx_fail_errno(err, SX_E_OTHER, e, "cannot start the chat hub's thread");
		goto fail;
	}
	h->started = true;
	pthread_mutex_lock(&h->mu);
	while (!h->ready)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	if (h->ready_rc < 0) {
		*err = h->ready_err;
		pthread_join(h->th, NULL);
		goto fail;
	}
	sx_log("info", "chat_hub",
	       "dir=%s io=%s max_text=%u rate=%u max_to=%u queue_max=%u queue_age_s=%llu",
	       SX_LOGQ(h->dir), SX_LOGT(sx_io_name(h->io)), h->cfg.max_text, h->cfg.rate,
	       h->cfg.max_to, h->cfg.queue_max, (unsigned long long)h->cfg.queue_age_s);
	*out = h;
	return 0;
fail:
	hub_free(h);
	return -1;
}

static void wake(sx_chat_hub *h)
{
	uint64_t one = 1;
	if (write(h->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sx_log("warn", "chat_hub", "cause=%s", SX_LOGQ("cannot wake the chat hub"));
}

void sx_chat_hub_stop(sx_chat_hub *h)
{
	if (h == NULL)
		return;
	atomic_store(&h->quit, true);
	wake(h);
	pthread_join(h->th, NULL);
	/* Handed after the thread ended: let go of at once. */
	for (hub_pend *p = h->pend, *n; p != NULL; p = n) {
		n = p->next;
		close(p->c->fd);
		sx_link_free(&p->c->link);
		if (p->c->on_end != NULL)
			p->c->on_end(p->c->end_ctx);
		free(p->c->rx);
		free(p->c->join);
		free(p->c);
		free(p);
	}
	hub_free(h);
}

int sx_chat_hub_add(sx_chat_hub *h, const sx_chat_hand *hd, sx_err *err)
{
	size_t max_body = h->cfg.max_text + HUB_MSG_EXTRA + SX_REC_TAG_MAX;
	hconn *c = calloc(1, sizeof(*c));
	hub_pend *p = malloc(sizeof(*p));
	if (c == NULL || p == NULL)
		goto oom;
	c->rx_cap = SX_REC_HDR_LEN + max_body;
	c->rx = malloc(c->rx_cap);
	c->join = malloc(hd->join_len ? hd->join_len : 1);
	if (c->rx == NULL || c->join == NULL)
		goto oom;
	memcpy(c->join, hd->join, hd->join_len);
	c->join_len = hd->join_len;
	c->fd = hd->fd;
	c->id = hd->id;
	snprintf(c->addr, sizeof(c->addr), "%s", hd->addr != NULL ? hd->addr : "");
	c->on_end = hd->on_end;
	c->end_ctx = hd->end_ctx;
	c->out_allow = HUB_OUT_MAX;
	c->t0 = sx_now_ns();
	sx_link_move(&c->link, hd->link);
	sx_link_rx_set(&c->link, c->rx, c->rx_cap);
	c->link.max_body = max_body;
	p->c = c;
	pthread_mutex_lock(&h->mu);
	p->next = h->pend;
	h->pend = p;
	pthread_mutex_unlock(&h->mu);
	wake(h);
	return 0;
oom:
	if (c != NULL) {
		free(c->rx);
		free(c->join);
	}
	free(c);
	free(p);
	return sx_fail(err, SX_E_OTHER, "out of memory");
}

const sx_chat_stats *sx_chat_hub_stats(const sx_chat_hub *h)
{
	return &h->st;
}
