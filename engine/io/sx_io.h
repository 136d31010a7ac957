/* engine/io: one small completion-based backend interface. io_uring.c and
 * poll.c implement it; the transfer logic is written once against it.
 *
 * Every operation is submitted with a caller-chosen 64-bit tag and completes
 * exactly once with (tag, res): res >= 0 is a byte count (or a new fd for
 * accept), res < 0 is -errno. Sends and writes complete only when the whole
 * buffer is out (or fail); reads and recvs may be short (0 = EOF). */
#ifndef SX_IO_H
#define SX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"

typedef enum sx_io_kind {
	SX_IO_AUTO = 0,
	SX_IO_URING,
	SX_IO_POLL,
} sx_io_kind;

typedef struct sx_io sx_io;

typedef struct sx_cqe {
	uint64_t tag;
	int64_t res;
} sx_cqe;

#define SX_IO_OFF_CUR UINT64_MAX /* read/write at the current position (pipes) */

int sx_io_kind_parse(const char *s, sx_io_kind *out) SX_MUST_CHECK;

/* AUTO tries io_uring and falls back to poll with one log line naming the
 * reason (EPERM under seccomp, ENOSYS). depth bounds in-flight operations. */
int sx_io_open(sx_io **out, sx_io_kind kind, unsigned depth, sx_err *err) SX_MUST_CHECK;
void sx_io_close(sx_io *io); /* drains/cancels in-flight work first */
const char *sx_io_name(const sx_io *io);

int sx_io_accept(sx_io *io, int lfd, uint64_t tag, sx_err *err) SX_MUST_CHECK;
int sx_io_recv(sx_io *io, int fd, void *buf, size_t len, uint64_t tag, sx_err *err) SX_MUST_CHECK;
int sx_io_send(sx_io *io, int fd, const void *buf, size_t len, uint64_t tag,
	       sx_err *err) SX_MUST_CHECK;
int sx_io_read(sx_io *io, int fd, void *buf, size_t len, uint64_t off, uint64_t tag,
	       sx_err *err) SX_MUST_CHECK;
int sx_io_write(sx_io *io, int fd, const void *buf, size_t len, uint64_t off, uint64_t tag,
		sx_err *err) SX_MUST_CHECK;
int sx_io_fsync(sx_io *io, int fd, uint64_t tag, sx_err *err) SX_MUST_CHECK;

/* Cancels every pending operation on fd; each still completes (-ECANCELED or
 * its real result) so the caller can release its buffers. */
int sx_io_cancel_fd(sx_io *io, int fd, sx_err *err) SX_MUST_CHECK;

/* Submits what is queued and waits up to timeout_ms (-1: forever) for at
 * least one completion; returns the number written to out (0 on timeout). */
int sx_io_wait(sx_io *io, sx_cqe *out, unsigned max, int timeout_ms, sx_err *err) SX_MUST_CHECK;

/* io_uring only: sends of at least min bytes use zero-copy (SEND_ZC); the
 * buffer stays the kernel's until the notification, which the backend waits
 * for before it completes the send. 0 turns it off (the default); the poll
 * backend ignores it. */
void sx_io_set_zerocopy(sx_io *io, size_t min);

/* Optional registration of files and buffers (docs/IO.md, "Registered files
 * and buffers"). Both are hints: when the backend cannot register (poll, a
 * full table, an old kernel, RLIMIT_MEMLOCK) the add returns false and every
 * op goes on with the plain fd or buffer. Nothing else changes for the
 * caller: ops still take the plain fd and pointer, and the backend looks up
 * the registration per op. */

/* Registers fd (io_uring: a slot of the ring's fixed file table). Ops on fd
 * then reference the slot (IOSQE_FIXED_FILE), sparing the kernel a file
 * lookup per op. Returns true when registered; adding a registered fd again
 * is a no-op. */
bool sx_io_file_add(sx_io *io, int fd);
/* sx_io_file_add once fd has seen ops operations: the ops before that use
 * the plain fd, and the ops-th submitted is the first through the slot. Two
 * io_uring_register calls (the add and the remove) cost more than the file
 * lookups of a few ops spare, so a file read or written once or twice (a
 * small file) is not worth registering. Returns true when the registration
 * is asked for (it may still find the table full: the ops then go on with
 * the plain fd). sx_io_file_remove ends it as it ends a registration, made
 * or not yet. */
bool sx_io_file_add_after(sx_io *io, int fd, unsigned ops);
#define SX_IO_REG_AFTER 4 /* ops: what the sender's and receiver's files wait for */
/* Releases fd's slot; a no-op when fd is not registered. MUST be called
 * before the caller closes fd: the ring holds its own reference, so a
 * registered file stays open in the kernel (a socket never sends its FIN)
 * until it is removed. Ops already submitted on fd keep working and
 * sx_io_cancel_fd still reaches them; ops submitted afterwards use the plain
 * fd. sx_io_close removes everything. */
void sx_io_file_remove(sx_io *io, int fd);

/* Registers the region [base, base + len) (io_uring: a slot of the ring's
 * buffer table; its pages are pinned and count against RLIMIT_MEMLOCK). A
 * read or write whose buffer lies wholly inside a registered region uses the
 * pre-mapped buffer (READ_FIXED/WRITE_FIXED). May be called at any time;
 * regions must not overlap. Returns true when registered. */
bool sx_io_buf_add(sx_io *io, void *base, size_t len);
/* Unregisters the region that starts at base (a no-op when there is none).
 * Call it only while no op on the region is in flight, and before the
 * memory is freed. sx_io_close removes everything. */
void sx_io_buf_remove(sx_io *io, void *base);

/* A completion or operation that cannot happen (an unknown tag, a slot not
 * in flight) is a bug in sxfer, never something a peer or the kernel can
 * cause: logged as an io_bug line, then abort. Used by the backends and by
 * the owners of the tags (the sender, the receiver's loops). */
void sx_io_bug(const char *what, uint64_t v) __attribute__((noreturn));

#endif
