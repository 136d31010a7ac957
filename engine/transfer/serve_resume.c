/* The receiver's side of resume and re-sending (docs/PROTOCOL.md, "Resume
 * and re-sending"): QUERY answered with OFFER, FILE_RESUME continuing a
 * held part, FILE_SAME compared with the stored file (hashed on a thread
 * when its root is not known), and the .sxmeta beside a new temporary. */
#include <stdatomic.h>
#include <sys/stat.h>

#include "engine/transfer/serve_int.h"
#include "engine/transfer/sx_held.h"

#define SAME_READ (1u << 20)

/* The stored file's root over leaves of leaf bytes, from NAME.sxsig when
 * that is the batch signature of a file of this size. */
static bool sxsig_root(int dfd, const char *name, uint64_t size, uint32_t leaf,
		       uint8_t root[SX_HASH_LEN])
{
	char sig[SX_NAME_MAX + 16];
	sx_sxsig x = {0};
	struct stat sb;
	char *text = NULL;
	bool ok = false;
	if (snprintf(sig, sizeof(sig), "%s" SX_SUFFIX_SIG, name) >= (int)sizeof(sig))
		return false;
	int fd = openat(dfd, sig, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > SX_SXSIG_TEXT_MAX || (text = malloc((size_t)sb.st_size)) == NULL ||
	    pread(fd, text, (size_t)sb.st_size, 0) != sb.st_size ||
	    sx_sxsig_decode(text, (size_t)sb.st_size, &x, &(sx_err){0}) < 0)
		goto out;
	const char *slash = strrchr(x.path, '/');
	if (x.kind == SX_KIND_BATCH && x.chunk == leaf && x.file_size == size &&
	    strcmp(slash != NULL ? slash + 1 : x.path, name) == 0) {
		memcpy(root, x.file_root, SX_HASH_LEN);
		ok = true;
	}
out:
	if (fd >= 0)
		close(fd);
	sx_sxsig_free(&x);
	free(text);
	return ok;
}

static void log_expired(conn *c, const char *path, const sx_held_meta *m)
{
	sx_log("info", "held_expired", "peer=%s path=%s bytes=%llu kept=%lld",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(path), (unsigned long long)m->held,
	       (long long)m->kept);
}

/* Reads the held part of name in dfd; NULL with why when there is none
 * that may go to this connection for a file of size bytes. An expired
 * part is removed on the way. */
static sx_held_meta *held_for(server *s, conn *c, int dfd, const char *path, const char *name,
			      uint64_t size, sx_err *why)
{
	char meta[SX_HELD_NAME_MAX], data[SX_HELD_NAME_MAX];
	struct stat sb;
	sx_held_meta *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		sx_fail(why, SX_E_OTHER, "out of memory");
		return NULL;
	}
	if (sx_held_name(name, SX_HELD_META, meta, sizeof(meta), why) < 0 ||
	    sx_held_name(name, SX_HELD_DATA, data, sizeof(data), why) < 0)
		goto no;
	if (sx_held_read(dfd, meta, m, why) < 0) {
		sx_err_clear(why);
		sx_fail(why, SX_E_IO,
			"'%s': no held part (expired, or taken by another connection)", path);
		goto no;
	}
	if (sx_held_expired(m, s->cfg->partial_ttl_s, (int64_t)time(NULL))) {
		log_expired(c, path, m);
		sx_held_remove(dfd, name);
		sx_fail(why, SX_E_IO, "'%s': the held part has expired", path);
		goto no;
	}
	if (strcmp(m->name, name) != 0 || strcmp(m->fingerprint, c->link.k.peer_fingerprint) != 0) {
		sx_fail(why, SX_E_IO, "'%s': the held part came from another certificate", path);
		goto no;
	}
	if (m->size != size || m->leaf != c->hash_chunk || m->held == 0) {
		sx_fail(why, SX_E_IO, "'%s': the held part is of another size or leaf size", path);
		goto no;
	}
	if (fstatat(dfd, data, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != m->held) {
		sx_fail(why, SX_E_IO,
			"'%s': no held part (expired, or taken by another connection)", path);
		goto no;
	}
	return m;
no:
	free(m);
	return NULL;
}

/* Could a held part of a file of size bytes be offered? Parts are kept of
 * files of at least SX_HELD_MIN_LEAVES leaves only (srv_keep_held), and
 * one of another size is not offered; and the index may know that there
 * is none (sx_store_may_hold). */
static bool may_hold(conn *c, uint64_t size)
{
	return size / c->hash_chunk >= SX_HELD_MIN_LEAVES && sx_store_may_hold(&c->store);
}

