/* engine/chat: the hub's private state, shared by hub.c (the thread, the
 * ring, a connection's input and output), hub_msg.c (what each chat
 * message does), hub_queue.c (what waits for offline identities),
 * hub_store.c (the transcript, certificates, the rate bucket) and
 * hub_sync.c (the transcript's index; what a JOIN's tips say is missing). */
#ifndef SX_CHAT_HUB_INT_H
#define SX_CHAT_HUB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat/sx_chat.h"
#include "engine/chat/sx_chat_hub.h"

#define HUB_OUT_MAX  (4u << 20) /* sealed bytes waiting for a peer that does not read */
#define HUB_GRACE_MS 5000	/* a closing peer gets this long to take its last records */
#define HUB_TICK_MS  250
#define HUB_CRL_MS   1000
/* One more for a counter of the hub (its thread writes, a scrape reads). */
#define HUB_COUNT(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define HUB_SWEEP_MS	(3600 * 1000) /* wholly expired queues are looked for */
#define HUB_IO_DEPTH	1024
#define HUB_GAPS_MAX	64 /* conversations with a gap in one queue delivery */
#define HUB_MSG_EXTRA	(2u * SX_CHAT_CONV_MAX + 4096) /* a chat message beyond its text */
/* the largest message the hub sends beyond a text: a CERT, MEMBERS */
#define HUB_OUT_EXTRA                                                                              \
	(SX_CHAT_CHAIN_MAX * (SX_CHAT_CERT_MAX + 4) + SX_CHAT_WHO_MAX * (SX_CHAT_NAME_MAX + 1) +   \
	 4096)

enum { HOP_EFD = 1, HOP_RECV, HOP_SEND };

/* ---- the rate bucket (hub_store.c) --------------------------------------- */

/* rate tokens a second, at most 2 * rate held; in thousandths of a token. */
typedef struct hub_bucket {
	uint64_t milli;
	uint64_t last_ns;
	bool primed;
} hub_bucket;
bool hub_rate_take(hub_bucket *b, uint32_t rate, uint64_t now_ns);

/* ---- the queues (hub_queue.c) -------------------------------------------- */

typedef struct hub_queue {
	char name[SX_CHAT_NAME_MAX + 1];
	int64_t *times; /* queued time (unix ms) of each entry waiting, oldest first */
	size_t n, cap;
	uint8_t (*fps)[SX_HASH_LEN]; /* certificates its file holds */
	size_t nfps, fcap;
	bool busy;	 /* delivered to a connection: its file goes once the sends complete */
	size_t busy_len; /* the bytes of the file that delivery read */
} hub_queue;

typedef struct hub_queues {
	int dirfd; /* DIR/queue */
	hub_queue *q;
	size_t n, cap;
	uint32_t max;
	int64_t age_ms;
} hub_queues;

int hub_q_open(hub_queues *qs, const char *dir, uint32_t max, uint64_t age_s,
	       sx_err *err) SX_MUST_CHECK;
void hub_q_close(hub_queues *qs);
hub_queue *hub_q_find(hub_queues *qs, const char *name);
/* Removes the files of queues whose every entry is older than the age
 * (an identity that did not connect in time; one that has a transcript of
 * the conversation gets what it lacks from the server's transcript when it
 * does: catching up). Returns how many. */
size_t hub_q_sweep(hub_queues *qs, int64_t now_ms);
/* Entries of q waiting and not expired at now. */
size_t hub_q_live(const hub_queues *qs, const hub_queue *q, int64_t now_ms);
/* Is there room for one more entry for name? Expired entries are first
 * replaced by GAP lines (the file rewritten) when that makes room.
 * *waiting: the entries waiting. */
int hub_q_room(hub_queues *qs, const char *name, int64_t now_ms, bool *room, size_t *waiting,
	       sx_err *err) SX_MUST_CHECK;
/* Appends an entry (a transcript line: msg or receipt), preceded by
 * cert_line when the file does not hold fp yet; flushed (fdatasync). */
int hub_q_push(hub_queues *qs, const char *name, const uint8_t fp[SX_HASH_LEN],
	       const char *cert_line, const char *line, int64_t now_ms, sx_err *err) SX_MUST_CHECK;
/* Each line of name's queue in order: cb gets the decoded line, when it
 * was queued and whether it expired (at now). The queue is then busy. */
typedef int (*hub_q_cb)(void *ctx, const sx_chat_line *l, int64_t t, bool expired, sx_err *err);
int hub_q_read(hub_queues *qs, const char *name, int64_t now_ms, hub_q_cb cb, void *ctx,
	       sx_err *err) SX_MUST_CHECK;
/* The sends of a delivered queue completed: its file goes (what was
 * queued since the delivery read it stays). */
