/* engine/chat/ver_more: the verifier's HEAD and GAP, receipts, what it
 * holds, and whole transcripts line by line (docs/SIGNATURES.md 11.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/chat/ver_int.h"

static const uint8_t zero[SX_HASH_LEN];

int sx_chat_ver_head(sx_chat_ver *v, const char *conv, uint64_t n, const uint8_t *head, sx_err *err)
{
	sx_err e = {0};
	const char *what = head != NULL ? "head" : "gap";
	if (sx_chat_conv_check(conv, strlen(conv), &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "%s", e.msg);
	if (v->strict)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s: a transcript that holds every message has no %s", conv, what);
	vconv *c = ver_find_conv(v, conv);
	if (c != NULL && c->attach != ATTACH_NONE) {
		if (n < c->last_n)
			return sx_fail(err, SX_E_INTEGRITY,
				       "%s: a %s at message %llu is behind message %llu held here",
				       conv, what, (unsigned long long)n,
				       (unsigned long long)c->last_n);
		if (n == c->last_n) {
			if (head != NULL && memcmp(head, c->last, SX_HASH_LEN) != 0)
				return sx_fail(err, SX_E_INTEGRITY,
					       "%s: the head at message %llu is not the message "
					       "held here",
					       conv, (unsigned long long)n);
			return 0;
		}
	}
	if (head != NULL && n == 0 && memcmp(head, zero, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY, "%s: a head at message 0 names a message",
			       conv);
	if (c == NULL && (c = ver_add_conv(v, conv, err)) == NULL)
		return -1;
	if (head != NULL && n > 0 && ver_add_hash(c, n, head, err) < 0)
		return -1;
	c->attach = head != NULL ? ATTACH_PREV : ATTACH_ANY;
	c->last_n = n;
	memcpy(c->last, head != NULL ? head : zero, SX_HASH_LEN);
	c->epoch++;
	if (head == NULL)
		v->gaps++;
	return 0;
}

/* Does the receipt agree with the chain held here? */
static int receipt_chain(const sx_chat_ver *v, const vconv *c, const sx_chat_receipt *r,
			 sx_err *err)
{
	char h[2 * SX_HASH_LEN + 1];
	bool own = v->owner[0] != '\0' && strcmp(v->owner, r->signer) == 0;
	uint64_t held = c != NULL ? c->last_n : 0;
	if (r->n == 0 && memcmp(r->head, zero, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY, "%s's receipt of %s: a head at message 0",
			       r->signer, r->conv);
	if (r->n > held)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s's receipt of %s ends at message %llu; this transcript ends at "
			       "%llu: messages are missing",
			       r->signer, r->conv, (unsigned long long)r->n,
			       (unsigned long long)held);
	const vhash *k = r->n > 0 && c != NULL ? ver_find_hash(c, r->n) : NULL;
	if (k != NULL && memcmp(k->h, r->head, SX_HASH_LEN) != 0) {
		sx_hex(r->head, 8, h);
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s's receipt of %s names message %llu (%s...), which this "
			       "transcript does not hold: the transcripts differ",
			       r->signer, r->conv, (unsigned long long)r->n, h);
	}
	if (own && (r->n != held || (c != NULL && memcmp(r->head, c->last, SX_HASH_LEN) != 0) ||
		    r->count != (c != NULL ? c->count : 0)))
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s's own receipt of %s (message %llu, %llu held) does not match "
			       "this transcript (message %llu, %llu held)",
			       r->signer, r->conv, (unsigned long long)r->n,
			       (unsigned long long)r->count, (unsigned long long)held,
			       (unsigned long long)(c != NULL ? c->count : 0));
	return 0;
}

int sx_chat_ver_receipt(sx_chat_ver *v, const sx_chat_receipt *r, sx_err *err)
{
	const vcert *cert = ver_find_cert(v, r->fp);
	sx_err e = {0};
	if (cert == NULL)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s's receipt of %s: no certificate is known for its fingerprint",
			       r->signer, r->conv);
	if (strcmp(cert->name, r->signer) != 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "a receipt of %s claims the signer '%s' but is signed by '%s'",
			       r->conv, r->signer, cert->name);
	if (sx_chat_conv_check(r->conv, strlen(r->conv), &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "%s", e.msg);
	if (!sx_chat_conv_is_room(r->conv) && !sx_chat_conv_has(r->conv, r->signer))
		return sx_fail(err, SX_E_INTEGRITY, "%s is not a member of %s", r->signer, r->conv);
	if (sx_chat_receipt_verify(r, cert->pub, err) < 0)
		return -1;
	if (receipt_chain(v, ver_find_conv(v, r->conv), r, err) < 0)
		return -1;
	v->receipts++;
	return 0;
}

