/* A receiving connection's input: records as they arrive, the messages of
 * a session (SESSION, FILE_BEGIN, FILE_END, BATCH, CHECKPOINT, DIR) and the
 * DATA records written to their files. */
#include "engine/transfer/serve_int.h"

/* A receive buffer to fill. Every one of them while the server has fewer
 * connections than cores (one stream then spreads over the opening
 * workers); with more, at most RX_SLOTS_BUSY in use at once, and the lowest
 * free first: each buffer a connection has filled stays resident (a
 * record's worth, 1 MiB at the default chunk), and three keep one record
 * arriving, one being opened and one being written, which is all a core
 * shared by many streams can use (docs/PERFORMANCE.md, "Memory"). */
static int free_rx_slot(const server *s, const conn *c)
{
	int n = RX_SLOTS, busy = 0, first = -1;
	if (atomic_load(&s->sh->active) >= s->sh->cores)
		n = RX_SLOTS_BUSY;
	for (int i = 0; i < RX_SLOTS; i++) {
		if (c->rx_busy[i])
			busy++;
		else if (first < 0)
			first = i;
	}
	return busy < n ? first : -1;
}

/* The client's --limit-rate: false while the bucket is empty (the loop
 * posts again when it has filled: srv_loop_run); else at most a twentieth
 * of a second's bytes are asked for. */
static bool rate_slice(server *s, size_t *len)
{
	uint64_t slice = s->rx_rate.bps / 20;
	s->rate_wait_ns = sx_rate_wait(&s->rx_rate, sx_now_ns());
	if (s->rate_wait_ns > 0)
		return false;
	if (slice < SX_CHUNK_MIN)
		slice = SX_CHUNK_MIN;
	if (*len > slice)
		*len = (size_t)slice;
	return true;
}

