/* engine/chat/ver: the one verifier of certificates, messages, the chain of
 * each conversation and receipts (docs/SIGNATURES.md section 11.4). The
 * server runs it before it relays, a participant before it shows and keeps
 * what arrives, `sxfer verify --transcript` over a whole file. Each call
 * checks first and changes the state only when everything passed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/chat/ver_int.h"

static const uint8_t zero[SX_HASH_LEN];

int sx_chat_ver_new(sx_chat_ver **out, const sx_policy *pol, const char *owner, sx_err *err)
{
	sx_chat_ver *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	v->pol = pol;
	if (owner != NULL)
		snprintf(v->owner, sizeof(v->owner), "%s", owner);
	*out = v;
	return 0;
}

void sx_chat_ver_free(sx_chat_ver *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->ncerts; i++)
		sk_X509_pop_free(v->certs[i].chain, X509_free);
	for (size_t i = 0; i < v->nconvs; i++) {
		free(v->convs[i].id);
		free(v->convs[i].hashes);
		free(v->convs[i].authors);
	}
	free(v->certs);
	free(v->convs);
	free(v);
}

void sx_chat_ver_set_strict(sx_chat_ver *v, bool strict)
{
	v->strict = strict;
}

/* ---- certificates ---------------------------------------------------------- */

int sx_chat_ver_cert(sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN], STACK_OF(X509) * chain,
		     sx_err *err)
{
	uint8_t leaf_fp[SX_HASH_LEN];
	char name[256];
	X509 *leaf = sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
	STACK_OF(X509) *copy = NULL;
	if (ver_find_cert(v, fp) != NULL)
		return 0;
	if (leaf == NULL)
		return sx_fail(err, SX_E_INTEGRITY, "a certificate line holds no certificate");
	if (sx_cert_fp(leaf, leaf_fp, err) < 0)
		return -1;
	if (memcmp(leaf_fp, fp, SX_HASH_LEN) != 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "the certificate is not the one its fingerprint "
			       "names");
	if (sx_cert_name(leaf, name, sizeof(name), err) < 0)
		return -1;
	if (sx_policy_check(v->pol, leaf, chain, SX_ROLE_SIGNER, NULL, err) < 0) {
		sx_err_prefix(err, "certificate of '%.64s': ", name);
		return -1;
	}
	sx_err e = {0};
	if (sx_chat_name_check(name, strlen(name), &e) < 0)
		return sx_fail(err, SX_E_AUTH, "certificate name '%.64s' cannot chat: %s", name,
			       e.msg);
	if (sx_chain_copy(&copy, chain, err) < 0 ||
	    sx_grow(&v->certs, &v->certs_cap, v->ncerts + 1, sizeof(*v->certs), SIZE_MAX / 2,
		    "certificates", err) < 0) {
		sk_X509_pop_free(copy, X509_free);
		return -1;
	}
	vcert *c = &v->certs[v->ncerts++];
	memcpy(c->fp, fp, SX_HASH_LEN);
	c->chain = copy;
	c->pub = X509_get0_pubkey(sk_X509_value(copy, 0));
	snprintf(c->name, sizeof(c->name), "%.64s", name);
	return 0;
}

int sx_chat_ver_cert_der(sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN], const uint8_t *const *certs,
			 const size_t *lens, size_t n, sx_err *err)
{
	int rc = -1;
	STACK_OF(X509) *chain = sk_X509_new_null();
	if (ver_find_cert(v, fp) != NULL) {
		sk_X509_free(chain);
		return 0;
	}
	SX_ENSURE(chain != NULL, err, SX_E_OTHER, "out of memory");
	SX_ENSURE(n > 0 && n <= SX_CHAT_CHAIN_MAX, err, SX_E_INTEGRITY,
		  "a chain holds 1 to %d certificates", SX_CHAT_CHAIN_MAX);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = certs[i];
		X509 *x = d2i_X509(NULL, &p, (long)lens[i]);
		if (x == NULL || p != certs[i] + lens[i] || sk_X509_push(chain, x) <= 0) {
			X509_free(x);
			sx_fail(err, SX_E_INTEGRITY, "certificate %zu of the chain is not DER",
				i + 1);
			goto out;
		}
	}
	rc = sx_chat_ver_cert(v, fp, chain, err);
out:
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

bool sx_chat_ver_has_cert(const sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN])
{
	return ver_find_cert(v, fp) != NULL;
}

STACK_OF(X509) * sx_chat_ver_chain(const sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN])
{
	const vcert *c = ver_find_cert(v, fp);
	return c != NULL ? c->chain : NULL;
}

/* ---- a message -------------------------------------------------------------- */

static int refuse(sx_chat_why *why, sx_chat_why w, sx_err *err, const char *fmt, ...)
    SX_PRINTF(4, 5);
