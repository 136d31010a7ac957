/* The sender's side of resume and re-sending (docs/PROTOCOL.md, "Resume and
 * re-sending") against a crafted receiver: the real sender (sx_send_run, or
 * sx_send_serve for the server's side of get) on this thread, and in a
 * second thread a receiver that completes the genuine handshake and then
 * answers with chosen OFFERs. The receiver writes what it saw as a line of
 * events, rebuilds each file from the held prefix it offered and the DATA
 * it got, checks FILE_END roots, verifies BATCH signatures and signs
 * receipts, so a signed session ends as with the real server. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/channel/sx_link.h"
#include "engine/sign/sx_manifest.h"
#include "engine/sign/sx_sigsess.h"
#include "engine/transfer/send_int.h"
#include "engine/transfer/sx_transfer.h"
#include "engine/wire/sx_wire.h"
#include "pki/sx_pki.h"

#define LEAF	 65536u
#define RX_BUF	 (SX_REC_HDR_LEN + (1u << 20) + SX_REC_TAG_MAX)
#define LOG_MAX	 8192
#define MAXFILES 4

static char *work;
static unsigned send_threads; /* cfg.threads of run_send (0: one per core) */
static sx_identity srv_id, cli_id;

typedef struct tfile {
	const char *name;
	uint8_t *data;
	size_t len;
} tfile;

/* The receiver's script for one case and what it saw. */
typedef struct rx {
	/* script */
	tfile files[MAXFILES];
	int nfiles;
	/* fills the OFFER for a QUERY (NULL: NONE) */
	void (*offer)(struct rx *r, const sx_msg *q, sx_msg *o);
	bool defer;	 /* answer QUERYs only after all nfiles arrived and a pause */
	int cut_after;	 /* first connection: close after this many FILE_OKs (0: never) */
	int cut_data;	 /* first connection: close after this many DATA records (0: never) */
	int conns;	 /* connections to serve (0: 1) */
	bool client;	 /* the crafted peer is the TLS client (sxfer get) */
	int sock_client; /* with client: its connected socket */
	int lfd;
	/* seen */
	char log[LOG_MAX];
	bool early_begin; /* a file began before its OFFER was sent */
	char fail[600];
} rx;

static void logf_(rx *r, const char *fmt, ...) SX_PRINTF(2, 3);
static void logf_(rx *r, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(r->log);
	va_start(ap, fmt);
	vsnprintf(r->log + n, sizeof(r->log) - n, fmt, ap);
	va_end(ap);
}

static const tfile *find_file(rx *r, const uint8_t *p, size_t n)
{
	for (int i = 0; i < r->nfiles; i++)
		if (strlen(r->files[i].name) == n && memcmp(r->files[i].name, p, n) == 0)
			return &r->files[i];
	return NULL;
}

static void root_of(const uint8_t *d, size_t n, uint8_t root[SX_HASH_LEN])
{
	sx_filehash h;
	sx_err err = {0};
	if (sx_filehash_init(&h, LEAF, &err) < 0 || sx_filehash_update(&h, d, n, &err) < 0 ||
	    sx_filehash_final(&h, root, NULL, NULL, &err) < 0)
		abort();
	sx_filehash_free(&h);
}

/* ---- the receiver's connection ----------------------------------------- */

typedef struct conn {
	rx *r;
	int fd;
	sx_link link;
	sx_chan_ctx *ctx;
	uint8_t *buf;
	uint32_t chunk;
	bool sign;
	uint8_t tid[SX_TID_LEN];
	sx_sbatch batch;
	uint64_t nbatch;
	/* the file being received */
	const tfile *cur;
	uint8_t *content;
	uint64_t have, size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t file_id;
	int oks, datas;
	/* QUERYs not answered yet (defer) */
	sx_msg pending[MAXFILES];
	char pending_path[MAXFILES][64];
	int npending;
	uint32_t offered; /* OFFERs sent */
	uint32_t qid_of_file[MAXFILES];
} conn;

static int send_msg(conn *c, const sx_msg *m)
{
	uint8_t rec[8192];
	size_t len;
	sx_err err = {0};
	if (sx_link_seal_msg(&c->link, m, rec, sizeof(rec), &len, &err) < 0)
		return -1;
	return sx_test_send_all(c->fd, rec, len);
}

static int handshake(conn *c)
{
	sx_err err = {0};
	sx_chan_cfg cc = {.server = !c->r->client,
			  .id = c->r->client ? &cli_id : &srv_id,
			  .server_name = "localhost",
			  .max_record = RX_BUF - SX_REC_HDR_LEN};
	if (sx_chan_ctx_new(&c->ctx, &cc, &err) < 0 || sx_link_init(&c->link, c->ctx, &err) < 0)
		return -1;
	if (sx_test_handshake(&c->link, c->fd, &err) < 0) {
		snprintf(c->r->fail, sizeof(c->r->fail), "handshake: %s", err.msg);
		return -1;
	}
	sx_link_rx_set(&c->link, c->buf, RX_BUF);
	c->link.max_body = RX_BUF - SX_REC_HDR_LEN;
	return 0;
}

