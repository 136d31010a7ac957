/* The server's side of sxfer get and ls (docs/PROTOCOL.md, "Pull"). A
 * connection whose first message is GET or LIST leaves its receive loop:
 * once nothing of it is in flight, its socket and record keys move to a
 * thread of its own, which resolves the paths beneath what the identity may
 * read and then runs the sender's pipeline (send_session.c) on the link, or
 * writes the listing. The loop's accounting (connections, slots) stays
 * taken until the thread ends.
 *
 * What an identity NAME may read (docs/ARCHITECTURE.md, "Pull"):
 *   NAME/...     EXPORT/NAME/...   (serve --export EXPORT)
 *   shared/...   EXPORT/shared/...
 *   uploads/...  OUT/NAME/...      what it sent (serve --out OUT)
 * Every path is resolved beneath that folder with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), as a received path is. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "engine/transfer/send_serve.h"
#include "engine/transfer/serve_int.h"

#define OUT_REQ_PATHS  256	  /* paths in one GET */
#define LIST_MAX       (1u << 20) /* entries in one listing */
#define LIST_FLUSH     (192u * 1024)
#define OUT_TIMEOUT_MS 10000

typedef struct out_job {
	shared *sh;
	const sx_serve_cfg *cfg;
	int fd;
	sx_link link;
	unsigned id;
	char addr[64];
	uint8_t type; /* SX_MSG_GET or SX_MSG_LIST */
	uint32_t flags, chunk;
	uint8_t *paths;
	size_t paths_len;
	sx_lim_use *lu; /* its identity's connection, counted until the end */
} out_job;

int srv_out_request(conn *c, const sx_msg *m, sx_err *err)
{
	if (m->type == SX_MSG_GET && m->path_len == 0)
		return sx_fail(err, SX_E_USAGE, "GET names no path");
	c->req = malloc(m->path_len + 1);
	SX_ENSURE(c->req != NULL, err, SX_E_OTHER, "out of memory");
	memcpy(c->req, m->path, m->path_len);
	c->req_len = m->path_len;
	c->req_type = m->type;
	c->req_flags = m->flags;
	c->req_chunk = m->chunk;
	return 0;
out:
	return -1;
}

/* ---- what an identity may read ------------------------------------------ */

typedef struct target {
	int dirfd;  /* the area's folder (owned) */
	char *src;  /* beneath dirfd; "." for the area itself */
	char *name; /* its last component: the name it is sent under */
	char *path; /* as asked, without a trailing '/' */
	struct stat st;
} target;

static void target_free(target *t)
{
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t->src);
	free(t->name);
	free(t->path);
	memset(t, 0, sizeof(*t));
	t->dirfd = -1;
}

/* errno of an open beneath an area, as the client is told it. */
static int open_fail(int e, const char *path, sx_err *err)
{
	if (e == ENOENT || e == ENOTDIR)
		return sx_fail(err, SX_E_IO, "'%s': no such file or folder", path);
	if (e == ELOOP || e == EXDEV)
		return sx_fail(err, SX_E_AUTH, "'%s' is not allowed: it leads through a symlink",
			       path);
	return sx_fail_errno(err, SX_E_IO, e, "'%s'", path);
}

/* The folder of area first (its first component) for peer, opened. */
static int area_open(const sx_serve_cfg *cfg, const char *peer, const char *first, const char *path,
		     int *fd, sx_err *err)
{
	const char *base, *sub;
	if (strcmp(first, "uploads") == 0) {
		base = cfg->out_dir;
		sub = peer;
	} else if (strcmp(first, peer) == 0 || strcmp(first, "shared") == 0) {
		if (cfg->export_dir == NULL)
			return sx_fail(err, SX_E_AUTH,
				       "'%s' is not allowed: this server exports nothing (only "
				       "uploads/ can be read)",
				       path);
		base = cfg->export_dir;
		sub = first;
	} else {
		return sx_fail(err, SX_E_AUTH,
			       "'%s' is not allowed: %s may read %s/, shared/ and uploads/", path,
			       peer, peer);
	}
	int b = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "the server cannot open its folder");
	*fd = sx_open_beneath(b, sub, O_RDONLY | O_DIRECTORY);
	int e = errno;
	close(b);
	return *fd < 0 ? open_fail(e, path, err) : 0;
}

