/* engine/chat/msg: the chat messages in sealed CTRL records
 * (docs/PROTOCOL.md "Chat", "Messages"). Strict decoding: every field
 * read through the bounded cursor, every name and conversation checked,
 * nothing left over. Pure. */
#include <string.h>

#include <openssl/evp.h>

#include "engine/chat/sx_chat.h"

static const char *const why_names[] = {
    [SX_CHAT_OK] = "ok",
    [SX_CHAT_STALE] = "stale",
    [SX_CHAT_REPLAY] = "replay",
    [SX_CHAT_TOO_BIG] = "too_big",
    [SX_CHAT_RATE] = "rate",
    [SX_CHAT_RECIPIENTS] = "recipients",
    [SX_CHAT_NOT_MEMBER] = "not_member",
    [SX_CHAT_QUEUE_FULL] = "queue_full",
    [SX_CHAT_BAD] = "bad",
};

const char *sx_chat_why_name(sx_chat_why w)
{
	return (unsigned)w < sizeof(why_names) / sizeof(why_names[0]) ? why_names[w] : "unknown";
}

/* ---- encoding ------------------------------------------------------------ */

static void put_str16(sx_wbuf *w, const char *s)
{
	sx_put_block16(w, s, strlen(s));
}

static void put_block32(sx_wbuf *w, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		w->overflow = true;
		return;
	}
	sx_put_u32(w, (uint32_t)n);
	sx_put_bytes(w, p, n);
}

static void put_post(sx_wbuf *w, const sx_chat_post *p)
{
	put_str16(w, p->conv);
	put_str16(w, p->author);
	sx_put_u64(w, p->seq);
	sx_put_u64(w, p->n);
	sx_put_u64(w, (uint64_t)p->time_ms);
	sx_put_bytes(w, p->prev, SX_HASH_LEN);
	put_block32(w, p->text, p->text_len);
	sx_put_u8(w, (uint8_t)p->alg);
	sx_put_block16(w, p->sig, p->sig_len);
}

static void put_receipt(sx_wbuf *w, const sx_chat_receipt *r)
{
	put_str16(w, r->conv);
	put_str16(w, r->signer);
	sx_put_bytes(w, r->head, SX_HASH_LEN);
	sx_put_u64(w, r->n);
	sx_put_u64(w, r->count);
	sx_put_u64(w, (uint64_t)r->time_ms);
	sx_put_u8(w, (uint8_t)r->alg);
	sx_put_block16(w, r->sig, r->sig_len);
}

static void encode_body(const sx_chat_msg *m, sx_wbuf *w)
{
	switch (m->type) {
	case SX_MSG_CHAT_JOIN:
		sx_put_u8(w, m->version);
		sx_put_u32(w, m->flags);
		sx_put_block16(w, m->room, m->room_len);
		sx_put_u16(w, m->ntips);
		sx_put_bytes(w, m->tips, m->tips_len);
		break;
	case SX_MSG_CHAT_WELCOME:
		sx_put_u8(w, m->version);
		sx_put_u32(w, m->max_text);
		sx_put_u32(w, m->max_to);
		sx_put_u32(w, m->rate);
		sx_put_u32(w, m->queue_max);
		sx_put_block16(w, m->room, m->room_len);
		sx_put_u64(w, m->n);
		sx_put_bytes(w, m->head, SX_HASH_LEN);
		break;
	case SX_MSG_CHAT_POST: put_post(w, &m->post); break;
	case SX_MSG_CHAT_DELIVER:
		sx_put_u32(w, m->flags);
		put_post(w, &m->post);
		sx_put_bytes(w, m->post.fp, SX_HASH_LEN);
		break;
	case SX_MSG_CHAT_CERT:
		sx_put_bytes(w, m->fp, SX_HASH_LEN);
		sx_put_u8(w, (uint8_t)m->ncerts);
		for (size_t i = 0; i < m->ncerts && i < SX_CHAT_CHAIN_MAX; i++)
			put_block32(w, m->certs[i], m->cert_len[i]);
		break;
	case SX_MSG_CHAT_ACCEPTED:
		put_str16(w, m->conv);
		sx_put_u64(w, m->seq);
		sx_put_u64(w, m->n);
		sx_put_bytes(w, m->head, SX_HASH_LEN);
		sx_put_u32(w, m->queued);
		break;
	case SX_MSG_CHAT_REFUSED:
		put_str16(w, m->conv);
		sx_put_u64(w, m->seq);
		sx_put_u8(w, m->why);
		sx_put_u64(w, m->n);
		sx_put_bytes(w, m->head, SX_HASH_LEN);
		sx_put_block16(w, m->reason, m->reason_len);
		break;
	case SX_MSG_CHAT_RECEIPT:
		put_receipt(w, &m->receipt);
		sx_put_bytes(w, m->receipt.fp, SX_HASH_LEN);
		break;
	case SX_MSG_CHAT_MEMBERS:
		sx_put_u32(w, m->nnames);
		put_block32(w, m->names, m->names_len);
		break;
	case SX_MSG_CHAT_NOTICE:
		sx_put_u8(w, m->kind);
		put_str16(w, m->conv);
		put_str16(w, m->name);
		sx_put_u64(w, m->n);
		sx_put_bytes(w, m->head, SX_HASH_LEN);
		sx_put_block16(w, m->reason, m->reason_len);
		break;
	case SX_MSG_CHAT_WHO:
	case SX_MSG_CHAT_BYE: break;
	default: w->overflow = true; break;
	}
}

