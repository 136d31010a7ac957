/* A received file after its data: writes completing, flushes, the batch
 * answers and receipts, finalizing signed files and stream checkpoints
 * (what a broken connection leaves is kept in serve_keep.c). */
#include "engine/transfer/serve_int.h"
#include "engine/transfer/sx_held.h"

static int stored(server *s, conn *c, int fi, sx_err *err);
static void file_io_done(server *s, conn *c, int fi);

/* Closes the file's fds (after taking the temporary out of the ring's file
 * table) and frees the entry. Its link in the list of waiting files stays
 * (no connection is at hand here): srv_finalize_waiting, or srv_free_file
 * when the entry is taken again, unlinks it. */
void srv_file_release(server *s, rfile *f)
{
	srv_lim_file_end(s, f);
	sx_io_file_remove(s->io, f->sf.fd);
	sx_store_end(&f->sf);
	if (f->h_open)
		sx_filehash_free(&f->h);
	free(f->path);
	free(f->ck);
	free(f->ck_pending);
	free(f->ck_flight);
	rwait w = f->w;
	memset(f, 0, sizeof(*f));
	f->w = w;
	f->state = F_FREE;
	f->sf.fd = f->sf.dir_fd = f->sf.aux_fd = -1;
	f->batch = -1;
}

/* ---- the files waiting for their batch signature ---------------------------
 * A list through the entries, in the order of their batches (batches are
 * verified in order, so the files a verified batch lets go are its first
 * ones): srv_finalize_waiting takes them from the head, and never looks at
 * a file whose batch is still open. */

static void wait_unlink(conn *c, int fi)
{
	rwait *w = &c->files[fi].w;
	if (!w->linked)
		return;
	if (w->prev != 0)
		c->files[w->prev - 1].w.next = w->next;
	else
		c->wait_head = w->next;
	if (w->next != 0)
		c->files[w->next - 1].w.prev = w->prev;
	else
		c->wait_tail = w->prev;
	*w = (rwait){0};
}

void srv_wait_add(conn *c, int fi)
{
	rfile *f = &c->files[fi];
	wait_unlink(c, fi);
	int after = c->wait_tail;
	/* After the last file of a batch not later than its own: files join in
	 * the order their flushes complete, nearly that of their batches. */
	while (after != 0 && c->files[after - 1].w.batch > f->batch)
		after = c->files[after - 1].w.prev;
	f->w = (rwait){.prev = after, .batch = f->batch, .linked = true};
	f->w.next = after != 0 ? c->files[after - 1].w.next : c->wait_head;
	if (after != 0)
		c->files[after - 1].w.next = fi + 1;
	else
		c->wait_head = fi + 1;
	if (f->w.next != 0)
		c->files[f->w.next - 1].w.prev = fi + 1;
	else
		c->wait_tail = fi + 1;
}

bool srv_files_idle(conn *c)
{
	/* Every entry below free_below is free; it only moves down when one
	 * of them is taken (srv_free_file). */
	while (c->free_below < c->nfiles && c->files[c->free_below].state == F_FREE)
		c->free_below++;
	return c->free_below >= c->nfiles;
}

/* A free entry, growing the table up to FILES_MAX; -1 when full. Entries
 * are taken and freed nearly in turn, so the search goes on from the last
 * one found rather than from the first (a batch of thousands of files
 * holds the first thousands). With grow, the caller takes the entry. */
int srv_free_file(conn *c, bool grow)
{
	for (int k = 0; k < c->nfiles; k++) {
		int i = (c->free_at + k) % c->nfiles;
		if (c->files[i].state != F_FREE)
			continue;
		c->free_at = i;
		if (grow) {
			wait_unlink(c, i); /* a file released while it waited */
			c->files[i].ds_next = 0;
			if (i < c->free_below)
				c->free_below = i;
			c->free_at = (i + 1) % c->nfiles;
		}
		return i;
	}
	if (c->nfiles == FILES_MAX)
		return -1;
	if (!grow)
		return c->nfiles;
	size_t n = (size_t)c->nfiles;
	sx_err err = {0};
	if (sx_grow(&c->files, &n, n + 1, sizeof(rfile), FILES_MAX, "files in flight", &err) < 0)
		return -1;
	for (size_t i = (size_t)c->nfiles; i < n; i++) {
		c->files[i].sf.fd = c->files[i].sf.dir_fd = c->files[i].sf.aux_fd = -1;
		c->files[i].batch = -1;
	}
	int first = c->nfiles;
	c->nfiles = (int)n;
	c->free_at = (first + 1) % c->nfiles;
	if (first < c->free_below)
		c->free_below = first;
	return first;
}

