/* engine/chat: what each chat message does at the hub (docs/PROTOCOL.md
 * "Chat", "A session").
 *
 * A POST is checked in this order, the first failure answered with
 * REFUSED and its reason (the connection goes on): the server's limits
 * (text size, the identity's rate, the members of a direct conversation),
 * membership (the room this connection joined; the author among the
 * members), the author (the peer's certificate's name; the fingerprint is
 * the peer's leaf's), then the verifier (signature, seq, chain: STALE,
 * REPLAY, BAD), then the queues of the offline members (QUEUE_FULL). Only
 * then is its MSG line appended to the transcript (write-ahead), the
 * verifier advanced, the offline members' queues written and flushed, the
 * author told ACCEPTED, and every other connection of every member sent
 * CERT (once per author per connection) and DELIVER. */
#include <stdarg.h>

#include "common/sx_util.h"
#include "engine/chat/hub_int.h"

/* ---- sending to members ------------------------------------------------------- */

bool hub_in_room(const hconn *o, const char *room)
{
	return o->joined && !o->closing && o->room[0] != '\0' && strcmp(o->room, room) == 0;
}

bool hub_member_conn(const sx_chat_hub *h, const hconn *o, const char *conv)
{
	if (!o->joined || o->closing)
		return false;
	(void)h;
#ifdef SXFER_TEST_HOOKS
	if (h->hostile == HOSTILE_LEAK)
		return true;
#endif
	return sx_chat_conv_is_room(conv) ? hub_in_room(o, conv) : sx_chat_conv_has(conv, o->name);
}

int hub_notice(sx_chat_hub *h, hconn *c, uint8_t kind, const char *conv, const char *name,
	       uint64_t n, const uint8_t *head, const char *reason, sx_err *err)
{
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_NOTICE;
	m->kind = kind;
	snprintf(m->conv, sizeof(m->conv), "%s", conv);
	snprintf(m->name, sizeof(m->name), "%s", name != NULL ? name : "");
	m->n = n;
	if (head != NULL)
		memcpy(m->head, head, SX_HASH_LEN);
	m->reason = reason;
	m->reason_len = reason != NULL ? strlen(reason) : 0;
	return hub_send(h, c, m, err);
}

/* A DELIVER of p to c (its author's CERT first, once per connection).
 * The test hook SXFER_TEST_HOSTILE_CHAT misbehaves here. */
int hub_deliver(sx_chat_hub *h, hconn *c, const sx_chat_post *p, uint32_t flags, sx_err *err)
{
	uint8_t *alt = NULL;
	int rc = -1;
	SX_GUARD(hub_cert_to(h, c, p->fp, err));
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_DELIVER;
	m->flags = flags;
	m->post = *p;
	h->delivers++;
	c->delivered++;
	HUB_COUNT(h->st.delivered, 1);
	hub_hostile mode = HOSTILE_NONE;
#ifdef SXFER_TEST_HOOKS
	if (h->delivers == h->hostile_k)
		mode = h->hostile;
#endif
	if (mode == HOSTILE_DROP)
		return 0;
	if (mode == HOSTILE_SKIPHEAD) {
		uint8_t hash[SX_HASH_LEN];
		SX_GUARD(sx_chat_post_hash(p, hash, err));
		return hub_notice(h, c, SX_CHAT_N_HEAD, p->conv, p->author, p->n, hash, NULL, err);
	}
	if (mode == HOSTILE_ALTER && p->text_len > 0) {
		alt = malloc(p->text_len);
		SX_ENSURE(alt != NULL, err, SX_E_OTHER, "out of memory");
		memcpy(alt, p->text, p->text_len);
		alt[0] ^= 0x01;
		m->post.text = alt;
	} else if (mode == HOSTILE_ALTER) {
		m->post.sig[0] ^= 0x01;
	}
	if (mode == HOSTILE_REORDER) {
		sx_wbuf w = sx_wbuf_make(h->body, h->body_cap);
		sx_chat_msg_encode(m, &w);
		SX_ENSURE(!w.overflow, err, SX_E_OTHER, "a DELIVER does not fit");
		free(c->held);
		c->held = malloc(w.len);
		SX_ENSURE(c->held != NULL, err, SX_E_OTHER, "out of memory");
		memcpy(c->held, h->body, w.len);
		c->held_len = w.len;
		return 0;
	}
	SX_GUARD(hub_send(h, c, m, err));
	if (mode == HOSTILE_REPLAY)
		SX_GUARD(hub_send(h, c, m, err));
	if (c->held != NULL) {
		uint8_t *held = c->held;
		c->held = NULL;
		rc = hub_send_rec(h, c, SX_REC_CTRL, held, c->held_len, err);
		free(held);
		SX_GUARD(rc);
	}
	rc = 0;
out:
	free(alt);
	return rc;
}

/* ---- JOIN --------------------------------------------------------------------- */

typedef struct qgap {
	char conv[SX_CHAT_CONV_MAX + 1];
	uint64_t n, count;
} qgap;

