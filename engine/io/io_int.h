/* engine/io internals shared by io.c, io_uring.c and io_poll.c: the op slot
 * table and the backend vtable. Not part of the public interface. */
#ifndef SX_IO_INT_H
#define SX_IO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/io/sx_io.h"

/* One syscall never moves more than this; sends and writes loop over the
 * remainder, reads and recvs are simply short. Keeps every result in an int. */
#define SX_IO_CHUNK_MAX (1u << 30)

typedef enum sx_io_op {
	SX_OP_NONE = 0,
	SX_OP_ACCEPT,
	SX_OP_RECV,
	SX_OP_SEND,
	SX_OP_READ,
	SX_OP_WRITE,
	SX_OP_FSYNC,
	SX_OP_CANCEL, /* io_uring only: the completion of a cancel request */
	SX_OP_MAX,
} sx_io_op;

typedef enum sx_slot_state {
	SX_SLOT_FREE = 0,
	SX_SLOT_PENDING, /* submitted, not complete */
	SX_SLOT_DONE,	 /* complete, result not yet handed to the caller (poll) */
} sx_slot_state;

/* One in-flight operation. A slot stays owned until its completion has been
 * handed to the caller, so the number of live slots never exceeds depth. */
typedef struct sx_io_slot {
	uint64_t tag;
	uint8_t *buf;
	size_t len;  /* whole request */
	size_t done; /* bytes already moved (send/write resubmission) */
	uint64_t off;
	int64_t res; /* final result once DONE */
	int fd;
	uint32_t gen; /* bumped on each allocation; catches stale completions */
	uint8_t op;
	uint8_t state;
	bool cancelled; /* cancel_fd seen: do not resubmit a remainder */
	bool sock;	/* poll: fd is a socket (recv/send with MSG_DONTWAIT) */
	bool zc_wait;	/* io_uring: a zero-copy send's notification is still due */
	int zc_res;	/* io_uring: the result that came before it */
	bool file;	/* poll: regular file or block device, always ready */
} sx_io_slot;

typedef struct sx_io_backend {
	const char *name;
	int (*open)(sx_io *io, sx_err *err);
	/* Starts the op in slot idx (already filled in). On failure the caller
	 * frees the slot. */
	int (*submit)(sx_io *io, unsigned idx, sx_err *err);
	int (*cancel_fd)(sx_io *io, int fd, sx_err *err);
	int (*wait)(sx_io *io, sx_cqe *out, unsigned max, int timeout_ms, sx_err *err);
	/* Registration (sx_io_file_add and friends); NULL where the backend
	 * has none, and the adds then report false. */
	bool (*file_add)(sx_io *io, int fd);
	bool (*file_add_after)(sx_io *io, int fd, unsigned ops);
	void (*file_remove)(sx_io *io, int fd);
	bool (*buf_add)(sx_io *io, void *base, size_t len);
	void (*buf_remove)(sx_io *io, void *base);
	void (*close)(sx_io *io);
} sx_io_backend;

struct sx_io {
	const sx_io_backend *be;
	unsigned depth;
	unsigned live; /* slots not FREE */
	sx_io_slot *slots;
	unsigned *free_list; /* stack of free slot indices */
	unsigned nfree;
	void *priv;	     /* backend state */
	size_t zerocopy_min; /* io_uring: sends of at least this many bytes go zero-copy; 0 off */
};

extern const sx_io_backend sx_io_uring_backend;
extern const sx_io_backend sx_io_poll_backend;

/* Releases slot idx back to the free list. */
void sx_io_slot_free(sx_io *io, unsigned idx);

/* Milliseconds left until deadline_ns (from sx_now_ns); -1 when there is no
 * deadline (deadline_ns == 0). */
int sx_io_ms_left(uint64_t deadline_ns);
uint64_t sx_io_deadline(int timeout_ms);

/* An unknown or impossible completion: a bug in sxfer, never ignored. */

#endif