sx_sbatch *srv_open_batch(conn *c, sx_err *err)
{
	if (c->nbatches > 0 && c->batches[c->nbatches - 1] != NULL &&
	    !c->batches[c->nbatches - 1]->sealed)
		return c->batches[c->nbatches - 1];
	if (sx_grow(&c->batches, &c->batches_cap, (size_t)c->nbatches + 1, sizeof(*c->batches),
		    SX_SESSION_BATCHES_MAX, "batches in one session", err) < 0)
		return NULL;
	sx_sbatch *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		return NULL;
	}
	c->batches[c->nbatches++] = b;
	b->number = (uint64_t)c->nbatches;
	return b;
}

/* The receipt of a batch: once every one of its files is answered, signed
 * with this server's key over what was stored (docs/SIGNATURES.md). Safe to
 * call again at any time: a receipted batch is freed and its slot is NULL,
 * and answering one file can complete (and free) the batch while a caller
 * still walks its files (on_batch). */
int srv_maybe_receipt(server *s, conn *c, int bi, sx_err *err)
{
	sx_sbatch *b = c->batches[bi];
	sx_receipt r = {0};
	int rc = -1;
	if (b == NULL || !b->sealed || b->answered < b->n)
		return 0;
	int64_t now = (int64_t)time(NULL);
	SX_GUARD(
	    sx_sbatch_receipt(b, c->tid, now, sk_X509_value(c->link.k.peer_chain, 0), &r, err));
	SX_GUARD(sx_receipt_sign(&r, s->cfg->id->key, s->cfg->id->chain, err));
	sx_msg m = {.type = SX_MSG_RECEIPT,
		    .batch_no = b->number,
		    .time = now,
		    .sig = r.sig,
		    .sig_len = r.sig_len};
	SX_GUARD(srv_send_msg(s, c, &m, err));
	sx_log("info", "receipt", "peer=%s batch=%llu files=%u stored=%u",
	       SX_LOGQ(c->link.k.peer_name), (unsigned long long)b->number, b->n, r.count);
	c->batches_done++;
	SRV_COUNT(s, receipts, 1);
	srv_lg_batch(s, c, b, &r);
	/* Nothing refers to a receipted batch any more: all its files are
	 * answered and released. */
	c->path_bytes -= b->path_bytes;
	sx_sbatch_free(b);
	free(b);
	c->batches[bi] = NULL;
	rc = srv_maybe_finish_session(s, c, err);
out:
	sx_receipt_free(&r);
	return rc;
}

/* Records the srv_answer to a file in its batch. */
int srv_answer(server *s, conn *c, rfile *f, sx_answer state, sx_err *err)
{
	if (f->batch < 0)
		return 0;
	sx_sbatch *b = c->batches[f->batch];
	b->state[f->pos] = (uint8_t)state;
	b->answered++;
	/* A refused file is out of the receipt and has its .sxsig written by
	 * no one: the batch keeps only its leaf. */
	if (state == SX_ANS_REFUSED)
		c->path_bytes -= sx_sbatch_drop_path(b, (uint32_t)f->pos);
	return srv_maybe_receipt(s, c, f->batch, err);
}

int srv_send_file_err(server *s, conn *c, uint32_t id, const sx_err *why, sx_err *err)
{
	sx_msg m = {.type = SX_MSG_FILE_ERR,
		    .file_id = id,
		    .err_class = (uint8_t)why->cls,
		    .reason = (const uint8_t *)why->msg,
		    .reason_len = strlen(why->msg)};
	c->files_failed++;
	srv_m_refused(s, why);
	srv_lg_refused(s, c, id, why->msg);
	sx_log("error", "file_refused", "peer=%s file_id=%u class=%d reason=%s",
	       SX_LOGQ(c->link.k.peer_name), id, why->cls, SX_LOGQ(why->msg));
	return srv_send_msg(s, c, &m, err);
}

/* A file that fails after its FILE_END: FILE_ERR, out of its batch's
 * receipt, temporary removed. Its writes have all completed. */
