/* The send pipeline: free slots are filled with the next records in order
 * (a file's chunks are read straight into them), prepared in sequence order
 * (hashed, compressed, sealed, here or by the worker pool) and sent one at a
 * time (ARCHITECTURE.md, "The data path of one chunk"). Where the files come
 * from is source.c; the connection and the receiver's answers are
 * send_session.c. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/transfer/send_int.h"

#ifdef SXFER_TEST_HOOKS
#include <stdio.h>
#include <stdlib.h>
/* ---- TEST HOOKS: a hostile server for the tests of sxfer get ----------------
 * Compiled into the sanitizer test build only (CMakeLists.txt), never into a
 * release build. With SXFER_TEST_HOSTILE=MODE, the server's side of get
 * (cfg->serving) misbehaves in one way (tests/e2e/test_get_hostile.sh):
 *   badsig     every BATCH signature has a byte flipped
 *   badroot    DATA is flipped after it was hashed: the records authenticate,
 *              the content does not match the signed Merkle root
 *   wrongname  the first file is sent as "evil-NAME"
 *   unsigned   the session is unsigned although signatures were asked for
 *              (send_session.c)
 *   probe      its QUERYs name "secret.bin", a file the client did not ask
 *              for (send_offer.c) */
static bool hostile(const sender *s, const char *mode)
{
	const char *v = getenv("SXFER_TEST_HOSTILE");
	return s->cfg->serving && v != NULL && strcmp(v, mode) == 0;
}
#endif

static slot *free_slot(sender *s)
{
	for (unsigned i = 0; i < NSLOTS; i++)
		if (s->slots[i].state == SLOT_FREE)
			return &s->slots[i];
	return NULL;
}

static int fill_ctrl(slot *sl, const sx_msg *m, sx_err *err)
{
	sx_wbuf w = sx_wbuf_make(sl->buf + SX_REC_HDR_LEN, CTRL_MAX);
	sx_msg_encode(m, &w);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "control message does not fit");
	sl->type = SX_REC_CTRL;
	sl->plen = w.len;
	sl->state = SLOT_READY;
	return 0;
}

int sx_send_put_ctrl(sender *s, slot *sl, const sx_msg *m, sx_err *err)
{
	sl->order = s->next_order++;
	return fill_ctrl(sl, m, err);
}

static int submit_read(sender *s, slot *sl, sx_err *err)
{
	unsigned idx = (unsigned)(sl - s->slots);
	uint64_t off = sl->stream ? SX_IO_OFF_CUR : sl->off + sl->plen;
	size_t len = sl->want - sl->plen;
	/* Direct I/O reads whole blocks: the last one of a file is asked for
	 * in full and comes back short (the slot has the room). */
	if (sl->direct)
		len = (len + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	sl->state = SLOT_READING;
	return sx_io_read(s->io, sl->fd, sl->buf + SX_REC_HDR_LEN + sl->plen, len, off,
			  tag_of(OP_READ, idx), err);
}

void sx_send_close_idle(sender *s)
{
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++) {
		int fd = s->fds_open[i];
		if (fd < 0)
			continue;
		bool busy = false;
		for (unsigned j = 0; j < NSLOTS; j++)
			if (s->slots[j].state == SLOT_READING && s->slots[j].fd == fd)
				busy = true;
		if (!busy) {
			sx_io_file_remove(s->io, fd);
			close(fd);
			s->fds_open[i] = -1;
		}
	}
}

/* Keeps fd until the reads in flight on it complete. */
int sx_send_park_fd(sender *s, int fd, sx_err *err)
{
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++)
		if (s->fds_open[i] < 0) {
			s->fds_open[i] = fd;
			sx_send_close_idle(s);
			return 0;
		}
	sx_io_file_remove(s->io, fd);
	close(fd);
	return sx_fail(err, SX_E_OTHER, "too many files with reads in flight (internal)");
}

/* A folder: DIR. */
static int produce_dir(sender *s, slot *sl, sx_entry *e, sx_err *err)
{
	sx_msg m = {
	    .type = SX_MSG_DIR, .path = (const uint8_t *)e->rel, .path_len = strlen(e->rel)};
	if (sx_source_stat_dir(e, &m, err) < 0 || sx_send_put_ctrl(s, sl, &m, err) < 0)
		return -1;
	s->cur++;
	return 0;
}