/* What this side has of the file m asks about (bounded: a few stats and
 * at most a .sxsig and a meta read). */
static void offer(server *s, conn *c, const sx_msg *m, sx_msg *o)
{
	char name[256], path[SX_PATH_MAX + 1];
	struct stat sb;
	sx_err e = {0};
	/* The store's own descriptor of the folder: none is made per question. */
	int dfd = sx_store_lookup(&c->store, m->path, m->path_len, name, &e);
	if (dfd < 0)
		return;
	snprintf(path, sizeof(path), "%.*s", (int)m->path_len, (const char *)m->path);
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
	    (uint64_t)sb.st_size == m->size) {
		o->kind = SX_OFFER_EXISTS;
		o->from = m->size;
		/* The client of a get that does not overwrite offers no root:
		 * the server then sends FILE_SAME, and other content is refused
		 * here (FILE_ERR), where the user sees it, rather than left out
		 * by the server unannounced. */
		bool quiet = s->cfg->client != NULL && !s->cfg->overwrite;
		if (!quiet && sxsig_root(dfd, name, m->size, c->hash_chunk, o->root))
			o->leaf = c->hash_chunk;
	} else if (may_hold(c, m->size)) {
		sx_held_meta *h = held_for(s, c, dfd, path, name, m->size, &e);
		if (h != NULL) {
			o->kind = SX_OFFER_PARTIAL;
			o->leaf = h->leaf;
			o->from = h->held;
			memcpy(o->root, h->root, SX_HASH_LEN);
		}
		free(h);
	}
}

int srv_on_query(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	sx_msg o = {.type = SX_MSG_OFFER,
		    .file_id = m->file_id,
		    .kind = SX_OFFER_NONE,
		    .flags = s->cfg->overwrite ? SX_OFFER_OVERWRITE : 0};
	/* The client of get - holds nothing: it answers NONE. */
	if (c->store_open && srv_holds(s))
		offer(s, c, m, &o);
	return srv_send_msg(s, c, &o, err);
}

/* ---- FILE_RESUME ----------------------------------------------------------- */

static int resume_open(server *s, conn *c, rfile *f, const sx_msg *m, sx_err *err)
{
	char data[SX_HELD_NAME_MAX], meta[SX_HELD_NAME_MAX];
	struct stat sb;
	int rc = -1;
	sx_held_meta *h = NULL, *h2 = NULL;
	SX_GUARD(sx_store_prepare(&c->store, m->path, m->path_len, &f->sf, err));
	h = held_for(s, c, f->sf.dir_fd, f->path, f->sf.name, m->size, err);
	if (h == NULL)
		goto out;
	SX_ENSURE(h->held == m->from, err, SX_E_IO, "'%s': %llu bytes are held, not %llu", f->path,
		  (unsigned long long)h->held, (unsigned long long)m->from);
	SX_ENSURE(CRYPTO_memcmp(h->root, m->root, SX_HASH_LEN) == 0, err, SX_E_IO,
		  "'%s': the held part's Merkle root is not the sender's", f->path);
	/* Only what is still to come must fit. */
	SX_GUARD(sx_store_space(&f->sf, m->size - m->from, err));
	SX_GUARD(sx_held_name(f->sf.name, SX_HELD_DATA, data, sizeof(data), err));
	SX_GUARD(sx_held_name(f->sf.name, SX_HELD_META, meta, sizeof(meta), err));
	SX_GUARD(sx_store_claim(&f->sf, data, err));
	/* The bytes claimed must be those the meta read above describes: a
	 * keeper of another connection of this identity may have put a new
	 * part (data, then meta) in place meanwhile. The meta still there
	 * after the claim must be the one read. */
	h2 = malloc(sizeof(*h2));
	SX_ENSURE(h2 != NULL && sx_held_read(f->sf.dir_fd, meta, h2, &(sx_err){0}) == 0 &&
		      h2->held == h->held && h2->kept == h->kept &&
		      strcmp(h2->fingerprint, h->fingerprint) == 0 &&
		      CRYPTO_memcmp(h2->root, h->root, SX_HASH_LEN) == 0,
		  err, SX_E_IO, "'%s': the held part changed while it was claimed", f->path);
	(void)unlinkat(f->sf.dir_fd, meta, 0); /* the part is this file's temporary now */
	SX_ENSURE(fstat(f->sf.fd, &sb) == 0 && (uint64_t)sb.st_size == h->held, err, SX_E_IO,
		  "'%s': the held part changed", f->path);
	if (c->sign) {
		SX_GUARD(sx_filehash_resume(&f->h, h->leaf, h->held / h->leaf,
					    (const uint8_t(*)[SX_HASH_LEN])h->range, h->depth,
					    err));
		f->h_open = true;
	}
	rc = 0;
out:
	free(h);
	free(h2);
	return rc;
}