void sx_chat_tip_put(sx_wbuf *w, const char *conv, uint64_t n)
{
	put_str16(w, conv);
	sx_put_u64(w, n);
}

void sx_chat_msg_encode(const sx_chat_msg *m, sx_wbuf *w)
{
	sx_put_u8(w, m->type);
	encode_body(m, w);
}

/* ---- decoding ------------------------------------------------------------ */

static int bad(sx_err *err, const char *what)
{
	return sx_fail(err, SX_E_INTEGRITY, "malformed chat message: %s", what);
}

/* A 16-bit-length string into buf (cap bytes with its NUL), checked as a
 * conversation (conv) or a name. */
static int get_str(sx_cur *c, char *buf, size_t cap, bool conv, bool may_empty, const char *what,
		   sx_err *err)
{
	const uint8_t *p;
	size_t n;
	sx_err e = {0};
	if (sx_cur_block16(c, &p, &n) < 0 || n >= cap)
		return bad(err, what);
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (n == 0 && may_empty)
		return 0;
	if ((conv ? sx_chat_conv_check(buf, n, &e) : sx_chat_name_check(buf, n, &e)) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "malformed chat message: %s: %s", what, e.msg);
	return 0;
}

static int get_block32(sx_cur *c, size_t max, const uint8_t **p, size_t *n)
{
	uint32_t l;
	if (sx_cur_u32(c, &l) < 0 || l > max || sx_cur_bytes(c, l, p) < 0)
		return -1;
	*n = l;
	return 0;
}

static int get_sig(sx_cur *c, sx_sigalg *alg, uint8_t *sig, size_t *sig_len, sx_err *err)
{
	uint8_t a;
	const uint8_t *p;
	size_t n;
	if (sx_cur_u8(c, &a) < 0 || a < SX_SIGALG_ECDSA_SHA256 || a > SX_SIGALG_RSA_PSS_SHA256)
		return bad(err, "signature algorithm");
	if (sx_cur_block16(c, &p, &n) < 0 || n == 0 || n > SX_SIG_MAX)
		return bad(err, "signature");
	*alg = (sx_sigalg)a;
	memcpy(sig, p, n);
	*sig_len = n;
	return 0;
}

static int get_i64(sx_cur *c, int64_t *v)
{
	uint64_t u;
	if (sx_cur_u64(c, &u) < 0)
		return -1;
	*v = (int64_t)u;
	return 0;
}

static int get_hash(sx_cur *c, uint8_t out[SX_HASH_LEN])
{
	const uint8_t *p;
	if (sx_cur_bytes(c, SX_HASH_LEN, &p) < 0)
		return -1;
	memcpy(out, p, SX_HASH_LEN);
	return 0;
}

static int get_post(sx_cur *c, sx_chat_post *p, sx_err *err)
{
	SX_GUARD(get_str(c, p->conv, sizeof(p->conv), true, false, "conversation", err));
	SX_GUARD(get_str(c, p->author, sizeof(p->author), false, false, "author", err));
	if (sx_cur_u64(c, &p->seq) < 0 || sx_cur_u64(c, &p->n) < 0 || get_i64(c, &p->time_ms) < 0 ||
	    get_hash(c, p->prev) < 0)
		return bad(err, "message header");
	if (p->seq == 0 || p->n == 0)
		return bad(err, "seq and position start at 1");
	if (get_block32(c, SX_CHAT_TEXT_MAX, &p->text, &p->text_len) < 0)
		return bad(err, "text");
	/* The statement signs the text's hash; the message carries the text. */
	unsigned hl = 0;
	if (EVP_Digest(p->text, p->text_len, p->text_hash, &hl, EVP_sha256(), NULL) != 1 ||
	    hl != SX_HASH_LEN)
		return sx_fail_ssl(err, SX_E_OTHER, "SHA-256");
	return get_sig(c, &p->alg, p->sig, &p->sig_len, err);
out:
	return -1;
}

