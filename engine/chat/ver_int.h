/* engine/chat, inside: the verifier's state (ver.c, ver_state.c). */
#ifndef SX_CHAT_VER_INT_H
#define SX_CHAT_VER_INT_H

#include "engine/chat/sx_chat.h"

typedef struct vcert {
	uint8_t fp[SX_HASH_LEN];
	STACK_OF(X509) * chain; /* owned */
	EVP_PKEY *pub;		/* the leaf's (borrowed from it) */
	char name[SX_CHAT_NAME_MAX + 1];
} vcert;

typedef struct vauthor {
	char name[SX_CHAT_NAME_MAX + 1];
	uint64_t last_seq;
	uint64_t epoch; /* the conversation's epoch at its last message */
} vauthor;

typedef struct vhash {
	uint64_t n;
	uint8_t h[SX_HASH_LEN];
} vhash;

/* How the next message of a conversation must attach. */
enum { ATTACH_NONE = 0, ATTACH_PREV, ATTACH_ANY };

typedef struct vconv {
	char *id;
	int attach; /* NONE: nothing held yet; PREV: n = last_n + 1 naming last; ANY: after a GAP */
	uint64_t last_n; /* position of the last message (or HEAD/GAP) */
	uint8_t last[SX_HASH_LEN];
	uint64_t count; /* messages held */
	uint64_t epoch; /* HEADs and GAPs so far: an author's seq runs on only within one */
	vhash *hashes;	/* (n, hash) of every message (and HEAD) held, n increasing */
	size_t nhashes, hashes_cap;
	vauthor *authors;
	size_t nauthors, authors_cap;
} vconv;

struct sx_chat_ver {
	const sx_policy *pol;
	char owner[SX_CHAT_NAME_MAX + 1];
	bool strict;
	size_t lines; /* lines through sx_chat_ver_line */
	vcert *certs;
	size_t ncerts, certs_cap;
	vconv *convs;
	size_t nconvs, convs_cap;
	size_t receipts, gaps;
};

const vcert *ver_find_cert(const sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN]);
vconv *ver_find_conv(const sx_chat_ver *v, const char *conv);
vconv *ver_add_conv(sx_chat_ver *v, const char *conv, sx_err *err);
vauthor *ver_find_author(const vconv *c, const char *name);
vauthor *ver_add_author(vconv *c, const char *name, sx_err *err);
int ver_add_hash(vconv *c, uint64_t n, const uint8_t h[SX_HASH_LEN], sx_err *err) SX_MUST_CHECK;
const vhash *ver_find_hash(const vconv *c, uint64_t n);
/* Well-formed UTF-8 (RFC 3629 section 4) without NUL. */
bool ver_utf8_ok(const uint8_t *s, size_t n);

#endif