/* The file is over at its beginning (FILE_SAME, or not sent): its
 * descriptor is closed, the producer moves on. */
static int produce_skip_file(sender *s, sx_err *err)
{
	s->prog.bytes_sent += s->file.size;
	int rc = sx_send_park_fd(s, s->file.fd, err);
	s->file.fd = -1;
	s->cur++;
	s->phase = PH_BEGIN;
	return rc;
}

/* EXISTS with other content, and the receiver does not overwrite: the file
 * is not sent, and counted as refused. */
static int produce_drop(sender *s, sx_entry *e, sx_err *err)
{
	s->stats->files_failed++;
	s->prog.files_done++;
	e->done = true;
	sx_log("error", "file_refused", "path=%s class=%d reason=%s", SX_LOGQ(e->rel), SX_E_IO,
	       SX_LOGQ("exists on the receiver with other content"));
	sx_send_report_file(s, e, false, false, SX_E_IO,
			    "exists on the receiver with other content");
	sx_fail(&s->file_err, SX_E_IO, "'%s' exists on the receiver with other content", e->rel);
	return produce_skip_file(s, err);
}

/* A file begins once its OFFER is in (1: not yet): FILE_BEGIN, FILE_RESUME
 * or FILE_SAME with the file opened, or nothing at all (produce_drop). */
static int produce_file(sender *s, slot *sl, sx_entry *e, sx_err *err)
{
	const query *q;
	pend *p = &s->pends[sl - s->slots];
	bool same, drop;
	sx_msg m = {.path = (const uint8_t *)e->rel, .path_len = strlen(e->rel)};
	if (sx_send_offer_for(s, &q) == 1)
		return 1;
	SX_GUARD(sx_source_open(&s->file, e, s->cfg, s->chunk, &m, err));
	if (e->src != NULL)
		/* Removed before its close (sx_send_close_idle); the rest go
		 * with sx_io_close. Only a file read a few times is worth it. */
		(void)sx_io_file_add_after(s->io, s->file.fd, SX_IO_REG_AFTER);
	else
		s->stream_begun = true;
	s->cur_refused = false;
	s->cur_off = 0;
	s->stream_ckpt_off = 0;
	/* Its leaves are cached when it is a regular file that has settled
	 * (of two leaves at least: sx_leafcache_ident, not asked otherwise). */
	s->cur_cache = e->src != NULL && s->leaves_dir[0] != '\0' && s->file.size > s->chunk &&
		       sx_leafcache_ident(s->file.fd, s->chunk, &s->cur_id) &&
		       s->cur_id.size == s->file.size;
	p->cache = s->cur_cache;
	p->id = s->cur_id;
	m.type = SX_MSG_FILE_BEGIN;
	SX_GUARD(sx_send_decide(s, q, e, &m, p, &same, &drop, err));
	if (drop && p->cache)
		sx_leafcache_remove(s->leaves_dir, &p->id); /* not sent: not asked again */
	if (drop)
		return produce_drop(s, e, err);
	if (same) {
		m.type = SX_MSG_FILE_SAME;
		memcpy(m.root, p->root, SX_HASH_LEN);
	}
	m.file_id = ++s->file_id;
	SX_GUARD(sx_send_put_ctrl(s, sl, &m, err));
	sl->late = same ? LATE_SAME : LATE_BEGIN;
	sl->entry = s->cur;
	e->file_id = m.file_id;
	e->size = s->file.size;
	e->mtime_sec = m.mtime_sec;
	e->mtime_nsec = m.mtime_nsec;
	SX_GUARD(sx_send_fid_add(s, m.file_id, s->cur, err));
	s->fids[m.file_id].same = same;
	s->fids[m.file_id].resumed = p->resumed;
	s->fids[m.file_id].cached = p->cache;
	s->fids[m.file_id].lc = p->id;
	s->phase = PH_DATA;
	if (!same)
		return 0;
	/* No DATA and no FILE_END: in the open batch as a file ended here. */
	if (s->p_files++ == 0)
		s->p_t0 = sx_now_ns();
	s->p_bytes += s->file.size;
	return produce_skip_file(s, err);
out:
	return -1;
}

