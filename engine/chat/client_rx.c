/* What the server sends a participant. Everything that is kept goes
 * through the verifier first (commit), then into the transcript, then on
 * the screen; a message, receipt, certificate or notice that fails ends
 * the session and nothing of it is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/chat/client_int.h"

int chat_touch(chat_client *c, const char *conv, sx_err *err)
{
	for (size_t i = 0; i < c->nconvs; i++)
		if (strcmp(c->convs[i], conv) == 0)
			return 0;
	if (sx_grow(&c->convs, &c->convs_cap, c->nconvs + 1, sizeof(*c->convs), CHAT_CONVS_MAX,
		    "conversations in one session", err) < 0)
		return -1;
	c->convs[c->nconvs] = strdup(conv);
	if (c->convs[c->nconvs] == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	c->nconvs++;
	return 0;
}

static int on_welcome(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	SX_ENSURE(c->phase == PH_JOIN, err, SX_E_INTEGRITY, "a second WELCOME from the server");
	SX_ENSURE(m->version == SX_CHAT_VERSION, err, SX_E_NET,
		  "the server speaks chat version %u; this is version %u", m->version,
		  SX_CHAT_VERSION);
	c->max_text =
	    m->max_text > 0 && m->max_text < SX_CHAT_TEXT_MAX ? m->max_text : SX_CHAT_TEXT_MAX;
	c->rate = m->rate;
#ifdef SXFER_TEST_HOOKS
	/* TEST HOOK: SXFER_TEST_CHAT_NOPACE=1 posts as fast as lines come, so
	 * that the server's rate limit refuses. */
	if (getenv("SXFER_TEST_CHAT_NOPACE") != NULL)
		c->rate = 0;
#endif
	c->tokens = m->rate;
	c->tok_ns = sx_now_ns();
	c->in_cap = (c->max_text > CHAT_EDIT_MAX ? c->max_text : CHAT_EDIT_MAX) + 1;
	c->in = malloc(c->in_cap + 256); /* and the keys read on a terminal */
	SX_ENSURE(c->in != NULL, err, SX_E_OTHER, "out of memory");
	c->phase = PH_RUN;
	sx_log("info", "chat_joined", "server=%s io=%s room=%s max_text=%u",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGT(c->res->io_backend),
	       SX_LOGQ(c->cfg->room ? c->cfg->room : ""), c->max_text);
	if (c->cfg->interactive)
		return chat_tty_start(c, err);
	return 0;
out:
	return -1;
}

/* What the server sends must be of a conversation this session is in:
 * its room, or a direct conversation that names it. */
static int check_conv(chat_client *c, const char *conv, const char *what, sx_err *err)
{
	bool in = sx_chat_conv_is_room(conv)
		      ? c->cfg->room != NULL && strcmp(conv + 1, c->cfg->room) == 0
		      : sx_chat_conv_has(conv, c->me);
	if (in)
		return 0;
	return sx_fail(err, SX_E_INTEGRITY,
		       "%s: the server sent %s of a conversation this session is not in", conv,
		       what);
}

/* Appends a line c->line describes (filled by the caller). */
static int keep(chat_client *c, sx_err *err)
{
	return chat_file_append(c, c->line, err);
}

static int on_cert(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	if (sx_chat_ver_has_cert(c->ver, m->fp))
		return 0;
	if (sx_chat_ver_cert_der(c->ver, m->fp, m->certs, m->cert_len, m->ncerts, err) < 0) {
		char hex[2 * SX_HASH_LEN + 1];
		sx_hex(m->fp, 16, hex);
		sx_err_prefix(err, "the certificate of an author (%s...) the server sent: ", hex);
		return -1;
	}
	sx_chat_line *l = c->line;
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_CERT;
	memcpy(l->fp, m->fp, SX_HASH_LEN);
	for (size_t i = 0; i < m->ncerts; i++) {
		l->certs[i] = (uint8_t *)m->certs[i];
		l->cert_len[i] = m->cert_len[i];
	}
	l->ncerts = m->ncerts;
	return keep(c, err);
}

/* "HH:MM:SS CONV AUTHOR: text", escaped for the terminal. */
static void show_msg(chat_client *c, const sx_chat_post *p)
{
	char clock[16], conv[256], who[4 * SX_CHAT_NAME_MAX + 8];
	size_t cap = 4 * p->text_len + 1;
	char *text = malloc(cap);
	if (text == NULL)
		return;
	chat_clock(p->time_ms, clock);
	sx_text(conv, sizeof(conv), p->conv, strlen(p->conv));
	sx_text(who, sizeof(who), p->author, strlen(p->author));
	sx_esc(text, cap, (const char *)p->text, p->text_len, SX_ESC_TEXT);
	size_t n = strlen(clock) + strlen(conv) + strlen(who) + strlen(text) + 8;
	char *s = malloc(n);
	if (s != NULL) {
		snprintf(s, n, "%s %s %s: %s", clock, conv, who, text);
		chat_show(c, s);
	}
	free(s);
	free(text);
}