void hub_q_done(hub_queues *qs, const char *name);
/* Its connection ended first: the file stays, delivered again next time. */
void hub_q_abort(hub_queues *qs, const char *name);

/* ---- catching up a direct conversation (hub_sync.c) ---------------------- */

/* Where each message of each conversation is in the server's transcript:
 * per conversation (a hash table by id), the offset and length of the MSG
 * line at each position 1, 2, 3, ... (the transcript is strict: every
 * position from 1 on). Built while the transcript is read at start,
 * extended at every append. */
typedef struct hub_ixpos {
	uint64_t off;
	uint32_t len; /* without the newline */
} hub_ixpos;

typedef struct hub_ixc {
	char *conv; /* NULL: an empty slot */
	uint64_t hash;
	hub_ixpos *pos; /* pos[n - 1]: message n */
	size_t n, cap;
} hub_ixc;

typedef struct hub_ix {
	hub_ixc *slots;
	size_t cap, used; /* cap: 0 or a power of two */
} hub_ix;

/* Message n of conv at off (len bytes): n must be the next position. */
int hub_ix_add(hub_ix *ix, const char *conv, uint64_t n, uint64_t off, size_t len,
	       sx_err *err) SX_MUST_CHECK;
/* Message n of conv, or NULL. */
const hub_ixpos *hub_ix_get(const hub_ix *ix, const char *conv, uint64_t n);
void hub_ix_free(hub_ix *ix);

/* What a JOIN's tips say the client holds, and what was sent to it again:
 * per direct conversation (in the tips' order, sorted), queued entries at
 * or below upto are not delivered again. */
typedef struct hub_skip {
	char *conv;
	uint64_t upto;
} hub_skip;

typedef struct hub_sync {
	hub_skip *s;
	size_t n, cap;
} hub_sync;

/* Position up to which c has conv after its catch-up (0: nothing known). */
uint64_t hub_sync_upto(const hub_sync *s, const char *conv);
void hub_sync_free(hub_sync *s);

/* ---- connections (hub.c) ------------------------------------------------- */

typedef struct hconn {
	unsigned idx, id;
	int fd;
	char addr[64];
	sx_link link;
	char name[SX_CHAT_NAME_MAX + 1];
	uint8_t fp[SX_HASH_LEN];	 /* sx_cert_fp of its leaf */
	char room[SX_CHAT_NAME_MAX + 2]; /* "#room", "" when none joined */
	bool joined;
	uint8_t *join;
	size_t join_len;
	uint8_t *rx;
	size_t rx_cap;
	bool recv_posted, sending, closing, shut, cancelled;
	unsigned inflight;
	uint8_t *out, *fly; /* sealed records: waiting, and in flight */
	size_t out_len, out_cap, fly_len, fly_cap, out_allow;
	uint64_t sent, queued_bytes; /* bytes sent, and sealed since it began */
	uint64_t q_until;	     /* its queue's file goes once sent reaches this */
	bool q_busy;
	uint8_t (*certs)[SX_HASH_LEN]; /* authors whose CERT it was sent */
	size_t ncerts, certs_cap;
	char **receipted; /* conversations whose receipt it sent (one each) */
	size_t nreceipted, receipted_cap;
	uint64_t posts, delivered, refused;
	uint64_t t0, deadline;
	sx_err why; /* how it ended */
	void (*on_end)(void *ctx);
	void *end_ctx;
	/* test hook (reorder): a DELIVER body held back until its next one */
	uint8_t *held;
	size_t held_len;
} hconn;

typedef struct hub_ident {
	char name[SX_CHAT_NAME_MAX + 1];
	hub_bucket bucket;
	unsigned conns;
} hub_ident;

typedef struct hub_pend {
	hconn *c;
	struct hub_pend *next;
} hub_pend;

typedef enum {
	HOSTILE_NONE = 0,
	HOSTILE_DROP,
	HOSTILE_ALTER,
	HOSTILE_REPLAY,
	HOSTILE_REORDER,
	HOSTILE_SKIPHEAD, /* dropped, and a NOTICE head naming it sent instead */
	HOSTILE_LEAK,
	HOSTILE_MUTE,
	/* the K-th POST kept has no ACCEPTED */ /* every message and receipt relayed to every
						    connection */
} hub_hostile;