/* A file or folder begins. */
static int produce_begin(sender *s, slot *sl, sx_entry *e, sx_err *err)
{
#ifdef SXFER_TEST_HOOKS
	/* TEST HOOK wrongname: the first file under a name not asked for (in
	 * FILE_BEGIN and in the signed batch alike). */
	char *evil;
	if (!e->is_dir && s->file_id == 0 && hostile(s, "wrongname")) {
		if (asprintf(&evil, "evil-%s", e->rel) < 0)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		free(e->rel);
		e->rel = evil;
	}
#endif
	if (e->is_dir)
		return produce_dir(s, sl, e, err);
	return produce_file(s, sl, e, err);
}

/* The next DATA record of the file being read, a checkpoint of a stream,
 * or the move to its end. 1: nothing more until a stream's read completes. */
static int produce_data(sender *s, slot *sl, sx_entry *e, sx_err *err)
{
	if (e->src == NULL) {
		if (s->stream_reading)
			return 1;
		if (s->sign &&
		    s->cur_off - s->stream_ckpt_off >= (uint64_t)s->ckpt_records * s->chunk) {
			/* A signed checkpoint every K chunks of a stream: a
			 * cut-off stream stays verifiable up to here. Counted
			 * in bytes, not records (a pipe gives short reads), so
			 * each checkpoint covers K more whole leaves. */
			sl->type = SX_REC_CTRL;
			sl->late = LATE_CHECKPOINT;
			sl->entry = s->cur;
			sl->state = SLOT_READY;
			sl->order = s->next_order++;
			s->stream_ckpt_off = s->cur_off;
			return 0;
		}
		sl->stream = true;
		sl->want = s->chunk;
	} else if (s->cur_refused && s->cur_off < s->file.size) {
		/* The receiver refused it (FILE_ERR): the rest would be
		 * dropped there. It ends here with what was sent
		 * (docs/PROTOCOL.md, FILE_END). */
		s->file.size = e->size = s->cur_off;
		s->phase = PH_END;
		return 0;
	} else if (s->cur_off < s->file.size) {
		uint64_t left = s->file.size - s->cur_off;
		sl->stream = false;
		sl->want = left < s->chunk ? (size_t)left : s->chunk;
	} else {
		s->phase = PH_END;
		return 0;
	}
	sl->type = SX_REC_DATA;
	sl->fd = s->file.fd;
	sl->off = s->cur_off;
	sl->plen = 0;
	sl->direct = !sl->stream && s->file.direct;
	sl->order = s->next_order++;
	SX_GUARD(submit_read(s, sl, err));
	if (sl->stream)
		s->stream_reading = true;
	else
		s->cur_off += sl->want;
	return 0;
out:
	return -1;
}

/* The end of a regular file (a stream ends in sx_send_on_read). */
static int produce_end(sender *s, slot *sl, sx_entry *e, sx_err *err)
{
	pend *p = &s->pends[sl - s->slots];
	sx_lc_id now;
	if (!s->cur_refused)
		sx_source_check_grown(&s->file, e, s->stats);
	/* Changed while it was read: what was hashed may be neither the old
	 * nor the new content, so its cached leaves go. */
	p->stale = s->cur_cache && (!sx_leafcache_ident(s->file.fd, s->chunk, &now) ||
				    !sx_leafcache_same(&now, &s->cur_id));
	sl->type = SX_REC_CTRL;
	sl->late = LATE_END;
	sl->entry = s->cur;
	sl->state = SLOT_READY;
	sl->order = s->next_order++;
	if (s->p_files++ == 0)
		s->p_t0 = sx_now_ns();
	s->p_bytes += s->file.size;
	/* Reads of this file may still be in flight; its fd is closed when
	 * the last one completes (see sx_send_on_read), or now when none is
	 * (an empty file has none). */
	SX_GUARD(sx_send_park_fd(s, s->file.fd, err));
	s->file.fd = -1;
	s->cur++;
	s->phase = PH_BEGIN;
	return 0;
out:
	return -1;
}

