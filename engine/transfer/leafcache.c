/* The sender's leaf cache (sx_leafcache.h): one small file of leaf hashes
 * per source file, in a private folder bounded by age and emptied of the
 * files that were stored. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/transfer/sx_leafcache.h"

#define LC_MAGIC   "SXLEAVES"
#define LC_VERSION 1u

/* Cache files are named by 64 hex digits: anything else in the folder is
 * left alone. */
static bool cache_name(const char *n)
{
	size_t i = 0;
	for (; n[i] != '\0'; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
			return false;
	return i == 2 * SX_HASH_LEN;
}

static void prune(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!cache_name(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - st.st_mtime > (time_t)SX_LEAFCACHE_TTL_S)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

int sx_leafcache_dir(const char *receipts_dir, char *out, size_t cap)
{
	sx_err err = {0};
	size_t len = strlen(receipts_dir);
	while (len > 1 && receipts_dir[len - 1] == '/')
		len--;
	/* The parent of the receipts folder: up to its last slash. */
	size_t base = len;
	while (base > 0 && receipts_dir[base - 1] != '/')
		base--;
	while (base > 1 && receipts_dir[base - 1] == '/')
		base--;
	int n = base == 0 ? snprintf(out, cap, "leaves")
			  : snprintf(out, cap, "%.*s%sleaves", (int)base, receipts_dir,
				     receipts_dir[base - 1] == '/' ? "" : "/");
	if (n < 0 || (size_t)n >= cap || sx_mkdirs(out, 0700, &err) < 0) {
		out[0] = '\0';
		return -1;
	}
	prune(out);
	return 0;
}

uint64_t sx_leafcache_nleaves(const sx_lc_id *id)
{
	return id->size / id->leaf + (id->size % id->leaf != 0);
}

bool sx_leafcache_same(const sx_lc_id *a, const sx_lc_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns && a->leaf == b->leaf;
}

bool sx_leafcache_ident(int fd, uint32_t leaf, sx_lc_id *id)
{
	struct stat st;
	struct timespec now;
	if (leaf == 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	*id = (sx_lc_id){.dev = (uint64_t)st.st_dev,
			 .ino = (uint64_t)st.st_ino,
			 .size = (uint64_t)st.st_size,
			 .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
			 .ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec,
			 .leaf = leaf};
	if (sx_leafcache_nleaves(id) < 2 || clock_gettime(CLOCK_REALTIME, &now) < 0)
		return false;
	int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	int64_t last = id->mtime_ns > id->ctime_ns ? id->mtime_ns : id->ctime_ns;
	return now_ns - last >= SX_LEAFCACHE_SETTLE_NS;
}

static void header(const sx_lc_id *id, uint8_t h[SX_LEAFCACHE_HDR])
{
	uint32_t v = LC_VERSION;
	memset(h, 0, SX_LEAFCACHE_HDR);
	memcpy(h, LC_MAGIC, 8);
	memcpy(h + 8, &v, 4);
	memcpy(h + 12, &id->leaf, 4);
	memcpy(h + 16, &id->dev, 8);
	memcpy(h + 24, &id->ino, 8);
	memcpy(h + 32, &id->size, 8);
	memcpy(h + 40, &id->mtime_ns, 8);
	memcpy(h + 48, &id->ctime_ns, 8);
}

/* dir/<hex SHA-256 of (st_dev, st_ino, leaf size)> into out. */
static int path_of(const char *dir, const sx_lc_id *id, char *out, size_t cap)
{
	uint8_t key[20], md[SX_HASH_LEN];
	char hex[2 * SX_HASH_LEN + 1];
	unsigned int mdlen = 0;
	memcpy(key, &id->dev, 8);
	memcpy(key + 8, &id->ino, 8);
	memcpy(key + 16, &id->leaf, 4);
	if (dir == NULL || dir[0] == '\0' ||
	    EVP_Digest(key, sizeof(key), md, &mdlen, EVP_sha256(), NULL) != 1)
		return -1;
	sx_hex(md, sizeof(md), hex);
	int n = snprintf(out, cap, "%s/%s", dir, hex);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void sx_leafcache_open(sx_leafcache *c, const char *dir, const sx_lc_id *id)
{
	uint8_t want[SX_LEAFCACHE_HDR], got[SX_LEAFCACHE_HDR];
	struct stat st;
	c->fd = -1;
	c->have = c->next = 0;
	c->nbuf = 0;
	if (path_of(dir, id, c->path, sizeof(c->path)) < 0)
		return;
	c->fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (c->fd < 0)
		return;
	/* One sender at a time writes a file's cache; another one sending the
	 * same file meanwhile goes without. */
	if (flock(c->fd, LOCK_EX | LOCK_NB) < 0 || fstat(c->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	header(id, want);
	if (st.st_size >= (off_t)SX_LEAFCACHE_HDR &&
	    pread(c->fd, got, sizeof(got), 0) == (ssize_t)sizeof(got) &&
	    memcmp(got, want, sizeof(want)) == 0) {
		uint64_t n = ((uint64_t)st.st_size - SX_LEAFCACHE_HDR) / SX_HASH_LEN;
		uint64_t all = sx_leafcache_nleaves(id);
		c->have = c->next = n < all ? n : all;
		return;
	}
	/* New, stale (another file, or this one changed) or damaged. */
	if (ftruncate(c->fd, 0) < 0 ||
	    pwrite(c->fd, want, sizeof(want), 0) != (ssize_t)sizeof(want))
		sx_leafcache_close(c, true);
}

int sx_leafcache_read(sx_leafcache *c, uint64_t first, uint64_t n, uint8_t (*out)[SX_HASH_LEN])
{
	size_t len = (size_t)n * SX_HASH_LEN;
	off_t off = (off_t)(SX_LEAFCACHE_HDR + first * SX_HASH_LEN);
	if (c->fd < 0 || first + n > c->have)
		return -1;
	while (len > 0) {
		ssize_t r = pread(c->fd, out, len, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			sx_leafcache_close(c, true);
			return -1;
		}
		out = (uint8_t(*)[SX_HASH_LEN])((uint8_t *)out + r);
		len -= (size_t)r;
		off += r;
	}
	return 0;
}

static void flush(sx_leafcache *c)
{
	size_t len = (size_t)c->nbuf * SX_HASH_LEN;
	off_t off = (off_t)(SX_LEAFCACHE_HDR + (c->next - c->nbuf) * SX_HASH_LEN);
	if (c->fd < 0 || c->nbuf == 0)
		return;
	/* No fsync: a killed process leaves the page cache written; a power
	 * loss losing the tail only means more hashing next time. */
	if (pwrite(c->fd, c->buf, len, off) != (ssize_t)len) {
		sx_leafcache_close(c, true);
		return;
	}
	c->nbuf = 0;
	if (c->next > c->have)
		c->have = c->next;
}

void sx_leafcache_from(sx_leafcache *c, uint64_t at)
{
	if (c->fd < 0)
		return;
	flush(c);
	if (at > c->have) {
		sx_leafcache_close(c, false);
		return;
	}
	c->next = at;
}

void sx_leafcache_add(sx_leafcache *c, const uint8_t leaf[SX_HASH_LEN])
{
	if (c->fd < 0)
		return;
	memcpy(c->buf[c->nbuf++], leaf, SX_HASH_LEN);
	c->next++;
	if (c->nbuf == SX_LEAFCACHE_BATCH)
		flush(c);
}

void sx_leafcache_close(sx_leafcache *c, bool drop)
{
	if (c->fd < 0)
		return;
	if (!drop)
		flush(c); /* a failed write closes it, dropped */
	if (c->fd < 0)
		return;
	if (drop)
		(void)unlink(c->path);
	close(c->fd);
	c->fd = -1;
	c->nbuf = 0;
}

void sx_leafcache_remove(const char *dir, const sx_lc_id *id)
{
	char path[4200];
	if (path_of(dir, id, path, sizeof(path)) == 0)
		(void)unlink(path);
}
