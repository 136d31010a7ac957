/* engine/chat: signed messages between identities, relayed by sxfer serve
 * (docs/PROTOCOL.md "Chat", docs/SIGNATURES.md "Chat messages").
 *
 * The pure core, in this header: names and conversations (conv.c), the
 * statements a message and a receipt sign (stmt.c), the chat messages
 * carried in sealed CTRL records (msg.c), the transcript's lines (line.c)
 * and the one verifier of a conversation's chain, used alike by the server
 * before it relays, by a participant before it shows and keeps a message,
 * and by `sxfer verify --transcript` (ver.c). No sockets, no files, no
 * clock: every time is an argument.
 *
 * The model in brief:
 *   - A conversation is a room ("#ops") or a set of identities
 *     ("@alice,bob", sorted, the author included). The server orders each
 *     conversation: message n+1 names message n's hash (prev) and its
 *     position n, so every participant holds the same hash chain.
 *   - Every message is signed by its author over the statement below; the
 *     server checks it before relaying, every recipient checks it again
 *     against the author's certificate with the one validation policy.
 *   - An author numbers its messages in each conversation 1, 2, 3, ...
 *     (seq): a number seen again is a replay.
 *   - A session's end is a receipt: the participant signs the hash and
 *     position of the last message it holds of a conversation and how many
 *     of its messages it holds. Receipts go through the server to the
 *     other members; a receipt that names a message another member does not
 *     hold shows that their transcripts differ. */
#ifndef SX_CHAT_H
#define SX_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/sx_err.h"
#include "engine/sign/sx_manifest.h"
#include "engine/wire/sx_wire.h"
#include "pki/sx_pki.h"

/* ---- limits of the protocol (a server's own limits are lower) --------- */

#define SX_CHAT_NAME_MAX     64		 /* bytes of an identity or room name */
#define SX_CHAT_TO_MAX	     256	 /* identities in a direct conversation */
#define SX_CHAT_CONV_MAX     17000	 /* bytes of a conversation id */
#define SX_CHAT_TEXT_MAX     (1u << 20)	 /* bytes of one message's text */
#define SX_CHAT_TEXT_DEFAULT (64u << 10) /* serve's default limit */
#define SX_CHAT_CHAIN_MAX    8		 /* certificates in a CERT message */
#define SX_CHAT_CERT_MAX     16384	 /* bytes of one DER certificate */
#define SX_CHAT_LINE_MAX     (3u * SX_CHAT_TEXT_MAX + 64u * 1024) /* one transcript line */
#define SX_CHAT_WHO_MAX	     4096				  /* names in a MEMBERS message */
#define SX_CHAT_TIPS_MAX     4096				  /* tips in a JOIN */
#define SX_CHAT_TIPS_BYTES   (1u << 20) /* bytes of a JOIN's tips (within SX_CHAT_MSG_MAX) */
#define SX_CHAT_VERSION	     1

/* ---- names and conversations (conv.c) ----------------------------------- */

/* An identity or room name that can chat: 1..SX_CHAT_NAME_MAX bytes of
 * [A-Za-z0-9._-], not starting with '.' or '-'. SX_E_USAGE naming what is
 * wrong (the caller says whose name it is). */
int sx_chat_name_check(const char *name, size_t len, sx_err *err) SX_MUST_CHECK;

/* "#room" for a room. */
int sx_chat_conv_room(const char *room, char *out, size_t cap, sx_err *err) SX_MUST_CHECK;
/* "@a,b,c" for a direct conversation: author and to[0..n), sorted by
 * strcmp, duplicates removed; at least two distinct names (SX_E_USAGE
 * "a message needs a recipient other than its author"), at most
 * SX_CHAT_TO_MAX. */
int sx_chat_conv_direct(const char *author, const char *const *to, size_t n, char *out, size_t cap,
			sx_err *err) SX_MUST_CHECK;
/* A conversation id as it travels: canonical ("#" + name, or "@" + names
 * sorted, distinct, at least two, comma-separated). SX_E_INTEGRITY naming
 * the fault. */