/* Fills free slots with the next records, in order. */
int sx_send_produce(sender *s, sx_err *err)
{
	slot *sl;
	int r = 0;
	while (r == 0 && !s->produced_eos && (sl = free_slot(s)) != NULL) {
		sl->late = LATE_NONE;
		if (!s->session_queued) {
			sx_msg m = {.type = SX_MSG_SESSION,
				    .flags = s->sign ? SX_SESSION_SIGNED : 0,
				    .hash_chunk = s->chunk};
			memcpy(m.transfer_id, s->tid, SX_TID_LEN);
			SX_GUARD(sx_send_put_ctrl(s, sl, &m, err));
			s->session_queued = true;
			continue;
		}
		/* What an earlier attempt of the run finished is not sent again. */
		while (s->phase == PH_BEGIN && s->cur < s->ents.n && s->ents.v[s->cur].done)
			s->cur++;
		if (s->sign && s->p_files > 0 &&
		    (s->p_files >= s->batch_files || s->p_bytes >= s->batch_bytes ||
		     sx_now_ns() - s->p_t0 >= s->batch_ns || s->cur == s->ents.n)) {
			/* The batch closes: its BATCH record follows the FILE_END
			 * of its last file. */
			sl->type = SX_REC_CTRL;
			sl->late = LATE_BATCH;
			sl->state = SLOT_READY;
			sl->order = s->next_order++;
			s->p_files = 0;
			s->p_bytes = 0;
			continue;
		}
		r = sx_send_query(s, sl, err);
		if (r != 0) {
			r = r < 0 ? -1 : 0;
			continue;
		}
		if (s->cur == s->ents.n) {
			sl->type = SX_REC_EOS;
			sl->plen = 0;
			sl->state = SLOT_READY;
			sl->order = s->next_order++;
			s->produced_eos = true;
			break;
		}
		sx_entry *e = &s->ents.v[s->cur];
		if (s->phase == PH_BEGIN)
			r = produce_begin(s, sl, e, err);
		else if (s->phase == PH_DATA)
			r = produce_data(s, sl, e, err);
		else
			r = produce_end(s, sl, e, err);
	}
	return r < 0 ? -1 : 0;
out:
	return -1;
}

int sx_send_on_read(sender *s, unsigned idx, int64_t res, sx_err *err)
{
	slot *sl = &s->slots[idx];
	if (res < 0)
		return sx_fail_errno(err, SX_E_IO, (int)-res, "%s: read failed",
				     sl->stream ? "standard input" : "file");
	if (sl->stream) {
		s->stream_reading = false;
		if (res == 0) {
			/* End of the stream: this slot keeps its place in the
			 * order and carries FILE_END instead of data. */
			sl->type = SX_REC_CTRL;
			sl->late = LATE_END;
			sl->entry = s->cur;
			sl->state = SLOT_READY;
			s->ents.v[s->cur].size = s->cur_off;
			if (s->p_files++ == 0)
				s->p_t0 = sx_now_ns();
			s->p_bytes += s->cur_off;
			s->cur++;
			s->phase = PH_BEGIN;
			return 0;
		}
		sl->plen = (size_t)res;
		s->cur_off += (uint64_t)res;
		sl->state = SLOT_READY;
		return 0;
	}
	if (res == 0)
		return sx_fail(err, SX_E_IO, "a file shrank while it was being sent");
	sl->plen += (size_t)res;
	if (sl->direct) {
		/* Whole blocks were asked for: more than wanted means the
		 * file grew since it was announced (its announced size is
		 * sent, as with buffered reads); a short read that is not
		 * whole blocks means it shrank. */
		if (sl->plen >= sl->want) {
			s->stats->direct_bytes += sl->want;
			sl->plen = sl->want;
		} else if (sl->plen % SX_DIO_ALIGN != 0) {
			return sx_fail(err, SX_E_IO, "a file shrank while it was being sent");
		}
	}
	if (sl->plen < sl->want)
		return submit_read(s, sl, err);
	sl->state = SLOT_READY;
	return 0;
}

