/* The participant's session: the connection (the channel's handshake over
 * the ring, as the sender does it), the event loop over the socket, the
 * input and the signals, and the records it sends. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "engine/chat/client_int.h"

/* The largest record body this side accepts: one chat message. */
#define CHAT_RX_MAX (SX_CHAT_MSG_MAX + SX_REC_TAG_MAX)

int64_t chat_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int buf_room(chat_buf *b, size_t more, sx_err *err)
{
	if (b->cap - b->len >= more)
		return 0;
	size_t cap = b->len + more;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	b->p = p;
	b->cap = cap;
	return 0;
}

/* The queued records go out once the one in flight is sent (and the
 * handshake's last bytes before them). */
static int flush(chat_client *c, sx_err *err)
{
	if (c->send_busy || c->next.len == 0 || !c->link.ready || c->link.hs_out_len > 0)
		return 0;
	chat_buf t = c->fly;
	c->fly = c->next;
	c->next = t;
	c->next.len = 0;
	c->send_busy = true;
	return sx_io_send(c->io, c->sock, c->fly.p, c->fly.len, OP_SEND, err);
}

int chat_send(chat_client *c, const sx_chat_msg *m, sx_err *err)
{
	size_t tag = sx_suite_tag_len(c->link.k.tx.suite), rec_len = 0;
	size_t bound = 2 * SX_CHAT_CONV_MAX + 4096;
	if (m->type == SX_MSG_CHAT_POST)
		bound += m->post.text_len;
	if (m->type == SX_MSG_CHAT_JOIN)
		bound += m->tips_len;
	SX_GUARD(buf_room(&c->next, SX_REC_HDR_LEN + bound + tag, err));
	uint8_t *rec = c->next.p + c->next.len;
	sx_wbuf w = sx_wbuf_make(rec + SX_REC_HDR_LEN, bound);
	sx_chat_msg_encode(m, &w);
	SX_ENSURE(!w.overflow, err, SX_E_OTHER, "a chat message (type 0x%02x) does not fit",
		  m->type);
	SX_ENSURE(w.len + tag <= c->link.k.peer_max_record, err, SX_E_NET,
		  "the message (%zu bytes) is larger than the server accepts (%u)", w.len,
		  c->link.k.peer_max_record);
	SX_GUARD(sx_record_seal(&c->link.k.tx, SX_REC_CTRL, 0, rec, w.len, &rec_len, err));
	c->next.len += rec_len;
	return flush(c, err);
out:
	return -1;
}

static int post_recv(chat_client *c, sx_err *err)
{
	uint8_t *buf;
	size_t len;
	if (!c->link.ready)
		sx_link_hs_recv_buf(&c->link, &buf, &len);
	else
		sx_link_rx_want(&c->link, &buf, &len);
	c->recv_busy = true;
	return sx_io_recv(c->io, c->sock, buf, len, OP_RECV, err);
}

static int hs_send(chat_client *c, sx_err *err)
{
	const uint8_t *buf;
	size_t len;
	sx_link_hs_output(&c->link, &buf, &len);
	if (len == 0)
		return 0;
	return sx_io_send(c->io, c->sock, buf, len, OP_HS_SEND, err);
}

/* n more bytes of the record being assembled. */
static int on_input(chat_client *c, size_t n, sx_err *err)
{
	bool complete;
	uint8_t type, flags, *pt;
	size_t len;
	SX_GUARD(sx_link_rx_input(&c->link, n, &complete, &type, &flags, &pt, &len, err));
	if (!complete)
		return 0;
	SX_ENSURE(flags == 0, err, SX_E_INTEGRITY, "a record with flags 0x%02x from the server",
		  flags);
	if (type == SX_REC_CTRL)
		return chat_on_record(c, pt, len, err);
	SX_ENSURE(type == SX_REC_EOS, err, SX_E_INTEGRITY,
		  "unexpected record type %u from the server", type);
	SX_ENSURE(c->phase == PH_BYE, err, SX_E_NET, "the server ended the session");
	c->phase = PH_DONE;
	return 0;
out:
	return -1;
}

