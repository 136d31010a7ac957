/* The participant's transcript: one JSON line per thing kept, appended
 * after the verifier took it, held with a lock for the whole session;
 * read again through the verifier when a session starts. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "common/sx_state.h"
#include "common/sx_util.h"
#include "engine/chat/client_int.h"

static int write_line(chat_client *c, const char *s, size_t len, sx_err *err)
{
	char *buf = malloc(len + 1);
	if (buf == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memcpy(buf, s, len);
	buf[len] = '\n';
	int rc = 0;
	if (sx_write_all(c->tfd, buf, len + 1) < 0 || fdatasync(c->tfd) < 0)
		rc = sx_fail_errno(err, SX_E_IO, errno, "cannot append to the transcript %s",
				   c->tpath);
	free(buf);
	return rc;
}

int chat_file_append(chat_client *c, const sx_chat_line *l, sx_err *err)
{
	char *s = NULL;
	size_t len = 0;
	if (sx_chat_line_encode(l, &s, &len, err) < 0)
		return -1;
	int rc = write_line(c, s, len, err);
	if (rc == 0 && c->cfg->json) {
		fwrite(s, 1, len, c->cfg->out);
		fputc('\n', c->cfg->out);
		fflush(c->cfg->out);
	}
	free(s);
	return rc;
}

int chat_own_cert(chat_client *c, sx_err *err)
{
	STACK_OF(X509) *chain = c->cfg->id->chain;
	sx_chat_line *l = c->line;
	int n = sk_X509_num(chain), rc = -1;
	if (sx_chat_ver_has_cert(c->ver, c->my_fp))
		return 0;
	SX_GUARD(sx_chat_ver_cert(c->ver, c->my_fp, chain, err));
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_CERT;
	memcpy(l->fp, c->my_fp, SX_HASH_LEN);
	for (int i = 0; i < n && i < SX_CHAT_CHAIN_MAX; i++) {
		unsigned char *der = NULL;
		int len = i2d_X509(sk_X509_value(chain, i), &der);
		SX_ENSURE(len > 0, err, SX_E_OTHER, "cannot encode this identity's certificate");
		l->certs[i] = der;
		l->cert_len[i] = (size_t)len;
		l->ncerts++;
	}
	rc = chat_file_append(c, l, err);
out:
	for (size_t i = 0; i < l->ncerts; i++)
		OPENSSL_free(l->certs[i]);
	l->ncerts = 0;
	return rc;
}

/* A new transcript's first line: whose it is. */
static int first_line(chat_client *c, sx_err *err)
{
	sx_chat_line *l = c->line;
	char *s = NULL;
	size_t len = 0;
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_TRANSCRIPT;
	memcpy(l->owner, c->me, sizeof(l->owner));
	l->time_ms = chat_now_ms();
	SX_GUARD(sx_chat_line_encode(l, &s, &len, err));
	SX_GUARD(sx_chat_ver_line(c->ver, s, len, NULL, err));
	SX_GUARD(write_line(c, s, len, err));
	free(s);
	return 0;
out:
	free(s);
	return -1;
}

/* The first line read back: this identity's transcript. */
static int check_owner(chat_client *c, const sx_chat_line *l, sx_err *err)
{
	if (l->kind != SX_CHAT_L_TRANSCRIPT || l->server || strcmp(l->owner, c->me) != 0)
		return sx_fail(err, SX_E_IO,
			       "the transcript %s is not %s's (its first line says %s, %s); give "
			       "another with --transcript FILE",
			       c->tpath, c->me, l->owner, l->server ? "server" : "participant");
	return 0;
}

/* Every line of text through the verifier; a cut last line is cut off. */
static int replay(chat_client *c, char *text, size_t len, sx_err *err)
{
	size_t keep = len, at = 0, no = 0;
	while (keep > 0 && text[keep - 1] != '\n')
		keep--;
	if (keep < len) {
		sx_log("warn", "chat_transcript_cut", "path=%s bytes=%zu reason=%s",
		       SX_LOGQ(c->tpath), len - keep,
		       SX_LOGQ("a last line without its newline (a cut write) is removed"));
		if (ftruncate(c->tfd, (off_t)keep) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "cannot cut the transcript %s",
					     c->tpath);
	}
	if (keep == 0)
		return first_line(c, err);
	sx_chat_line *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	int rc = 0;
	while (at < keep && rc == 0) {
		char *nl = memchr(text + at, '\n', keep - at);
		size_t n = (size_t)(nl - (text + at));
		no++;
		rc = sx_chat_ver_line(c->ver, text + at, n, no == 1 ? l : NULL, err);
		if (rc == 0 && no == 1)
			rc = check_owner(c, l, err);
		else if (rc < 0)
			sx_err_prefix(err, "the transcript %s, line %zu: ", c->tpath, no);
		if (no == 1)
			sx_chat_line_free(l);
		at += n + 1;
	}
	free(l);
	return rc;
}