static sx_sbatch *open_batch(sender *s, sx_err *err)
{
	if (s->nbatches > 0 && !s->batches[s->nbatches - 1].sealed)
		return &s->batches[s->nbatches - 1];
	if (sx_grow(&s->batches, &s->batches_cap, s->nbatches + 1, sizeof(*s->batches),
		    SX_SESSION_BATCHES_MAX, "batches in one session", err) < 0)
		return NULL;
	sx_sbatch *b = &s->batches[s->nbatches++];
	memset(b, 0, sizeof(*b));
	b->number = s->nbatches;
	return b;
}

/* A file ended (FILE_END, or FILE_SAME) goes into the open batch. */
static int batch_add(sender *s, const sx_entry *e, const uint8_t root[SX_HASH_LEN], sx_err *err)
{
	sx_sbatch *b = open_batch(s, err);
	if (b == NULL || sx_sbatch_add(b, e->file_id, root, e->size, e->mtime_sec, e->mtime_nsec,
				       e->rel, err) < 0)
		return -1;
	s->fids[e->file_id].batch = (int)(b - s->batches);
	s->fids[e->file_id].pos = b->n - 1;
	return 0;
}

/* LATE_BEGIN: the file's tree starts, from a resumed prefix's compact
 * range when the file continues a held part. */
static int seal_begin(sender *s, slot *sl, sx_err *err)
{
	const pend *p = &s->pends[sl - s->slots];
	sx_zauto_reset(&s->za);
	if (!s->sign)
		return 0;
	if (p->resumed
		? sx_filehash_resume(&s->fh, s->chunk, p->nleaves, p->range, p->depth, err) < 0
		: sx_filehash_init(&s->fh, s->chunk, err) < 0)
		return -1;
	s->fh_open = true;
	/* Its leaves go to the cache as they are folded in, after the
	 * resumed prefix's (there since the comparison). */
	sx_leafcache_close(&s->lc, false);
	if (p->cache) {
		sx_leafcache_open(&s->lc, s->leaves_dir, &p->id);
		sx_leafcache_from(&s->lc, p->resumed ? p->nleaves : 0);
	}
	return 0;
}

/* A DATA record's bytes into the file's tree. A regular file's record is
 * one whole leaf: hashed as such when the leaf goes to the cache too. */
static int fold_data(sender *s, const slot *sl, sx_err *err)
{
	const uint8_t *d = sl->buf + SX_REC_HDR_LEN;
	uint8_t leaf[SX_HASH_LEN];
	if (sl->stream || s->lc.fd < 0)
		return sx_filehash_update(&s->fh, d, sl->plen, err);
	if (sx_merkle_leaf(d, sl->plen, leaf, err) < 0 ||
	    sx_filehash_add_leaf(&s->fh, leaf, sl->plen, err) < 0)
		return -1;
	sx_leafcache_add(&s->lc, leaf);
	return 0;
}

/* Runs when a late slot's turn to be sealed comes: everything before it has
 * been sealed and hashed, in order. */
