/* engine/store: where received files land. Every path is resolved beneath
 * OUT/<peer name> one component at a time with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), so no '..', absolute path or symlink can lead out.
 * A file is written to a temporary beside its final name and renamed into
 * place only when it is complete and durable. */
#ifndef SX_STORE_H
#define SX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/sx_err.h"

/* Received folders: OUT and OUT/<peer> are created with this mode (less the
 * umask); folders of a tree with the sender's bits less the umask. */
#define SX_STORE_DIR_MODE 0750

/* Temporaries are ".NAME.<12 hex digits><suffix>" beside NAME (the digits
 * from a number drawn at random for each store and counted up): the file
 * being received, a stream's last verified checkpoint (its .sxsig text), and
 * the checkpoint being replaced. */
#define SX_STORE_PART	       ".sxpart"
#define SX_STORE_CKPT	       ".sxckpt"
#define SX_STORE_CKPT_NEW      ".sxckpt-new"
#define SX_STORE_RND_HEX       12
#define SX_STORE_TEMP_BASE_MAX 200 /* bytes of NAME kept: within NAME_MAX */

typedef struct sx_store_recovery {
	uint64_t dirs;	  /* folders scanned */
	uint64_t kept;	  /* streams kept as NAME.partial */
	uint64_t removed; /* temporaries removed */
	uint64_t removed_bytes;
	uint64_t failed;  /* could not be removed */
	uint64_t held;	  /* temporaries made held parts (their .sxmeta beside) */
	uint64_t expired; /* held parts removed after ttl_s */
} sx_store_recovery;

/* At start, before listening: walks the folder out_fd (OUT) and turns each
 * stream temporary with a checkpoint whose prefix still hashes to the
 * signed root into NAME.partial + NAME.partial.sxsig (cut to the
 * checkpoint); every other temporary is removed. One log line per file.
 * Never follows a symlink; goes as deep as a received path can. Fails only
 * when OUT cannot be read. */
int sx_store_recover(int out_fd, sx_store_recovery *st, sx_err *err) SX_MUST_CHECK;
/* The same, and: a temporary with its .sxmeta becomes a held part (its
 * whole-leaf prefix hashed), held parts older than ttl_s seconds (0: the
 * default) or incomplete are removed; with only_expired, nothing else is
 * done (the periodic sweep of a running server). */
int sx_store_recover_ttl(int out_fd, uint64_t ttl_s, bool only_expired, sx_store_recovery *st,
			 sx_err *err) SX_MUST_CHECK;
/* The same (the default ttl) for the folder of a get: at its top only the
 * folders named in names and the temporaries and held parts of those names
 * are looked at; beneath those folders, everything. */
int sx_store_recover_names(int out_fd, const char *const *names, size_t nnames,
			   sx_store_recovery *st, sx_err *err) SX_MUST_CHECK;

/* A reading of the free space is reused for the next files of the same
 * folder for at most this long, and only while they take at most half of
 * the room above the reserve it showed (sx_store_space). */
#define SX_STORE_SPACE_TTL_NS (100ull * 1000 * 1000)

typedef struct sx_store {
	int root_fd; /* OUT/<peer> */
	bool overwrite;
	char cache_path[4097]; /* last folder resolved, and its fd */
	int cache_fd;
	/* The generation of cache_fd: every folder fd handed out is a
	 * duplicate of root_fd (generation 1) or of cache_fd, so two with the
	 * same generation name the same folder (sx_store_file.dir_gen). */
	uint64_t cache_gen, gens;
	unsigned file_fds; /* descriptors its files hold (fd, dir_fd, aux_fd) */
	/* Temporary names: a random 48-bit number drawn once, then counted
	 * (each created with O_EXCL, so a name taken already is skipped). */
	uint64_t tmp_next;
	bool tmp_seeded;
	/* The last free-space reading: its folder generation, when it was
	 * taken, its room above the reserve, and what files have announced
	 * since (sx_store_space). */
	uint64_t space_gen, space_ns, space_room, space_used;
	/* OUT's identity, for the index of held parts (sx_held.h) */
	dev_t out_dev;
	ino_t out_ino;
	bool out_known;
} sx_store;

