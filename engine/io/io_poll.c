/* engine/io backend: poll(2), the fallback where io_uring is unavailable.
 *
 * Ops wait in a FIFO. Regular files and block devices are always ready, so
 * their reads, writes and fsyncs run synchronously inside sx_io_wait. Socket
 * ops and ops on pipes or character devices wait for readiness with poll()
 * and then make one non-blocking step: sockets use MSG_DONTWAIT (the caller's
 * fd flags are left alone), a listening socket is made O_NONBLOCK once, and a
 * pipe write moves at most PIPE_BUF bytes per readiness event so that a
 * blocking pipe never blocks the loop. Completions are reported in the order
 * they happened. */
#include "engine/io/io_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"

typedef struct poll_priv {
	unsigned *pend; /* slot indices in submission order */
	unsigned npend;
	unsigned *doneq; /* ring of completed slot indices, completion order */
	unsigned dhead, dcount;
	struct pollfd *pfds;
	unsigned *pfd_slot; /* pfds[i] belongs to slot pfd_slot[i] */
} poll_priv;

static poll_priv *priv_of(sx_io *io)
{
	return io->priv;
}

static void finish(sx_io *io, unsigned idx, int64_t res)
{
	poll_priv *p = priv_of(io);
	sx_io_slot *s = &io->slots[idx];
	if (s->state != SX_SLOT_PENDING)
		sx_io_bug("poll: completion for a slot not in flight", idx);
	s->state = SX_SLOT_DONE;
	s->res = res;
	p->doneq[(p->dhead + p->dcount) % io->depth] = idx;
	p->dcount++;
}

static uint8_t *cursor(const sx_io_slot *s)
{
	return s->buf != NULL ? s->buf + s->done : NULL;
}

static size_t chunk(const sx_io_slot *s, size_t cap)
{
	size_t rem = s->len - s->done;
	return rem > cap ? cap : rem;
}

/* Accounts n moved bytes (or -1/errno) of a send or write; finishes the op
 * when the buffer is out or on a hard error. Returns true to keep going. */
static bool all_out_step(sx_io *io, unsigned idx, ssize_t n, int e)
{
	sx_io_slot *s = &io->slots[idx];
	if (n < 0) {
		if (e == EINTR)
			return true;
		if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS)
			finish(io, idx, -e);
		return false;
	}
	if (n == 0 && s->done < s->len) {
		finish(io, idx, -EIO);
		return false;
	}
	s->done += (size_t)n;
	if (s->done >= s->len) {
		finish(io, idx, (int64_t)s->done);
		return false;
	}
	return true;
}

/* One-shot ops (accept, recv, read): finish unless the call would block. */
static void once_step(sx_io *io, unsigned idx, ssize_t n, int e)
{
	if (n >= 0)
		finish(io, idx, n);
	else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
		finish(io, idx, -e);
}

static void step_accept(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
	int e = errno;
	if (fd < 0 && e == ECONNABORTED)
		return; /* the peer gave up before we looked: keep waiting */
	once_step(io, idx, fd, e);
}

static void step_recv(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	ssize_t n;
	if (s->sock)
		n = recv(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX), MSG_DONTWAIT);
	else
		n = read(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX));
	once_step(io, idx, n, errno);
}

static void step_send(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	bool more = true;
	while (more) {
		ssize_t n;
		if (s->sock) {
			n = send(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX),
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			/* A blocking pipe takes PIPE_BUF bytes without blocking
			 * once poll said POLLOUT; then wait for the next event. */
			n = write(s->fd, cursor(s), chunk(s, PIPE_BUF));
			more = false;
		}
		more = all_out_step(io, idx, n, errno) && more;
	}
}

/* Regular files: always ready, performed here to completion. */
static void run_file_read(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	ssize_t n;
	do {
		if (s->off == SX_IO_OFF_CUR)
			n = read(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX));
		else
			n = pread(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX), (off_t)s->off);
	} while (n < 0 && errno == EINTR);
	finish(io, idx, n >= 0 ? n : -errno);
}

static void run_file_write(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	bool more = true;
	while (more) {
		ssize_t n;
		if (s->off == SX_IO_OFF_CUR)
			n = write(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX));
		else
			n = pwrite(s->fd, cursor(s), chunk(s, SX_IO_CHUNK_MAX),
				   (off_t)(s->off + s->done));
		int e = errno;
		more = all_out_step(io, idx, n, e);
		if (!more && s->state == SX_SLOT_PENDING)
			finish(io, idx, -e); /* EAGAIN on a file: do not spin */
	}
}