int srv_on_file_resume(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	int fi = -1;
	rfile *f = srv_file_entry(c, m, &fi, err);
	if (f == NULL)
		return -1;
	c->cur_file = fi;
	/* Data continues at from: offsets and the bounds of what may come
	 * (compressed records' too) count from there. */
	f->from = m->from;
	f->received = m->from;
	int pr = srv_file_paths(s, c, f, m, err);
	if (pr == 0 && m->from <= m->size)
		pr = srv_lim_file(s, c, f, m->size, m->from, err);
	if (pr != 0)
		return pr < 0 ? -1 : 0;
	sx_err ferr = {0};
	if (!c->store_open || resume_open(s, c, f, m, &ferr) < 0) {
		if (ferr.cls == SX_OK)
			sx_fail(&ferr, SX_E_IO, "'%s': nothing to resume", f->path);
		ferr.cls = SX_E_IO;
		return srv_send_file_err(s, c, f->id, &ferr, err);
	}
	sx_log("info", "resume", "peer=%s path=%s from=%llu size=%llu",
	       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), (unsigned long long)m->from,
	       (unsigned long long)m->size);
	c->files_resumed++;
	c->bytes_resumed += m->from;
	srv_file_opened(s, c, f);
	return 0;
}

/* ---- FILE_SAME --------------------------------------------------------------- */

typedef struct same_job {
	atomic_int refs; /* the thread's and the loop's */
	int fd, wfd;
	uint32_t leaf;
	uint64_t size;
	uint8_t root[SX_HASH_LEN];
	int rc;
} same_job;

static void job_unref(same_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) == 1)
		free(j);
}

static int hash_fd(int fd, uint64_t size, uint32_t leaf, uint8_t root[SX_HASH_LEN])
{
	sx_filehash h;
	sx_err err = {0};
	uint64_t off = 0, leaves, bytes;
	uint8_t *buf = malloc(SAME_READ);
	int rc = -1;
	if (buf == NULL || sx_filehash_init(&h, leaf, &err) < 0) {
		free(buf);
		return -1;
	}
	while (off < size) {
		size_t want = size - off < SAME_READ ? (size_t)(size - off) : SAME_READ;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || sx_filehash_update(&h, buf, (size_t)n, &err) < 0)
			goto out;
		off += (uint64_t)n;
	}
	rc = sx_filehash_final(&h, root, &leaves, &bytes, &err);
out:
	sx_filehash_free(&h);
	free(buf);
	return rc;
}

static void *same_thread(void *arg)
{
	same_job *j = arg;
	j->rc = hash_fd(j->fd, j->size, j->leaf, j->root);
	close(j->fd);
	int w = j->wfd;
	atomic_thread_fence(memory_order_release);
	job_unref(j);
	/* the loop reads the result once this byte arrives */
	ssize_t n;
	do
		n = write(w, "x", 1);
	while (n < 0 && errno == EINTR);
	close(w);
	return NULL;
}

/* Hashes the stored file on a thread; its end comes to the loop as OP_SAME. */
static int same_start(server *s, conn *c, int fi, int fd, sx_err *err)
{
	rfile *f = &c->files[fi];
	int sv[2];
	pthread_t th;
	pthread_attr_t attr;
	same_job *j = calloc(1, sizeof(*j));
	if (j == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(j);
		close(fd);
		return sx_fail(err, SX_E_IO, "'%s': cannot compare with the stored file now",
			       f->path);
	}
	atomic_init(&j->refs, 2);
	j->fd = fd;
	j->wfd = sv[1];
	j->leaf = c->hash_chunk;
	j->size = f->announced;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&th, &attr, same_thread, j);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		close(fd);
		close(sv[0]);
		close(sv[1]);
		free(j);
		return sx_fail(err, SX_E_IO, "'%s': cannot compare with the stored file now",
			       f->path);
	}
	f->job = j;
	f->same_fd = sv[0];
	f->same_wait = true;
	c->same_jobs++;
	sx_err e2 = {0};
	if (submit_ok(c, sx_io_recv(s->io, sv[0], &f->same_byte, 1,
				    tag_of(c->idx, OP_SAME, (unsigned)fi), &e2)) < 0) {
		/* never answered: the thread ends alone */
		f->same_wait = false;
		c->same_jobs--;
		close(sv[0]);
		job_unref(j);
		f->job = NULL;
		*err = e2;
		return -1; /* fails the connection */
	}
	return 0;
}

