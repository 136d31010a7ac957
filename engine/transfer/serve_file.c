/* A received file after its data: writes completing, flushes, the batch
 * answers and receipts, finalizing signed files, stream checkpoints and a
 * cut stream's kept prefix. */
#include "engine/transfer/serve_int.h"
#include "engine/transfer/sx_held.h"

#include <sys/stat.h>

static int stored(server *s, conn *c, int fi, sx_err *err);
static void file_io_done(server *s, conn *c, int fi);

/* Closes the file's fds (after taking the temporary out of the ring's file
 * table) and frees the entry. */
void srv_file_release(server *s, rfile *f)
{
	sx_io_file_remove(s->io, f->sf.fd);
	sx_store_end(&f->sf);
	if (f->h_open)
		sx_filehash_free(&f->h);
	free(f->path);
	free(f->ck);
	free(f->ck_pending);
	free(f->ck_flight);
	memset(f, 0, sizeof(*f));
	f->state = F_FREE;
	f->sf.fd = f->sf.dir_fd = f->sf.aux_fd = -1;
	f->batch = -1;
}

bool srv_files_idle(const conn *c)
{
	for (int i = 0; i < c->nfiles; i++)
		if (c->files[i].state != F_FREE)
			return false;
	return true;
}

/* A free entry, growing the table up to FILES_MAX; -1 when full. */
int srv_free_file(conn *c, bool grow)
{
	for (int i = 0; i < c->nfiles; i++)
		if (c->files[i].state == F_FREE)
			return i;
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
	for (int i = 0; i < c->nfiles; i++) {
		rfile *f = &c->files[i];
		if (f->state == F_SAME && f->same == SAME_EQUAL && f->batch >= 0 &&
		    c->batches[f->batch]->sealed) {
			if (srv_tx_busy(c))
				return 0;
			if (srv_same_finish(s, c, i, err) < 0)
				return -1;
			continue;
		}
		if (f->state != F_AWAIT || !c->batches[f->batch]->sealed)
			continue;
		if (srv_tx_busy(c))
			return 0;
		if (c->store.file_fds + 2 > s->sh->fd_budget && c->syncs > 0)
			return 0;
		if (finalize_signed(s, c, i, err) < 0)
			return -1;
	}
	return 0;
}

