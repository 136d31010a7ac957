/* engine/chat: a connection's chat messages after its JOIN: POST (the
 * order of its checks: hub_msg.c), RECEIPT, WHO, BYE; and the CRL's
 * re-check of the connected peers. */
#include <stdarg.h>

#include "common/sx_util.h"
#include "engine/chat/hub_int.h"

/* REFUSED to the author, and one log line. */
static int refuse(sx_chat_hub *h, hconn *c, const sx_chat_post *p, sx_chat_why why, uint64_t n,
		  const uint8_t *head, sx_err *err, const char *fmt, ...) SX_PRINTF(8, 9);
static int refuse(sx_chat_hub *h, hconn *c, const sx_chat_post *p, sx_chat_why why, uint64_t n,
		  const uint8_t *head, sx_err *err, const char *fmt, ...)
{
	char reason[SX_REASON_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	c->refused++;
	if ((unsigned)why <= SX_CHAT_BAD)
		HUB_COUNT(h->st.refused[why], 1);
	sx_log("warn", "chat_refused", "conn=%u peer=%s conv=%s seq=%llu why=%s reason=%s", c->id,
	       SX_LOGQ(c->name), SX_LOGQ(p->conv), (unsigned long long)p->seq,
	       SX_LOGT(sx_chat_why_name(why)), SX_LOGQ(reason));
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_REFUSED;
	snprintf(m->conv, sizeof(m->conv), "%s", p->conv);
	m->seq = p->seq;
	m->why = (uint8_t)why;
	m->n = n;
	if (head != NULL)
		memcpy(m->head, head, SX_HASH_LEN);
	m->reason = reason;
	m->reason_len = strlen(reason);
	return hub_send(h, c, m, err);
}

/* The members of a direct conversation with no live connection, but for
 * skip (the author, the signer). */
typedef struct offline {
	char (*names)[SX_CHAT_NAME_MAX + 1];
	size_t n;
} offline;

static int offline_of(sx_chat_hub *h, const char *conv, const char *skip, offline *o, size_t *all,
		      sx_err *err)
{
	char name[SX_CHAT_NAME_MAX + 1];
	size_t at = 0;
	o->n = 0;
	*all = 0;
	if (sx_chat_conv_is_room(conv))
		return 0;
	while (sx_chat_conv_next(conv, &at, name) == 1) {
		(*all)++;
		if (strcmp(name, skip) == 0 || hub_online(h, name))
			continue;
		if (o->n == SX_CHAT_TO_MAX)
			return sx_fail(err, SX_E_INTEGRITY, "too many members in %s", conv);
		snprintf(o->names[o->n++], sizeof(o->names[0]), "%s", name);
	}
	return 0;
}

/* Limits and membership: SX_CHAT_OK, or the refusal's code and reason. */
static sx_chat_why post_limits(sx_chat_hub *h, hconn *c, const sx_chat_post *p, size_t members,
			       char *why, size_t cap)
{
	hub_ident *id = hub_ident_get(h, c->name);
	if (p->text_len > h->cfg.max_text) {
		snprintf(why, cap, "the text is %zu bytes; this server takes at most %u",
			 p->text_len, h->cfg.max_text);
		return SX_CHAT_TOO_BIG;
	}
	if (id != NULL && !hub_rate_take(&id->bucket, h->cfg.rate, sx_now_ns())) {
		snprintf(why, cap, "sending too fast: at most %u messages per second", h->cfg.rate);
		return SX_CHAT_RATE;
	}
	if (members > h->cfg.max_to) {
		snprintf(why, cap, "%s has %zu members; this server takes at most %u", p->conv,
			 members, h->cfg.max_to);
		return SX_CHAT_RECIPIENTS;
	}
	if (sx_chat_conv_is_room(p->conv) && strcmp(p->conv, c->room) != 0) {
		snprintf(why, cap, "this connection did not join %s", p->conv);
		return SX_CHAT_NOT_MEMBER;
	}
	if (!sx_chat_conv_is_room(p->conv) && !sx_chat_conv_has(p->conv, c->name)) {
		snprintf(why, cap, "%s is not a member of %s", c->name, p->conv);
		return SX_CHAT_NOT_MEMBER;
	}
	if (strcmp(p->author, c->name) != 0) {
		snprintf(why, cap, "the author '%s' is not this connection's identity '%s'",
			 p->author, c->name);
		return SX_CHAT_BAD;
	}
	return SX_CHAT_OK;
}

/* The verifier's word on p (not yet taken): OK, or REFUSED sent. */
static int post_verify(sx_chat_hub *h, hconn *c, const sx_chat_post *p, uint8_t hash[SX_HASH_LEN],
		       bool *ok, sx_err *err)
{
	sx_chat_why why = SX_CHAT_OK;
	sx_err e = {0};
	*ok = sx_chat_ver_msg(h->ver, p, false, &why, hash, &e) == 0;
	if (*ok)
		return 0;
	uint64_t n = 0;
	uint8_t head[SX_HASH_LEN] = {0};
	if (why == SX_CHAT_OK)
		why = SX_CHAT_BAD;
	if (why == SX_CHAT_STALE)
		sx_chat_ver_tip(h->ver, p->conv, &n, head);
	if (why == SX_CHAT_REPLAY)
		n = sx_chat_ver_last_seq(h->ver, p->conv, p->author) + 1;
	return refuse(h, c, p, why, n, why == SX_CHAT_STALE ? head : NULL, err, "%s", e.msg);
}

/* The post's MSG line in the transcript, the verifier advanced, the
 * offline members' queues written: *queued of them. */
static int post_keep(sx_chat_hub *h, const sx_chat_post *p, const uint8_t hash[SX_HASH_LEN],
		     const offline *off, uint32_t *queued, sx_err *err)
{
	sx_chat_line l = {.kind = SX_CHAT_L_MSG, .post = *p};
	char *line = NULL, *cert = NULL;
	int64_t now = hub_now_ms();
	int rc = -1;
	memcpy(l.hash, hash, SX_HASH_LEN);
	*queued = 0;
	SX_GUARD(hub_tr_append(h, &l, &line, err));
	SX_GUARD(sx_chat_ver_msg(h->ver, p, true, NULL, NULL, err));
	if (off->n > 0)
		SX_GUARD(hub_cert_line(h, p->fp, &cert, err));
	for (size_t i = 0; i < off->n; i++) {
		sx_err e = {0};
		if (hub_q_push(&h->qs, off->names[i], p->fp, cert, line, now, &e) < 0) {
			sx_log("error", "chat_queue", "name=%s conv=%s cause=%s",
			       SX_LOGQ(off->names[i]), SX_LOGQ(p->conv), SX_LOGQ(e.msg));
			continue;
		}
		(*queued)++;
	}
	HUB_COUNT(h->st.accepted, 1);
	HUB_COUNT(h->st.queued, *queued);
	rc = 0;
out:
	free(line);
	free(cert);
	return rc;
}

static int on_post(sx_chat_hub *h, hconn *c, sx_err *err)
{
	sx_chat_post *p = &h->min->post;
	char why_s[SX_REASON_MAX + 1];
	uint8_t hash[SX_HASH_LEN];
	offline off = {.names = malloc(SX_CHAT_TO_MAX * sizeof(*off.names))};
	size_t members = 0;
	uint32_t queued = 0;
	bool ok;
	int rc = -1;
	SX_ENSURE(off.names != NULL, err, SX_E_OTHER, "out of memory");
	c->posts++;
	memcpy(p->fp, c->fp, SX_HASH_LEN); /* the peer's own certificate */
	SX_GUARD(offline_of(h, p->conv, c->name, &off, &members, err));
	sx_chat_why why = post_limits(h, c, p, members, why_s, sizeof(why_s));
	if (why != SX_CHAT_OK) {
		rc = refuse(h, c, p, why, 0, NULL, err, "%s", why_s);
		goto out;
	}
	SX_GUARD(post_verify(h, c, p, hash, &ok, err));
	if (!ok) {
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < off.n; i++) {
		bool room;
		size_t waiting;
		SX_GUARD(hub_q_room(&h->qs, off.names[i], hub_now_ms(), &room, &waiting, err));
		if (!room) {
			rc = refuse(h, c, p, SX_CHAT_QUEUE_FULL, 0, NULL, err,
				    "%s's queue is full (%zu messages waiting)", off.names[i],
				    waiting);
			goto out;
		}
	}
	SX_GUARD(post_keep(h, p, hash, &off, &queued, err));
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_ACCEPTED;
	snprintf(m->conv, sizeof(m->conv), "%s", p->conv);
	m->seq = p->seq;
	m->n = p->n;
	memcpy(m->head, hash, SX_HASH_LEN);
	m->queued = queued;
#ifdef SXFER_TEST_HOOKS
	if (h->hostile == HOSTILE_MUTE && ++h->posts == h->hostile_k)
		m->type = 0; /* no answer */
#endif
	if (m->type != 0)
		SX_GUARD(hub_send(h, c, m, err));
	for (size_t i = 0; i < h->conns_cap; i++) {
		hconn *o = h->conns[i];
		sx_err e = {0};
		if (o != NULL && o != c && hub_member_conn(h, o, p->conv) &&
		    hub_deliver(h, o, p, 0, &e) < 0)
			hub_end(h, o, &e, false);
	}
	rc = 0;
out:
	free(off.names);
	return rc;
}

/* ---- RECEIPT ----------------------------------------------------------------- */

static int receipt_keep(sx_chat_hub *h, hconn *c, const sx_chat_receipt *r, sx_err *err)
{
	sx_err e = {0};
	if (sx_chat_ver_receipt(h->ver, r, &e) < 0) {
		/* relayed all the same: the other members judge it */
		sx_log("warn", "chat_receipt", "conn=%u peer=%s conv=%s n=%llu reason=%s", c->id,
		       SX_LOGQ(c->name), SX_LOGQ(r->conv), (unsigned long long)r->n,
		       SX_LOGQ(e.msg));
		return 0;
	}
	sx_chat_line l = {.kind = SX_CHAT_L_RECEIPT, .receipt = *r};
	if (hub_tr_append(h, &l, NULL, err) < 0)
		return -1;
	HUB_COUNT(h->st.receipts, 1);
	return 0;
}

/* A session's receipts: one per conversation it touched, each of one the
 * server holds (it holds every conversation from its first message).
 * Others (again, or of a conversation never spoken in) are not kept or
 * relayed: each would be a flushed write here and a queue entry for
 * every offline member. false: drop it (logged). */
static bool receipt_wanted(sx_chat_hub *h, hconn *c, const sx_chat_receipt *r, sx_err *err)
{
	const char *why = NULL;
	char *conv = NULL;
	for (size_t i = 0; i < c->nreceipted && why == NULL; i++)
		if (strcmp(c->receipted[i], r->conv) == 0)
			why = "a second receipt of the conversation in one session: not kept";
	if (why == NULL && sx_chat_ver_count(h->ver, r->conv) == 0)
		why = "a receipt of a conversation this server holds nothing of: not kept";
	if (why == NULL && ((conv = strdup(r->conv)) == NULL ||
			    sx_grow(&c->receipted, &c->receipted_cap, c->nreceipted + 1,
				    sizeof(*c->receipted), 1u << 20, "receipts", err) < 0)) {
		free(conv);
		why = "out of memory";
	}
	if (why != NULL) {
		sx_log("warn", "chat_receipt", "conn=%u peer=%s conv=%s n=%llu reason=%s", c->id,
		       SX_LOGQ(c->name), SX_LOGQ(r->conv), (unsigned long long)r->n, SX_LOGQ(why));
		return false;
	}
	c->receipted[c->nreceipted++] = conv;
	return true;
}

static int on_receipt(sx_chat_hub *h, hconn *c, sx_err *err)
{
	sx_chat_receipt *r = &h->min->receipt;
	offline off = {.names = malloc(SX_CHAT_TO_MAX * sizeof(*off.names))};
	char *line = NULL, *cert = NULL;
	size_t members;
	int rc = -1;
	SX_ENSURE(off.names != NULL, err, SX_E_OTHER, "out of memory");
	SX_ENSURE(strcmp(r->signer, c->name) == 0, err, SX_E_INTEGRITY,
		  "a receipt signed as '%s' on a connection of '%s'", r->signer, c->name);
	SX_ENSURE(sx_chat_conv_is_room(r->conv) ? strcmp(r->conv, c->room) == 0
						: sx_chat_conv_has(r->conv, c->name),
		  err, SX_E_USAGE, "a receipt of %s, which %s is not a member of", r->conv,
		  c->name);
	memcpy(r->fp, c->fp, SX_HASH_LEN);
	X509 *leaf = sk_X509_value(c->link.k.peer_chain, 0);
	SX_GUARD(sx_chat_receipt_verify(r, X509_get0_pubkey(leaf), err));
	if (!receipt_wanted(h, c, r, err)) {
		rc = 0;
		goto out;
	}
	SX_GUARD(receipt_keep(h, c, r, err));
	SX_GUARD(offline_of(h, r->conv, c->name, &off, &members, err));
	if (off.n > 0) {
		sx_chat_line l = {.kind = SX_CHAT_L_RECEIPT, .receipt = *r};
		size_t len;
		SX_GUARD(sx_chat_line_encode(&l, &line, &len, err));
		SX_GUARD(hub_cert_line(h, r->fp, &cert, err));
	}
	for (size_t i = 0; i < off.n; i++) {
		bool room;
		size_t waiting;
		sx_err e = {0};
		if (hub_q_room(&h->qs, off.names[i], hub_now_ms(), &room, &waiting, &e) < 0 ||
		    !room ||
		    hub_q_push(&h->qs, off.names[i], r->fp, cert, line, hub_now_ms(), &e) < 0)
			sx_log(
			    "warn", "chat_queue", "name=%s conv=%s reason=%s",
			    SX_LOGQ(off.names[i]), SX_LOGQ(r->conv),
			    SX_LOGQ(e.msg[0] ? e.msg : "the queue is full: a receipt is not kept"));
	}
	for (size_t i = 0; i < h->conns_cap; i++) {
		hconn *o = h->conns[i];
		sx_err e = {0};
		if (o == NULL || o == c || strcmp(o->name, c->name) == 0 ||
		    !hub_member_conn(h, o, r->conv))
			continue;
		if (hub_cert_to(h, o, r->fp, &e) == 0) {
			sx_chat_msg *m = h->mout;
			memset(m, 0, sizeof(*m));
			m->type = SX_MSG_CHAT_RECEIPT;
			m->receipt = *r;
			if (hub_send(h, o, m, &e) == 0)
				continue;
		}
		hub_end(h, o, &e, false);
	}
	rc = 0;
out:
	free(line);
	free(cert);
	free(off.names);
	return rc;
}

/* ---- WHO, and the dispatch -------------------------------------------------------- */

static int on_who(sx_chat_hub *h, hconn *c, sx_err *err)
{
	size_t cap = SX_CHAT_WHO_MAX * (SX_CHAT_NAME_MAX + 1), len = 0;
	uint32_t n = 0;
	char *names = malloc(cap);
	if (names == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (size_t i = 0; i < h->conns_cap && n < SX_CHAT_WHO_MAX; i++) {
		const hconn *o = h->conns[i];
		if (o == NULL || !o->joined || o->closing)
			continue;
		if (c->room[0] != '\0' && !hub_in_room(o, c->room))
			continue;
		bool seen = false;
		for (size_t at = 0; at < len && !seen; at += strlen(names + at) + 1)
			seen = strcmp(names + at, o->name) == 0;
		if (seen)
			continue;
		size_t l = strlen(o->name) + 1;
		memcpy(names + len, o->name, l);
		len += l;
		n++;
	}
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_MEMBERS;
	m->names = names;
	m->names_len = len;
	m->nnames = n;
	int rc = hub_send(h, c, m, err);
	free(names);
	return rc;
}

int hub_on_msg(sx_chat_hub *h, hconn *c, sx_err *err)
{
	switch (h->min->type) {
	case SX_MSG_CHAT_POST: return on_post(h, c, err); /* text_hash: set by the decoder */
	case SX_MSG_CHAT_RECEIPT: return on_receipt(h, c, err);
	case SX_MSG_CHAT_WHO: return on_who(h, c, err);
	case SX_MSG_CHAT_BYE: hub_bye(h, c); return 0;
	case SX_MSG_CHAT_JOIN:
		return sx_fail(err, SX_E_INTEGRITY, "a second CHAT_JOIN on one connection");
	default:
		return sx_fail(err, SX_E_INTEGRITY, "a client does not send chat message 0x%02x",
			       h->min->type);
	}
}

void hub_crl_check(sx_chat_hub *h)
{
	for (size_t i = 0; i < h->conns_cap; i++) {
		hconn *c = h->conns[i];
		sx_err e = {0};
		if (c == NULL || c->closing || c->link.k.peer_chain == NULL)
			continue;
		X509 *leaf = sk_X509_value(c->link.k.peer_chain, 0);
		if (sx_policy_check(&h->pol, leaf, c->link.k.peer_chain, SX_ROLE_CLIENT, NULL,
				    &e) == 0 ||
		    strstr(e.msg, "revoked") == NULL)
			continue;
		sx_err why = {0};
		sx_fail(&why, SX_E_AUTH, "the server's new CRL revokes this identity: %s", e.msg);
		sx_log("warn", "chat_revoked", "conn=%u peer=%s reason=%s", c->id, SX_LOGQ(c->name),
		       SX_LOGQ(e.msg));
		hub_end(h, c, &why, true);
	}
}