static int recv_rec(conn *c, uint8_t *type, uint8_t **pt, size_t *len)
{
	sx_err err = {0};
	for (;;) {
		uint8_t *b, flags;
		size_t want, n;
		bool complete;
		if (sx_link_rx_early(&c->link) > 0) {
			n = sx_link_rx_feed(&c->link);
		} else {
			sx_link_rx_want(&c->link, &b, &want);
			ssize_t got = recv(c->fd, b, want, 0);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return -1;
			n = (size_t)got;
		}
		if (sx_link_rx_input(&c->link, n, &complete, type, &flags, pt, len, &err) < 0) {
			snprintf(c->r->fail, sizeof(c->r->fail), "record: %s", err.msg);
			return -1;
		}
		if (complete)
			return 0;
	}
}

static int answer_query(conn *c, const sx_msg *q)
{
	sx_msg o = {.type = SX_MSG_OFFER, .file_id = q->file_id, .kind = SX_OFFER_NONE};
	if (c->r->offer != NULL)
		c->r->offer(c->r, q, &o);
	c->offered = q->file_id;
	return send_msg(c, &o);
}

static int on_query(conn *c, const sx_msg *q)
{
	const tfile *f = find_file(c->r, q->path, q->path_len);
	if (f != NULL)
		c->qid_of_file[f - c->r->files] = q->file_id;
	logf_(c->r, "QUERY:%u:%.*s:%llu ", q->file_id, (int)q->path_len, (const char *)q->path,
	      (unsigned long long)q->size);
	if (!c->r->defer)
		return answer_query(c, q);
	/* Kept until every file was asked about: the sender must wait. */
	int i = c->npending++;
	c->pending[i] = *q;
	snprintf(c->pending_path[i], sizeof(c->pending_path[i]), "%.*s", (int)q->path_len,
		 (const char *)q->path);
	c->pending[i].path = (const uint8_t *)c->pending_path[i];
	if (c->npending < c->r->nfiles)
		return 0;
	usleep(300000);
	uint8_t peek;
	if (recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
		c->r->early_begin = true;
	for (int k = 0; k < c->npending; k++)
		if (answer_query(c, &c->pending[k]) < 0)
			return -1;
	return 0;
}

static int file_begins(conn *c, const sx_msg *m)
{
	const tfile *f = find_file(c->r, m->path, m->path_len);
	if (f == NULL)
		return -1;
	if (c->qid_of_file[f - c->r->files] > c->offered)
		c->r->early_begin = true;
	c->cur = f;
	c->file_id = m->file_id;
	c->size = m->size;
	c->mtime_sec = m->mtime_sec;
	c->mtime_nsec = m->mtime_nsec;
	free(c->content);
	c->content = malloc(m->size + 1);
	c->have = 0;
	if (m->type == SX_MSG_FILE_RESUME) {
		/* The held part: the file's own first bytes. */
		memcpy(c->content, f->data, m->from);
		c->have = m->from;
		uint8_t root[SX_HASH_LEN];
		root_of(f->data, m->from, root);
		logf_(c->r, "RESUME:%s:%llu:%s ", f->name, (unsigned long long)m->from,
		      memcmp(root, m->root, SX_HASH_LEN) == 0 ? "prefix-root-ok"
							      : "prefix-root-bad");
	} else {
		logf_(c->r, "BEGIN:%s ", f->name);
	}
	return 0;
}

static int add_desc(conn *c, const uint8_t root[SX_HASH_LEN])
{
	sx_err err = {0};
	char path[256];
	snprintf(path, sizeof(path), "%s", c->cur->name);
	if (!c->sign)
		return 0;
	if (sx_sbatch_add(&c->batch, c->file_id, root, c->size, c->mtime_sec, c->mtime_nsec, path,
			  &err) < 0)
		return -1;
	c->batch.state[c->batch.n - 1] = SX_ANS_STORED;
	c->batch.answered++;
	return 0;
}

static int file_ok(conn *c)
{
	sx_msg ok = {.type = SX_MSG_FILE_OK, .file_id = c->file_id, .size = c->size};
	if (send_msg(c, &ok) < 0)
		return -1;
	c->oks++;
	if (c->r->cut_after > 0 && c->oks == c->r->cut_after && c->r->conns > 1)
		return 1;
	return 0;
}

static int file_ends(conn *c, const sx_msg *m)
{
	uint8_t root[SX_HASH_LEN];
	root_of(c->content, c->have, root);
	bool content_ok = c->have == c->cur->len && memcmp(c->content, c->cur->data, c->have) == 0;
	logf_(c->r, "END:%s:%llu:%s:%s ", c->cur->name, (unsigned long long)m->size,
	      !c->sign					? "unsigned"
	      : memcmp(root, m->root, SX_HASH_LEN) == 0 ? "root-ok"
							: "root-bad",
	      content_ok ? "content-ok" : "content-bad");
	if (add_desc(c, root) < 0)
		return -1;
	return file_ok(c);
}

static int file_same(conn *c, const sx_msg *m)
{
	const tfile *f = find_file(c->r, m->path, m->path_len);
	uint8_t root[SX_HASH_LEN];
	if (f == NULL)
		return -1;
	root_of(f->data, f->len, root);
	logf_(c->r, "SAME:%s:%s ", f->name,
	      memcmp(root, m->root, SX_HASH_LEN) == 0 ? "root-ok" : "root-bad");
	c->cur = f;
	c->file_id = m->file_id;
	c->size = m->size;
	c->mtime_sec = m->mtime_sec;
	c->mtime_nsec = m->mtime_nsec;
	if (add_desc(c, m->root) < 0)
		return -1;
	return file_ok(c);
}

static int on_batch(conn *c, const sx_msg *m)
{
	sx_err err = {0};
	sx_receipt rc = {0};
	EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(c->link.k.peer_chain, 0));
	c->batch.number = c->nbatch + 1;
	int ok =
	    sx_sbatch_verify(&c->batch, c->tid, c->chunk, m->time, m->sig, m->sig_len, pub, &err);
	logf_(c->r, "BATCH:%u:%s ", m->nfiles, ok == 0 ? "verified" : "bad");
	if (ok < 0)
		snprintf(c->r->fail, sizeof(c->r->fail), "batch: %s", err.msg);
	if (ok < 0)
		return -1;
	int64_t now = (int64_t)time(NULL);
	if (sx_sbatch_receipt(&c->batch, c->tid, now, sk_X509_value(c->link.k.peer_chain, 0), &rc,
			      &err) < 0 ||
	    sx_receipt_sign(&rc, srv_id.key, srv_id.chain, &err) < 0) {
		sx_receipt_free(&rc);
		return -1;
	}
	sx_msg r = {.type = SX_MSG_RECEIPT,
		    .batch_no = ++c->nbatch,
		    .time = now,
		    .sig = rc.sig,
		    .sig_len = rc.sig_len};
	int s = send_msg(c, &r);
	sx_receipt_free(&rc);
	sx_sbatch_free(&c->batch);
	memset(&c->batch, 0, sizeof(c->batch));
	return s;
}