int sx_chat_conv_check(const char *conv, size_t len, sx_err *err) SX_MUST_CHECK;
static inline bool sx_chat_conv_is_room(const char *conv)
{
	return conv[0] == '#';
}
/* Is name a member of the direct conversation conv? Rooms: false (their
 * members are who joined, which only the server knows). */
bool sx_chat_conv_has(const char *conv, const char *name);
/* Walks the members of a direct conversation: *at is 0 before the first;
 * returns 1 with the next name in buf (NUL terminated), 0 after the last. */
int sx_chat_conv_next(const char *conv, size_t *at, char buf[SX_CHAT_NAME_MAX + 1]);

/* ---- a message and its statement (stmt.c) ------------------------------- */

typedef struct sx_chat_post {
	char conv[SX_CHAT_CONV_MAX + 1];
	char author[SX_CHAT_NAME_MAX + 1];
	uint64_t seq;			/* the author's 1, 2, 3, ... in conv */
	uint64_t n;			/* its position in conv, 1 for the first */
	int64_t time_ms;		/* the author's clock, unix milliseconds */
	uint8_t prev[SX_HASH_LEN];	/* hash of message n-1 of conv; zeros for n == 1 */
	uint8_t text_hash[SX_HASH_LEN]; /* SHA-256 of the text */
	const uint8_t *text;		/* not owned; UTF-8 by convention, any bytes accepted */
	size_t text_len;
	sx_sigalg alg;
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
	uint8_t fp[SX_HASH_LEN]; /* sx_cert_fp of the author's certificate */
} sx_chat_post;

/* "sxfer chat message v1\0" || conv<2> || author<2> || seq u64 || n u64
 * || time_ms i64 || text_hash[32] || prev[32]   (big-endian). */
#define SX_CHAT_STMT_MAX (22 + 2 + SX_CHAT_CONV_MAX + 2 + SX_CHAT_NAME_MAX + 24 + 2 * SX_HASH_LEN)
int sx_chat_statement(const sx_chat_post *p, uint8_t *out, size_t cap, size_t *len,
		      sx_err *err) SX_MUST_CHECK;
/* The message's hash, which the next message names as prev and receipts
 * name as head: SHA-256 of its statement. */
int sx_chat_post_hash(const sx_chat_post *p, uint8_t out[SX_HASH_LEN], sx_err *err) SX_MUST_CHECK;
/* Sets text_hash from text, alg from the key, signs; fp from cert. */
int sx_chat_post_sign(sx_chat_post *p, EVP_PKEY *key, X509 *cert, sx_err *err) SX_MUST_CHECK;
/* The text hash against the text, then the signature with pub.
 * SX_E_INTEGRITY "the text does not match its hash" / "the signature of
 * alice's message 3 in #ops does not verify". */
int sx_chat_post_verify(const sx_chat_post *p, EVP_PKEY *pub, sx_err *err) SX_MUST_CHECK;

typedef struct sx_chat_receipt {
	char conv[SX_CHAT_CONV_MAX + 1];
	char signer[SX_CHAT_NAME_MAX + 1];
	uint8_t head[SX_HASH_LEN]; /* hash of the last message the signer holds of conv */
	uint64_t n;		   /* its position (0 with head all zeros: none held) */
	uint64_t count;		   /* messages of conv the signer's transcript holds */
	int64_t time_ms;
	sx_sigalg alg;
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
	uint8_t fp[SX_HASH_LEN]; /* the signer's certificate */
} sx_chat_receipt;

/* "sxfer chat receipt v1\0" || conv<2> || signer<2> || head[32] || n u64
 * || count u64 || time_ms i64. */
#define SX_CHAT_RSTMT_MAX (22 + 2 + SX_CHAT_CONV_MAX + 2 + SX_CHAT_NAME_MAX + SX_HASH_LEN + 24)
int sx_chat_receipt_statement(const sx_chat_receipt *r, uint8_t *out, size_t cap, size_t *len,
			      sx_err *err) SX_MUST_CHECK;