void srv_post_recv(server *s, conn *c)
{
	sx_err err = {0};
	uint8_t *buf;
	size_t len;
	if (c->recv_posted || conn_closing(c) || c->eos_received || c->req != NULL)
		return;
	if (!c->link.ready) {
		sx_link_hs_recv_buf(&c->link, &buf, &len);
	} else {
		/* A control record waits to be processed, or something failed
		 * (serve_rxpool.c). */
		if (c->rq_barrier || c->rq_failed)
			return;
		/* Back-pressure: receive only with a buffer and a file entry free. */
		if (c->rx_cur < 0) {
			c->rx_cur = free_rx_slot(s, c);
			if (c->rx_cur < 0)
				return;
			sx_link_rx_set(&c->link, c->rx[c->rx_cur],
				       SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX);
		}
		if (srv_free_file(c, false) < 0)
			return;
		/* Between files, a connection whose files hold its share of
		 * descriptors waits for their flushes (each frees some) before
		 * it may begin another: one sender cannot starve the rest. */
		if (c->cur_file < 0 && c->store.file_fds >= s->sh->fd_budget)
			return;
		if (srv_tx_busy(c))
			return;
		/* Stored files being hashed for FILE_SAME: at most SAME_JOBS_MAX
		 * threads per connection; the next message waits. */
		if (c->same_jobs >= SAME_JOBS_MAX)
			return;
		sx_link_rx_want(&c->link, &buf, &len);
		if (s->rx_rate.bps != 0 && !rate_slice(s, &len))
			return;
	}
	if (submit_ok(c, sx_io_recv(s->io, c->fd, buf, len, tag_of(c->idx, OP_RECV, 0), &err)) <
	    0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	c->recv_posted = true;
}

int srv_maybe_finish_session(server *s, conn *c, sx_err *err)
{
	if (!c->eos_received || c->eos_queued || !srv_files_idle(c) ||
	    c->batches_done < c->nbatches)
		return 0;
	/* Folder mtimes last, deepest first, once their content is in. */
	for (size_t i = c->ndirs; i-- > 0;) {
		sx_err e2 = {0};
		if (sx_store_dir_mtime(&c->store, (const uint8_t *)c->dirs[i].path,
				       strlen(c->dirs[i].path), &c->dirs[i].mtime, &e2) < 0)
			sx_log("warn", "dir_mtime", "peer=%s reason=%s",
			       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(e2.msg));
	}
	c->eos_queued = true;
	return srv_queue_record(s, c, NULL, SX_REC_EOS, err);
}

static int on_session(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (c->session)
		return sx_fail(err, SX_E_INTEGRITY, "a second SESSION message");
	if ((m->flags & ~SX_SESSION_SIGNED) != 0)
		return sx_fail(err, SX_E_INTEGRITY, "SESSION: unknown flags 0x%x", m->flags);
	if (m->hash_chunk < HASH_CHUNK_MIN || m->hash_chunk > HASH_CHUNK_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "SESSION: leaf size %u out of range",
			       m->hash_chunk);
	/* A policy of this receiver, not a fault of the sender's data: the
	 * sender is authenticated but does not vouch for its files with
	 * signatures, so it is refused as an authentication failure. */
	if (s->cfg->require_signed && (m->flags & SX_SESSION_SIGNED) == 0)
		return sx_fail(err, SX_E_AUTH,
			       "this server accepts signed sessions only (serve --require-signed); "
			       "send without --no-sign");
	/* The client of get asked for signatures: a server that does not
	 * sign is not what it asked for. */
	if (s->cfg->client != NULL && !s->cfg->client->no_sign &&
	    (m->flags & SX_SESSION_SIGNED) == 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "the server sends unsigned although signatures were asked for");
	c->session = true;
	c->sign = (m->flags & SX_SESSION_SIGNED) != 0;
	c->hash_chunk = m->hash_chunk;
	memcpy(c->tid, m->transfer_id, SX_TID_LEN);
	return 0;
}

static const char *begin_name(uint8_t type)
{
	return type == SX_MSG_FILE_RESUME ? "FILE_RESUME"
	       : type == SX_MSG_FILE_SAME ? "FILE_SAME"
					  : "FILE_BEGIN";
}

rfile *srv_file_entry(conn *c, const sx_msg *m, int *fi_out, sx_err *err)
{
	if (c->cur_file >= 0) {
		sx_fail(err, SX_E_INTEGRITY, "%s inside another file", begin_name(m->type));
		return NULL;
	}
	int fi = srv_free_file(c, true);
	if (fi < 0) {
		sx_fail(err, SX_E_INTEGRITY, "more than %d files in flight", FILES_MAX);
		return NULL;
	}
	rfile *f = &c->files[fi];
	f->id = m->file_id;
	f->announced = m->size;
	f->mode = m->mode;
	f->mtime.tv_sec = m->mtime_sec;
	f->mtime.tv_nsec = m->mtime_nsec;
	f->t0 = sx_now_ns();
	f->batch = -1;
	f->path = strndup((const char *)m->path, m->path_len);
	if (f->path == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		return NULL;
	}
	f->state = F_DISCARD;
	*fi_out = fi;
	return f;
}

int srv_file_paths(server *s, conn *c, rfile *f, const sx_msg *m, sx_err *err)
{
	sx_err ferr = {0};
	/* A path that breaks the path rules has no descriptor: the file is
	 * refused and left out of its batch, as the sender leaves it out
	 * (docs/PROTOCOL.md, BATCH); nothing of it is kept but its hash. */
	if (sx_path_check(m->path, m->path_len, &ferr) < 0) {
		f->unbatched = true;
		ferr.cls = SX_E_IO; /* refused by the receiver (FILE_ERR class 5) */
		return srv_send_file_err(s, c, f->id, &ferr, err) < 0 ? -1 : 1;
	}
	/* The batches keep the path of every file not refused until their
	 * receipt: bounded per connection. */
	if (c->sign && m->path_len > SX_SESSION_PATH_BYTES_MAX - c->path_bytes) {
		sx_fail(&ferr, SX_E_IO,
			"the receiver holds %zu bytes of paths of files awaiting their "
			"batch signature (at most %u): send smaller batches "
			"(--batch-files)",
			c->path_bytes, SX_SESSION_PATH_BYTES_MAX);
		return srv_send_file_err(s, c, f->id, &ferr, err) < 0 ? -1 : 1;
	}
	return 0;
}

void srv_file_opened(server *s, conn *c, rfile *f)
{
	/* Registered while it is written (from its SX_IO_REG_AFTER-th write: a
	 * small file is not worth it): removed by srv_start_finish or, on every
	 * other path, srv_file_release, before sx_store_end closes it. */
	(void)sx_io_file_add_after(s->io, f->sf.fd, SX_IO_REG_AFTER);
	f->state = F_OPEN;
	srv_temp_meta(s, c, f);
	char why[64];
	snprintf(why, sizeof(why), "resumed from byte %llu", (unsigned long long)f->from);
	srv_lg_file(s, c, f, SX_LF_RECEIVING, f->from > 0 ? why : NULL);
	/* Large files skip the page cache where the file system allows: no
	 * copy of the plaintext on the receiver (docs/IO.md). */
	if (s->cfg->direct && (f->announced == SX_SIZE_UNKNOWN || f->announced >= DIRECT_MIN))
		(void)sx_store_direct_on(&f->sf);
}

static int on_file_begin(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	int fi = -1;
	rfile *f = srv_file_entry(c, m, &fi, err);
	if (f == NULL)
		return -1;
	c->cur_file = fi;
	if (c->sign) {
		SX_GUARD(sx_filehash_init(&f->h, c->hash_chunk, err));
		f->h_open = true;
	}
	sx_err ferr = {0};
	int pr = srv_file_paths(s, c, f, m, err);
	if (pr == 0)
		pr = srv_lim_file(s, c, f, m->size, 0, err);
	if (pr != 0)
		return pr < 0 ? -1 : 0;
	if (sx_store_begin(&c->store, m->path, m->path_len, &f->sf, &ferr) < 0)
		return srv_send_file_err(s, c, f->id, &ferr, err);
	/* Refused before its data comes (the sender stops reading it at the
	 * answer) when it cannot fit; a stream's size is not known. */
	if (f->announced != SX_SIZE_UNKNOWN && sx_store_space(&f->sf, f->announced, &ferr) < 0)
		return srv_send_file_err(s, c, f->id, &ferr, err);
	srv_file_opened(s, c, f);
	return 0;
out:
	return -1;
}

static int on_file_end(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (c->cur_file < 0 || c->files[c->cur_file].id != m->file_id)
		return sx_fail(err, SX_E_INTEGRITY, "FILE_END for a file that was not begun");
	int fi = c->cur_file;
	rfile *f = &c->files[fi];
	c->cur_file = -1;
	/* A file this side refused (FILE_ERR sent) may end before its
	 * announced size: the sender stops sending what would be dropped. */
	bool cut_ok =
	    f->state == F_DISCARD && f->announced != SX_SIZE_UNKNOWN && m->size < f->announced;
	if (f->received != m->size ||
	    (f->announced != SX_SIZE_UNKNOWN && f->announced != m->size && !cut_ok))
		return sx_fail(err, SX_E_INTEGRITY,
			       "'%s': %llu bytes received, %llu announced, %llu at the end",
			       f->path, (unsigned long long)f->received,
			       (unsigned long long)f->announced, (unsigned long long)m->size);
	if (c->sign) {
		uint8_t root[SX_HASH_LEN];
		uint64_t leaves, bytes;
		if (f->h_open) {
			SX_GUARD(sx_filehash_final(&f->h, root, &leaves, &bytes, err));
			sx_filehash_free(&f->h);
			f->h_open = false;
		} else {
			/* a refused FILE_RESUME: nothing of it is stored, and its
			 * first bytes were never here to hash */
			memcpy(root, m->root, SX_HASH_LEN);
		}
		if (CRYPTO_memcmp(root, m->root, SX_HASH_LEN) != 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "'%s': the sender's Merkle root does not match what arrived",
				       f->path);
		if (!f->unbatched) {
			sx_sbatch *b = srv_open_batch(c, err);
			if (b == NULL)
				goto out;
			SX_GUARD(sx_sbatch_add(b, f->id, root, f->received, f->mtime.tv_sec,
					       (uint32_t)f->mtime.tv_nsec, f->path, err));
			c->path_bytes += strlen(f->path);
			f->batch = c->nbatches - 1;
			f->pos = (int)b->n - 1;
		}
	}
	if (f->state == F_DISCARD) {
		/* Refused: out of the receipt. A failed file is released by
		 * srv_on_write once its last write has come back. */
		rfile copy = {.batch = f->batch, .pos = f->pos};
		f->batch = -1;
		if (f->writes == 0)
			srv_file_release(s, f);
		SX_GUARD(srv_answer(s, c, &copy, SX_ANS_REFUSED, err));
		return srv_maybe_finish_session(s, c, err);
	}
	f->state = F_ENDING;
	if (f->writes == 0)
		return srv_start_finish(s, c, fi, err);
	return 0;
out:
	return -1;
}

static int on_batch(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	if (!c->sign || c->nbatches == 0 || c->batches[c->nbatches - 1] == NULL ||
	    c->batches[c->nbatches - 1]->sealed)
		return sx_fail(err, SX_E_INTEGRITY, "BATCH without files to cover");
	int bi = c->nbatches - 1;
	sx_sbatch *b = c->batches[bi];
	if (m->batch_no != b->number || m->nfiles != b->n)
		return sx_fail(err, SX_E_INTEGRITY,
			       "BATCH %llu covers %u files; this side counts batch %llu of %u",
			       (unsigned long long)m->batch_no, m->nfiles,
			       (unsigned long long)b->number, b->n);
	if (sx_signed_time_check(m->time, (int64_t)time(NULL), err) < 0) {
		sx_err_prefix(err, "BATCH %llu: ", (unsigned long long)b->number);
		goto out;
	}
	EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0));
	SX_GUARD(sx_sbatch_verify(b, c->tid, c->hash_chunk, m->time, m->sig, m->sig_len, pub, err));
	sx_log("info", "batch", "peer=%s batch=%llu files=%u signature=verified",
	       SX_LOGQ(c->link.k.peer_name), (unsigned long long)b->number, b->n);
	SRV_COUNT(s, batches, 1);
	SX_GUARD(srv_finalize_waiting(s, c, err));
	return srv_maybe_receipt(s, c, bi, err);