static int on_ctrl(conn *c, const uint8_t *pt, size_t len)
{
	sx_msg m;
	sx_err err = {0};
	if (sx_msg_decode(pt, len, &m, &err) < 0)
		return -1;
	switch (m.type) {
	case SX_MSG_SESSION:
		c->chunk = m.hash_chunk;
		c->sign = (m.flags & SX_SESSION_SIGNED) != 0;
		memcpy(c->tid, m.transfer_id, SX_TID_LEN);
		logf_(c->r, "SESSION ");
		return 0;
	case SX_MSG_QUERY: return on_query(c, &m);
	case SX_MSG_FILE_BEGIN:
	case SX_MSG_FILE_RESUME: return file_begins(c, &m);
	case SX_MSG_FILE_END: return file_ends(c, &m);
	case SX_MSG_FILE_SAME: return file_same(c, &m);
	case SX_MSG_BATCH: return on_batch(c, &m);
	case SX_MSG_DIR: return 0;
	default: logf_(c->r, "MSG:%02x ", m.type); return 0;
	}
}

/* One session: 0 at its end (EOS both ways), 1 when cut on purpose. */
static int serve_conn(conn *c)
{
	uint8_t type, *pt;
	size_t len;
	if (handshake(c) < 0)
		return -1;
	for (;;) {
		if (recv_rec(c, &type, &pt, &len) < 0) {
			logf_(c->r, "CLOSED ");
			return -1;
		}
		if (type == SX_REC_DATA) {
			if (c->cur == NULL || c->have + len > c->size)
				return -1;
			memcpy(c->content + c->have, pt, len);
			c->have += len;
			if (c->r->cut_data > 0 && ++c->datas == c->r->cut_data) {
				logf_(c->r, "CUT | ");
				return 1;
			}
			continue;
		}
		if (type == SX_REC_EOS) {
			uint8_t rec[64];
			size_t n;
			sx_err err = {0};
			logf_(c->r, "EOS");
			if (sx_record_seal(&c->link.k.tx, SX_REC_EOS, 0, rec, 0, &n, &err) < 0)
				return -1;
			return sx_test_send_all(c->fd, rec, n);
		}
		int r = on_ctrl(c, pt, len);
		if (r != 0) {
			if (r > 0)
				logf_(c->r, "CUT | ");
			return r;
		}
	}
}

static void *rx_main(void *arg)
{
	rx *r = arg;
	int conns = r->conns > 0 ? r->conns : 1;
	for (int i = 0; i < conns; i++) {
		conn c = {.r = r, .buf = malloc(RX_BUF)};
		c.fd = r->client ? r->sock_client : accept(r->lfd, NULL, NULL);
		if (c.fd >= 0) {
			struct timeval tv = {.tv_sec = 10};
			setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			(void)serve_conn(&c);
			close(c.fd);
		}
		if (i == 0)
			r->cut_after = r->cut_data = 0;
		sx_link_free(&c.link);
		sx_chan_ctx_free(c.ctx);
		sx_sbatch_free(&c.batch);
		free(c.content);
		free(c.buf);
	}
	return NULL;
}

