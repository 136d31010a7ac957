/* The chat hub of sxfer serve --chat: its rate bucket and its queues on
 * their own, then the real server (sx_serve_run with chat on, in a thread
 * on 127.0.0.1:0) with two identities speaking sealed chat messages: a
 * message to an offline member waits in its queue and is delivered when it
 * connects, refusals (too big, replay, not a member) name their reason and
 * the connection goes on, and a queue survives a restart. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/channel/sx_link.h"
#include "engine/chat/hub_int.h"
#include "engine/chat/sx_chat.h"
#include "engine/chat/sx_chat_hub.h"
#include "engine/transfer/sx_transfer.h"
#include "pki/sx_pki.h"

#define CLI_RX (256u * 1024)

static char *work;
static sx_identity srv_id, alice_id, bob_id;

static int run(const char *fmt, const char *a, const char *b)
{
	char cmd[4096];
	const char *bin = getenv("SX_TEST_BIN");
	if (bin == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), fmt, bin, a, b);
	return system(cmd);
}

static int load(const char *sub, sx_identity *id)
{
	sx_pass pass = {.none = true};
	sx_err err = {0};
	char p[700];
	snprintf(p, sizeof(p), "%s/%s", work, sub);
	if (sx_identity_load(p, &pass, id, &err) < 0) {
		fprintf(stderr, "%s: %s\n", sub, err.msg);
		return -1;
	}
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	work = sx_test_tmpdir();
	if (work == NULL)
		return -1;
	if (run("'%s' ca init --ca '%s/ca' --name 'chat CA' --no-passphrase >/dev/null 2>&1", work,
		"") != 0 ||
	    run("'%s' ca issue --ca '%s/ca' --name server.test --role server --dns localhost "
		"--ip 127.0.0.1 --no-passphrase --out '%s/server' >/dev/null 2>&1",
		work, work) != 0 ||
	    run("'%s' ca issue --ca '%s/ca' --name alice --role client --no-passphrase --out "
		"'%s/alice' >/dev/null 2>&1",
		work, work) != 0 ||
	    run("'%s' ca issue --ca '%s/ca' --name bob --role client --no-passphrase --out "
		"'%s/bob' >/dev/null 2>&1",
		work, work) != 0) {
		fprintf(stderr, "cannot make identities with SX_TEST_BIN\n");
		return -1;
	}
	return load("server", &srv_id) < 0 || load("alice", &alice_id) < 0 ||
		       load("bob", &bob_id) < 0
		   ? -1
		   : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sx_identity_free(&srv_id);
	sx_identity_free(&alice_id);
	sx_identity_free(&bob_id);
	sx_test_rmtree(work);
	free(work);
	return 0;
}

/* ---- the rate bucket --------------------------------------------------------- */

static void test_rate_bucket(void **state)
{
	(void)state;
	hub_bucket b = {0};
	uint64_t t = 1000000000ull;
	for (int i = 0; i < 20; i++) /* a burst of twice the rate */
		assert_true(hub_rate_take(&b, 10, t));
	assert_false(hub_rate_take(&b, 10, t));
	assert_false(hub_rate_take(&b, 10, t + 50000000ull)); /* half a token */
	assert_true(hub_rate_take(&b, 10, t + 100000000ull)); /* one token in 1/10 s */
	assert_false(hub_rate_take(&b, 10, t + 100000000ull));
	/* a long pause fills the bucket, never beyond its size */
	t += 3600ull * 1000000000ull;
	for (int i = 0; i < 20; i++)
		assert_true(hub_rate_take(&b, 10, t));
	assert_false(hub_rate_take(&b, 10, t));
}

/* ---- the queues --------------------------------------------------------------- */