static int seal_time(sender *s, slot *sl, sx_err *err)
{
	sx_entry *e = &s->ents.v[sl->entry];
	uint8_t sig[SX_SIG_MAX], root[SX_HASH_LEN] = {0};
	uint64_t leaves = 0, bytes = 0;
	size_t sig_len = 0;
	int64_t now = (int64_t)time(NULL);
	sx_msg m = {0};
	switch (sl->late) {
	case LATE_BEGIN: return seal_begin(s, sl, err);
	case LATE_SAME: return s->sign ? batch_add(s, e, s->pends[sl - s->slots].root, err) : 0;
	case LATE_END:
		sx_leafcache_close(&s->lc, s->pends[sl - s->slots].stale);
		if (s->fh_open) {
			SX_GUARD(sx_filehash_final(&s->fh, root, &leaves, &bytes, err));
			sx_filehash_free(&s->fh);
			s->fh_open = false;
			SX_GUARD(batch_add(s, e, root, err));
		}
		m.type = SX_MSG_FILE_END;
		m.file_id = e->file_id;
		m.size = e->size;
		memcpy(m.root, root, sizeof(root));
		return fill_ctrl(sl, &m, err);
	case LATE_BATCH: {
		sx_sbatch *b = open_batch(s, err);
		if (b == NULL)
			goto out;
		SX_GUARD(sx_sbatch_sign(b, s->tid, s->chunk, now, s->cfg->id->key, err));
#ifdef SXFER_TEST_HOOKS
		/* TEST HOOK badsig: the signature sealed into BATCH is wrong. */
		if (hostile(s, "badsig"))
			b->b.sig[b->b.sig_len / 2] ^= 0x01;
#endif
		m.type = SX_MSG_BATCH;
		m.batch_no = b->number;
		m.time = now;
		m.nfiles = b->n;
		m.sig = b->b.sig;
		m.sig_len = b->b.sig_len;
		s->stats->batches++;
		return fill_ctrl(sl, &m, err);
	}
	case LATE_CHECKPOINT: {
		uint8_t stmt[SX_STMT_CHECKPOINT_MAX];
		size_t stmt_len = 0;
		SX_GUARD(sx_filehash_checkpoint(&s->fh, root, &leaves, &bytes, err));
		SX_GUARD(sx_stmt_checkpoint(s->tid, e->rel, s->chunk, leaves, bytes, root, now,
					    stmt, sizeof(stmt), &stmt_len, err));
		SX_GUARD(sx_sign(s->cfg->id->key, stmt, stmt_len, sig, &sig_len, err));
		m.type = SX_MSG_CHECKPOINT;
		m.file_id = e->file_id;
		m.leaves = leaves;
		m.size = bytes;
		m.time = now;
		m.sig = sig;
		m.sig_len = sig_len;
		s->stats->checkpoints++;
		return fill_ctrl(sl, &m, err);
	}
	default: return sx_fail(err, SX_E_OTHER, "unknown late slot %d", sl->late);
	}
out:
	return -1;
}

/* Compresses a DATA record in place when it is worth it (docs/PROTOCOL.md,
 * "Compressed DATA records"): the frame is made in the scratch buffer and
 * copied over the chunk only when it is smaller, so an incompressible chunk
 * costs no copy and a compressed record is never larger than the plain one. */
static int compress_slot(sender *s, slot *sl, uint8_t *flags, sx_err *err)
{
	const uint8_t *src = sl->buf + SX_REC_HDR_LEN;
	bool automatic = s->cfg->zmode == SX_ZMODE_AUTO;
	size_t z = 0;
	int r;
	*flags = 0;
	if (s->cctx == NULL || sl->plen == 0)
		return 0;
	if (automatic) {
		int next = sx_zauto_next(&s->za);
		if (next == SX_ZAUTO_SKIP)
			return 0;
		if (next == SX_ZAUTO_SAMPLE && sl->plen > SX_ZAUTO_SAMPLE_LEN) {
			/* The sample alone: on media this is all the work done. */
			r = sx_zrec_compress(s->cctx, SX_ZLEVEL_AUTO, src, SX_ZAUTO_SAMPLE_LEN,
					     s->zbuf, &z, err);
			if (r < 0)
				return -1;
			sx_zauto_result(&s->za, SX_ZAUTO_SAMPLE_LEN, r ? z : SX_ZAUTO_SAMPLE_LEN);
			if (s->za.skipping)
				return 0;
		}
	}
	r = sx_zrec_compress(s->cctx, s->zlevel, src, sl->plen, s->zbuf, &z, err);
	if (r < 0)
		return -1;
	if (automatic)
		sx_zauto_result(&s->za, sl->plen, r ? z : sl->plen);
	if (r == 0)
		return 0;
	memcpy(sl->buf + SX_REC_HDR_LEN, s->zbuf, z);
	sl->plen = z;
	*flags = SX_REC_FLAG_COMPRESSED;
	s->stats->records_compressed++;
	return 0;
}

static slot *slot_at(sender *s, uint64_t order)
{
	for (unsigned i = 0; i < NSLOTS; i++)
		if (s->slots[i].state != SLOT_FREE && s->slots[i].state != SLOT_READING &&
		    s->slots[i].order == order)
			return &s->slots[i];
	return NULL;
}

