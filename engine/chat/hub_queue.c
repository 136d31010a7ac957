/* engine/chat: what waits on the server for an identity that is not
 * connected (messages and receipts of its direct conversations).
 *
 * One file per identity, DIR/queue/NAME.jsonl (0600), one entry a line:
 *
 *   <queued: unix milliseconds> <space> <a transcript line>
 *
 * the transcript line as sx_chat_line_encode writes it: "cert" (an author's
 * chain, before the first entry that names its fingerprint in this file),
 * "msg" and "receipt" (the entries that wait: counted against the limit,
 * and expired after the queue's age), and "gap" (written when expired
 * entries are dropped to make room: messages of a conversation up to n
 * that will never come; never counted, never expired). Lines are appended
 * with one write each and flushed (fdatasync) before the author is told
 * its message was accepted; a rewrite goes through a temporary renamed
 * into place. A last line cut by a crash is cut away at start.
 *
 * In memory: per identity, the time of each waiting entry (the limits are
 * checked without reading the file) and the fingerprints its file holds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/chat/hub_int.h"

#define Q_SUFFIX   ".jsonl"
#define Q_FILE_MAX ((size_t)1 << 31)

static int q_fname(const char *name, char *out, size_t cap)
{
	return (size_t)snprintf(out, cap, "%s" Q_SUFFIX, name) < cap ? 0 : -1;
}

/* The whole file (NUL terminated); *len 0 and NULL when there is none. */
static int q_slurp(int dirfd, const char *fname, char **buf, size_t *len, sx_err *err)
{
	struct stat st;
	*buf = NULL;
	*len = 0;
	int fd = openat(dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : sx_fail_errno(err, SX_E_IO, errno, "queue %s", fname);
	int rc = -1;
	SX_ENSURE(fstat(fd, &st) == 0, err, SX_E_IO, "queue %s: cannot stat it", fname);
	SX_ENSURE((size_t)st.st_size < Q_FILE_MAX, err, SX_E_IO, "queue %s is too large", fname);
	*buf = malloc((size_t)st.st_size + 1);
	SX_ENSURE(*buf != NULL, err, SX_E_OTHER, "out of memory");
	while (*len < (size_t)st.st_size) {
		ssize_t n = read(fd, *buf + *len, (size_t)st.st_size - *len);
		if (n < 0 && errno == EINTR)
			continue;
		SX_ENSURE(n > 0, err, SX_E_IO, "queue %s: a read failed", fname);
		*len += (size_t)n;
	}
	(*buf)[*len] = '\0';
	rc = 0;
out:
	close(fd);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

/* One entry: its time and its line, decoded (free l after). */
static int q_parse(const char *s, size_t len, int64_t *t, sx_chat_line *l, sx_err *err)
{
	const char *sp = memchr(s, ' ', len);
	char num[24];
	uint64_t v;
	memset(l, 0, sizeof(*l));
	if (sp == NULL || sp == s || (size_t)(sp - s) >= sizeof(num))
		return sx_fail(err, SX_E_INTEGRITY, "an entry without its time");
	memcpy(num, s, (size_t)(sp - s));
	num[sp - s] = '\0';
	if (sx_parse_u64(num, &v) < 0 || v > INT64_MAX)
		return sx_fail(err, SX_E_INTEGRITY, "an entry's time is not a number");
	*t = (int64_t)v;
	return sx_chat_line_decode(sp + 1, len - (size_t)(sp - s) - 1, l, err);
}

static bool q_has_fp(const hub_queue *q, const uint8_t fp[SX_HASH_LEN])
{
	for (size_t i = 0; i < q->nfps; i++)
		if (memcmp(q->fps[i], fp, SX_HASH_LEN) == 0)
			return true;
	return false;
}

static int q_add_fp(hub_queue *q, const uint8_t fp[SX_HASH_LEN], sx_err *err)
{
	if (q_has_fp(q, fp))
		return 0;
	if (sx_grow((void **)&q->fps, &q->fcap, q->nfps + 1, sizeof(*q->fps), 1u << 20,
		    "certificates", err) < 0)
		return -1;
	memcpy(q->fps[q->nfps++], fp, SX_HASH_LEN);
	return 0;
}

static int q_add_time(hub_queue *q, int64_t t, sx_err *err)
{
	if (sx_grow((void **)&q->times, &q->cap, q->n + 1, sizeof(*q->times), 1u << 24,
		    "queued messages", err) < 0)
		return -1;
	q->times[q->n++] = t;
	return 0;
}

static hub_queue *q_get(hub_queues *qs, const char *name, sx_err *err)
{
	hub_queue *q = hub_q_find(qs, name);
	if (q != NULL)
		return q;
	if (sx_grow((void **)&qs->q, &qs->cap, qs->n + 1, sizeof(*qs->q), 1u << 20, "queues", err) <
	    0)
		return NULL;
	q = &qs->q[qs->n++];
	memset(q, 0, sizeof(*q));
	snprintf(q->name, sizeof(q->name), "%s", name);
	return q;
}

hub_queue *hub_q_find(hub_queues *qs, const char *name)
{
	for (size_t i = 0; i < qs->n; i++)
		if (strcmp(qs->q[i].name, name) == 0)
			return &qs->q[i];
	return NULL;
}

static void q_clear(hub_queue *q)
{
	q->n = 0;
	q->nfps = 0;
	q->busy = false;
}

/* name's file into memory again (a last line cut by a crash is cut away). */
static int q_load(hub_queues *qs, const char *name, sx_err *err)
{
	char fname[SX_CHAT_NAME_MAX + 16], *buf;
	size_t len;
	hub_queue *q = q_get(qs, name, err);
	if (q == NULL || q_fname(name, fname, sizeof(fname)) < 0)
		return -1;
	q_clear(q);
	SX_GUARD(q_slurp(qs->dirfd, fname, &buf, &len, err));
	size_t at = 0, line = 0;
	int rc = 0;
	while (rc == 0 && at < len) {
		char *nl = memchr(buf + at, '\n', len - at);
		line++;
		if (nl == NULL) {
			sx_log("warn", "chat_queue", "name=%s line=%zu reason=%s", SX_LOGQ(name),
			       line, SX_LOGQ("a cut last line is removed"));
			int fd = openat(qs->dirfd, fname, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0 || ftruncate(fd, (off_t)at) < 0 || fdatasync(fd) < 0)
				rc = sx_fail_errno(err, SX_E_IO, errno, "queue %s", fname);
			if (fd >= 0)
				close(fd);
			break;
		}
		sx_chat_line l;
		int64_t t;
		rc = q_parse(buf + at, (size_t)(nl - buf - at), &t, &l, err);
		if (rc == 0 && l.kind == SX_CHAT_L_CERT)
			rc = q_add_fp(q, l.fp, err);
		else if (rc == 0 && (l.kind == SX_CHAT_L_MSG || l.kind == SX_CHAT_L_RECEIPT))
			rc = q_add_time(q, t, err);
		sx_chat_line_free(&l);
		if (rc < 0)
			sx_err_prefix(err, "queue %s line %zu: ", fname, line);
		at = (size_t)(nl - buf) + 1;
	}
	free(buf);
	return rc;
out:
	return -1;
}

int hub_q_open(hub_queues *qs, const char *dir, uint32_t max, uint64_t age_s, sx_err *err)
{
	char path[4200];
	memset(qs, 0, sizeof(*qs));
	qs->dirfd = -1;
	qs->max = max;
	qs->age_ms = (int64_t)age_s * 1000;
	SX_ENSURE((size_t)snprintf(path, sizeof(path), "%s/queue", dir) < sizeof(path), err,
		  SX_E_USAGE, "--chat-dir: the path is too long");
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot make %s", path);
	qs->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (qs->dirfd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot open %s", path);
	int dfd = dup(qs->dirfd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (d == NULL)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot read %s", path);
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name), sl = strlen(Q_SUFFIX);
		if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
			(void)unlinkat(qs->dirfd, e->d_name, 0);
			continue;
		}
		if (n <= sl || strcmp(e->d_name + n - sl, Q_SUFFIX) != 0 ||
		    n - sl > SX_CHAT_NAME_MAX)
			continue;
		char name[SX_CHAT_NAME_MAX + 1];
		sx_err why = {0};
		memcpy(name, e->d_name, n - sl);
		name[n - sl] = '\0';
		if (sx_chat_name_check(name, n - sl, &why) < 0)
			continue;
		rc = q_load(qs, name, err);
	}
	closedir(d);
	return rc;
out:
	return -1;
}

void hub_q_close(hub_queues *qs)
{
	for (size_t i = 0; i < qs->n; i++) {
		free(qs->q[i].times);
		free(qs->q[i].fps);
	}
	free(qs->q);
	if (qs->dirfd >= 0)
		close(qs->dirfd);
	memset(qs, 0, sizeof(*qs));
	qs->dirfd = -1;
}

static bool q_expired(const hub_queues *qs, int64_t t, int64_t now_ms)
{
	return now_ms - t > qs->age_ms;
}

size_t hub_q_live(const hub_queues *qs, const hub_queue *q, int64_t now_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < q->n; i++)
		if (!q_expired(qs, q->times[i], now_ms))
			n++;
	return n;
}

