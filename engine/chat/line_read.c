/* engine/chat/line_read: reading a transcript line (line.c says how lines
 * are spelled). The reader expects the keys of the line's kind in their
 * order, then the line is written again and must come out byte for byte
 * the same: one spelling per line, so an edit of any byte is either a
 * different value (which the signatures and the chain catch) or refused
 * here. Pure. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/sx_util.h"
#include "engine/chat/sx_chat.h"

typedef struct rd {
	const char *s;
	size_t len, pos;
	const char *key; /* the key being read, for messages */
	sx_err *err;
} rd;

static int fail(rd *r, const char *what)
{
	if (r->key != NULL)
		return sx_fail(r->err, SX_E_INTEGRITY, "\"%s\": %s", r->key, what);
	return sx_fail(r->err, SX_E_INTEGRITY, "%s", what);
}

static int lit(rd *r, const char *t)
{
	size_t n = strlen(t);
	if (r->len - r->pos < n || memcmp(r->s + r->pos, t, n) != 0)
		return fail(r, "not the expected text");
	r->pos += n;
	return 0;
}

/* A JSON string into a malloc'd buffer (NUL terminated, *n bytes). Only
 * \" \\ and \u00XX are read (what line.c writes); the rest is checked by
 * writing the line again. */
static int str(rd *r, uint8_t **out, size_t *n, size_t max)
{
	if (r->pos >= r->len || r->s[r->pos] != '"')
		return fail(r, "a string is expected");
	r->pos++;
	size_t end = r->pos;
	while (end < r->len && r->s[end] != '"')
		end += r->s[end] == '\\' ? 2 : 1;
	if (end >= r->len)
		return fail(r, "unterminated string");
	uint8_t *b = malloc(end - r->pos + 1);
	size_t k = 0;
	if (b == NULL)
		return sx_fail(r->err, SX_E_OTHER, "out of memory");
	for (size_t i = r->pos; i < end; i++) {
		if (r->s[i] != '\\') {
			b[k++] = (uint8_t)r->s[i];
			continue;
		}
		char e = r->s[i + 1];
		if (e == '"' || e == '\\') {
			b[k++] = (uint8_t)e;
			i++;
		} else if (e == 'u' && i + 5 < end && r->s[i + 2] == '0' && r->s[i + 3] == '0' &&
			   sx_unhex(r->s + i + 4, 2, &b[k])) {
			k++;
			i += 5;
		} else {
			free(b);
			return fail(r, "an escape other than \\\", \\\\ or \\u00XX");
		}
	}
	b[k] = '\0';
	r->pos = end + 1;
	if (k > max) {
		free(b);
		return fail(r, "too long");
	}
	*out = b;
	*n = k;
	return 0;
}

static int key(rd *r, const char *k)
{
	r->key = NULL;
	if (lit(r, ",\"") < 0 || lit(r, k) < 0 || lit(r, "\":") < 0)
		return sx_fail(r->err, SX_E_INTEGRITY, "the key \"%s\" is expected here", k);
	r->key = k;
	return 0;
}

static int get_cstr(rd *r, const char *k, char *buf, size_t cap)
{
	uint8_t *b;
	size_t n;
	if (key(r, k) < 0 || str(r, &b, &n, cap - 1) < 0)
		return -1;
	if (memchr(b, '\0', n) != NULL) {
		free(b);
		return fail(r, "a NUL in a name");
	}
	memcpy(buf, b, n + 1);
	free(b);
	return 0;
}

static int get_u64(rd *r, const char *k, uint64_t *v)
{
	if (key(r, k) < 0)
		return -1;
	size_t start = r->pos;
	uint64_t x = 0;
	while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') {
		unsigned d = (unsigned)(r->s[r->pos] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return fail(r, "number too large");
		x = x * 10 + d;
		r->pos++;
	}
	if (r->pos == start)
		return fail(r, "a number is expected");
	*v = x;
	return 0;
}

static int get_time(rd *r, const char *k, int64_t *v)
{
	uint64_t u;
	if (get_u64(r, k, &u) < 0)
		return -1;
	if (u > INT64_MAX)
		return fail(r, "time out of range");
	*v = (int64_t)u;
	return 0;
}

