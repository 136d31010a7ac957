/* engine/transfer: sxfer serve --chat, the transfer's side (docs/PROTOCOL.md
 * "Chat"). A connection without a session whose first CTRL message is
 * CHAT_JOIN leaves its receive loop as a get or ls does (serve_out.c): once
 * nothing of it is in flight, its socket and record keys move to the chat
 * hub (engine/chat/sx_chat_hub.h), which answers it from then on. The
 * loop's accounting (connections, slots, the identity's connections) stays
 * taken until the hub lets go of it. Without --chat the connection is told
 * so (ERROR, class usage) and closed. */
#include "engine/chat/sx_chat_hub.h"
#include "engine/transfer/serve_int.h"

typedef struct chat_hold {
	shared *sh;
	sx_lim_use *lu;
} chat_hold;

int srv_chat_request(server *s, conn *c, const uint8_t *body, size_t len, sx_err *err)
{
	if (s->sh->hub == NULL)
		return sx_fail(err, SX_E_USAGE, "this server does not relay chat (serve --chat)");
	c->req = malloc(len);
	SX_ENSURE(c->req != NULL, err, SX_E_OTHER, "out of memory");
	memcpy(c->req, body, len);
	c->req_len = len;
	c->req_type = SX_MSG_CHAT_JOIN;
	return 0;
out:
	return -1;
}

/* The hub let go of the connection (on its thread). */
static void chat_end(void *ctx)
{
	chat_hold *ch = ctx;
	shared *sh = ch->sh;
	if (ch->lu != NULL)
		sx_limits_leave(sh->lim, ch->lu);
	free(ch);
	atomic_fetch_sub(&sh->active, 1);
	atomic_fetch_sub(&sh->slots, 1);
	atomic_fetch_sub(&sh->inslot, 1);
}

int srv_chat_start(server *s, conn *c, sx_err *err)
{
	chat_hold *ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	*ch = (chat_hold){.sh = s->sh, .lu = c->lu};
	/* The identity's connection is the hub's too (the loop's own count
	 * goes when it lets go of the connection). */
	if (ch->lu != NULL)
		sx_limits_hold(s->sh->lim, ch->lu);
	atomic_fetch_add(&s->sh->active, 1);
	atomic_fetch_add(&s->sh->slots, 1);
	atomic_fetch_add(&s->sh->inslot, 1);
	sx_chat_hand hd = {.fd = c->fd,
			   .link = &c->link,
			   .addr = c->addr,
			   .id = c->id,
			   .join = c->req,
			   .join_len = c->req_len,
			   .on_end = chat_end,
			   .end_ctx = ch};
	/* Off the loop's ring first: the hub's ring takes the socket. */
	sx_io_file_remove(s->io, c->fd);
	if (sx_chat_hub_add(s->sh->hub, &hd, err) < 0) {
		if (ch->lu != NULL)
			sx_limits_leave(s->sh->lim, ch->lu);
		free(ch);
		atomic_fetch_sub(&s->sh->active, 1);
		atomic_fetch_sub(&s->sh->slots, 1);
		atomic_fetch_sub(&s->sh->inslot, 1);
		return -1;
	}
	c->fd = -1;
	free(c->req);
	c->req = NULL;
	c->handed = true;
	return 0;
}

static X509_CRL *chat_crl_now(void *ctx)
{
	shared *sh = ctx;
	return sx_chan_ctx_crl(sh->ctx);
}

int srv_chat_open(shared *sh, sx_err *err)
{
	const sx_serve_cfg *cfg = sh->cfg;
	if (cfg->chat == NULL || cfg->client != NULL)
		return 0;
	sx_chat_hub_env env = {.cfg = cfg->chat,
			       .io = cfg->io,
			       .id = cfg->id,
			       .crl = cfg->crl,
			       .crl_now = chat_crl_now,
			       .crl_ctx = sh,
			       .stop = cfg->stop};
	return sx_chat_hub_start(&sh->hub, &env, err);
}

void srv_chat_close(shared *sh)
{
	sx_chat_hub_stop(sh->hub);
	sh->hub = NULL;
}
