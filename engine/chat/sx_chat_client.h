/* engine/chat: the participant's side of a chat session (`sxfer chat`):
 * connects to `sxfer serve --chat`, joins, posts each line of its input
 * as one signed message (one at a time), verifies every message, receipt
 * and notice the server relays before it shows or keeps it, keeps the
 * transcript, and at the end signs a receipt for every conversation the
 * session touched (docs/PROTOCOL.md "Chat"). */
#ifndef SX_CHAT_CLIENT_H
#define SX_CHAT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/sx_err.h"
#include "engine/io/sx_io.h"
#include "pki/sx_pki.h"

typedef struct sx_chat_cfg {
	const char *host, *port;
	const char *server_name; /* NULL: host */
	const sx_identity *id;	 /* key, chain, anchors (borrowed) */
	X509_CRL *crl;		 /* NULL: id->crl */
	const char *const *to;	 /* --to: the recipients of a direct conversation */
	size_t nto;
	const char *room;	/* --room: joined, and where lines go without --to */
	const char *transcript; /* NULL: sx_state_dir("chat")/<NAME>.jsonl */
	bool json;		/* one JSON object per line on out */
	sx_io_kind io;
	int timeout_ms;	  /* connecting and joining, and each message's answer; 0: 30 s */
	int wait_ms;	  /* after the input ends, keep receiving this long */
	uint64_t count;	  /* 0, or end after this many messages from others */
	int in_fd;	  /* the lines to post (standard input) */
	FILE *out;	  /* what is received (standard output) */
	FILE *diag;	  /* refusals without --json (standard error) */
	bool interactive; /* a terminal on both: the line editor */
} sx_chat_cfg;

typedef struct sx_chat_result {
	uint64_t posted;   /* messages accepted by the server */
	uint64_t refused;  /* lines refused (by the server, or too long) */
	uint64_t received; /* messages of others, verified */
	uint64_t receipts; /* receipts of others, verified */
	const char *io_backend;
	char transcript[4096];
} sx_chat_result;

/* The whole session. 0 when it ended as it should (res->refused may
 * still be non-zero: the caller's exit code 1); -1 with err: SX_E_NET
 * (connection), SX_E_AUTH (a certificate), SX_E_INTEGRITY (a message,
 * receipt or notice that does not verify, or the transcript), SX_E_IO
 * (the transcript file, the input). */
int sx_chat_run(const sx_chat_cfg *cfg, sx_chat_result *res, sx_err *err) SX_MUST_CHECK;

#endif