static int commit(server *s, conn *c, int fi, sx_err *err)
{
	sx_err ferr = {0};
	if (sx_store_commit(&c->store, &c->files[fi].sf, &ferr) < 0)
		return refuse(s, c, fi, &ferr, err);
	/* Stored: what was held of it earlier is not needed any more. */
	if (srv_holds(s))
		(void)sx_held_remove(c->files[fi].sf.dir_fd, c->files[fi].sf.name);
	need_sync(s, c, fi, F_SYNC_DIR);
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
	srv_lg_file(s, c, f, SX_LF_STORED, NULL);
	rfile copy = {.batch = f->batch, .pos = f->pos};
	srv_file_release(s, f);
	SX_GUARD(srv_answer(s, c, &copy, SX_ANS_STORED, err));
	return srv_maybe_finish_session(s, c, err);
out:
	return -1;
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
	if (res < 0) {
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
		}
	} else if (f->state == F_SYNC_SIG) {
		rc = commit(s, c, fi, &err);
	} else if (f->state == F_SYNC_DIR) {
		rc = stored(s, c, fi, &err);
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
static int partial_sxsig(conn *c, const rfile *f, const ckpt *k, char **text, size_t *len,
			 sx_err *err)
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

/* A stream cut off after a verified checkpoint keeps its signed prefix as
 * NAME.partial with NAME.partial.sxsig (docs/SIGNATURES.md). The file
 * system's part (a truncate, three flushes, two renames) runs on a thread of
 * its own, not on the event loop: the file's descriptors move to it. */
typedef struct keep_job {
	struct keep_job *next; /* in the queue of keep_start */
	shared *sh;
	sx_store store; /* the file's own: nothing of the connection's is used */
	sx_store_file sf;
	char *text; /* NAME.partial.sxsig */
	size_t len;
	uint64_t bytes;
	char path[SX_PATH_MAX + 1];
	char peer[256];
	/* a held part (srv_keep_held) rather than a stream's prefix */
	bool held, hash;
	bool dropped; /* the part went: the file was stored meanwhile */
	sx_held_meta meta;
	sx_ledger *lg;
	bool lg_ev;
	sx_ledger_ev ev;
} keep_job;

/* A retry can store the whole file while this thread still hashed its
 * broken transfer (unsigned, a large part): a final name changed since the
 * break makes the part stale, and it goes rather than wait for its TTL. */
static bool held_superseded(keep_job *j)
{
	struct stat st;
	char data[SX_HELD_NAME_MAX], meta[SX_HELD_NAME_MAX];
	sx_err e = {0};
	if (fstatat(j->sf.dir_fd, j->meta.name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_ctim.tv_sec < j->meta.kept ||
	    sx_held_name(j->meta.name, SX_HELD_DATA, data, sizeof(data), &e) < 0 ||
	    sx_held_name(j->meta.name, SX_HELD_META, meta, sizeof(meta), &e) < 0)
		return false;
	(void)unlinkat(j->sf.dir_fd, meta, 0);
	(void)unlinkat(j->sf.dir_fd, data, 0);
	sx_log("info", "held_dropped", "peer=%s path=%s reason=%s", SX_LOGQ(j->peer),
	       SX_LOGQ(j->path), SX_LOGQ("the file was stored while its part was being kept"));
	return true;
}

/* The whole leaves of a broken file become its held part: hashed from
 * the temporary when the receiver did not hash them (unsigned). */
static void held_run(keep_job *j)
{
	sx_err err = {0};
	if (j->hash) {
		int rfd = openat(j->sf.dir_fd, j->sf.tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (rfd < 0) {
			sx_fail_errno(&err, SX_E_IO, errno, "'%s': cannot read it back", j->path);
			goto out;
		}
		int rc = sx_held_hash(rfd, &j->meta, &err);
		close(rfd);
		if (rc < 0)
			goto out;
	}
	if (sx_held_keep(j->sf.dir_fd, j->sf.fd, j->sf.tmp, &j->meta, &err) < 0)
		goto out;
	j->sf.committed = true; /* renamed: nothing to remove but its .sxmeta */
	j->dropped = held_superseded(j);
	if (j->dropped)
		goto out;
	sx_log("warn", "held", "peer=%s path=%s bytes=%llu size=%llu", SX_LOGQ(j->peer),
	       SX_LOGQ(j->path), (unsigned long long)j->meta.held,
	       (unsigned long long)j->meta.size);
out:
	if (err.cls != SX_OK)
		sx_log("error", "held", "peer=%s path=%s reason=%s", SX_LOGQ(j->peer),
		       SX_LOGQ(j->path), SX_LOGQ(err.msg));
	if (j->lg_ev) {
		j->ev.state = err.cls == SX_OK && !j->dropped ? SX_LF_PARTIAL : SX_LF_FAILED;
		j->ev.has_size = true;
		j->ev.size = j->meta.size;
		j->ev.verified = err.cls == SX_OK ? j->meta.held : 0;
		j->ev.has_root = err.cls == SX_OK;
		memcpy(j->ev.root, j->meta.root, SX_HASH_LEN);
		const char *why =
		    err.cls == SX_OK ? "the transfer broke; its whole leaves are held" : err.msg;
		size_t n = strnlen(why, sizeof(j->ev.reason) - 1);
		memcpy(j->ev.reason, why, n);
		j->ev.reason[n] = '\0';
		sx_ledger_event(j->lg, &j->ev);
	}
	sx_store_end(&j->sf);
}

static void keep_run(keep_job *j)
{
	sx_err err = {0};
	if (ftruncate(j->sf.fd, (off_t)j->bytes) < 0 || fsync(j->sf.fd) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "'%s': cannot keep the signed prefix", j->path);
		goto out;
	}
	if (sx_store_rename_final(&j->sf, ".partial", &err) < 0 ||
	    sx_store_aux_write(&j->sf, ".sxsig", j->text, j->len, &err) < 0)
		goto out;
	if (fsync(j->sf.aux_fd) < 0) {
		sx_fail_errno(&err, SX_E_IO, errno, "'%s': flush failed", j->sf.aux_name);
		goto out;
	}
	if (sx_store_commit(&j->store, &j->sf, &err) < 0 || fsync(j->sf.dir_fd) < 0)
		goto out;
	sx_log("warn", "stream_partial",
	       "peer=%s path=%s bytes=%llu reason=\"the stream was cut off; its "
	       "signed prefix is kept\"",
	       SX_LOGQ(j->peer), SX_LOGQ(j->sf.name), (unsigned long long)j->bytes);
out:
	if (err.cls != SX_OK)
		sx_log("error", "stream_partial", "peer=%s path=%s reason=%s", SX_LOGQ(j->peer),
		       SX_LOGQ(j->path), SX_LOGQ(err.msg));
	sx_store_end(&j->sf);
	free(j->text);
}

/* Keeping is file-system work (fsyncs, and reading back what an unsigned
 * session did not hash): a connection that drops with thousands of files
 * open must not start a thread each. Jobs queue here, and at most
 * KEEP_WORKERS threads (in the process) take them in turn. */
#define KEEP_WORKERS 4
static pthread_mutex_t keep_mu = PTHREAD_MUTEX_INITIALIZER;
static keep_job *keep_head, *keep_tail;
static unsigned keep_workers;

static void keep_one(keep_job *j)
{
	shared *sh = j->sh;
	if (j->held)
		held_run(j);
	else
		keep_run(j);
	free(j);
	atomic_fetch_sub(&sh->keepers, 1); /* last: sx_serve_run waits for it */
}

static void *keep_thread(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&keep_mu);
		keep_job *j = keep_head;
		if (j == NULL) {
			keep_workers--;
			pthread_mutex_unlock(&keep_mu);
			return NULL;
		}
		keep_head = j->next;
		if (keep_head == NULL)
			keep_tail = NULL;
		pthread_mutex_unlock(&keep_mu);
		keep_one(j);
	}
}