static int refuse(server *s, conn *c, int fi, const sx_err *why, sx_err *err)
{
	rfile *f = &c->files[fi];
	SX_GUARD(srv_send_file_err(s, c, f->id, why, err));
	int batch = f->batch, pos = f->pos;
	srv_file_release(s, f);
	if (batch >= 0) {
		rfile tmp = {.batch = batch, .pos = pos};
		SX_GUARD(srv_answer(s, c, &tmp, SX_ANS_REFUSED, err));
	}
	return srv_maybe_finish_session(s, c, err);
out:
	return -1;
}

static void submit_sync(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	if (c->ds_open == fi + 1)
		c->ds_open = 0; /* its flush begins: no rename joins it now */
	int fd = f->state == F_SYNC_FILE  ? f->sf.fd
		 : f->state == F_SYNC_SIG ? f->sf.aux_fd
					  : f->sf.dir_fd;
	sx_err err = {0};
	if (submit_ok(c, sx_io_fsync(s->io, fd, tag_of(c->idx, OP_SYNC, (unsigned)fi), &err)) < 0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	c->syncs++;
}

/* Flushes wait for a slot: at most SYNC_MAX per connection in flight. */
static void need_sync(server *s, conn *c, int fi, int state)
{
	c->files[fi].state = state;
	if (c->syncs < SYNC_MAX) {
		submit_sync(s, c, fi);
		return;
	}
	c->syncq[c->sq_tail] = fi;
	c->sq_tail = (c->sq_tail + 1) % (FILES_MAX + 1);
}

int srv_start_finish(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	sx_err ferr = {0};
	if (f->failed) {
		srv_file_release(s, f);
		return srv_maybe_finish_session(s, c, err);
	}
	/* Written: its slot in the ring's file table goes to the next file. */
	sx_io_file_remove(s->io, f->sf.fd);
	if (sx_store_meta(&f->sf, f->mode, &f->mtime, &ferr) < 0)
		return refuse(s, c, fi, &ferr, err);
	need_sync(s, c, fi, F_SYNC_FILE);
	return 0;
}

/* Durable and covered by a verified batch signature: its .sxsig goes
 * beside it, then both are renamed into place. */
static int finalize_signed(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	sx_sbatch *b = c->batches[f->batch];
	sx_sxsig sig = {0};
	sx_err ferr = {0};
	char *text = NULL;
	size_t len = 0;
	int rc = -1;
	if (sx_store_unpark(&f->sf, false, &ferr) < 0 ||
	    sx_batch_sxsig(&b->b, b->descs, (uint32_t)f->pos, c->link.k.peer_chain, &sig, &ferr) <
		0 ||
	    sx_sxsig_encode(&sig, &text, &len, &ferr) < 0 ||
	    sx_store_aux_write(&f->sf, ".sxsig", text, len, &ferr) < 0)
		rc = refuse(s, c, fi, &ferr, err);
	else {
		need_sync(s, c, fi, F_SYNC_SIG);
		rc = 0;
	}
	sx_sxsig_free(&sig);
	free(text);
	return rc;
}

/* Files whose batch signature has been verified get their .sxsig and are
 * renamed into place, as many at a time as the connection's descriptors
 * allow (two each until renamed); the rest stay parked until flushes
 * complete (srv_on_sync calls again). A batch of thousands of files never holds
 * thousands of descriptors. */
int srv_finalize_waiting(server *s, conn *c, sx_err *err)
{
	while (c->wait_head != 0) {
		int i = c->wait_head - 1;
		rfile *f = &c->files[i];
		bool same = f->state == F_SAME && f->same == SAME_EQUAL;
		if (f->w.batch != f->batch || f->batch < 0 || (!same && f->state != F_AWAIT)) {
			wait_unlink(c, i); /* no longer waiting */
			continue;
		}
		if (!c->batches[f->batch]->sealed)
			return 0; /* nor are those after it */
		if (srv_tx_busy(c))
			return 0;
		if (!same && c->store.file_fds + 2 > s->sh->fd_budget && c->syncs > 0)
			return 0;
		wait_unlink(c, i);
		if ((same ? srv_same_finish(s, c, i, err) : finalize_signed(s, c, i, err)) < 0)
			return -1;
	}
	return 0;
}

/* After its rename: the flush of its folder, shared (a group commit). A
 * flush makes durable every rename made before it begins, so the renames
 * of one folder need one flush at a time: while one is on its way (queued
 * or submitted), the next file renamed there holds back a flush of its own
 * (ds_open), which every rename after it in that folder joins, and which
 * is asked for once the one on its way has completed (dir_synced). Each
 * file is answered with the flush it waited for, never before. Folders
 * are told apart by their store's generation (sx_store_file.dir_gen). */
static void sync_dir(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	uint64_t gen = f->sf.dir_gen;
	f->ds_next = 0;
	if (c->ds_open != 0 && gen != 0 && gen == c->ds_gen) {
		/* not begun yet: it covers this rename too */
		rfile *lead = &c->files[c->ds_open - 1];
		f->state = F_SYNC_DIR;
		f->ds_next = lead->ds_next;
		lead->ds_next = fi + 1;
		return;
	}
	if (gen != 0 && gen == c->ds_gen && c->ds_flying > 0) {
		f->state = F_SYNC_DIR;
		c->ds_open = fi + 1;
		c->ds_held = true;
		return;
	}
	/* Another folder: its flush goes now, and this one's is followed. */
	if (c->ds_open != 0 && c->ds_held)
		need_sync(s, c, c->ds_open - 1, F_SYNC_DIR);
	c->ds_open = 0;
	c->ds_held = false;
	c->ds_gen = gen;
	c->ds_flying = 1;
	/* Queued behind other flushes: others may join it until it goes. */
	bool queued = c->syncs >= SYNC_MAX;
	need_sync(s, c, fi, F_SYNC_DIR);
	if (queued && gen != 0)
		c->ds_open = fi + 1;
}

static int commit(server *s, conn *c, int fi, sx_err *err)
{
	sx_err ferr = {0};
	if (sx_store_commit(&c->store, &c->files[fi].sf, &ferr) < 0)
		return refuse(s, c, fi, &ferr, err);
	/* Stored: what was held of it earlier is not needed any more (the
	 * index says when there can be none: sx_held.h). */
	if (srv_holds(s) && sx_store_may_hold(&c->store))
		(void)sx_held_remove(c->files[fi].sf.dir_fd, c->files[fi].sf.name);
	sync_dir(s, c, fi);
	return 0;
}

static int stored(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	double secs = (double)(sx_now_ns() - f->t0) / 1e9;
	sx_log("info", "file_stored",
	       "peer=%s path=%s size=%llu seconds=%.3f mib_per_s=%.1f signed=%s "
	       "direct_bytes=%llu",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), (unsigned long long)f->received,
	       secs, secs > 0 ? (double)f->received / 1048576.0 / secs : 0.0,
	       SX_LOGT(c->sign ? "yes" : "no"), (unsigned long long)f->direct_bytes);
	sx_msg m = {.type = SX_MSG_FILE_OK, .file_id = f->id, .size = f->received};
	c->files_ok++;
	SX_GUARD(srv_send_msg(s, c, &m, err));
	srv_m_stored(s, c, f);
	srv_lg_file(s, c, f, SX_LF_STORED, NULL);
	f->lim_stored = true;
	rfile copy = {.batch = f->batch, .pos = f->pos};
	srv_file_release(s, f);
	SX_GUARD(srv_answer(s, c, &copy, SX_ANS_STORED, err));
	return srv_maybe_finish_session(s, c, err);
out:
	return -1;
}