static void run_file_fsync(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	int r;
	do
		r = fsync(s->fd);
	while (r < 0 && errno == EINTR);
	finish(io, idx, r < 0 ? -errno : 0);
}

static void run_file(sx_io *io, unsigned idx)
{
	switch ((sx_io_op)io->slots[idx].op) {
	case SX_OP_READ:
	case SX_OP_RECV: run_file_read(io, idx); return;
	case SX_OP_WRITE:
	case SX_OP_SEND: run_file_write(io, idx); return;
	case SX_OP_FSYNC: run_file_fsync(io, idx); return;
	case SX_OP_ACCEPT:
	case SX_OP_NONE:
	case SX_OP_CANCEL:
	case SX_OP_MAX: break;
	}
	sx_io_bug("poll: file op of unknown kind", io->slots[idx].op);
}

static void step_ready(sx_io *io, unsigned idx)
{
	switch ((sx_io_op)io->slots[idx].op) {
	case SX_OP_ACCEPT: step_accept(io, idx); return;
	case SX_OP_RECV:
	case SX_OP_READ: step_recv(io, idx); return;
	case SX_OP_SEND:
	case SX_OP_WRITE: step_send(io, idx); return;
	case SX_OP_FSYNC: run_file_fsync(io, idx); return;
	case SX_OP_NONE:
	case SX_OP_CANCEL:
	case SX_OP_MAX: break;
	}
	sx_io_bug("poll: ready op of unknown kind", io->slots[idx].op);
}

static bool is_output(uint8_t op)
{
	return op == SX_OP_SEND || op == SX_OP_WRITE;
}

static int poll_submit(sx_io *io, unsigned idx, sx_err *err)
{
	(void)err;
	poll_priv *p = priv_of(io);
	sx_io_slot *s = &io->slots[idx];
	struct stat st;
	p->pend[p->npend++] = idx;
	/* A bad fd is the op's result, not a submission failure. */
	if (fstat(s->fd, &st) < 0) {
		finish(io, idx, -errno);
		return 0;
	}
	s->sock = S_ISSOCK(st.st_mode);
	s->file = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || s->op == SX_OP_FSYNC;
	if (s->op == SX_OP_ACCEPT) {
		int fl = s->sock ? fcntl(s->fd, F_GETFL) : -1;
		if (!s->sock)
			finish(io, idx, -ENOTSOCK);
		else if (fl < 0 ||
			 (!(fl & O_NONBLOCK) && fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0))
			finish(io, idx, -errno);
	}
	return 0;
}

static int poll_cancel_fd(sx_io *io, int fd, sx_err *err)
{
	(void)err;
	poll_priv *p = priv_of(io);
	for (unsigned i = 0; i < p->npend; i++) {
		unsigned idx = p->pend[i];
		if (io->slots[idx].state == SX_SLOT_PENDING && io->slots[idx].fd == fd)
			finish(io, idx, -ECANCELED);
	}
	return 0;
}

/* Drops finished ops from the pending FIFO, keeping the order. */
static void compact(sx_io *io)
{
	poll_priv *p = priv_of(io);
	unsigned k = 0;
	for (unsigned i = 0; i < p->npend; i++)
		if (io->slots[p->pend[i]].state == SX_SLOT_PENDING)
			p->pend[k++] = p->pend[i];
	p->npend = k;
}

/* True when an earlier pending op moves bytes on the same fd in the same
 * direction: it goes first, so the stream keeps its submission order. */
static bool queued_behind(sx_io *io, unsigned pos)
{
	poll_priv *p = priv_of(io);
	const sx_io_slot *s = &io->slots[p->pend[pos]];
	for (unsigned i = 0; i < pos; i++) {
		const sx_io_slot *o = &io->slots[p->pend[i]];
		if (o->state == SX_SLOT_PENDING && o->fd == s->fd &&
		    is_output(o->op) == is_output(s->op))
			return true;
	}
	return false;
}