static int resolve(const out_job *j, const uint8_t *p, size_t len, target *t, sx_err *err)
{
	const char *peer = j->link.k.peer_name;
	sx_err why = {0};
	t->dirfd = -1;
	while (len > 0 && p[len - 1] == '/')
		len--;
	t->path = strndup((const char *)p, len);
	SX_ENSURE(t->path != NULL, err, SX_E_OTHER, "out of memory");
	if (sx_path_check(p, len, &why) < 0)
		return sx_fail(err, SX_E_AUTH, "'%s' is not allowed: %s", t->path, why.msg);
	const char *slash = strchr(t->path, '/');
	char first[SX_NAME_MAX + 1];
	size_t fl = slash ? (size_t)(slash - t->path) : len;
	memcpy(first, t->path, fl);
	first[fl] = '\0';
	SX_GUARD(area_open(j->cfg, peer, first, t->path, &t->dirfd, err));
	t->src = strdup(slash ? slash + 1 : ".");
	const char *last = strrchr(t->path, '/');
	t->name = strdup(last ? last + 1 : t->path);
	SX_ENSURE(t->src != NULL && t->name != NULL, err, SX_E_OTHER, "out of memory");
	int fd = sx_open_beneath(t->dirfd, t->src, O_PATH);
	if (fd < 0)
		return open_fail(errno, t->path, err);
	int rc = fstat(fd, &t->st);
	close(fd);
	if (rc < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "'%s'", t->path);
	SX_ENSURE(S_ISREG(t->st.st_mode) || S_ISDIR(t->st.st_mode), err, SX_E_IO,
		  "'%s' is not a regular file or folder", t->path);
	return 0;
out:
	return -1;
}

/* ---- GET: the send pipeline on this link ---------------------------------- */

static int out_get(out_job *j, sx_send_stats *st, sx_err *err)
{
	target t[OUT_REQ_PATHS];
	char *srcs[OUT_REQ_PATHS];
	const char *names[OUT_REQ_PATHS];
	int fds[OUT_REQ_PATHS], n = 0, rc = -1;
	size_t at = 0, len;
	const uint8_t *p;
	X509_CRL *crl = NULL;
	sx_msg m = {.type = SX_MSG_GET, .path = j->paths, .path_len = j->paths_len};
	while (sx_msg_next_path(&m, &at, &p, &len)) {
		if (n == OUT_REQ_PATHS) {
			sx_fail(err, SX_E_USAGE, "more than %d paths in one request",
				OUT_REQ_PATHS);
			goto fail;
		}
		target *x = &t[n++];
		if (resolve(j, p, len, x, err) < 0)
			goto fail;
		if ((j->flags & SX_GET_SINGLE) && S_ISDIR(x->st.st_mode)) {
			sx_fail(err, SX_E_USAGE, "'%s' is a folder: standard output takes one file",
				x->path);
			goto fail;
		}
		srcs[n - 1] = x->src;
		names[n - 1] = x->name;
		fds[n - 1] = x->dirfd;
	}
	if ((j->flags & SX_GET_SINGLE) && n != 1) {
		sx_fail(err, SX_E_USAGE, "standard output takes one file");
		goto fail;
	}
	uint32_t chunk = j->chunk;
	if (chunk != 0 && (chunk < SX_CHUNK_MIN || chunk > SX_MAX_RECORD_DEFAULT))
		chunk = 0;
	/* The client's receipts are checked against the CRL in use now (it
	 * may have been reloaded since the server started: serve_crl.c). */
	crl = sx_chan_ctx_crl(j->sh->ctx);
	sx_send_cfg sc = {
	    .host = j->addr,
	    .id = j->cfg->id,
	    .crl = crl,
	    .chunk = chunk,
	    .io = j->cfg->io,
	    .paths = srcs,
	    .npaths = n,
	    .path_dirs = fds,
	    .path_names = names,
	    .timeout_ms = j->cfg->idle_timeout_ms,
	    .no_sign = (j->flags & SX_GET_SIGNED) == 0,
	    .no_direct = !j->cfg->direct,
	    .receipts_dir = j->cfg->receipts_dir,
	    .zmode = j->cfg->zmode,
	    .zlevel = j->cfg->zlevel,
	    .serving = true,
	    /* standard output never resumes: nothing is asked about */
	    .no_resume = (j->flags & SX_GET_SINGLE) != 0,
	    .abort = &j->sh->stop,
	};
	rc = sx_send_serve(&sc, j->fd, &j->link, st, err);
	j->fd = -1; /* taken */
	goto out;
fail:
	sx_send_error_now(&j->link, j->fd, err);
out:
	for (int i = 0; i < n; i++)
		target_free(&t[i]);
	X509_CRL_free(crl);
	return rc;
}