/* A whole-chunk DATA record of a regular file that goes out uncompressed
 * can be hashed and sealed by a worker: its Merkle leaf is the chunk itself.
 * Streams (leaves across records) and records being compressed stay here. */
static bool poolable(sender *s, const slot *sl)
{
	if (s->pool == NULL || sl->type != SX_REC_DATA || sl->stream || sl->plen == 0)
		return false;
	/* Unsigned, a chunk is only sealed: the hand-off costs more than a
	 * worker saves (sxfer bench pipe, docs/PERFORMANCE.md). */
	if (!s->fh_open)
		return false;
#ifdef SXFER_TEST_HOOKS
	/* TEST HOOK badroot: every chunk is hashed here, where it is flipped. */
	if (hostile(s, "badroot"))
		return false;
#endif
	if (s->cctx == NULL)
		return true;
	/* auto: the next answer of sx_zauto_next is known to be SKIP */
	return s->cfg->zmode == SX_ZMODE_AUTO && !s->za.fresh && s->za.skipping &&
	       s->za.since + 1 < SX_ZAUTO_RECHECK;
}

/* A worker would start a job at once: fewer jobs wait than there are
 * workers (the receiver's rule too: serve_rxpool.c). Otherwise the loop's
 * own core has the time, and a hand-off would only wait. */
static bool worker_free(sender *s)
{
	size_t waiting, inflight;
	sx_pool_load(s->pool, &waiting, &inflight);
	return inflight < SX_POOL_QUEUE && waiting < sx_pool_threads(s->pool);
}

/* Sealed records (by a worker or, workers busy, by the loop) in record
 * order: their leaves go into the file's tree. */
static int fold_done(sender *s, sx_err *err)
{
	slot *sl;
	while ((sl = slot_at(s, s->fin_order)) != NULL && sl->state == SLOT_DONE) {
		sx_pjob *j = &s->jobs[sl - s->slots];
		if (j->leaf && sx_filehash_add_leaf(&s->fh, j->leaf_hash, sl->raw, err) < 0)
			return -1;
		if (j->leaf)
			sx_leafcache_add(&s->lc, j->leaf_hash);
		sl->state = SLOT_SEALED;
		s->fin_order++;
	}
	return 0;
}

/* Prepares records in sequence order: reserves (sequence number, epoch) and
 * hands whole chunks to the pool, or hashes, compresses and seals here,
 * which waits until every earlier record is folded in. */
int sx_send_prepare(sender *s, sx_err *err)
{
	slot *sl;
	while ((sl = slot_at(s, s->prep_order)) != NULL && sl->state == SLOT_READY) {
		unsigned idx = (unsigned)(sl - s->slots);
		if (poolable(s, sl)) {
			sx_pjob *j = &s->jobs[idx];
			memset(j, 0, sizeof(*j));
			j->rec = sl->buf;
			j->plen = sl->plen;
			j->type = SX_REC_DATA;
			j->leaf = s->fh_open;
			j->slot = idx;
			if (s->cctx != NULL)
				(void)sx_zauto_next(&s->za);
			sl->raw = sl->plen;
			if (!worker_free(s)) {
				/* Every worker busy: this thread hashes and seals
				 * it (in sequence order, as reserving would), and
				 * it is folded in its turn like a worker's. */
				if (j->leaf)
					SX_GUARD(sx_merkle_leaf(sl->buf + SX_REC_HDR_LEN, sl->plen,
								j->leaf_hash, err));
				SX_GUARD(sx_record_seal(&s->link.k.tx, SX_REC_DATA, 0, sl->buf,
							sl->plen, &sl->rec_len, err));
				sl->state = SLOT_DONE;
				s->prep_order++;
				continue;
			}
			SX_GUARD(sx_record_reserve(&s->link.k.tx, sl->plen, &j->key, err));
			SX_GUARD(sx_pool_submit(s->pool, j, err));
			sl->state = SLOT_SEALING;
			s->prep_order++;
			continue;
		}
		SX_GUARD(fold_done(s, err));
		if (s->fin_order != s->prep_order)
			return 0;
		uint8_t flags = 0;
		if (sl->type == SX_REC_DATA) {
			/* The Merkle leaves are over the file's bytes: hashed
			 * before compression. */
			if (s->fh_open)
				SX_GUARD(fold_data(s, sl, err));
#ifdef SXFER_TEST_HOOKS
			/* TEST HOOK badroot: a byte changed after it was hashed;
			 * the record is sealed over the changed byte. */
			if (s->fh_open && sl->plen > 0 && hostile(s, "badroot"))
				sl->buf[SX_REC_HDR_LEN + sl->plen / 2] ^= 0x01;
#endif
			sl->raw = sl->plen;
			SX_GUARD(compress_slot(s, sl, &flags, err));
		}
		if (sl->late != LATE_NONE)
			SX_GUARD(seal_time(s, sl, err));
		SX_GUARD(sx_record_seal(&s->link.k.tx, sl->type, flags, sl->buf, sl->plen,
					&sl->rec_len, err));
		sl->state = SLOT_SEALED;
		s->prep_order++;
		s->fin_order++;
	}
	return s->pool != NULL ? fold_done(s, err) : 0;
out:
	return -1;
}

