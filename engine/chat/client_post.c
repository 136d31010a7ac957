/* Lines to signed messages, one at a time (stop-and-wait), the server's
 * answer to each, and the receipts that end a session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/chat/client_int.h"

static void refused_json(chat_client *c, const char *conv, uint64_t seq, const char *why,
			 const char *reason, size_t reason_len, bool local)
{
	FILE *f = c->cfg->out;
	fputs("{\"type\":\"refused\",\"conv\":", f);
	chat_json_str(f, conv, strlen(conv));
	fprintf(f, ",\"seq\":%llu,\"why\":", (unsigned long long)seq);
	chat_json_str(f, why, strlen(why));
	fputs(",\"reason\":", f);
	chat_json_str(f, reason, reason_len);
	fprintf(f, ",\"local\":%s}\n", local ? "true" : "false");
	fflush(f);
}

/* One refusal: printed (standard error, or a JSON object), counted. */
static void refused(chat_client *c, const char *conv, uint64_t seq, const char *why,
		    const char *reason, size_t reason_len, bool local)
{
	c->res->refused++;
	sx_log("info", "chat_refused", "conv=%s seq=%llu why=%s local=%s reason=%s", SX_LOGQ(conv),
	       (unsigned long long)seq, SX_LOGT(why), SX_LOGT(local ? "yes" : "no"),
	       SX_LOGQN(reason, reason_len));
	if (c->cfg->json) {
		refused_json(c, conv, seq, why, reason, reason_len, local);
		return;
	}
	char cv[256], text[4 * SX_REASON_MAX + 8], s[2400];
	sx_text(cv, sizeof(cv), conv, strlen(conv));
	sx_text(text, sizeof(text), reason, reason_len);
	snprintf(s, sizeof(s), "sxfer chat: refused (%s)%s%s: %s", why, conv[0] ? " in " : "", cv,
		 text);
	if (c->tty.on) {
		chat_show(c, s);
	} else {
		fprintf(c->cfg->diag, "%s\n", s);
		fflush(c->cfg->diag);
	}
}

void chat_refused_local(chat_client *c, const char *why, const char *reason)
{
	refused(c, c->post_conv, 0, why, reason, strlen(reason), true);
}

/* Signs the text in post_text on top of the conversation's head (the
 * one held here, or (n, head) when given) and sends it. */
static int post_send(chat_client *c, const uint64_t *n, const uint8_t *head, sx_err *err)
{
	const sx_identity *id = c->cfg->id;
	sx_chat_post *p = c->post;
	SX_GUARD(chat_own_cert(c, err));
	memset(p, 0, sizeof(*p));
	memcpy(p->conv, c->post_conv, sizeof(p->conv));
	memcpy(p->author, c->me, sizeof(p->author));
	p->seq = sx_chat_ver_last_seq(c->ver, p->conv, c->me) + 1;
	if (c->seq_next > p->seq)
		p->seq = c->seq_next;
	if (n != NULL) {
		p->n = *n;
		memcpy(p->prev, head, SX_HASH_LEN);
	} else {
		sx_chat_ver_tip(c->ver, p->conv, &p->n, p->prev);
	}
	p->n++;
	p->time_ms = chat_now_ms();
	p->text = c->post_text;
	p->text_len = c->post_text_len;
	SX_GUARD(sx_chat_post_sign(p, id->key, sk_X509_value(id->chain, 0), err));
	/* What the own verifier would refuse is not sent: a text that is not
	 * UTF-8 without NUL (a line of a pipe, a key typed), a seq it refuses. */
	sx_chat_why why = SX_CHAT_BAD;
	sx_err e = {0};
	if (sx_chat_ver_msg(c->ver, p, false, &why, NULL, &e) < 0) {
		refused(c, p->conv, p->seq, sx_chat_why_name(why), e.msg, strlen(e.msg), true);
		return 0;
	}
	sx_chat_msg *m = c->m_out;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_POST;
	m->post = *p;
	SX_GUARD(chat_send(c, m, err));
	c->post_busy = true;
	c->post_end_ns = sx_now_ns() + (uint64_t)chat_timeout_ms(c) * 1000000u;
	return 0;
out:
	return -1;
}

