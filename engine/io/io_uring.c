/* engine/io backend: io_uring. Each op lives in a slot of the shared table;
 * user_data encodes {generation, op, slot} so that every completion is
 * matched to exactly one slot, and anything else is a bug. Short sends and
 * writes are resubmitted from the same slot until the buffer is out. */
#include "engine/io/io_int.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/sx_util.h"

/* How long close() waits for the kernel to give back in-flight buffers. */
#define SX_URING_DRAIN_MS      5000
#define SX_URING_DRAIN_STEP_MS 100

/* Slots in the sparse file and buffer tables: from depth, within bounds. */
#define SX_URING_TABLE_MIN 16u
#define SX_URING_TABLE_MAX 4096u

/* The fd -> slot map (file_of) is indexed by fd, so it grows to the largest
 * fd registered. Linux's default fs.nr_open is 1 << 20: no descriptor is
 * above it unless an administrator raised that limit. A larger fd is simply
 * not registered (ops use the plain fd), and the map stays within 4 MiB. */
#define SX_URING_FD_MAX (1u << 20)

/* A registered buffer region and its slot in the ring's buffer table. */
typedef struct region {
	uintptr_t lo;
	size_t len;
	unsigned slot;
} region;

typedef struct uring_priv {
	struct io_uring ring;
	bool ring_ok;
	bool draining; /* close(): accepted fds nobody will see are closed */
	bool zc_ok;    /* the kernel has IORING_OP_SEND_ZC */
	/* Fixed files: a sparse table of files_cap slots, registered at open
	 * (files_ok false when the kernel refused it). */
	bool files_ok;
	unsigned files_cap;
	unsigned *file_of;  /* by fd: its slot + 1, 0 when not registered */
	size_t file_of_len; /* sx_grow, at most SX_URING_FD_MAX */
	/* by fd: ops still to come before it is registered (sx_io_file_add_after);
	 * 0: none asked for. As long as file_of. */
	uint16_t *file_wait;
	size_t file_wait_len;
	bool file_of_warned;  /* the map's cap was logged once */
	unsigned *files_free; /* stack of free slots */
	unsigned nfiles_free;
	/* Fixed buffers: likewise; regions sorted by address for the per-op
	 * lookup (a binary search). */
	bool bufs_ok;
	unsigned bufs_cap;
	region *regions;
	unsigned nregions;
	unsigned *bufs_free;
	unsigned nbufs_free;
} uring_priv;

/* user_data: bits 40..63 slot generation (low 24 bits), 32..39 op, 0..31
 * slot index. */
static uint64_t ud_encode(sx_io_op op, uint32_t gen, unsigned idx)
{
	return ((uint64_t)(gen & 0xffffffu) << 40) | ((uint64_t)op << 32) | idx;
}

static uring_priv *priv_of(sx_io *io)
{
	return io->priv;
}

/* Gets an SQE, flushing the SQ to the kernel once when it is full.
 * Returns NULL and sets *rc to -errno on failure. */
static struct io_uring_sqe *get_sqe(uring_priv *u, int *rc)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (sqe != NULL)
		return sqe;
	int n = io_uring_submit(&u->ring);
	if (n < 0) {
		*rc = n;
		return NULL;
	}
	sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL)
		*rc = -EBUSY;
	return sqe;
}