static void keep_queue(keep_job *j)
{
	bool spawn = false;
	pthread_mutex_lock(&keep_mu);
	j->next = NULL;
	if (keep_tail != NULL)
		keep_tail->next = j;
	else
		keep_head = j;
	keep_tail = j;
	if (keep_workers < KEEP_WORKERS) {
		keep_workers++;
		spawn = true;
	}
	pthread_mutex_unlock(&keep_mu);
	if (!spawn)
		return;
	pthread_attr_t attr;
	pthread_t th;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, keep_thread, NULL) != 0)
		keep_thread(NULL); /* no thread: the queue is emptied here */
	pthread_attr_destroy(&attr);
}

/* The file's descriptors move to j, and a thread of its own does the
 * file system's part. */
static void keep_start(server *s, conn *c, rfile *f, keep_job *j)
{
	j->sh = s->sh;
	snprintf(j->path, sizeof(j->path), "%s", f->path);
	snprintf(j->peer, sizeof(j->peer), "%s", c->link.k.peer_name);
	/* The descriptors move: off the ring first, then out of the entry,
	 * which is left holding nothing (srv_file_release removes nothing). */
	sx_io_file_remove(s->io, f->sf.fd);
	j->store = (sx_store){.root_fd = -1, .cache_fd = -1, .overwrite = c->store.overwrite};
	j->sf = f->sf;
	j->sf.st = &j->store;
	j->store.file_fds = (j->sf.fd >= 0) + (j->sf.dir_fd >= 0) + (j->sf.aux_fd >= 0);
	memset(&f->sf, 0, sizeof(f->sf));
	f->sf.fd = f->sf.dir_fd = f->sf.aux_fd = -1;
	f->sf.committed = true;
	atomic_fetch_add(&s->sh->keepers, 1);
	keep_queue(j);
}

