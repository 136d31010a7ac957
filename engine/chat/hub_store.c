/* engine/chat: the hub's transcript, the certificates of authors, and the
 * rate bucket of an identity.
 *
 * The transcript (DIR/transcript.jsonl, role server) is read through a
 * strict verifier at start: it rebuilds every conversation's head and every
 * author's last seq, so a replayed message is refused across restarts too.
 * A line that does not verify stops the server from starting, naming the
 * line; a last line without its newline (a write cut by a crash) is cut
 * away with a warning. Each line is appended with one write and flushed
 * (fdatasync) before anything it records is relayed. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/sx_state.h"
#include "common/sx_util.h"
#include "engine/chat/hub_int.h"

#define TR_NAME "transcript.jsonl"

int64_t hub_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the rate bucket ------------------------------------------------------ */

bool hub_rate_take(hub_bucket *b, uint32_t rate, uint64_t now_ns)
{
	uint64_t cap = 2ull * rate * 1000;
	if (!b->primed) {
		b->milli = cap;
		b->last_ns = now_ns;
		b->primed = true;
	}
	if (now_ns > b->last_ns) {
		uint64_t dt = now_ns - b->last_ns;
		if (dt > 100ull * 1000000000u)
			dt = 100ull * 1000000000u;
		/* rate tokens a second: rate * 1000 thousandths per 1e9 ns */
		uint64_t add = dt * rate / 1000000u;
		b->milli = b->milli + add > cap ? cap : b->milli + add;
		b->last_ns = now_ns;
	}
	if (b->milli < 1000)
		return false;
	b->milli -= 1000;
	return true;
}

/* ---- the transcript ------------------------------------------------------- */

/* One line and its newline, one write, flushed; *at (may be NULL) gets
 * where it went (the file is ours alone: flock, one thread). */