int sx_chat_receipt_sign(sx_chat_receipt *r, EVP_PKEY *key, X509 *cert, sx_err *err) SX_MUST_CHECK;
int sx_chat_receipt_verify(const sx_chat_receipt *r, EVP_PKEY *pub, sx_err *err) SX_MUST_CHECK;

/* ---- chat messages in sealed CTRL records (msg.c) ----------------------- */

/* The first byte of a CTRL body: these follow the transfer's types in the
 * same space (engine/wire/sx_wire.h). A connection whose first message is
 * CHAT_JOIN is a chat connection from then on. */
enum {
	SX_MSG_CHAT_JOIN = 0x40,     /* client, first: version, room ("" none) */
	SX_MSG_CHAT_WELCOME = 0x41,  /* server: limits; the room's head */
	SX_MSG_CHAT_POST = 0x42,     /* client: a signed message */
	SX_MSG_CHAT_DELIVER = 0x43,  /* server: a signed message of another author */
	SX_MSG_CHAT_CERT = 0x44,     /* server: an author's chain, before its first DELIVER */
	SX_MSG_CHAT_ACCEPTED = 0x45, /* server: the author's POST entered conv here */
	SX_MSG_CHAT_REFUSED = 0x46,  /* server: the author's POST did not, and why */
	SX_MSG_CHAT_RECEIPT = 0x47,  /* both: a signed receipt */
	SX_MSG_CHAT_WHO = 0x48,	     /* client: who is here? */
	SX_MSG_CHAT_MEMBERS = 0x49,  /* server: the answer */
	SX_MSG_CHAT_NOTICE = 0x4a,   /* server: joined, left, gap */
	SX_MSG_CHAT_BYE = 0x4b,	     /* client: its receipts are sent; the session ends */
};
#define SX_MSG_CHAT_FIRST 0x40
#define SX_MSG_CHAT_LAST  0x4f

/* REFUSED codes: why a POST did not enter its conversation. */
typedef enum sx_chat_why {
	SX_CHAT_OK = 0,
	SX_CHAT_STALE = 1,	/* prev/n are not the conversation's head: sign again */
	SX_CHAT_REPLAY = 2,	/* seq already used (or not the next one) */
	SX_CHAT_TOO_BIG = 3,	/* text over the server's limit */
	SX_CHAT_RATE = 4,	/* messages per second over the limit */
	SX_CHAT_RECIPIENTS = 5, /* too many recipients */
	SX_CHAT_NOT_MEMBER = 6, /* not joined to that room / not in that conversation */
	SX_CHAT_QUEUE_FULL = 7, /* an offline recipient's queue is full */
	SX_CHAT_BAD = 8,	/* signature, author, hash or form */
} sx_chat_why;
const char *sx_chat_why_name(sx_chat_why w); /* "stale", "replay", ... */

/* NOTICE kinds */
enum {
	SX_CHAT_N_JOINED = 1, /* name joined conv (a room) */
	SX_CHAT_N_LEFT = 2,   /* name left conv */
	SX_CHAT_N_HEAD = 3, /* you joined conv: its head is (n, head); the chain goes on from it */
	SX_CHAT_N_GAP = 4,  /* messages of conv up to n were lost before you got them (text: why) */
};

/* One decoded chat message; pointers point into the record body. Which
 * fields are used, by type:
 *   JOIN      version, flags, room, tips (ntips, tips_len: sx_chat_tip_next)
 *   WELCOME   version, max_text, max_to, rate, queue_max; room, n, head
 *             (the room's head when a room was joined; else room "")
 *   POST      post (fp unused)
 *   DELIVER   post (fp set), flags (SX_CHAT_F_QUEUED: waited on the server;
 *             SX_CHAT_F_RESENT: sent again from the server's transcript)
 *   CERT      fp, certs[0..ncerts) (DER, leaf first)
 *   ACCEPTED  conv, seq, n, head (the message's hash), queued (recipients
 *             it waits for)
 *   REFUSED   conv, seq, why, reason; for STALE n, head: the head now
 *   RECEIPT   receipt (fp set by the server when it relays)
 *   WHO       (nothing)
 *   MEMBERS   names (NUL-separated), nnames
 *   NOTICE    kind, conv, name, n, head, reason
 *   BYE       (nothing) */