/* ---- LIST ------------------------------------------------------------------ */

typedef struct lbuf {
	out_job *j;
	uint8_t *buf;
	size_t len;
	uint64_t entries;
} lbuf;

static int lb_flush(lbuf *b, sx_err *err)
{
	if (b->len > 0 && sx_net_send_all(b->j->fd, b->buf, b->len, OUT_TIMEOUT_MS, err) < 0)
		return -1;
	b->len = 0;
	return 0;
}

static int lb_entry(lbuf *b, const char *path, const struct stat *st, bool sxsig, sx_err *err)
{
	sx_msg m = {.type = SX_MSG_LIST_ENTRY,
		    .flags = (S_ISDIR(st->st_mode) ? SX_LIST_DIR : 0) | (sxsig ? SX_LIST_SXSIG : 0),
		    .size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size,
		    .mode = st->st_mode & 07777,
		    .mtime_sec = st->st_mtim.tv_sec,
		    .mtime_nsec = (uint32_t)st->st_mtim.tv_nsec,
		    .path = (const uint8_t *)path,
		    .path_len = strlen(path)};
	size_t len;
	SX_ENSURE(++b->entries <= LIST_MAX, err, SX_E_IO, "more than %u entries to list", LIST_MAX);
	SX_GUARD(sx_link_seal_msg(&b->j->link, &m, b->buf + b->len,
				  LIST_FLUSH + 2 * SX_PATH_MAX - b->len, &len, err));
	b->len += len;
	if (b->len >= LIST_FLUSH)
		SX_GUARD(lb_flush(b, err));
	return 0;
out:
	return -1;
}

typedef struct lent {
	char *name;
	struct stat st;
	bool sxsig, hidden;
} lent;

static int cmp_lent(const void *a, const void *b)
{
	return strcmp(((const lent *)a)->name, ((const lent *)b)->name);
}

/* One folder's files and folders, in name order; temporaries, symlinks and
 * special files are left out, and NAME.sxsig beside NAME is a flag of NAME. */
static int list_folder(lbuf *b, const target *t, sx_err *err)
{
	lent *v = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;
	int fd = sx_open_beneath(t->dirfd, t->src, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return open_fail(errno, t->path, err);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return sx_fail_errno(err, SX_E_IO, errno, "'%s'", t->path);
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    sx_store_temp_name(de->d_name, NULL) ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			continue;
		SX_GUARD(sx_grow(&v, &cap, n + 1, sizeof(*v), LIST_MAX, "entries to list", err));
		v[n] = (lent){.name = strdup(de->d_name), .st = st};
		SX_ENSURE(v[n].name != NULL, err, SX_E_OTHER, "out of memory");
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_lent);
	const size_t sfx = sizeof(SX_SUFFIX_SIG) - 1;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i].name);
		if (!S_ISREG(v[i].st.st_mode) || l <= sfx ||
		    strcmp(v[i].name + l - sfx, SX_SUFFIX_SIG))
			continue;
		char owner[SX_NAME_MAX + 1];
		snprintf(owner, sizeof(owner), "%.*s", (int)(l - sfx), v[i].name);
		lent key = {.name = owner};
		lent *o = bsearch(&key, v, n, sizeof(*v), cmp_lent);
		if (o != NULL && S_ISREG(o->st.st_mode)) {
			o->sxsig = true;
			v[i].hidden = true;
		}
	}
	for (size_t i = 0; i < n; i++) {
		char path[SX_PATH_MAX + SX_NAME_MAX + 2];
		if (v[i].hidden ||
		    snprintf(path, sizeof(path), "%s/%s", t->path, v[i].name) >= (int)sizeof(path))
			continue;
		SX_GUARD(lb_entry(b, path, &v[i].st, v[i].sxsig, err));
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	closedir(d);
	return rc;
}

