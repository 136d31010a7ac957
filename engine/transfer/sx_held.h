/* engine/transfer/held: what a receiver keeps of a file whose transfer
 * broke (docs/PROTOCOL.md, "Resume and re-sending"). The held part of NAME
 * is two files beside it:
 *   .NAME-PREFIX.H.sxheld       the first `held` bytes (whole leaves)
 *   .NAME-PREFIX.H.sxheld-meta  what is offered of them (sx_held_meta)
 * where NAME-PREFIX is the first 200 bytes of NAME and H the first 12 hex
 * digits of SHA-256(NAME). A temporary of a file of at least two leaves has
 * a ".sxmeta" beside it (its name with .sxpart replaced): the same format
 * with held 0, so a start after a kill -9 can make it a held part.
 *
 * The meta is small text, one field a line, in this order, each line ending
 * in '\n', nothing else (no blanks, no comments, no leading zeros):
 *   sxfer-held 1
 *   name <hex of NAME>
 *   fingerprint <64 lower-case hex digits>   the sender's certificate
 *   size <u64>                               the whole file
 *   leaf <u32>                               bytes per Merkle leaf
 *   held <u64>                               0 (a .sxmeta) or a multiple of leaf < size
 *   root <64 hex>                            over the held leaves (zero when held is 0)
 *   range <64 hex>                           one per set bit of held/leaf, largest first
 *   kept <i64>                               unix seconds
 *   mode <u32>                               permission bits (octal text)
 *   mtime <i64> <u32>                        seconds, nanoseconds
 *   signed 0|1                               the session was signed
 *   end */
#ifndef SX_HELD_H
#define SX_HELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/sx_err.h"
#include "engine/sign/sx_manifest.h"

#define SX_HELD_DATA	    ".sxheld"
#define SX_HELD_META	    ".sxheld-meta"
#define SX_STORE_TEMP_META  ".sxmeta"
#define SX_HELD_META_MAX    8192u
#define SX_HELD_TTL_DEFAULT (7u * 24 * 3600)
#define SX_HELD_NAME_MAX    256 /* a held part's file names, with their NUL */
#define SX_HELD_MIN_LEAVES  2	/* smaller files are not kept: cheap to resend */

typedef struct sx_held_meta {
	char name[256]; /* NAME (the last component) */
	char fingerprint[65];
	uint64_t size;
	uint32_t leaf;
	uint64_t held;
	uint8_t root[SX_HASH_LEN];
	uint8_t range[64][SX_HASH_LEN];
	unsigned depth;
	int64_t kept;
	uint32_t mode;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	bool sign;
} sx_held_meta;

/* The held part's file name of NAME with suffix (SX_HELD_DATA or
 * SX_HELD_META) into out (SX_HELD_NAME_MAX bytes). */
int sx_held_name(const char *name, const char *suffix, char *out, size_t cap,
		 sx_err *err) SX_MUST_CHECK;
/* Text of m into buf (SX_HELD_META_MAX bytes); *len its length. */
int sx_held_encode(const sx_held_meta *m, char *buf, size_t cap, size_t *len,
		   sx_err *err) SX_MUST_CHECK;
/* Strict parse (the format above); every field checked (held a multiple of
 * leaf below size, depth the set bits of held/leaf, ...). */
int sx_held_parse(const char *text, size_t len, sx_held_meta *m, sx_err *err) SX_MUST_CHECK;
/* Reads and parses the meta file `name` in the folder dfd (no symlink). */
int sx_held_read(int dfd, const char *name, sx_held_meta *m, sx_err *err) SX_MUST_CHECK;
/* Writes m as `name` in dfd (created or replaced, written whole); with
 * sync, flushed. */
int sx_held_write(int dfd, const char *name, const sx_held_meta *m, bool sync,
		  sx_err *err) SX_MUST_CHECK;
/* Makes the open temporary `tmp` (fd, in dfd) the held part of m->name:
 * cut to m->held bytes, flushed, meta written and flushed, both renamed
 * (replacing an older part), the folder flushed. */
int sx_held_keep(int dfd, int fd, const char *tmp, const sx_held_meta *m,
		 sx_err *err) SX_MUST_CHECK;
/* Hashes the first m->held bytes of fd in leaves of m->leaf: m->root and
 * m->range/depth. */
int sx_held_hash(int fd, sx_held_meta *m, sx_err *err) SX_MUST_CHECK;
/* Removes the held part of NAME in dfd (both files); true when there was
 * one. */
bool sx_held_remove(int dfd, const char *name);
/* Is the held part older than ttl_s seconds at now? */
bool sx_held_expired(const sx_held_meta *m, uint64_t ttl_s, int64_t now);

/* Where held parts may be: an index in memory, so that a receiver need not
 * look for the held part of every file it stores or is asked about (two
 * failing unlinks and an open per file). A walk of a server's whole OUT
 * (sx_store_recover_ttl: at start-up, and the hourly sweep) records
 * whether it saw a held part in it (sx_held_index_set); the server holds
 * OUT's lock, so any part made in OUT afterwards is made by this process,
 * and making one (sx_held_keep, sx_held_write of a part's meta) marks the
 * index: from then on every folder may hold parts again, until a walk that
 * began after the mark finds none. A folder no walk recorded may always
 * hold parts (the folder of a get, which other gets may share).
 * Thread-safe. */
/* The number of marks so far: taken when a walk begins. */
uint64_t sx_held_index_epoch(void);
/* Records a walk of the folder out_fd (OUT) that began at epoch: none left
 * in it, or some (or a part of it could not be walked). */
void sx_held_index_set(int out_fd, bool none, uint64_t epoch);
/* May a held part exist beneath the folder with this device and inode? */
bool sx_held_index_may(dev_t dev, ino_t ino);
/* A held part is being made or written: every folder may hold parts. */
void sx_held_index_mark(void);

#endif