/* ---- the sender's side -------------------------------------------------- */

static int listen_any(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void make_file(rx *r, const char *name, size_t len, unsigned seed)
{
	char p[700];
	tfile *f = &r->files[r->nfiles++];
	f->name = name;
	f->len = len;
	f->data = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		f->data[i] = (uint8_t)((i * 31 + seed * 7 + (i >> 9)) & 0xff);
	snprintf(p, sizeof(p), "%s/%s", work, name);
	FILE *fp = fopen(p, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(f->data, 1, len, fp), len);
	fclose(fp);
}

static void free_files(rx *r)
{
	for (int i = 0; i < r->nfiles; i++)
		free(r->files[i].data);
}

/* Sends r's files with sx_send_run to the crafted receiver; returns the
 * run's result, err and stats filled. */
static int run_send(rx *r, bool sign, unsigned retries, sx_send_stats *st, sx_err *err)
{
	char port[16], rcpt[700];
	char *paths[MAXFILES];
	char pbuf[MAXFILES][700];
	pthread_t th;
	int lport;
	r->lfd = listen_any(&lport);
	snprintf(port, sizeof(port), "%d", lport);
	snprintf(rcpt, sizeof(rcpt), "%s/receipts", work);
	for (int i = 0; i < r->nfiles; i++) {
		snprintf(pbuf[i], sizeof(pbuf[i]), "%s/%s", work, r->files[i].name);
		paths[i] = pbuf[i];
	}
	sx_send_cfg cfg = {.host = "127.0.0.1",
			   .port = port,
			   .id = &cli_id,
			   .server_name = "localhost",
			   .suite = SX_SUITE_AES256GCM,
			   .chunk = LEAF,
			   .io = SX_IO_AUTO,
			   .paths = paths,
			   .npaths = r->nfiles,
			   .timeout_ms = 5000,
			   .no_sign = !sign,
			   .no_direct = true,
			   .receipts_dir = rcpt,
			   .retries = retries,
			   .retry_base_ms = 10,
			   .retry_max_ms = 20,
			   .threads = send_threads};
	assert_int_equal(pthread_create(&th, NULL, rx_main, r), 0);
	int rc = sx_send_run(&cfg, st, err);
	/* The receiver may still wait in accept or recv: shut them. */
	shutdown(r->lfd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(r->lfd);
	if (r->fail[0] != '\0')
		print_message("receiver: %s\n", r->fail);
	print_message("log: %s\nsender: rc=%d %s\n", r->log, rc, err->msg);
	return rc;
}

/* ---- cases -------------------------------------------------------------- */

static void test_query_and_wait(void **state)
{
	(void)state;
	rx r = {.defer = true};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "a.bin", 200000, 1);
	make_file(&r, "b.bin", 1000, 2);
	assert_int_equal(run_send(&r, false, 0, &st, &err), 0);
	assert_non_null(strstr(r.log, "SESSION QUERY:1:a.bin:200000 QUERY:2:b.bin:1000 BEGIN:a.bin "
				      "END:a.bin:200000:unsigned:content-ok BEGIN:b.bin "));
	assert_false(r.early_begin);
	assert_int_equal(st.files_ok, 2);
	assert_int_equal(st.files_resumed, 0);
	assert_int_equal(st.attempts, 1);
	free_files(&r);
}

static void offer_partial(rx *r, const sx_msg *q, sx_msg *o)
{
	const tfile *f = find_file(r, q->path, q->path_len);
	o->kind = SX_OFFER_PARTIAL;
	o->leaf = LEAF;
	o->from = 3 * LEAF;
	root_of(f->data, 3 * LEAF, o->root);
}

static void test_partial_resumes(void **state)
{
	(void)state;
	rx r = {.offer = offer_partial};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "big.bin", 5 * LEAF + 1234, 3);
	assert_int_equal(run_send(&r, true, 0, &st, &err), 0);
	assert_non_null(strstr(r.log,
			       "RESUME:big.bin:196608:prefix-root-ok "
			       "END:big.bin:328914:root-ok:content-ok BATCH:1:verified EOS"));
	assert_int_equal(st.files_resumed, 1);
	assert_int_equal(st.bytes_resumed, 3 * LEAF);
	assert_int_equal(st.bytes, 2 * LEAF + 1234);
	assert_int_equal(st.receipts, 1);
	free_files(&r);
}

static void test_partial_resumes_unsigned(void **state)
{
	(void)state;
	rx r = {.offer = offer_partial};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "big.bin", 4 * LEAF, 4);
	assert_int_equal(run_send(&r, false, 0, &st, &err), 0);
	assert_non_null(strstr(r.log, "RESUME:big.bin:196608:prefix-root-ok "
				      "END:big.bin:262144:unsigned:content-ok"));
	assert_int_equal(st.bytes, LEAF);
	free_files(&r);
}

static void offer_partial_other(rx *r, const sx_msg *q, sx_msg *o)
{
	offer_partial(r, q, o);
	o->root[0] ^= 1;
}

