/* The receiver: many senders on one event loop (one sx_io ring), each a
 * small state machine fed by completions. A connection that misbehaves is
 * failed alone: its temporaries are removed and the others go on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "engine/sx_link.h"
#include "engine/sx_store.h"
#include "engine/sx_transfer.h"

#define RX_SLOTS 4	/* records being received or written per connection */
#define MAX_FILES 16	/* files being written or made durable per connection */
#define TX_CAP (64u * 1024)
#define MAX_DIRS 100000 /* folders whose mtime is restored at the end */

enum { OP_ACCEPT = 1, OP_HS_SEND, OP_RECV, OP_WRITE, OP_FSYNC, OP_DIRSYNC, OP_SEND };

enum { F_FREE = 0, F_OPEN, F_DISCARD, F_ENDING, F_FSYNC, F_DIRSYNC };

typedef struct rfile {
	int state;
	uint32_t id;
	sx_store_file sf;
	uint64_t announced; /* SX_SIZE_UNKNOWN for a stream */
	uint64_t received;
	int writes;	    /* writes in flight */
	bool failed;	    /* a write failed: abort once they drain */
	uint32_t mode;
	struct timespec mtime;
	uint64_t t0;
	char path[SX_PATH_MAX + 1];
} rfile;

typedef struct dirmeta {
	char *path;
	struct timespec mtime;
} dirmeta;

typedef struct conn {
	bool used;
	unsigned idx;
	int fd;
	char addr[64];
	sx_link link;
	unsigned inflight; /* operations not yet completed */
	bool closing, shut, ok;
	uint64_t deadline;
	uint8_t *rx[RX_SLOTS];
	bool rx_busy[RX_SLOTS];
	int rx_cur;
	bool recv_posted;
	rfile files[MAX_FILES];
	int cur_file; /* receiving data, -1 when none */
	uint8_t tx[2][TX_CAP];
	size_t tx_len[2];
	int tx_fill; /* buffer being filled; the other may be in flight */
	bool tx_sending;
	bool hs_sending;
	sx_store store;
	bool store_open;
	bool eos_received, eos_queued;
	uint64_t files_ok, files_failed, bytes, t0;
	dirmeta *dirs;
	size_t ndirs, dirs_cap;
	sx_err err;
} conn;

typedef struct server {
	const sx_serve_cfg *cfg;
	sx_io *io;
	sx_chan_ctx *ctx;
	int lfd;
	bool accept_posted;
	bool stopping;
	conn *conns;
	unsigned nconns;
	unsigned served;
	sx_class once_result;
} server;

static uint64_t tag_of(unsigned conn_idx, int op, unsigned sub)
{
	return ((uint64_t)conn_idx << 32) | ((uint64_t)op << 24) | sub;
}

static int submit_ok(conn *c, int rc)
{
	if (rc == 0)
		c->inflight++;
	return rc;
}

static void conn_fail(server *s, conn *c, const sx_err *why);
static void hs_send(server *s, conn *c);

/* ---- sending control records ------------------------------------------ */

