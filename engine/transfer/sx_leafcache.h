/* The sender's leaf cache (docs/ARCHITECTURE.md, "Resume and retries on the
 * sender"): the Merkle leaf hashes of a file, kept while a signed session
 * seals it, so that the root over a prefix the receiver holds is computed
 * from 32 bytes a leaf instead of reading the prefix again. One cache file
 * per source file and leaf size in a private folder:
 *
 *   header (64 bytes): "SXLEAVES" u32 version, u32 leaf, u64 st_dev,
 *                      u64 st_ino, u64 size, i64 mtime ns, i64 ctime ns,
 *                      u64 zero (host byte order: the cache never leaves
 *                      this machine)
 *   leaf hashes, 32 bytes each, in leaf order
 *
 * Everything here is best effort: a cache that cannot be made, read or
 * written is no cache, never an error of the transfer. */
#ifndef SX_LEAFCACHE_H
#define SX_LEAFCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_util.h"
#include "engine/sign/sx_manifest.h"

#define SX_LEAFCACHE_HDR       64u
#define SX_LEAFCACHE_BATCH     64u		/* leaves written at a time */
#define SX_LEAFCACHE_TTL_S     (7u * 24 * 3600) /* older cache files are removed */
#define SX_LEAFCACHE_SETTLE_NS 2000000000ll	/* see sx_leafcache_ident */

/* What a cache file stands for: the file's identity when it was opened. */
typedef struct sx_lc_id {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	uint32_t leaf;
} sx_lc_id;

typedef struct sx_leafcache {
	int fd;	       /* -1: no cache */
	uint64_t have; /* leaves the file holds, checked against its header */
	uint64_t next; /* leaf index of the next sx_leafcache_add */
	unsigned nbuf; /* leaves buffered, not yet written */
	uint8_t buf[SX_LEAFCACHE_BATCH][SX_HASH_LEN];
	char path[4200];
} sx_leafcache;

/* The leaves folder that goes with receipts folder receipts_dir (its
 * sibling "leaves"), into out; created 0700, and its cache files older than
 * SX_LEAFCACHE_TTL_S removed. -1 (out empty) when it cannot be made. */
int sx_leafcache_dir(const char *receipts_dir, char *out, size_t cap);
/* fd's identity for leaves of leaf bytes into id; false when it is not
 * worth a cache (not a regular file, fewer than 2 leaves) or cannot be
 * trusted to stand for the bytes: changed less than SX_LEAFCACHE_SETTLE_NS
 * ago, within the granularity of file times, where a change in the same
 * tick would keep them. */
bool sx_leafcache_ident(int fd, uint32_t leaf, sx_lc_id *id);
/* Whether a and b are the same identity. */
bool sx_leafcache_same(const sx_lc_id *a, const sx_lc_id *b);
/* The number of leaves of a file of id->size bytes. */
uint64_t sx_leafcache_nleaves(const sx_lc_id *id);
/* Opens (creates) the cache of id in dir, locked for this process: c->have
 * leaves that stand for the file (0 for a new, stale or damaged cache,
 * which is emptied); writes continue after them. c->fd is -1 when there is
 * no cache (cannot be made, or locked by another sender). */
void sx_leafcache_open(sx_leafcache *c, const char *dir, const sx_lc_id *id);
/* Reads leaves [first, first + n) into out: 0, or -1 (the cache is closed). */
int sx_leafcache_read(sx_leafcache *c, uint64_t first, uint64_t n, uint8_t (*out)[SX_HASH_LEN]);
/* The next leaf added is leaf number at (at <= c->have, else no cache). */
void sx_leafcache_from(sx_leafcache *c, uint64_t at);
/* Appends leaf (buffered; written every SX_LEAFCACHE_BATCH leaves). */
void sx_leafcache_add(sx_leafcache *c, const uint8_t leaf[SX_HASH_LEN]);
/* Writes what is buffered and closes; with drop the cache file is removed
 * (its leaves are not known to stand for the file). */
void sx_leafcache_close(sx_leafcache *c, bool drop);
/* Removes the cache of id in dir (the file is stored, or changed). */
void sx_leafcache_remove(const char *dir, const sx_lc_id *id);

#endif