static char *msg_line(const char *conv, const char *author, uint64_t seq, uint64_t n)
{
	sx_chat_line l = {.kind = SX_CHAT_L_MSG};
	sx_err err = {0};
	char *s;
	size_t len;
	snprintf(l.post.conv, sizeof(l.post.conv), "%s", conv);
	snprintf(l.post.author, sizeof(l.post.author), "%s", author);
	l.post.seq = seq;
	l.post.n = n;
	l.post.time_ms = 1700000000000;
	l.post.text = (const uint8_t *)"hello";
	l.post.text_len = 5;
	l.post.alg = SX_SIGALG_ED25519;
	l.post.sig_len = 64;
	memset(l.post.fp, 0xab, SX_HASH_LEN);
	assert_int_equal(sx_chat_line_encode(&l, &s, &len, &err), 0);
	return s;
}

/* alice's CERT line. */
static char *cert_line(uint8_t fp[SX_HASH_LEN])
{
	sx_chat_line l = {.kind = SX_CHAT_L_CERT, .ncerts = 1};
	sx_err err = {0};
	unsigned char *der = NULL;
	char *s;
	size_t len;
	X509 *leaf = sk_X509_value(alice_id.chain, 0);
	int n = i2d_X509(leaf, &der);
	assert_true(n > 0);
	assert_int_equal(sx_cert_fp(leaf, fp, &err), 0);
	memcpy(l.fp, fp, SX_HASH_LEN);
	l.certs[0] = der;
	l.cert_len[0] = (size_t)n;
	assert_int_equal(sx_chat_line_encode(&l, &s, &len, &err), 0);
	OPENSSL_free(der);
	return s;
}

typedef struct seen {
	unsigned msgs, expired, gaps, certs;
	uint64_t gap_n;
} seen;

static int count_line(void *ctx, const sx_chat_line *l, int64_t t, bool expired, sx_err *err)
{
	seen *s = ctx;
	(void)t;
	(void)err;
	if (l->kind == SX_CHAT_L_MSG && expired)
		s->expired++;
	else if (l->kind == SX_CHAT_L_MSG)
		s->msgs++;
	else if (l->kind == SX_CHAT_L_GAP) {
		s->gaps++;
		s->gap_n = l->n;
	} else if (l->kind == SX_CHAT_L_CERT)
		s->certs++;
	return 0;
}