/* Appends s (one write: "TIME LINE\n"). */
static int q_write(int fd, int64_t t, const char *line, sx_err *err)
{
	char head[24];
	size_t hl = (size_t)snprintf(head, sizeof(head), "%lld ", (long long)t);
	size_t ll = strlen(line);
	char *buf = malloc(hl + ll + 1);
	if (buf == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memcpy(buf, head, hl);
	memcpy(buf + hl, line, ll);
	buf[hl + ll] = '\n';
	struct stat st;
	ssize_t n = fstat(fd, &st) == 0 ? write(fd, buf, hl + ll + 1) : -1;
	int e = errno;
	free(buf);
	if (n != (ssize_t)(hl + ll + 1)) {
		/* cut a short write back: the next line must not continue it */
		if (n > 0 && ftruncate(fd, st.st_size) < 0)
			e = errno;
		return sx_fail_errno(err, SX_E_IO, n < 0 ? e : ENOSPC, "a queue write failed");
	}
	return 0;
}

int hub_q_push(hub_queues *qs, const char *name, const uint8_t fp[SX_HASH_LEN],
	       const char *cert_line, const char *line, int64_t now_ms, sx_err *err)
{
	char fname[SX_CHAT_NAME_MAX + 16];
	hub_queue *q = q_get(qs, name, err);
	int fd = -1, rc = -1;
	if (q == NULL || q_fname(name, fname, sizeof(fname)) < 0)
		return -1;
	struct stat st;
	bool fresh = fstatat(qs->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0;
	fd = openat(qs->dirfd, fname, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	SX_ENSURE(fd >= 0, err, SX_E_IO, "cannot open the queue of %s", name);
	if (fresh)
		q_clear(q);
	if (!q_has_fp(q, fp) && cert_line != NULL) {
		SX_GUARD(q_write(fd, now_ms, cert_line, err));
		SX_GUARD(q_add_fp(q, fp, err));
	}
	SX_GUARD(q_write(fd, now_ms, line, err));
	SX_ENSURE(fdatasync(fd) == 0, err, SX_E_IO, "the queue of %s cannot be flushed", name);
	if (fresh)
		(void)fsync(qs->dirfd);
	SX_GUARD(q_add_time(q, now_ms, err));
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int hub_q_read(hub_queues *qs, const char *name, int64_t now_ms, hub_q_cb cb, void *ctx,
	       sx_err *err)
{
	char fname[SX_CHAT_NAME_MAX + 16], *buf = NULL;
	size_t len, at = 0, line = 0;
	int rc = -1;
	hub_queue *q = hub_q_find(qs, name);
	if (q == NULL || q_fname(name, fname, sizeof(fname)) < 0)
		return 0;
	SX_GUARD(q_slurp(qs->dirfd, fname, &buf, &len, err));
	q->busy = true;
	while (at < len) {
		char *nl = memchr(buf + at, '\n', len - at);
		if (nl == NULL)
			break;
		line++;
		sx_chat_line l;
		int64_t t;
		int r = q_parse(buf + at, (size_t)(nl - buf - at), &t, &l, err);
		bool waits = l.kind == SX_CHAT_L_MSG || l.kind == SX_CHAT_L_RECEIPT;
		if (r == 0)
			r = cb(ctx, &l, t, waits && q_expired(qs, t, now_ms), err);
		sx_chat_line_free(&l);
		if (r < 0) {
			sx_err_prefix(err, "queue %s line %zu: ", fname, line);
			goto out;
		}
		at = (size_t)(nl - buf) + 1;
	}
	q->busy_len = at;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* name's file without its first skip bytes (written to a temporary,
 * flushed, renamed), then read into memory again. */
static int q_drop_head(hub_queues *qs, const char *name, size_t skip, sx_err *err)
{
	char fname[SX_CHAT_NAME_MAX + 16], tmp[SX_CHAT_NAME_MAX + 24], *buf = NULL;
	size_t len;
	int fd = -1, rc = -1;
	if (q_fname(name, fname, sizeof(fname)) < 0)
		return sx_fail(err, SX_E_OTHER, "a queue's name is too long");
	snprintf(tmp, sizeof(tmp), "%s.tmp", fname);
	SX_GUARD(q_slurp(qs->dirfd, fname, &buf, &len, err));
	SX_ENSURE(len >= skip, err, SX_E_IO, "the queue of %s shrank while it was delivered", name);
	fd = openat(qs->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	SX_ENSURE(fd >= 0, err, SX_E_IO, "cannot write the queue of %s", name);
	SX_ENSURE(sx_write_all(fd, buf + skip, len - skip) == 0 && fdatasync(fd) == 0, err, SX_E_IO,
		  "cannot write the queue of %s", name);
	SX_ENSURE(renameat(qs->dirfd, tmp, qs->dirfd, fname) == 0, err, SX_E_IO,
		  "cannot replace the queue of %s", name);
	(void)fsync(qs->dirfd);
	rc = q_load(qs, name, err);
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		(void)unlinkat(qs->dirfd, tmp, 0);
	free(buf);
	return rc;
}

void hub_q_done(hub_queues *qs, const char *name)
{
	char fname[SX_CHAT_NAME_MAX + 16];
	struct stat st;
	sx_err e = {0};
	hub_queue *q = hub_q_find(qs, name);
	if (q == NULL || q_fname(name, fname, sizeof(fname)) < 0)
		return;
	/* Entries queued while the delivery was under way (its connection
	 * was ending) were not part of it: they stay. */
	if (fstatat(qs->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (size_t)st.st_size > q->busy_len) {
		if (q_drop_head(qs, name, q->busy_len, &e) < 0) {
			sx_log("warn", "chat_queue", "name=%s reason=%s", SX_LOGQ(name),
			       SX_LOGQ(e.msg));
			q->busy = false; /* all of it is delivered again next time */
		}
		return;
	}
	if (unlinkat(qs->dirfd, fname, 0) == 0)
		(void)fsync(qs->dirfd);
	q_clear(q);
}

size_t hub_q_sweep(hub_queues *qs, int64_t now_ms)
{
	char fname[SX_CHAT_NAME_MAX + 16];
	size_t removed = 0;
	for (size_t i = 0; i < qs->n; i++) {
		hub_queue *q = &qs->q[i];
		if (q->busy || q->n == 0 || !q_expired(qs, q->times[q->n - 1], now_ms) ||
		    q_fname(q->name, fname, sizeof(fname)) < 0)
			continue;
		if (unlinkat(qs->dirfd, fname, 0) < 0 && errno != ENOENT)
			continue;
		sx_log("info", "chat_queue", "name=%s expired=%zu action=removed", SX_LOGQ(q->name),
		       q->n);
		q_clear(q);
		removed++;
	}
	if (removed > 0)
		(void)fsync(qs->dirfd);
	return removed;
}

void hub_q_abort(hub_queues *qs, const char *name)
{
	hub_queue *q = hub_q_find(qs, name);
	if (q != NULL)
		q->busy = false;
}

/* ---- making room: expired entries become GAP lines --------------------- */

typedef struct q_gap {
	char conv[SX_CHAT_CONV_MAX + 1];
	uint64_t n, count;
} q_gap;

typedef struct q_rw {
	hub_queues *qs;
	q_gap gaps[HUB_GAPS_MAX];
	size_t ngaps;
	char *keep; /* the entries kept, as written */
	size_t keep_len, keep_cap;
} q_rw;

static int rw_gap(q_rw *w, const char *conv, uint64_t n, uint64_t count, sx_err *err)
{
	for (size_t i = 0; i < w->ngaps; i++)
		if (strcmp(w->gaps[i].conv, conv) == 0) {
			if (n > w->gaps[i].n)
				w->gaps[i].n = n;
			w->gaps[i].count += count;
			return 0;
		}
	if (w->ngaps == HUB_GAPS_MAX)
		return sx_fail(err, SX_E_OTHER, "too many conversations with expired messages");
	q_gap *g = &w->gaps[w->ngaps++];
	snprintf(g->conv, sizeof(g->conv), "%s", conv);
	g->n = n;
	g->count = count;
	return 0;
}

static int rw_line(void *ctx, const sx_chat_line *l, int64_t t, bool expired, sx_err *err)
{
	q_rw *w = ctx;
	if (expired && l->kind == SX_CHAT_L_MSG)
		return rw_gap(w, l->post.conv, l->post.n, 1, err);
	if (expired)
		return 0; /* a receipt: the next session's says as much */
	if (l->kind == SX_CHAT_L_GAP)
		return rw_gap(w, l->conv, l->n, 0, err);
	char *s;
	size_t len;
	if (sx_chat_line_encode(l, &s, &len, err) < 0)
		return -1;
	int rc = sx_grow((void **)&w->keep, &w->keep_cap, w->keep_len + len + 32, 1, Q_FILE_MAX,
			 "a queue", err);
	if (rc == 0) {
		w->keep_len += (size_t)snprintf(w->keep + w->keep_len, 32, "%lld ", (long long)t);
		memcpy(w->keep + w->keep_len, s, len);
		w->keep_len += len;
		w->keep[w->keep_len++] = '\n';
	}
	free(s);
	return rc;
}

/* name's file without its expired entries, a GAP line per conversation
 * they belonged to first (written to a temporary, flushed, renamed). */
static int q_rewrite(hub_queues *qs, const char *name, int64_t now_ms, sx_err *err)
{
	char fname[SX_CHAT_NAME_MAX + 16], tmp[SX_CHAT_NAME_MAX + 24];
	q_rw w = {.qs = qs};
	int fd = -1, rc = -1;
	hub_queue *q = hub_q_find(qs, name);
	if (q == NULL || q_fname(name, fname, sizeof(fname)) < 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", fname);
	SX_GUARD(hub_q_read(qs, name, now_ms, rw_line, &w, err));
	q->busy = false;
	fd = openat(qs->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	SX_ENSURE(fd >= 0, err, SX_E_IO, "cannot write the queue of %s", name);
	for (size_t i = 0; i < w.ngaps; i++) {
		sx_chat_line g = {.kind = SX_CHAT_L_GAP, .n = w.gaps[i].n};
		char *s;
		size_t len;
		snprintf(g.conv, sizeof(g.conv), "%s", w.gaps[i].conv);
		if (w.gaps[i].count > 0)
			snprintf(g.reason, sizeof(g.reason),
				 "%llu messages waited longer than %llu seconds and expired",
				 (unsigned long long)w.gaps[i].count,
				 (unsigned long long)(qs->age_ms / 1000));
		else
			snprintf(g.reason, sizeof(g.reason), "messages expired in the queue");
		SX_GUARD(sx_chat_line_encode(&g, &s, &len, err));
		int r = q_write(fd, now_ms, s, err);
		free(s);
		SX_GUARD(r);
	}
	SX_ENSURE(sx_write_all(fd, w.keep, w.keep_len) == 0 && fdatasync(fd) == 0, err, SX_E_IO,
		  "cannot write the queue of %s", name);
	SX_ENSURE(renameat(qs->dirfd, tmp, qs->dirfd, fname) == 0, err, SX_E_IO,
		  "cannot replace the queue of %s", name);
	(void)fsync(qs->dirfd);
	rc = q_load(qs, name, err);
	sx_log("info", "chat_queue", "name=%s action=expired conversations=%zu waiting=%zu",
	       SX_LOGQ(name), w.ngaps, q->n);
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		(void)unlinkat(qs->dirfd, tmp, 0);
	free(w.keep);
	return rc;
}

int hub_q_room(hub_queues *qs, const char *name, int64_t now_ms, bool *room, size_t *waiting,
	       sx_err *err)
{
	hub_queue *q = hub_q_find(qs, name);
	*room = true;
	*waiting = 0;
	if (q == NULL)
		return 0;
	*waiting = q->n;
	if (q->n < qs->max)
		return 0;
	/* a queue being delivered is not rewritten under its delivery */
	if (!q->busy && hub_q_live(qs, q, now_ms) < q->n) {
		if (q_rewrite(qs, name, now_ms, err) < 0)
			return -1;
		q = hub_q_find(qs, name);
		*waiting = q->n;
	}
	*room = q->n < qs->max;
	return 0;
}