static void test_partial_changed_sends_whole(void **state)
{
	(void)state;
	rx r = {.offer = offer_partial_other};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "big.bin", 5 * LEAF + 10, 5);
	assert_int_equal(run_send(&r, true, 0, &st, &err), 0);
	assert_non_null(strstr(r.log, "BEGIN:big.bin END:big.bin:327690:root-ok:content-ok"));
	assert_int_equal(st.files_resumed, 0);
	assert_int_equal(st.bytes, 5 * LEAF + 10);
	free_files(&r);
}

/* EXISTS: a.bin with its root, b.bin with another root, c.bin without a
 * root; with overwrite when the name says so. */
static void offer_exists(rx *r, const sx_msg *q, sx_msg *o, bool over)
{
	const tfile *f = find_file(r, q->path, q->path_len);
	o->kind = SX_OFFER_EXISTS;
	o->from = f->len;
	o->flags = over ? SX_OFFER_OVERWRITE : 0;
	if (strcmp(f->name, "c.bin") == 0)
		return;
	o->leaf = LEAF;
	root_of(f->data, f->len, o->root);
	if (strcmp(f->name, "b.bin") == 0)
		o->root[5] ^= 0x40;
}

static void offer_exists_keep(rx *r, const sx_msg *q, sx_msg *o)
{
	offer_exists(r, q, o, false);
}

static void offer_exists_over(rx *r, const sx_msg *q, sx_msg *o)
{
	offer_exists(r, q, o, true);
}

static void test_exists(void **state)
{
	(void)state;
	rx r = {.offer = offer_exists_keep};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "a.bin", 3 * LEAF + 7, 6);
	make_file(&r, "b.bin", 1000, 7);
	make_file(&r, "c.bin", 0, 8);
	assert_int_equal(run_send(&r, true, 0, &st, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "'b.bin' exists on the receiver with other content"));
	assert_non_null(
	    strstr(r.log, "SAME:a.bin:root-ok SAME:c.bin:root-ok BATCH:2:verified EOS"));
	assert_null(strstr(r.log, "BEGIN"));
	assert_int_equal(st.files_same, 2);
	assert_int_equal(st.files_ok, 2);
	assert_int_equal(st.files_failed, 1);
	assert_int_equal(st.bytes, 0);
	free_files(&r);
}

static void test_exists_overwrite(void **state)
{
	(void)state;
	rx r = {.offer = offer_exists_over};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "a.bin", 3 * LEAF + 7, 6);
	make_file(&r, "b.bin", 1000, 7);
	make_file(&r, "c.bin", 10, 8);
	assert_int_equal(run_send(&r, false, 0, &st, &err), 0);
	assert_non_null(strstr(r.log, "SAME:a.bin:root-ok BEGIN:b.bin "
				      "END:b.bin:1000:unsigned:content-ok BEGIN:c.bin "
				      "END:c.bin:10:unsigned:content-ok EOS"));
	assert_int_equal(st.files_same, 1);
	assert_int_equal(st.bytes, 1010);
	free_files(&r);
}

static int bad_kind;
static void offer_bad(rx *r, const sx_msg *q, sx_msg *o)
{
	const tfile *f = find_file(r, q->path, q->path_len);
	switch (bad_kind) {
	case 0: o->file_id = q->file_id + 1; break; /* out of order */
	case 1:					    /* leaf other than the session's */
		o->kind = SX_OFFER_PARTIAL;
		o->leaf = LEAF / 2;
		o->from = LEAF;
		break;
	case 2: /* as much as the whole file */
		o->kind = SX_OFFER_PARTIAL;
		o->leaf = LEAF;
		o->from = f->len;
		break;
	case 3: /* EXISTS of another size */
		o->kind = SX_OFFER_EXISTS;
		o->from = f->len + 1;
		break;
	default: /* malformed: PARTIAL not a multiple of its leaf */
		o->kind = SX_OFFER_PARTIAL;
		o->leaf = LEAF;
		o->from = 100;
		break;
	}
}