static void test_queue_limits(void **state)
{
	(void)state;
	char dir[700], path[800];
	hub_queues qs;
	sx_err err = {0};
	bool room;
	size_t waiting;
	uint8_t fp[SX_HASH_LEN];
	int64_t now = hub_now_ms(), old = now - 3600 * 1000;
	char *cert = cert_line(fp);
	snprintf(dir, sizeof(dir), "%s/q1", work);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(hub_q_open(&qs, dir, 3, 60, &err), 0);
	/* two old entries (expired: the age is 60 s), one fresh */
	for (uint64_t i = 1; i <= 3; i++) {
		char *l = msg_line("@alice,bob", "alice", i, i);
		assert_int_equal(hub_q_push(&qs, "bob", fp, cert, l, i < 3 ? old : now, &err), 0);
		free(l);
	}
	hub_queue *q = hub_q_find(&qs, "bob");
	assert_non_null(q);
	assert_int_equal(q->n, 3);
	assert_int_equal(q->nfps, 1); /* the cert line once */
	assert_int_equal(hub_q_live(&qs, q, now), 1);
	/* full: the expired ones make room, a GAP line says where */
	assert_int_equal(hub_q_room(&qs, "bob", now, &room, &waiting, &err), 0);
	assert_true(room);
	assert_int_equal(waiting, 1);
	/* a restart reads the same */
	hub_q_close(&qs);
	assert_int_equal(hub_q_open(&qs, dir, 3, 60, &err), 0);
	q = hub_q_find(&qs, "bob");
	assert_non_null(q);
	assert_int_equal(q->n, 1);
	for (uint64_t i = 4; i <= 5; i++) {
		char *l = msg_line("@alice,bob", "alice", i, i);
		assert_int_equal(hub_q_push(&qs, "bob", fp, cert, l, now, &err), 0);
		free(l);
	}
	assert_int_equal(hub_q_room(&qs, "bob", now, &room, &waiting, &err), 0);
	assert_false(room); /* three live entries */
	assert_int_equal(waiting, 3);
	seen s = {0};
	assert_int_equal(hub_q_read(&qs, "bob", now, count_line, &s, &err), 0);
	assert_int_equal(s.msgs, 3);
	assert_int_equal(s.certs, 1); /* kept, and not written again */
	assert_int_equal(s.gaps, 1);
	assert_int_equal(s.gap_n, 2);
	/* later, all of them expired */
	memset(&s, 0, sizeof(s));
	assert_int_equal(hub_q_read(&qs, "bob", now + 120 * 1000, count_line, &s, &err), 0);
	assert_int_equal(s.msgs, 0);
	assert_int_equal(s.expired, 3);
	hub_q_done(&qs, "bob");
	snprintf(path, sizeof(path), "%s/queue/bob.jsonl", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(hub_q_find(&qs, "bob")->n, 0);
	/* a cut last line is cut away at start */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	char *l = msg_line("@alice,bob", "alice", 6, 6);
	fprintf(f, "%lld %s\n%lld {\"type\":", (long long)now, l, (long long)now);
	fclose(f);
	free(l);
	hub_q_close(&qs);
	assert_int_equal(hub_q_open(&qs, dir, 3, 60, &err), 0);
	assert_int_equal(hub_q_find(&qs, "bob")->n, 1);
	/* the sweep: a queue with a live entry stays, one wholly expired goes */
	assert_int_equal(hub_q_sweep(&qs, now + 30 * 1000), 0);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(hub_q_sweep(&qs, now + 61 * 1000), 1);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(hub_q_find(&qs, "bob")->n, 0);
	hub_q_close(&qs);
	free(cert);
}

/* An entry queued while a delivery of the queue is under way (its
 * connection is ending: the identity counts as offline) is not among what
 * was delivered: the file keeps it when the delivery completes. */
static void test_queue_push_during_delivery(void **state)
{
	(void)state;
	char dir[700], path[800];
	hub_queues qs;
	sx_err err = {0};
	bool room;
	size_t waiting;
	uint8_t fp[SX_HASH_LEN];
	int64_t now = hub_now_ms();
	char *cert = cert_line(fp);
	snprintf(dir, sizeof(dir), "%s/q2", work);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(hub_q_open(&qs, dir, 2, 60, &err), 0);
	char *l1 = msg_line("@alice,bob", "alice", 1, 1);
	char *l2 = msg_line("@alice,bob", "alice", 2, 2);
	assert_int_equal(hub_q_push(&qs, "bob", fp, cert, l1, now - 3600 * 1000, &err), 0);
	seen s = {0};
	assert_int_equal(hub_q_read(&qs, "bob", now, count_line, &s, &err), 0); /* busy */
	assert_int_equal(s.expired, 1);
	assert_int_equal(hub_q_push(&qs, "bob", fp, cert, l2, now, &err), 0);
	/* full; the expired entry is being delivered: no rewrite under it */
	assert_int_equal(hub_q_room(&qs, "bob", now, &room, &waiting, &err), 0);
	assert_false(room);
	assert_true(hub_q_find(&qs, "bob")->busy);
	hub_q_done(&qs, "bob");
	snprintf(path, sizeof(path), "%s/queue/bob.jsonl", dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(hub_q_find(&qs, "bob")->n, 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(hub_q_read(&qs, "bob", now, count_line, &s, &err), 0);
	assert_int_equal(s.msgs, 1);
	assert_int_equal(s.expired, 0);
	hub_q_done(&qs, "bob");
	assert_int_not_equal(access(path, F_OK), 0);
	/* the same after a restart */
	hub_q_close(&qs);
	assert_int_equal(hub_q_open(&qs, dir, 2, 60, &err), 0);
	assert_null(hub_q_find(&qs, "bob"));
	hub_q_close(&qs);
	free(l1);
	free(l2);
	free(cert);
}

/* ---- the real server ------------------------------------------------------------ */

static pthread_t srv_thread;
static volatile sig_atomic_t srv_stop;
static int srv_port, srv_rc;
static sx_err srv_err;
static pthread_mutex_t port_mu = PTHREAD_MUTEX_INITIALIZER;
static sx_serve_cfg srv_cfg;
static sx_chat_hub_cfg chat_cfg;
static char out_dir[700], chat_dir[700];

static void on_listen(void *ctx, int port)
{
	(void)ctx;
	pthread_mutex_lock(&port_mu);
	srv_port = port;
	pthread_mutex_unlock(&port_mu);
}

static void *serve_main(void *arg)
{
	srv_rc = sx_serve_run(arg, &srv_err);
	return NULL;
}

static sx_io_kind srv_io = SX_IO_AUTO;
static const char *chat_sub = "chat";

static uint32_t chat_qmax; /* 0: the default */

static void server_start(bool chat)
{
	snprintf(out_dir, sizeof(out_dir), "%s/out", work);
	snprintf(chat_dir, sizeof(chat_dir), "%s/%s", work, chat_sub);
	sx_chat_hub_cfg_init(&chat_cfg);
	chat_cfg.dir = chat_dir;
	chat_cfg.max_text = 1000;
	if (chat_qmax > 0)
		chat_cfg.queue_max = chat_qmax;
	srv_stop = 0;
	srv_port = 0;
	srv_cfg = (sx_serve_cfg){.listen = "127.0.0.1:0",
				 .id = &srv_id,
				 .out_dir = out_dir,
				 .max_conns = 8,
				 .io = srv_io,
				 .max_record = 1u << 20,
				 .handshake_timeout_ms = 5000,
				 .idle_timeout_ms = 5000,
				 .stop = &srv_stop,
				 .on_listen = on_listen,
				 .chat = chat ? &chat_cfg : NULL};
	assert_int_equal(pthread_create(&srv_thread, NULL, serve_main, &srv_cfg), 0);
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&port_mu);
		int port = srv_port;
		pthread_mutex_unlock(&port_mu);
		if (port != 0)
			return;
		usleep(10000);
	}
	fail_msg("the server did not start: %s", srv_err.msg);
}

static void server_stop(void)
{
	srv_stop = 1;
	pthread_join(srv_thread, NULL);
	if (srv_rc != 0)
		fail_msg("server: %s", srv_err.msg);
}

typedef struct cli {
	int fd;
	sx_chan_ctx *ctx;
	sx_link link;
	const sx_identity *id;
	sx_chat_msg m;
	uint8_t rx[SX_REC_HDR_LEN + CLI_RX + SX_REC_TAG_MAX];
	uint8_t tx[SX_REC_HDR_LEN + CLI_RX + SX_REC_TAG_MAX];
} cli;

static void cli_send(cli *c, const sx_chat_msg *m)
{
	sx_err err = {0};
	size_t len;
	sx_wbuf w = sx_wbuf_make(c->tx + SX_REC_HDR_LEN, CLI_RX);
	sx_chat_msg_encode(m, &w);
	assert_false(w.overflow);
	assert_int_equal(sx_record_seal(&c->link.k.tx, SX_REC_CTRL, 0, c->tx, w.len, &len, &err),
			 0);
	assert_int_equal(sx_test_send_all(c->fd, c->tx, len), 0);
}

/* The next record: its type; a CTRL chat message decoded in c->m. */
static uint8_t cli_recv(cli *c)
{
	sx_err err = {0};
	for (;;) {
		uint8_t *buf, type, flags, *pt;
		size_t want, len;
		bool complete;
		sx_link_rx_want(&c->link, &buf, &want);
		ssize_t r = recv(c->fd, buf, want, 0);
		if (r <= 0)
			return 0;
		if (sx_link_rx_input(&c->link, (size_t)r, &complete, &type, &flags, &pt, &len,
				     &err) < 0)
			fail_msg("record: %s", err.msg);
		if (!complete)
			continue;
		if (type == SX_REC_CTRL && len > 0 && pt[0] >= SX_MSG_CHAT_FIRST &&
		    pt[0] <= SX_MSG_CHAT_LAST) {
			if (sx_chat_msg_decode(pt, len, &c->m, &err) < 0)
				fail_msg("chat message: %s", err.msg);
			return c->m.type;
		}
		if (type == SX_REC_CTRL && len > 0)
			return pt[0];
		return type == SX_REC_EOS ? 0xff : type;
	}
}

/* A JOIN with tips (convs sorted, k of them). */
static cli *cli_open_tips(const sx_identity *id, const char *room, const char *const *convs,
			  const uint64_t *ns, size_t k)
{
	cli *c = calloc(1, sizeof(*c));
	sx_err err = {0};
	char port[16];
	assert_non_null(c);
	c->id = id;
	snprintf(port, sizeof(port), "%d", srv_port);
	assert_int_equal(sx_net_connect("127.0.0.1", port, 5000, &c->fd, &err), 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sx_chan_cfg cc = {.id = id, .server_name = "localhost", .max_record = CLI_RX};
	assert_int_equal(sx_chan_ctx_new(&c->ctx, &cc, &err), 0);
	assert_int_equal(sx_link_init(&c->link, c->ctx, &err), 0);
	if (sx_test_handshake(&c->link, c->fd, &err) < 0)
		fail_msg("handshake: %s", err.msg);
	sx_link_rx_set(&c->link, c->rx, sizeof(c->rx));
	c->link.max_body = CLI_RX + SX_REC_TAG_MAX;
	static sx_chat_msg j;
	uint8_t tips[1024];
	sx_wbuf w = sx_wbuf_make(tips, sizeof(tips));
	for (size_t i = 0; i < k; i++)
		sx_chat_tip_put(&w, convs[i], ns[i]);
	j = (sx_chat_msg){.type = SX_MSG_CHAT_JOIN, .version = SX_CHAT_VERSION, .tips = tips};
	j.room = room != NULL ? room : "";
	j.room_len = strlen(j.room);
	j.tips_len = w.len;
	j.ntips = (uint16_t)k;
	cli_send(c, &j);
	return c;
}

static cli *cli_open(const sx_identity *id, const char *room)
{
	return cli_open_tips(id, room, NULL, NULL, 0);
}

static void cli_close(cli *c)
{
	sx_link_free(&c->link);
	sx_chan_ctx_free(c->ctx);
	close(c->fd);
	free(c);
}

/* A signed POST from c's identity. */
static void cli_post(cli *c, const char *conv, uint64_t seq, uint64_t n,
		     const uint8_t prev[SX_HASH_LEN], const char *text, size_t len)
{
	sx_chat_msg *m = calloc(1, sizeof(*m));
	sx_err err = {0};
	assert_non_null(m);
	m->type = SX_MSG_CHAT_POST;
	snprintf(m->post.conv, sizeof(m->post.conv), "%s", conv);
	snprintf(m->post.author, sizeof(m->post.author), "%.*s", SX_CHAT_NAME_MAX, c->id->name);
	m->post.seq = seq;
	m->post.n = n;
	m->post.time_ms = hub_now_ms();
	if (prev != NULL)
		memcpy(m->post.prev, prev, SX_HASH_LEN);
	m->post.text = (const uint8_t *)text;
	m->post.text_len = len;
	assert_int_equal(
	    sx_chat_post_sign(&m->post, c->id->key, sk_X509_value(c->id->chain, 0), &err), 0);
	cli_send(c, m);
	free(m);
}

static void test_relay_and_queue(void **state)
{
	(void)state;
	uint8_t h1[SX_HASH_LEN], h2[SX_HASH_LEN];
	char big[2000];
	server_start(true);
	cli *a = cli_open(&alice_id, NULL);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_WELCOME);
	assert_int_equal(a->m.max_text, 1000);
	/* bob is offline: the message waits in his queue */
	cli_post(a, "@alice,bob", 1, 1, NULL, "hello bob", 9);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_ACCEPTED);
	assert_int_equal(a->m.n, 1);
	assert_int_equal(a->m.queued, 1);
	memcpy(h1, a->m.head, SX_HASH_LEN);
	/* refusals name their reason; the connection goes on */
	memset(big, 'x', sizeof(big));
	cli_post(a, "@alice,bob", 2, 2, h1, big, sizeof(big));
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_REFUSED);
	assert_int_equal(a->m.why, SX_CHAT_TOO_BIG);
	assert_non_null(strstr(a->m.reason, "this server takes at most 1000"));
	cli_post(a, "@alice,bob", 1, 2, h1, "again", 5);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_REFUSED);
	assert_int_equal(a->m.why, SX_CHAT_REPLAY);
	cli_post(a, "#ops", 1, 1, NULL, "not joined", 10);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_REFUSED);
	assert_int_equal(a->m.why, SX_CHAT_NOT_MEMBER);
	cli_post(a, "@alice,bob", 2, 1, NULL, "stale", 5);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_REFUSED);
	assert_int_equal(a->m.why, SX_CHAT_STALE);
	assert_int_equal(a->m.n, 1);
	assert_memory_equal(a->m.head, h1, SX_HASH_LEN);
	/* bob connects: the queued message, his queue's file gone once sent */
	cli *b = cli_open(&bob_id, NULL);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_WELCOME);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_CERT);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_DELIVER);
	assert_true(b->m.flags & SX_CHAT_F_QUEUED);
	assert_int_equal(b->m.post.text_len, 9);
	assert_memory_equal(b->m.post.text, "hello bob", 9);
	/* live now: no CERT again on this connection */
	cli_post(a, "@alice,bob", 2, 2, h1, "live", 4);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_ACCEPTED);
	assert_int_equal(a->m.queued, 0);
	memcpy(h2, a->m.head, SX_HASH_LEN);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_DELIVER);
	assert_int_equal(b->m.flags, 0);
	assert_int_equal(b->m.post.n, 2);
	assert_memory_equal(b->m.post.prev, h1, SX_HASH_LEN);
	(void)h2;
	sx_chat_msg who = {.type = SX_MSG_CHAT_WHO};
	cli_send(b, &who);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_MEMBERS);
	assert_int_equal(b->m.nnames, 2);
	sx_chat_msg bye = {.type = SX_MSG_CHAT_BYE};
	cli_send(b, &bye);
	assert_int_equal(cli_recv(b), 0xff); /* EOS */
	cli_close(b);
	cli_close(a);
	char path[800];
	snprintf(path, sizeof(path), "%s/queue/bob.jsonl", chat_dir);
	assert_int_not_equal(access(path, F_OK), 0);
	server_stop();
	/* a restart reads the transcript again: a replay is still refused */
	server_start(true);
	a = cli_open(&alice_id, NULL);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_WELCOME);
	cli_post(a, "@alice,bob", 2, 3, h2, "replayed", 8);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_REFUSED);
	assert_int_equal(a->m.why, SX_CHAT_REPLAY);
	cli_close(a);
	server_stop();
}

