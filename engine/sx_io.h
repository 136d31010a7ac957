/* engine/io: one small completion-based backend interface. io_uring.c and
 * poll.c implement it; the transfer logic is written once against it.
 *
 * Every operation is submitted with a caller-chosen 64-bit tag and completes
 * exactly once with (tag, res): res >= 0 is a byte count (or a new fd for
 * accept), res < 0 is -errno. Sends and writes complete only when the whole
 * buffer is out (or fail); reads and recvs may be short (0 = EOF). */
#ifndef SX_IO_H
#define SX_IO_H

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

struct iovec;

/* Optional: registers buffer regions with the backend. Afterwards a read or
 * write whose buffer lies wholly inside one region uses the pre-mapped
 * buffer (io_uring READ_FIXED/WRITE_FIXED); other buffers work as before.
 * A second call replaces the set (n == 0 clears it); call it only while no
 * read or write is in flight. The regions must outlive the registration.
 * May fail (SX_E_OTHER) when RLIMIT_MEMLOCK is too small: the caller can go
 * on without. The poll backend accepts and ignores it. */
/* io_uring only: sends of at least min bytes use zero-copy (SEND_ZC); the
 * buffer stays the kernel's until the notification, which the backend waits
 * for before it completes the send. 0 turns it off (the default); the poll
 * backend ignores it. */
void sx_io_set_zerocopy(sx_io *io, size_t min);

int sx_io_register_buffers(sx_io *io, const struct iovec *iov, unsigned n,
			   sx_err *err) SX_MUST_CHECK;

#endif