static int refuse(sx_chat_why *why, sx_chat_why w, sx_err *err, const char *fmt, ...)
{
	char buf[SX_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (why != NULL)
		*why = w;
	return sx_fail(err, SX_E_INTEGRITY, "%s", buf);
}

/* Who wrote it, where, and is it theirs. */
static int msg_author(const sx_chat_ver *v, const sx_chat_post *p, sx_chat_why *why, sx_err *err)
{
	const vcert *c = ver_find_cert(v, p->fp);
	sx_err e = {0};
	if (c == NULL)
		return refuse(why, SX_CHAT_BAD, err,
			      "%s's message %llu in %s: no certificate is known for its "
			      "fingerprint",
			      p->author, (unsigned long long)p->seq, p->conv);
	if (strcmp(c->name, p->author) != 0)
		return refuse(why, SX_CHAT_BAD, err,
			      "a message in %s claims the author '%s' but is signed by '%s'",
			      p->conv, p->author, c->name);
	if (sx_chat_conv_check(p->conv, strlen(p->conv), &e) < 0)
		return refuse(why, SX_CHAT_BAD, err, "%s", e.msg);
	if (!sx_chat_conv_is_room(p->conv) && !sx_chat_conv_has(p->conv, p->author))
		return refuse(why, SX_CHAT_NOT_MEMBER, err, "%s is not a member of %s", p->author,
			      p->conv);
	if (!ver_utf8_ok(p->text, p->text_len))
		return refuse(why, SX_CHAT_BAD, err,
			      "%s's message %llu in %s: the text is not UTF-8 without NUL",
			      p->author, (unsigned long long)p->seq, p->conv);
	if (sx_chat_post_verify(p, c->pub, err) < 0) {
		if (why != NULL)
			*why = SX_CHAT_BAD;
		return -1;
	}
	return 0;
}

/* Does it extend the chain held here? */
static int msg_chain(const sx_chat_ver *v, const vconv *c, const sx_chat_post *p, sx_chat_why *why,
		     sx_err *err)
{
	char h[2 * SX_HASH_LEN + 1];
	if (p->n == 1 && memcmp(p->prev, zero, SX_HASH_LEN) != 0)
		return refuse(why, SX_CHAT_BAD, err,
			      "%s: the first message names a previous message", p->conv);
	if (c == NULL || c->attach == ATTACH_NONE) {
		if (v->strict && p->n != 1)
			return refuse(why, SX_CHAT_STALE, err,
				      "%s: the first message held must be at position 1, not "
				      "%llu",
				      p->conv, (unsigned long long)p->n);
		return 0;
	}
	if (p->n != c->last_n + 1) {
		if (p->n > c->last_n + 1)
			return refuse(why, SX_CHAT_STALE, err,
				      "%s: %s's message is at position %llu but the last held is "
				      "%llu: %llu message(s) missing",
				      p->conv, p->author, (unsigned long long)p->n,
				      (unsigned long long)c->last_n,
				      (unsigned long long)(p->n - c->last_n - 1));
		return refuse(why, SX_CHAT_STALE, err,
			      "%s: %s's message is at position %llu, which is already held "
			      "(the last is %llu): out of order or stale",
			      p->conv, p->author, (unsigned long long)p->n,
			      (unsigned long long)c->last_n);
	}
	if (c->attach == ATTACH_PREV && memcmp(p->prev, c->last, SX_HASH_LEN) != 0) {
		sx_hex(c->last, 8, h);
		return refuse(why, SX_CHAT_STALE, err,
			      "%s: %s's message %llu does not follow message %llu held here "
			      "(%s...): the chain is broken",
			      p->conv, p->author, (unsigned long long)p->n,
			      (unsigned long long)c->last_n, h);
	}
	return 0;
}

static int msg_seq(const sx_chat_ver *v, const vconv *c, const sx_chat_post *p, sx_chat_why *why,
		   sx_err *err)
{
	const vauthor *a = c != NULL ? ver_find_author(c, p->author) : NULL;
	if (a != NULL && p->seq <= a->last_seq)
		return refuse(why, SX_CHAT_REPLAY, err,
			      "replayed: %s's message %llu in %s was already accepted (the last is "
			      "%llu)",
			      p->author, (unsigned long long)p->seq, p->conv,
			      (unsigned long long)a->last_seq);
	if (a != NULL && a->epoch == c->epoch && p->seq != a->last_seq + 1)
		return refuse(why, SX_CHAT_REPLAY, err,
			      "%s's message %llu in %s is missing (message %llu came next)",
			      p->author, (unsigned long long)(a->last_seq + 1), p->conv,
			      (unsigned long long)p->seq);
	if (a == NULL && v->strict && p->seq != 1)
		return refuse(why, SX_CHAT_REPLAY, err,
			      "%s's first message in %s must be number 1, not %llu", p->author,
			      p->conv, (unsigned long long)p->seq);
	return 0;
}

static int msg_commit(sx_chat_ver *v, vconv *c, const sx_chat_post *p, const uint8_t h[SX_HASH_LEN],
		      sx_err *err)
{
	if (c == NULL && (c = ver_add_conv(v, p->conv, err)) == NULL)
		return -1;
	vauthor *a = ver_find_author(c, p->author);
	if (a == NULL && (a = ver_add_author(c, p->author, err)) == NULL)
		return -1;
	if (ver_add_hash(c, p->n, h, err) < 0)
		return -1;
	c->attach = ATTACH_PREV;
	c->last_n = p->n;
	memcpy(c->last, h, SX_HASH_LEN);
	c->count++;
	a->last_seq = p->seq;
	a->epoch = c->epoch;
	return 0;
}

int sx_chat_ver_msg(sx_chat_ver *v, const sx_chat_post *p, bool commit, sx_chat_why *why,
		    uint8_t hash[SX_HASH_LEN], sx_err *err)
{
	uint8_t h[SX_HASH_LEN];
	if (why != NULL)
		*why = SX_CHAT_OK;
	if (msg_author(v, p, why, err) < 0)
		return -1;
	if (p->seq == 0 || p->n == 0)
		return refuse(why, SX_CHAT_BAD, err,
			      "%s's message in %s: seq and position start at 1", p->author,
			      p->conv);
	vconv *c = ver_find_conv(v, p->conv);
	if (msg_seq(v, c, p, why, err) < 0 || msg_chain(v, c, p, why, err) < 0)
		return -1;
	if (sx_chat_post_hash(p, h, err) < 0)
		return -1;
	if (commit && msg_commit(v, c, p, h, err) < 0)
		return -1;
	if (hash != NULL)
		memcpy(hash, h, SX_HASH_LEN);
	return 0;
}
