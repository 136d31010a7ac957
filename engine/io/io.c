/* engine/io: dispatch to a backend and the parts both backends share (the
 * op slot table, argument checks, the fallback rule). See docs/IO.md. */
#include "engine/io/io_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_util.h"

/* io_uring's own limit on SQ entries; a deeper table would not fit a ring. */
#define SX_IO_DEPTH_MAX 32768u

/* Set to 1 to make SX_IO_AUTO behave as if io_uring were unavailable. */
#define SX_IO_ENV_FORCE_FALLBACK "SXFER_IO_FORCE_FALLBACK"

int sx_io_kind_parse(const char *s, sx_io_kind *out)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "auto") == 0)
		*out = SX_IO_AUTO;
	else if (strcmp(s, "io_uring") == 0 || strcmp(s, "uring") == 0)
		*out = SX_IO_URING;
	else if (strcmp(s, "poll") == 0)
		*out = SX_IO_POLL;
	else
		return -1;
	return 0;
}

void sx_io_bug(const char *what, uint64_t v)
{
	sx_log("error", "io_bug", "what=%s value=%llu", SX_LOGQ(what), (unsigned long long)v);
	abort();
}

uint64_t sx_io_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return 0;
	return sx_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

int sx_io_ms_left(uint64_t deadline_ns)
{
	if (deadline_ns == 0)
		return -1;
	uint64_t now = sx_now_ns();
	if (now >= deadline_ns)
		return 0;
	/* Round up so that a wait never returns before the deadline. */
	uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static bool force_fallback(void)
{
	const char *v = getenv(SX_IO_ENV_FORCE_FALLBACK);
	return v != NULL && strcmp(v, "1") == 0;
}

static void io_free(sx_io *io)
{
	if (io == NULL)
		return;
	free(io->slots);
	free(io->free_list);
	free(io);
}

static int io_alloc(sx_io **out, unsigned depth, sx_err *err)
{
	int rc = -1;
	sx_io *io = calloc(1, sizeof(*io));
	SX_ENSURE(io != NULL, err, SX_E_OTHER, "io: out of memory");
	io->depth = depth;
	io->slots = calloc(depth, sizeof(*io->slots));
	io->free_list = calloc(depth, sizeof(*io->free_list));
	SX_ENSURE(io->slots != NULL && io->free_list != NULL, err, SX_E_OTHER,
		  "io: out of memory for %u slots", depth);
	/* Lowest index on top of the stack: easier to read in a debugger. */
	for (unsigned i = 0; i < depth; i++)
		io->free_list[i] = depth - 1 - i;
	io->nfree = depth;
	*out = io;
	io = NULL;
	rc = 0;
out:
	io_free(io);
	return rc;
}

static int open_with(sx_io **out, const sx_io_backend *be, unsigned depth, sx_err *err)
{
	int rc = -1;
	sx_io *io = NULL;
	SX_GUARD(io_alloc(&io, depth, err));
	io->be = be;
	SX_GUARD(be->open(io, err));
	*out = io;
	io = NULL;
	rc = 0;
out:
	io_free(io);
	return rc;
}

int sx_io_open(sx_io **out, sx_io_kind kind, unsigned depth, sx_err *err)
{
	int rc = -1;
	*out = NULL;
	SX_ENSURE(depth > 0 && depth <= SX_IO_DEPTH_MAX, err, SX_E_USAGE,
		  "io: depth %u out of range (1..%u)", depth, SX_IO_DEPTH_MAX);
	switch (kind) {
	case SX_IO_URING: SX_GUARD(open_with(out, &sx_io_uring_backend, depth, err)); break;
	case SX_IO_POLL: SX_GUARD(open_with(out, &sx_io_poll_backend, depth, err)); break;
	case SX_IO_AUTO: {
		sx_err probe = {0};
		if (force_fallback())
			(void)sx_fail(&probe, SX_E_OTHER, "%s=1", SX_IO_ENV_FORCE_FALLBACK);
		else if (open_with(out, &sx_io_uring_backend, depth, &probe) == 0)
			break;
		sx_log("warn", "io_fallback", "backend=poll reason=%s", SX_LOGQ(probe.msg));
		SX_GUARD(open_with(out, &sx_io_poll_backend, depth, err));
		break;
	}
	default: SX_ENSURE(false, err, SX_E_USAGE, "io: unknown backend kind %d", (int)kind);
	}
	rc = 0;
out:
	return rc;
}

void sx_io_close(sx_io *io)
{
	if (io == NULL)
		return;
	io->be->close(io);
	io_free(io);
}

const char *sx_io_name(const sx_io *io)
{
	return io->be->name;
}

void sx_io_slot_free(sx_io *io, unsigned idx)
{
	if (idx >= io->depth || io->slots[idx].state == SX_SLOT_FREE)
		sx_io_bug("slot freed twice", idx);
	sx_io_slot *s = &io->slots[idx];
	s->state = SX_SLOT_FREE;
	s->op = SX_OP_NONE;
	s->buf = NULL;
	io->free_list[io->nfree++] = idx;
	io->live--;
}

/* Claims a slot, fills it in and hands it to the backend. The table is fixed
 * at depth entries: a full table is the caller's sizing error, reported as
 * "io queue full" rather than silently growing memory. */
static int submit(sx_io *io, sx_io_op op, int fd, void *buf, size_t len, uint64_t off, uint64_t tag,
		  sx_err *err)
{
	int rc = -1;
	SX_ENSURE(io->nfree > 0, err, SX_E_OTHER, "io queue full (%u operations in flight)",
		  io->depth);
	SX_ENSURE(off == SX_IO_OFF_CUR || off <= (uint64_t)INT64_MAX, err, SX_E_USAGE,
		  "io: offset %llu out of range", (unsigned long long)off);
	unsigned idx = io->free_list[--io->nfree];
	sx_io_slot *s = &io->slots[idx];
	uint32_t gen = s->gen + 1;
	memset(s, 0, sizeof(*s));
	s->gen = gen;
	s->op = (uint8_t)op;
	s->state = SX_SLOT_PENDING;
	s->fd = fd;
	s->buf = buf;
	s->len = len;
	s->off = off;
	s->tag = tag;
	io->live++;
	if (io->be->submit(io, idx, err) < 0) {
		sx_io_slot_free(io, idx);
		goto out;
	}
	rc = 0;
out:
	return rc;
}

int sx_io_accept(sx_io *io, int lfd, uint64_t tag, sx_err *err)
{
	return submit(io, SX_OP_ACCEPT, lfd, NULL, 0, 0, tag, err);
}

int sx_io_recv(sx_io *io, int fd, void *buf, size_t len, uint64_t tag, sx_err *err)
{
	return submit(io, SX_OP_RECV, fd, buf, len, 0, tag, err);
}

int sx_io_send(sx_io *io, int fd, const void *buf, size_t len, uint64_t tag, sx_err *err)
{
	/* The backends never write through buf for a send. */
	return submit(io, SX_OP_SEND, fd, (void *)(uintptr_t)buf, len, 0, tag, err);
}

int sx_io_read(sx_io *io, int fd, void *buf, size_t len, uint64_t off, uint64_t tag, sx_err *err)
{
	return submit(io, SX_OP_READ, fd, buf, len, off, tag, err);
}

int sx_io_write(sx_io *io, int fd, const void *buf, size_t len, uint64_t off, uint64_t tag,
		sx_err *err)
{
	return submit(io, SX_OP_WRITE, fd, (void *)(uintptr_t)buf, len, off, tag, err);
}

int sx_io_fsync(sx_io *io, int fd, uint64_t tag, sx_err *err)
{
	return submit(io, SX_OP_FSYNC, fd, NULL, 0, 0, tag, err);
}

int sx_io_cancel_fd(sx_io *io, int fd, sx_err *err)
{
	/* A remainder of a partly sent buffer must not be resubmitted after the
	 * cancel has gone by. */
	for (unsigned i = 0; i < io->depth; i++) {
		sx_io_slot *s = &io->slots[i];
		if (s->state == SX_SLOT_PENDING && s->fd == fd)
			s->cancelled = true;
	}
	return io->be->cancel_fd(io, fd, err);
}

void sx_io_set_zerocopy(sx_io *io, size_t min)
{
	io->zerocopy_min = min;
}

bool sx_io_file_add(sx_io *io, int fd)
{
	if (io->be->file_add == NULL || fd < 0)
		return false;
	return io->be->file_add(io, fd);
}

bool sx_io_file_add_after(sx_io *io, int fd, unsigned ops)
{
	if (io->be->file_add_after == NULL || fd < 0)
		return false;
	return io->be->file_add_after(io, fd, ops);
}

void sx_io_file_remove(sx_io *io, int fd)
{
	if (io->be->file_remove != NULL && fd >= 0)
		io->be->file_remove(io, fd);
}

bool sx_io_buf_add(sx_io *io, void *base, size_t len)
{
	if (io->be->buf_add == NULL || base == NULL || len == 0)
		return false;
	return io->be->buf_add(io, base, len);
}

void sx_io_buf_remove(sx_io *io, void *base)
{
	if (io->be->buf_remove != NULL && base != NULL)
		io->be->buf_remove(io, base);
}

int sx_io_wait(sx_io *io, sx_cqe *out, unsigned max, int timeout_ms, sx_err *err)
{
	if (max == 0)
		return 0;
	return io->be->wait(io, out, max, timeout_ms, err);
}
