/* engine/chat/ver_state: the verifier's tables (certificates, conversations,
 * authors, hashes) and the UTF-8 check of a text. Linear searches: one
 * participant's or one server's conversations, and the authors of one
 * conversation, are few; the hashes of a conversation are searched by
 * bisection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/chat/ver_int.h"

const vcert *ver_find_cert(const sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN])
{
	for (size_t i = 0; i < v->ncerts; i++)
		if (memcmp(v->certs[i].fp, fp, SX_HASH_LEN) == 0)
			return &v->certs[i];
	return NULL;
}

vconv *ver_find_conv(const sx_chat_ver *v, const char *conv)
{
	for (size_t i = 0; i < v->nconvs; i++)
		if (strcmp(v->convs[i].id, conv) == 0)
			return &v->convs[i];
	return NULL;
}

vconv *ver_add_conv(sx_chat_ver *v, const char *conv, sx_err *err)
{
	if (sx_grow(&v->convs, &v->convs_cap, v->nconvs + 1, sizeof(*v->convs), SIZE_MAX / 2,
		    "conversations", err) < 0)
		return NULL;
	vconv *c = &v->convs[v->nconvs];
	memset(c, 0, sizeof(*c));
	c->id = strdup(conv);
	if (c->id == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		return NULL;
	}
	v->nconvs++;
	return c;
}

vauthor *ver_find_author(const vconv *c, const char *name)
{
	for (size_t i = 0; i < c->nauthors; i++)
		if (strcmp(c->authors[i].name, name) == 0)
			return &c->authors[i];
	return NULL;
}

vauthor *ver_add_author(vconv *c, const char *name, sx_err *err)
{
	if (sx_grow(&c->authors, &c->authors_cap, c->nauthors + 1, sizeof(*c->authors),
		    SIZE_MAX / 2, "authors", err) < 0)
		return NULL;
	vauthor *a = &c->authors[c->nauthors++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	return a;
}

int ver_add_hash(vconv *c, uint64_t n, const uint8_t h[SX_HASH_LEN], sx_err *err)
{
	if (sx_grow(&c->hashes, &c->hashes_cap, c->nhashes + 1, sizeof(*c->hashes), SIZE_MAX / 2,
		    "messages", err) < 0)
		return -1;
	c->hashes[c->nhashes].n = n;
	memcpy(c->hashes[c->nhashes].h, h, SX_HASH_LEN);
	c->nhashes++;
	return 0;
}

const vhash *ver_find_hash(const vconv *c, uint64_t n)
{
	size_t lo = 0, hi = c->nhashes;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->hashes[mid].n < n)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nhashes && c->hashes[lo].n == n ? &c->hashes[lo] : NULL;
}

bool ver_utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t need;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}
