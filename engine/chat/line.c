/* engine/chat/line: the transcript's lines (docs/SIGNATURES.md section
 * 11.2). Each line is one JSON object (RFC 8259) whose keys come in the
 * fixed order of its kind; this file writes the one canonical spelling
 * (lower-case hex, base64 with padding, decimal without leading zeros,
 * strings with only the escapes below) and reads a line by expecting that
 * sequence, then writes it again and requires the same bytes, so a line
 * has exactly one accepted spelling. Pure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/sx_util.h"
#include "engine/chat/sx_chat.h"

/* ---- a growable line ---------------------------------------------------- */

typedef struct lbuf {
	char *p;
	size_t len, cap;
	bool fail;
} lbuf;

static void lb_add(lbuf *b, const void *s, size_t n)
{
	size_t need;
	if (b->fail)
		return;
	if (!sx_add_ok(b->len, n, &need) || !sx_add_ok(need, 1, &need) ||
	    need > SX_CHAT_LINE_MAX + 1) {
		b->fail = true;
		return;
	}
	if (need > b->cap) {
		sx_err ignore = {0};
		if (sx_grow(&b->p, &b->cap, need < 4096 ? 4096 : need, 1, SX_CHAT_LINE_MAX + 1,
			    "bytes of a line", &ignore) < 0) {
			b->fail = true;
			return;
		}
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void lb_str(lbuf *b, const char *s)
{
	lb_add(b, s, strlen(s));
}

/* A JSON string: " and \ escaped, bytes below 0x20 and DEL as \u00XX
 * (\n, \t and the others alike), every other byte as it is (text is
 * well-formed UTF-8: sx_chat_ver_msg checks it). */
static void lb_json(lbuf *b, const uint8_t *s, size_t n)
{
	lb_add(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c >= 0x20 && c != 0x7f && c != '"' && c != '\\')
			continue;
		lb_add(b, s + run, i - run);
		char esc[8];
		if (c == '"' || c == '\\')
			snprintf(esc, sizeof(esc), "\\%c", c);
		else
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		lb_str(b, esc);
		run = i + 1;
	}
	lb_add(b, s + run, n - run);
	lb_add(b, "\"", 1);
}

static void lb_key(lbuf *b, const char *key)
{
	lb_add(b, ",\"", 2);
	lb_str(b, key);
	lb_add(b, "\":", 2);
}

static void kv_str(lbuf *b, const char *key, const char *v)
{
	lb_key(b, key);
	lb_json(b, (const uint8_t *)v, strlen(v));
}

static void kv_u64(lbuf *b, const char *key, uint64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	lb_key(b, key);
	lb_str(b, num);
}

static void kv_hex(lbuf *b, const char *key, const uint8_t *p, size_t n)
{
	char hex[2 * SX_HASH_LEN + 1];
	sx_hex(p, n, hex);
	lb_key(b, key);
	lb_add(b, "\"", 1);
	lb_str(b, hex);
	lb_add(b, "\"", 1);
}

static void lb_b64(lbuf *b, const uint8_t *p, size_t n)
{
	size_t out = 4 * ((n + 2) / 3) + 1;
	char *tmp = malloc(out);
	if (tmp == NULL) {
		b->fail = true;
		return;
	}
	int l = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
	lb_add(b, "\"", 1);
	lb_add(b, tmp, l < 0 ? 0 : (size_t)l);
	lb_add(b, "\"", 1);
	free(tmp);
}

static void kv_b64(lbuf *b, const char *key, const uint8_t *p, size_t n)
{
	lb_key(b, key);
	lb_b64(b, p, n);
}

/* ---- encoding ------------------------------------------------------------ */

static void enc_post(lbuf *b, const sx_chat_line *l)
{
	const sx_chat_post *p = &l->post;
	kv_str(b, "conv", p->conv);
	kv_str(b, "author", p->author);
	kv_u64(b, "seq", p->seq);
	kv_u64(b, "n", p->n);
	kv_u64(b, "time", (uint64_t)p->time_ms);
	kv_hex(b, "prev", p->prev, SX_HASH_LEN);
	lb_key(b, "text");
	lb_json(b, p->text, p->text_len);
	kv_hex(b, "hash", l->hash, SX_HASH_LEN);
	kv_hex(b, "fp", p->fp, SX_HASH_LEN);
	kv_str(b, "alg", sx_sigalg_name(p->alg));
	kv_b64(b, "sig", p->sig, p->sig_len);
}

static void enc_receipt(lbuf *b, const sx_chat_receipt *r)
{
	kv_str(b, "conv", r->conv);
	kv_str(b, "signer", r->signer);
	kv_hex(b, "head", r->head, SX_HASH_LEN);
	kv_u64(b, "n", r->n);
	kv_u64(b, "count", r->count);
	kv_u64(b, "time", (uint64_t)r->time_ms);
	kv_hex(b, "fp", r->fp, SX_HASH_LEN);
	kv_str(b, "alg", sx_sigalg_name(r->alg));
	kv_b64(b, "sig", r->sig, r->sig_len);
}

static const char *const kind_names[] = {
    [SX_CHAT_L_TRANSCRIPT] = "transcript",
    [SX_CHAT_L_CERT] = "cert",
    [SX_CHAT_L_HEAD] = "head",
    [SX_CHAT_L_MSG] = "msg",
    [SX_CHAT_L_GAP] = "gap",
    [SX_CHAT_L_RECEIPT] = "receipt",
};

static void enc_body(lbuf *b, const sx_chat_line *l)
{
	switch (l->kind) {
	case SX_CHAT_L_TRANSCRIPT:
		kv_u64(b, "v", SX_CHAT_VERSION);
		kv_str(b, "owner", l->owner);
		kv_str(b, "role", l->server ? "server" : "participant");
		kv_u64(b, "time", (uint64_t)l->time_ms);
		break;
	case SX_CHAT_L_CERT:
		kv_hex(b, "fp", l->fp, SX_HASH_LEN);
		lb_key(b, "chain");
		lb_add(b, "[", 1);
		for (size_t i = 0; i < l->ncerts; i++) {
			if (i > 0)
				lb_add(b, ",", 1);
			lb_b64(b, l->certs[i], l->cert_len[i]);
		}
		lb_add(b, "]", 1);
		break;
	case SX_CHAT_L_HEAD:
		kv_str(b, "conv", l->conv);
		kv_u64(b, "n", l->n);
		kv_hex(b, "head", l->head, SX_HASH_LEN);
		break;
	case SX_CHAT_L_GAP:
		kv_str(b, "conv", l->conv);
		kv_u64(b, "n", l->n);
		kv_str(b, "reason", l->reason);
		break;
	case SX_CHAT_L_MSG: enc_post(b, l); break;
	case SX_CHAT_L_RECEIPT: enc_receipt(b, &l->receipt); break;
	default: b->fail = true; break;
	}
}

int sx_chat_line_encode(const sx_chat_line *l, char **out, size_t *len, sx_err *err)
{
	lbuf b = {0};
	if ((unsigned)l->kind >= SX_ARRAY_LEN(kind_names) || kind_names[l->kind] == NULL)
		return sx_fail(err, SX_E_OTHER, "unknown transcript line kind");
	lb_str(&b, "{\"type\":\"");
	lb_str(&b, kind_names[l->kind]);
	lb_add(&b, "\"", 1);
	enc_body(&b, l);
	lb_add(&b, "}", 1);
	if (b.fail) {
		free(b.p);
		return sx_fail(err, SX_E_OTHER, "a transcript line is at most %u bytes",
			       SX_CHAT_LINE_MAX);
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

void sx_chat_line_free(sx_chat_line *l)
{
	for (size_t i = 0; i < SX_CHAT_CHAIN_MAX; i++)
		free(l->certs[i]);
	free(l->text_buf);
	memset(l, 0, sizeof(*l));
}