typedef struct qdel {
	sx_chat_hub *h;
	hconn *c;
	const hub_sync *sync; /* what the client holds (its tips, what was sent again) */
	qgap *gaps;
	size_t ngaps;
	uint64_t msgs, receipts, expired, skipped;
} qdel;

static int gap_flush(qdel *d, size_t i, sx_err *err)
{
	char why[160];
	qgap *g = &d->gaps[i];
	if (g->count > 0)
		snprintf(why, sizeof(why),
			 "%llu messages waited longer than %llu seconds and expired",
			 (unsigned long long)g->count, (unsigned long long)d->h->cfg.queue_age_s);
	else
		snprintf(why, sizeof(why), "messages expired in the queue");
	int rc = hub_notice(d->h, d->c, SX_CHAT_N_GAP, g->conv, "", g->n, NULL, why, err);
	d->gaps[i] = d->gaps[--d->ngaps];
	return rc;
}

static int gap_note(qdel *d, const char *conv, uint64_t n, uint64_t count, sx_err *err)
{
	for (size_t i = 0; i < d->ngaps; i++)
		if (strcmp(d->gaps[i].conv, conv) == 0) {
			d->gaps[i].n = n > d->gaps[i].n ? n : d->gaps[i].n;
			d->gaps[i].count += count;
			return 0;
		}
	SX_ENSURE(d->ngaps < HUB_GAPS_MAX, err, SX_E_OTHER, "too many conversations with a gap");
	qgap *g = &d->gaps[d->ngaps++];
	snprintf(g->conv, sizeof(g->conv), "%s", conv);
	g->n = n;
	g->count = count;
	return 0;
out:
	return -1;
}

/* Before a message of conv: the gap that precedes it. */
static int gap_before(qdel *d, const char *conv, sx_err *err)
{
	for (size_t i = 0; i < d->ngaps; i++)
		if (strcmp(d->gaps[i].conv, conv) == 0)
			return gap_flush(d, i, err);
	return 0;
}

static int q_line(void *ctx, const sx_chat_line *l, int64_t t, bool expired, sx_err *err)
{
	qdel *d = ctx;
	(void)t;
	/* what the client holds already (its tips, what was sent again) */
	if ((l->kind == SX_CHAT_L_MSG && l->post.n <= hub_sync_upto(d->sync, l->post.conv)) ||
	    (l->kind == SX_CHAT_L_GAP && l->n <= hub_sync_upto(d->sync, l->conv))) {
		d->skipped++;
		return 0;
	}
	switch (l->kind) {
	case SX_CHAT_L_MSG:
		if (expired) {
			d->expired++;
			return gap_note(d, l->post.conv, l->post.n, 1, err);
		}
		if (gap_before(d, l->post.conv, err) < 0)
			return -1;
		d->msgs++;
		return hub_deliver(d->h, d->c, &l->post, SX_CHAT_F_QUEUED, err);
	case SX_CHAT_L_GAP: return gap_note(d, l->conv, l->n, 0, err);
	case SX_CHAT_L_RECEIPT:
		if (expired)
			return 0;
		if (hub_cert_to(d->h, d->c, l->receipt.fp, err) < 0)
			return -1;
		sx_chat_msg *m = d->h->mout;
		memset(m, 0, sizeof(*m));
		m->type = SX_MSG_CHAT_RECEIPT;
		m->receipt = l->receipt;
		d->receipts++;
		return hub_send(d->h, d->c, m, err);
	default: return 0; /* cert: the verifier holds every author's chain */
	}
}

/* What waited for c's identity, but for what c holds (sync), then its
 * file goes once it is sent. */