/* Index of the first region starting above a. */
static unsigned region_after(const uring_priv *u, uintptr_t a)
{
	unsigned lo = 0, hi = u->nregions;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (u->regions[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Slot of the registered region holding [p, p + n), or -1. */
static int fixed_index(const uring_priv *u, const uint8_t *p, size_t n)
{
	if (p == NULL || u->nregions == 0)
		return -1;
	uintptr_t a = (uintptr_t)p;
	unsigned at = region_after(u, a);
	if (at == 0)
		return -1;
	const region *r = &u->regions[at - 1];
	if (a - r->lo <= r->len && n <= r->len - (a - r->lo))
		return (int)r->slot;
	return -1;
}

/* Slot of fd in the fixed file table, or -1. */
static int file_index(const uring_priv *u, int fd)
{
	if (fd >= 0 && (size_t)fd < u->file_of_len)
		return (int)u->file_of[fd] - 1;
	return -1;
}

static bool file_register(sx_io *io, int fd);

/* An op on fd: one fewer before a registration asked for with
 * sx_io_file_add_after, which is made now when none is left (before the
 * op's SQE is taken: registering submits what is queued). */
static void file_count(sx_io *io, int fd)
{
	uring_priv *u = priv_of(io);
	if (fd < 0 || (size_t)fd >= u->file_wait_len || u->file_wait[fd] == 0)
		return;
	if (--u->file_wait[fd] == 0)
		(void)file_register(io, fd);
}

/* Queues an SQE for what is left of the op in slot idx. Returns 0 or -errno. */
static int prep_slot(sx_io *io, unsigned idx)
{
	sx_io_slot *s = &io->slots[idx];
	int rc = 0;
	file_count(io, s->fd);
	struct io_uring_sqe *sqe = get_sqe(priv_of(io), &rc);
	if (sqe == NULL)
		return rc;
	size_t rem = s->len - s->done;
	unsigned n = rem > SX_IO_CHUNK_MAX ? SX_IO_CHUNK_MAX : (unsigned)rem;
	uint8_t *p = s->buf != NULL ? s->buf + s->done : NULL;
	uint64_t off = s->off;
	int fx = fixed_index(priv_of(io), p, n);
	int ff = file_index(priv_of(io), s->fd);
	switch ((sx_io_op)s->op) {
	case SX_OP_ACCEPT: io_uring_prep_accept(sqe, s->fd, NULL, NULL, SOCK_CLOEXEC); break;
	case SX_OP_RECV: io_uring_prep_recv(sqe, s->fd, p, n, 0); break;
	case SX_OP_SEND:
		if (io->zerocopy_min != 0 && n >= io->zerocopy_min && priv_of(io)->zc_ok) {
			s->zc_wait = false;
			if (fx >= 0)
				io_uring_prep_send_zc_fixed(sqe, s->fd, p, n, MSG_NOSIGNAL, 0,
							    (unsigned)fx);
			else
				io_uring_prep_send_zc(sqe, s->fd, p, n, MSG_NOSIGNAL, 0);
		} else {
			io_uring_prep_send(sqe, s->fd, p, n, MSG_NOSIGNAL);
		}
		break;
	case SX_OP_READ:
		/* SX_IO_OFF_CUR is (u64)-1: io_uring reads at the file position. */
		if (fx >= 0)
			io_uring_prep_read_fixed(sqe, s->fd, p, n, off, fx);
		else
			io_uring_prep_read(sqe, s->fd, p, n, off);
		break;
	case SX_OP_WRITE:
		if (off != SX_IO_OFF_CUR)
			off += s->done;
		if (fx >= 0)
			io_uring_prep_write_fixed(sqe, s->fd, p, n, off, fx);
		else
			io_uring_prep_write(sqe, s->fd, p, n, off);
		break;
	case SX_OP_FSYNC: io_uring_prep_fsync(sqe, s->fd, 0); break;
	case SX_OP_NONE:
	case SX_OP_CANCEL:
	case SX_OP_MAX: sx_io_bug("prep of an op that has no SQE", s->op);
	}
	if (ff >= 0) {
		/* Every prep above put s->fd in sqe->fd: the slot replaces it. */
		sqe->fd = ff;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
	io_uring_sqe_set_data64(sqe, ud_encode((sx_io_op)s->op, s->gen, idx));
	return 0;
}

static int uring_submit(sx_io *io, unsigned idx, sx_err *err)
{
	int rc = prep_slot(io, idx);
	if (rc < 0)
		return sx_fail_errno(err, SX_E_OTHER, -rc, "io_uring: cannot queue operation");
	return 0;
}

/* Hands the final result of slot idx to the caller (or, while draining,
 * disposes of it). Returns true when *out was filled. */
static bool finish(sx_io *io, unsigned idx, int64_t res, sx_cqe *out)
{
	sx_io_slot *s = &io->slots[idx];
	bool report = true;
	if (priv_of(io)->draining) {
		if (s->op == SX_OP_ACCEPT && res >= 0)
			close((int)res);
		report = false;
	} else {
		out->tag = s->tag;
		out->res = res;
	}
	sx_io_slot_free(io, idx);
	return report;
}

/* Retries the op; a failure to requeue becomes its result. */
static bool retry(sx_io *io, unsigned idx, sx_cqe *out)
{
	if (io->slots[idx].cancelled)
		return finish(io, idx, -ECANCELED, out);
	int rc = prep_slot(io, idx);
	if (rc < 0)
		return finish(io, idx, rc, out);
	return false;
}

static bool transient(int res)
{
	return res == -EINTR || res == -EAGAIN;
}

static bool on_accept(sx_io *io, unsigned idx, int res, sx_cqe *out)
{
	if (transient(res))
		return retry(io, idx, out);
	return finish(io, idx, res, out);
}

static bool on_recv(sx_io *io, unsigned idx, int res, sx_cqe *out)
{
	if (transient(res))
		return retry(io, idx, out);
	return finish(io, idx, res, out);
}

static bool on_read(sx_io *io, unsigned idx, int res, sx_cqe *out)
{
	if (transient(res))
		return retry(io, idx, out);
	return finish(io, idx, res, out);
}

/* Send and write: complete only when the whole buffer is out. -ENOBUFS is
 * back-pressure (socket memory), not a failure: try again. */
static bool on_all_out(sx_io *io, unsigned idx, int res, sx_cqe *out)
{
	sx_io_slot *s = &io->slots[idx];
	if (transient(res) || res == -ENOBUFS)
		return retry(io, idx, out);
	if (res < 0)
		return finish(io, idx, res, out);
	if (res == 0 && s->done < s->len)
		return finish(io, idx, -EIO, out); /* no progress: never spin */
	s->done += (size_t)res;
	if (s->done >= s->len)
		return finish(io, idx, (int64_t)s->done, out);
	return retry(io, idx, out);
}

/* A zero-copy send completes twice: the result (flagged MORE), then a
 * notification once the kernel no longer needs the buffer. The caller hears
 * of the send only after the notification. */
static bool on_send(sx_io *io, unsigned idx, int res, unsigned flags, sx_cqe *out)
{
	sx_io_slot *s = &io->slots[idx];
	if (flags & IORING_CQE_F_NOTIF) {
		s->zc_wait = false;
		return on_all_out(io, idx, s->zc_res, out);
	}
	if (flags & IORING_CQE_F_MORE) {
		s->zc_wait = true;
		s->zc_res = res;
		return false;
	}
	return on_all_out(io, idx, res, out);
}

static bool on_write(sx_io *io, unsigned idx, int res, sx_cqe *out)
{
	return on_all_out(io, idx, res, out);
}

static bool on_fsync(sx_io *io, unsigned idx, int res, sx_cqe *out)
{
	if (res == -EINTR)
		return retry(io, idx, out);
	return finish(io, idx, res, out);
}

/* Routes one CQE; returns true when it produced a caller completion. */
static bool on_cqe(sx_io *io, uint64_t ud, int res, unsigned flags, sx_cqe *out)
{
	if (ud == LIBURING_UDATA_TIMEOUT)
		return false; /* liburing's own timeout on kernels without EXT_ARG */
	unsigned idx = (unsigned)(ud & 0xffffffffu);
	unsigned op = (unsigned)((ud >> 32) & 0xffu);
	uint32_t gen = (uint32_t)(ud >> 40);
	if (op == SX_OP_CANCEL)
		return false; /* the cancelled ops report for themselves */
	if (op == SX_OP_NONE || op >= SX_OP_MAX || idx >= io->depth)
		sx_io_bug("io_uring: unknown completion", ud);
	sx_io_slot *s = &io->slots[idx];
	if (s->state != SX_SLOT_PENDING || s->op != op || (s->gen & 0xffffffu) != gen)
		sx_io_bug("io_uring: completion for a slot not in flight", ud);
	switch ((sx_io_op)op) {
	case SX_OP_ACCEPT: return on_accept(io, idx, res, out);
	case SX_OP_RECV: return on_recv(io, idx, res, out);
	case SX_OP_SEND: return on_send(io, idx, res, flags, out);
	case SX_OP_READ: return on_read(io, idx, res, out);
	case SX_OP_WRITE: return on_write(io, idx, res, out);
	case SX_OP_FSYNC: return on_fsync(io, idx, res, out);
	case SX_OP_NONE:
	case SX_OP_CANCEL:
	case SX_OP_MAX: break;
	}
	sx_io_bug("io_uring: unhandled op", op);
}

static unsigned harvest(sx_io *io, sx_cqe *out, unsigned max)
{
	uring_priv *u = priv_of(io);
	unsigned n = 0;
	sx_cqe scratch;
	while (n < max) {
		struct io_uring_cqe *cqe;
		if (io_uring_peek_cqe(&u->ring, &cqe) != 0)
			break;
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		unsigned flags = cqe->flags;
		io_uring_cqe_seen(&u->ring, cqe);
		if (on_cqe(io, ud, res, flags, out != NULL ? &out[n] : &scratch))
			n++;
	}
	return n;
}

/* Hands queued SQEs to the kernel. EBUSY/EAGAIN (completion queue
 * overflowing) are not failures: the SQEs stay queued and the next wait,
 * after reaping, submits them. */
static int flush(uring_priv *u, sx_err *err)
{
	if (io_uring_sq_ready(&u->ring) == 0)
		return 0;
	int s = io_uring_submit(&u->ring);
	if (s < 0 && s != -EINTR && s != -EAGAIN && s != -EBUSY)
		return sx_fail_errno(err, SX_E_OTHER, -s, "io_uring: submit failed");
	return 0;
}

/* flush, and the completions that are there already are collected in the
 * same call (the kernel runs its pending completion work, nothing waits):
 * an op that completes at once, a receive with data waiting, is reaped
 * without a second call. */
static int flush_get(uring_priv *u, sx_err *err)
{
	if (io_uring_sq_ready(&u->ring) == 0)
		return 0;
	int s = io_uring_submit_and_get_events(&u->ring);
	if (s < 0 && s != -EINTR && s != -EAGAIN && s != -EBUSY)
		return sx_fail_errno(err, SX_E_OTHER, -s, "io_uring: submit failed");
	return 0;
}

static int uring_wait(sx_io *io, sx_cqe *out, unsigned max, int timeout_ms, sx_err *err)
{
	uring_priv *u = priv_of(io);
	uint64_t deadline = sx_io_deadline(timeout_ms);
	int rc = -1;
	unsigned n = harvest(io, out, max);
	while (n == 0) {
		struct __kernel_timespec ts, *tsp = NULL;
		int ms = sx_io_ms_left(deadline);
		if (ms >= 0) {
			ts.tv_sec = ms / 1000;
			ts.tv_nsec = (long long)(ms % 1000) * 1000000;
			tsp = &ts;
		}
		/* Submit and wait are two calls: when a signal interrupts a
		 * combined call that also submitted, the kernel reports the
		 * submit count and the EINTR is lost. The submit takes what
		 * has completed already, and the wait is skipped then. */
		SX_GUARD(flush_get(u, err));
		if ((n = harvest(io, out, max)) > 0)
			break;
		/* A remainder requeued by what was reaped (a short send) goes
		 * to the kernel before anything waits for it. */
		if (io_uring_sq_ready(&u->ring) > 0 && ms != 0)
			continue;
		struct io_uring_cqe *cqe = NULL;
		int w = io_uring_wait_cqe_timeout(&u->ring, &cqe, tsp);
		if (w == -EINTR)
			break; /* a signal: let the caller look at its flags */
		SX_ENSURE(w >= 0 || w == -ETIME || w == -EAGAIN, err, SX_E_OTHER,
			  "io_uring: wait failed: error %d", -w);
		n = harvest(io, out, max);
		if (w == -ETIME || ms == 0)
			break;
	}
	/* Resubmitted remainders go to the kernel now, not at the next wait. */
	SX_GUARD(flush(u, err));
	rc = (int)n;
out:
	return rc;
}

static int uring_cancel_fd(sx_io *io, int fd, sx_err *err)
{
	uring_priv *u = priv_of(io);
	int rc = 0;
	struct io_uring_sqe *sqe = get_sqe(u, &rc);
	if (sqe == NULL)
		return sx_fail_errno(err, SX_E_OTHER, -rc, "io_uring: cannot queue cancel");
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, ud_encode(SX_OP_CANCEL, 0, 0));
	/* Submitted now: the caller may close fd right after this returns, and
	 * a cancel by fd must run while fd still names the file. */
	rc = io_uring_submit(&u->ring);
	if (rc < 0)
		return sx_fail_errno(err, SX_E_OTHER, -rc, "io_uring: cannot submit cancel");
	return 0;
}

/* Hands every queued SQE to the kernel, which resolves a fixed file or
 * buffer slot when it takes the SQE. Returns false when some are still
 * queued (the completion queue is overflowing): a slot an SQE names must
 * then not change. */
static bool sq_flushed(uring_priv *u)
{
	if (io_uring_sq_ready(&u->ring) == 0)
		return true;
	(void)io_uring_submit(&u->ring);
	return io_uring_sq_ready(&u->ring) == 0;
}

/* A stack of n free slots, lowest on top. */
static unsigned *slot_stack(unsigned n)
{
	unsigned *st = calloc(n, sizeof(*st));
	if (st != NULL)
		for (unsigned i = 0; i < n; i++)
			st[i] = n - 1 - i;
	return st;
}

/* The fd maps (file_of, file_wait) reach fd. */
static bool fd_maps(uring_priv *u, int fd)
{
	sx_err err = {0};
	if (sx_grow(&u->file_of, &u->file_of_len, (size_t)fd + 1, sizeof(*u->file_of),
		    SX_URING_FD_MAX, "file descriptors in the registered file map", &err) < 0 ||
	    sx_grow(&u->file_wait, &u->file_wait_len, (size_t)fd + 1, sizeof(*u->file_wait),
		    SX_URING_FD_MAX, "file descriptors in the registered file map", &err) < 0) {
		/* A hint only: the fd goes on unregistered; said once per ring. */
		if (!u->file_of_warned)
			sx_log("warn", "io_register", "what=file fd=%d error=%s", fd,
			       SX_LOGQ(err.msg));
		u->file_of_warned = true;
		return false;
	}
	return true;
}

static bool uring_file_add(sx_io *io, int fd)
{
	uring_priv *u = priv_of(io);
	if (file_index(u, fd) >= 0)
		return true;
	if (!u->files_ok || u->nfiles_free == 0 || !fd_maps(u, fd))
		return false;
	u->file_wait[fd] = 0;
	return file_register(io, fd);
}

static bool uring_file_add_after(sx_io *io, int fd, unsigned ops)
{
	uring_priv *u = priv_of(io);
	if (ops == 0 || file_index(u, fd) >= 0)
		return uring_file_add(io, fd);
	if (!u->files_ok || !fd_maps(u, fd))
		return false;
	u->file_wait[fd] = (uint16_t)(ops > UINT16_MAX ? UINT16_MAX : ops);
	return true;
}

/* Takes a free slot of the table for fd (the maps reach it). */
static bool file_register(sx_io *io, int fd)
{
	uring_priv *u = priv_of(io);
	if (!u->files_ok || u->nfiles_free == 0)
		return false;
	/* A slot freed while an SQE naming it was still queued is reused only
	 * once that SQE has gone. */
	if (!sq_flushed(u))
		return false;
	unsigned slot = u->files_free[u->nfiles_free - 1];
	if (io_uring_register_files_update(&u->ring, slot, &fd, 1) != 1)
		return false;
	u->nfiles_free--;
	u->file_of[fd] = slot + 1;
	return true;
}

static void uring_file_remove(sx_io *io, int fd)
{
	uring_priv *u = priv_of(io);
	if ((size_t)fd < u->file_wait_len)
		u->file_wait[fd] = 0;
	int slot = file_index(u, fd);
	if (slot < 0)
		return;
	/* Submitted ops hold the file themselves; queued ones take it now. */
	(void)sq_flushed(u);
	u->file_of[fd] = 0;
	int none = -1;
	int r = io_uring_register_files_update(&u->ring, (unsigned)slot, &none, 1);
	if (r != 1) {
		/* The slot keeps the file until close; it is not reused. */
		sx_log("warn", "io_unregister", "what=file fd=%d error=%d", fd, -r);
		return;
	}
	u->files_free[u->nfiles_free++] = (unsigned)slot;
}

static bool uring_buf_add(sx_io *io, void *base, size_t len)
{
	uring_priv *u = priv_of(io);
	uintptr_t a = (uintptr_t)base;
	if (!u->bufs_ok || u->nbufs_free == 0 || a + len < a)
		return false;
	unsigned at = region_after(u, a);
	if (at > 0) {
		const region *prev = &u->regions[at - 1];
		if (prev->lo == a && prev->len == len)
			return true; /* already registered */
		if (a - prev->lo < prev->len)
			return false; /* overlaps */
	}
	if (at < u->nregions && u->regions[at].lo < a + len)
		return false;
	if (!sq_flushed(u))
		return false;
	unsigned slot = u->bufs_free[u->nbufs_free - 1];
	struct iovec iov = {.iov_base = base, .iov_len = len};
	/* Pins the pages: ENOMEM past RLIMIT_MEMLOCK, and the caller goes on
	 * with the plain buffer. */
	if (io_uring_register_buffers_update_tag(&u->ring, slot, &iov, NULL, 1) != 1)
		return false;
	u->nbufs_free--;
	for (unsigned i = u->nregions; i > at; i--)
		u->regions[i] = u->regions[i - 1];
	u->regions[at] = (region){.lo = a, .len = len, .slot = slot};
	u->nregions++;
	return true;
}

static void uring_buf_remove(sx_io *io, void *base)
{
	uring_priv *u = priv_of(io);
	uintptr_t a = (uintptr_t)base;
	unsigned at = region_after(u, a);
	if (at == 0 || u->regions[at - 1].lo != a)
		return;
	at--;
	unsigned slot = u->regions[at].slot;
	u->nregions--;
	for (unsigned i = at; i < u->nregions; i++)
		u->regions[i] = u->regions[i + 1];
	(void)sq_flushed(u);
	struct iovec none = {.iov_base = NULL, .iov_len = 0};
	int r = io_uring_register_buffers_update_tag(&u->ring, slot, &none, NULL, 1);
	if (r != 1) {
		/* The pages stay pinned until close; the slot is not reused. */
		sx_log("warn", "io_unregister", "what=buffer error=%d", -r);
		return;
	}
	u->bufs_free[u->nbufs_free++] = slot;
}

/* Registers the sparse tables. Either may be refused (a kernel before
 * 5.19, RLIMIT_NOFILE): the ring then works with plain fds and buffers. */
static void tables_init(sx_io *io, uring_priv *u)
{
	unsigned n = io->depth < SX_URING_TABLE_MIN   ? SX_URING_TABLE_MIN
		     : io->depth > SX_URING_TABLE_MAX ? SX_URING_TABLE_MAX
						      : io->depth;
	/* The kernel refuses a file table larger than RLIMIT_NOFILE (and
	 * liburing would then raise the limit itself). */
	unsigned nf = n;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nf)
		nf = (unsigned)rl.rlim_cur;
	u->files_free = nf > 0 ? slot_stack(nf) : NULL;
	if (u->files_free != NULL && io_uring_register_files_sparse(&u->ring, nf) == 0) {
		u->files_ok = true;
		u->files_cap = u->nfiles_free = nf;
	}
	u->bufs_free = slot_stack(n);
	u->regions = calloc(n, sizeof(*u->regions));
	if (u->bufs_free != NULL && u->regions != NULL &&
	    io_uring_register_buffers_sparse(&u->ring, n) == 0) {
		u->bufs_ok = true;
		u->bufs_cap = u->nbufs_free = n;
	}
}

static void tables_free(uring_priv *u)
{
	/* Synchronous: every registered file is released (a socket's FIN goes
	 * out) before the caller closes its own fd, not when the ring's
	 * teardown gets round to it. */
	if (u->files_ok)
		(void)io_uring_unregister_files(&u->ring);
	if (u->bufs_ok)
		(void)io_uring_unregister_buffers(&u->ring);
	free(u->file_of);
	free(u->file_wait);
	free(u->files_free);
	free(u->bufs_free);
	free(u->regions);
}

static const unsigned required_ops[] = {
    IORING_OP_ACCEPT, IORING_OP_RECV,  IORING_OP_SEND,	       IORING_OP_READ,
    IORING_OP_WRITE,  IORING_OP_FSYNC, IORING_OP_ASYNC_CANCEL,
};

static int uring_open(sx_io *io, sx_err *err)
{
	int rc = -1;
	struct io_uring_probe *probe = NULL;
	uring_priv *u = calloc(1, sizeof(*u));
	SX_ENSURE(u != NULL, err, SX_E_OTHER, "io_uring: out of memory");
	/* Cheapest completion delivery first; older kernels reject the newer
	 * flags with EINVAL and get the next set. One thread drives a ring. */
	static const unsigned flag_sets[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	    IORING_SETUP_COOP_TASKRUN,
	    0,
	};
	int r = -EINVAL;
	for (size_t i = 0; i < SX_ARRAY_LEN(flag_sets) && r == -EINVAL; i++) {
		struct io_uring_params p = {0};
		/* Room for every op plus the cancels' own completions. */
		p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = io->depth * 2 < 64 ? 64 : io->depth * 2;
		r = io_uring_queue_init_params(io->depth, &u->ring, &p);
	}
	if (r < 0) {
		(void)sx_fail_errno(err, SX_E_OTHER, -r, "io_uring_queue_init failed");
		goto out;
	}
	u->ring_ok = true;
	probe = io_uring_get_probe_ring(&u->ring);
	SX_ENSURE(probe != NULL, err, SX_E_OTHER, "io_uring: cannot probe supported operations");
	u->zc_ok = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
	for (size_t i = 0; i < SX_ARRAY_LEN(required_ops); i++)
		SX_ENSURE(io_uring_opcode_supported(probe, (int)required_ops[i]), err, SX_E_OTHER,
			  "io_uring: kernel lacks operation %u", required_ops[i]);
	tables_init(io, u);
	io->priv = u;
	u = NULL;
	rc = 0;
out:
	if (probe != NULL)
		io_uring_free_probe(probe);
	if (u != NULL) {
		tables_free(u);
		if (u->ring_ok)
			io_uring_queue_exit(&u->ring);
	}
	free(u);
	return rc;
}

/* Drains the ring: the kernel may still write into caller buffers until
 * each op has completed, so cancel everything and reap before unmapping. */
static void uring_close(sx_io *io)
{
	uring_priv *u = priv_of(io);
	if (u == NULL)
		return;
	u->draining = true;
	if (io->live > 0) {
		int rc = 0;
		struct io_uring_sqe *sqe = get_sqe(u, &rc);
		if (sqe != NULL) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
			io_uring_sqe_set_data64(sqe, ud_encode(SX_OP_CANCEL, 0, 0));
		}
	}
	uint64_t deadline = sx_io_deadline(SX_URING_DRAIN_MS);
	while (io->live > 0 && sx_io_ms_left(deadline) > 0) {
		struct __kernel_timespec ts = {.tv_sec = 0,
					       .tv_nsec = SX_URING_DRAIN_STEP_MS * 1000000LL};
		struct io_uring_cqe *cqe = NULL;
		(void)io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
		(void)harvest(io, NULL, io->depth);
	}
	if (io->live > 0)
		sx_log("warn", "io_drain", "backend=io_uring in_flight=%u", io->live);
	tables_free(u);
	io_uring_queue_exit(&u->ring);
	free(u);
	io->priv = NULL;
}

const sx_io_backend sx_io_uring_backend = {
    .name = "io_uring",
    .open = uring_open,
    .submit = uring_submit,
    .cancel_fd = uring_cancel_fd,
    .wait = uring_wait,
    .file_add = uring_file_add,
    .file_add_after = uring_file_add_after,
    .file_remove = uring_file_remove,
    .buf_add = uring_buf_add,
    .buf_remove = uring_buf_remove,
    .close = uring_close,
};