/* The keys are taken: the assembler gets its buffer, JOIN goes out, with
 * the tips of the direct conversations the transcript holds (the server
 * sends what is missing beyond them). */
static int link_ready(chat_client *c, sx_err *err)
{
	uint8_t *tips = NULL;
	size_t tips_len = 0, tag = sx_suite_tag_len(c->link.k.tx.suite);
	size_t max = c->link.k.peer_max_record, over = tag + 16 + SX_CHAT_NAME_MAX;
	uint16_t ntips = 0;
	int rc;
	sx_link_rx_set(&c->link, c->rx, c->rx_cap);
	c->link.max_body = CHAT_RX_MAX;
	SX_GUARD(chat_join_tips(c, max > over ? max - over : 0, &tips, &tips_len, &ntips, err));
	sx_chat_msg *m = c->m_out;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_JOIN;
	m->version = SX_CHAT_VERSION;
	m->room = c->cfg->room != NULL ? c->cfg->room : "";
	m->room_len = strlen(m->room);
	m->tips = tips;
	m->tips_len = tips_len;
	m->ntips = ntips;
	c->phase = PH_JOIN;
	rc = chat_send(c, m, err);
	free(tips);
	m->tips = NULL;
	SX_GUARD(rc);
	while (c->phase != PH_DONE && sx_link_rx_early(&c->link) > 0)
		SX_GUARD(on_input(c, sx_link_rx_feed(&c->link), err));
	return 0;
out:
	return -1;
}

static int on_recv(chat_client *c, int64_t res, sx_err *err)
{
	c->recv_busy = false;
	if (res < 0)
		return sx_fail_errno(err, SX_E_NET, (int)-res, "receive from %s failed",
				     c->cfg->host);
	if (res == 0) {
		c->closed = true;
		if (c->phase == PH_BYE) {
			c->phase = PH_DONE;
			return 0;
		}
		return sx_fail(err, SX_E_NET, "%s closed the connection%s", c->cfg->host,
			       c->link.ready ? "" : " during the handshake");
	}
	if (!c->link.ready) {
		SX_GUARD(sx_link_hs_input(&c->link, (size_t)res, err));
		SX_GUARD(hs_send(c, err));
		if (c->link.ready)
			SX_GUARD(link_ready(c, err));
	} else {
		SX_GUARD(on_input(c, (size_t)res, err));
	}
	return c->phase == PH_DONE ? 0 : post_recv(c, err);
out:
	return -1;
}

/* The input: keys on a terminal, else bytes of lines. */
static int on_in(chat_client *c, int64_t res, sx_err *err)
{
	c->in_busy = false;
	if (res == -EINTR || res == -EAGAIN)
		return 0;
	if (res < 0)
		return sx_fail_errno(err, SX_E_IO, (int)-res, "cannot read the input");
	if (res == 0) {
		c->in_eof = true;
		return 0;
	}
	if (c->tty.on)
		return chat_tty_input(c, c->in + c->in_cap, (size_t)res, err);
	if (!c->in_skip) {
		c->in_len += (size_t)res;
		return 0;
	}
	/* The rest of a line too long to post: up to its newline. */
	uint8_t *nl = memchr(c->in, '\n', (size_t)res);
	if (nl == NULL)
		return 0;
	size_t rest = (size_t)res - (size_t)(nl + 1 - c->in);
	memmove(c->in, nl + 1, rest);
	c->in_len = rest;
	c->in_skip = false;
	return 0;
}

/* The next signal: read from the signalfd. */
static int sig_arm(chat_client *c, sx_err *err)
{
	c->sig_busy = true;
	return sx_io_read(c->io, c->sigfd, &c->si, sizeof(c->si), SX_IO_OFF_CUR, OP_SIG, err);
}