static void flush_tx(server *s, conn *c)
{
	if (c->tx_sending || c->shut)
		return;
	int b = c->tx_fill;
	if (c->tx_len[b] == 0)
		return;
	sx_err err = {0};
	if (submit_ok(c, sx_io_send(s->io, c->fd, c->tx[b], c->tx_len[b], tag_of(c->idx, OP_SEND, (unsigned)b),
				    &err)) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	c->tx_sending = true;
	c->tx_fill = 1 - b;
}

static int queue_record(server *s, conn *c, const sx_msg *m, uint8_t type, sx_err *err)
{
	int b = c->tx_fill;
	size_t len = 0;
	uint8_t *at = c->tx[b] + c->tx_len[b];
	size_t room = TX_CAP - c->tx_len[b];
	if (m != NULL) {
		SX_GUARD(sx_link_seal_msg(&c->link, m, at, room, &len, err));
	} else {
		if (room < SX_REC_HDR_LEN + SX_REC_TAG_MAX)
			return sx_fail(err, SX_E_OTHER, "reply queue full");
		SX_GUARD(sx_record_seal(&c->link.k.tx, type, 0, at, 0, &len, err));
	}
	c->tx_len[b] += len;
	flush_tx(s, c);
	return 0;
out:
	return -1;
}

static int send_msg(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	return queue_record(s, c, m, SX_REC_CTRL, err);
}

static int send_file_err(server *s, conn *c, uint32_t id, const sx_err *why, sx_err *err)
{
	sx_msg m = {.type = SX_MSG_FILE_ERR,
		    .file_id = id,
		    .err_class = (uint8_t)why->cls,
		    .reason = (const uint8_t *)why->msg,
		    .reason_len = strlen(why->msg)};
	c->files_failed++;
	sx_log("error", "file_refused", "peer=\"%s\" file_id=%u class=%d reason=\"%s\"",
	       c->link.k.peer_name, id, why->cls, why->msg);
	return send_msg(s, c, &m, err);
}

/* ---- connection lifecycle --------------------------------------------- */

static void file_release(rfile *f)
{
	sx_store_end(&f->sf);
	f->state = F_FREE;
}

static bool files_idle(const conn *c)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (c->files[i].state != F_FREE)
			return false;
	return true;
}

static void conn_shutdown(server *s, conn *c)
{
	if (c->shut)
		return;
	c->shut = true;
	shutdown(c->fd, SHUT_RDWR);
	sx_err err = {0};
	if (sx_io_cancel_fd(s->io, c->fd, &err) < 0)
		sx_log("warn", "cancel", "conn=%u reason=\"%s\"", c->idx, err.msg);
}

static void conn_free(server *s, conn *c)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (c->files[i].state != F_FREE)
			file_release(&c->files[i]);
	if (c->store_open)
		sx_store_close(&c->store);
	for (size_t i = 0; i < c->ndirs; i++)
		free(c->dirs[i].path);
	free(c->dirs);
	double secs = (double)(sx_now_ns() - c->t0) / 1e9;
	sx_log(c->ok ? "info" : "error", "conn_close",
	       "conn=%u addr=%s peer=\"%s\" files=%llu failed=%llu bytes=%llu seconds=%.3f result=%s%s%s",
	       c->idx, c->addr, c->link.ready ? c->link.k.peer_name : "", (unsigned long long)c->files_ok,
	       (unsigned long long)c->files_failed, (unsigned long long)c->bytes, secs,
	       c->ok ? "ok" : "failed", c->ok ? "" : " cause=", c->ok ? "" : "see conn_error");
	if (s->cfg->once && s->once_result == SX_OK)
		s->once_result = c->ok ? (c->files_failed ? SX_E_IO : SX_OK)
				       : (c->err.cls != SX_OK ? c->err.cls : SX_E_OTHER);
	sx_link_free(&c->link);
	for (int i = 0; i < RX_SLOTS; i++)
		free(c->rx[i]);
	close(c->fd);
	memset(c, 0, sizeof(*c));
	s->nconns--;
	s->served++;
}

static void maybe_free(server *s, conn *c)
{
	if (c->used && c->closing && !c->tx_sending && !c->hs_sending)
		conn_shutdown(s, c);
	if (c->used && c->closing && c->inflight == 0) {
		/* Writes and flushes have all completed: temporaries can go. */
		conn_free(s, c);
	}
}

static void conn_fail(server *s, conn *c, const sx_err *why)
{
	if (c->closing)
		return;
	/* During the handshake the channel may hold the TLS alert that tells
	 * the peer why: send it before closing. */
	if (c->link.chan != NULL && !c->link.ready)
		hs_send(s, c);
	c->closing = true;
	c->ok = false;
	if (c->err.cls == SX_OK)
		c->err = *why;
	sx_log("error", "conn_error", "conn=%u addr=%s peer=\"%s\" class=%d cause=\"%s\"", c->idx,
	       c->addr, c->link.ready ? c->link.k.peer_name : "", why->cls, why->msg);
	if (c->link.ready && sx_link_hs_done(&c->link)) {
		/* Tell the sender why, sealed, before the connection goes. */
		sx_msg m = {.type = SX_MSG_ERROR,
			    .err_class = (uint8_t)why->cls,
			    .reason = (const uint8_t *)why->msg,
			    .reason_len = strlen(why->msg)};
		sx_err e2 = {0};
		c->closing = false; /* let flush_tx run once */
		if (send_msg(s, c, &m, &e2) < 0)
			sx_log("warn", "conn_error", "conn=%u reason=\"cannot send ERROR: %s\"", c->idx,
			       e2.msg);
		c->closing = true;
	}
	maybe_free(s, c);
}

