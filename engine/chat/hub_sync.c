/* engine/chat: catching up a direct conversation (docs/PROTOCOL.md "Chat",
 * "Catching up").
 *
 * Delivery to a connected member is not acknowledged: a connection that
 * drops while a DELIVER is still unsent, or a relay that loses one, leaves
 * the member's transcript behind the conversation, and its verifier then
 * (rightly) refuses every later message as "missing". So a JOIN names,
 * for each direct conversation the client's transcript holds, the last
 * position it holds (its tip); the hub holds every message from the first
 * (its transcript is strict) and sends what is missing, read back from its
 * transcript: the authors' signed messages themselves, which the client's
 * verifier checks as any other. The queue's delivery that follows skips
 * what the client holds now.
 *
 * The index: per conversation, where the MSG line of each position is in
 * the transcript, so that a message is read back with one pread. */
#include <errno.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/chat/hub_int.h"

#define IX_CONVS_MAX ((size_t)1 << 26)
#define IX_POS_MAX   ((size_t)1 << 40)

/* ---- the index --------------------------------------------------------------- */

static uint64_t ix_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* The slot of conv: its own, or the empty one it would take. */
static hub_ixc *ix_slot(const hub_ix *ix, const char *conv, uint64_t hash)
{
	size_t mask = ix->cap - 1;
	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		hub_ixc *s = &ix->slots[i];
		if (s->conv == NULL || (s->hash == hash && strcmp(s->conv, conv) == 0))
			return s;
	}
}

static int ix_rehash(hub_ix *ix, sx_err *err)
{
	size_t cap = ix->cap ? ix->cap * 2 : 64;
	if (cap / 2 > IX_CONVS_MAX)
		return sx_fail(err, SX_E_OTHER, "too many conversations to index");
	hub_ixc *slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	hub_ixc *old = ix->slots;
	size_t old_cap = ix->cap;
	ix->slots = slots;
	ix->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].conv != NULL)
			*ix_slot(ix, old[i].conv, old[i].hash) = old[i];
	free(old);
	return 0;
}

int hub_ix_add(hub_ix *ix, const char *conv, uint64_t n, uint64_t off, size_t len, sx_err *err)
{
	uint64_t hash = ix_hash(conv);
	if ((ix->used + 1) * 4 > ix->cap * 3 && ix_rehash(ix, err) < 0)
		return -1;
	hub_ixc *s = ix_slot(ix, conv, hash);
	if (s->conv == NULL) {
		s->conv = strdup(conv);
		if (s->conv == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		s->hash = hash;
		ix->used++;
	}
	if (n != s->n + 1 || len > UINT32_MAX)
		return sx_fail(
		    err, SX_E_INTEGRITY,
		    "message %llu of %s after %zu: the transcript's index is out of step",
		    (unsigned long long)n, conv, s->n);
	if (sx_grow(&s->pos, &s->cap, s->n + 1, sizeof(*s->pos), IX_POS_MAX, "indexed messages",
		    err) < 0)
		return -1;
	s->pos[s->n++] = (hub_ixpos){.off = off, .len = (uint32_t)len};
	return 0;
}

const hub_ixpos *hub_ix_get(const hub_ix *ix, const char *conv, uint64_t n)
{
	if (ix->cap == 0 || n == 0)
		return NULL;
	const hub_ixc *s = ix_slot(ix, conv, ix_hash(conv));
	return s->conv != NULL && n <= s->n ? &s->pos[n - 1] : NULL;
}

void hub_ix_free(hub_ix *ix)
{
	for (size_t i = 0; i < ix->cap; i++) {
		free(ix->slots[i].conv);
		free(ix->slots[i].pos);
	}
	free(ix->slots);
	memset(ix, 0, sizeof(*ix));
}

/* ---- what the client holds ------------------------------------------------------ */

static int skip_cmp(const void *a, const void *b)
{
	return strcmp(((const hub_skip *)a)->conv, ((const hub_skip *)b)->conv);
}

uint64_t hub_sync_upto(const hub_sync *s, const char *conv)
{
	hub_skip key = {.conv = (char *)conv};
	const hub_skip *k = s->n > 0 ? bsearch(&key, s->s, s->n, sizeof(*s->s), skip_cmp) : NULL;
	return k != NULL ? k->upto : 0;
}

void hub_sync_free(hub_sync *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->s[i].conv);
	free(s->s);
	memset(s, 0, sizeof(*s));
}