typedef struct sx_chat_msg {
	uint8_t type;
	uint8_t version;
	uint32_t flags;
	const char *room; /* JOIN, WELCOME: not NUL terminated */
	size_t room_len;
	/* JOIN: ntips times (conv<2>, n u64) as they travel (sx_chat_tip_put,
	 * sx_chat_tip_next): for each direct conversation the client's
	 * transcript holds, the position of the last message held. Sorted
	 * byte-wise by conv, each once, n >= 1. */
	const uint8_t *tips;
	size_t tips_len;
	uint16_t ntips;
	uint32_t max_text, max_to, rate, queue_max;
	sx_chat_post post;
	uint8_t fp[SX_HASH_LEN];
	const uint8_t *certs[SX_CHAT_CHAIN_MAX];
	size_t cert_len[SX_CHAT_CHAIN_MAX];
	size_t ncerts;
	char conv[SX_CHAT_CONV_MAX + 1]; /* ACCEPTED, REFUSED, NOTICE */
	uint64_t seq, n;
	uint8_t head[SX_HASH_LEN];
	uint32_t queued;
	uint8_t why;
	const char *reason; /* REFUSED, NOTICE: not NUL terminated */
	size_t reason_len;
	sx_chat_receipt receipt;
	const char *names; /* MEMBERS */
	size_t names_len;
	uint32_t nnames;
	uint8_t kind;			 /* NOTICE */
	char name[SX_CHAT_NAME_MAX + 1]; /* NOTICE */
} sx_chat_msg;

#define SX_CHAT_F_QUEUED 0x1u
#define SX_CHAT_F_RESENT 0x2u /* a message the client said it lacks (JOIN's tips) */

/* One tip of a JOIN appended to w: the bytes tips points to. The caller
 * counts them (ntips) and puts them sorted by conv, each once. */
void sx_chat_tip_put(sx_wbuf *w, const char *conv, uint64_t n);
/* Walks a decoded JOIN's tips: *at 0 before the first; returns 1 with the
 * next tip (conv NUL terminated), 0 after the last. */
int sx_chat_tip_next(const sx_chat_msg *m, size_t *at, char conv[SX_CHAT_CONV_MAX + 1],
		     uint64_t *n);

/* Encodes into w (check w->overflow). sx_chat_msg is large: keep it off
 * small stacks (heap, or one per connection). */
void sx_chat_msg_encode(const sx_chat_msg *m, sx_wbuf *w);
/* Strict: a short or long body, a bad name or conversation, an unknown
 * type or kind is SX_E_INTEGRITY naming the field. */
int sx_chat_msg_decode(const uint8_t *body, size_t len, sx_chat_msg *m, sx_err *err) SX_MUST_CHECK;
/* The most bytes one encoded chat message can take (a POST with the
 * largest text): a record body bound for both sides. */
#define SX_CHAT_MSG_MAX (SX_CHAT_TEXT_MAX + 2 * SX_CHAT_CONV_MAX + 4096)

/* ---- transcript lines (line.c) ------------------------------------------ */

/* A transcript is a file of lines, each one JSON object (RFC 8259) with its
 * keys in a fixed order, written and read only by this code (strict: an
 * unknown, missing, repeated or misplaced key is an error), so that jq and
 * grep read it too. docs/SIGNATURES.md "Transcripts" lists the kinds:
 *   transcript  the first line: whose it is ("owner"), its role
 *   cert        an author's chain, before the first line that names its fp
 *   head        the server's word where a conversation's chain starts here
 *   msg         one signed message, as relayed (and its hash)
 *   gap         the server's word that messages up to n were lost
 *   receipt     a signed receipt */
typedef enum sx_chat_kind {
	SX_CHAT_L_TRANSCRIPT = 1,
	SX_CHAT_L_CERT,
	SX_CHAT_L_HEAD,
	SX_CHAT_L_MSG,
	SX_CHAT_L_GAP,
	SX_CHAT_L_RECEIPT,
} sx_chat_kind;