static int deliver_queue(sx_chat_hub *h, hconn *c, const hub_sync *sync, sx_err *err)
{
	hub_queue *q = hub_q_find(&h->qs, c->name);
	if (q == NULL || q->busy)
		return 0;
	qgap *gaps = calloc(HUB_GAPS_MAX, sizeof(*gaps));
	if (gaps == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	qdel d = {.h = h, .c = c, .sync = sync, .gaps = gaps};
	int rc = hub_q_read(&h->qs, c->name, hub_now_ms(), q_line, &d, err);
	while (rc == 0 && d.ngaps > 0)
		rc = gap_flush(&d, 0, err);
	free(gaps);
	if (rc < 0) {
		hub_q_abort(&h->qs, c->name);
		return -1;
	}
	c->q_busy = true;
	c->q_until = c->queued_bytes;
	sx_log("info", "chat_queue",
	       "conn=%u name=%s action=deliver msgs=%llu receipts=%llu "
	       "expired=%llu skipped=%llu",
	       c->id, SX_LOGQ(c->name), (unsigned long long)d.msgs, (unsigned long long)d.receipts,
	       (unsigned long long)d.expired, (unsigned long long)d.skipped);
	return 0;
}

static int welcome(sx_chat_hub *h, hconn *c, uint64_t n, const uint8_t head[SX_HASH_LEN],
		   sx_err *err)
{
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_WELCOME;
	m->version = SX_CHAT_VERSION;
	m->max_text = h->cfg.max_text;
	m->max_to = h->cfg.max_to;
	m->rate = h->cfg.rate;
	m->queue_max = h->cfg.queue_max;
	m->room = c->room[0] != '\0' ? c->room + 1 : "";
	m->room_len = strlen(m->room);
	m->n = n;
	memcpy(m->head, head, SX_HASH_LEN);
	return hub_send(h, c, m, err);
}

static int join_check(sx_chat_hub *h, hconn *c, sx_err *err)
{
	sx_chat_msg *m = h->min;
	sx_err why = {0};
	SX_GUARD(sx_chat_msg_decode(c->join, c->join_len, m, err));
	SX_ENSURE(m->version == SX_CHAT_VERSION, err, SX_E_USAGE,
		  "chat version %u is not spoken here (this server speaks %u)", m->version,
		  SX_CHAT_VERSION);
	snprintf(c->name, sizeof(c->name), "%.*s", SX_CHAT_NAME_MAX, c->link.k.peer_name);
	if (sx_chat_name_check(c->link.k.peer_name, strlen(c->link.k.peer_name), &why) < 0)
		return sx_fail(err, SX_E_USAGE, "your certificate's name cannot chat: %s", why.msg);
	X509 *leaf = c->link.k.peer_chain != NULL && sk_X509_num(c->link.k.peer_chain) > 0
			 ? sk_X509_value(c->link.k.peer_chain, 0)
			 : NULL;
	SX_ENSURE(leaf != NULL, err, SX_E_AUTH, "no peer certificate");
	SX_GUARD(sx_cert_fp(leaf, c->fp, err));
	if (m->room_len > 0) {
		if (sx_chat_name_check(m->room, m->room_len, &why) < 0)
			return sx_fail(err, SX_E_USAGE, "the room's name: %s", why.msg);
		char room[SX_CHAT_NAME_MAX + 1];
		snprintf(room, sizeof(room), "%.*s", (int)m->room_len, m->room);
		SX_GUARD(sx_chat_conv_room(room, c->room, sizeof(c->room), err));
	}
	return hub_cert_known(h, c, err);
out:
	return -1;
}

/* What c lacks: the messages its tips say are missing, then its queue.
 * Both may pass the usual bound of bytes waiting until they are out. */
static int catch_up(sx_chat_hub *h, hconn *c, sx_err *err)
{
	hub_sync sync = {0};
	uint64_t before = c->queued_bytes;
	c->out_allow = SIZE_MAX;
	int rc = hub_catch_up(h, c, &sync, err);
	if (rc == 0)
		rc = deliver_queue(h, c, &sync, err);
	hub_sync_free(&sync);
	c->out_allow = HUB_OUT_MAX + (size_t)(c->queued_bytes - before);
	return rc;
}

int hub_on_join(sx_chat_hub *h, hconn *c, sx_err *err)
{
	uint64_t n = 0;
	uint8_t head[SX_HASH_LEN] = {0};
	SX_GUARD(join_check(h, c, err));
	hub_ident *id = hub_ident_get(h, c->name);
	SX_ENSURE(id != NULL, err, SX_E_OTHER, "out of memory");
	id->conns++;
	c->joined = true;
	if (c->room[0] != '\0')
		sx_chat_ver_tip(h->ver, c->room, &n, head);
	SX_GUARD(welcome(h, c, n, head, err));
	if (c->room[0] != '\0') {
		SX_GUARD(hub_notice(h, c, SX_CHAT_N_HEAD, c->room, c->name, n, head, NULL, err));
		for (size_t i = 0; i < h->conns_cap; i++) {
			hconn *o = h->conns[i];
			sx_err e = {0};
			if (o != NULL && o != c && hub_in_room(o, c->room) &&
			    hub_notice(h, o, SX_CHAT_N_JOINED, c->room, c->name, 0, NULL, NULL,
				       &e) < 0)
				hub_end(h, o, &e, false);
		}
	}
	sx_log("info", "chat_open", "conn=%u addr=%s peer=%s room=%s", c->id, SX_LOGT(c->addr),
	       SX_LOGQ(c->name), SX_LOGQ(c->room));
	return catch_up(h, c, err);
out:
	return -1;
}

void hub_on_leave(sx_chat_hub *h, hconn *c)
{
	hub_ident *id = hub_ident_get(h, c->name);
	if (id != NULL && id->conns > 0)
		id->conns--;
	if (c->room[0] == '\0')
		return;
	for (size_t i = 0; i < h->conns_cap; i++) {
		hconn *o = h->conns[i];
		sx_err e = {0};
		if (o != NULL && o != c && hub_in_room(o, c->room) &&
		    hub_notice(h, o, SX_CHAT_N_LEFT, c->room, c->name, 0, NULL, NULL, &e) < 0)
			hub_end(h, o, &e, false);
	}
}