/* A file named in the listing: itself, with whether its .sxsig is beside. */
static int list_file(lbuf *b, const target *t, sx_err *err)
{
	char sig[SX_PATH_MAX + 16];
	struct stat st;
	snprintf(sig, sizeof(sig), "%s%s", t->src, SX_SUFFIX_SIG);
	int fd = sx_open_beneath(t->dirfd, sig, O_PATH);
	bool has = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (fd >= 0)
		close(fd);
	return lb_entry(b, t->path, &t->st, has, err);
}

/* The top: the areas this identity may read that exist. */
static int list_top(lbuf *b, sx_err *err)
{
	const char *areas[] = {b->j->link.k.peer_name, "shared", "uploads"};
	for (size_t i = 0; i < SX_ARRAY_LEN(areas); i++) {
		int fd;
		sx_err skip = {0};
		struct stat st;
		if (i == 1 && strcmp(areas[0], "shared") == 0)
			continue;
		if (area_open(b->j->cfg, areas[0], areas[i], areas[i], &fd, &skip) < 0)
			continue;
		int rc = fstat(fd, &st);
		close(fd);
		if (rc == 0)
			SX_GUARD(lb_entry(b, areas[i], &st, false, err));
	}
	return 0;
out:
	return -1;
}

/* Waits for the client's end-of-stream after ours. */
static int await_eos(out_job *j, sx_err *err)
{
	uint8_t rec[SX_REC_HDR_LEN + 1024 + SX_REC_TAG_MAX];
	sx_link_rx_set(&j->link, rec, sizeof(rec));
	j->link.max_body = 1024;
	for (;;) {
		uint8_t *buf, type, flags, *pt;
		size_t want, plen;
		bool complete;
		sx_link_rx_want(&j->link, &buf, &want);
		long n = sx_net_recv_some(j->fd, buf, want, OUT_TIMEOUT_MS, err);
		if (n < 0)
			return -1;
		if (n == 0)
			return sx_fail(err, SX_E_INTEGRITY, "closed without end-of-stream");
		if (sx_link_rx_input(&j->link, (size_t)n, &complete, &type, &flags, &pt, &plen,
				     err) < 0)
			return -1;
		if (complete)
			return type == SX_REC_EOS ? 0
						  : sx_fail(err, SX_E_INTEGRITY,
							    "unexpected record after a listing");
	}
}

static int out_list(out_job *j, sx_err *err)
{
	lbuf b = {.j = j, .buf = malloc(LIST_FLUSH + 2 * SX_PATH_MAX)};
	target t = {.dirfd = -1};
	int rc = -1;
	size_t len;
	SX_ENSURE(b.buf != NULL, err, SX_E_OTHER, "out of memory");
	if (j->paths_len == 0) {
		SX_GUARD(list_top(&b, err));
	} else {
		if (resolve(j, j->paths, j->paths_len, &t, err) < 0) {
			sx_send_error_now(&j->link, j->fd, err);
			goto out;
		}
		SX_GUARD(S_ISDIR(t.st.st_mode) ? list_folder(&b, &t, err) : list_file(&b, &t, err));
	}
	SX_GUARD(sx_record_seal(&j->link.k.tx, SX_REC_EOS, 0, b.buf + b.len, 0, &len, err));
	b.len += len;
	SX_GUARD(lb_flush(&b, err));
	SX_GUARD(await_eos(j, err));
	rc = 0;
out:
	target_free(&t);
	free(b.buf);
	return rc;
}

/* ---- the thread ------------------------------------------------------------ */