/* A signed receipt from c's identity. */
static void cli_receipt(cli *c, const char *conv, uint64_t n, const uint8_t *head, uint64_t count,
			int64_t t)
{
	sx_chat_msg *m = calloc(1, sizeof(*m));
	sx_err err = {0};
	assert_non_null(m);
	m->type = SX_MSG_CHAT_RECEIPT;
	snprintf(m->receipt.conv, sizeof(m->receipt.conv), "%s", conv);
	snprintf(m->receipt.signer, sizeof(m->receipt.signer), "%.*s", SX_CHAT_NAME_MAX,
		 c->id->name);
	m->receipt.n = n;
	m->receipt.count = count;
	m->receipt.time_ms = t;
	if (head != NULL)
		memcpy(m->receipt.head, head, SX_HASH_LEN);
	assert_int_equal(
	    sx_chat_receipt_sign(&m->receipt, c->id->key, sk_X509_value(c->id->chain, 0), &err), 0);
	memset(m->receipt.fp, 0, SX_HASH_LEN);
	cli_send(c, m);
	free(m);
}

static size_t count_in(const char *path, const char *what)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;
	if (f == NULL)
		return 0;
	while (getline(&line, &cap, f) > 0)
		n += strstr(line, what) != NULL;
	free(line);
	fclose(f);
	return n;
}