out:
	return -1;
}

static int on_checkpoint(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	uint8_t stmt[SX_STMT_CHECKPOINT_MAX], root[SX_HASH_LEN];
	size_t len = 0;
	uint64_t leaves, bytes;
	if (!c->sign || c->cur_file < 0 || c->files[c->cur_file].id != m->file_id ||
	    c->files[c->cur_file].announced != SX_SIZE_UNKNOWN)
		return sx_fail(err, SX_E_INTEGRITY, "CHECKPOINT outside a signed stream");
	rfile *f = &c->files[c->cur_file];
	SX_GUARD(sx_filehash_checkpoint(&f->h, root, &leaves, &bytes, err));
	if (f->ck != NULL && leaves <= f->ck->leaves)
		return sx_fail(err, SX_E_INTEGRITY, "'%s': a checkpoint that covers nothing new",
			       f->path);
	if (leaves != m->leaves || bytes != m->size)
		return sx_fail(err, SX_E_INTEGRITY,
			       "'%s': checkpoint over %llu leaves, %llu received", f->path,
			       (unsigned long long)m->leaves, (unsigned long long)leaves);
	if (sx_signed_time_check(m->time, (int64_t)time(NULL), err) < 0) {
		sx_err_prefix(err, "'%s': stream checkpoint: ", f->path);
		goto out;
	}
	SX_GUARD(sx_stmt_checkpoint(c->tid, f->path, c->hash_chunk, leaves, bytes, root, m->time,
				    stmt, sizeof(stmt), &len, err));
	EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0));
	if (sx_verify(pub, stmt, len, m->sig, m->sig_len, err) < 0) {
		sx_err_prefix(err, "'%s': stream checkpoint: ", f->path);
		goto out;
	}
	if (f->ck == NULL && (f->ck = calloc(1, sizeof(*f->ck))) == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	f->ck->leaves = leaves;
	f->ck->bytes = bytes;
	f->ck->time = m->time;
	memcpy(f->ck->root, root, SX_HASH_LEN);
	memcpy(f->ck->sig, m->sig, m->sig_len);
	f->ck->sig_len = m->sig_len;
	sx_log("info", "checkpoint", "peer=%s path=%s leaves=%llu bytes=%llu signature=verified",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), (unsigned long long)leaves,
	       (unsigned long long)bytes);
	/* Made durable beside the temporary once what it covers is on disk
	 * (srv_ck_try); only the newest waiting one matters. */
	if (f->ck_pending == NULL && (f->ck_pending = malloc(sizeof(*f->ck_pending))) == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	*f->ck_pending = *f->ck;
	srv_ck_try(s, c, c->cur_file);
	return 0;
out:
	return -1;
}