static int on_completion(chat_client *c, const sx_cqe *q, sx_err *err)
{
	switch ((int)q->tag) {
	case OP_HS_SEND:
		if (q->res < 0)
			return sx_fail_errno(err, SX_E_NET, (int)-q->res, "send to %s failed",
					     c->cfg->host);
		sx_link_hs_sent(&c->link);
		SX_GUARD(hs_send(c, err));
		return flush(c, err);
	case OP_SEND:
		c->send_busy = false;
		if (q->res < 0)
			return sx_fail_errno(err, SX_E_NET, (int)-q->res, "send to %s failed",
					     c->cfg->host);
		return flush(c, err);
	case OP_RECV: return on_recv(c, q->res, err);
	case OP_IN: return on_in(c, q->res, err);
	case OP_SIG:
		c->sig_busy = false;
		if (q->res == -EINTR)
			return sig_arm(c, err);
		if (q->res < 0)
			return sx_fail_errno(err, SX_E_OTHER, (int)-q->res, "signal fd");
		/* Before WELCOME there is no session to end; asked twice, no
		 * more waiting (for the server's end, or its answer). */
		if (c->phase == PH_HS || c->phase == PH_JOIN)
			return sx_fail(err, SX_E_NET, "%s: interrupted before the server answered",
				       c->cfg->host);
		if (c->quit && c->phase == PH_BYE)
			c->phase = PH_DONE;
		else if (c->quit)
			return sx_fail(err, SX_E_NET,
				       "interrupted again while a message waited for the "
				       "server's answer");
		sx_log("info", "chat_signal", "signal=%d reason=%s", (int)c->si.ssi_signo,
		       SX_LOGQ(c->quit ? "a second one: the session ends now"
				       : "the session ends (receipts, then BYE)"));
		c->quit = true;
		return sig_arm(c, err);
	default: sx_io_bug("chat: completion of an unknown operation", q->tag);
	}
out:
	return -1;
}

bool chat_pace(chat_client *c)
{
	uint64_t now = sx_now_ns();
	c->pace_ns = 0;
	if (c->rate == 0)
		return true;
	c->tokens += (double)(now - c->tok_ns) / 1e9 * c->rate;
	c->tok_ns = now;
	if (c->tokens > c->rate)
		c->tokens = c->rate;
	if (c->tokens >= 1) {
		c->tokens -= 1;
		return true;
	}
	c->pace_ns = now + (uint64_t)((1 - c->tokens) / c->rate * 1e9) + 1;
	return false;
}

/* A line is waiting in the input (or its last, unterminated one). */
static bool line_ready(const chat_client *c)
{
	return (c->in_len > 0 && memchr(c->in, '\n', c->in_len) != NULL) ||
	       (c->in_eof && c->in_len > 0);
}

/* Reads more input when there is room and nothing to post. */
static int want_input(chat_client *c, sx_err *err)
{
	if (c->in_busy || c->in_eof || c->quit || c->cfg->in_fd < 0)
		return 0;
	if (c->tty.on) {
		c->in_busy = true;
		return sx_io_read(c->io, c->cfg->in_fd, c->in + c->in_cap, 256, SX_IO_OFF_CUR,
				  OP_IN, err);
	}
	if (line_ready(c))
		return 0;
	if (c->in_len == c->in_cap) {
		/* A line longer than anything the server takes. */
		chat_refused_local(c, "too_big", "the line is longer than the server takes");
		c->in_skip = true;
		c->in_len = 0;
	}
	size_t room = c->in_cap - c->in_len, want = room < CHAT_IN_READ ? room : CHAT_IN_READ;
	c->in_busy = true;
	return sx_io_read(c->io, c->cfg->in_fd, c->in + c->in_len, want, SX_IO_OFF_CUR, OP_IN, err);
}

/* Is it time for the receipts and BYE? */
static bool session_over(chat_client *c)
{
	const sx_chat_cfg *cfg = c->cfg;
	if (c->post_busy)
		return false;
	if (c->quit || (cfg->count > 0 && c->res->received >= cfg->count))
		return true;
	bool input_done = (c->in_eof || cfg->in_fd < 0) && !line_ready(c);
	if (!input_done)
		return false;
	if (cfg->wait_ms > 0) {
		uint64_t now = sx_now_ns();
		if (c->wait_end_ns == 0)
			c->wait_end_ns = now + (uint64_t)cfg->wait_ms * 1000000u;
		return now >= c->wait_end_ns;
	}
	return cfg->count == 0;
}