typedef struct sx_store_file {
	sx_store *st; /* the store it belongs to (descriptor count, folders) */
	int dir_fd;   /* the folder the file lands in (owned) */
	/* Its store's generation of dir_fd (0: unknown): files of one store
	 * with the same nonzero dir_gen have dir_fd open on the same folder,
	 * so one flush of it makes all their renames durable. */
	uint64_t dir_gen;
	int fd; /* the temporary, open for writing */
	/* Direct I/O (O_DIRECT) on fd: writes whose buffer, offset and length
	 * are multiples of dio_align bypass the page cache. */
	bool direct;
	uint32_t dio_align;
	char name[256];
	char tmp[300];
	bool committed;
	/* a companion file (NAME.sxsig), written beside and committed first */
	int aux_fd;
	char aux_name[300];
	char aux_tmp[320];
	/* Parked (sx_store_park): no descriptor held; the folder's path
	 * beneath the root (malloc'd) reopens it. */
	char *parked_dir;
	/* a stream's last verified checkpoint (sx_store_ckpt_write), removed
	 * with the temporary */
	char ckpt[300];
	/* the temporary's .sxmeta (sx_store_temp_meta), removed with it */
	char meta[300];
} sx_store_file;

/* The process umask, read once (the first call must come before other
 * threads create files: the server's start-up). */
mode_t sx_store_umask(void);

/* Is name one of the temporaries above? base_len gets the length of NAME. */
bool sx_store_temp_name(const char *name, size_t *base_len);

/* Opens (creating) OUT and OUT/<peer>; peer must be a single safe component.
 * Without a peer (NULL), files land in OUT itself (sxfer get). */
int sx_store_open(sx_store *st, const char *out_dir, const char *peer, bool overwrite,
		  sx_err *err) SX_MUST_CHECK;
void sx_store_close(sx_store *st);

/* Creates the folder rel (and its parents) beneath the root. */
int sx_store_mkdir(sx_store *st, const uint8_t *rel, size_t len, mode_t mode,
		   sx_err *err) SX_MUST_CHECK;
/* Is rel a folder beneath the root already (resolved as sx_store_mkdir
 * does)? */
bool sx_store_dir_exists(sx_store *st, const uint8_t *rel, size_t len);
/* Sets a folder's mtime (at the end of a session, after its content). */
int sx_store_dir_mtime(sx_store *st, const uint8_t *rel, size_t len, const struct timespec *mtime,
		       sx_err *err) SX_MUST_CHECK;

/* Creates the temporary for rel. Refuses an existing final name unless the
 * store overwrites (SX_E_IO, "exists"), and a name of the form of a
 * temporary. */
int sx_store_begin(sx_store *st, const uint8_t *rel, size_t len, sx_store_file *f,
		   sx_err *err) SX_MUST_CHECK;
/* The folder of rel (an fd the caller closes; not counted in the store)
 * and its last component in name, resolved as sx_store_begin does but
 * creating nothing; -1 when it is not there or the path is refused. */
int sx_store_find(sx_store *st, const uint8_t *rel, size_t len, char name[256],
		  sx_err *err) SX_MUST_CHECK;
/* sx_store_find without a new descriptor: the folder's fd is the store's
 * own, valid until the next call on the store, and not closed by the
 * caller. */
int sx_store_lookup(sx_store *st, const uint8_t *rel, size_t len, char name[256],
		    sx_err *err) SX_MUST_CHECK;
/* May a held part (sx_held.h) be beneath the store's folder? False only
 * when a walk of OUT (the server's start-up, its hourly sweep) found none
 * and none was made since: then nothing needs to be looked for. */
bool sx_store_may_hold(const sx_store *st);
/* sx_store_begin without creating the temporary: the path resolved, the
 * folder open (dir_fd), the final name checked, a fresh temporary name in
 * tmp (nothing created). sx_store_end undoes it. */
int sx_store_prepare(sx_store *st, const uint8_t *rel, size_t len, sx_store_file *f,
		     sx_err *err) SX_MUST_CHECK;