/* Receipts are a session's last word, one per conversation it touched: a
 * peer that sends them over and over, or for conversations the server
 * holds nothing of, does not grow the transcript and the queues with
 * them (each one a flushed write on the hub's thread). */
static void test_receipt_flood(void **state)
{
	(void)state;
	char path[800];
	uint8_t h1[SX_HASH_LEN];
	chat_sub = "chat-receipts";
	server_start(true);
	cli *a = cli_open(&alice_id, NULL);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_WELCOME);
	cli_post(a, "@alice,bob", 1, 1, NULL, "hello bob", 9);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_ACCEPTED);
	memcpy(h1, a->m.head, SX_HASH_LEN);
	for (int i = 0; i < 50; i++)
		cli_receipt(a, "@alice,bob", 1, h1, 1, hub_now_ms() + i);
	for (int i = 0; i < 50; i++) {
		char conv[64];
		snprintf(conv, sizeof(conv), "@alice,nobody%d", i);
		cli_receipt(a, conv, 0, NULL, 0, hub_now_ms());
	}
	sx_chat_msg who = {.type = SX_MSG_CHAT_WHO};
	cli_send(a, &who);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_MEMBERS); /* the receipts are handled */
	snprintf(path, sizeof(path), "%s/transcript.jsonl", chat_dir);
	assert_int_equal(count_in(path, "\"type\":\"receipt\""), 1);
	snprintf(path, sizeof(path), "%s/queue/bob.jsonl", chat_dir);
	assert_int_equal(count_in(path, "\"type\":\"receipt\""), 1);
	snprintf(path, sizeof(path), "%s/queue/nobody0.jsonl", chat_dir);
	assert_int_not_equal(access(path, F_OK), 0);
	cli_close(a);
	server_stop();
	chat_sub = "chat";
}