static int get_hex(rd *r, const char *k, uint8_t out[SX_HASH_LEN])
{
	uint8_t *b = NULL;
	size_t n = 0;
	if (key(r, k) < 0 || str(r, &b, &n, 2 * SX_HASH_LEN) < 0)
		return -1;
	int rc = n == 2 * SX_HASH_LEN && sx_unhex((const char *)b, n, out)
		     ? 0
		     : fail(r, "64 lower-case hex digits are expected");
	free(b);
	return rc;
}

/* Base64 with padding into a malloc'd buffer of at most max bytes. */
static int b64(rd *r, uint8_t **out, size_t *n, size_t max)
{
	uint8_t *t;
	size_t tl;
	if (str(r, &t, &tl, 4 * ((max + 2) / 3)) < 0)
		return -1;
	uint8_t *b = malloc(tl / 4 * 3 + 1);
	int l = b != NULL && tl % 4 == 0 && tl > 0 ? EVP_DecodeBlock(b, t, (int)tl) : -1;
	if (l >= 0) {
		size_t pad = (t[tl - 1] == '=') + (tl > 1 && t[tl - 2] == '=');
		l -= (int)pad;
	}
	free(t);
	if (l <= 0 || (size_t)l > max) {
		free(b);
		return fail(r, "base64 is expected");
	}
	*out = b;
	*n = (size_t)l;
	return 0;
}

static int get_sig(rd *r, sx_sigalg *alg, uint8_t *sig, size_t *sig_len)
{
	char name[32];
	uint8_t *b = NULL;
	size_t n = 0;
	if (get_cstr(r, "alg", name, sizeof(name)) < 0)
		return -1;
	*alg = SX_SIGALG_NONE;
	for (int a = SX_SIGALG_ECDSA_SHA256; a <= SX_SIGALG_RSA_PSS_SHA256; a++)
		if (strcmp(name, sx_sigalg_name((sx_sigalg)a)) == 0)
			*alg = (sx_sigalg)a;
	if (*alg == SX_SIGALG_NONE)
		return fail(r, "unknown signature algorithm");
	if (key(r, "sig") < 0 || b64(r, &b, &n, SX_SIG_MAX) < 0)
		return -1;
	memcpy(sig, b, n);
	*sig_len = n;
	free(b);
	return 0;
}

static int rd_msg(rd *r, sx_chat_line *l)
{
	sx_chat_post *p = &l->post;
	size_t n;
	if (get_cstr(r, "conv", p->conv, sizeof(p->conv)) < 0 ||
	    get_cstr(r, "author", p->author, sizeof(p->author)) < 0 ||
	    get_u64(r, "seq", &p->seq) < 0 || get_u64(r, "n", &p->n) < 0 ||
	    get_time(r, "time", &p->time_ms) < 0 || get_hex(r, "prev", p->prev) < 0 ||
	    key(r, "text") < 0 || str(r, &l->text_buf, &n, SX_CHAT_TEXT_MAX) < 0)
		return -1;
	p->text = l->text_buf;
	p->text_len = n;
	unsigned hl = 0;
	if (EVP_Digest(p->text, n, p->text_hash, &hl, EVP_sha256(), NULL) != 1 || hl != SX_HASH_LEN)
		return sx_fail_ssl(r->err, SX_E_OTHER, "SHA-256");
	if (get_hex(r, "hash", l->hash) < 0 || get_hex(r, "fp", p->fp) < 0)
		return -1;
	return get_sig(r, &p->alg, p->sig, &p->sig_len);
}

static int rd_receipt(rd *r, sx_chat_receipt *c)
{
	if (get_cstr(r, "conv", c->conv, sizeof(c->conv)) < 0 ||
	    get_cstr(r, "signer", c->signer, sizeof(c->signer)) < 0 ||
	    get_hex(r, "head", c->head) < 0 || get_u64(r, "n", &c->n) < 0 ||
	    get_u64(r, "count", &c->count) < 0 || get_time(r, "time", &c->time_ms) < 0 ||
	    get_hex(r, "fp", c->fp) < 0)
		return -1;
	return get_sig(r, &c->alg, c->sig, &c->sig_len);
}