static void *out_main(void *arg)
{
	out_job *j = arg;
	sx_err err = {0};
	sx_send_stats st = {0};
	uint64_t t0 = sx_now_ns();
	int rc = j->type == SX_MSG_GET ? out_get(j, &st, &err) : out_list(j, &err);
	/* The paths asked for, one space between each (NUL on the wire). */
	char shown[512];
	size_t k = j->paths_len < sizeof(shown) - 1 ? j->paths_len : sizeof(shown) - 1;
	for (size_t i = 0; i < k; i++)
		shown[i] = j->paths[i] == 0 ? ' ' : (char)j->paths[i];
	shown[k] = '\0';
	sx_log(rc == 0 ? "info" : "error", j->type == SX_MSG_GET ? "get" : "ls",
	       "conn=%u peer=%s paths=%s files=%llu skipped=%llu bytes=%llu seconds=%.3f "
	       "result=%s cause=%s",
	       j->id, SX_LOGQ(j->link.ready ? j->link.k.peer_name : st.peer_name), SX_LOGQ(shown),
	       (unsigned long long)st.files_ok, (unsigned long long)st.files_skipped,
	       (unsigned long long)st.bytes, (double)(sx_now_ns() - t0) / 1e9,
	       SX_LOGT(rc == 0 ? "ok" : "failed"), SX_LOGQ(rc == 0 ? "" : err.msg));
	if (rc < 0)
		atomic_store(&j->sh->out_result, (int)err.cls);
	if (j->fd >= 0)
		close(j->fd);
	sx_link_free(&j->link);
	free(j->paths);
	shared *sh = j->sh;
	if (j->lu != NULL)
		sx_limits_leave(sh->lim, j->lu);
	free(j);
	atomic_fetch_sub(&sh->active, 1);
	atomic_fetch_sub(&sh->slots, 1);
	atomic_fetch_sub(&sh->inslot, 1);
	atomic_fetch_sub(&sh->outgoing, 1); /* last: sx_serve_run waits for it */
	return NULL;
}

int srv_out_start(server *s, conn *c, sx_err *err)
{
	out_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	*j = (out_job){.sh = s->sh,
		       .cfg = s->cfg,
		       .fd = c->fd,
		       .id = c->id,
		       .type = c->req_type,
		       .flags = c->req_flags,
		       .chunk = c->req_chunk,
		       .paths = c->req,
		       .paths_len = c->req_len,
		       .lu = c->lu};
	/* The identity's connection is the thread's too (the loop's own count
	 * goes when it lets go of the connection). */
	if (j->lu != NULL)
		sx_limits_hold(s->sh->lim, j->lu);
	memcpy(j->addr, c->addr, sizeof(j->addr));
	sx_link_move(&j->link, &c->link);
	/* Held by the thread until it ends. */
	atomic_fetch_add(&s->sh->active, 1);
	atomic_fetch_add(&s->sh->slots, 1);
	atomic_fetch_add(&s->sh->inslot, 1);
	atomic_fetch_add(&s->sh->outgoing, 1);
	pthread_attr_t attr;
	pthread_t th;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&th, &attr, out_main, j);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		sx_link_move(&c->link, &j->link);
		if (j->lu != NULL)
			sx_limits_leave(s->sh->lim, j->lu);
		free(j);
		atomic_fetch_sub(&s->sh->active, 1);
		atomic_fetch_sub(&s->sh->slots, 1);
		atomic_fetch_sub(&s->sh->inslot, 1);
		atomic_fetch_sub(&s->sh->outgoing, 1);
		return sx_fail_errno(err, SX_E_OTHER, e, "cannot start a thread to send");
	}
	sx_io_file_remove(s->io, c->fd);
	c->fd = -1;
	c->req = NULL;
	c->handed = true;
	return 0;
}

void srv_out_drain(shared *sh, volatile sig_atomic_t *stop, bool finish)
{
	struct timespec ts = {0, 10000000};
	while (finish && atomic_load(&sh->outgoing) > 0 && !(stop && *stop))
		nanosleep(&ts, NULL);
	if (atomic_load(&sh->outgoing) == 0)
		return;
	atomic_store(&sh->stop, true);
	while (atomic_load(&sh->outgoing) > 0)
		nanosleep(&ts, NULL);
}