static void test_bad_offers(void **state)
{
	(void)state;
	for (bad_kind = 0; bad_kind < 5; bad_kind++) {
		rx r = {.offer = offer_bad};
		sx_send_stats st;
		sx_err err = {0};
		make_file(&r, "a.bin", 2 * LEAF, 9);
		assert_int_equal(run_send(&r, false, 3, &st, &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
		assert_null(strstr(r.log, "BEGIN"));
		assert_int_equal(st.attempts, 1); /* never retried */
		free_files(&r);
	}
}

/* A receiver that cuts the first connection after its first FILE_OK: the
 * second attempt asks only about what is left (unsigned), or again about
 * the file whose batch has no receipt yet (signed: it comes back as
 * FILE_SAME, and the receipt covers it). */
static void test_retry_after_cut(void **state)
{
	(void)state;
	rx r = {.cut_after = 1, .conns = 2};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "a.bin", 1000, 10);
	make_file(&r, "b.bin", 2000, 11);
	assert_int_equal(run_send(&r, false, 2, &st, &err), 0);
	const char *second = strstr(r.log, "CUT | ");
	assert_non_null(second);
	assert_null(strstr(second, "a.bin"));
	assert_non_null(strstr(second, "SESSION QUERY:1:b.bin:2000 BEGIN:b.bin"));
	assert_int_equal(st.attempts, 2);
	assert_int_equal(st.files_ok, 2);
	free_files(&r);

	rx r2 = {.cut_after = 1, .conns = 2};
	make_file(&r2, "a.bin", 1000, 10);
	make_file(&r2, "b.bin", 2000, 11);
	assert_int_equal(run_send(&r2, true, 2, &st, &err), 0);
	second = strstr(r2.log, "CUT | ");
	assert_non_null(second);
	assert_non_null(
	    strstr(second, "SESSION QUERY:1:a.bin:1000 QUERY:2:b.bin:2000 BEGIN:a.bin"));
	assert_int_equal(st.attempts, 2);
	assert_int_equal(st.receipts, 1);
	free_files(&r2);
}

static void test_retry_nothing_listens(void **state)
{
	(void)state;
	rx r = {0};
	sx_send_stats st;
	sx_err err = {0};
	char port[16], path[700];
	char *paths[1] = {path};
	int lport, fd = listen_any(&lport);
	close(fd);
	make_file(&r, "a.bin", 10, 12);
	snprintf(path, sizeof(path), "%s/a.bin", work);
	snprintf(port, sizeof(port), "%d", lport);
	sx_send_cfg cfg = {.host = "127.0.0.1",
			   .port = port,
			   .id = &cli_id,
			   .server_name = "localhost",
			   .io = SX_IO_AUTO,
			   .paths = paths,
			   .npaths = 1,
			   .timeout_ms = 2000,
			   .no_sign = true,
			   .retries = 3,
			   .retry_base_ms = 10,
			   .retry_max_ms = 40};
	uint64_t t0 = sx_now_ns();
	assert_int_equal(sx_send_run(&cfg, &st, &err), -1);
	assert_int_equal(err.cls, SX_E_NET);
	assert_int_equal(st.attempts, 4);
	/* waits of at least 5, 10 and 20 ms */
	assert_true(sx_now_ns() - t0 >= 35000000u);
	cfg.retries = 0;
	memset(&err, 0, sizeof(err));
	assert_int_equal(sx_send_run(&cfg, &st, &err), -1);
	assert_int_equal(st.attempts, 1);
	free_files(&r);
}

static void test_retry_schedule(void **state)
{
	(void)state;
	assert_int_equal(sx_send_retry_wait_ms(1, 1000, 60000, 0), 500);
	assert_int_equal(sx_send_retry_wait_ms(1, 1000, 60000, 500), 1000);
	assert_int_equal(sx_send_retry_wait_ms(2, 1000, 60000, 0), 1000);
	assert_int_equal(sx_send_retry_wait_ms(3, 1000, 60000, 2000), 4000);
	assert_int_equal(sx_send_retry_wait_ms(7, 1000, 60000, 0), 30000);
	assert_int_equal(sx_send_retry_wait_ms(8, 1000, 60000, 30000), 60000);
	assert_int_equal(sx_send_retry_wait_ms(1000, 1000, 60000, 0), 30000);
	for (uint32_t rnd = 0; rnd < 100000; rnd += 997) {
		unsigned w = sx_send_retry_wait_ms(4, 1000, 60000, rnd * 7919u);
		assert_true(w >= 4000 && w <= 8000);
	}
}

/* The server's side of get reuses the sender, and asks its client as a
 * push sender asks a server. */
static void test_serve_query(void **state)
{
	(void)state;
	rx r = {.client = true};
	int sv[2];
	sx_err err = {0};
	sx_send_stats st;
	pthread_t th;
	char path[700];
	char *paths[1] = {path};
	make_file(&r, "a.bin", 5000, 13);
	snprintf(path, sizeof(path), "%s/a.bin", work);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r.sock_client = sv[1];
	assert_int_equal(pthread_create(&th, NULL, rx_main, &r), 0);
	/* The server's handshake, then the hand-over to the sender. */
	sx_chan_ctx *ctx = NULL;
	sx_link l;
	sx_chan_cfg cc = {.server = true, .id = &srv_id, .max_record = RX_BUF - SX_REC_HDR_LEN};
	assert_int_equal(sx_chan_ctx_new(&ctx, &cc, &err), 0);
	assert_int_equal(sx_link_init(&l, ctx, &err), 0);
	if (sx_test_handshake(&l, sv[0], &err) < 0)
		fail_msg("handshake: %s", err.msg);
	sx_send_cfg cfg = {.host = "client",
			   .id = &srv_id,
			   .chunk = LEAF,
			   .io = SX_IO_AUTO,
			   .paths = paths,
			   .npaths = 1,
			   .timeout_ms = 5000,
			   .no_sign = true,
			   .serving = true};
	int rc = sx_send_serve(&cfg, sv[0], &l, &st, &err);
	pthread_join(th, NULL);
	print_message("log: %s\nsender: rc=%d %s\n", r.log, rc, err.msg);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(
	    r.log,
	    "SESSION QUERY:1:a.bin:5000 BEGIN:a.bin END:a.bin:5000:unsigned:content-ok EOS"));
	sx_link_free(&l);
	sx_chan_ctx_free(ctx);
	free_files(&r);
}