/* The tips arrive sorted (the decoder checks it): kept in that order. */
static int sync_add(hub_sync *s, const char *conv, uint64_t upto, sx_err *err)
{
	if (sx_grow(&s->s, &s->cap, s->n + 1, sizeof(*s->s), SX_CHAT_TIPS_MAX, "tips", err) < 0)
		return -1;
	s->s[s->n].conv = strdup(conv);
	if (s->s[s->n].conv == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	s->s[s->n++].upto = upto;
	return 0;
}

/* ---- sending again ---------------------------------------------------------------- */

/* Message k of conv, read back from the transcript (free l after). */
static int read_msg(sx_chat_hub *h, const char *conv, uint64_t k, sx_chat_line *l, sx_err *err)
{
	const hub_ixpos *p = hub_ix_get(&h->ix, conv, k);
	char *buf = NULL;
	size_t have = 0;
	int rc = -1;
	memset(l, 0, sizeof(*l));
	SX_ENSURE(p != NULL, err, SX_E_OTHER, "message %llu of %s is not in the transcript's index",
		  (unsigned long long)k, conv);
	buf = malloc(p->len > 0 ? p->len : 1);
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	while (have < p->len) {
		ssize_t n = pread(h->tr_fd, buf + have, p->len - have, (off_t)(p->off + have));
		if (n < 0 && errno == EINTR)
			continue;
		SX_ENSURE(n > 0, err, SX_E_IO, "%s: a read failed", h->tr_path);
		have += (size_t)n;
	}
	SX_GUARD(sx_chat_line_decode(buf, p->len, l, err));
	SX_ENSURE(l->kind == SX_CHAT_L_MSG && l->post.n == k && strcmp(l->post.conv, conv) == 0,
		  err, SX_E_INTEGRITY, "%s: the line of message %llu of %s is not that message",
		  h->tr_path, (unsigned long long)k, conv);
	rc = 0;
out:
	free(buf);
	return rc;
}

/* What one JOIN may have resent, over all its conversations: at most 16
 * times a queue's worth of messages and about 64 MiB of text, so that a
 * JOIN naming thousands of conversations cannot make the hub buffer
 * without bound. */
static uint64_t join_budget(const sx_chat_hub *h)
{
	uint64_t by_bytes = (64ull << 20) / (h->cfg.max_text ? h->cfg.max_text : 1);
	uint64_t by_count = 16ull * h->cfg.queue_max;
	uint64_t b = by_bytes < by_count ? by_bytes : by_count;
	return b > 0 ? b : 1;
}

/* Messages tip+1..head of conv to c; at most queue_max (and what is left
 * of the JOIN's budget), a NOTICE gap before them when more are missing. */
static int resend(sx_chat_hub *h, hconn *c, const char *conv, uint64_t tip, uint64_t head,
		  uint64_t *budget, sx_err *err)
{
	uint64_t from = tip + 1, max = h->cfg.queue_max;
	if (max > *budget)
		max = *budget;
	if (head - tip > max) {
		char why[SX_REASON_MAX + 1];
		from = head - max + 1;
		snprintf(why, sizeof(why),
			 "%llu messages are missing here; this server sends at most %llu again "
			 "(per conversation and per connection)",
			 (unsigned long long)(head - tip), (unsigned long long)max);
		SX_GUARD(hub_notice(h, c, SX_CHAT_N_GAP, conv, "", from - 1, NULL, why, err));
	}
	sx_log("info", "chat_resend", "conn=%u name=%s conv=%s held=%llu from=%llu to=%llu", c->id,
	       SX_LOGQ(c->name), SX_LOGQ(conv), (unsigned long long)tip, (unsigned long long)from,
	       (unsigned long long)head);
	*budget -= head - from + 1;
	for (uint64_t k = from; k <= head; k++) {
		sx_chat_line l;
		int rc = read_msg(h, conv, k, &l, err);
		if (rc == 0)
			rc = hub_deliver(h, c, &l.post, SX_CHAT_F_RESENT, err);
		sx_chat_line_free(&l);
		SX_GUARD(rc);
	}
	return 0;
out:
	return -1;
}

/* One tip: what c holds of conv afterwards (*upto; 0: not c's to have). */
static int one_tip(sx_chat_hub *h, hconn *c, const char *conv, uint64_t tip, uint64_t *upto,
		   uint64_t *budget, sx_err *err)
{
	uint64_t head = 0;
	uint8_t hash[SX_HASH_LEN];
	*upto = 0;
	if (!sx_chat_conv_has(conv, c->name)) {
		sx_log("info", "chat_tip", "conn=%u name=%s conv=%s n=%llu reason=%s", c->id,
		       SX_LOGQ(c->name), SX_LOGQ(conv), (unsigned long long)tip,
		       SX_LOGQ("not a member of the conversation: ignored"));
		return 0;
	}
	sx_chat_ver_tip(h->ver, conv, &head, hash);
	*upto = tip;
	if (head > tip) {
		if (resend(h, c, conv, tip, head, budget, err) < 0)
			return -1;
		*upto = head;
	} else if (head < tip) {
		sx_log("warn", "chat_tip", "conn=%u name=%s conv=%s n=%llu head=%llu reason=%s",
		       c->id, SX_LOGQ(c->name), SX_LOGQ(conv), (unsigned long long)tip,
		       (unsigned long long)head,
		       SX_LOGQ("the client holds messages this server does not"));
	}
	return 0;
}

int hub_catch_up(sx_chat_hub *h, hconn *c, hub_sync *sync, sx_err *err)
{
	const sx_chat_msg *m = h->min;
	char *conv = malloc(SX_CHAT_CONV_MAX + 1);
	size_t at = 0;
	uint64_t tip, budget = join_budget(h);
	int rc = -1;
	SX_ENSURE(conv != NULL, err, SX_E_OTHER, "out of memory");
	/* copied first: h->min is the hub's scratch */
	while (sx_chat_tip_next(m, &at, conv, &tip) == 1)
		SX_GUARD(sync_add(sync, conv, tip, err));
	for (size_t i = 0; i < sync->n; i++)
		SX_GUARD(one_tip(h, c, sync->s[i].conv, sync->s[i].upto, &sync->s[i].upto, &budget,
				 err));
	rc = 0;
out:
	free(conv);
	return rc;
}