/* A flush of a folder completed: the file that asked for it and those
 * that joined it are stored, or refused when it failed. */
static int dir_synced(server *s, conn *c, int fi, int64_t res, sx_err *err)
{
	int next = fi + 1, rc = 0;
	/* The next flush of the folder, held back while this one ran. */
	if (c->files[fi].sf.dir_gen == c->ds_gen && c->ds_flying > 0 && --c->ds_flying == 0 &&
	    c->ds_open != 0 && c->ds_held) {
		c->ds_held = false;
		c->ds_flying = 1;
		bool queued = c->syncs >= SYNC_MAX;
		int lead = c->ds_open - 1;
		need_sync(s, c, lead, F_SYNC_DIR);
		if (!queued)
			c->ds_open = 0;
	}
	while (next != 0 && rc == 0) {
		int i = next - 1;
		next = c->files[i].ds_next;
		c->files[i].ds_next = 0;
		if (res < 0) {
			sx_err ferr = {0};
			sx_fail_errno(&ferr, SX_E_IO, (int)-res,
				      "'%s': flush failed on the receiver", c->files[i].path);
			rc = refuse(s, c, i, &ferr, err);
		} else
			rc = stored(s, c, i, err);
	}
	return rc;
}

void srv_on_sync(server *s, conn *c, int fi, int64_t res)
{
	rfile *f = &c->files[fi];
	sx_err err = {0}, ferr = {0};
	c->syncs--;
	if (c->sq_head != c->sq_tail && !conn_closing(c)) {
		int next = c->syncq[c->sq_head];
		c->sq_head = (c->sq_head + 1) % (FILES_MAX + 1);
		submit_sync(s, c, next);
	}
	if (conn_closing(c))
		return;
	int rc = 0;
	if (f->state == F_SYNC_DIR) {
		rc = dir_synced(s, c, fi, res, &err);
	} else if (res < 0) {
		sx_fail_errno(&ferr, SX_E_IO, (int)-res, "'%s': flush failed on the receiver",
			      f->path);
		rc = refuse(s, c, fi, &ferr, &err);
	} else if (f->state == F_SYNC_FILE) {
		/* Written and flushed: the temporary's descriptor is not needed
		 * for the rename, and a file waiting for its batch signature
		 * holds no descriptor at all. */
		sx_store_close_data(&f->sf);
		if (!c->sign)
			rc = commit(s, c, fi, &err);
		else {
			/* srv_finalize_waiting below takes it up once its batch is
			 * verified and descriptors allow. */
			f->state = F_AWAIT;
			if (sx_store_park(&f->sf, (const uint8_t *)f->path, strlen(f->path),
					  &ferr) < 0)
				rc = refuse(s, c, fi, &ferr, &err);
			else
				srv_wait_add(c, fi);
		}
	} else if (f->state == F_SYNC_SIG) {
		rc = commit(s, c, fi, &err);
	}
	if (rc == 0 && c->sign)
		rc = srv_finalize_waiting(s, c, &err);
	if (rc < 0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	/* A file entry may be free again: receiving may resume. */
	srv_post_recv(s, c);
}

/* The .sxsig of a stream's signed prefix up to its last verified checkpoint
 * (docs/SIGNATURES.md): kept as NAME.partial.sxsig when the stream is cut
 * off, and beside the temporary while it runs (for a start after a crash). */
int srv_partial_sxsig(conn *c, const rfile *f, const ckpt *k, char **text, size_t *len, sx_err *err)
{
	sx_sxsig sig = {0};
	int rc = -1;
	sig.kind = SX_KIND_CHECKPOINT;
	sig.chunk = c->hash_chunk;
	sig.file_size = k->bytes;
	memcpy(sig.file_root, k->root, SX_HASH_LEN);
	memcpy(sig.batch_root, k->root, SX_HASH_LEN);
	snprintf(sig.path, sizeof(sig.path), "%s", f->path);
	memcpy(sig.tid, c->tid, SX_TID_LEN);
	sig.batch_files = 1;
	sig.signed_time = k->time;
	sig.alg = sx_sigalg_for_key(X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0)));
	memcpy(sig.sig, k->sig, k->sig_len);
	sig.sig_len = k->sig_len;
	SX_GUARD(sx_chain_copy(&sig.chain, c->link.k.peer_chain, err));
	SX_GUARD(sx_sxsig_encode(&sig, text, len, err));
	rc = 0;