/* no_resume: nothing is asked. */
static void test_no_resume(void **state)
{
	(void)state;
	rx r = {0};
	sx_send_stats st;
	sx_err err = {0};
	make_file(&r, "a.bin", 3000, 14);
	char port[16], path[700], rcpt[700];
	char *paths[1] = {path};
	pthread_t th;
	int lport;
	r.lfd = listen_any(&lport);
	snprintf(port, sizeof(port), "%d", lport);
	snprintf(path, sizeof(path), "%s/a.bin", work);
	snprintf(rcpt, sizeof(rcpt), "%s/receipts", work);
	sx_send_cfg cfg = {.host = "127.0.0.1",
			   .port = port,
			   .id = &cli_id,
			   .server_name = "localhost",
			   .chunk = LEAF,
			   .io = SX_IO_AUTO,
			   .paths = paths,
			   .npaths = 1,
			   .timeout_ms = 5000,
			   .receipts_dir = rcpt,
			   .no_resume = true};
	assert_int_equal(pthread_create(&th, NULL, rx_main, &r), 0);
	assert_int_equal(sx_send_run(&cfg, &st, &err), 0);
	pthread_join(th, NULL);
	close(r.lfd);
	assert_non_null(strstr(r.log, "SESSION BEGIN:a.bin END:a.bin:3000:root-ok:content-ok"));
	free_files(&r);
}

/* ---- the leaf cache ------------------------------------------------------ */

/* The cache files in work/leaves (64 hex digits): how many, the first's
 * path into path. */
static int lc_count(char *path, size_t cap)
{
	char dir[700];
	int n = 0;
	snprintf(dir, sizeof(dir), "%s/leaves", work);
	DIR *d = opendir(dir);
	struct dirent *de;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 2 * SX_HASH_LEN && n++ == 0)
			snprintf(path, cap, "%s/%s", dir, de->d_name);
	closedir(d);
	return n;
}

/* A signed send cut after 4 DATA records: the cache holds at least those
 * leaves, the first one right. Its path into path. */
static void cut_send(rx *r, char *path, size_t cap)
{
	sx_send_stats st;
	sx_err err = {0};
	struct stat sb;
	uint8_t got[SX_HASH_LEN], want[SX_HASH_LEN];
	r->offer = NULL;
	r->cut_data = 4;
	r->log[0] = '\0';
	assert_int_not_equal(run_send(r, true, 0, &st, &err), 0);
	assert_int_equal(lc_count(path, cap), 1);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size >= (off_t)(SX_LEAFCACHE_HDR + 4 * SX_HASH_LEN));
	assert_int_equal(sb.st_mode & 0777, 0600);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, sizeof(got), SX_LEAFCACHE_HDR), sizeof(got));
	close(fd);
	assert_int_equal(sx_merkle_leaf(r->files[0].data, LEAF, want, &err), 0);
	assert_memory_equal(got, want, SX_HASH_LEN);
}

/* A PARTIAL offer of 3 leaves: resumed, with leaves from the cache and
 * bytes read as given. */
static void resume_lc(rx *r, uint64_t cached, uint64_t read)
{
	sx_send_stats st;
	sx_err err = {0};
	r->offer = offer_partial;
	r->log[0] = '\0';
	assert_int_equal(run_send(r, true, 0, &st, &err), 0);
	assert_non_null(strstr(r->log, "RESUME:lc.bin:196608:prefix-root-ok "
				       "END:lc.bin:524388:root-ok:content-ok"));
	assert_int_equal(st.files_resumed, 1);
	assert_int_equal(st.leaves_cached, cached);
	assert_int_equal(st.bytes_compared, read);
}

static void patch(const char *path, off_t off, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, n, off), (ssize_t)n);
	close(fd);
}

static void offer_exists_lc(rx *r, const sx_msg *q, sx_msg *o)
{
	const tfile *f = find_file(r, q->path, q->path_len);
	o->kind = SX_OFFER_EXISTS;
	o->leaf = LEAF;
	o->from = f->len;
	root_of(f->data, f->len, o->root);
}