/* The same over the poll backend (a hub's ring is of the server's kind). */
static void test_relay_poll(void **state)
{
	srv_io = SX_IO_POLL;
	chat_sub = "chat-poll";
	test_relay_and_queue(state);
	srv_io = SX_IO_AUTO;
	chat_sub = "chat";
}

/* BYE, then the server's end of stream: the identity is offline. */
static void cli_bye(cli *c)
{
	sx_chat_msg bye = {.type = SX_MSG_CHAT_BYE};
	cli_send(c, &bye);
	assert_int_equal(cli_recv(c), 0xff);
	cli_close(c);
}

/* Nothing more before the answer to WHO. */
static void cli_nothing_more(cli *c)
{
	sx_chat_msg who = {.type = SX_MSG_CHAT_WHO};
	cli_send(c, &who);
	assert_int_equal(cli_recv(c), SX_MSG_CHAT_MEMBERS);
}

/* One DELIVER of message n sent again (after its author's CERT when cert). */
static void expect_resent(cli *c, bool cert, uint64_t n)
{
	if (cert)
		assert_int_equal(cli_recv(c), SX_MSG_CHAT_CERT);
	assert_int_equal(cli_recv(c), SX_MSG_CHAT_DELIVER);
	assert_int_equal(c->m.flags, SX_CHAT_F_RESENT);
	assert_true(c->m.post.n == n);
	assert_string_equal(c->m.post.conv, "@alice,bob");
}