/* A message of the conversation as the server relays it. */
static int on_deliver(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	const sx_chat_post *p = &m->post;
	sx_chat_line *l = c->line;
	uint8_t hash[SX_HASH_LEN];
	SX_GUARD(check_conv(c, p->conv, "a message", err));
	if (sx_chat_ver_msg(c->ver, p, true, NULL, hash, err) < 0) {
		sx_err_prefix(
		    err, "%s: %s's message %llu (seq %llu) as the server relayed it: ", p->conv,
		    p->author, (unsigned long long)p->n, (unsigned long long)p->seq);
		return -1;
	}
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_MSG;
	l->post = *p;
	memcpy(l->hash, hash, SX_HASH_LEN);
	SX_GUARD(keep(c, err));
	SX_GUARD(chat_touch(c, p->conv, err));
	if (strcmp(p->author, c->me) != 0)
		c->res->received++;
	if (!c->cfg->json)
		show_msg(c, p);
	return 0;
out:
	return -1;
}

static int on_receipt(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	const sx_chat_receipt *r = &m->receipt;
	SX_GUARD(check_conv(c, r->conv, "a receipt", err));
	if (sx_chat_ver_receipt(c->ver, r, err) < 0) {
		sx_err_prefix(err, "%s: %s's receipt as the server relayed it: ", r->conv,
			      r->signer);
		return -1;
	}
	sx_chat_line *l = c->line;
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_RECEIPT;
	l->receipt = *r;
	SX_GUARD(keep(c, err));
	c->res->receipts++;
	if (!c->cfg->json && c->tty.on) {
		char conv[256], who[4 * SX_CHAT_NAME_MAX + 8], s[600];
		sx_text(conv, sizeof(conv), r->conv, strlen(r->conv));
		sx_text(who, sizeof(who), r->signer, strlen(r->signer));
		snprintf(s, sizeof(s), "* %s holds %llu message(s) of %s (receipt verified)", who,
			 (unsigned long long)r->count, conv);
		chat_show(c, s);
	}
	return 0;
out:
	return -1;
}

/* {"type":"notice","kind":K,"conv":C,"name":N[,"n":n,"reason":R]} */
static void notice_json(chat_client *c, const char *kind, const sx_chat_msg *m)
{
	FILE *f = c->cfg->out;
	fprintf(f, "{\"type\":\"notice\",\"kind\":\"%s\",\"conv\":", kind);
	chat_json_str(f, m->conv, strlen(m->conv));
	fputs(",\"name\":", f);
	chat_json_str(f, m->name, strlen(m->name));
	if (m->kind == SX_CHAT_N_GAP) {
		fprintf(f, ",\"n\":%llu,\"reason\":", (unsigned long long)m->n);
		chat_json_str(f, m->reason, m->reason_len);
	}
	fputs("}\n", f);
	fflush(f);
}

/* HEAD and GAP: the server's word where a chain goes on, checked by the
 * next message, kept as a line. A head only where the room joined goes
 * on, once; a gap only in a direct conversation (its queue, its catching
 * up): else a relay could skip messages of a direct conversation, or of
 * the room while this session is in it, without a trace. */
static int on_head(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	bool gap = m->kind == SX_CHAT_N_GAP;
	SX_ENSURE(gap != sx_chat_conv_is_room(m->conv), err, SX_E_INTEGRITY,
		  "%s: the server sent a %s notice for a %s", m->conv, gap ? "gap" : "head",
		  gap ? "room" : "direct conversation");
	SX_ENSURE(gap || !c->room_head, err, SX_E_INTEGRITY,
		  "%s: the server sent a second head notice", m->conv);
	if (!gap)
		c->room_head = true;
	if (sx_chat_ver_head(c->ver, m->conv, m->n, gap ? NULL : m->head, err) < 0) {
		sx_err_prefix(err, "%s: the server's %s notice: ", m->conv, gap ? "gap" : "head");
		return -1;
	}
	sx_chat_line *l = c->line;
	memset(l, 0, sizeof(*l));
	l->kind = gap ? SX_CHAT_L_GAP : SX_CHAT_L_HEAD;
	snprintf(l->conv, sizeof(l->conv), "%s", m->conv);
	l->n = m->n;
	if (gap) {
		size_t n = m->reason_len < SX_REASON_MAX ? m->reason_len : SX_REASON_MAX;
		memcpy(l->reason, m->reason, n);
		l->reason[n] = '\0';
	} else {
		memcpy(l->head, m->head, SX_HASH_LEN);
	}
	SX_GUARD(keep(c, err));
	if (gap && !c->cfg->json) {
		char conv[256], why[4 * SX_REASON_MAX + 8], s[2400];
		sx_text(conv, sizeof(conv), m->conv, strlen(m->conv));
		sx_text(why, sizeof(why), m->reason, m->reason_len);
		snprintf(s, sizeof(s), "* messages of %s up to %llu were lost: %s", conv,
			 (unsigned long long)m->n, why);
		chat_show(c, s);
	}
	return 0;
out:
	return -1;
}