/* Finished jobs: folded in record order (fold_done). */
int sx_send_on_pool(sender *s, int64_t res, sx_err *err)
{
	sx_pjob *done[SX_POOL_QUEUE];
	if (res < 0)
		return sx_fail_errno(err, SX_E_OTHER, (int)-res, "worker notification");
	size_t n = sx_pool_take(s->pool, done, SX_ARRAY_LEN(done));
	for (size_t i = 0; i < n; i++) {
		if (done[i]->rc < 0) {
			*err = done[i]->err;
			return -1;
		}
		s->slots[done[i]->slot].rec_len = done[i]->rec_len;
		s->slots[done[i]->slot].state = SLOT_DONE;
	}
	if (fold_done(s, err) < 0)
		return -1;
	return sx_io_read(s->io, sx_pool_fd(s->pool), &s->efd_buf, sizeof(s->efd_buf),
			  SX_IO_OFF_CUR, tag_of(OP_POOL, 0), err);
}

/* One send in flight keeps the byte stream in sequence order. */
int sx_send_next(sender *s, sx_err *err)
{
	if (s->sending || !s->link.ready)
		return 0;
	slot *sl = slot_at(s, s->send_order);
	if (sl == NULL || sl->state != SLOT_SEALED)
		return 0;
	if (s->rate.bps != 0) {
		/* --limit-rate: the record waits for its bytes' tokens (the
		 * loop wakes up for it: sender_loop). */
		uint64_t now = sx_now_ns();
		s->rate_wait_ns = sx_rate_wait(&s->rate, now);
		if (s->rate_wait_ns > 0)
			return 0;
		sx_rate_charge(&s->rate, sl->rec_len, now);
	}
	sl->state = SLOT_SENDING;
	s->sending = true;
	/* One send at a time: no DATA record has completed before the first. */
	if (sl->type == SX_REC_DATA && s->stats->records == 0 && s->cfg->on_first_data != NULL)
		s->cfg->on_first_data(s->cfg->progress_ctx);
	return sx_io_send(s->io, s->sock, sl->buf, sl->rec_len,
			  tag_of(OP_SEND, (unsigned)(sl - s->slots)), err);
}

int sx_send_on_send(sender *s, unsigned idx, int64_t res, sx_err *err)
{
	slot *sl = &s->slots[idx];
	if (res < 0) {
		/* The receiver may have closed after telling us why (a sealed
		 * ERROR already in our socket buffer): read on for a moment before
		 * reporting the broken send. */
		sx_fail_errno(&s->send_err, SX_E_NET, (int)-res, "send to %s failed", s->cfg->host);
		s->draining = true;
		(void)err;
		return 0;
	}
	if (sl->type == SX_REC_DATA) {
		s->prog.bytes_sent += sl->raw;
		s->stats->bytes += sl->raw;
		s->stats->wire_bytes += sl->plen;
		s->stats->records++;
	}
	if (sl->type == SX_REC_EOS)
		s->eos_sent = true;
	sl->state = SLOT_FREE;
	s->sending = false;
	s->send_order++;
	return 0;
}