static int on_dir(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	sx_err derr = {0};
	bool created =
	    s->cfg->client != NULL && !sx_store_dir_exists(&c->store, m->path, m->path_len);
	if (sx_store_mkdir(&c->store, m->path, m->path_len, m->mode, &derr) < 0)
		return srv_send_file_err(s, c, 0, &derr, err);
	/* Folder mtimes are restored at the end: bounded in count and bytes, so
	 * a peer cannot make this list (or the work at the end) grow without
	 * limit; a repeated folder is recorded once. */
	if (c->ndirs >= MAX_DIRS || c->dirs_bytes + m->path_len > MAX_DIR_BYTES)
		return 0;
	if (c->ndirs > 0 && strlen(c->dirs[c->ndirs - 1].path) == m->path_len &&
	    memcmp(c->dirs[c->ndirs - 1].path, m->path, m->path_len) == 0)
		return 0;
	if (sx_grow(&c->dirs, &c->dirs_cap, c->ndirs + 1, sizeof(*c->dirs), MAX_DIRS, "folders",
		    err) < 0)
		return -1;
	c->dirs[c->ndirs].path = strndup((const char *)m->path, m->path_len);
	c->dirs[c->ndirs].mtime.tv_sec = m->mtime_sec;
	c->dirs[c->ndirs].mtime.tv_nsec = m->mtime_nsec;
	c->dirs[c->ndirs].created = created;
	if (c->dirs[c->ndirs].path != NULL) {
		c->dirs_bytes += m->path_len;
		c->ndirs++;
	}
	return 0;
}