static int rd_chain(rd *r, sx_chat_line *l)
{
	if (get_hex(r, "fp", l->fp) < 0 || key(r, "chain") < 0 || lit(r, "[") < 0)
		return -1;
	for (;;) {
		if (l->ncerts == SX_CHAT_CHAIN_MAX)
			return fail(r, "too many certificates");
		if (b64(r, &l->certs[l->ncerts], &l->cert_len[l->ncerts], SX_CHAT_CERT_MAX) < 0)
			return -1;
		l->ncerts++;
		if (r->pos < r->len && r->s[r->pos] == ']')
			break;
		if (lit(r, ",") < 0)
			return -1;
	}
	r->pos++;
	return 0;
}

static int rd_body(rd *r, sx_chat_line *l)
{
	uint64_t v;
	char role[16];
	switch (l->kind) {
	case SX_CHAT_L_TRANSCRIPT:
		if (get_u64(r, "v", &v) < 0 ||
		    get_cstr(r, "owner", l->owner, sizeof(l->owner)) < 0 ||
		    get_cstr(r, "role", role, sizeof(role)) < 0 ||
		    get_time(r, "time", &l->time_ms) < 0)
			return -1;
		if (v != SX_CHAT_VERSION)
			return sx_fail(r->err, SX_E_INTEGRITY, "transcript version %llu is unknown",
				       (unsigned long long)v);
		l->server = strcmp(role, "server") == 0;
		if (!l->server && strcmp(role, "participant") != 0)
			return sx_fail(r->err, SX_E_INTEGRITY, "unknown role '%s'", role);
		return 0;
	case SX_CHAT_L_CERT: return rd_chain(r, l);
	case SX_CHAT_L_HEAD:
		return get_cstr(r, "conv", l->conv, sizeof(l->conv)) < 0 ||
			       get_u64(r, "n", &l->n) < 0 || get_hex(r, "head", l->head) < 0
			   ? -1
			   : 0;
	case SX_CHAT_L_GAP:
		return get_cstr(r, "conv", l->conv, sizeof(l->conv)) < 0 ||
			       get_u64(r, "n", &l->n) < 0 ||
			       get_cstr(r, "reason", l->reason, sizeof(l->reason)) < 0
			   ? -1
			   : 0;
	case SX_CHAT_L_MSG: return rd_msg(r, l);
	case SX_CHAT_L_RECEIPT: return rd_receipt(r, &l->receipt);
	}
	return -1;
}

static const struct {
	const char *name;
	sx_chat_kind kind;
} kinds[] = {
    {"transcript", SX_CHAT_L_TRANSCRIPT},
    {"cert", SX_CHAT_L_CERT},
    {"head", SX_CHAT_L_HEAD},
    {"msg", SX_CHAT_L_MSG},
    {"gap", SX_CHAT_L_GAP},
    {"receipt", SX_CHAT_L_RECEIPT},
};

int sx_chat_line_decode(const char *s, size_t len, sx_chat_line *l, sx_err *err)
{
	rd r = {s, len, 0, NULL, err};
	char kind[16];
	char *again = NULL;
	size_t again_len;
	memset(l, 0, sizeof(*l));
	if (len > SX_CHAT_LINE_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "a transcript line is at most %u bytes",
			       SX_CHAT_LINE_MAX);
	if (lit(&r, "{\"type\":\"") < 0)
		return sx_fail(err, SX_E_INTEGRITY, "not a transcript line");
	size_t q = r.pos;
	while (q < len && s[q] != '"')
		q++;
	if (q >= len || q - r.pos >= sizeof(kind))
		return sx_fail(err, SX_E_INTEGRITY, "unknown line type");
	memcpy(kind, s + r.pos, q - r.pos);
	kind[q - r.pos] = '\0';
	r.pos = q + 1;
	for (size_t i = 0; i < SX_ARRAY_LEN(kinds); i++)
		if (strcmp(kind, kinds[i].name) == 0)
			l->kind = kinds[i].kind;
	if (l->kind == 0)
		return sx_fail(err, SX_E_INTEGRITY, "unknown line type '%s'", kind);
	if (rd_body(&r, l) < 0)
		return -1;
	r.key = NULL;
	if (lit(&r, "}") < 0 || r.pos != len)
		return sx_fail(err, SX_E_INTEGRITY, "the line goes on after its last key");
	if (sx_chat_line_encode(l, &again, &again_len, err) < 0)
		return -1;
	int same = again_len == len && memcmp(again, s, len) == 0;
	free(again);
	if (!same)
		return sx_fail(err, SX_E_INTEGRITY, "the line is not in its one spelling");
	return 0;
}