/* After sx_store_prepare: the held part `held` (a name in dir_fd) becomes
 * the temporary (renamed, so only one connection gets it) and is opened
 * for writing. SX_E_IO "gone" when it is not there. */
int sx_store_claim(sx_store_file *f, const char *held, sx_err *err) SX_MUST_CHECK;
struct sx_held_meta;
/* Writes m beside the open temporary as its .sxmeta (no flush: a kill -9
 * leaves it in the page cache); removed with the temporary. */
int sx_store_temp_meta(sx_store_file *f, const struct sx_held_meta *m, sx_err *err) SX_MUST_CHECK;
/* Space kept free on the receiver's file system: a file is refused at
 * its beginning when its announced size does not fit in the free space
 * less this reserve (1 % of the file system, at most 256 MiB), so a disk is
 * never filled to the last block by one sender (docs/PROTOCOL.md). */
#define SX_STORE_RESERVE_MAX (256ull << 20)
/* Does a file of size bytes fit beside f (its folder's file system)?
 * 0, or -1 with SX_E_IO naming the sizes. A reading of the free space
 * (fstatvfs) serves the next files of the folder while it is recent and
 * they stay within half its room (SX_STORE_SPACE_TTL_NS); a file is refused
 * only on a fresh reading. */
int sx_store_space(const sx_store_file *f, uint64_t size, sx_err *err) SX_MUST_CHECK;

/* Turns direct I/O on for the temporary when its file system supports it
 * (statx STATX_DIOALIGN: memory and offset alignment at most 4096); returns
 * whether it is on. Nothing changes when it is not supported. */
bool sx_store_direct_on(sx_store_file *f);
/* Back to buffered writes (for a tail that is not aligned, or when the
 * file system refuses a direct write): 0, or -1 with errno. */
int sx_store_direct_off(sx_store_file *f);

/* Permission bits (less the umask) and mtime on the temporary (before its
 * fsync). */
int sx_store_meta(sx_store_file *f, mode_t mode, const struct timespec *mtime,
		  sx_err *err) SX_MUST_CHECK;
/* Writes a companion NAME<suffix> (for example the .sxsig) into its own
 * temporary beside the file; aux_fd stays open for an fsync. The final name
 * of the file itself may change first with sx_store_rename_final. */
int sx_store_aux_write(sx_store_file *f, const char *suffix, const void *data, size_t len,
		       sx_err *err) SX_MUST_CHECK;
/* Changes the final name to NAME<suffix> (a cut-off stream is kept as
 * NAME.partial). */
int sx_store_rename_final(sx_store_file *f, const char *suffix, sx_err *err) SX_MUST_CHECK;
/* Replaces the stream's checkpoint file beside the temporary atomically and
 * durably with data (the .sxsig text NAME.partial would get): what a start
 * after a crash recovers (sx_store_recover). */
int sx_store_ckpt_write(sx_store_file *f, const void *data, size_t len, sx_err *err) SX_MUST_CHECK;
/* Renames the (already fsynced) temporary to its final name; the companion,
 * when there is one, goes first, so a file under its final name always has
 * its signature beside it. */
int sx_store_commit(sx_store *st, sx_store_file *f, sx_err *err) SX_MUST_CHECK;
/* Closes the temporary once it is written and flushed (the rename needs
 * only the folder). */
void sx_store_close_data(sx_store_file *f);
/* Parks a flushed file that waits (for its batch signature): every
 * descriptor is closed, so a batch of thousands of files holds none;
 * rel/len is the path given to sx_store_begin. */
int sx_store_park(sx_store_file *f, const uint8_t *rel, size_t len, sx_err *err) SX_MUST_CHECK;
/* Reopens a parked file's folder (resolved beneath the root again, as at
 * sx_store_begin) and, with data, its temporary for writing. */
int sx_store_unpark(sx_store_file *f, bool data, sx_err *err) SX_MUST_CHECK;
/* Removes the temporary (if not committed) and closes everything; a parked
 * file's folder is reopened for that. */
void sx_store_end(sx_store_file *f);

#endif