static int on_ctrl(server *s, conn *c, const uint8_t *pt, size_t len, sx_err *err)
{
	sx_msg m;
	const sx_get_cfg *cl = s->cfg->client;
	/* A chat client (serve_chat.c): its messages are the hub's to read. */
	if (cl == NULL && !c->session && len > 0 && pt[0] == SX_MSG_CHAT_JOIN)
		return srv_chat_request(s, c, pt, len, err);
	SX_GUARD(sx_msg_decode(pt, len, &m, err));
	/* Either side may end the session with ERROR, saying why. */
	if (m.type == SX_MSG_ERROR)
		return sx_fail(err, (sx_class)m.err_class, "%s: %.*s", c->link.k.peer_name,
			       (int)m.reason_len, (const char *)m.reason);
	/* A client that asks instead of sending (get, ls: serve_out.c). */
	if (cl == NULL && !c->session && (m.type == SX_MSG_GET || m.type == SX_MSG_LIST))
		return srv_out_request(c, &m, err);
	if (cl != NULL && cl->list) {
		if (m.type != SX_MSG_LIST_ENTRY)
			return sx_fail(err, SX_E_INTEGRITY,
				       "unexpected control message 0x%02x in a listing", m.type);
		return srv_client_entry(s, c, &m, err);
	}
	if (!c->session && m.type != SX_MSG_SESSION)
		return sx_fail(err, SX_E_INTEGRITY, "the session must begin with SESSION");
	switch (m.type) {
	case SX_MSG_SESSION: return on_session(s, c, &m, err);
	case SX_MSG_DIR: SX_GUARD(srv_client_check(s, &m, true, err)); return on_dir(s, c, &m, err);
	case SX_MSG_FILE_BEGIN:
		SX_GUARD(srv_client_check(s, &m, false, err));
		return on_file_begin(s, c, &m, err);
	case SX_MSG_FILE_END: return on_file_end(s, c, &m, err);
	case SX_MSG_QUERY:
		/* In a pull, only about what was asked for: a server may not
		 * probe the client's folder for other names and sizes. */
		SX_GUARD(srv_client_check(s, &m, false, err));
		return srv_on_query(s, c, &m, err);
	/* A pull into standard output answered every QUERY with NONE: the
	 * server has nothing to resume or leave out. */
	case SX_MSG_FILE_RESUME:
		if (cl != NULL && cl->single)
			break;
		SX_GUARD(srv_client_check(s, &m, false, err));
		return srv_on_file_resume(s, c, &m, err);
	case SX_MSG_FILE_SAME:
		if (cl != NULL && cl->single)
			break;
		SX_GUARD(srv_client_check(s, &m, false, err));
		return srv_on_file_same(s, c, &m, err);
	case SX_MSG_BATCH: return on_batch(s, c, &m, err);
	case SX_MSG_CHECKPOINT: return on_checkpoint(s, c, &m, err);
	default: break;
	}
	return sx_fail(err, SX_E_INTEGRITY, "unexpected control message 0x%02x from sender",
		       m.type);
out:
	return -1;
}