void sx_chat_ver_tip(const sx_chat_ver *v, const char *conv, uint64_t *n, uint8_t head[SX_HASH_LEN])
{
	const vconv *c = ver_find_conv(v, conv);
	*n = c != NULL ? c->last_n : 0;
	memcpy(head, c != NULL ? c->last : zero, SX_HASH_LEN);
}

uint64_t sx_chat_ver_count(const sx_chat_ver *v, const char *conv)
{
	const vconv *c = ver_find_conv(v, conv);
	return c != NULL ? c->count : 0;
}

uint64_t sx_chat_ver_last_seq(const sx_chat_ver *v, const char *conv, const char *author)
{
	const vconv *c = ver_find_conv(v, conv);
	const vauthor *a = c != NULL ? ver_find_author(c, author) : NULL;
	return a != NULL ? a->last_seq : 0;
}

const char *sx_chat_ver_next_conv(const sx_chat_ver *v, size_t *at)
{
	return *at < v->nconvs ? v->convs[(*at)++].id : NULL;
}

/* ---- lines and whole transcripts --------------------------------------------- */

static int line_check(sx_chat_ver *v, sx_chat_line *l, sx_err *err)
{
	uint8_t h[SX_HASH_LEN];
	if (l->kind == SX_CHAT_L_TRANSCRIPT) {
		if (v->lines != 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "a transcript line may only be the first line");
		snprintf(v->owner, sizeof(v->owner), "%s", l->owner);
		v->strict = l->server;
		return 0;
	}
	if (v->lines == 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "the first line must say whose transcript this is");
	switch (l->kind) {
	case SX_CHAT_L_CERT:
		return sx_chat_ver_cert_der(v, l->fp, (const uint8_t *const *)l->certs, l->cert_len,
					    l->ncerts, err);
	case SX_CHAT_L_HEAD: return sx_chat_ver_head(v, l->conv, l->n, l->head, err);
	case SX_CHAT_L_GAP: return sx_chat_ver_head(v, l->conv, l->n, NULL, err);
	case SX_CHAT_L_MSG:
		if (sx_chat_post_hash(&l->post, h, err) < 0)
			return -1;
		if (memcmp(h, l->hash, SX_HASH_LEN) != 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "the line's hash is not the hash of its message");
		return sx_chat_ver_msg(v, &l->post, true, NULL, NULL, err);
	case SX_CHAT_L_RECEIPT: return sx_chat_ver_receipt(v, &l->receipt, err);
	default: return sx_fail(err, SX_E_INTEGRITY, "unknown line");
	}
}

int sx_chat_ver_line(sx_chat_ver *v, const char *s, size_t len, sx_chat_line *l, sx_err *err)
{
	sx_chat_line *mine = NULL, *use = l;
	if (use == NULL) {
		mine = malloc(sizeof(*mine));
		if (mine == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		use = mine;
	}
	int rc = sx_chat_line_decode(s, len, use, err);
	if (rc == 0)
		rc = line_check(v, use, err);
	if (rc == 0)
		v->lines++;
	if (mine != NULL) {
		sx_chat_line_free(mine);
		free(mine);
	}
	return rc;
}

int sx_chat_verify_text(const char *text, size_t len, const sx_policy *pol, size_t *bad_line,
			sx_chat_summary *sum, sx_err *err)
{
	sx_chat_ver *v = NULL;
	size_t pos = 0, no = 0, msgs = 0;
	int rc = -1;
	memset(sum, 0, sizeof(*sum));
	*bad_line = 0;
	if (sx_chat_ver_new(&v, pol, NULL, err) < 0)
		return -1;
	if (len == 0) {
		*bad_line = 1;
		sx_fail(err, SX_E_INTEGRITY, "the transcript is empty");
		goto out;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		no++;
		if (nl == NULL) {
			*bad_line = no;
			sx_fail(err, SX_E_INTEGRITY, "line %zu is cut (no newline at its end)", no);
			goto out;
		}
		size_t l = (size_t)(nl - (text + pos));
		bool is_msg = l > 15 && memcmp(text + pos, "{\"type\":\"msg\"", 13) == 0;
		if (sx_chat_ver_line(v, text + pos, l, NULL, err) < 0) {
			*bad_line = no;
			sx_err_prefix(err, "line %zu: ", no);
			goto out;
		}
		msgs += is_msg;
		pos += l + 1;
	}
	sum->lines = no;
	sum->msgs = msgs;
	sum->receipts = v->receipts;
	sum->convs = v->nconvs;
	sum->gaps = v->gaps;
	snprintf(sum->owner, sizeof(sum->owner), "%s", v->owner);
	sum->server = v->strict;
	rc = 0;
out:
	sx_chat_ver_free(v);
	return rc;
}
