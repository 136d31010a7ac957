/* The participant's session (sx_chat_client.h), shared by its files:
 * client.c (connection, event loop, sending), client_rx.c (what the
 * server sends), client_post.c (lines to messages, the end's receipts),
 * client_file.c (the transcript), client_tty.c (the terminal). */
#ifndef SX_CHAT_CLIENT_INT_H
#define SX_CHAT_CLIENT_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <termios.h>

#include "engine/channel/sx_channel.h"
#include "engine/channel/sx_link.h"
#include "engine/chat/sx_chat.h"
#include "engine/chat/sx_chat_client.h"
#include "engine/io/sx_io.h"

/* Operations in flight on the ring, by tag. */
enum { OP_HS_SEND = 1, OP_RECV, OP_SEND, OP_IN, OP_SIG };

#define CHAT_STALE_TRIES 5     /* signing again after REFUSED stale */
#define CHAT_BYE_WAIT_MS 10000 /* after BYE: the server's end of stream */
#define CHAT_CONVS_MAX	 4096  /* conversations one session touches */
#define CHAT_EDIT_MAX	 (64u << 10)
#define CHAT_IN_READ	 (64u << 10)

typedef struct chat_buf {
	uint8_t *p;
	size_t len, cap;
} chat_buf;

/* The terminal: raw mode, the line being typed. */
typedef struct chat_tty {
	bool on;
	struct termios saved;
	char prompt[96];
	char *edit; /* CHAT_EDIT_MAX bytes */
	size_t edit_len;
	int esc; /* 0, or inside an escape sequence (1 after ESC, 2 after ESC [) */
} chat_tty;

typedef enum chat_phase {
	PH_HS,	 /* the handshake */
	PH_JOIN, /* JOIN sent, waiting for WELCOME */
	PH_RUN,	 /* lines and messages */
	PH_BYE,	 /* receipts and BYE sent: waiting for the server's end */
	PH_DONE,
} chat_phase;

typedef struct chat_client {
	const sx_chat_cfg *cfg;
	sx_chat_result *res;
	char me[SX_CHAT_NAME_MAX + 1];
	uint8_t my_fp[SX_HASH_LEN];
	char post_conv[SX_CHAT_CONV_MAX + 1]; /* where lines go ("": nowhere) */
	sx_policy pol;
	sx_chat_ver *ver;
	chat_phase phase;

	/* the connection */
	sx_chan_ctx *ctx;
	sx_io *io;
	int sock;
	sx_link link;
	uint8_t *rx;
	size_t rx_cap;
	bool recv_busy, closed;
	chat_buf fly, next; /* sealed records: in flight, and queued behind */
	bool send_busy;
	uint32_t max_text; /* the server's (WELCOME) */
	bool room_head;	   /* the room's NOTICE head came */
	uint32_t rate;	   /* the server's messages per second (WELCOME; 0: none) */
	double tokens;	   /* posts this side may send now, at most rate */
	uint64_t tok_ns;   /* when tokens was last topped up */
	uint64_t pace_ns;  /* the next post waits until then (0: it need not) */

	/* the input */
	uint8_t *in; /* lines not yet posted */
	size_t in_len, in_cap;
	bool in_busy, in_eof, in_skip; /* in_skip: dropping an overlong line's rest */
	size_t in_skip_len;
	bool quit; /* /quit, Ctrl-C, Ctrl-D, a signal, --count reached */
	int sigfd;
	sigset_t oldmask;
	bool sig_busy;
	struct signalfd_siginfo si;
	chat_tty tty;
	uint64_t wait_end_ns; /* --wait: 0 until the input ended */

	/* the message in flight (stop-and-wait) */
	bool post_busy;
	sx_chat_post *post;
	uint8_t *post_text;
	size_t post_text_len;
	unsigned stale_tries;
	uint64_t post_end_ns; /* the answer to the POST in flight is due by then */
	int replay_hook;      /* test builds: 1 the next ACCEPTED post is sent again, 2 it was */
	uint64_t seq_next;    /* the seq the server expects (REFUSED replay), 0: unknown */

	/* scratch: one decoded message, one to encode, one transcript line */
	sx_chat_msg *m_in, *m_out;
	sx_chat_line *line;

	/* the transcript */
	int tfd;
	char tpath[4096];

	/* conversations the session sent or received in: receipts at the end */
	char **convs;
	size_t nconvs, convs_cap;
	uint64_t bye_end_ns;
} chat_client;

/* client.c */
int chat_send(chat_client *c, const sx_chat_msg *m, sx_err *err) SX_MUST_CHECK;
int64_t chat_now_ms(void);

/* Paces the posts to the server's rate: true when one may go now (and
 * takes its token), else sets c->pace_ns. */
bool chat_pace(chat_client *c);
/* --timeout: connecting and joining, and each message's answer (30 s). */
int chat_timeout_ms(const chat_client *c);

/* client_rx.c: one opened CTRL record from the server */
int chat_on_record(chat_client *c, const uint8_t *pt, size_t len, sx_err *err) SX_MUST_CHECK;
int chat_touch(chat_client *c, const char *conv, sx_err *err) SX_MUST_CHECK;

/* client_post.c */
int chat_next_line(chat_client *c, sx_err *err) SX_MUST_CHECK;
int chat_on_accepted(chat_client *c, const sx_chat_msg *m, sx_err *err) SX_MUST_CHECK;
int chat_on_refused(chat_client *c, const sx_chat_msg *m, sx_err *err) SX_MUST_CHECK;
int chat_receipts(chat_client *c, sx_err *err) SX_MUST_CHECK;
void chat_refused_local(chat_client *c, const char *why, const char *reason);

/* client_file.c */
int chat_file_open(chat_client *c, sx_err *err) SX_MUST_CHECK;
void chat_file_close(chat_client *c);
/* Appends l (already through the verifier) and, with --json, prints it. */
int chat_file_append(chat_client *c, const sx_chat_line *l, sx_err *err) SX_MUST_CHECK;
/* The own chain as a CERT line, once, before the first own line naming it. */
int chat_own_cert(chat_client *c, sx_err *err) SX_MUST_CHECK;
/* JOIN's tips: (conv, n) of each direct conversation the transcript holds
 * (n > 0), sorted, in at most budget bytes (*tips malloc'd, or NULL). */
int chat_join_tips(chat_client *c, size_t budget, uint8_t **tips, size_t *len, uint16_t *n,
		   sx_err *err) SX_MUST_CHECK;

/* client_tty.c */
int chat_tty_start(chat_client *c, sx_err *err) SX_MUST_CHECK;
void chat_tty_stop(chat_client *c);
/* Keys typed: edits the line; Enter queues it in c->in. */
int chat_tty_input(chat_client *c, const uint8_t *p, size_t n, sx_err *err) SX_MUST_CHECK;
/* One line of output (no newline), drawn above the line being typed. */
void chat_show(chat_client *c, const char *s);
/* s[0, n) as a JSON string (quoted, escaped). */
void chat_json_str(FILE *f, const char *s, size_t n);
/* "HH:MM:SS" of a time in unix milliseconds, local time. */
void chat_clock(int64_t ms, char out[16]);

#endif