static int on_notice(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	if (check_conv(c, m->conv, "a notice", err) < 0)
		return -1;
	if (m->kind == SX_CHAT_N_HEAD || m->kind == SX_CHAT_N_GAP)
		return on_head(c, m, err);
	const char *kind = m->kind == SX_CHAT_N_JOINED ? "joined" : "left";
	if (c->cfg->json) {
		notice_json(c, kind, m);
		return 0;
	}
	char conv[256], who[4 * SX_CHAT_NAME_MAX + 8], s[600];
	sx_text(conv, sizeof(conv), m->conv, strlen(m->conv));
	sx_text(who, sizeof(who), m->name, strlen(m->name));
	snprintf(s, sizeof(s), "* %s %s %s", who, kind, conv);
	chat_show(c, s);
	return 0;
}

static int on_members(chat_client *c, const sx_chat_msg *m)
{
	FILE *f = c->cfg->out;
	const char *p = m->names, *end = m->names + m->names_len;
	if (c->cfg->json) {
		fputs("{\"type\":\"members\",\"names\":[", f);
		for (uint32_t i = 0; i < m->nnames && p < end; i++) {
			size_t n = strnlen(p, (size_t)(end - p));
			fputs(i ? "," : "", f);
			chat_json_str(f, p, n);
			p += n + 1;
		}
		fputs("]}\n", f);
		fflush(f);
		return 0;
	}
	char s[4096] = "* here:";
	size_t len = strlen(s);
	for (uint32_t i = 0; i < m->nnames && p < end && len + 8 < sizeof(s); i++) {
		size_t n = strnlen(p, (size_t)(end - p));
		char who[4 * SX_CHAT_NAME_MAX + 8];
		sx_text(who, sizeof(who), p, n);
		len += (size_t)snprintf(s + len, sizeof(s) - len, "%s %s", i ? "," : "", who);
		if (len >= sizeof(s))
			len = sizeof(s) - 1;
		p += n + 1;
	}
	chat_show(c, s);
	return 0;
}

/* A message of the transfer protocol: an ERROR says why the server ends
 * the session (one without --chat, a refused certificate). */
static int on_other(chat_client *c, const uint8_t *pt, size_t len, sx_err *err)
{
	sx_msg m;
	if (sx_msg_decode(pt, len, &m, err) < 0)
		return -1;
	if (m.type != SX_MSG_ERROR)
		return sx_fail(err, SX_E_INTEGRITY, "unexpected message 0x%02x from the server",
			       m.type);
	sx_class cls = m.err_class >= SX_E_OTHER && m.err_class <= SX_E_NET ? (sx_class)m.err_class
									    : SX_E_OTHER;
	return sx_fail(err, cls, "server %s: %.*s", c->link.k.peer_name, (int)m.reason_len,
		       (const char *)m.reason);
}

int chat_on_record(chat_client *c, const uint8_t *pt, size_t len, sx_err *err)
{
	if (len == 0 || pt[0] < SX_MSG_CHAT_FIRST || pt[0] > SX_MSG_CHAT_LAST)
		return on_other(c, pt, len, err);
	sx_chat_msg *m = c->m_in;
	if (sx_chat_msg_decode(pt, len, m, err) < 0) {
		sx_err_prefix(err, "a message from the server: ");
		return -1;
	}
	if (c->phase == PH_JOIN && m->type != SX_MSG_CHAT_WELCOME)
		return sx_fail(err, SX_E_INTEGRITY, "expected WELCOME, got message 0x%02x",
			       m->type);
	switch (m->type) {
	case SX_MSG_CHAT_WELCOME: return on_welcome(c, m, err);
	case SX_MSG_CHAT_CERT: return on_cert(c, m, err);
	case SX_MSG_CHAT_DELIVER: return on_deliver(c, m, err);
	case SX_MSG_CHAT_ACCEPTED: return chat_on_accepted(c, m, err);
	case SX_MSG_CHAT_REFUSED: return chat_on_refused(c, m, err);
	case SX_MSG_CHAT_RECEIPT: return on_receipt(c, m, err);
	case SX_MSG_CHAT_MEMBERS: return on_members(c, m);
	case SX_MSG_CHAT_NOTICE: return on_notice(c, m, err);
	default:
		return sx_fail(err, SX_E_INTEGRITY,
			       "unexpected chat message 0x%02x from the server", m->type);
	}
}