/* Everything that does not wait for a completion. */
static int step(chat_client *c, sx_err *err)
{
	if (c->phase != PH_RUN)
		return 0;
	if (!c->post_busy && !c->quit && (c->pace_ns == 0 || sx_now_ns() >= c->pace_ns))
		SX_GUARD(chat_next_line(c, err));
	if (session_over(c)) {
		SX_GUARD(chat_receipts(c, err));
		sx_chat_msg *m = c->m_out;
		memset(m, 0, sizeof(*m));
		m->type = SX_MSG_CHAT_BYE;
		SX_GUARD(chat_send(c, m, err));
		c->phase = PH_BYE;
		c->bye_end_ns = sx_now_ns() + (uint64_t)CHAT_BYE_WAIT_MS * 1000000u;
		return 0;
	}
	return want_input(c, err);
out:
	return -1;
}

int chat_timeout_ms(const chat_client *c)
{
	return c->cfg->timeout_ms > 0 ? c->cfg->timeout_ms : 30000;
}

static int wait_ms(chat_client *c, uint64_t hs_end)
{
	uint64_t now = sx_now_ns(), end = 0;
	if (c->phase == PH_HS || c->phase == PH_JOIN)
		end = hs_end;
	else if (c->phase == PH_BYE)
		end = c->bye_end_ns;
	else if (c->pace_ns != 0)
		end = c->pace_ns;
	else if (c->wait_end_ns != 0)
		end = c->wait_end_ns;
	if (c->phase == PH_RUN && c->post_busy && (end == 0 || c->post_end_ns < end))
		end = c->post_end_ns;
	if (end == 0)
		return -1;
	return end <= now ? 0 : (int)((end - now) / 1000000u) + 1;
}

static int loop(chat_client *c, sx_err *err)
{
	int timeout = chat_timeout_ms(c);
	uint64_t hs_end = sx_now_ns() + (uint64_t)timeout * 1000000u;
	while (c->phase != PH_DONE) {
		sx_cqe q[16];
		SX_GUARD(step(c, err));
		if (c->phase == PH_DONE)
			break;
		int n = sx_io_wait(c->io, q, SX_ARRAY_LEN(q), wait_ms(c, hs_end), err);
		SX_GUARD(n);
		for (int i = 0; i < n; i++)
			SX_GUARD(on_completion(c, &q[i], err));
		uint64_t now = sx_now_ns();
		if ((c->phase == PH_HS || c->phase == PH_JOIN) && now >= hs_end)
			return sx_fail(err, SX_E_NET, "%s: no answer to joining in %d ms (timeout)",
				       c->cfg->host, timeout);
		if (c->phase == PH_RUN && c->post_busy && now >= c->post_end_ns)
			return sx_fail(
			    err, SX_E_NET, "%s: no answer to message %llu of %s in %d ms (timeout)",
			    c->cfg->host, (unsigned long long)c->post->seq, c->post->conv, timeout);
		if (c->phase == PH_BYE && now >= c->bye_end_ns) {
			sx_log("warn", "chat_bye", "reason=\"no end of stream from the server\"");
			c->phase = PH_DONE;
		}
	}
	return 0;
out:
	return -1;
}

/* SIGINT and SIGTERM end the session as the end of the input does. */
static int signals_start(chat_client *c, sx_err *err)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, &c->oldmask) < 0)
		return sx_fail_errno(err, SX_E_OTHER, errno, "cannot block signals");
	c->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (c->sigfd < 0)
		return sx_fail_errno(err, SX_E_OTHER, errno, "signalfd");
	return sig_arm(c, err);
}

