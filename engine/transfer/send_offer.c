/* Resume and re-sending on the sender (docs/PROTOCOL.md, "Resume and
 * re-sending"): a QUERY per regular file ahead of the producer, in a window
 * of QWIN questions; each OFFER checked against its question and kept; and,
 * when the producer reaches the file, what it does with the offer: the
 * whole file, the rest after a held prefix whose root matches (FILE_RESUME),
 * nothing at all (FILE_SAME), or nothing because the receiver holds other
 * content under that name and does not overwrite. */
#include <errno.h>
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

/* Hashes the first len bytes of fd in leaves of the session's chunk into h
 * (left open, its compact range that of those bytes) and root. Read with
 * pread in large blocks, aligned for a file read with direct I/O. */
static int hash_file(sender *s, int fd, uint64_t len, sx_filehash *h, uint8_t root[SX_HASH_LEN],
		     sx_err *err)
{
	size_t nb = s->chunk >= HASH_BUF ? s->chunk : HASH_BUF / s->chunk * s->chunk;
	size_t cap = (nb + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	uint8_t *buf = aligned_alloc(SX_DIO_ALIGN, cap);
	uint64_t off = 0;
	int rc = -1;
	if (buf == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	if (sx_filehash_init(h, s->chunk, err) < 0) {
		free(buf);
		return -1;
	}
	while (off < len) {
		size_t want = len - off < nb ? (size_t)(len - off) : nb;
		size_t ask =
		    s->file.direct ? (want + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN : want;
		ssize_t r = pread(fd, buf, ask, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		SX_ENSURE(r >= 0, err, SX_E_IO, "reading a file to compare it: %s",
			  strerror(errno));
		SX_ENSURE(r > 0, err, SX_E_IO, "a file shrank while it was being compared");
		size_t got = (size_t)r < want ? (size_t)r : want;
		SX_GUARD(sx_filehash_update(h, buf, got, err));
		off += got;
	}
	SX_GUARD(sx_filehash_final(h, root, NULL, NULL, err));
	s->hashed = true;
	rc = 0;
out:
	free(buf);
	if (rc < 0)
		sx_filehash_free(h);
	return rc;
}

/* PARTIAL: the prefix's root against the offer's. */
static int decide_partial(sender *s, const query *q, sx_entry *e, sx_msg *m, pend *p, sx_err *err)
{
	sx_filehash h;
	uint8_t root[SX_HASH_LEN];
	if (hash_file(s, s->file.fd, q->from, &h, root, err) < 0)
		return -1;
	if (memcmp(root, q->root, SX_HASH_LEN) != 0) {
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
	sx_log("info", "resume", "path=%s from=%llu size=%llu", SX_LOGQ(e->rel),
	       (unsigned long long)q->from, (unsigned long long)s->file.size);
	return 0;
}

/* EXISTS: the whole file's root against the stored file's (when the
 * receiver knows it). */
static int decide_exists(sender *s, const query *q, sx_entry *e, pend *p, bool *same, bool *drop,
			 sx_err *err)
{
	sx_filehash h;
	bool over = (q->flags & SX_OFFER_OVERWRITE) != 0;
	if (q->leaf == 0 && over)
		return 0;
	if (hash_file(s, s->file.fd, s->file.size, &h, p->root, err) < 0)
		return -1;
	sx_filehash_free(&h);
	if (q->leaf != 0 && memcmp(p->root, q->root, SX_HASH_LEN) != 0) {
		*drop = !over;
		sx_log("info", "exists_other", "path=%s overwrite=%s", SX_LOGQ(e->rel),
		       SX_LOGT(over ? "yes" : "no"));
		return 0;
	}
	*same = true;
	sx_log("info", "same", "path=%s size=%llu known_root=%s", SX_LOGQ(e->rel),
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
