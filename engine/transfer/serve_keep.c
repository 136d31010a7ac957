/* Keeping what a broken connection leaves (engine/transfer): a held part of
 * a file of known size (docs/PROTOCOL.md, "Resume and re-sending"), or a
 * stream's signed prefix as NAME.partial; queued to a few threads, off the
 * event loops; and the sweep of expired held parts. */
#include "engine/transfer/serve_int.h"
#include "engine/transfer/sx_held.h"

#include <sys/stat.h>

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
	bool dropped;	  /* the part went: the file was stored meanwhile */
	int64_t began_ns; /* wall clock of the broken transfer's FILE_BEGIN */
	sx_held_meta meta;
	sx_ledger *lg;
	bool lg_ev;
	sx_ledger_ev ev;
} keep_job;

/* A retry can store the whole file before this part is kept: while this
 * thread still hashed the broken transfer (unsigned, a large part), or
 * because the broken connection was only noticed after the retry (a
 * stalled link). A final name changed since the broken transfer began
 * makes the part stale, and it goes rather than wait for its TTL. */
static bool held_superseded(keep_job *j)
{
	struct stat st;
	char data[SX_HELD_NAME_MAX], meta[SX_HELD_NAME_MAX];
	sx_err e = {0};
	if (fstatat(j->sf.dir_fd, j->meta.name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec < j->began_ns ||
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
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	j->began_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec - (int64_t)(sx_now_ns() - f->t0);
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
	if (j == NULL || srv_partial_sxsig(c, f, f->ck, &j->text, &j->len, &err) < 0) {
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