/* Who this identity is, where lines go, the verifier and the transcript. */
static int client_init(chat_client *c, sx_err *err)
{
	const sx_chat_cfg *cfg = c->cfg;
	const sx_identity *id = cfg->id;
	size_t nlen = strlen(id->name);
	if (sx_chat_name_check(id->name, nlen, err) < 0) {
		sx_err_prefix(err, "this identity's name (its certificate's CN): ");
		return -1;
	}
	memcpy(c->me, id->name, nlen + 1);
	SX_GUARD(sx_cert_fp(sk_X509_value(id->chain, 0), c->my_fp, err));
	if (cfg->nto > 0)
		SX_GUARD(sx_chat_conv_direct(c->me, cfg->to, cfg->nto, c->post_conv,
					     sizeof(c->post_conv), err));
	else if (cfg->room != NULL)
		SX_GUARD(sx_chat_conv_room(cfg->room, c->post_conv, sizeof(c->post_conv), err));
	c->pol.anchors = id->anchors;
	c->pol.crl = cfg->crl != NULL ? cfg->crl : id->crl;
	c->m_in = calloc(1, sizeof(*c->m_in));
	c->m_out = calloc(1, sizeof(*c->m_out));
	c->line = calloc(1, sizeof(*c->line));
	c->post = calloc(1, sizeof(*c->post));
	c->rx_cap = SX_REC_HDR_LEN + CHAT_RX_MAX;
	c->rx = malloc(c->rx_cap);
	SX_ENSURE(c->m_in && c->m_out && c->line && c->post && c->rx, err, SX_E_OTHER,
		  "out of memory");
	SX_GUARD(sx_chat_ver_new(&c->ver, &c->pol, NULL, err));
	return chat_file_open(c, err);
out:
	return -1;
}

static int client_go(chat_client *c, sx_err *err)
{
	const sx_chat_cfg *cfg = c->cfg;
	int timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
	SX_GUARD(sx_io_open(&c->io, cfg->io, 16, err));
	c->res->io_backend = sx_io_name(c->io);
	SX_GUARD(signals_start(c, err));
	sx_chan_cfg cc =
	    sx_chan_client(cfg->id, cfg->crl, cfg->server_name ? cfg->server_name : cfg->host,
			   SX_SUITE_AES256GCM, 0, CHAT_RX_MAX);
	SX_GUARD(sx_chan_ctx_new(&c->ctx, &cc, err));
	SX_GUARD(sx_net_connect(cfg->host, cfg->port, timeout, &c->sock, err));
	SX_GUARD(sx_link_init(&c->link, c->ctx, err));
	SX_GUARD(hs_send(c, err));
	SX_GUARD(post_recv(c, err));
	return loop(c, err);
out:
	return -1;
}

static void cancel(chat_client *c, int fd)
{
	if (sx_io_cancel_fd(c->io, fd, NULL) < 0)
		sx_log("debug", "chat_cancel", "reason=\"cannot cancel I/O\"");
}

static void client_free(chat_client *c)
{
	chat_tty_stop(c);
	if (c->io != NULL) {
		if (c->sock >= 0)
			cancel(c, c->sock);
		if (c->in_busy)
			cancel(c, c->cfg->in_fd);
		if (c->sigfd >= 0)
			cancel(c, c->sigfd);
		sx_io_close(c->io);
	}
	if (c->sigfd >= 0) {
		close(c->sigfd);
		sigprocmask(SIG_SETMASK, &c->oldmask, NULL);
	}
	if (c->sock >= 0)
		close(c->sock);
	sx_link_free(&c->link);
	sx_chan_ctx_free(c->ctx);
	chat_file_close(c);
	sx_chat_ver_free(c->ver);
	for (size_t i = 0; i < c->nconvs; i++)
		free(c->convs[i]);
	free(c->convs);
	if (c->rx != NULL)
		OPENSSL_clear_free(c->rx, c->rx_cap);
	free(c->fly.p);
	free(c->next.p);
	free(c->in);
	free(c->tty.edit);
	free(c->post_text);
	free(c->post);
	free(c->m_in);
	free(c->m_out);
	free(c->line); /* a line to encode: it owns nothing */
	free(c);
}

int sx_chat_run(const sx_chat_cfg *cfg, sx_chat_result *res, sx_err *err)
{
	chat_client *c = calloc(1, sizeof(*c));
	memset(res, 0, sizeof(*res));
	if (c == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	c->cfg = cfg;
	c->res = res;
	c->sock = -1;
	c->sigfd = -1;
	c->tfd = -1;
	c->phase = PH_HS;
	int rc = client_init(c, err);
	if (rc == 0)
		rc = client_go(c, err);
	client_free(c);
	return rc;
}