static int tr_write(int fd, const char *s, size_t len, uint64_t *at, sx_err *err)
{
	char *buf = malloc(len + 1);
	if (buf == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memcpy(buf, s, len);
	buf[len] = '\n';
	struct stat st;
	ssize_t n = fstat(fd, &st) == 0 ? write(fd, buf, len + 1) : -1;
	int e = errno;
	free(buf);
	if (n != (ssize_t)(len + 1)) {
		/* A short write (a full disk) is cut back, so that the next line
		 * does not continue a partial one. */
		if (n > 0 && ftruncate(fd, st.st_size) < 0)
			sx_log("error", "chat_transcript", "reason=%s", SX_LOGQ(strerror(errno)));
		return sx_fail_errno(err, SX_E_IO, n < 0 ? e : ENOSPC,
				     "the server's chat transcript cannot be written");
	}
	if (fdatasync(fd) < 0)
		return sx_fail_errno(err, SX_E_IO, errno,
				     "the server's chat transcript cannot be flushed");
	if (at != NULL)
		*at = (uint64_t)st.st_size;
	return 0;
}

int hub_tr_append(sx_chat_hub *h, const sx_chat_line *l, char **keep, sx_err *err)
{
	char *s;
	size_t len;
	if (keep != NULL)
		*keep = NULL;
	uint64_t at = 0;
	if (sx_chat_line_encode(l, &s, &len, err) < 0)
		return -1;
	int rc = tr_write(h->tr_fd, s, len, &at, err);
	if (rc == 0 && l->kind == SX_CHAT_L_MSG)
		rc = hub_ix_add(&h->ix, l->post.conv, l->post.n, at, len, err);
	if (rc == 0 && keep != NULL)
		*keep = s;
	else
		free(s);
	return rc;
}

/* A new transcript: its first line. */
static int tr_first(sx_chat_hub *h, sx_err *err)
{
	sx_chat_line l = {.kind = SX_CHAT_L_TRANSCRIPT, .server = true, .time_ms = hub_now_ms()};
	sx_err why = {0};
	const char *owner = h->env.id->name;
	if (sx_chat_name_check(owner, strlen(owner), &why) < 0)
		owner = "server"; /* the server's CN is not a chat name */
	snprintf(l.owner, sizeof(l.owner), "%.*s", SX_CHAT_NAME_MAX, owner);
	char *s;
	size_t len;
	if (sx_chat_line_encode(&l, &s, &len, err) < 0)
		return -1;
	int rc = sx_chat_ver_line(h->ver, s, len, NULL, err);
	if (rc == 0)
		rc = tr_write(h->tr_fd, s, len, NULL, err);
	free(s);
	return rc;
}

/* Every line of the existing file through the verifier. */
static int tr_replay(sx_chat_hub *h, size_t size, sx_err *err)
{
	char *buf = malloc(size + 1);
	sx_chat_line *l = calloc(1, sizeof(*l));
	size_t have = 0, at = 0, line = 0;
	int rc = -1;
	SX_ENSURE(buf != NULL && l != NULL, err, SX_E_OTHER, "out of memory");
	while (have < size) {
		ssize_t n = pread(h->tr_fd, buf + have, size - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		SX_ENSURE(n > 0, err, SX_E_IO, "%s: a read failed", h->tr_path);
		have += (size_t)n;
	}
	while (at < size) {
		char *nl = memchr(buf + at, '\n', size - at);
		line++;
		if (nl == NULL) {
			sx_log("warn", "chat_transcript", "path=%s line=%zu reason=%s",
			       SX_LOGQ(h->tr_path), line,
			       SX_LOGQ("the last line was cut by a crash: it is removed"));
			SX_ENSURE(ftruncate(h->tr_fd, (off_t)at) == 0 && fdatasync(h->tr_fd) == 0,
				  err, SX_E_IO, "%s cannot be cut to its last whole line",
				  h->tr_path);
			break;
		}
		size_t len = (size_t)(nl - buf - at);
		int r = sx_chat_ver_line(h->ver, buf + at, len, l, err);
		if (r == 0 && l->kind == SX_CHAT_L_MSG)
			r = hub_ix_add(&h->ix, l->post.conv, l->post.n, at, len, err);
		sx_chat_line_free(l);
		if (r < 0) {
			sx_err_prefix(err, "%s line %zu does not verify: ", h->tr_path, line);
			goto out;
		}
		at = (size_t)(nl - buf) + 1;
	}
	rc = line == 0 ? tr_first(h, err) : 0;
out:
	free(l);
	free(buf);
	return rc;
}

int hub_tr_open(sx_chat_hub *h, sx_err *err)
{
	struct stat st;
	if (h->cfg.dir != NULL)
		snprintf(h->dir, sizeof(h->dir), "%s", h->cfg.dir);
	else
		SX_GUARD(sx_state_dir(h->dir, sizeof(h->dir), "chat-server", err));
	SX_GUARD(sx_mkdirs(h->dir, 0700, err));
	snprintf(h->tr_path, sizeof(h->tr_path), "%s/" TR_NAME, h->dir);
	h->tr_fd = open(h->tr_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (h->tr_fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot open %s", h->tr_path);
	if (flock(h->tr_fd, LOCK_EX | LOCK_NB) < 0)
		return sx_fail(err, SX_E_IO,
			       "the transcript %s is in use by another sxfer chat/serve",
			       h->tr_path);
	SX_GUARD(sx_chat_ver_new(&h->ver, &h->pol, NULL, err));
	sx_chat_ver_set_strict(h->ver, true);
	SX_ENSURE(fstat(h->tr_fd, &st) == 0, err, SX_E_IO, "cannot stat %s", h->tr_path);
	SX_GUARD(tr_replay(h, (size_t)st.st_size, err));
	return 0;
out:
	return -1;
}

void hub_tr_close(sx_chat_hub *h)
{
	if (h->tr_fd >= 0)
		close(h->tr_fd);
	h->tr_fd = -1;
	sx_chat_ver_free(h->ver);
	h->ver = NULL;
	hub_ix_free(&h->ix);
}

/* ---- certificates ----------------------------------------------------------- */

typedef struct ders {
	uint8_t *p[SX_CHAT_CHAIN_MAX];
	size_t len[SX_CHAT_CHAIN_MAX];
	size_t n;
} ders;

static void ders_free(ders *d)
{
	for (size_t i = 0; i < d->n; i++)
		OPENSSL_free(d->p[i]);
	d->n = 0;
}

static int ders_of(STACK_OF(X509) * chain, ders *d, sx_err *err)
{
	int n = chain != NULL ? sk_X509_num(chain) : 0;
	memset(d, 0, sizeof(*d));
	if (n < 1 || n > SX_CHAT_CHAIN_MAX)
		return sx_fail(err, SX_E_AUTH, "a chain of %d certificates (1 to %d are relayed)",
			       n, SX_CHAT_CHAIN_MAX);
	for (int i = 0; i < n; i++) {
		unsigned char *p = NULL;
		int len = i2d_X509(sk_X509_value(chain, i), &p);
		if (len <= 0 || (size_t)len > SX_CHAT_CERT_MAX) {
			OPENSSL_free(p);
			ders_free(d);
			return sx_fail(err, SX_E_AUTH,
				       "a certificate of the chain cannot be relayed");
		}
		d->p[d->n] = p;
		d->len[d->n++] = (size_t)len;
	}
	return 0;
}

static int cert_line_of(const uint8_t fp[SX_HASH_LEN], const ders *d, char **line, sx_err *err)
{
	sx_chat_line l = {.kind = SX_CHAT_L_CERT, .ncerts = d->n};
	size_t len;
	memcpy(l.fp, fp, SX_HASH_LEN);
	for (size_t i = 0; i < d->n; i++) {
		l.certs[i] = d->p[i]; /* borrowed: not freed through l */
		l.cert_len[i] = d->len[i];
	}
	return sx_chat_line_encode(&l, line, &len, err);
}

int hub_cert_line(sx_chat_hub *h, const uint8_t fp[SX_HASH_LEN], char **line, sx_err *err)
{
	ders d;
	*line = NULL;
	if (ders_of(sx_chat_ver_chain(h->ver, fp), &d, err) < 0)
		return -1;
	int rc = cert_line_of(fp, &d, line, err);
	ders_free(&d);
	return rc;
}

int hub_cert_known(sx_chat_hub *h, hconn *c, sx_err *err)
{
	char *line = NULL;
	if (sx_chat_ver_has_cert(h->ver, c->fp))
		return 0;
	if (sx_chat_ver_cert(h->ver, c->fp, c->link.k.peer_chain, err) < 0)
		return -1;
	int rc = hub_cert_line(h, c->fp, &line, err);
	if (rc == 0)
		rc = tr_write(h->tr_fd, line, strlen(line), NULL, err);
	free(line);
	return rc;
}

int hub_cert_to(sx_chat_hub *h, hconn *c, const uint8_t fp[SX_HASH_LEN], sx_err *err)
{
	for (size_t i = 0; i < c->ncerts; i++)
		if (memcmp(c->certs[i], fp, SX_HASH_LEN) == 0)
			return 0;
	ders d;
	if (ders_of(sx_chat_ver_chain(h->ver, fp), &d, err) < 0)
		return -1;
	sx_chat_msg *m = h->mout;
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_CERT;
	memcpy(m->fp, fp, SX_HASH_LEN);
	for (size_t i = 0; i < d.n; i++) {
		m->certs[i] = d.p[i];
		m->cert_len[i] = d.len[i];
	}
	m->ncerts = d.n;
	int rc = hub_send(h, c, m, err);
	ders_free(&d);
	if (rc == 0 && sx_grow(&c->certs, &c->certs_cap, c->ncerts + 1, sizeof(*c->certs), 1u << 16,
			       "certificates sent", err) == 0)
		memcpy(c->certs[c->ncerts++], fp, SX_HASH_LEN);
	return rc;
}