bool srv_keep_held(server *s, conn *c, rfile *f)
{
	uint32_t leaf = c->hash_chunk;
	if (!srv_holds(s) || f->announced == SX_SIZE_UNKNOWN || leaf == 0 ||
	    f->announced / leaf < SX_HELD_MIN_LEAVES)
		return false;
	uint64_t most = (f->announced - 1) / leaf, leaves = f->received / leaf;
	if (leaves > most)
		leaves = most;
	if (leaves == 0)
		return false;
	keep_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return false;
	j->held = true;
	sx_held_meta *m = &j->meta;
	snprintf(m->name, sizeof(m->name), "%s", f->sf.name);
	snprintf(m->fingerprint, sizeof(m->fingerprint), "%s", c->link.k.peer_fingerprint);
	m->size = f->announced;
	m->leaf = leaf;
	m->held = leaves * leaf;
	m->kept = (int64_t)time(NULL);
	m->mode = f->mode & 07777;
	m->mtime_sec = f->mtime.tv_sec;
	m->mtime_nsec = (uint32_t)f->mtime.tv_nsec;
	m->sign = c->sign;
	/* Signed: the tree of the bytes received (all written: nothing is in
	 * flight any more) covers exactly these leaves when nothing was
	 * dropped for the size. */
	uint64_t nl = 0, nb = 0;
	sx_err e = {0};
	j->hash = !(f->h_open && f->h.nleaves == leaves &&
		    sx_filehash_checkpoint(&f->h, m->root, &nl, &nb, &e) == 0 && nl == leaves);
	if (!j->hash) {
		m->depth = f->h.depth;
		memcpy(m->range, f->h.range, sizeof(m->range[0]) * f->h.depth);
	}
	j->lg = s->sh->ledger;
	j->lg_ev = srv_lg_prepare(s, c, f, SX_LF_PARTIAL, NULL, &j->ev);
	keep_start(s, c, f, j);
	return true;
}

/* Expired held parts go, also while the server runs: a thread walks OUT. */
static void *sweep_thread(void *arg)
{
	shared *sh = arg;
	sx_store_recovery rec;
	sx_err err = {0};
	int fd = open(sh->cfg->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || sx_store_recover_ttl(fd, sh->cfg->partial_ttl_s, true, &rec, &err) < 0)
		sx_log("warn", "held_expired", "reason=%s",
		       SX_LOGQ(fd < 0 ? "cannot open the output folder" : err.msg));
	else if (rec.expired > 0)
		sx_log("info", "held_expired", "out=%s removed=%llu", SX_LOGQ(sh->cfg->out_dir),
		       (unsigned long long)rec.expired);
	if (fd >= 0)
		close(fd);
	atomic_fetch_sub(&sh->keepers, 1);
	return NULL;
}

void srv_held_sweep(server *s)
{
	uint64_t now = sx_now_ns();
	if (s->loop != 0 || s->cfg->client != NULL || s->stopping)
		return;
	if (s->sh->sweep_ns == 0)
		s->sh->sweep_ns = now; /* the start-up's recovery has just looked */
	if (now - s->sh->sweep_ns < (uint64_t)HELD_SWEEP_S * 1000000000u)
		return;
	s->sh->sweep_ns = now;
	atomic_fetch_add(&s->sh->keepers, 1);
	pthread_attr_t attr;
	pthread_t th;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, sweep_thread, s->sh) != 0)
		atomic_fetch_sub(&s->sh->keepers, 1);
	pthread_attr_destroy(&attr);
}

void srv_keep_partial(server *s, conn *c, rfile *f)
{
	sx_err err = {0};
	keep_job *j = calloc(1, sizeof(*j));
	if (j == NULL || partial_sxsig(c, f, f->ck, &j->text, &j->len, &err) < 0) {
		sx_log("error", "stream_partial", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path),
		       SX_LOGQ(j == NULL ? "out of memory" : err.msg));
		free(j);
		return;
	}
	j->bytes = f->ck->bytes;
	srv_lg_file(s, c, f, SX_LF_PARTIAL, "the stream was cut off; its signed prefix is kept");
	keep_start(s, c, f, j);
}

void srv_wait_keepers(shared *sh)
{
	while (atomic_load(&sh->keepers) > 0) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
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
	if (partial_sxsig(c, f, k, &text, &len, &err) < 0 ||
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