typedef struct sx_chat_line {
	sx_chat_kind kind;
	/* TRANSCRIPT */
	char owner[SX_CHAT_NAME_MAX + 1];
	bool server; /* "role": "server" or "participant" */
	int64_t time_ms;
	/* CERT: fp, and the chain (owned: certs as DER) */
	uint8_t fp[SX_HASH_LEN];
	uint8_t *certs[SX_CHAT_CHAIN_MAX];
	size_t cert_len[SX_CHAT_CHAIN_MAX];
	size_t ncerts;
	/* HEAD, GAP: conv, n, head (HEAD), reason (GAP) */
	char conv[SX_CHAT_CONV_MAX + 1];
	uint64_t n;
	uint8_t head[SX_HASH_LEN];
	char reason[SX_REASON_MAX + 1];
	/* MSG: post (text owned: text_buf); hash as the line states it */
	sx_chat_post post;
	uint8_t *text_buf;
	uint8_t hash[SX_HASH_LEN];
	/* RECEIPT */
	sx_chat_receipt receipt;
} sx_chat_line;

/* One line (no newline; the writer adds "\n"); *out malloc'd, NUL
 * terminated, at most SX_CHAT_LINE_MAX bytes. MSG lines take the hash from
 * line->hash (compute it with sx_chat_post_hash). */
int sx_chat_line_encode(const sx_chat_line *l, char **out, size_t *len, sx_err *err) SX_MUST_CHECK;
/* Parses one line (without its newline). SX_E_INTEGRITY naming the key.
 * Free with sx_chat_line_free (also after a failure). */
int sx_chat_line_decode(const char *s, size_t len, sx_chat_line *l, sx_err *err) SX_MUST_CHECK;
void sx_chat_line_free(sx_chat_line *l);

/* ---- the verifier (ver.c) ------------------------------------------------ */

/* Everything known about the conversations so far: certificates by
 * fingerprint, each conversation's chain (the hash of every message from
 * where the chain starts here, its position, its author and seq), each
 * author's last seq per conversation, and the owner's own receipts.
 * Each call checks one item against that state and, only when it passes,
 * adds it; a failed call changes nothing. */
typedef struct sx_chat_ver sx_chat_ver;

/* pol: the validation policy certificates are checked with (borrowed; its
 * CRL may be swapped by the caller between calls). owner: whose transcript
 * this is ("" or NULL until a TRANSCRIPT line says so). */
int sx_chat_ver_new(sx_chat_ver **out, const sx_policy *pol, const char *owner,
		    sx_err *err) SX_MUST_CHECK;
void sx_chat_ver_free(sx_chat_ver *v);

/* A chain for fp: leaf's fingerprint must be fp, the policy must accept
 * it (role SX_ROLE_SIGNER; SX_E_AUTH with the policy's reason), its CN
 * must be a chat name. Adding a known fp again is a no-op. */
int sx_chat_ver_cert(sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN], STACK_OF(X509) * chain,
		     sx_err *err) SX_MUST_CHECK;
/* Same, from DER certificates (CERT message or line). */
int sx_chat_ver_cert_der(sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN], const uint8_t *const *certs,
			 const size_t *lens, size_t n, sx_err *err) SX_MUST_CHECK;
bool sx_chat_ver_has_cert(const sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN]);
/* The chain of a known fp (borrowed), or NULL. */
STACK_OF(X509) * sx_chat_ver_chain(const sx_chat_ver *v, const uint8_t fp[SX_HASH_LEN]);

/* A message, in this order, each failure with its reason:
 *   fp is a known certificate                       INTEGRITY
 *   author == that certificate's CN                  INTEGRITY
 *   conv canonical; a direct conv names the author   INTEGRITY
 *   text hash, signature                             INTEGRITY
 *   seq: not at or below the author's last in conv   INTEGRITY "replayed: ..." (why REPLAY)
 *   chain: when conv has a head here, n == head+1    INTEGRITY, why STALE
 *          and prev == the head's hash
 *          (n == 1 needs prev all zeros)
 *   seq: with the chain unbroken (no HEAD or GAP)    INTEGRITY "alice's message 2 in
 *        since the author's last message,             #ops is missing", why REPLAY
 *        seq == last + 1
 * *why (may be NULL) gets the REFUSED code a server answers with. The
 * message's hash goes to hash (may be NULL). commit false: check only. */