out:
	sx_sxsig_free(&sig);
	return rc;
}

/* A verified checkpoint waiting to be made durable is, once no write below
 * its size is in flight: the temporary is flushed (asynchronously, counted
 * as one of the file's writes, so the file is not finished or released
 * meanwhile), then srv_on_cksync writes the checkpoint beside it. A crash or a
 * power cut thus never finds a checkpoint whose bytes are not on disk. */
void srv_ck_try(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	sx_err err = {0};
	if (f->ck_pending == NULL || f->ck_flight != NULL || f->sf.fd < 0 || f->failed ||
	    conn_closing(c))
		return;
	for (int i = 0; i < RX_SLOTS; i++)
		if (c->wr[i].busy && c->wr[i].fi == fi && c->wr[i].off < f->ck_pending->bytes)
			return;
	if (submit_ok(c, sx_io_fsync(s->io, f->sf.fd, tag_of(c->idx, OP_CKSYNC, (unsigned)fi),
				     &err)) < 0) {
		sx_log("warn", "checkpoint", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), SX_LOGQ(err.msg));
		return;
	}
	f->ck_flight = f->ck_pending;
	f->ck_pending = NULL;
	f->writes++;
}

/* Beside the temporary, for a start after a crash (sx_store_recover). The
 * stream itself goes on without it. */