static unsigned build_pollfds(sx_io *io)
{
	poll_priv *p = priv_of(io);
	unsigned n = 0;
	for (unsigned i = 0; i < p->npend; i++) {
		unsigned idx = p->pend[i];
		const sx_io_slot *s = &io->slots[idx];
		if (s->state != SX_SLOT_PENDING || s->file || queued_behind(io, i))
			continue;
		p->pfds[n].fd = s->fd;
		p->pfds[n].events = is_output(s->op) ? POLLOUT : POLLIN;
		p->pfds[n].revents = 0;
		p->pfd_slot[n] = idx;
		n++;
	}
	return n;
}

static void run_files(sx_io *io)
{
	poll_priv *p = priv_of(io);
	for (unsigned i = 0; i < p->npend; i++) {
		unsigned idx = p->pend[i];
		if (io->slots[idx].state == SX_SLOT_PENDING && io->slots[idx].file)
			run_file(io, idx);
	}
}

static unsigned harvest(sx_io *io, sx_cqe *out, unsigned max)
{
	poll_priv *p = priv_of(io);
	unsigned n = 0;
	while (n < max && p->dcount > 0) {
		unsigned idx = p->doneq[p->dhead];
		p->dhead = (p->dhead + 1) % io->depth;
		p->dcount--;
		out[n].tag = io->slots[idx].tag;
		out[n].res = io->slots[idx].res;
		sx_io_slot_free(io, idx);
		n++;
	}
	return n;
}

static int poll_wait(sx_io *io, sx_cqe *out, unsigned max, int timeout_ms, sx_err *err)
{
	poll_priv *p = priv_of(io);
	uint64_t deadline = sx_io_deadline(timeout_ms);
	int rc = -1;
	for (;;) {
		compact(io);
		run_files(io);
		int ms = p->dcount > 0 ? 0 : sx_io_ms_left(deadline);
		unsigned nfds = build_pollfds(io);
		if (nfds == 0 && ms == 0)
			break;
		int r = poll(p->pfds, nfds, ms);
		if (r < 0 && errno == EINTR)
			break; /* a signal: let the caller look at its flags */
		SX_ENSURE(r >= 0, err, SX_E_OTHER, "poll failed: errno %d", errno);
		for (unsigned i = 0; i < nfds && r > 0; i++) {
			short ev = p->pfds[i].revents;
			unsigned idx = p->pfd_slot[i];
			if (ev == 0 || io->slots[idx].state != SX_SLOT_PENDING)
				continue;
			if (ev & POLLNVAL)
				finish(io, idx, -EBADF);
			else
				step_ready(io, idx);
		}
		if (p->dcount > 0 || ms == 0)
			break;
	}
	compact(io);
	rc = (int)harvest(io, out, max);
out:
	return rc;
}

static void priv_free(poll_priv *p)
{
	if (p == NULL)
		return;
	free(p->pend);
	free(p->doneq);
	free(p->pfds);
	free(p->pfd_slot);
	free(p);
}

static int poll_open(sx_io *io, sx_err *err)
{
	int rc = -1;
	poll_priv *p = calloc(1, sizeof(*p));
	SX_ENSURE(p != NULL, err, SX_E_OTHER, "poll: out of memory");
	p->pend = calloc(io->depth, sizeof(*p->pend));
	p->doneq = calloc(io->depth, sizeof(*p->doneq));
	p->pfds = calloc(io->depth, sizeof(*p->pfds));
	p->pfd_slot = calloc(io->depth, sizeof(*p->pfd_slot));
	SX_ENSURE(p->pend != NULL && p->doneq != NULL && p->pfds != NULL && p->pfd_slot != NULL,
		  err, SX_E_OTHER, "poll: out of memory for %u slots", io->depth);
	io->priv = p;
	p = NULL;
	rc = 0;
out:
	priv_free(p);
	return rc;
}

/* Nothing is in the kernel: pending ops are dropped. Accepted fds that the
 * caller never saw are closed. */
static void poll_close(sx_io *io)
{
	poll_priv *p = priv_of(io);
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->dcount; i++) {
		const sx_io_slot *s = &io->slots[p->doneq[(p->dhead + i) % io->depth]];
		if (s->op == SX_OP_ACCEPT && s->res >= 0)
			close((int)s->res);
	}
	priv_free(p);
	io->priv = NULL;
}

const sx_io_backend sx_io_poll_backend = {
    .name = "poll",
    .open = poll_open,
    .submit = poll_submit,
    .cancel_fd = poll_cancel_fd,
    .wait = poll_wait,
    /* Plain syscalls gain nothing from registration: no file_add, buf_add. */
    .close = poll_close,
};
