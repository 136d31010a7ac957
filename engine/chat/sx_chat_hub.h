/* engine/chat: the chat hub of sxfer serve --chat (docs/PROTOCOL.md "Chat").
 *
 * One thread with its own sx_io ring (of the server's backend) relays
 * between the chat connections the server's receive loops hand to it: a
 * connection whose first CTRL message is CHAT_JOIN leaves its loop with its
 * socket and record keys (sx_link_move) and is the hub's until it ends.
 * The hub checks every POST (limits, membership, the author's signature and
 * the conversation's chain, with the one verifier of engine/chat), appends
 * it to the server's transcript before it relays it, and keeps what waits
 * for an offline member of a direct conversation in that member's queue.
 *
 * Files (under cfg.dir, default sx_state_dir("chat-server"), 0700):
 *   transcript.jsonl   the server's transcript (role server): read through
 *                      a strict verifier at start, held with flock
 *   queue/NAME.jsonl   what waits for NAME (format: hub_queue.c) */
#ifndef SX_CHAT_HUB_H
#define SX_CHAT_HUB_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/channel/sx_link.h"
#include "engine/chat/sx_chat.h"
#include "engine/io/sx_io.h"
#include "pki/sx_pki.h"

#define SX_CHAT_RATE_DEFAULT	  10u /* messages per second per identity */
#define SX_CHAT_MAX_TO_DEFAULT	  32u /* members of a direct conversation */
#define SX_CHAT_QUEUE_DEFAULT	  1000u
#define SX_CHAT_QUEUE_AGE_DEFAULT (7ull * 86400) /* seconds */
#define SX_CHAT_RATE_MAX	  100000u
#define SX_CHAT_QUEUE_MAX	  1000000u

/* serve --chat and its options (sx_serve_cfg.chat; NULL: chat is off). */
typedef struct sx_chat_hub_cfg {
	const char *dir;      /* NULL: sx_state_dir("chat-server") */
	uint32_t max_text;    /* bytes of one message's text, at most SX_CHAT_TEXT_MAX */
	uint32_t rate;	      /* messages per second per identity (a bucket of twice that) */
	uint32_t max_to;      /* members of a direct conversation */
	uint32_t queue_max;   /* messages waiting for one offline identity */
	uint64_t queue_age_s; /* how long they wait */
} sx_chat_hub_cfg;

/* The defaults above. */
void sx_chat_hub_cfg_init(sx_chat_hub_cfg *c);

typedef struct sx_chat_hub sx_chat_hub;

typedef struct sx_chat_hub_env {
	const sx_chat_hub_cfg *cfg;
	sx_io_kind io;
	const sx_identity *id; /* the server's: owner of the transcript, its trust anchors */
	X509_CRL *crl;	       /* the CRL at start (borrowed; NULL: id->crl) */
	/* The CRL in use now, as a new reference (NULL: none), asked about
	 * once a second: connected peers revoked since are ended, told why.
	 * NULL: the CRL at start only. */
	X509_CRL *(*crl_now)(void *ctx);
	void *crl_ctx;
	volatile sig_atomic_t *stop; /* serve's stop flag (NULL: none) */
} sx_chat_hub_env;

/* Opens the folder and the transcript (verified: a transcript that does
 * not verify is an error naming its line), the queues, the ring; starts the
 * thread. */
int sx_chat_hub_start(sx_chat_hub **out, const sx_chat_hub_env *env, sx_err *err) SX_MUST_CHECK;
/* Ends every connection (told the server is stopping), stops and joins
 * the thread, frees. NULL: nothing. */
void sx_chat_hub_stop(sx_chat_hub *h);

/* What the hub did, for serve --metrics (docs/METRICS.md): written by the
 * hub's thread, read at a scrape by the metrics thread. */
typedef struct sx_chat_stats {
	_Atomic uint64_t conns;			   /* chat connections now */
	_Atomic uint64_t accepted;		   /* messages accepted: kept and relayed */
	_Atomic uint64_t delivered;		   /* DELIVERs sent: live, queued, resent */
	_Atomic uint64_t queued;		   /* entries queued for offline members */
	_Atomic uint64_t receipts;		   /* receipts kept */
	_Atomic uint64_t refused[SX_CHAT_BAD + 1]; /* POSTs refused, by REFUSED code */
} sx_chat_stats;

/* The hub's counters (valid until sx_chat_hub_stop). */
const sx_chat_stats *sx_chat_hub_stats(const sx_chat_hub *h);

/* A connection handed to the hub. */
typedef struct sx_chat_hand {
	int fd;
	sx_link *link; /* ready; its keys are moved out (sx_link_move) on success */
	const char *addr;
	unsigned id;	     /* the connection's number in the server's log */
	const uint8_t *join; /* the CHAT_JOIN body (copied) */
	size_t join_len;
	/* Called once when the connection ends (on the hub's thread, or in
	 * sx_chat_hub_stop): the server's accounting lets go of it. */
	void (*on_end)(void *ctx);
	void *end_ctx;
} sx_chat_hand;

/* Takes fd and the link's keys (on failure: neither; on_end not called). */
int sx_chat_hub_add(sx_chat_hub *h, const sx_chat_hand *hd, sx_err *err) SX_MUST_CHECK;

#endif
