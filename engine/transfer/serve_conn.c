/* A receiving connection: its replies (sealed control records, the
 * handshake's output), and how it ends (failing, closing, lingering,
 * freeing). */
#include "engine/transfer/serve_int.h"

static void flush_tx(server *s, conn *c)
{
	/* Sealed records go out after the handshake's last bytes (CONFIRM). */
	if (c->tx_sending || c->hs_sending || c->st == C_SHUT)
		return;
	int b = c->tx_fill;
	if (c->tx_len[b] == 0)
		return;
	sx_err err = {0};
	if (submit_ok(c, sx_io_send(s->io, c->fd, c->tx[b], c->tx_len[b],
				    tag_of(c->idx, OP_SEND, (unsigned)b), &err)) < 0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	c->tx_sending = true;
	c->tx_fill = 1 - b;
}

int srv_queue_record(server *s, conn *c, const sx_msg *m, uint8_t type, sx_err *err)
{
	int b = c->tx_fill;
	size_t len = 0;
	uint8_t *at = c->tx[b] + c->tx_len[b];
	size_t room = TX_CAP - c->tx_len[b];
	if (m != NULL) {
		if (room < SX_REC_HDR_LEN + SX_REC_TAG_MAX + 16 + SX_REASON_MAX + SX_SIG_MAX)
			return sx_fail(err, SX_E_NET, "the peer is not reading its replies");
		SX_GUARD(sx_link_seal_msg(&c->link, m, at, room, &len, err));
	} else {
		if (room < SX_REC_HDR_LEN + SX_REC_TAG_MAX)
			return sx_fail(err, SX_E_NET, "the peer is not reading its replies");
		SX_GUARD(sx_record_seal(&c->link.k.tx, type, 0, at, 0, &len, err));
	}
	c->tx_len[b] += len;
	flush_tx(s, c);
	return 0;
out:
	return -1;
}

int srv_send_msg(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	return srv_queue_record(s, c, m, SX_REC_CTRL, err);
}

/* Replies waiting to go out past half their buffer: the connection takes
 * no new work (no record received, no file finalized) until a send
 * completes (srv_on_send resumes both), so a burst of answers (a batch of
 * thousands of refused files) never overflows it. */
bool srv_tx_busy(const conn *c)
{
	return c->tx_len[c->tx_fill] > TX_CAP / 2;
}

/* Ends a closing connection. Softly first (a lingering close): our FIN goes
 * after the last records we sent (a sealed ERROR, a TLS alert) and what the
 * peer still sends is read and dropped until it closes or the grace period
 * ends, because closing a socket with unread input resets the connection,
 * and a reset can destroy those last records in the peer's receive queue
 * before it reads them. Hard (at the deadline, at shutdown): both
 * directions shut and every operation cancelled. */
void srv_conn_shutdown(server *s, conn *c, bool hard)
{
	if (c->st == C_SHUT)
		return;
	/* Only an authenticated peer is worth a lingering close: a stranger
	 * gets its alert (already sent) and the socket is closed. */
	if (!hard && c->st != C_LINGERING && !s->stopping && c->link.ready &&
	    sx_now_ns() < c->deadline) {
		c->st = C_LINGERING;
		shutdown(c->fd, SHUT_WR);
		srv_linger_recv(s, c);
		return;
	}
	c->st = C_SHUT;
	shutdown(c->fd, SHUT_RDWR);
	sx_err err = {0};
	if (sx_io_cancel_fd(s->io, c->fd, &err) < 0)
		sx_log("warn", "cancel", "conn=%u reason=%s", c->id, SX_LOGQ(err.msg));
}

/* --once and the client (get.c): how its one connection ended. */
static void once_end(server *s, const conn *c, double secs)
{
	s->once_result = c->ok ? (c->files_failed ? SX_E_IO : SX_OK)
			       : (c->err.cls != SX_OK ? c->err.cls : SX_E_OTHER);
	s->once_err = c->err;
	sx_get_stats *st = &s->once_stats;
	st->files_ok = c->files_ok;
	st->files_failed = c->files_failed;
	st->bytes = c->bytes;
	st->files_resumed = c->files_resumed;
	st->bytes_resumed = c->bytes_resumed;
	st->files_same = c->files_same;
	st->batches = (uint64_t)c->batches_done;
	st->entries = c->entries;
	st->seconds = secs;
	st->sign = c->sign;
	if (c->link.ready) {
		snprintf(st->peer_name, sizeof(st->peer_name), "%s", c->link.k.peer_name);
		memcpy(st->peer_fingerprint, c->link.k.peer_fingerprint,
		       sizeof(st->peer_fingerprint));
		st->suite = (sx_suite)c->link.k.hello.suite;
	}
}

static void conn_free(server *s, conn *c)
{
	for (int i = 0; i < c->nfiles; i++) {
		rfile *f = &c->files[i];
		if (f->state == F_FREE)
			continue;
		/* Only a stream still on its way (not yet renamed, no .sxsig
		 * written) is cut down to its last checkpoint; one parked while
		 * it waited for its batch signature is opened again for that. */
		sx_err perr = {0};
		/* A file of known size keeps its whole leaves as a held part
		 * for a resume (docs/PROTOCOL.md, "Resume and re-sending"). */
		if (!f->failed && c->store_open && !f->sf.committed && f->sf.aux_fd < 0 &&
		    (f->state == F_OPEN || f->state == F_ENDING || f->state == F_SYNC_FILE ||
		     f->state == F_AWAIT) &&
		    sx_store_unpark(&f->sf, true, &perr) == 0 && f->sf.fd >= 0) {
			if (f->ck != NULL)
				srv_keep_partial(s, c, f);
			else if (f->announced != SX_SIZE_UNKNOWN)
				(void)srv_keep_held(s, c, f);
		}
		srv_lg_gone(s, c, f);
		srv_file_release(s, f);
	}
	free(c->files);
	free(c->syncq);
	for (int i = 0; i < c->nbatches; i++)
		if (c->batches[i] != NULL) {
			sx_sbatch_free(c->batches[i]);
			free(c->batches[i]);
		}
	free(c->batches);
	/* A get that failed leaves no folder it made that is still empty
	 * (deepest first; a folder holding a verified file stays). */
	for (size_t i = c->ndirs; s->cfg->client != NULL && !c->ok && c->store_open && i-- > 0;)
		if (c->dirs[i].created)
			(void)unlinkat(c->store.root_fd, c->dirs[i].path, AT_REMOVEDIR);
	if (c->store_open)
		sx_store_close(&c->store);
	for (size_t i = 0; i < c->ndirs; i++)
		free(c->dirs[i].path);
	free(c->dirs);
	double secs = (double)(sx_now_ns() - c->t0) / 1e9;
	free(c->req);
	/* Its keys leave the workers too; the last of their users ends them
	 * (before the line that says it is closed: the loop is then idle). */
	srv_pool_leave(s, c);
	srv_lg_end(s, c);
	/* The client of get reports its own end (tools/cmd_get.c). */
	if (!c->handed && s->cfg->client == NULL)
		sx_log(c->ok ? "info" : "error", "conn_close",
		       "conn=%u addr=%s peer=%s files=%llu failed=%llu bytes=%llu seconds=%.3f "
		       "result=%s worker_records=%llu",
		       c->id, SX_LOGT(c->addr), SX_LOGQ(c->link.ready ? c->link.k.peer_name : ""),
		       (unsigned long long)c->files_ok, (unsigned long long)c->files_failed,
		       (unsigned long long)c->bytes, secs, SX_LOGT(c->ok ? "ok" : "failed"),
		       (unsigned long long)c->pooled);
	if (s->cfg->once && s->once_result == SX_OK)
		once_end(s, c, secs);
	srv_hs_leave(s, c);
	srv_lim_conn_end(s, c); /* its slot, its identity's connection */
	if (c->spill_wait)
		s->spill_waiting--;
	sx_link_free(&c->link);
	/* Nothing is in flight (srv_maybe_free): registrations (reg_grow) go
	 * before the memory and the socket do. */
	for (int i = 0; i < RX_SLOTS; i++) {
		sx_io_buf_remove(s->io, c->rx[i]);
		sx_io_buf_remove(s->io, c->dx[i]);
		free(c->rx_mem[i]);
		free(c->dx[i]);
	}
	ZSTD_freeDCtx(c->dctx);
	free(c->tx[0]);
	free(c->tx[1]);
	if (c->fd >= 0) {
		sx_io_file_remove(s->io, c->fd);
		close(c->fd);
	}
	memset(c, 0, sizeof(*c));
	s->nconns--;
	s->served++;
	/* The last connection of the server gone: memory a burst of
	 * connections (or an attack) used goes back to the system instead of
	 * staying in the allocator's free lists. */
	if (atomic_fetch_sub(&s->sh->active, 1) == 1)
		malloc_trim(0);
}

void srv_maybe_free(server *s, conn *c)
{
	/* A get or ls: handed to its thread once nothing of it is in flight;
	 * a chat connection to the chat hub. */
	if (conn_used(c) && c->req != NULL && !conn_closing(c) && c->inflight == 0) {
		sx_err err = {0};
		if ((c->req_type == SX_MSG_CHAT_JOIN ? srv_chat_start(s, c, &err)
						     : srv_out_start(s, c, &err)) < 0) {
			srv_conn_fail(s, c, &err);
			return;
		}
		c->st = C_CLOSING;
		c->ok = true;
	}
	if (conn_used(c) && conn_closing(c) && !c->tx_sending && !c->hs_sending &&
	    c->st != C_LINGERING && !c->handed)
		srv_conn_shutdown(s, c, false);
	if (conn_used(c) && conn_closing(c) && c->inflight == 0) {
		/* Writes and flushes have all completed: temporaries can go. */
		conn_free(s, c);
		/* A slot is free again: accepting stops while the table is full. */
		srv_post_accept(s);
	}
}

void srv_conn_fail(server *s, conn *c, const sx_err *why)
{
	if (conn_closing(c))
		return;
	if (c->st == C_HANDSHAKE)
		srv_m_handshake(s, why->msg);
	/* A closing grace only for an authenticated peer; a connection that
	 * never authenticated keeps its handshake deadline (from accept) to
	 * take its alert. */
	if (c->link.ready)
		c->deadline = sx_now_ns() + (uint64_t)CLOSE_GRACE_MS * 1000000u;
	srv_hs_leave(s, c);
	if (c->spill_wait) {
		c->spill_wait = false;
		s->spill_waiting--;
	}
	/* During the handshake the channel may hold the TLS alert that tells
	 * the peer why: send it before closing. */
	if (c->link.chan != NULL)
		srv_hs_send(s, c); /* an alert, or a CONFIRM not yet on its way */
	c->st = C_CLOSING;
	c->ok = false;
	if (c->err.cls == SX_OK)
		c->err = *why;
	if (s->cfg->client == NULL)
		sx_log("error", "conn_error", "conn=%u addr=%s peer=%s class=%d cause=%s", c->id,
		       SX_LOGT(c->addr), SX_LOGQ(c->link.ready ? c->link.k.peer_name : ""),
		       why->cls, SX_LOGQ(why->msg));
	if (c->link.ready && c->tx[0] != NULL && c->tx[1] != NULL) {
		/* Tell the sender why, sealed, before the connection goes (after
		 * CONFIRM when that is still on its way). */
		sx_msg m = {.type = SX_MSG_ERROR,
			    .err_class = (uint8_t)why->cls,
			    .reason = (const uint8_t *)why->msg,
			    .reason_len = strlen(why->msg)};
		sx_err e2 = {0};
		if (srv_send_msg(s, c, &m, &e2) < 0)
			sx_log("warn", "conn_error",
			       "conn=%u reason=\"cannot send ERROR\" cause=%s", c->id,
			       SX_LOGQ(e2.msg));
		c->st = C_CLOSING;
	}
	srv_maybe_free(s, c);
}

static void conn_done(server *s, conn *c)
{
	c->deadline = sx_now_ns() + (uint64_t)CLOSE_GRACE_MS * 1000000u;
	c->st = C_CLOSING;
	c->ok = true;
	srv_maybe_free(s, c);
}

/* Sends the channel's pending output (flights, CONFIRM, an alert), also
 * while closing. */
static void hs_send_out(server *s, conn *c)
{
	const uint8_t *buf;
	size_t len;
	sx_err err = {0};
	if (c->hs_sending || c->st == C_SHUT || c->link.chan == NULL)
		return;
	sx_link_hs_output(&c->link, &buf, &len);
	if (len == 0)
		return;
	if (submit_ok(c, sx_io_send(s->io, c->fd, buf, len, tag_of(c->idx, OP_HS_SEND, 0), &err)) <
	    0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	c->hs_sending = true;
}

void srv_hs_send(server *s, conn *c)
{
	if (!conn_closing(c))
		hs_send_out(s, c);
}

void srv_linger_recv(server *s, conn *c)
{
	sx_err err = {0};
	if (c->recv_posted)
		return; /* its completion continues the lingering */
	if (submit_ok(c, sx_io_recv(s->io, c->fd, s->discard, sizeof(s->discard),
				    tag_of(c->idx, OP_RECV, 0), &err)) < 0) {
		srv_conn_shutdown(s, c, true);
		return;
	}
	c->recv_posted = true;
}

void srv_on_send(server *s, conn *c, int op, unsigned sub, int64_t res)
{
	sx_err err = {0};
	if (op == OP_HS_SEND) {
		c->hs_sending = false;
		if (res >= 0)
			sx_link_hs_sent(&c->link);
	} else {
		c->tx_sending = false;
		c->tx_len[sub] = 0;
	}
	if (res < 0) {
		sx_fail_errno(&err, SX_E_NET, (int)-res, "send failed");
		srv_conn_fail(s, c, &err);
		return;
	}
	if (conn_closing(c)) {
		/* The rest of the handshake output (CONFIRM), then an ERROR
		 * sealed after it or queued while another send was in flight. */
		if (op == OP_HS_SEND)
			hs_send_out(s, c);
		flush_tx(s, c);
		return;
	}
	if (op == OP_HS_SEND)
		srv_hs_send(s, c);
	flush_tx(s, c);
	if (c->eos_queued && !c->tx_sending && c->tx_len[c->tx_fill] == 0) {
		conn_done(s, c);
		return;
	}
	/* Room for replies again: work held back by srv_tx_busy resumes. */
	if (c->link.ready && c->sign && srv_finalize_waiting(s, c, &err) < 0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	srv_post_recv(s, c);
}