/* The next line of c->in: its length (without "\r\n"), and *used the
 * bytes it takes there; -1 when no whole line is there. */
static long peek_line(const chat_client *c, size_t *used)
{
	uint8_t *nl = c->in_len > 0 ? memchr(c->in, '\n', c->in_len) : NULL;
	if (nl == NULL && !(c->in_eof && c->in_len > 0))
		return -1;
	size_t len = nl != NULL ? (size_t)(nl - c->in) : c->in_len;
	*used = nl != NULL ? len + 1 : len;
	if (len > 0 && c->in[len - 1] == '\r')
		len--;
	return (long)len;
}

/* A line that is not posted: why, or nothing for an empty one. */
static bool refuse_line(chat_client *c, long len)
{
	char why[200];
	if (len == 0)
		return true;
	if (c->post_conv[0] == '\0') {
		chat_refused_local(c, "no_conversation",
				   "nothing to post to: give --to NAME or --room ROOM");
		return true;
	}
	if ((size_t)len <= c->max_text)
		return false;
	snprintf(why, sizeof(why), "the text is %ld bytes; this server takes at most %u", len,
		 c->max_text);
	chat_refused_local(c, "too_big", why);
	return true;
}

int chat_next_line(chat_client *c, sx_err *err)
{
	if (c->post_text == NULL) {
		c->post_text = malloc(c->in_cap + 1);
		if (c->post_text == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	while (!c->post_busy) {
		size_t used = 0;
		long len = peek_line(c, &used);
		if (len < 0)
			return 0;
		bool skip = refuse_line(c, len);
		if (!skip && !chat_pace(c))
			return 0; /* the server's rate: later */
		memcpy(c->post_text, c->in, (size_t)len);
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		if (skip)
			continue;
		c->post_text_len = (size_t)len;
		c->stale_tries = 0;
		SX_GUARD(post_send(c, NULL, NULL, err));
	}
	return 0;
out:
	return -1;
}

/* An answer must be about the message in flight. */
static int check_answer(chat_client *c, const sx_chat_msg *m, const char *what, sx_err *err)
{
	if (!c->post_busy || strcmp(m->conv, c->post->conv) != 0 || m->seq != c->post->seq)
		return sx_fail(err, SX_E_INTEGRITY,
			       "the server sent %s for a message this session did not send (%s, "
			       "seq %llu)",
			       what, m->conv, (unsigned long long)m->seq);
	return 0;
}

int chat_on_accepted(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	sx_chat_post *p = c->post;
	uint8_t hash[SX_HASH_LEN];
	SX_GUARD(check_answer(c, m, "ACCEPTED", err));
	SX_ENSURE(m->n == p->n, err, SX_E_INTEGRITY,
		  "%s: the server accepted this session's message %llu at position %llu", p->conv,
		  (unsigned long long)p->n, (unsigned long long)m->n);
	if (sx_chat_ver_msg(c->ver, p, true, NULL, hash, err) < 0) {
		sx_err_prefix(err, "%s: this session's own message %llu: ", p->conv,
			      (unsigned long long)p->n);
		goto out;
	}
	SX_ENSURE(memcmp(hash, m->head, SX_HASH_LEN) == 0, err, SX_E_INTEGRITY,
		  "%s: the server names another hash for message %llu than the one signed", p->conv,
		  (unsigned long long)p->n);
	c->post_busy = false;
	sx_chat_line *l = c->line;
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_MSG;
	l->post = *p;
	memcpy(l->hash, hash, SX_HASH_LEN);
	SX_GUARD(chat_file_append(c, l, err));
	SX_GUARD(chat_touch(c, p->conv, err));
	c->res->posted++;
#ifdef SXFER_TEST_HOOKS
	/* TEST HOOK: SXFER_TEST_CHAT_REPLAY=1 sends the first accepted
	 * message again, byte for byte (a replay the server must refuse). */
	if (c->replay_hook == 0 && getenv("SXFER_TEST_CHAT_REPLAY") != NULL) {
		c->replay_hook = 1;
		sx_chat_msg *r = c->m_out;
		memset(r, 0, sizeof(*r));
		r->type = SX_MSG_CHAT_POST;
		r->post = *p;
		SX_GUARD(chat_send(c, r, err));
		c->post_busy = true;
		c->post_end_ns = sx_now_ns() + (uint64_t)chat_timeout_ms(c) * 1000000u;
	}
#endif
	if (c->tty.on) {
		char clock[16], cv[256], s[512];
		chat_clock(p->time_ms, clock);
		sx_text(cv, sizeof(cv), p->conv, strlen(p->conv));
		/* The text is what was typed: shown as it was drawn. */
		char *text = malloc(4 * p->text_len + 1);
		if (text != NULL) {
			sx_esc(text, 4 * p->text_len + 1, (const char *)p->text, p->text_len,
			       SX_ESC_TEXT);
			snprintf(s, sizeof(s), "%s %s %s: ", clock, cv, c->me);
			size_t n = strlen(s) + strlen(text) + 1;
			char *all = malloc(n);
			if (all != NULL) {
				snprintf(all, n, "%s%s", s, text);
				chat_show(c, all);
			}
			free(all);
		}
		free(text);
	}
	return 0;
out:
	return -1;
}

int chat_on_refused(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	sx_chat_post *p = c->post;
	SX_GUARD(check_answer(c, m, "REFUSED", err));
	c->post_busy = false;
	if (m->why == SX_CHAT_STALE && c->stale_tries++ < CHAT_STALE_TRIES) {
		/* Everything up to the new head arrived before this answer;
		 * a conversation not held here goes on from the server's. */
		uint64_t n;
		uint8_t head[SX_HASH_LEN];
		sx_chat_ver_tip(c->ver, p->conv, &n, head);
		if (n == 0)
			return post_send(c, &m->n, m->head, err);
		return post_send(c, NULL, NULL, err);
	}
	if (m->why == SX_CHAT_REPLAY && m->n > p->seq && c->seq_next < m->n &&
	    c->replay_hook != 1) {
		c->seq_next = m->n;
		return post_send(c, NULL, NULL, err);
	}
	refused(c, p->conv, p->seq, sx_chat_why_name((sx_chat_why)m->why), m->reason, m->reason_len,
		false);
	return 0;
out:
	return -1;
}

/* One receipt: signed, through the own verifier, kept, sent. */
static int receipt(chat_client *c, const char *conv, sx_err *err)
{
	const sx_identity *id = c->cfg->id;
	sx_chat_msg *m = c->m_out;
	memset(m, 0, sizeof(*m));
	sx_chat_receipt *r = &m->receipt;
	snprintf(r->conv, sizeof(r->conv), "%s", conv);
	memcpy(r->signer, c->me, sizeof(r->signer));
	sx_chat_ver_tip(c->ver, conv, &r->n, r->head);
	r->count = sx_chat_ver_count(c->ver, conv);
	r->time_ms = chat_now_ms();
	SX_GUARD(sx_chat_receipt_sign(r, id->key, sk_X509_value(id->chain, 0), err));
	if (sx_chat_ver_receipt(c->ver, r, err) < 0) {
		sx_err_prefix(err, "%s: this session's own receipt: ", conv);
		goto out;
	}
	sx_chat_line *l = c->line;
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_RECEIPT;
	l->receipt = *r;
	SX_GUARD(chat_file_append(c, l, err));
	memset(r->fp, 0, sizeof(r->fp)); /* the server sets it when it relays */
	m->type = SX_MSG_CHAT_RECEIPT;
	return chat_send(c, m, err);
out:
	return -1;
}

int chat_receipts(chat_client *c, sx_err *err)
{
	if (c->nconvs > 0)
		SX_GUARD(chat_own_cert(c, err));
	for (size_t i = 0; i < c->nconvs; i++)
		SX_GUARD(receipt(c, c->convs[i], err));
	return 0;
out:
	return -1;
}