static void test_leaf_cache(void **state)
{
	(void)state;
	rx r = {0};
	char path[800], old[800], keep[800];
	make_file(&r, "lc.bin", 8 * LEAF + 100, 9);
	/* Files changed within the last 2 s are not cached (their times may
	 * not show a change in the same tick). */
	usleep(2100000);
	/* Cached while sent; a PARTIAL takes the prefix from the cache and
	 * reads nothing; the cache goes with the receipt. */
	cut_send(&r, path, sizeof(path));
	resume_lc(&r, 3, 0);
	assert_int_equal(lc_count(path, sizeof(path)), 0);
	/* The same with every leaf hashed on the loop's thread (no workers). */
	send_threads = 1;
	cut_send(&r, path, sizeof(path));
	resume_lc(&r, 3, 0);
	send_threads = 0;
	/* Short: the leaf it holds is used, the rest read. */
	cut_send(&r, path, sizeof(path));
	assert_int_equal(truncate(path, SX_LEAFCACHE_HDR + SX_HASH_LEN + 5), 0);
	resume_lc(&r, 1, 2 * LEAF);
	/* A leaf changed: the root does not match, made again by reading. */
	cut_send(&r, path, sizeof(path));
	patch(path, SX_LEAFCACHE_HDR + SX_HASH_LEN + 3, "X", 1);
	resume_lc(&r, 3, 3 * LEAF);
	/* A damaged header: not used. */
	cut_send(&r, path, sizeof(path));
	patch(path, 2, "junk", 4);
	resume_lc(&r, 0, 3 * LEAF);
	/* The folder: cache files older than 7 days go when it is opened,
	 * other names stay. */
	snprintf(old, sizeof(old), "%s/leaves/%064d", work, 0);
	snprintf(keep, sizeof(keep), "%s/leaves/keep.txt", work);
	int fd = open(old, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	struct timespec t[2] = {{.tv_sec = time(NULL) - 8 * 86400},
				{.tv_sec = time(NULL) - 8 * 86400}};
	assert_int_equal(futimens(fd, t), 0);
	close(fd);
	fd = open(keep, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(futimens(fd, t), 0);
	close(fd);
	cut_send(&r, path, sizeof(path)); /* one cache file: the old one went */
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(access(keep, F_OK), 0);
	/* EXISTS with a root: the leaves held, the rest read. */
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	uint64_t held = ((uint64_t)sb.st_size - SX_LEAFCACHE_HDR) / SX_HASH_LEN;
	sx_send_stats st;
	sx_err err = {0};
	r.offer = offer_exists_lc;
	r.log[0] = '\0';
	assert_int_equal(run_send(&r, true, 0, &st, &err), 0);
	assert_non_null(strstr(r.log, "SAME:lc.bin:root-ok"));
	assert_int_equal(st.leaves_cached, held);
	uint64_t size = 8 * LEAF + 100;
	assert_int_equal(st.bytes_compared, held * LEAF < size ? size - held * LEAF : 0);
	assert_int_equal(lc_count(path, sizeof(path)), 0);
	/* Touched (same bytes, new times): the cache does not stand for it. */
	cut_send(&r, path, sizeof(path));
	char src[700];
	snprintf(src, sizeof(src), "%s/lc.bin", work);
	FILE *fp = fopen(src, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(r.files[0].data, 1, r.files[0].len, fp), r.files[0].len);
	fclose(fp);
	resume_lc(&r, 0, 3 * LEAF);
	/* Unsigned sessions hash nothing while sending: no cache. */
	unlink(path);
	r.offer = NULL;
	r.log[0] = '\0';
	assert_int_equal(run_send(&r, false, 0, &st, &err), 0);
	assert_int_equal(lc_count(path, sizeof(path)), 0);
	free_files(&r);
}

static int setup(void **state)
{
	(void)state;
	const char *bin = getenv("SX_TEST_BIN");
	char cmd[4096], p[700];
	signal(SIGPIPE, SIG_IGN);
	work = sx_test_tmpdir();
	if (work == NULL || bin == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "'%s' ca init --ca '%s/ca' --name 'rs CA' --no-passphrase >/dev/null 2>&1 && "
		 "'%s' ca issue --ca '%s/ca' --name server.test --role server --dns localhost "
		 "--ip 127.0.0.1 --no-passphrase --out '%s/server' >/dev/null 2>&1 && "
		 "'%s' ca issue --ca '%s/ca' --name cam-01 --role client --no-passphrase "
		 "--out '%s/cam' >/dev/null 2>&1",
		 bin, work, bin, work, work, bin, work, work);
	if (system(cmd) != 0)
		return -1;
	sx_pass pass = {.none = true};
	sx_err err = {0};
	snprintf(p, sizeof(p), "%s/server", work);
	if (sx_identity_load(p, &pass, &srv_id, &err) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/cam", work);
	return sx_identity_load(p, &pass, &cli_id, &err);
}

static int teardown(void **state)
{
	(void)state;
	sx_identity_free(&srv_id);
	sx_identity_free(&cli_id);
	sx_test_rmtree(work);
	free(work);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_schedule),
	    cmocka_unit_test(test_query_and_wait),
	    cmocka_unit_test(test_partial_resumes),
	    cmocka_unit_test(test_partial_resumes_unsigned),
	    cmocka_unit_test(test_partial_changed_sends_whole),
	    cmocka_unit_test(test_exists),
	    cmocka_unit_test(test_exists_overwrite),
	    cmocka_unit_test(test_bad_offers),
	    cmocka_unit_test(test_retry_after_cut),
	    cmocka_unit_test(test_retry_nothing_listens),
	    cmocka_unit_test(test_serve_query),
	    cmocka_unit_test(test_no_resume),
	    cmocka_unit_test(test_leaf_cache),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