static size_t dio_round(size_t n)
{
	return (n + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
}

static int dx_alloc(server *s, conn *c, sx_err *err)
{
	if (c->dctx != NULL)
		return 0;
	c->dctx = ZSTD_createDCtx();
	bool oom = c->dctx == NULL;
	for (int i = 0; i < RX_SLOTS; i++) {
		c->dx[i] = aligned_alloc(SX_DIO_ALIGN, dio_round(s->cfg->max_record));
		oom |= c->dx[i] == NULL;
	}
	if (oom)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	return 0;
}

static bool dio_aligned(const sx_store_file *sf, const uint8_t *p, size_t len, uint64_t off)
{
	return (uintptr_t)p % sf->dio_align == 0 && len % sf->dio_align == 0 &&
	       off % sf->dio_align == 0;
}

/* Registers the first need bytes of buf (a receive or decompression buffer
 * of cap bytes) with the ring, widening an earlier registration, so that
 * writes from it go out as WRITE_FIXED. Lazily, and only as far as records
 * reach: registration pins the pages, and a whole max_record (16 MiB by
 * default) per buffer would pin memory that 1 MiB records never touch. It
 * at least doubles each time, so a buffer is registered a few times at
 * most. Nothing may be in flight on buf. When the kernel refuses
 * (RLIMIT_MEMLOCK, a full table, the poll backend) the buffer stays plain
 * for good. conn_free removes it. */
static void reg_grow(server *s, uint8_t *buf, size_t *have, size_t need, size_t cap)
{
	if (need <= *have)
		return;
	size_t want = (need + REG_STEP - 1) / REG_STEP * REG_STEP;
	if (want < 2 * *have)
		want = 2 * *have;
	if (want > cap)
		want = cap;
	if (*have > 0)
		sx_io_buf_remove(s->io, buf);
	*have = sx_io_buf_add(s->io, buf, want) ? want : SIZE_MAX;
}

/* A leaf a worker hashed goes into the file's tree when it is exactly the
 * next leaf: at a leaf boundary, whole, or the short last one of the file
 * (serve_rxpool.c guessed so; the guess is checked here). */
static bool leaf_fits(const rfile *f, size_t len)
{
	const sx_filehash *h = &f->h;
	if (h->in_leaf != 0 || h->ended || len == 0 || len > h->chunk)
		return false;
	return len == h->chunk ||
	       (f->announced != SX_SIZE_UNKNOWN && f->received + len == f->announced);
}

static int on_data(server *s, conn *c, int slot, uint8_t flags, uint8_t *pt, size_t len,
		   const uint8_t *leaf, sx_err *err)
{
	if (!c->session)
		return sx_fail(err, SX_E_INTEGRITY, "the session must begin with SESSION");
	if (c->cur_file < 0)
		return sx_fail(err, SX_E_INTEGRITY, "data outside a file");
	rfile *f = &c->files[c->cur_file];
	if (flags & SX_REC_FLAG_COMPRESSED) {
		/* Bounded by the announced size: docs/PROTOCOL.md, "Compressed
		 * DATA records". */
		uint64_t limit =
		    f->announced == SX_SIZE_UNKNOWN ? UINT64_MAX : f->announced - f->received;
		size_t dlen = 0;
		uint8_t *dst;
		SX_GUARD(dx_alloc(s, c, err));
		dst = c->dx[slot];
		if (sx_zrec_decompress(c->dctx, pt, len, limit, dst, s->cfg->max_record, &dlen,
				       err) < 0) {
			sx_err_prefix(err, "'%s': ", f->path);
			goto out;
		}
		pt = dst;
		len = dlen;
	}
	if (f->announced != SX_SIZE_UNKNOWN && len > f->announced - f->received)
		return sx_fail(err, SX_E_INTEGRITY, "'%s': more data than announced", f->path);
	/* Hashed while the chunk is in cache, before it is written (or by
	 * the worker that opened it, right after). */
	if (f->h_open && leaf != NULL && leaf_fits(f, len))
		SX_GUARD(sx_filehash_add_leaf(&f->h, leaf, len, err));
	else if (f->h_open)
		SX_GUARD(sx_filehash_update(&f->h, pt, len, err));
	uint64_t off = f->received;
	f->received += len;
	c->bytes += len;
	SRV_COUNT(s, bytes, len);
	int lr = srv_lim_data(s, c, f, err);
	if (lr != 0)
		return lr < 0 ? -1 : 0;
	const sx_get_cfg *cl = s->cfg->client;
	if (cl != NULL && cl->on_progress != NULL) {
		sx_progress p = {.bytes_sent = c->bytes, .files_done = c->files_ok};
		cl->on_progress(cl->progress_ctx, &p);
	}
	if (f->state == F_DISCARD || f->failed || len == 0)
		return 0; /* the buffer is free again at once */
	/* The buffer stays busy until the write completes. */
	f->writes++;
	if (f->sf.direct && !dio_aligned(&f->sf, pt, len, off))
		(void)sx_store_direct_off(&f->sf); /* a tail: buffered from here on */
	c->wr[slot].p = pt;
	c->wr[slot].len = len;
	c->wr[slot].off = off;
	c->wr[slot].direct = f->sf.direct;
	c->wr[slot].busy = true;
	c->wr[slot].fi = c->cur_file;
	unsigned sub = ((unsigned)c->cur_file << 8) | (unsigned)slot;
	size_t rx_cap = SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX;
	uintptr_t at = (uintptr_t)pt - (uintptr_t)c->rx[slot];
	if (pt == c->dx[slot])
		reg_grow(s, pt, &c->dx_reg[slot], len, s->cfg->max_record);
	else if (at < rx_cap && len <= rx_cap - at)
		reg_grow(s, c->rx[slot], &c->rx_reg[slot], at + len, rx_cap);
	return submit_ok(
	    c, sx_io_write(s->io, f->sf.fd, pt, len, off, tag_of(c->idx, OP_WRITE, sub), err));
out:
	return -1;
}

int srv_record(server *s, conn *c, int slot, const rxrec *r, sx_err *err)
{
	uint8_t type = r->type, flags = r->flags;
	/* Never reached for a refused peer (on_ready): a second guard. */
	if (c->link.k.refusal[0] != '\0')
		return sx_fail(err, SX_E_AUTH, "%s", c->link.k.refusal);
	if (flags != 0 && type != SX_REC_DATA)
		return sx_fail(err, SX_E_INTEGRITY,
			       "compressed record of type %u (only DATA may be)", type);
	switch (type) {
	case SX_REC_CTRL: return on_ctrl(s, c, r->pt, r->len, err);
	case SX_REC_DATA:
		return on_data(s, c, slot, flags, r->pt, r->len, r->leaf ? r->job.leaf_hash : NULL,
			       err);
	case SX_REC_EOS:
		if (c->cur_file >= 0)
			return sx_fail(err, SX_E_INTEGRITY, "end of stream inside a file");
		if (c->nbatches > 0 && c->batches[c->nbatches - 1] != NULL &&
		    !c->batches[c->nbatches - 1]->sealed)
			return sx_fail(err, SX_E_INTEGRITY,
				       "end of stream with files no BATCH signature covers");
		c->eos_received = true;
		return srv_maybe_finish_session(s, c, err);
	default: return sx_fail(err, SX_E_INTEGRITY, "unexpected record type %u", type);
	}
}

/* The handshake is done: buffers, the store, and (the client's side) the
 * request. False when the connection was failed. */
static bool on_ready(server *s, conn *c)
{
	sx_err err = {0};
	srv_hs_leave(s, c);
	c->st = C_OPEN;
	c->deadline = sx_now_ns() + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
	sx_log("info", "handshake", "conn=%u addr=%s peer=%s fingerprint=%s suite=%s", c->id,
	       SX_LOGT(c->addr), SX_LOGQ(c->link.k.peer_name), SX_LOGT(c->link.k.peer_fingerprint),
	       SX_LOGT(sx_suite_name((sx_suite)c->link.k.hello.suite)));
	srv_m_handshake(s, c->link.k.refusal[0] != '\0' ? c->link.k.refusal : NULL);
	c->link.max_body = s->cfg->max_record;
	size_t cap = SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX;
	/* The plaintext begins SX_REC_HDR_LEN into a record:
	 * that byte sits on an alignment boundary, so chunks
	 * can be written with direct I/O from where they were
	 * opened. */
	for (int i = 0; i < RX_SLOTS; i++) {
		c->rx_mem[i] = aligned_alloc(SX_DIO_ALIGN, dio_round(SX_DIO_ALIGN + cap));
		if (c->rx_mem[i] != NULL)
			c->rx[i] = c->rx_mem[i] + SX_DIO_ALIGN - SX_REC_HDR_LEN;
	}
	c->tx[0] = malloc(TX_CAP);
	c->tx[1] = malloc(TX_CAP);
	c->syncq = malloc((FILES_MAX + 1) * sizeof(int));
	bool oom = c->tx[0] == NULL || c->tx[1] == NULL || c->syncq == NULL;
	for (int i = 0; i < RX_SLOTS; i++)
		oom |= c->rx[i] == NULL;
	if (oom) {
		sx_fail(&err, SX_E_OTHER, "out of memory");
		srv_conn_fail(s, c, &err);
		return false;
	}
	/* Authenticated only to be told why it is refused (the server's CRL
	 * is stale: channel_crl.c): CONFIRM, then the ERROR, and nothing it
	 * sends is read (a closing connection's input is dropped). */
	if (c->link.k.refusal[0] != '\0') {
		sx_fail(&err, SX_E_AUTH, "%s", c->link.k.refusal);
		srv_hs_send(s, c);
		srv_conn_fail(s, c, &err);
		return false;
	}
	/* Busy, or one connection too many of its identity: told so. */
	if (!srv_lim_ready(s, c))
		return false;
	if (s->cfg->client != NULL && s->cfg->client->list) {
		c->rx_cur = -1; /* a listing stores nothing */
	} else if (sx_store_open(&c->store, s->cfg->out_dir,
				 s->cfg->client ? NULL : c->link.k.peer_name, s->cfg->overwrite,
				 &err) < 0) {
		srv_hs_send(s, c); /* CONFIRM first, so ERROR can follow */
		srv_conn_fail(s, c, &err);
		return false;
	} else {
		c->store_open = true;
		c->rx_cur = -1;
		if (s->cfg->client == NULL)
			srv_lg_session(s, c);
	}
	if (s->cfg->client != NULL && srv_client_request(s, c, &err) < 0) {
		srv_conn_fail(s, c, &err);
		return false;
	}
	return true;
}

void srv_on_recv(server *s, conn *c, int64_t res)
{
	sx_err err = {0};
	c->recv_posted = false;
	if (conn_closing(c)) {
		if (c->st == C_LINGERING) {
			if (res > 0 && sx_now_ns() < c->deadline)
				srv_linger_recv(s, c);
			else
				srv_conn_shutdown(s, c, true); /* the peer closed, or time is up */
		}
		return;
	}
	if (res <= 0) {
		if (res == 0 && !c->link.ready)
			sx_fail(&err, SX_E_NET, "closed during the handshake");
		else if (res == 0)
			sx_fail(&err, SX_E_INTEGRITY,
				"connection closed without end-of-stream (truncated)");
		else
			sx_fail_errno(&err, SX_E_NET, (int)-res, "receive failed");
		/* After the records received before, as on one thread. */
		srv_rx_fail(s, c, &err);
		return;
	}
	if (s->rx_rate.bps != 0 && c->link.ready)
		sx_rate_charge(&s->rx_rate, (uint64_t)res, sx_now_ns());
	/* The handshake's deadline is fixed at accept: a peer dripping bytes
	 * does not move it. Once authenticated, input resets the idle clock. */
	if (c->link.ready)
		c->deadline = sx_now_ns() + (uint64_t)s->cfg->idle_timeout_ms * 1000000u;
	if (!c->link.ready) {
		if (sx_link_hs_input(&c->link, (size_t)res, &err) < 0) {
			srv_conn_fail(s, c, &err);
			return;
		}
		if (c->link.ready && !on_ready(s, c))
			return;
		srv_hs_send(s, c);
		srv_post_recv(s, c);
		return;
	}
	if (srv_rx_input(s, c, (size_t)res))
		srv_post_recv(s, c);
}
