/* Resume and re-sending on the sender (docs/PROTOCOL.md, "Resume and
 * re-sending"): a QUERY per regular file ahead of the producer, in a window
 * of QWIN questions; each OFFER checked against its question and kept; and,
 * when the producer reaches the file, what it does with the offer: the
 * whole file, the rest after a held prefix whose root matches (FILE_RESUME),
 * nothing at all (FILE_SAME), or nothing because the receiver holds other
 * content under that name and does not overwrite. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/transfer/send_int.h"

#define HASH_BUF (4u << 20) /* bytes read at a time to hash a file */

int sx_send_query(sender *s, slot *sl, sx_err *err)
{
	if (!s->ask || s->q_sent - s->q_used >= QWIN)
		return 0;
	while (s->q_next < s->ents.n) {
		size_t i = s->q_next++;
		sx_entry *e = &s->ents.v[i];
		uint64_t size;
		/* Folders, streams, what an earlier attempt finished and what
		 * goes whole anyway are not asked about; nor a file that cannot
		 * be looked at (its open says why). */
		if (e->is_dir || e->src == NULL || e->done || e->fresh ||
		    sx_source_size(e, &size) < 0)
			continue;
		query *q = &s->q[s->q_sent % QWIN];
		*q = (query){.entry = i, .size = size};
		s->q_sent++;
		sx_msg m = {.type = SX_MSG_QUERY,
			    .file_id = s->q_sent,
			    .size = size,
			    .path = (const uint8_t *)e->rel,
			    .path_len = strlen(e->rel)};
#ifdef SXFER_TEST_HOOKS
		/* The server of a get probes its client's folder for a name it
		 * was not asked for (tests/e2e/test_get_hostile.sh). */
		const char *hv = getenv("SXFER_TEST_HOSTILE");
		if (s->cfg->serving && hv != NULL && strcmp(hv, "probe") == 0) {
			m.path = (const uint8_t *)"secret.bin";
			m.path_len = strlen("secret.bin");
		}
#endif
		if (sx_send_put_ctrl(s, sl, &m, err) < 0)
			return -1;
		return 1;
	}
	return 0;
}

int sx_send_on_offer(sender *s, const sx_msg *m, sx_err *err)
{
	if (!s->ask || m->file_id != s->q_answered + 1 || m->file_id > s->q_sent)
		return sx_fail(err, SX_E_INTEGRITY,
			       "receiver answered question %u; %u of %u were answered before",
			       m->file_id, s->q_answered, s->q_sent);
	query *q = &s->q[(m->file_id - 1) % QWIN];
	const char *rel = s->ents.v[q->entry].rel;
	if (m->kind == SX_OFFER_PARTIAL && (m->leaf != s->chunk || m->from >= q->size))
		return sx_fail(err, SX_E_INTEGRITY,
			       "receiver offered %llu bytes of '%s' (%llu bytes) in leaves of %u "
			       "(the session's are %u)",
			       (unsigned long long)m->from, rel, (unsigned long long)q->size,
			       m->leaf, s->chunk);
	if (m->kind == SX_OFFER_EXISTS &&
	    (m->from != q->size || (m->leaf != 0 && m->leaf != s->chunk)))
		return sx_fail(err, SX_E_INTEGRITY,
			       "receiver said '%s' exists with %llu bytes in leaves of %u (asked: "
			       "%llu bytes, leaves of %u)",
			       rel, (unsigned long long)m->from, m->leaf,
			       (unsigned long long)q->size, s->chunk);
	q->kind = m->kind;
	q->flags = m->flags;
	q->leaf = m->leaf;
	q->from = m->from;
	memcpy(q->root, m->root, sizeof(q->root));
	q->answered = true;
	s->q_answered++;
	return 0;
}