static int get_receipt(sx_cur *c, sx_chat_receipt *r, sx_err *err)
{
	SX_GUARD(get_str(c, r->conv, sizeof(r->conv), true, false, "conversation", err));
	SX_GUARD(get_str(c, r->signer, sizeof(r->signer), false, false, "signer", err));
	if (get_hash(c, r->head) < 0 || sx_cur_u64(c, &r->n) < 0 || sx_cur_u64(c, &r->count) < 0 ||
	    get_i64(c, &r->time_ms) < 0)
		return bad(err, "receipt");
	return get_sig(c, &r->alg, r->sig, &r->sig_len, err);
out:
	return -1;
}

static int get_room(sx_cur *c, sx_chat_msg *m, sx_err *err)
{
	sx_err e = {0};
	if (sx_cur_block16(c, (const uint8_t **)&m->room, &m->room_len) < 0)
		return bad(err, "room");
	if (m->room_len > 0 && sx_chat_name_check(m->room, m->room_len, &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "malformed chat message: room: %s", e.msg);
	return 0;
}

/* JOIN's tips: each conv canonical and direct, sorted byte-wise and
 * distinct (strictly ascending), n >= 1. */
static int get_tips(sx_cur *c, sx_chat_msg *m, sx_err *err)
{
	const uint8_t *prev = NULL, *p;
	size_t prev_len = 0, n;
	uint64_t pos;
	sx_err e = {0};
	if (sx_cur_u16(c, &m->ntips) < 0 || m->ntips > SX_CHAT_TIPS_MAX)
		return bad(err, "tips count");
	m->tips = c->p + c->pos;
	for (uint16_t i = 0; i < m->ntips; i++) {
		if (sx_cur_block16(c, &p, &n) < 0 || n > SX_CHAT_CONV_MAX ||
		    sx_cur_u64(c, &pos) < 0)
			return bad(err, "tip");
		if (sx_chat_conv_check((const char *)p, n, &e) < 0)
			return sx_fail(err, SX_E_INTEGRITY, "malformed chat message: tip: %s",
				       e.msg);
		if (p[0] != '@' || pos == 0)
			return bad(err, "a tip names a direct conversation and a position from 1");
		if (prev != NULL) {
			int d = memcmp(prev, p, prev_len < n ? prev_len : n);
			if (d > 0 || (d == 0 && prev_len >= n))
				return bad(err, "tips are sorted by conversation, each once");
		}
		prev = p;
		prev_len = n;
	}
	m->tips_len = (size_t)(c->p + c->pos - m->tips);
	return m->tips_len > SX_CHAT_TIPS_BYTES ? bad(err, "tips longer than a JOIN takes") : 0;
}

int sx_chat_tip_next(const sx_chat_msg *m, size_t *at, char conv[SX_CHAT_CONV_MAX + 1], uint64_t *n)
{
	sx_cur c = sx_cur_make(m->tips, m->tips_len);
	const uint8_t *p;
	size_t len;
	c.pos = *at;
	if (*at >= m->tips_len || sx_cur_block16(&c, &p, &len) < 0 || len > SX_CHAT_CONV_MAX ||
	    sx_cur_u64(&c, n) < 0)
		return 0;
	memcpy(conv, p, len);
	conv[len] = '\0';
	*at = c.pos;
	return 1;
}

static int get_certs(sx_cur *c, sx_chat_msg *m, sx_err *err)
{
	uint8_t n;
	if (get_hash(c, m->fp) < 0 || sx_cur_u8(c, &n) < 0 || n == 0 || n > SX_CHAT_CHAIN_MAX)
		return bad(err, "certificate count");
	m->ncerts = n;
	for (size_t i = 0; i < n; i++)
		if (get_block32(c, SX_CHAT_CERT_MAX, &m->certs[i], &m->cert_len[i]) < 0 ||
		    m->cert_len[i] == 0)
			return bad(err, "certificate");
	return 0;
}

static int get_reason(sx_cur *c, sx_chat_msg *m, sx_err *err)
{
	if (sx_cur_block16(c, (const uint8_t **)&m->reason, &m->reason_len) < 0 ||
	    m->reason_len > SX_REASON_MAX)
		return bad(err, "reason");
	return 0;
}

static int decode_body(sx_cur *c, sx_chat_msg *m, sx_err *err)
{
	const uint8_t *names;
	switch (m->type) {
	case SX_MSG_CHAT_JOIN:
		if (sx_cur_u8(c, &m->version) < 0 || sx_cur_u32(c, &m->flags) < 0)
			return bad(err, "JOIN");
		if (get_room(c, m, err) < 0)
			return -1;
		return get_tips(c, m, err);
	case SX_MSG_CHAT_WELCOME:
		if (sx_cur_u8(c, &m->version) < 0 || sx_cur_u32(c, &m->max_text) < 0 ||
		    sx_cur_u32(c, &m->max_to) < 0 || sx_cur_u32(c, &m->rate) < 0 ||
		    sx_cur_u32(c, &m->queue_max) < 0)
			return bad(err, "WELCOME");
		if (get_room(c, m, err) < 0)
			return -1;
		return sx_cur_u64(c, &m->n) < 0 || get_hash(c, m->head) < 0 ? bad(err, "WELCOME")
									    : 0;
	case SX_MSG_CHAT_POST: return get_post(c, &m->post, err);
	case SX_MSG_CHAT_DELIVER:
		if (sx_cur_u32(c, &m->flags) < 0 || get_post(c, &m->post, err) < 0)
			return sx_fail(err, SX_E_INTEGRITY, "malformed chat message: DELIVER");
		return get_hash(c, m->post.fp) < 0 ? bad(err, "fingerprint") : 0;
	case SX_MSG_CHAT_CERT: return get_certs(c, m, err);
	case SX_MSG_CHAT_ACCEPTED:
		if (get_str(c, m->conv, sizeof(m->conv), true, false, "conversation", err) < 0)
			return -1;
		if (sx_cur_u64(c, &m->seq) < 0 || sx_cur_u64(c, &m->n) < 0 ||
		    get_hash(c, m->head) < 0 || sx_cur_u32(c, &m->queued) < 0)
			return bad(err, "ACCEPTED");
		return 0;
	case SX_MSG_CHAT_REFUSED:
		if (get_str(c, m->conv, sizeof(m->conv), true, false, "conversation", err) < 0)
			return -1;
		if (sx_cur_u64(c, &m->seq) < 0 || sx_cur_u8(c, &m->why) < 0 || m->why == 0 ||
		    m->why > SX_CHAT_BAD || sx_cur_u64(c, &m->n) < 0 || get_hash(c, m->head) < 0)
			return bad(err, "REFUSED");
		return get_reason(c, m, err);
	case SX_MSG_CHAT_RECEIPT:
		if (get_receipt(c, &m->receipt, err) < 0)
			return -1;
		return get_hash(c, m->receipt.fp) < 0 ? bad(err, "fingerprint") : 0;
	case SX_MSG_CHAT_MEMBERS:
		if (sx_cur_u32(c, &m->nnames) < 0 || m->nnames > SX_CHAT_WHO_MAX ||
		    get_block32(c, (size_t)SX_CHAT_WHO_MAX * (SX_CHAT_NAME_MAX + 1), &names,
				&m->names_len) < 0)
			return bad(err, "MEMBERS");
		m->names = (const char *)names;
		return 0;
	case SX_MSG_CHAT_NOTICE:
		if (sx_cur_u8(c, &m->kind) < 0 || m->kind < SX_CHAT_N_JOINED ||
		    m->kind > SX_CHAT_N_GAP)
			return bad(err, "NOTICE kind");
		if (get_str(c, m->conv, sizeof(m->conv), true, false, "conversation", err) < 0 ||
		    get_str(c, m->name, sizeof(m->name), false, true, "name", err) < 0)
			return -1;
		if (sx_cur_u64(c, &m->n) < 0 || get_hash(c, m->head) < 0)
			return bad(err, "NOTICE");
		return get_reason(c, m, err);
	case SX_MSG_CHAT_WHO:
	case SX_MSG_CHAT_BYE: return 0;
	default: return sx_fail(err, SX_E_INTEGRITY, "unknown chat message 0x%02x", m->type);
	}
}

int sx_chat_msg_decode(const uint8_t *body, size_t len, sx_chat_msg *m, sx_err *err)
{
	sx_cur c = sx_cur_make(body, len);
	memset(m, 0, sizeof(*m));
	if (sx_cur_u8(&c, &m->type) < 0)
		return bad(err, "empty");
	if (decode_body(&c, m, err) < 0)
		return -1;
	if (sx_cur_end(&c) < 0)
		return bad(err, "bytes after the message");
	return 0;
}