/* A FILE_SAME refused (FILE_ERR sent when why): out of the receipt. */
static int same_drop(server *s, conn *c, int fi, const sx_err *why, sx_err *err)
{
	rfile *f = &c->files[fi];
	if (why != NULL)
		SX_GUARD(srv_send_file_err(s, c, f->id, why, err));
	rfile copy = {.batch = f->batch, .pos = f->pos};
	srv_file_release(s, f);
	SX_GUARD(srv_answer(s, c, &copy, SX_ANS_REFUSED, err));
	return srv_maybe_finish_session(s, c, err);
out:
	return -1;
}

/* Writes NAME.sxsig beside an equal stored file that has none. */
static void same_sxsig(server *s, conn *c, rfile *f)
{
	sx_store_file sf;
	sx_sxsig sig = {0};
	sx_err e = {0};
	char *text = NULL, name[256];
	size_t len = 0;
	struct stat sb;
	sx_sbatch *b = c->batches[f->batch];
	(void)s;
	memset(&sf, 0, sizeof(sf));
	sf.fd = sf.aux_fd = -1;
	sf.dir_fd = sx_store_find(&c->store, (const uint8_t *)f->path, strlen(f->path), name, &e);
	if (sf.dir_fd < 0)
		goto out;
	snprintf(sf.name, sizeof(sf.name), "%s", name);
	sf.committed = true;
	char signame[SX_NAME_MAX + 16];
	snprintf(signame, sizeof(signame), "%s" SX_SUFFIX_SIG, name);
	if (fstatat(sf.dir_fd, signame, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		goto out; /* one is there: left as it is */
	if (sx_batch_sxsig(&b->b, b->descs, (uint32_t)f->pos, c->link.k.peer_chain, &sig, &e) < 0 ||
	    sx_sxsig_encode(&sig, &text, &len, &e) < 0 ||
	    sx_store_aux_write(&sf, SX_SUFFIX_SIG, text, len, &e) < 0)
		goto out;
	if (fsync(sf.aux_fd) < 0 ||
	    renameat2(sf.dir_fd, sf.aux_tmp, sf.dir_fd, sf.aux_name, RENAME_NOREPLACE) < 0) {
		sx_fail_errno(&e, SX_E_IO, errno, "'%s': cannot place its .sxsig", f->path);
		goto out;
	}
	sf.aux_tmp[0] = '\0';
	(void)fsync(sf.dir_fd);
out:
	if (e.cls != SX_OK)
		sx_log("warn", "same", "peer=%s path=%s reason=%s", SX_LOGQ(c->link.k.peer_name),
		       SX_LOGQ(f->path), SX_LOGQ(e.msg));
	sx_store_end(&sf);
	sx_sxsig_free(&sig);
	free(text);
}

/* Equal, and (signed) its batch verified: FILE_OK, stored as it was. */
int srv_same_finish(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	char name[256];
	sx_err e = {0};
	if (c->sign)
		same_sxsig(s, c, f);
	int dfd =
	    sx_store_may_hold(&c->store)
		? sx_store_lookup(&c->store, (const uint8_t *)f->path, strlen(f->path), name, &e)
		: -1;
	if (dfd >= 0)
		sx_held_remove(dfd, name);
	sx_log("info", "same", "peer=%s path=%s size=%llu signed=%s", SX_LOGQ(c->link.k.peer_name),
	       SX_LOGQ(f->path), (unsigned long long)f->announced, SX_LOGT(c->sign ? "yes" : "no"));
	sx_msg m = {.type = SX_MSG_FILE_OK, .file_id = f->id, .size = f->announced};
	c->files_ok++;
	c->files_same++;
	SX_GUARD(srv_send_msg(s, c, &m, err));
	srv_lg_file(s, c, f, SX_LF_STORED, "already there (FILE_SAME)");
	rfile copy = {.batch = f->batch, .pos = f->pos};
	srv_file_release(s, f);
	SX_GUARD(srv_answer(s, c, &copy, SX_ANS_STORED, err));
	return srv_maybe_finish_session(s, c, err);
out:
	return -1;
}

/* The comparison is known: answered now, or (signed, equal) once its batch
 * is verified. */
static int same_decided(server *s, conn *c, int fi, sx_err *err)
{
	rfile *f = &c->files[fi];
	if (f->same == SAME_DIFFERENT || f->same == SAME_MISSING) {
		sx_err why = {0};
		if (f->same == SAME_MISSING)
			sx_fail(&why, SX_E_IO,
				"'%s' is not stored on the receiver (not of that size)", f->path);
		else
			sx_fail(&why, SX_E_IO, "'%s' exists with other content", f->path);
		return same_drop(s, c, fi, &why, err);
	}
	if (!c->sign || (f->batch >= 0 && c->batches[f->batch]->sealed))
		return srv_same_finish(s, c, fi, err);
	srv_wait_add(c, fi);
	return 0;
}

static int same_batch(conn *c, rfile *f, const sx_msg *m, sx_err *err)
{
	sx_sbatch *b = srv_open_batch(c, err);
	if (b == NULL)
		return -1;
	if (sx_sbatch_add(b, f->id, m->root, m->size, m->mtime_sec, m->mtime_nsec, f->path, err) <
	    0)
		return -1;
	c->path_bytes += strlen(f->path);
	f->batch = c->nbatches - 1;
	f->pos = (int)b->n - 1;
	return 0;
}

int srv_on_file_same(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	int fi = -1;
	char name[256];
	struct stat sb;
	sx_err e = {0};
	rfile *f = srv_file_entry(c, m, &fi, err);
	if (f == NULL)
		return -1;
	f->state = F_SAME;
	f->received = m->size;
	memcpy(f->same_root, m->root, SX_HASH_LEN);
	int pr = srv_file_paths(s, c, f, m, err);
	if (pr < 0)
		return -1;
	/* Signed: a file ended here, in the batch with its FILE_SAME fields. */
	if (c->sign && !f->unbatched && same_batch(c, f, m, err) < 0)
		return -1;
	if (pr > 0)
		return same_drop(s, c, fi, NULL, err);
	int dfd = c->store_open ? sx_store_find(&c->store, m->path, m->path_len, name, &e) : -1;
	if (dfd < 0 || fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != m->size) {
		if (dfd >= 0)
			close(dfd);
		f->same = SAME_MISSING;
		return same_decided(s, c, fi, err);
	}
	/* Always the bytes themselves: a NAME.sxsig beside the file is only a
	 * hint (an OFFER's root); it may be stale (an unsigned overwrite, a
	 * same-size edit of a pulled file) or uploaded as data by the sender. */
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	close(dfd);
	if (fd < 0) {
		f->same = SAME_DIFFERENT;
		return same_decided(s, c, fi, err);
	}
	sx_err why = {0};
	if (same_start(s, c, fi, fd, &why) < 0) {
		if (why.cls == SX_E_NET || why.cls == SX_E_OTHER) {
			*err = why;
			return -1;
		}
		return same_drop(s, c, fi, &why, err);
	}
	return 0;
}

void srv_on_same(server *s, conn *c, int fi, int64_t res)
{
	rfile *f = &c->files[fi];
	same_job *j = f->job;
	sx_err err = {0};
	c->same_jobs--;
	f->same_wait = false;
	f->job = NULL;
	close(f->same_fd);
	f->same_fd = -1;
	atomic_thread_fence(memory_order_acquire);
	bool equal =
	    res == 1 && j->rc == 0 && CRYPTO_memcmp(j->root, f->same_root, SX_HASH_LEN) == 0;
	job_unref(j);
	if (conn_closing(c))
		return;
	f->same = equal ? SAME_EQUAL : SAME_DIFFERENT;
	if (same_decided(s, c, fi, &err) < 0) {
		srv_conn_fail(s, c, &err);
		return;
	}
	srv_post_recv(s, c);
}

/* ---- the .sxmeta of a new temporary ----------------------------------------- */

void srv_temp_meta(server *s, conn *c, rfile *f)
{
	sx_err e = {0};
	if (f->announced == SX_SIZE_UNKNOWN || !srv_holds(s) ||
	    f->announced / c->hash_chunk < SX_HELD_MIN_LEAVES)
		return;
	sx_held_meta *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return;
	snprintf(m->name, sizeof(m->name), "%s", f->sf.name);
	snprintf(m->fingerprint, sizeof(m->fingerprint), "%s", c->link.k.peer_fingerprint);
	m->size = f->announced;
	m->leaf = c->hash_chunk;
	m->kept = (int64_t)time(NULL);
	m->mode = f->mode & 07777;
	m->mtime_sec = f->mtime.tv_sec;
	m->mtime_nsec = (uint32_t)f->mtime.tv_nsec;
	m->sign = c->sign;
	if (sx_store_temp_meta(&f->sf, m, &e) < 0)
		sx_log("warn", "temporary", "peer=%s path=%s reason=%s",
		       SX_LOGQ(c->link.k.peer_name), SX_LOGQ(f->path), SX_LOGQ(e.msg));
	free(m);
}