int sx_send_offer_for(sender *s, const query **out)
{
	*out = NULL;
	if (!s->ask || s->q_used == s->q_sent)
		return 0;
	query *q = &s->q[s->q_used % QWIN];
	if (q->entry != s->cur)
		return 0; /* not asked about */
	if (!q->answered)
		return 1;
	s->q_used++;
	*out = q;
	return 0;
}

/* want bytes of fd at off into buf, whole. */
static int read_block(sender *s, int fd, uint8_t *buf, size_t want, uint64_t off, sx_err *err)
{
	size_t got = 0;
	while (got < want) {
		size_t ask = want - got;
		if (s->file.direct)
			ask = (ask + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
		ssize_t r = pread(fd, buf + got, ask, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return sx_fail(err, SX_E_IO, "reading a file to compare it: %s",
				       strerror(errno));
		if (r == 0)
			return sx_fail(err, SX_E_IO, "a file shrank while it was being compared");
		got += (size_t)r;
	}
	return 0;
}

/* Leaf hashes of buf[0, len) in leaves of chunk bytes into out (on a
 * helper thread for half of a block). */
typedef struct leafjob {
	const uint8_t *buf;
	size_t len;
	uint32_t chunk;
	uint8_t (*out)[SX_HASH_LEN];
	int rc;
	sx_err err;
} leafjob;

static void *hash_leaves(void *arg)
{
	leafjob *j = arg;
	j->rc = 0;
	for (size_t i = 0, k = 0; i < j->len && j->rc == 0; i += j->chunk, k++) {
		size_t n = j->len - i < j->chunk ? j->len - i : j->chunk;
		j->rc = sx_merkle_leaf(j->buf + i, n, j->out[k], &j->err);
	}
	return NULL;
}

/* The leaves of a block read, on two threads when it has two or more:
 * SHA-256 is the cost of a comparison, and the sealing workers are idle
 * while the loop's thread compares. */
static int block_leaves(const uint8_t *buf, size_t len, uint32_t chunk, uint8_t (*out)[SX_HASH_LEN],
			sx_err *err)
{
	size_t n = len / chunk + (len % chunk != 0), half = n / 2;
	leafjob a = {.buf = buf, .len = half * chunk, .chunk = chunk, .out = out};
	leafjob b = {.buf = buf + half * chunk,
		     .len = len - half * chunk,
		     .chunk = chunk,
		     .out = out + half};
	pthread_t th;
	bool two = half > 0 && pthread_create(&th, NULL, hash_leaves, &a) == 0;
	if (!two) {
		b = (leafjob){.buf = buf, .len = len, .chunk = chunk, .out = out};
		a.rc = 0;
	}
	hash_leaves(&b);
	if (two)
		pthread_join(th, NULL);
	if (a.rc < 0 || b.rc < 0) {
		*err = a.rc < 0 ? a.err : b.err;
		return -1;
	}
	return 0;
}

/* Reads bytes [from, len) of fd (from at a leaf boundary) and folds them
 * into h leaf by leaf, each leaf also into the cache c. Read with pread in
 * large blocks, aligned for a file read with direct I/O. */
static int hash_file(sender *s, int fd, uint64_t from, uint64_t len, sx_filehash *h,
		     sx_leafcache *c, sx_err *err)
{
	size_t nb = s->chunk >= HASH_BUF ? s->chunk : HASH_BUF / s->chunk * s->chunk;
	size_t cap = (nb + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	uint8_t *buf = aligned_alloc(SX_DIO_ALIGN, cap);
	uint8_t(*lv)[SX_HASH_LEN] = malloc((nb / s->chunk + 1) * SX_HASH_LEN);
	uint64_t off = from;
	int rc = -1;
	if (buf == NULL || lv == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		goto out;
	}
	while (off < len) {
		size_t want = len - off < nb ? (size_t)(len - off) : nb;
		SX_GUARD(read_block(s, fd, buf, want, off, err));
		SX_GUARD(block_leaves(buf, want, s->chunk, lv, err));
		for (size_t i = 0, k = 0; i < want; i += s->chunk, k++) {
			size_t n = want - i < s->chunk ? want - i : s->chunk;
			SX_GUARD(sx_filehash_add_leaf(h, lv[k], n, err));
			sx_leafcache_add(c, lv[k]);
		}
		off += want;
		s->stats->bytes_compared += want;
	}
	rc = 0;
out:
	free(lv);
	free(buf);
	return rc;
}

/* Folds the first n leaves of the cache c into h, a batch at a time: 0, or
 * -1 when the cache could not be read (h is then unusable). */
static int cached_leaves(sender *s, sx_leafcache *c, uint64_t n, uint64_t size, sx_filehash *h,
			 sx_err *err)
{
	uint8_t lv[SX_LEAFCACHE_BATCH][SX_HASH_LEN];
	for (uint64_t i = 0; i < n; i += SX_LEAFCACHE_BATCH) {
		uint64_t k = n - i < SX_LEAFCACHE_BATCH ? n - i : SX_LEAFCACHE_BATCH;
		if (sx_leafcache_read(c, i, k, lv) < 0)
			return -1;
		for (uint64_t j = 0; j < k; j++) {
			uint64_t at = (i + j) * s->chunk;
			size_t len = size - at < s->chunk ? (size_t)(size - at) : s->chunk;
			if (sx_filehash_add_leaf(h, lv[j], len, err) < 0)
				return -1;
		}
	}
	s->stats->leaves_cached += n;
	return 0;
}

/* The root over the first len bytes of the file being begun (a multiple of
 * the leaf size, or the whole file) into root, h left open with their
 * compact range. The leaves the cache holds for the file (p->cache, and
 * use_cache) are taken from it, the rest read and added to it; *cached:
 * leaves taken. */
static int prefix_root(sender *s, const pend *p, uint64_t len, bool use_cache, sx_filehash *h,
		       uint8_t root[SX_HASH_LEN], uint64_t *cached, sx_err *err)
{
	sx_leafcache c = {.fd = -1};
	uint64_t n = len / s->chunk + (len % s->chunk != 0), k = 0;
	*cached = 0;
	if (sx_filehash_init(h, s->chunk, err) < 0)
		return -1;
	if (p->cache)
		sx_leafcache_open(&c, s->leaves_dir, &p->id);
	if (use_cache && c.have > 0) {
		k = c.have < n ? c.have : n;
		if (cached_leaves(s, &c, k, s->file.size, h, err) < 0) {
			/* Unreadable: read it all. */
			sx_filehash_free(h);
			k = 0;
			if (sx_filehash_init(h, s->chunk, err) < 0)
				goto fail;
		}
	}
	sx_leafcache_from(&c, k);
	if (hash_file(s, s->file.fd, k * s->chunk, len, h, &c, err) < 0 ||
	    sx_filehash_final(h, root, NULL, NULL, err) < 0) {
		sx_filehash_free(h);
		goto fail;
	}
	sx_leafcache_close(&c, false);
	s->hashed = true;
	*cached = k;
	return 0;
fail:
	sx_leafcache_close(&c, false);
	return -1;
}

/* The root of the first len bytes compared with want: *equal. A root made
 * of cached leaves that differs is made again from the file's bytes (the
 * cache was damaged), so a bad cache costs a read, never a resume. */
static int compare_root(sender *s, const pend *p, uint64_t len, const uint8_t want[SX_HASH_LEN],
			sx_filehash *h, uint8_t root[SX_HASH_LEN], bool *equal, sx_err *err)
{
	uint64_t cached;
	if (prefix_root(s, p, len, true, h, root, &cached, err) < 0)
		return -1;
	*equal = memcmp(root, want, SX_HASH_LEN) == 0;
	if (*equal || cached == 0)
		return 0;
	sx_filehash_free(h);
	sx_log("warn", "leaf_cache", "reason=\"cached leaves do not match: read\" leaves=%llu",
	       (unsigned long long)cached);
	if (prefix_root(s, p, len, false, h, root, &cached, err) < 0)
		return -1;
	*equal = memcmp(root, want, SX_HASH_LEN) == 0;
	return 0;
}

/* PARTIAL: the prefix's root against the offer's. */
static int decide_partial(sender *s, const query *q, sx_entry *e, sx_msg *m, pend *p, sx_err *err)
{
	sx_filehash h;
	uint8_t root[SX_HASH_LEN];
	bool equal;
	if (compare_root(s, p, q->from, q->root, &h, root, &equal, err) < 0)
		return -1;
	if (!equal) {
		sx_filehash_free(&h);
		sx_log("info", "resume_changed",
		       "path=%s held=%llu reason=\"the source changed since the held part was "
		       "sent: sent whole\"",
		       SX_LOGQ(e->rel), (unsigned long long)q->from);
		return 0;
	}
	p->resumed = true;
	p->nleaves = h.nleaves;
	p->depth = h.depth;
	memcpy(p->range, h.range, (size_t)h.depth * SX_HASH_LEN);
	sx_filehash_free(&h);
	m->type = SX_MSG_FILE_RESUME;
	m->from = q->from;
	memcpy(m->root, root, SX_HASH_LEN);
	s->cur_off = q->from;
	s->stats->files_resumed++;
	s->stats->bytes_resumed += q->from;
	s->prog.bytes_sent += q->from;
	sx_log("debug", "resume", "path=%s from=%llu size=%llu", SX_LOGQ(e->rel),
	       (unsigned long long)q->from, (unsigned long long)s->file.size);
	return 0;
}

/* EXISTS: the whole file's root against the stored file's (when the
 * receiver knows it). Cached leaves only with a root to check them
 * against: without one, the root sent in FILE_SAME is made from the file. */
static int decide_exists(sender *s, const query *q, sx_entry *e, pend *p, bool *same, bool *drop,
			 sx_err *err)
{
	sx_filehash h;
	bool over = (q->flags & SX_OFFER_OVERWRITE) != 0, equal = true;
	uint64_t cached;
	if (q->leaf == 0 && over)
		return 0;
	if (q->leaf != 0 ? compare_root(s, p, s->file.size, q->root, &h, p->root, &equal, err) < 0
			 : prefix_root(s, p, s->file.size, false, &h, p->root, &cached, err) < 0)
		return -1;
	sx_filehash_free(&h);
	if (!equal) {
		*drop = !over;
		sx_log("info", "exists_other", "path=%s overwrite=%s", SX_LOGQ(e->rel),
		       SX_LOGT(over ? "yes" : "no"));
		return 0;
	}
	*same = true;
	sx_log("debug", "same", "path=%s size=%llu known_root=%s", SX_LOGQ(e->rel),
	       (unsigned long long)s->file.size, SX_LOGT(q->leaf != 0 ? "yes" : "no"));
	return 0;
}

int sx_send_decide(sender *s, const query *q, sx_entry *e, sx_msg *m, pend *p, bool *same,
		   bool *drop, sx_err *err)
{
	*same = *drop = false;
	p->resumed = false;
	if (q == NULL || q->kind == SX_OFFER_NONE || e->fresh)
		return 0;
	if (q->size != s->file.size) {
		/* Changed since it was asked about: the offer is about other
		 * content. */
		sx_log("info", "resume_changed",
		       "path=%s asked=%llu size=%llu reason=\"the size changed since the "
		       "question: sent whole\"",
		       SX_LOGQ(e->rel), (unsigned long long)q->size,
		       (unsigned long long)s->file.size);
		return 0;
	}
	if (q->kind == SX_OFFER_PARTIAL)
		return decide_partial(s, q, e, m, p, err);
	return decide_exists(s, q, e, p, same, drop, err);
}