struct sx_chat_hub {
	sx_chat_stats st; /* serve --metrics */
	sx_chat_hub_cfg cfg;
	sx_chat_hub_env env;
	char dir[4096];
	sx_io *io;
	pthread_t th;
	bool started;
	int ready_rc;
	sx_err ready_err;
	bool ready;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	hub_pend *pend; /* under mu */
	atomic_bool quit;
	int efd;
	uint64_t ebuf;
	bool eread;
	hconn **conns;
	size_t nconns, conns_cap;
	hub_ident *ids;
	size_t nids, ids_cap;
	sx_policy pol;
	X509_CRL *crl; /* the reference pol.crl is (owned) */
	uint64_t crl_ns;
	uint64_t sweep_ns; /* the last sweep of expired queues (0: none yet) */
	sx_chat_ver *ver;
	hub_ix ix; /* the transcript's MSG lines */
	int tr_fd;
	char tr_path[4200];
	hub_queues qs;
	sx_chat_msg *min, *mout; /* one decoded message, one to encode */
	uint8_t *body;		 /* an encoded message */
	size_t body_cap;
	uint64_t delivers; /* DELIVERs sent, all connections (test hook) */
	hub_hostile hostile;
	uint64_t hostile_k;
	uint64_t posts; /* POSTs kept (the test hook mute) */
	bool stopping;
};

/* hub.c */
/* A message to c: encoded, sealed, queued for sending. */
int hub_send(sx_chat_hub *h, hconn *c, const sx_chat_msg *m, sx_err *err) SX_MUST_CHECK;
/* A record of another type (EOS) or a body already encoded. */
int hub_send_rec(sx_chat_hub *h, hconn *c, uint8_t type, const uint8_t *body, size_t len,
		 sx_err *err) SX_MUST_CHECK;
/* c ends: why is sent as ERROR first when send_error. */
void hub_end(sx_chat_hub *h, hconn *c, const sx_err *why, bool send_error);
/* EOS, then c closes once it is sent. */
void hub_bye(sx_chat_hub *h, hconn *c);
hub_ident *hub_ident_get(sx_chat_hub *h, const char *name);
/* Is any live connection of name there? */
bool hub_online(const sx_chat_hub *h, const char *name);

/* hub_msg.c */
bool hub_in_room(const hconn *o, const char *room);
/* Is o a live connection of a member of conv (a room: joined to it)? */
bool hub_member_conn(const sx_chat_hub *h, const hconn *o, const char *conv);
/* DELIVER p to c (the author's CERT first, once per connection); the
 * test hook SXFER_TEST_HOSTILE_CHAT misbehaves here. */
int hub_deliver(sx_chat_hub *h, hconn *c, const sx_chat_post *p, uint32_t flags,
		sx_err *err) SX_MUST_CHECK;
int hub_on_join(sx_chat_hub *h, hconn *c, sx_err *err) SX_MUST_CHECK;
/* A NOTICE to c (head, reason may be NULL). */
int hub_notice(sx_chat_hub *h, hconn *c, uint8_t kind, const char *conv, const char *name,
	       uint64_t n, const uint8_t *head, const char *reason, sx_err *err) SX_MUST_CHECK;

/* hub_sync.c: the JOIN's tips (decoded in h->min): for each direct
 * conversation of c's identity the server holds beyond the tip, the
 * messages c lacks, read from the transcript (at most queue_max: a NOTICE
 * gap first when more are missing), DELIVER with SX_CHAT_F_RESENT; sync
 * gets what c holds now, for the queue's delivery. */
int hub_catch_up(sx_chat_hub *h, hconn *c, hub_sync *sync, sx_err *err) SX_MUST_CHECK;
/* c leaves (its room's members are told). */
void hub_on_leave(sx_chat_hub *h, hconn *c);

/* hub_post.c: one chat message from c (decoded in h->min) */
int hub_on_msg(sx_chat_hub *h, hconn *c, sx_err *err) SX_MUST_CHECK;
/* hub_post.c: the CRL changed: peers it revokes end, told why. */
void hub_crl_check(sx_chat_hub *h);

/* hub_store.c */
int hub_tr_open(sx_chat_hub *h, sx_err *err) SX_MUST_CHECK;
void hub_tr_close(sx_chat_hub *h);
/* One line appended (one write, then fdatasync); *keep (may be NULL)
 * gets the line as written (malloc'd, no newline). */
int hub_tr_append(sx_chat_hub *h, const sx_chat_line *l, char **keep, sx_err *err) SX_MUST_CHECK;
/* The verifier knows c's certificate (the transcript's CERT line first). */
int hub_cert_known(sx_chat_hub *h, hconn *c, sx_err *err) SX_MUST_CHECK;
/* The CERT line of fp (malloc'd), from the verifier's chain. */
int hub_cert_line(sx_chat_hub *h, const uint8_t fp[SX_HASH_LEN], char **line,
		  sx_err *err) SX_MUST_CHECK;
/* CERT of fp to c unless it was sent on c already. */
int hub_cert_to(sx_chat_hub *h, hconn *c, const uint8_t fp[SX_HASH_LEN], sx_err *err) SX_MUST_CHECK;
int64_t hub_now_ms(void);

#endif