int sx_chat_ver_msg(sx_chat_ver *v, const sx_chat_post *p, bool commit, sx_chat_why *why,
		    uint8_t hash[SX_HASH_LEN], sx_err *err) SX_MUST_CHECK;
/* HEAD (head non-NULL): the chain of conv goes on from message n whose
 * hash is head: the next message must be n+1 naming head (a room joined
 * midway; the server's word, which that next signed message confirms or
 * refutes). GAP (head NULL): messages up to n were lost before they got
 * here: the next message must be n+1 and may name any prev. Either one is
 * refused (INTEGRITY) when n is behind the message held last, or equal to
 * it with another hash. */
int sx_chat_ver_head(sx_chat_ver *v, const char *conv, uint64_t n, const uint8_t *head,
		     sx_err *err) SX_MUST_CHECK;
/* A verifier that holds every conversation from its first message (the
 * server's, and `verify --transcript` of a server's transcript): the
 * first message of a conversation must be n == 1 and an author's first
 * seq 1. Otherwise a conversation's first message held may be at any
 * position (the transcript starts midway) and an author's first seq any. */
void sx_chat_ver_set_strict(sx_chat_ver *v, bool strict);
/* A receipt: fp known, signer == its CN, signature; then against the
 * chain held here:
 *   (n, head) is a message held, or n == 0 with a zero head and nothing held
 *     (else INTEGRITY: "bob's receipt of #ops names message 7 (hash ..),
 *     which this transcript does not hold: the transcripts differ", or
 *     "... ends at message 9; this transcript ends at 7: messages are
 *     missing")
 *   the owner's own receipt: head is the last message held, count the
 *     messages held of conv */
int sx_chat_ver_receipt(sx_chat_ver *v, const sx_chat_receipt *r, sx_err *err) SX_MUST_CHECK;

/* The head of conv as held here: n (0: nothing held) and its hash. */
void sx_chat_ver_tip(const sx_chat_ver *v, const char *conv, uint64_t *n,
		     uint8_t head[SX_HASH_LEN]);
/* Messages of conv held here (what an owner's receipt counts). */
uint64_t sx_chat_ver_count(const sx_chat_ver *v, const char *conv);
/* The last seq of author in conv held here (0: none). */
uint64_t sx_chat_ver_last_seq(const sx_chat_ver *v, const char *conv, const char *author);
/* Conversations held, for receipts at a session's end: *at 0 first;
 * returns the next conv id (borrowed) or NULL. */
const char *sx_chat_ver_next_conv(const sx_chat_ver *v, size_t *at);

/* One transcript line through the verifier: decoded, then by kind:
 * TRANSCRIPT must be the first line and only there (sets the owner);
 * CERT -> sx_chat_ver_cert_der; HEAD/GAP -> sx_chat_ver_head; MSG ->
 * sx_chat_ver_msg (and the line's hash must be the message's);
 * RECEIPT -> sx_chat_ver_receipt. l (may be NULL) gets the decoded line
 * (free it). */
int sx_chat_ver_line(sx_chat_ver *v, const char *s, size_t len, sx_chat_line *l,
		     sx_err *err) SX_MUST_CHECK;

/* A whole transcript file's text: every line in order; on the first
 * failure, *bad_line is its number (1-based) and err says why (AUTH: a
 * certificate, exit 3; INTEGRITY: anything else, exit 4; a last line
 * without its newline is a cut line: INTEGRITY). On success *lines, *msgs,
 * *receipts count what it holds. */
typedef struct sx_chat_summary {
	size_t lines, msgs, receipts, convs, gaps;
	char owner[SX_CHAT_NAME_MAX + 1];
	bool server;
} sx_chat_summary;
int sx_chat_verify_text(const char *text, size_t len, const sx_policy *pol, size_t *bad_line,
			sx_chat_summary *sum, sx_err *err) SX_MUST_CHECK;

#endif