static int read_all(chat_client *c, sx_err *err)
{
	struct stat st;
	if (fstat(c->tfd, &st) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot read the transcript %s",
				     c->tpath);
	if (st.st_size == 0)
		return first_line(c, err);
	size_t len = (size_t)st.st_size, got = 0;
	char *text = malloc(len + 1);
	if (text == NULL)
		return sx_fail(err, SX_E_OTHER, "the transcript %s does not fit in memory",
			       c->tpath);
	while (got < len) {
		ssize_t n = pread(c->tfd, text + got, len - got, (off_t)got);
		if (n <= 0) {
			free(text);
			return sx_fail_errno(err, SX_E_IO, n < 0 ? errno : EIO,
					     "cannot read the transcript %s", c->tpath);
		}
		got += (size_t)n;
	}
	int rc = replay(c, text, len, err);
	free(text);
	return rc;
}

int chat_file_open(chat_client *c, sx_err *err)
{
	const sx_chat_cfg *cfg = c->cfg;
	if (cfg->transcript != NULL) {
		SX_ENSURE(snprintf(c->tpath, sizeof(c->tpath), "%s", cfg->transcript) <
			      (int)sizeof(c->tpath),
			  err, SX_E_USAGE, "--transcript: the path is too long");
	} else {
		char dir[4096];
		if (sx_state_dir(dir, sizeof(dir), "chat", err) < 0) {
			sx_err_prefix(err, "where to keep the transcript (--transcript FILE): ");
			return -1;
		}
		SX_GUARD(sx_mkdirs(dir, 0700, err));
		SX_ENSURE(snprintf(c->tpath, sizeof(c->tpath), "%s/%s.jsonl", dir, c->me) <
			      (int)sizeof(c->tpath),
			  err, SX_E_IO, "the transcript's path is too long");
	}
	memcpy(c->res->transcript, c->tpath, sizeof(c->res->transcript));
	c->tfd = open(c->tpath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (c->tfd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot open the transcript %s",
				     c->tpath);
	if (flock(c->tfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK
			   ? sx_fail(err, SX_E_IO,
				     "the transcript %s is in use by another sxfer chat/serve",
				     c->tpath)
			   : sx_fail_errno(err, SX_E_IO, errno, "cannot lock the transcript %s",
					   c->tpath);
	return read_all(c, err);
out:
	return -1;
}

void chat_file_close(chat_client *c)
{
	if (c->tfd >= 0)
		close(c->tfd); /* and its lock */
	c->tfd = -1;
}

static int conv_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int chat_join_tips(chat_client *c, size_t budget, uint8_t **tips, size_t *len, uint16_t *n,
		   sx_err *err)
{
	const char **convs = NULL;
	size_t at = 0, nconvs = 0, cap = 0;
	const char *conv;
	int rc = -1;
	*tips = NULL;
	*len = 0;
	*n = 0;
	while ((conv = sx_chat_ver_next_conv(c->ver, &at)) != NULL) {
		uint64_t tip;
		uint8_t head[SX_HASH_LEN];
		sx_chat_ver_tip(c->ver, conv, &tip, head);
		if (sx_chat_conv_is_room(conv) || tip == 0)
			continue;
		SX_GUARD(sx_grow(&convs, &cap, nconvs + 1, sizeof(*convs), SX_CHAT_TIPS_MAX,
				 "direct conversations in the transcript", err));
		convs[nconvs++] = conv;
	}
	if (nconvs == 0) {
		rc = 0;
		goto out;
	}
	qsort(convs, nconvs, sizeof(*convs), conv_cmp);
	if (budget > SX_CHAT_TIPS_BYTES)
		budget = SX_CHAT_TIPS_BYTES;
	*tips = malloc(budget > 0 ? budget : 1);
	SX_ENSURE(*tips != NULL, err, SX_E_OTHER, "out of memory");
	sx_wbuf w = sx_wbuf_make(*tips, budget);
	for (size_t i = 0; i < nconvs; i++) {
		uint64_t tip;
		uint8_t head[SX_HASH_LEN];
		sx_chat_ver_tip(c->ver, convs[i], &tip, head);
		sx_chat_tip_put(&w, convs[i], tip);
		if (w.overflow)
			break;
		*len = w.len;
		(*n)++;
	}
	if (*n < nconvs)
		sx_log("warn", "chat_tips", "sent=%u held=%zu reason=%s", *n, nconvs,
		       SX_LOGQ("the rest do not fit in a JOIN: their missing messages are not "
			       "asked for"));
	rc = 0;
out:
	free(convs);
	return rc;
}