static void conn_done(server *s, conn *c)
{
	c->closing = true;
	c->ok = true;
	maybe_free(s, c);
}

/* ---- receiving -------------------------------------------------------- */

static int free_rx_slot(const conn *c)
{
	for (int i = 0; i < RX_SLOTS; i++)
		if (!c->rx_busy[i])
			return i;
	return -1;
}

static int free_file(const conn *c)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (c->files[i].state == F_FREE)
			return i;
	return -1;
}

static void post_recv(server *s, conn *c)
{
	sx_err err = {0};
	uint8_t *buf;
	size_t len;
	if (c->recv_posted || c->closing || c->eos_received)
		return;
	if (!c->link.ready) {
		sx_link_hs_recv_buf(&c->link, &buf, &len);
	} else {
		/* Back-pressure: receive only with a buffer and a file slot free. */
		if (c->rx_cur < 0) {
			c->rx_cur = free_rx_slot(c);
			if (c->rx_cur < 0)
				return;
			sx_link_rx_set(&c->link, c->rx[c->rx_cur],
				       SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX);
		}
		if (free_file(c) < 0)
			return;
		sx_link_rx_want(&c->link, &buf, &len);
	}
	if (submit_ok(c, sx_io_recv(s->io, c->fd, buf, len, tag_of(c->idx, OP_RECV, 0), &err)) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	c->recv_posted = true;
}

static void hs_send(server *s, conn *c)
{
	const uint8_t *buf;
	size_t len;
	sx_err err = {0};
	if (c->hs_sending || c->closing)
		return;
	sx_link_hs_output(&c->link, &buf, &len);
	if (len == 0)
		return;
	if (submit_ok(c, sx_io_send(s->io, c->fd, buf, len, tag_of(c->idx, OP_HS_SEND, 0), &err)) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	c->hs_sending = true;
}

static int maybe_finish_session(server *s, conn *c, sx_err *err)
{
	if (!c->eos_received || c->eos_queued || !files_idle(c))
		return 0;
	/* Folder mtimes last, deepest first, once their content is in. */
	for (size_t i = c->ndirs; i-- > 0;) {
		sx_err e2 = {0};
		if (sx_store_dir_mtime(&c->store, (const uint8_t *)c->dirs[i].path,
				       strlen(c->dirs[i].path), &c->dirs[i].mtime, &e2) < 0)
			sx_log("warn", "dir_mtime", "peer=\"%s\" reason=\"%s\"", c->link.k.peer_name,
			       e2.msg);
	}
	c->eos_queued = true;
	return queue_record(s, c, NULL, SX_REC_EOS, err);
}

static int start_finish(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	sx_err ferr = {0};
	if (f->failed) {
		file_release(f);
		return maybe_finish_session(s, c, err);
	}
	if (sx_store_meta(&f->sf, f->mode, &f->mtime, &ferr) < 0) {
		SX_GUARD(send_file_err(s, c, f->id, &ferr, err));
		file_release(f);
		return maybe_finish_session(s, c, err);
	}
	f->state = F_FSYNC;
	return submit_ok(c, sx_io_fsync(s->io, f->sf.fd, tag_of(c->idx, OP_FSYNC, (unsigned)fi), err));
out:
	return -1;
}

static int on_ctrl(server *s, conn *c, const uint8_t *pt, size_t len, sx_err *err)
{
	sx_msg m;
	SX_GUARD(sx_msg_decode(pt, len, &m, err));
	switch (m.type) {
	case SX_MSG_DIR: {
		sx_err derr = {0};
		if (sx_store_mkdir(&c->store, m.path, m.path_len, m.mode, &derr) < 0)
			return send_file_err(s, c, 0, &derr, err);
		if (c->ndirs < MAX_DIRS) {
			if (c->ndirs == c->dirs_cap) {
				size_t ncap = c->dirs_cap ? c->dirs_cap * 2 : 16;
				dirmeta *nd = realloc(c->dirs, ncap * sizeof(*nd));
				if (nd == NULL)
					return sx_fail(err, SX_E_OTHER, "out of memory");
				c->dirs = nd;
				c->dirs_cap = ncap;
			}
			c->dirs[c->ndirs].path = strndup((const char *)m.path, m.path_len);
			c->dirs[c->ndirs].mtime.tv_sec = m.mtime_sec;
			c->dirs[c->ndirs].mtime.tv_nsec = m.mtime_nsec;
			if (c->dirs[c->ndirs].path != NULL)
				c->ndirs++;
		}
		return 0;
	}
	case SX_MSG_FILE_BEGIN: {
		if (c->cur_file >= 0)
			return sx_fail(err, SX_E_INTEGRITY, "FILE_BEGIN inside another file");
		int fi = free_file(c);
		if (fi < 0)
			return sx_fail(err, SX_E_OTHER, "no file slot (internal)");
		rfile *f = &c->files[fi];
		memset(f, 0, sizeof(*f));
		f->sf.fd = f->sf.dir_fd = -1;
		f->id = m.file_id;
		f->announced = m.size;
		f->mode = m.mode;
		f->mtime.tv_sec = m.mtime_sec;
		f->mtime.tv_nsec = m.mtime_nsec;
		f->t0 = sx_now_ns();
		snprintf(f->path, sizeof(f->path), "%.*s", (int)m.path_len, (const char *)m.path);
		c->cur_file = fi;
		sx_err ferr = {0};
		if (sx_store_begin(&c->store, m.path, m.path_len, &f->sf, &ferr) < 0) {
			f->state = F_DISCARD;
			return send_file_err(s, c, f->id, &ferr, err);
		}
		f->state = F_OPEN;
		return 0;
	}
	case SX_MSG_FILE_END: {
		if (c->cur_file < 0 || c->files[c->cur_file].id != m.file_id)
			return sx_fail(err, SX_E_INTEGRITY, "FILE_END for a file that was not begun");
		int fi = c->cur_file;
		rfile *f = &c->files[fi];
		c->cur_file = -1;
		if (f->received != m.size ||
		    (f->announced != SX_SIZE_UNKNOWN && f->announced != m.size))
			return sx_fail(err, SX_E_INTEGRITY,
				       "'%s': %llu bytes received, %llu announced, %llu at the end",
				       f->path, (unsigned long long)f->received,
				       (unsigned long long)f->announced, (unsigned long long)m.size);
		if (f->state == F_DISCARD) {
			/* After a failed write, others of this file may still be in
			 * flight: releasing now would close the temporary under them
			 * and free the slot, and their completions would then count
			 * down the writes of whatever file takes the slot next.
			 * on_write releases it once they drain. */
			if (f->writes == 0)
				file_release(f);
			return 0;
		}
		f->state = F_ENDING;
		if (f->writes == 0)
			return start_finish(s, c, fi, err);
		return 0;
	}
	default:
		return sx_fail(err, SX_E_INTEGRITY, "unexpected control message 0x%02x from sender",
			       m.type);
	}
out:
	return -1;
}

static int on_data(server *s, conn *c, uint8_t *pt, size_t len, sx_err *err)
{
	if (c->cur_file < 0)
		return sx_fail(err, SX_E_INTEGRITY, "data outside a file");
	rfile *f = &c->files[c->cur_file];
	if (f->announced != SX_SIZE_UNKNOWN && len > f->announced - f->received)
		return sx_fail(err, SX_E_INTEGRITY, "'%s': more data than announced", f->path);
	uint64_t off = f->received;
	f->received += len;
	c->bytes += len;
	if (f->state == F_DISCARD || f->failed || len == 0)
		return 0; /* the buffer is free again at once */
	/* The buffer stays busy until the write completes. */
	int slot = c->rx_cur;
	c->rx_busy[slot] = true;
	c->rx_cur = -1;
	f->writes++;
	unsigned sub = ((unsigned)c->cur_file << 8) | (unsigned)slot;
	return submit_ok(c, sx_io_write(s->io, f->sf.fd, pt, len, off, tag_of(c->idx, OP_WRITE, sub), err));
}

static int on_record(server *s, conn *c, uint8_t type, uint8_t *pt, size_t len, sx_err *err)
{
	switch (type) {
	case SX_REC_CTRL:
		return on_ctrl(s, c, pt, len, err);
	case SX_REC_DATA:
		return on_data(s, c, pt, len, err);
	case SX_REC_EOS:
		if (c->cur_file >= 0)
			return sx_fail(err, SX_E_INTEGRITY, "end of stream inside a file");
		c->eos_received = true;
		return maybe_finish_session(s, c, err);
	default:
		return sx_fail(err, SX_E_INTEGRITY, "unexpected record type %u", type);
	}
}

static void on_recv(server *s, conn *c, int64_t res)
{
	sx_err err = {0};
	c->recv_posted = false;
	if (c->closing)
		return;
	if (res <= 0) {
		if (res == 0 && !c->link.ready)
			sx_fail(&err, SX_E_NET, "closed during the handshake");
		else if (res == 0)
			sx_fail(&err, SX_E_INTEGRITY, "connection closed without end-of-stream (truncated)");
		else
			sx_fail_errno(&err, SX_E_NET, (int)-res, "receive failed");
		conn_fail(s, c, &err);
		return;
	}
	c->deadline = sx_now_ns() + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
	if (!c->link.ready) {
		if (sx_link_hs_input(&c->link, (size_t)res, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
		if (c->link.ready) {
			sx_log("info", "handshake", "conn=%u addr=%s peer=\"%s\" fingerprint=%s suite=%s",
			       c->idx, c->addr, c->link.k.peer_name, c->link.k.peer_fingerprint,
			       sx_suite_name((sx_suite)c->link.k.hello.suite));
			c->link.max_body = s->cfg->max_record;
			size_t cap = SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX;
			for (int i = 0; i < RX_SLOTS; i++)
				if ((c->rx[i] = malloc(cap)) == NULL) {
					sx_fail(&err, SX_E_OTHER, "out of memory");
					conn_fail(s, c, &err);
					return;
				}
			if (sx_store_open(&c->store, s->cfg->out_dir, c->link.k.peer_name,
					  s->cfg->overwrite, &err) < 0) {
				hs_send(s, c); /* CONFIRM first, so ERROR can follow */
				conn_fail(s, c, &err);
				return;
			}
			c->store_open = true;
			c->rx_cur = -1;
		}
		hs_send(s, c);
		post_recv(s, c);
		return;
	}
	bool complete;
	uint8_t type, flags, *pt;
	size_t len;
	if (sx_link_rx_input(&c->link, (size_t)res, &complete, &type, &flags, &pt, &len, &err) < 0 ||
	    (complete && on_record(s, c, type, pt, len, &err) < 0)) {
		conn_fail(s, c, &err);
		return;
	}
	post_recv(s, c);
}

static void on_write(server *s, conn *c, unsigned sub, int64_t res)
{
	int fi = (int)(sub >> 8);
	int slot = (int)(sub & 0xff);
	rfile *f = &c->files[fi];
	sx_err err = {0};
	c->rx_busy[slot] = false;
	f->writes--;
	if (res < 0 && !f->failed && !c->closing) {
		sx_err ferr = {0};
		sx_fail_errno(&ferr, SX_E_IO, (int)-res, "'%s': write failed on the receiver", f->path);
		f->failed = true;
		if (f->state == F_OPEN)
			f->state = F_DISCARD;
		if (send_file_err(s, c, f->id, &ferr, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
	}
	if (c->closing)
		return;
	if (f->writes == 0 && f->state == F_ENDING && start_finish(s, c, fi, &err) < 0) {
		conn_fail(s, c, &err);
		return;
	}
	if (f->writes == 0 && f->state == F_DISCARD && f->failed && c->cur_file != fi) {
		file_release(f);
		if (maybe_finish_session(s, c, &err) < 0) {
			conn_fail(s, c, &err);
			return;
		}
	}
	post_recv(s, c);
}

static void on_fsync(server *s, conn *c, int fi, int64_t res, bool dir)
{
	rfile *f = &c->files[fi];
	sx_err err = {0}, ferr = {0};
	if (c->closing)
		return;
	if (res < 0) {
		sx_fail_errno(&ferr, SX_E_IO, (int)-res, "'%s': fsync failed on the receiver", f->path);
		goto refuse;
	}
	if (!dir) {
		if (sx_store_commit(&c->store, &f->sf, &ferr) < 0)
			goto refuse;
		f->state = F_DIRSYNC;
		if (submit_ok(c, sx_io_fsync(s->io, f->sf.dir_fd, tag_of(c->idx, OP_DIRSYNC, (unsigned)fi),
					     &err)) < 0)
			goto fatal;
		return;
	}
	double secs = (double)(sx_now_ns() - f->t0) / 1e9;
	sx_log("info", "file_stored", "peer=\"%s\" path=\"%s\" size=%llu seconds=%.3f mib_per_s=%.1f",
	       c->link.k.peer_name, f->path, (unsigned long long)f->received, secs,
	       secs > 0 ? (double)f->received / 1048576.0 / secs : 0.0);
	sx_msg m = {.type = SX_MSG_FILE_OK, .file_id = f->id, .size = f->received};
	c->files_ok++;
	file_release(f);
	if (send_msg(s, c, &m, &err) < 0 || maybe_finish_session(s, c, &err) < 0)
		goto fatal;
	post_recv(s, c);
	return;
refuse:
	if (send_file_err(s, c, f->id, &ferr, &err) < 0)
		goto fatal;
	file_release(f);
	if (maybe_finish_session(s, c, &err) < 0)
		goto fatal;
	post_recv(s, c);
	return;
fatal:
	conn_fail(s, c, &err);
}

static void on_send(server *s, conn *c, int op, unsigned sub, int64_t res)
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
		conn_fail(s, c, &err);
		return;
	}
	if (c->closing)
		return;
	if (op == OP_HS_SEND)
		hs_send(s, c);
	flush_tx(s, c);
	if (c->eos_queued && !c->tx_sending && c->tx_len[c->tx_fill] == 0)
		conn_done(s, c);
}

/* ---- accepting and the loop -------------------------------------------- */

static void post_accept(server *s)
{
	sx_err err = {0};
	if (s->accept_posted || s->stopping || s->lfd < 0 || s->nconns >= s->cfg->max_conns)
		return;
	if (s->cfg->once && s->served + s->nconns > 0)
		return;
	if (sx_io_accept(s->io, s->lfd, tag_of(0xffffffffu, OP_ACCEPT, 0), &err) < 0) {
		sx_log("error", "accept", "reason=\"%s\"", err.msg);
		return;
	}
	s->accept_posted = true;
}

static void on_accept(server *s, int64_t res)
{
	s->accept_posted = false;
	if (res < 0) {
		if (res != -ECANCELED)
			sx_log("warn", "accept", "reason=\"%s\"", strerror((int)-res));
		post_accept(s);
		return;
	}
	int fd = (int)res;
	if (s->stopping) {
		close(fd);
		return;
	}
	conn *c = NULL;
	for (unsigned i = 0; i < s->cfg->max_conns; i++)
		if (!s->conns[i].used) {
			c = &s->conns[i];
			c->idx = i;
			break;
		}
	if (c == NULL) {
		close(fd);
		return;
	}
	c->used = true;
	c->fd = fd;
	c->cur_file = -1;
	c->rx_cur = -1;
	c->t0 = sx_now_ns();
	c->deadline = c->t0 + (uint64_t)s->cfg->handshake_timeout_ms * 1000000u;
	s->nconns++;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[48] = "?";
	int port = 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
	sx_log("info", "conn_open", "conn=%u addr=%s", c->idx, c->addr);
	sx_err err = {0};
	if (sx_link_init(&c->link, s->ctx, &err) < 0) {
		conn_fail(s, c, &err);
	} else {
		post_recv(s, c);
	}
	post_accept(s);
}

static void check_deadlines(server *s)
{
	uint64_t now = sx_now_ns();
	for (unsigned i = 0; i < s->cfg->max_conns; i++) {
		conn *c = &s->conns[i];
		if (!c->used || c->closing || now < c->deadline)
			continue;
		/* Flushes in flight are not the peer's fault. */
		sx_err err = {0};
		sx_fail(&err, SX_E_NET, "%s timeout",
			c->link.ready ? "idle" : "handshake");
		conn_fail(s, c, &err);
	}
}

static void dispatch(server *s, const sx_cqe *q)
{
	unsigned ci = (unsigned)(q->tag >> 32);
	int op = (int)((q->tag >> 24) & 0xff);
	unsigned sub = (unsigned)(q->tag & 0xffffff);
	if (op == OP_ACCEPT) {
		on_accept(s, q->res);
		return;
	}
	if (ci >= s->cfg->max_conns || !s->conns[ci].used) {
		sx_log("error", "bug", "completion for unknown connection %u op %d", ci, op);
		return;
	}
	conn *c = &s->conns[ci];
	c->inflight--;
	switch (op) {
	case OP_RECV:
		on_recv(s, c, q->res);
		break;
	case OP_HS_SEND:
	case OP_SEND:
		on_send(s, c, op, sub, q->res);
		break;
	case OP_WRITE:
		on_write(s, c, sub, q->res);
		break;
	case OP_FSYNC:
		on_fsync(s, c, (int)sub, q->res, false);
		break;
	case OP_DIRSYNC:
		on_fsync(s, c, (int)sub, q->res, true);
		break;
	default:
		sx_log("error", "bug", "unknown completion op %d", op);
	}
	if (c->used)
		maybe_free(s, c);
}

int sx_serve_run(const sx_serve_cfg *cfg, sx_err *err)
{
	server s = {.cfg = cfg, .lfd = -1};
	int rc = -1, port = 0;
	sx_chan_cfg cc = {.server = true, .id = cfg->id, .crl = cfg->crl, .max_record = cfg->max_record};
	s.conns = calloc(cfg->max_conns, sizeof(conn));
	if (s.conns == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_chan_ctx_new(&s.ctx, &cc, err));
	SX_GUARD(sx_io_open(&s.io, cfg->io, cfg->max_conns * (RX_SLOTS + MAX_FILES + 4) + 8, err));
	SX_GUARD(sx_net_listen(cfg->listen, &s.lfd, &port, err));
	sx_log("info", "listen", "addr=%s port=%d io=%s out=\"%s\" max_conns=%u", cfg->listen, port,
	       sx_io_name(s.io), cfg->out_dir, cfg->max_conns);
	if (cfg->on_listen)
		cfg->on_listen(cfg->listen_ctx, port);
	post_accept(&s);
	for (;;) {
		if (cfg->stop && *cfg->stop && !s.stopping) {
			s.stopping = true;
			sx_log("info", "shutdown", "connections=%u", s.nconns);
			if (s.accept_posted && sx_io_cancel_fd(s.io, s.lfd, err) < 0)
				goto out;
			for (unsigned i = 0; i < cfg->max_conns; i++)
				if (s.conns[i].used) {
					sx_err why = {0};
					sx_fail(&why, SX_E_NET, "server shutting down");
					conn_fail(&s, &s.conns[i], &why);
				}
		}
		if (s.stopping && s.nconns == 0 && !s.accept_posted)
			break;
		if (cfg->once && s.served > 0 && s.nconns == 0)
			break;
		sx_cqe cqe[64];
		int n = sx_io_wait(s.io, cqe, SX_ARRAY_LEN(cqe), 250, err);
		SX_GUARD(n);
		for (int i = 0; i < n; i++)
			dispatch(&s, &cqe[i]);
		check_deadlines(&s);
	}
	rc = 0;
	if (cfg->once && s.once_result != SX_OK)
		rc = sx_fail(err, s.once_result, "the session failed (see the log)");
out:
	if (s.io != NULL)
		sx_io_close(s.io);
	if (s.lfd >= 0)
		close(s.lfd);
	sx_chan_ctx_free(s.ctx);
	free(s.conns);
	return rc;
}