/* A JOIN names the last message the client holds of each direct
 * conversation; the hub sends what is missing beyond it from its
 * transcript (at most queue_max, a NOTICE gap first when more are
 * missing), and its queue's delivery skips what the client holds. */
static void test_catch_up(void **state)
{
	(void)state;
	static const char *const conv = "@alice,bob";
	static const char *const tips3[] = {"@alice,bob", "@alice,carol", "@bob,carol"};
	static const uint64_t ns3[] = {3, 1, 9};
	uint8_t head[SX_HASH_LEN] = {0};
	char path[800];
	uint64_t n;
	chat_sub = "chat-sync";
	chat_qmax = 2;
	server_start(true);
	cli *a = cli_open(&alice_id, NULL);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_WELCOME);
	cli *b = cli_open(&bob_id, NULL);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_WELCOME);
	/* five messages, delivered live (and, say, lost on the way) */
	for (n = 1; n <= 5; n++) {
		cli_post(a, conv, n, n, n > 1 ? head : NULL, "hi", 2);
		assert_int_equal(cli_recv(a), SX_MSG_CHAT_ACCEPTED);
		assert_int_equal(a->m.queued, 0);
		memcpy(head, a->m.head, SX_HASH_LEN);
		if (n == 1)
			assert_int_equal(cli_recv(b), SX_MSG_CHAT_CERT);
		assert_int_equal(cli_recv(b), SX_MSG_CHAT_DELIVER);
		assert_int_equal(b->m.flags, 0);
	}
	cli_bye(b);
	/* holding 3: 4 and 5 again; a tip of a conversation bob is not in
	 * and one ahead of the server are ignored */
	b = cli_open_tips(&bob_id, NULL, tips3, ns3, 3);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_WELCOME);
	expect_resent(b, true, 4);
	expect_resent(b, false, 5);
	cli_nothing_more(b);
	cli_bye(b);
	/* holding 1: three missing, two sent (queue_max), a gap before them */
	b = cli_open_tips(&bob_id, NULL, &conv, (const uint64_t[]){1}, 1);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_WELCOME);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_NOTICE);
	assert_int_equal(b->m.kind, SX_CHAT_N_GAP);
	assert_true(b->m.n == 3);
	assert_non_null(strstr(b->m.reason, "at most 2 again"));
	expect_resent(b, true, 4);
	expect_resent(b, false, 5);
	cli_nothing_more(b);
	cli_bye(b);
	/* bob offline: 6 waits in his queue; holding 5, he gets it once */
	cli_post(a, conv, 6, 6, head, "queued", 6);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_ACCEPTED);
	assert_int_equal(a->m.queued, 1);
	memcpy(head, a->m.head, SX_HASH_LEN);
	b = cli_open_tips(&bob_id, NULL, &conv, (const uint64_t[]){5}, 1);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_WELCOME);
	expect_resent(b, true, 6);
	cli_nothing_more(b);
	cli_bye(b);
	/* 7 queued; holding it already (a delivery cut off after it arrived):
	 * nothing is sent, and the queue is done with */
	cli_post(a, conv, 7, 7, head, "seven", 5);
	assert_int_equal(cli_recv(a), SX_MSG_CHAT_ACCEPTED);
	assert_int_equal(a->m.queued, 1);
	b = cli_open_tips(&bob_id, NULL, &conv, (const uint64_t[]){7}, 1);
	assert_int_equal(cli_recv(b), SX_MSG_CHAT_WELCOME);
	cli_nothing_more(b);
	cli_bye(b);
	snprintf(path, sizeof(path), "%s/queue/bob.jsonl", chat_dir);
	assert_int_not_equal(access(path, F_OK), 0);
	cli_close(a);
	server_stop(); /* (after a restart, the index is read back: test_chat_resync.sh) */
	chat_qmax = 0;
	chat_sub = "chat";
}

static void test_no_chat(void **state)
{
	(void)state;
	server_start(false);
	cli *a = cli_open(&alice_id, NULL);
	assert_int_equal(cli_recv(a), SX_MSG_ERROR);
	cli_close(a);
	server_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_bucket),
	    cmocka_unit_test(test_queue_limits),
	    cmocka_unit_test(test_queue_push_during_delivery),
	    cmocka_unit_test(test_relay_and_queue),
	    cmocka_unit_test(test_relay_poll),
	    cmocka_unit_test(test_no_chat),
	    cmocka_unit_test(test_receipt_flood),
	    cmocka_unit_test(test_catch_up),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