static void persist_checkpoint(conn *c, rfile *f, const ckpt *k)
{
	sx_err err = {0};
	char *text = NULL;
	size_t len = 0;
	if (srv_partial_sxsig(c, f, k, &text, &len, &err) < 0 ||
	    sx_store_ckpt_write(&f->sf, text, len, &err) < 0)
		sx_log("warn", "checkpoint", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), SX_LOGQ(err.msg));
	free(text);
}

void srv_on_write(server *s, conn *c, unsigned sub, int64_t res)
{
	int fi = (int)(sub >> 8);
	int slot = (int)(sub & 0xff);
	rfile *f = &c->files[fi];
	sx_err err = {0};
	if (res == -EINVAL && c->wr[slot].direct && !f->failed &&
	    sx_store_direct_off(&f->sf) == 0) {
		/* The file system refused this direct write after all (an
		 * alignment statx did not tell): the same bytes again, through
		 * the page cache. Also while closing: a cut stream may keep
		 * its prefix (srv_keep_partial), which these bytes can be part of. */
		c->wr[slot].direct = false;
		if (submit_ok(c, sx_io_write(s->io, f->sf.fd, c->wr[slot].p, c->wr[slot].len,
					     c->wr[slot].off, tag_of(c->idx, OP_WRITE, sub),
					     &err)) < 0) {
			f->failed = true; /* the bytes are not in the temporary */
			srv_conn_fail(s, c, &err);
		}
		return;
	}
	c->rx_busy[slot] = false;
	c->wr[slot].busy = false;
	f->writes--;
	if (res >= 0 && c->wr[slot].direct)
		f->direct_bytes += c->wr[slot].len;
	/* A write that failed while closing is not reported, but the file must
	 * not be kept as a signed prefix (srv_keep_partial) with a hole in it. */
	if (res < 0 && conn_closing(c))
		f->failed = true;
	if (res < 0 && !f->failed && !conn_closing(c)) {
		sx_err ferr = {0};
		sx_fail_errno(&ferr, SX_E_IO, (int)-res, "'%s': write failed on the receiver",
			      f->path);
		f->failed = true;
		if (f->state == F_OPEN)
			f->state = F_DISCARD;
		if (srv_send_file_err(s, c, f->id, &ferr, &err) < 0) {
			srv_conn_fail(s, c, &err);
			return;
		}
		if (f->batch >= 0 && srv_answer(s, c, f, SX_ANS_REFUSED, &err) < 0) {
			srv_conn_fail(s, c, &err);
			return;
		}
		f->batch = -1;
	}
	file_io_done(s, c, fi);
}

/* A write or a checkpoint's flush of file fi has completed. */
static void file_io_done(server *s, conn *c, int fi)
{
	rfile *f = &c->files[fi];
	sx_err err = {0};
	if (conn_closing(c))
		return;
	srv_ck_try(s, c, fi);
	if (f->writes == 0 && f->state == F_ENDING && srv_start_finish(s, c, fi, &err) < 0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	if (f->writes == 0 && f->state == F_DISCARD && f->failed && c->cur_file != fi) {
		srv_file_release(s, f);
		if (srv_maybe_finish_session(s, c, &err) < 0) {
			srv_conn_fail(s, c, &err);
			return;
		}
	}
	srv_post_recv(s, c);
}

void srv_on_cksync(server *s, conn *c, int fi, int64_t res)
{
	rfile *f = &c->files[fi];
	ckpt *k = f->ck_flight;
	f->ck_flight = NULL;
	f->writes--;
	if (res < 0)
		sx_log("warn", "checkpoint", "peer=%s path=%s reason=%s cause=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path),
		       SX_LOGQ("cannot flush the stream for its checkpoint"),
		       SX_LOGQ(strerror((int)-res)));
	else if (!conn_closing(c) && !f->failed && k != NULL)
		persist_checkpoint(c, f, k);
	free(k);
	file_io_done(s, c, fi);
}
