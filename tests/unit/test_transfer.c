/* A hostile, authenticated sender against the real receiver (sx_serve_run in
 * a thread on 127.0.0.1:0). The client below completes the genuine handshake
 * with a valid client certificate and then sends crafted sealed records: bad
 * paths, symlinks, protocol violations, malformed and oversized records, a
 * connection dropped mid-file. Each case checks the receiver's answer
 * (FILE_ERR or ERROR, its class and reason), that nothing lands outside
 * OUT/<peer>/, that no temporary remains, and that the server still serves
 * an honest session afterwards. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "engine/transfer/sx_held.h"
#include "engine/transfer/sx_transfer.h"
#include "engine/wire/sx_wire.h"
#include "pki/sx_pki.h"

#include <zstd.h>

#define PEER	   "cam-01"
#define CLI_RX	   (64u * 1024)
#define MAX_RECORD (64u * 1024)
#define CTRL_CAP   (SX_REC_HDR_LEN + 8192 + SX_REC_TAG_MAX)

static char *work;
static char out_dir[600], peer_dir[700];
static sx_identity srv_id, cli_id;
static pthread_t srv_thread;
static volatile sig_atomic_t srv_stop;
static int srv_port;
static pthread_mutex_t port_mu = PTHREAD_MUTEX_INITIALIZER;
static sx_err srv_err;
static int srv_rc;
static unsigned good_n;

/* ---- the server --------------------------------------------------------- */

static void on_listen(void *ctx, int port)
{
	(void)ctx;
	pthread_mutex_lock(&port_mu);
	srv_port = port;
	pthread_mutex_unlock(&port_mu);
}

static void *serve_main(void *arg)
{
	sx_serve_cfg *cfg = arg;
	srv_rc = sx_serve_run(cfg, &srv_err);
	return NULL;
}

static sx_serve_cfg srv_cfg;

static int run(const char *fmt, const char *a, const char *b)
{
	char cmd[4096];
	const char *bin = getenv("SX_TEST_BIN");
	if (bin == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), fmt, bin, a, b);
	return system(cmd);
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	/* The usual umask, whatever the caller's: the stored modes depend on
	 * it (test_mode_and_time). */
	umask(022);
	work = sx_test_tmpdir();
	if (work == NULL)
		return -1;
	/* Plain keys: the test needs no passphrase prompt. */
	if (run("'%s' ca init --ca '%s/ca' --name 'adv CA' --no-passphrase >/dev/null 2>&1", work,
		"") != 0 ||
	    run("'%s' ca issue --ca '%s/ca' --name server.test --role server --dns localhost "
		"--ip 127.0.0.1 --no-passphrase --out '%s/server' >/dev/null 2>&1",
		work, work) != 0 ||
	    run("'%s' ca issue --ca '%s/ca' --name " PEER
		" --role client --no-passphrase --out '%s/cam' >/dev/null 2>&1",
		work, work) != 0) {
		fprintf(stderr, "cannot make identities with SX_TEST_BIN\n");
		return -1;
	}
	sx_pass pass = {.none = true};
	sx_err err = {0};
	char p[700];
	snprintf(p, sizeof(p), "%s/server", work);
	if (sx_identity_load(p, &pass, &srv_id, &err) < 0) {
		fprintf(stderr, "server identity: %s\n", err.msg);
		return -1;
	}
	snprintf(p, sizeof(p), "%s/cam", work);
	if (sx_identity_load(p, &pass, &cli_id, &err) < 0) {
		fprintf(stderr, "client identity: %s\n", err.msg);
		return -1;
	}
	snprintf(out_dir, sizeof(out_dir), "%s/out", work);
	snprintf(peer_dir, sizeof(peer_dir), "%s/" PEER, out_dir);
	srv_cfg = (sx_serve_cfg){
	    .listen = "127.0.0.1:0",
	    .id = &srv_id,
	    .out_dir = out_dir,
	    .max_conns = 8,
	    .io = SX_IO_AUTO,
	    .max_record = MAX_RECORD,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 5000,
	    .stop = &srv_stop,
	    .on_listen = on_listen,
	};
	if (pthread_create(&srv_thread, NULL, serve_main, &srv_cfg) != 0)
		return -1;
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&port_mu);
		int port = srv_port;
		pthread_mutex_unlock(&port_mu);
		if (port != 0)
			return 0;
		usleep(10000);
	}
	fprintf(stderr, "server did not start: %s\n", srv_err.msg);
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	srv_stop = 1;
	pthread_join(srv_thread, NULL);
	if (srv_rc != 0)
		fprintf(stderr, "server: %s\n", srv_err.msg);
	sx_identity_free(&srv_id);
	sx_identity_free(&cli_id);
	sx_test_rmtree(work);
	free(work);
	return srv_rc == 0 ? 0 : -1;
}

/* ---- a blocking client that speaks sealed records ---------------------- */

typedef struct cli {
	int fd;
	sx_chan_ctx *ctx;
	sx_link link;
	uint8_t rx[SX_REC_HDR_LEN + CLI_RX + SX_REC_TAG_MAX];
} cli;

static int send_msg(cli *c, const sx_msg *m);

/* Connects and completes the handshake; no SESSION yet. */
static cli *cli_open_raw(sx_suite suite)
{
	cli *c = calloc(1, sizeof(*c));
	sx_err err = {0};
	char port[16];
	assert_non_null(c);
	snprintf(port, sizeof(port), "%d", srv_port);
	assert_int_equal(sx_net_connect("127.0.0.1", port, 5000, &c->fd, &err), 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sx_chan_cfg cc = {.server = false,
			  .id = &cli_id,
			  .server_name = "localhost",
			  .suite = suite,
			  .max_record = CLI_RX + SX_REC_TAG_MAX};
	assert_int_equal(sx_chan_ctx_new(&c->ctx, &cc, &err), 0);
	assert_int_equal(sx_link_init(&c->link, c->ctx, &err), 0);
	if (sx_test_handshake(&c->link, c->fd, &err) < 0)
		fail_msg("handshake: %s", err.msg);
	sx_link_rx_set(&c->link, c->rx, sizeof(c->rx));
	c->link.max_body = CLI_RX + SX_REC_TAG_MAX;
	return c;
}

static const uint8_t test_tid[SX_TID_LEN] = {0x5e, 0x55, 0x10, 0x4e};
#define TEST_LEAF 65536u

/* A session (unsigned unless sign): every case but the SESSION ones. */
static cli *cli_open_session(sx_suite suite, bool sign)
{
	cli *c = cli_open_raw(suite);
	sx_msg m = {
	    .type = SX_MSG_SESSION, .flags = sign ? SX_SESSION_SIGNED : 0, .hash_chunk = TEST_LEAF};
	memcpy(m.transfer_id, test_tid, SX_TID_LEN);
	assert_int_equal(send_msg(c, &m), 0);
	return c;
}

static cli *cli_open_suite(sx_suite suite)
{
	return cli_open_session(suite, false);
}

static cli *cli_open(void)
{
	return cli_open_suite(SX_SUITE_AES256GCM);
}

static void cli_close(cli *c)
{
	if (c == NULL)
		return;
	sx_link_free(&c->link);
	sx_chan_ctx_free(c->ctx);
	close(c->fd);
	free(c);
}

/* Seals plen bytes of pt as one record; the sealed bytes go to *rec (caller
 * frees) when rec is not NULL, else they are sent. */
static int seal_flags(cli *c, uint8_t type, uint8_t flags, const void *pt, size_t plen,
		      uint8_t **rec, size_t *rlen)
{
	sx_err err = {0};
	uint8_t *b = malloc(SX_REC_HDR_LEN + plen + SX_REC_TAG_MAX);
	assert_non_null(b);
	if (plen > 0)
		memcpy(b + SX_REC_HDR_LEN, pt, plen);
	size_t len = 0;
	assert_int_equal(sx_record_seal(&c->link.k.tx, type, flags, b, plen, &len, &err), 0);
	if (rec != NULL) {
		*rec = b;
		*rlen = len;
		return 0;
	}
	int rc = sx_test_send_all(c->fd, b, len);
	free(b);
	return rc;
}

static int seal(cli *c, uint8_t type, const void *pt, size_t plen, uint8_t **rec, size_t *rlen)
{
	return seal_flags(c, type, 0, pt, plen, rec, rlen);
}

static int send_rec(cli *c, uint8_t type, const void *pt, size_t plen)
{
	return seal(c, type, pt, plen, NULL, NULL);
}

static int send_msg(cli *c, const sx_msg *m)
{
	uint8_t buf[CTRL_CAP];
	size_t len = 0;
	sx_err err = {0};
	assert_int_equal(sx_link_seal_msg(&c->link, m, buf, sizeof(buf), &len, &err), 0);
	return sx_test_send_all(c->fd, buf, len);
}

static int send_begin(cli *c, uint32_t id, const void *path, size_t plen, uint64_t size)
{
	sx_msg m = {.type = SX_MSG_FILE_BEGIN,
		    .file_id = id,
		    .size = size,
		    .mode = 0644,
		    .mtime_sec = 1600000000,
		    .path = path,
		    .path_len = plen};
	return send_msg(c, &m);
}

static int send_end(cli *c, uint32_t id, uint64_t size)
{
	sx_msg m = {.type = SX_MSG_FILE_END, .file_id = id, .size = size};
	return send_msg(c, &m);
}

static int send_file(cli *c, uint32_t id, const char *path, const void *data, size_t n)
{
	if (send_begin(c, id, path, strlen(path), n) < 0)
		return -1;
	if (n > 0 && send_rec(c, SX_REC_DATA, data, n) < 0)
		return -1;
	return send_end(c, id, n);
}

/* Next record from the server: 0, or -1 at EOF or on a receive error. */
static int recv_rec(cli *c, uint8_t *type, uint8_t **pt, size_t *len)
{
	sx_err err = {0};
	for (;;) {
		uint8_t *buf;
		size_t want;
		bool complete;
		uint8_t flags;
		sx_link_rx_want(&c->link, &buf, &want);
		ssize_t r = recv(c->fd, buf, want, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (sx_link_rx_input(&c->link, (size_t)r, &complete, type, &flags, pt, len, &err) <
		    0)
			fail_msg("client: server's record: %s", err.msg);
		if (complete)
			return 0;
	}
}

static void expect_msg(cli *c, uint8_t want, sx_msg *m)
{
	uint8_t type, *pt;
	size_t len;
	sx_err err = {0};
	assert_int_equal(recv_rec(c, &type, &pt, &len), 0);
	assert_int_equal(type, SX_REC_CTRL);
	assert_int_equal(sx_msg_decode(pt, len, m, &err), 0);
	if (m->type != want)
		fail_msg("expected message 0x%02x, got 0x%02x (%.*s)", want, m->type,
			 (int)m->reason_len, m->reason ? (const char *)m->reason : "");
}

static bool has(const sx_msg *m, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= m->reason_len; i++)
		if (memcmp(m->reason + i, needle, n) == 0)
			return true;
	return false;
}

static void expect_file_ok(cli *c, uint32_t id)
{
	sx_msg m;
	expect_msg(c, SX_MSG_FILE_OK, &m);
	assert_int_equal(m.file_id, id);
}

static void expect_file_err(cli *c, uint32_t id, uint8_t cls, const char *needle)
{
	sx_msg m;
	expect_msg(c, SX_MSG_FILE_ERR, &m);
	assert_int_equal(m.file_id, id);
	if (m.err_class != cls || !has(&m, needle))
		fail_msg("FILE_ERR class %u '%.*s': wanted class %u naming '%s'", m.err_class,
			 (int)m.reason_len, (const char *)m.reason, cls, needle);
}

/* The fatal ERROR, then the server closes the connection. */
static void expect_error(cli *c, uint8_t cls, const char *needle)
{
	sx_msg m;
	expect_msg(c, SX_MSG_ERROR, &m);
	if (m.err_class != cls || !has(&m, needle))
		fail_msg("ERROR class %u '%.*s': wanted class %u naming '%s'", m.err_class,
			 (int)m.reason_len, (const char *)m.reason, cls, needle);
	uint8_t type, *pt;
	size_t len;
	assert_int_equal(recv_rec(c, &type, &pt, &len), -1);
}

static void end_session(cli *c)
{
	uint8_t type, *pt;
	size_t len;
	assert_int_equal(send_rec(c, SX_REC_EOS, NULL, 0), 0);
	assert_int_equal(recv_rec(c, &type, &pt, &len), 0);
	assert_int_equal(type, SX_REC_EOS);
}

/* ---- checks on the output folder --------------------------------------- */

static int partials;
static int count_partial(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	size_t n = strlen(p);
	if (n > 7 && strcmp(p + n - 7, ".sxpart") == 0)
		partials++;
	return 0;
}

static int count_partials(void)
{
	partials = 0;
	nftw(out_dir, count_partial, 16, FTW_PHYS);
	return partials;
}

/* The server removes temporaries once the connection's operations drain. */
static void assert_no_partials(void)
{
	for (int i = 0; i < 300 && count_partials() > 0; i++)
		usleep(10000);
	assert_int_equal(count_partials(), 0);
}

static bool exists_at(const char *dir, const char *rel)
{
	char p[SX_PATH_MAX + 2048];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

static void assert_file(const char *rel, const void *data, size_t n)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", peer_dir, rel);
	FILE *f = fopen(p, "rb");
	if (f == NULL)
		fail_msg("%s not stored", p);
	uint8_t *b = malloc(n + 1);
	size_t got = fread(b, 1, n + 1, f);
	fclose(f);
	assert_int_equal(got, n);
	assert_memory_equal(b, data, n);
	free(b);
}

/* An honest session on a fresh connection: the server still serves. */
static void assert_server_serves(void)
{
	char name[64], body[64];
	snprintf(name, sizeof(name), "good-%u.txt", ++good_n);
	snprintf(body, sizeof(body), "honest file %u\n", good_n);
	cli *c = cli_open();
	assert_int_equal(send_file(c, 1, name, body, strlen(body)), 0);
	expect_file_ok(c, 1);
	end_session(c);
	cli_close(c);
	assert_file(name, body, strlen(body));
}

/* ---- cases -------------------------------------------------------------- */

static void test_bad_paths(void **state)
{
	(void)state;
	char longp[5000];
	memset(longp, 'a', sizeof(longp));
	for (size_t i = 100; i < sizeof(longp); i += 100)
		longp[i] = '/';
	struct {
		const char *p;
		size_t n;
		const char *why;
	} bad[] = {
	    {"../sxfer-adv-esc1", 17, "'..'"},
	    {"/etc/sxfer-adv-esc2", 19, "absolute"},
	    {"a/../../sxfer-adv-esc3", 22, "'..'"},
	    {"a//b", 4, "empty"},
	    {"", 0, "empty"},
	    {"a\0/../../x", 10, "NUL"},
	    {"tab\there", 8, "control"},
	    {longp, sizeof(longp), "longer than"},
	};
	cli *c = cli_open();
	for (uint32_t i = 0; i < SX_ARRAY_LEN(bad); i++) {
		assert_int_equal(send_begin(c, i + 1, bad[i].p, bad[i].n, 5), 0);
		assert_int_equal(send_rec(c, SX_REC_DATA, "hello", 5), 0);
		assert_int_equal(send_end(c, i + 1, 5), 0);
		/* A path the receiver refuses is a local refusal on the
		 * receiver: class 5 (PROTOCOL.md lists 1, 3, 4, 5, 6). */
		expect_file_err(c, i + 1, SX_E_IO, bad[i].why);
	}
	/* The session goes on: a valid file in the same session is stored. */
	assert_int_equal(send_file(c, 100, "after-bad-paths.txt", "fine", 4), 0);
	expect_file_ok(c, 100);
	end_session(c);
	cli_close(c);
	assert_file("after-bad-paths.txt", "fine", 4);
	assert_false(exists_at(out_dir, "sxfer-adv-esc1"));
	assert_false(exists_at(work, "sxfer-adv-esc1"));
	assert_false(exists_at("/etc", "sxfer-adv-esc2"));
	assert_false(exists_at(peer_dir, "etc"));
	assert_false(exists_at(out_dir, "sxfer-adv-esc3"));
	assert_false(exists_at(work, "sxfer-adv-esc3"));
	assert_no_partials();
	assert_server_serves();
}

static void test_symlinks(void **state)
{
	(void)state;
	char outside[700], lnk[800], lnk2[800], target[800];
	snprintf(outside, sizeof(outside), "%s/outside", work);
	snprintf(lnk, sizeof(lnk), "%s/link", peer_dir);
	snprintf(lnk2, sizeof(lnk2), "%s/lnkfile", peer_dir);
	snprintf(target, sizeof(target), "%s/victim", outside);
	assert_int_equal(mkdir(outside, 0755), 0);
	mkdir(out_dir, 0755);
	mkdir(peer_dir, 0755);
	assert_int_equal(symlink(outside, lnk), 0);
	assert_int_equal(symlink(target, lnk2), 0);

	cli *c = cli_open();
	/* A folder component that is a symlink leading out. */
	assert_int_equal(send_file(c, 1, "link/x", "evil", 4), 0);
	expect_file_err(c, 1, SX_E_IO, "link");
	/* Deeper, through DIR. */
	sx_msg d = {
	    .type = SX_MSG_DIR, .mode = 0755, .path = (const uint8_t *)"link/sub", .path_len = 8};
	assert_int_equal(send_msg(c, &d), 0);
	expect_file_err(c, 0, SX_E_IO, "link");
	/* The final name is a symlink to a file outside. */
	assert_int_equal(send_file(c, 2, "lnkfile", "evil", 4), 0);
	expect_file_err(c, 2, SX_E_IO, "exists");
	end_session(c);
	cli_close(c);
	assert_false(exists_at(outside, "x"));
	assert_false(exists_at(outside, "sub"));
	assert_false(exists_at(outside, "victim"));
	unlink(lnk);
	unlink(lnk2);
	assert_no_partials();
	assert_server_serves();
}

/* A violation: the server answers ERROR (class, reason) and closes; the
 * temporary of the file in progress is removed; the final name is absent. */
static void violation_done(cli *c, uint8_t cls, const char *why, const char *final)
{
	expect_error(c, cls, why);
	cli_close(c);
	if (final != NULL)
		assert_false(exists_at(peer_dir, final));
	assert_no_partials();
	assert_server_serves();
}

static void test_data_outside_file(void **state)
{
	(void)state;
	cli *c = cli_open();
	assert_int_equal(send_rec(c, SX_REC_DATA, "stray", 5), 0);
	violation_done(c, SX_E_INTEGRITY, "data outside a file", NULL);
}

static void test_more_data_than_announced(void **state)
{
	(void)state;
	uint8_t buf[20] = {0};
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "over.bin", 8, 10), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, 8), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, 8), 0);
	violation_done(c, SX_E_INTEGRITY, "more data than announced", "over.bin");
}

/* A file the receiver refused may end before its announced size (the
 * sender stops sending what would be dropped); the session goes on. */
static void test_refused_file_ends_early(void **state)
{
	(void)state;
	uint8_t buf[64] = {0};
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "../cut.bin", 10, 1000), 0);
	expect_file_err(c, 1, SX_E_IO, "");
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, sizeof(buf)), 0);
	assert_int_equal(send_end(c, 1, sizeof(buf)), 0);
	assert_int_equal(send_file(c, 2, "after-cut.bin", "data", 4), 0);
	expect_file_ok(c, 2);
	end_session(c);
	cli_close(c);
	assert_true(exists_at(peer_dir, "after-cut.bin"));
	assert_no_partials();

	/* Still only for a refused file: a file being stored must end at
	 * its announced size (test_file_end_size_mismatch), and even a
	 * refused one must end where its data ended. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "../cut2.bin", 11, 1000), 0);
	expect_file_err(c, 1, SX_E_IO, "");
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, sizeof(buf)), 0);
	assert_int_equal(send_end(c, 1, 10), 0);
	violation_done(c, SX_E_INTEGRITY, "at the end", "cut2.bin");
	assert_server_serves();
}

static void test_file_end_size_mismatch(void **state)
{
	(void)state;
	uint8_t buf[10] = {0};
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "short.bin", 9, 10), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, 5), 0);
	assert_int_equal(send_end(c, 1, 5), 0);
	violation_done(c, SX_E_INTEGRITY, "announced", "short.bin");

	c = cli_open();
	assert_int_equal(send_begin(c, 1, "long.bin", 8, 10), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, 10), 0);
	assert_int_equal(send_end(c, 1, 11), 0);
	violation_done(c, SX_E_INTEGRITY, "10 bytes received", "long.bin");

	/* A stream of unknown length whose FILE_END disagrees. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "stream.bin", 10, SX_SIZE_UNKNOWN), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, 10), 0);
	assert_int_equal(send_end(c, 1, 9), 0);
	violation_done(c, SX_E_INTEGRITY, "10 bytes received", "stream.bin");
}

static void test_file_end_other_id(void **state)
{
	(void)state;
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 7, "other.bin", 9, 4), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, "abcd", 4), 0);
	assert_int_equal(send_end(c, 8, 4), 0);
	violation_done(c, SX_E_INTEGRITY, "not begun", "other.bin");

	c = cli_open();
	assert_int_equal(send_end(c, 1, 0), 0);
	violation_done(c, SX_E_INTEGRITY, "not begun", NULL);
}

static void test_begin_inside_file(void **state)
{
	(void)state;
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "outer.bin", 9, 4), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, "ab", 2), 0);
	assert_int_equal(send_begin(c, 2, "inner.bin", 9, 4), 0);
	violation_done(c, SX_E_INTEGRITY, "inside another file", "outer.bin");
	assert_false(exists_at(peer_dir, "inner.bin"));
}

static void test_eos_inside_file(void **state)
{
	(void)state;
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "cut.bin", 7, 4), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, "ab", 2), 0);
	assert_int_equal(send_rec(c, SX_REC_EOS, NULL, 0), 0);
	violation_done(c, SX_E_INTEGRITY, "end of stream inside a file", "cut.bin");
}

/* A sealed record whose header byte at `at` is then set to v. */
static void send_patched(cli *c, size_t at, uint8_t v)
{
	uint8_t *rec;
	size_t len;
	assert_int_equal(seal(c, SX_REC_DATA, "abcd", 4, &rec, &len), 0);
	rec[at] = v;
	assert_int_equal(sx_test_send_all(c->fd, rec, len), 0);
	free(rec);
}

static void test_malformed_records(void **state)
{
	(void)state;
	cli *c = cli_open();
	send_patched(c, 0, 9);
	violation_done(c, SX_E_INTEGRITY, "unknown record type 9", NULL);

	c = cli_open();
	send_patched(c, 2, 1);
	violation_done(c, SX_E_INTEGRITY, "reserved header bytes", NULL);

	c = cli_open();
	send_patched(c, 3, 0x80);
	violation_done(c, SX_E_INTEGRITY, "reserved header bytes", NULL);

	c = cli_open();
	send_patched(c, 1, 0x40);
	violation_done(c, SX_E_INTEGRITY, "unknown flags", NULL);

	/* A correctly sealed CTRL record whose message type is unknown. */
	c = cli_open();
	uint8_t unknown[3] = {0x99, 0, 0};
	assert_int_equal(send_rec(c, SX_REC_CTRL, unknown, sizeof(unknown)), 0);
	violation_done(c, SX_E_INTEGRITY, "unknown control message", NULL);

	/* A message only the receiver sends. */
	c = cli_open();
	sx_msg ok = {.type = SX_MSG_FILE_OK, .file_id = 1, .size = 0};
	assert_int_equal(send_msg(c, &ok), 0);
	violation_done(c, SX_E_INTEGRITY, "unexpected control message 0x20", NULL);

	/* A truncated control message (FILE_END without its size). */
	c = cli_open();
	uint8_t trunc[5] = {SX_MSG_FILE_END, 0, 0, 0, 1};
	assert_int_equal(send_rec(c, SX_REC_CTRL, trunc, sizeof(trunc)), 0);
	violation_done(c, SX_E_INTEGRITY, "malformed control message", NULL);
}

static void test_tampered_and_replayed(void **state)
{
	(void)state;
	uint8_t *rec;
	size_t len;
	/* One flipped ciphertext bit in a file's data. */
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "tampered.bin", 12, 4), 0);
	assert_int_equal(seal(c, SX_REC_DATA, "abcd", 4, &rec, &len), 0);
	rec[SX_REC_HDR_LEN + 1] ^= 0x01;
	assert_int_equal(sx_test_send_all(c->fd, rec, len), 0);
	free(rec);
	violation_done(c, SX_E_INTEGRITY, "failed authentication", "tampered.bin");

	/* The same sealed record twice (a replay). */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "replayed.bin", 12, 8), 0);
	assert_int_equal(seal(c, SX_REC_DATA, "abcd", 4, &rec, &len), 0);
	assert_int_equal(sx_test_send_all(c->fd, rec, len), 0);
	assert_int_equal(sx_test_send_all(c->fd, rec, len), 0);
	free(rec);
	violation_done(c, SX_E_INTEGRITY, "failed authentication", "replayed.bin");

	/* Two records swapped (reordered). */
	uint8_t *r1, *r2;
	size_t l1, l2;
	c = cli_open();
	assert_int_equal(seal(c, SX_REC_DATA, "1111", 4, &r1, &l1), 0);
	assert_int_equal(seal(c, SX_REC_DATA, "2222", 4, &r2, &l2), 0);
	assert_int_equal(sx_test_send_all(c->fd, r2, l2), 0);
	assert_int_equal(sx_test_send_all(c->fd, r1, l1), 0);
	free(r1);
	free(r2);
	violation_done(c, SX_E_INTEGRITY, "failed authentication", NULL);
}

/* ---- compressed DATA records (docs/PROTOCOL.md) ------------------------ */

/* A compressed DATA record: orig (the announced length) || frame, where the
 * frame is src[0..n) compressed (or garbage when src is NULL). */
static int send_zrec(cli *c, uint32_t orig, const void *src, size_t n)
{
	size_t cap = 4 + ZSTD_compressBound(n);
	uint8_t *b = malloc(cap);
	assert_non_null(b);
	b[0] = (uint8_t)(orig >> 24);
	b[1] = (uint8_t)(orig >> 16);
	b[2] = (uint8_t)(orig >> 8);
	b[3] = (uint8_t)orig;
	size_t z = n;
	if (src != NULL) {
		z = ZSTD_compress(b + 4, cap - 4, src, n, 3);
		assert_false(ZSTD_isError(z));
	} else {
		for (size_t i = 0; i < n; i++)
			b[4 + i] = (uint8_t)(i * 131 + 7);
	}
	int rc = seal_flags(c, SX_REC_DATA, SX_REC_FLAG_COMPRESSED, b, 4 + z, NULL, NULL);
	free(b);
	return rc;
}

static void test_compressed_ok(void **state)
{
	(void)state;
	size_t n = 60000;
	uint8_t *data = malloc(n);
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)("log line 0123456789\n"[i % 20]);
	cli *c = cli_open();
	/* Two records: one compressed, one plain, in the same file. */
	assert_int_equal(send_begin(c, 1, "z.log", 5, n + 100), 0);
	assert_int_equal(send_zrec(c, (uint32_t)n, data, n), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, data, 100), 0);
	assert_int_equal(send_end(c, 1, n + 100), 0);
	expect_file_ok(c, 1);
	/* A stream of unknown length. */
	assert_int_equal(send_begin(c, 2, "z.stream", 8, SX_SIZE_UNKNOWN), 0);
	assert_int_equal(send_zrec(c, (uint32_t)n, data, n), 0);
	assert_int_equal(send_end(c, 2, n), 0);
	expect_file_ok(c, 2);
	end_session(c);
	cli_close(c);
	uint8_t *want = malloc(n + 100);
	assert_non_null(want);
	memcpy(want, data, n);
	memcpy(want + n, data, 100);
	assert_file("z.log", want, n + 100);
	assert_file("z.stream", data, n);
	free(want);
	free(data);
}

static void test_compressed_hostile(void **state)
{
	(void)state;
	uint8_t *zeros = calloc(1, 60000);
	assert_non_null(zeros);
	cli *c;

	/* Announces more than the file has still to receive. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z1.bin", 6, 100), 0);
	assert_int_equal(send_zrec(c, 1000, zeros, 1000), 0);
	violation_done(c, SX_E_INTEGRITY, "more than announced for the file", "z1.bin");

	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z1b.bin", 7, 1000), 0);
	assert_int_equal(send_zrec(c, 600, zeros, 600), 0);
	assert_int_equal(send_zrec(c, 600, zeros, 600), 0);
	violation_done(c, SX_E_INTEGRITY, "more than announced for the file", "z1b.bin");

	/* Announces more than the receiver's maximum record. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z2.bin", 6, 1u << 20), 0);
	assert_int_equal(send_zrec(c, 100000, zeros, 1000), 0);
	violation_done(c, SX_E_INTEGRITY, "more than the maximum record", "z2.bin");

	/* A bomb: a small frame that expands beyond what it announces. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z3.bin", 6, 1u << 20), 0);
	assert_int_equal(send_zrec(c, 1000, zeros, 60000), 0);
	violation_done(c, SX_E_INTEGRITY, "does not decompress", "z3.bin");

	/* A frame that expands to less than it announces. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z4.bin", 6, 1u << 20), 0);
	assert_int_equal(send_zrec(c, 2000, zeros, 1000), 0);
	violation_done(c, SX_E_INTEGRITY, "not the 2000 announced", "z4.bin");

	/* Garbage instead of a frame. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z5.bin", 6, 1u << 20), 0);
	assert_int_equal(send_zrec(c, 1000, NULL, 500), 0);
	violation_done(c, SX_E_INTEGRITY, "not one zstd frame", "z5.bin");

	/* Length 0, and a record too short to hold its length. */
	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z6.bin", 6, 10), 0);
	assert_int_equal(send_zrec(c, 0, zeros, 0), 0);
	violation_done(c, SX_E_INTEGRITY, "length 0", "z6.bin");

	c = cli_open();
	assert_int_equal(send_begin(c, 1, "z7.bin", 6, 10), 0);
	assert_int_equal(seal_flags(c, SX_REC_DATA, SX_REC_FLAG_COMPRESSED, "ab", 2, NULL, NULL),
			 0);
	violation_done(c, SX_E_INTEGRITY, "without its length", "z7.bin");

	/* Two frames where one is expected. */
	c = cli_open();
	{
		uint8_t b[4 + 2 * 64];
		size_t z1 = ZSTD_compress(b + 4, 64, zeros, 500, 1);
		assert_false(ZSTD_isError(z1));
		size_t z2 = ZSTD_compress(b + 4 + z1, 64, zeros, 500, 1);
		assert_false(ZSTD_isError(z2));
		b[0] = 0;
		b[1] = 0;
		b[2] = 0x03;
		b[3] = 0xe8; /* 1000 */
		assert_int_equal(send_begin(c, 1, "z8.bin", 6, 1000), 0);
		assert_int_equal(
		    seal_flags(c, SX_REC_DATA, SX_REC_FLAG_COMPRESSED, b, 4 + z1 + z2, NULL, NULL),
		    0);
	}
	violation_done(c, SX_E_INTEGRITY, "not one zstd frame", "z8.bin");

	/* The flag on a control record. */
	c = cli_open();
	{
		sx_msg m = {.type = SX_MSG_FILE_END, .file_id = 1, .size = 0};
		uint8_t b[256];
		sx_wbuf w = sx_wbuf_make(b, sizeof(b));
		sx_msg_encode(&m, &w);
		assert_int_equal(
		    seal_flags(c, SX_REC_CTRL, SX_REC_FLAG_COMPRESSED, b, w.len, NULL, NULL), 0);
	}
	violation_done(c, SX_E_INTEGRITY, "only DATA", NULL);
	free(zeros);
}

static void test_oversized_record(void **state)
{
	(void)state;
	/* A header announcing 1 MiB against a 64 KiB --max-record: refused
	 * from the header alone (the body is never sent). */
	cli *c = cli_open();
	uint8_t hdr[SX_REC_HDR_LEN] = {SX_REC_DATA, 0, 0, 0, 0x00, 0x10, 0x00, 0x10};
	assert_int_equal(send_begin(c, 1, "big.bin", 7, 1u << 20), 0);
	assert_int_equal(sx_test_send_all(c->fd, hdr, sizeof(hdr)), 0);
	violation_done(c, SX_E_INTEGRITY, "exceeds the limit", "big.bin");

	/* 4 GiB - 1. */
	c = cli_open();
	uint8_t huge[SX_REC_HDR_LEN] = {SX_REC_CTRL, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
	assert_int_equal(sx_test_send_all(c->fd, huge, sizeof(huge)), 0);
	violation_done(c, SX_E_INTEGRITY, "exceeds the limit", NULL);

	/* One byte over the limit, sealed and sent whole. */
	c = cli_open();
	size_t tag = sx_suite_tag_len(SX_SUITE_AES256GCM);
	size_t plen = MAX_RECORD - tag + 1;
	uint8_t *pt = calloc(1, plen);
	assert_non_null(pt);
	assert_int_equal(send_begin(c, 1, "edge.bin", 8, plen), 0);
	(void)send_rec(c, SX_REC_DATA, pt, plen); /* the server may close first */
	free(pt);
	violation_done(c, SX_E_INTEGRITY, "exceeds the limit", "edge.bin");

	/* Exactly the limit is accepted. */
	c = cli_open();
	plen = MAX_RECORD - tag;
	pt = malloc(plen);
	assert_non_null(pt);
	memset(pt, 0x5a, plen);
	assert_int_equal(send_file(c, 1, "edge-ok.bin", pt, plen), 0);
	expect_file_ok(c, 1);
	end_session(c);
	cli_close(c);
	assert_file("edge-ok.bin", pt, plen);
	free(pt);
}

static void test_closed_mid_file(void **state)
{
	(void)state;
	uint8_t buf[500];
	memset(buf, 7, sizeof(buf));
	cli *c = cli_open();
	assert_int_equal(send_begin(c, 1, "mid.bin", 7, 1000), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, buf, sizeof(buf)), 0);
	/* The temporary exists while the file is in progress... */
	for (int i = 0; i < 300 && count_partials() == 0; i++)
		usleep(10000);
	assert_int_equal(count_partials(), 1);
	/* ...and goes when the connection is dropped without EOS. */
	cli_close(c);
	assert_no_partials();
	assert_false(exists_at(peer_dir, "mid.bin"));
	assert_server_serves();
}

static void test_many_small_files(void **state)
{
	(void)state;
	enum { N = 2000, BATCH = 100 };
	cli *c = cli_open();
	sx_msg d = {.type = SX_MSG_DIR,
		    .mode = 0755,
		    .path = (const uint8_t *)"many",
		    .path_len = 4,
		    .mtime_sec = 1500000000};
	assert_int_equal(send_msg(c, &d), 0);
	for (uint32_t b = 0; b < N; b += BATCH) {
		for (uint32_t i = b; i < b + BATCH; i++) {
			char name[64], body[64];
			snprintf(name, sizeof(name), "many/f%04u", i);
			int n = snprintf(body, sizeof(body), "content of file %u\n", i);
			assert_int_equal(send_file(c, i + 1, name, body, (size_t)n), 0);
		}
		for (uint32_t i = b; i < b + BATCH; i++) {
			sx_msg m;
			expect_msg(c, SX_MSG_FILE_OK, &m);
		}
	}
	end_session(c);
	cli_close(c);
	int count = 0;
	char p[800];
	for (unsigned i = 0; i < N; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "many/f%04u", i);
		count += exists_at(peer_dir, rel);
	}
	assert_int_equal(count, N);
	unsigned spot[] = {0, 1, 999, 1500, N - 1};
	for (size_t i = 0; i < SX_ARRAY_LEN(spot); i++) {
		char rel[64], body[64];
		snprintf(rel, sizeof(rel), "many/f%04u", spot[i]);
		int n = snprintf(body, sizeof(body), "content of file %u\n", spot[i]);
		assert_file(rel, body, (size_t)n);
	}
	struct stat st;
	snprintf(p, sizeof(p), "%s/many", peer_dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mtime, 1500000000);
	assert_no_partials();
}

static void test_suites_and_duplicate(void **state)
{
	(void)state;
	sx_suite suites[] = {SX_SUITE_AES256GCM, SX_SUITE_AES256CTR_HMAC,
			     SX_SUITE_CHACHA20POLY1305};
	for (size_t i = 0; i < SX_ARRAY_LEN(suites); i++) {
		char name[32];
		snprintf(name, sizeof(name), "suite-%zu.txt", i);
		cli *c = cli_open_suite(suites[i]);
		assert_int_equal(send_file(c, 1, name, "x", 1), 0);
		expect_file_ok(c, 1);
		/* The same name again: refused (no --overwrite), the first kept. */
		assert_int_equal(send_file(c, 2, name, "y", 1), 0);
		expect_file_err(c, 2, SX_E_IO, "exists");
		end_session(c);
		cli_close(c);
		assert_file(name, "x", 1);
	}
	assert_no_partials();
}

static void test_same_name_in_flight(void **state)
{
	(void)state;
	/* Two files with one name back to back: both temporaries exist before
	 * either is renamed; exactly one wins, the other is refused, and the
	 * stored bytes are the winner's. */
	cli *c = cli_open();
	assert_int_equal(send_file(c, 1, "twice.txt", "first", 5), 0);
	assert_int_equal(send_file(c, 2, "twice.txt", "other", 5), 0);
	uint32_t ok_id = 0;
	int errs = 0;
	for (int i = 0; i < 2; i++) {
		sx_msg m;
		uint8_t type, *pt;
		size_t len;
		sx_err err = {0};
		assert_int_equal(recv_rec(c, &type, &pt, &len), 0);
		assert_int_equal(type, SX_REC_CTRL);
		assert_int_equal(sx_msg_decode(pt, len, &m, &err), 0);
		if (m.type == SX_MSG_FILE_OK) {
			ok_id = m.file_id;
		} else {
			assert_int_equal(m.type, SX_MSG_FILE_ERR);
			assert_int_equal(m.err_class, SX_E_IO);
			assert_true(has(&m, "exists"));
			errs++;
		}
	}
	assert_int_equal(errs, 1);
	assert_true(ok_id == 1 || ok_id == 2);
	end_session(c);
	cli_close(c);
	assert_file("twice.txt", ok_id == 1 ? "first" : "other", 5);
	assert_no_partials();
}

static void test_mode_and_time(void **state)
{
	(void)state;
	/* Set-uid, set-gid and sticky bits from the sender are dropped, and
	 * the server's umask (022) masks the rest: a 0666 file or a 0777
	 * folder is not stored group- or world-writable. */
	cli *c = cli_open();
	sx_msg d = {.type = SX_MSG_DIR,
		    .mode = 0777,
		    .path = (const uint8_t *)"open/sub",
		    .path_len = 8,
		    .mtime_sec = 1500000000};
	assert_int_equal(send_msg(c, &d), 0);
	sx_msg rw = {.type = SX_MSG_FILE_BEGIN,
		     .file_id = 2,
		     .size = 2,
		     .mode = 0666,
		     .mtime_sec = 1234567890,
		     .path = (const uint8_t *)"open/sub/rw.bin",
		     .path_len = 15};
	assert_int_equal(send_msg(c, &rw), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, "hi", 2), 0);
	assert_int_equal(send_end(c, 2, 2), 0);
	expect_file_ok(c, 2);
	sx_msg m = {.type = SX_MSG_FILE_BEGIN,
		    .file_id = 1,
		    .size = 2,
		    .mode = 07777,
		    .mtime_sec = 1234567890,
		    .mtime_nsec = 5,
		    .path = (const uint8_t *)"suid.bin",
		    .path_len = 8};
	assert_int_equal(send_msg(c, &m), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, "hi", 2), 0);
	assert_int_equal(send_end(c, 1, 2), 0);
	expect_file_ok(c, 1);
	end_session(c);
	cli_close(c);
	char p[800];
	struct stat st;
	snprintf(p, sizeof(p), "%s/suid.bin", peer_dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_mtime, 1234567890);
	snprintf(p, sizeof(p), "%s/open/sub/rw.bin", peer_dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	snprintf(p, sizeof(p), "%s/open", peer_dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(p, sizeof(p), "%s/open/sub", peer_dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* The output folder and the sender's folder: 0750. */
	assert_int_equal(stat(out_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(peer_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);

	/* A timestamp with nanoseconds out of range is malformed. */
	c = cli_open();
	uint8_t raw[64];
	sx_wbuf w = sx_wbuf_make(raw, sizeof(raw));
	sx_put_u8(&w, SX_MSG_FILE_BEGIN);
	sx_put_u32(&w, 1);
	sx_put_u64(&w, 2);
	sx_put_u32(&w, 0644);
	sx_put_u64(&w, 0);
	sx_put_u32(&w, 1000000000u);
	sx_put_block16(&w, "nsec.bin", 8);
	assert_false(w.overflow);
	assert_int_equal(send_rec(c, SX_REC_CTRL, raw, w.len), 0);
	violation_done(c, SX_E_INTEGRITY, "timestamp", "nsec.bin");
}

/* ---- signed sessions ------------------------------------------------------- */

static void root_of(const void *data, size_t n, uint8_t root[SX_HASH_LEN])
{
	sx_filehash h;
	sx_err err = {0};
	uint64_t leaves, bytes;
	assert_int_equal(sx_filehash_init(&h, TEST_LEAF, &err), 0);
	assert_int_equal(sx_filehash_update(&h, data, n, &err), 0);
	assert_int_equal(sx_filehash_final(&h, root, &leaves, &bytes, &err), 0);
	sx_filehash_free(&h);
}

static void send_signed_file(cli *c, uint32_t id, const char *path, const void *data, size_t n,
			     const uint8_t root[SX_HASH_LEN])
{
	assert_int_equal(send_begin(c, id, path, strlen(path), n), 0);
	if (n > 0)
		assert_int_equal(send_rec(c, SX_REC_DATA, data, n), 0);
	sx_msg m = {.type = SX_MSG_FILE_END, .file_id = id, .size = n};
	memcpy(m.root, root, SX_HASH_LEN);
	assert_int_equal(send_msg(c, &m), 0);
}

/* BATCH 1 over descs (their mtime set as send_begin sends it), signed
 * with key at time t, claiming count_claimed files. */
static void send_batch_at(cli *c, EVP_PKEY *key, sx_desc *descs, uint32_t n, uint32_t count_claimed,
			  int64_t t)
{
	sx_batch b = {0};
	sx_err err = {0};
	for (uint32_t i = 0; i < n; i++)
		descs[i].mtime_sec = 1600000000;
	assert_int_equal(sx_batch_sign(&b, descs, n, TEST_LEAF, test_tid, 1, t, key, &err), 0);
	sx_msg m = {.type = SX_MSG_BATCH,
		    .batch_no = 1,
		    .time = t,
		    .nfiles = count_claimed,
		    .sig = b.sig,
		    .sig_len = b.sig_len};
	assert_int_equal(send_msg(c, &m), 0);
	sx_batch_free(&b);
}

/* The same, signed now. */
static void send_batch_of(cli *c, EVP_PKEY *key, sx_desc *descs, uint32_t n, uint32_t count_claimed)
{
	send_batch_at(c, key, descs, n, count_claimed, (int64_t)time(NULL));
}

/* The batch statement over one file, signed with key. */
static void send_batch(cli *c, EVP_PKEY *key, const char *path, const uint8_t root[SX_HASH_LEN],
		       uint64_t size, uint32_t count_claimed)
{
	sx_desc d = {.size = size, .path = path};
	memcpy(d.root, root, SX_HASH_LEN);
	send_batch_of(c, key, &d, 1, count_claimed);
}

static void test_signed_session_ok(void **state)
{
	(void)state;
	uint8_t root[SX_HASH_LEN];
	const char data[] = "signed content";
	root_of(data, sizeof(data), root);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "signed-ok.bin", data, sizeof(data), root);
	send_batch(c, cli_id.key, "signed-ok.bin", root, sizeof(data), 1);
	expect_file_ok(c, 1);
	sx_msg m;
	expect_msg(c, SX_MSG_RECEIPT, &m);
	assert_int_equal(m.batch_no, 1);
	end_session(c);
	cli_close(c);
	assert_file("signed-ok.bin", data, sizeof(data));
	assert_true(exists_at(peer_dir, "signed-ok.bin.sxsig"));
}

static void test_signed_wrong_root(void **state)
{
	(void)state;
	uint8_t root[SX_HASH_LEN];
	const char data[] = "content";
	root_of("other", 5, root);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "wrong-root.bin", data, sizeof(data), root);
	violation_done(c, SX_E_INTEGRITY, "Merkle root does not match", "wrong-root.bin");
}

static void test_signed_bad_signature(void **state)
{
	(void)state;
	uint8_t root[SX_HASH_LEN];
	const char data[] = "content";
	root_of(data, sizeof(data), root);
	/* Signed by a key that is not the certificate's. */
	EVP_PKEY *other = NULL;
	sx_err err = {0};
	assert_int_equal(sx_key_generate(SX_KEY_P256, &other, &err), 0);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "bad-sig.bin", data, sizeof(data), root);
	send_batch(c, other, "bad-sig.bin", root, sizeof(data), 1);
	violation_done(c, SX_E_INTEGRITY, "signature", "bad-sig.bin");
	assert_false(exists_at(peer_dir, "bad-sig.bin.sxsig"));
	EVP_PKEY_free(other);

	/* A signature over a different descriptor (another path). */
	c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "bad-sig2.bin", data, sizeof(data), root);
	send_batch(c, cli_id.key, "renamed.bin", root, sizeof(data), 1);
	violation_done(c, SX_E_INTEGRITY, "signature", "bad-sig2.bin");

	/* A BATCH that claims a different number of files. */
	c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "bad-count.bin", data, sizeof(data), root);
	send_batch(c, cli_id.key, "bad-count.bin", root, sizeof(data), 2);
	violation_done(c, SX_E_INTEGRITY, "covers 2 files", "bad-count.bin");
}

/* A batch whose files are all answered before its end, one refused at
 * FILE_BEGIN (it exists) and one refused when its signature is written (its
 * NAME.sxsig would pass 255 bytes): the last refusal completes the batch,
 * whose receipt goes out while the BATCH is still being handled. The server
 * once used the batch after it had freed it, and crashed. */
static void test_signed_batch_all_refused(void **state)
{
	(void)state;
	char exists[1200], longname[256];
	snprintf(exists, sizeof(exists), "%s/refused-exists.bin", peer_dir);
	FILE *fp = fopen(exists, "wb");
	assert_non_null(fp);
	fclose(fp);
	memset(longname, 'n', 251);
	longname[251] = '\0';
	const char data[] = "batch content";
	uint8_t root[SX_HASH_LEN];
	root_of(data, sizeof(data), root);
	for (int round = 0; round < 3; round++) {
		cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
		send_signed_file(c, 1, "refused-exists.bin", data, sizeof(data), root);
		expect_file_err(c, 1, SX_E_IO, "exists");
		send_signed_file(c, 2, longname, data, sizeof(data), root);
		sx_desc d[2] = {{.size = sizeof(data), .path = "refused-exists.bin"},
				{.size = sizeof(data), .path = longname}};
		memcpy(d[0].root, root, SX_HASH_LEN);
		memcpy(d[1].root, root, SX_HASH_LEN);
		/* The crash needed the second file flushed and waiting for its
		 * BATCH (not still in its flush) when the BATCH came. */
		usleep(150000);
		send_batch_of(c, cli_id.key, d, 2, 2);
		expect_file_err(c, 2, SX_E_IO, "name too long");
		sx_msg m;
		expect_msg(c, SX_MSG_RECEIPT, &m);
		assert_int_equal(m.batch_no, 1);
		end_session(c);
		cli_close(c);
	}
	assert_no_partials();
	assert_false(exists_at(peer_dir, longname));
	assert_server_serves();
}

/* A signed batch with files whose paths break the path rules between good
 * ones: each is refused at FILE_BEGIN and has no descriptor, so it is in no
 * batch; the BATCH over the good files verifies and they are stored. The
 * server once put the refused file into its batch and failed the session
 * (ERROR, class 4) when it came to encode its descriptor. */
static void test_signed_bad_path_left_out_of_batch(void **state)
{
	(void)state;
	const char data[] = "good content", bad_data[] = "refused content";
	uint8_t root[SX_HASH_LEN], bad_root[SX_HASH_LEN];
	root_of(data, sizeof(data), root);
	root_of(bad_data, sizeof(bad_data), bad_root);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "batch-good-a.bin", data, sizeof(data), root);
	send_signed_file(c, 2, "batch-bad\nname", bad_data, sizeof(bad_data), bad_root);
	expect_file_err(c, 2, SX_E_IO, "control character");
	/* A NUL inside the name: refused, and out of the batch as well. */
	assert_int_equal(send_begin(c, 3, "batch-nul\0x", 11, sizeof(bad_data)), 0);
	assert_int_equal(send_rec(c, SX_REC_DATA, bad_data, sizeof(bad_data)), 0);
	sx_msg e = {.type = SX_MSG_FILE_END, .file_id = 3, .size = sizeof(bad_data)};
	memcpy(e.root, bad_root, SX_HASH_LEN);
	assert_int_equal(send_msg(c, &e), 0);
	expect_file_err(c, 3, SX_E_IO, "NUL");
	send_signed_file(c, 4, "batch-good-b.bin", data, sizeof(data), root);
	sx_desc d[2] = {{.size = sizeof(data), .path = "batch-good-a.bin"},
			{.size = sizeof(data), .path = "batch-good-b.bin"}};
	memcpy(d[0].root, root, SX_HASH_LEN);
	memcpy(d[1].root, root, SX_HASH_LEN);
	send_batch_of(c, cli_id.key, d, 2, 2);
	bool ok[5] = {false};
	for (int i = 0; i < 2; i++) {
		sx_msg m;
		expect_msg(c, SX_MSG_FILE_OK, &m);
		assert_true(m.file_id == 1 || m.file_id == 4);
		assert_false(ok[m.file_id]);
		ok[m.file_id] = true;
	}
	sx_msg m;
	expect_msg(c, SX_MSG_RECEIPT, &m);
	assert_int_equal(m.batch_no, 1);
	end_session(c);
	cli_close(c);
	assert_file("batch-good-a.bin", data, sizeof(data));
	assert_file("batch-good-b.bin", data, sizeof(data));
	assert_true(exists_at(peer_dir, "batch-good-a.bin.sxsig"));
	assert_true(exists_at(peer_dir, "batch-good-b.bin.sxsig"));
	assert_false(exists_at(peer_dir, "batch-bad\nname"));
	assert_false(exists_at(peer_dir, "batch-bad\nname.sxsig"));
	assert_false(exists_at(peer_dir, "batch-nul"));
	assert_no_partials();
	assert_server_serves();
}

/* X and X.sxsig sent in one signed batch (a sender that does not skip
 * X.sxsig): the first to claim the name X.sxsig is stored, the other file
 * is refused, and a refused file leaves no signature behind. The server
 * once left a stray X.sxsig.sxsig beside nothing when the data file
 * X.sxsig lost the race. */
static void test_signed_file_and_its_sxsig(void **state)
{
	(void)state;
	const char x[] = "x data", sig[] = "an earlier signature";
	uint8_t rx[SX_HASH_LEN], rsig[SX_HASH_LEN];
	root_of(x, sizeof(x), rx);
	root_of(sig, sizeof(sig), rsig);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "pair.bin", x, sizeof(x), rx);
	send_signed_file(c, 2, "pair.bin.sxsig", sig, sizeof(sig), rsig);
	sx_desc d[2] = {{.size = sizeof(x), .path = "pair.bin"},
			{.size = sizeof(sig), .path = "pair.bin.sxsig"}};
	memcpy(d[0].root, rx, SX_HASH_LEN);
	memcpy(d[1].root, rsig, SX_HASH_LEN);
	send_batch_of(c, cli_id.key, d, 2, 2);
	uint32_t stored = 0, refused = 0;
	for (int i = 0; i < 2; i++) {
		/* In the order the two reach their rename. */
		uint8_t type, *pt;
		size_t len;
		sx_msg a;
		sx_err err = {0};
		assert_int_equal(recv_rec(c, &type, &pt, &len), 0);
		assert_int_equal(type, SX_REC_CTRL);
		assert_int_equal(sx_msg_decode(pt, len, &a, &err), 0);
		assert_true(a.type == SX_MSG_FILE_OK || a.type == SX_MSG_FILE_ERR);
		if (a.type == SX_MSG_FILE_OK)
			stored = a.file_id;
		else
			refused = a.file_id;
	}
	sx_msg m;
	expect_msg(c, SX_MSG_RECEIPT, &m);
	end_session(c);
	cli_close(c);
	assert_true((stored == 1 && refused == 2) || (stored == 2 && refused == 1));
	if (stored == 1) {
		assert_file("pair.bin", x, sizeof(x));
		assert_true(exists_at(peer_dir, "pair.bin.sxsig"));
		assert_false(exists_at(peer_dir, "pair.bin.sxsig.sxsig"));
	} else {
		assert_file("pair.bin.sxsig", sig, sizeof(sig));
		assert_true(exists_at(peer_dir, "pair.bin.sxsig.sxsig"));
		assert_false(exists_at(peer_dir, "pair.bin"));
	}
	assert_no_partials();
}

/* A batch of 1,200 files that are all refused when their .sxsig is
 * written (names with no room for it): 1,200 FILE_ERR at once are more than
 * the server's reply buffer holds, and it once dropped the connection ("the
 * peer is not reading its replies") although the sender read every reply. */
#define MASS_N 1200
static void test_signed_batch_mass_refusal(void **state)
{
	(void)state;
	static char names[MASS_N][252];
	static sx_desc d[MASS_N];
	const char data[] = "x";
	uint8_t root[SX_HASH_LEN];
	root_of(data, sizeof(data), root);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	for (int i = 0; i < MASS_N; i++) {
		memset(names[i], 'm', 251);
		names[i][251] = '\0';
		char num[8];
		int n = snprintf(num, sizeof(num), "%05d", i);
		memcpy(names[i], num, (size_t)n);
		send_signed_file(c, (uint32_t)i + 1, names[i], data, sizeof(data), root);
		d[i] = (sx_desc){.size = sizeof(data), .path = names[i]};
		memcpy(d[i].root, root, SX_HASH_LEN);
	}
	usleep(200000); /* the files flushed and parked before BATCH */
	send_batch_of(c, cli_id.key, d, MASS_N, MASS_N);
	for (int i = 0; i < MASS_N; i++) {
		sx_msg m;
		expect_msg(c, SX_MSG_FILE_ERR, &m);
		assert_true(has(&m, "name too long"));
	}
	sx_msg m;
	expect_msg(c, SX_MSG_RECEIPT, &m);
	end_session(c);
	cli_close(c);
	assert_no_partials();
	assert_server_serves();
}

/* BATCH number no over descs[0..n), signed now. */
static void send_batch_no(cli *c, sx_desc *descs, uint32_t n, uint64_t no)
{
	sx_batch b = {0};
	sx_err err = {0};
	int64_t t = (int64_t)time(NULL);
	for (uint32_t i = 0; i < n; i++)
		descs[i].mtime_sec = 1600000000;
	assert_int_equal(sx_batch_sign(&b, descs, n, TEST_LEAF, test_tid, no, t, cli_id.key, &err),
			 0);
	sx_msg m = {.type = SX_MSG_BATCH,
		    .batch_no = no,
		    .time = t,
		    .nfiles = n,
		    .sig = b.sig,
		    .sig_len = b.sig_len};
	assert_int_equal(send_msg(c, &m), 0);
	sx_batch_free(&b);
}

/* Batches sent back to back, their files in two folders by turns: every
 * file waits for its own batch (the files of the second may be flushed
 * before the last of the first), the renames of a folder share its
 * flushes, and every file is answered once, then each batch's receipt. */
static void test_signed_batches_folders(void **state)
{
	(void)state;
	enum { PER = 150, NB = 3 };
	static char names[NB * PER][32];
	static sx_desc d[NB * PER];
	static char body[NB * PER][32];
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	const char *dirs[] = {"ga", "gb"};
	for (int i = 0; i < 2; i++) {
		sx_msg m = {.type = SX_MSG_DIR,
			    .mode = 0755,
			    .path = (const uint8_t *)dirs[i],
			    .path_len = 2,
			    .mtime_sec = 1500000000};
		assert_int_equal(send_msg(c, &m), 0);
	}
	for (int b = 0; b < NB; b++) {
		for (int i = b * PER; i < (b + 1) * PER; i++) {
			uint8_t root[SX_HASH_LEN];
			int n = snprintf(body[i], sizeof(body[i]), "file %d", i);
			snprintf(names[i], sizeof(names[i]), "%s/f%04d", dirs[(i / 7) % 2], i);
			root_of(body[i], (size_t)n, root);
			send_signed_file(c, (uint32_t)i + 1, names[i], body[i], (size_t)n, root);
			d[i] = (sx_desc){.size = (uint64_t)n, .path = names[i]};
			memcpy(d[i].root, root, SX_HASH_LEN);
		}
		send_batch_no(c, d + b * PER, PER, (uint64_t)b + 1);
	}
	static bool seen[NB * PER + 1];
	int receipts = 0, answered[NB] = {0};
	for (int k = 0; k < NB * PER + NB; k++) {
		sx_msg m;
		uint8_t type, *pt;
		size_t len;
		assert_int_equal(recv_rec(c, &type, &pt, &len), 0);
		assert_int_equal(type, SX_REC_CTRL);
		sx_err err = {0};
		assert_int_equal(sx_msg_decode(pt, len, &m, &err), 0);
		if (m.type == SX_MSG_RECEIPT) {
			/* each once, after all the files of its batch */
			assert_true(m.batch_no >= 1 && m.batch_no <= NB);
			assert_int_equal(answered[m.batch_no - 1], PER);
			answered[m.batch_no - 1]++;
			receipts++;
			continue;
		}
		assert_int_equal(m.type, SX_MSG_FILE_OK);
		assert_true(m.file_id >= 1 && m.file_id <= NB * PER);
		assert_false(seen[m.file_id]);
		seen[m.file_id] = true;
		answered[(m.file_id - 1) / PER]++;
	}
	assert_int_equal(receipts, NB);
	end_session(c);
	cli_close(c);
	for (int i = 0; i < NB * PER; i++) {
		char sig[48];
		assert_file(names[i], body[i], strlen(body[i]));
		snprintf(sig, sizeof(sig), "%s.sxsig", names[i]);
		assert_true(exists_at(peer_dir, sig));
	}
	assert_no_partials();
}

static void test_signed_unbatched_eos(void **state)
{
	(void)state;
	uint8_t root[SX_HASH_LEN];
	const char data[] = "content";
	root_of(data, sizeof(data), root);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "unbatched.bin", data, sizeof(data), root);
	assert_int_equal(send_rec(c, SX_REC_EOS, NULL, 0), 0);
	violation_done(c, SX_E_INTEGRITY, "no BATCH signature covers", "unbatched.bin");
}

/* The signed time of a BATCH is checked against the receiver's clock:
 * a validly signed batch from a sender whose clock is far ahead or behind
 * is refused, and none of its files is stored; within the allowed skew
 * it is accepted. */
static void test_signed_time_skew(void **state)
{
	(void)state;
	const char data[] = "clock";
	uint8_t root[SX_HASH_LEN];
	root_of(data, sizeof(data), root);
	static const struct {
		int64_t off;
		const char *why;
	} bad[] = {
	    {SX_SIGNED_TIME_AHEAD_MAX + 60, "ahead of this receiver's clock"},
	    {(int64_t)30 * 24 * 3600, "ahead of this receiver's clock"},
	    {-(SX_SIGNED_TIME_BEHIND_MAX + 60), "behind this receiver's clock"},
	    {-(int64_t)1790000000, "behind this receiver's clock"},
	};
	for (size_t i = 0; i < SX_ARRAY_LEN(bad); i++) {
		cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
		send_signed_file(c, 1, "skewed.bin", data, sizeof(data), root);
		sx_desc d = {.size = sizeof(data), .path = "skewed.bin"};
		memcpy(d.root, root, SX_HASH_LEN);
		send_batch_at(c, cli_id.key, &d, 1, 1, (int64_t)time(NULL) + bad[i].off);
		violation_done(c, SX_E_INTEGRITY, bad[i].why, "skewed.bin");
		assert_false(exists_at(peer_dir, "skewed.bin.sxsig"));
	}
	/* Within the skew, both ways: stored. */
	static const int64_t fine[] = {SX_SIGNED_TIME_AHEAD_MAX - 60,
				       -(SX_SIGNED_TIME_BEHIND_MAX - 60)};
	for (size_t i = 0; i < SX_ARRAY_LEN(fine); i++) {
		char name[32];
		snprintf(name, sizeof(name), "skew-ok-%zu.bin", i);
		cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
		send_signed_file(c, 1, name, data, sizeof(data), root);
		sx_desc d = {.size = sizeof(data), .path = name};
		memcpy(d.root, root, SX_HASH_LEN);
		send_batch_at(c, cli_id.key, &d, 1, 1, (int64_t)time(NULL) + fine[i]);
		expect_file_ok(c, 1);
		sx_msg m;
		expect_msg(c, SX_MSG_RECEIPT, &m);
		end_session(c);
		cli_close(c);
		assert_file(name, data, sizeof(data));
	}
}

/* A stream CHECKPOINT signed with a time far from the receiver's clock
 * ends the connection; no signed prefix is kept from it. */
static void test_checkpoint_time_skew(void **state)
{
	(void)state;
	static uint8_t data[TEST_LEAF];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	uint8_t root[SX_HASH_LEN];
	root_of(data, sizeof(data), root);
	static const int64_t offs[] = {(int64_t)SX_SIGNED_TIME_AHEAD_MAX + 60,
				       -((int64_t)SX_SIGNED_TIME_BEHIND_MAX + 60)};
	static const char *const why[] = {"ahead of this receiver's clock",
					  "behind this receiver's clock"};
	for (size_t i = 0; i < SX_ARRAY_LEN(offs); i++) {
		cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
		assert_int_equal(send_begin(c, 1, "skewed.ts", 9, SX_SIZE_UNKNOWN), 0);
		/* Two records: one leaf is more than a record's body. */
		assert_int_equal(send_rec(c, SX_REC_DATA, data, sizeof(data) / 2), 0);
		assert_int_equal(
		    send_rec(c, SX_REC_DATA, data + sizeof(data) / 2, sizeof(data) / 2), 0);
		int64_t t = (int64_t)time(NULL) + offs[i];
		uint8_t stmt[SX_STMT_CHECKPOINT_MAX], sig[SX_SIG_MAX];
		size_t len = 0, sig_len = 0;
		sx_err err = {0};
		assert_int_equal(sx_stmt_checkpoint(test_tid, "skewed.ts", TEST_LEAF, 1,
						    sizeof(data), root, t, stmt, sizeof(stmt), &len,
						    &err),
				 0);
		assert_int_equal(sx_sign(cli_id.key, stmt, len, sig, &sig_len, &err), 0);
		sx_msg m = {.type = SX_MSG_CHECKPOINT,
			    .file_id = 1,
			    .leaves = 1,
			    .size = sizeof(data),
			    .time = t,
			    .sig = sig,
			    .sig_len = sig_len};
		assert_int_equal(send_msg(c, &m), 0);
		violation_done(c, SX_E_INTEGRITY, why[i], "skewed.ts");
		assert_false(exists_at(peer_dir, "skewed.ts.partial"));
	}
}

/* Signed, a path that no descriptor can hold (sx_path_check) can never be
 * covered by a batch signature: the connection ends at its FILE_BEGIN, and
 * a long path is not kept for a batch that cannot verify. */
static void test_signed_bad_path(void **state)
{
	(void)state;
	static char longp[8000];
	memset(longp, 'a', sizeof(longp));
	for (size_t i = 200; i < sizeof(longp); i += 200)
		longp[i] = '/';
	static const struct {
		const char *p;
		size_t n;
		const char *why;
	} bad[] = {
	    {"../signed-esc", 13, "'..'"},
	    {"tab\there", 8, "control"},
	    {longp, sizeof(longp), "longer than"},
	};
	/* Each refused with its reason and left out of the batch (there is
	 * none here): the session ends cleanly, nothing of the path is kept. */
	uint8_t root[SX_HASH_LEN];
	root_of("", 0, root);
	for (size_t i = 0; i < SX_ARRAY_LEN(bad); i++) {
		cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
		assert_int_equal(send_begin(c, 1, bad[i].p, bad[i].n, 0), 0);
		expect_file_err(c, 1, SX_E_IO, bad[i].why);
		sx_msg e = {.type = SX_MSG_FILE_END, .file_id = 1, .size = 0};
		memcpy(e.root, root, SX_HASH_LEN);
		assert_int_equal(send_msg(c, &e), 0);
		end_session(c);
		cli_close(c);
	}
	assert_false(exists_at(work, "signed-esc"));
	assert_no_partials();
	assert_server_serves();
}

/* LONG_LEVELS components of 254 bytes under top, then a name of last
 * bytes (at least 6) for file i: a path of about 3.8 KiB that passes every
 * check. */
#define LONG_LEVELS 14
static size_t long_path(char *out, size_t cap, const char *top, unsigned i, size_t last)
{
	size_t n = (size_t)snprintf(out, cap, "%s/", top);
	for (int l = 0; l < LONG_LEVELS; l++) {
		memset(out + n, 'd', 254);
		n += 254;
		out[n++] = '/';
	}
	n += (size_t)snprintf(out + n, cap - n, "f%05u", i);
	for (size_t k = 6; k < last; k++)
		out[n++] = 'n';
	out[n] = '\0';
	assert_true(n < cap && n <= SX_PATH_MAX);
	return n;
}

/* A refused file keeps only its descriptor's leaf in the batch: more than
 * SX_SESSION_PATH_BYTES_MAX of long refused paths (their folder is a file)
 * in one batch, then a good file in the same batch, which the cap would
 * refuse if the refused paths were still held; the batch verifies. */
static void test_signed_refused_paths_not_kept(void **state)
{
	(void)state;
	char blocker[1200];
	snprintf(blocker, sizeof(blocker), "%s/blocker", peer_dir);
	FILE *fp = fopen(blocker, "wb");
	assert_non_null(fp);
	fclose(fp);
	uint8_t empty[SX_HASH_LEN];
	root_of("", 0, empty);
	static char path[SX_PATH_MAX + 1];
	size_t plen = long_path(path, sizeof(path), "blocker", 0, 6);
	uint32_t n = (uint32_t)(SX_SESSION_PATH_BYTES_MAX / plen) + 64;
	sx_desc *d = calloc(n + 1, sizeof(*d));
	char **paths = calloc(n + 1, sizeof(*paths));
	assert_non_null(d);
	assert_non_null(paths);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	for (uint32_t i = 0; i < n; i++) {
		long_path(path, sizeof(path), "blocker", i, 6);
		paths[i] = strdup(path);
		send_signed_file(c, i + 1, paths[i], NULL, 0, empty);
		expect_file_err(c, i + 1, SX_E_IO, "");
	}
	const char data[] = "after many refused long paths";
	uint8_t root[SX_HASH_LEN];
	root_of(data, sizeof(data), root);
	paths[n] = strdup("after-refused.bin");
	send_signed_file(c, n + 1, paths[n], data, sizeof(data), root);
	for (uint32_t i = 0; i <= n; i++) {
		d[i].path = paths[i];
		d[i].size = i < n ? 0 : sizeof(data);
		memcpy(d[i].root, i < n ? empty : root, SX_HASH_LEN);
	}
	send_batch_of(c, cli_id.key, d, n + 1, n + 1);
	expect_file_ok(c, n + 1);
	sx_msg m;
	expect_msg(c, SX_MSG_RECEIPT, &m);
	end_session(c);
	cli_close(c);
	assert_file("after-refused.bin", data, sizeof(data));
	for (uint32_t i = 0; i <= n; i++)
		free(paths[i]);
	free(paths);
	free(d);
	unlink(blocker);
	assert_no_partials();
}

/* The paths held for files awaiting their batch signature are capped per
 * connection: the file that would pass SX_SESSION_PATH_BYTES_MAX is
 * refused with a reason naming the cap, and none before it is. The
 * connection then drops: every temporary is removed. */
static void test_signed_path_bytes_cap(void **state)
{
	(void)state;
	uint8_t empty[SX_HASH_LEN];
	root_of("", 0, empty);
	static char path[SX_PATH_MAX + 1];
	size_t plen = long_path(path, sizeof(path), "cap", 0, 6);
	uint32_t fit = (uint32_t)(SX_SESSION_PATH_BYTES_MAX / plen);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, true);
	for (uint32_t i = 0; i <= fit; i++) {
		long_path(path, sizeof(path), "cap", i, 6);
		send_signed_file(c, i + 1, path, NULL, 0, empty);
	}
	/* The first answer: file fit + 1, the one past the cap. */
	expect_file_err(c, fit + 1, SX_E_IO, "at most 4194304");
	cli_close(c);
	assert_no_partials();
	assert_server_serves();
}

/* The batch state alone: a refused file's path is freed, its leaf kept, and
 * the batch still verifies over the leaves; a path that no descriptor can
 * hold is refused when added. */
static void test_sbatch_drop_path(void **state)
{
	(void)state;
	sx_sbatch sb = {.number = 1};
	sx_err err = {0};
	uint8_t root[SX_HASH_LEN] = {1};
	static char path[SX_PATH_MAX + 1];
	sx_desc d[8];
	char *keep[8];
	for (uint32_t i = 0; i < 8; i++) {
		size_t n = long_path(path, sizeof(path), "x", i, 6);
		assert_int_equal(sx_sbatch_add(&sb, i, root, i, 1600000000, 0, path, &err), 0);
		assert_int_equal(sb.path_bytes, (i + 1) * n);
		keep[i] = strdup(path);
		d[i] = (sx_desc){.size = i, .mtime_sec = 1600000000, .path = keep[i]};
		memcpy(d[i].root, root, SX_HASH_LEN);
	}
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(sx_sbatch_drop_path(&sb, i), strlen(keep[i]));
	assert_int_equal(sb.path_bytes, 0);
	assert_int_equal(sx_sbatch_drop_path(&sb, 3), 0);
	sx_batch b = {0};
	int64_t now = 1767225600;
	assert_int_equal(sx_batch_sign(&b, d, 8, TEST_LEAF, test_tid, 1, now, cli_id.key, &err), 0);
	EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(cli_id.chain, 0));
	assert_int_equal(
	    sx_sbatch_verify(&sb, test_tid, TEST_LEAF, now, b.sig, b.sig_len, pub, &err), 0);
	sx_batch_free(&b);
	assert_int_equal(sx_sbatch_add(&sb, 9, root, 0, 0, 0, "../up", &err), -1);
	assert_int_equal(sx_sbatch_add(&sb, 9, root, 0, 0, 0, "", &err), -1);
	assert_int_equal(sb.n, 8);
	sx_sbatch_free(&sb);
	for (uint32_t i = 0; i < 8; i++)
		free(keep[i]);
}

/* The clock check alone, at its edges and at the ends of int64_t. */
static void test_signed_time_check(void **state)
{
	(void)state;
	sx_err err = {0};
	const int64_t now = 1767225600;
	assert_int_equal(sx_signed_time_check(now, now, &err), 0);
	assert_int_equal(sx_signed_time_check(now + SX_SIGNED_TIME_AHEAD_MAX, now, &err), 0);
	assert_int_equal(sx_signed_time_check(now - SX_SIGNED_TIME_BEHIND_MAX, now, &err), 0);
	assert_int_equal(sx_signed_time_check(now + SX_SIGNED_TIME_AHEAD_MAX + 1, now, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	assert_non_null(strstr(err.msg, "2026-01-01T00:10:01Z is 601 s ahead of"));
	assert_non_null(strstr(err.msg, "(2026-01-01T00:00:00Z; at most 600 s)"));
	err = (sx_err){0};
	assert_int_equal(sx_signed_time_check(now - SX_SIGNED_TIME_BEHIND_MAX - 1, now, &err), -1);
	assert_non_null(strstr(err.msg, "3601 s behind"));
	assert_int_equal(sx_signed_time_check(INT64_MAX, now, &err), -1);
	assert_int_equal(sx_signed_time_check(INT64_MIN, now, &err), -1);
	assert_int_equal(sx_signed_time_check(-1, now, &err), -1);
}

static void test_session_first(void **state)
{
	(void)state;
	cli *c = cli_open_raw(SX_SUITE_AES256GCM);
	assert_int_equal(send_begin(c, 1, "x", 1, 0), 0);
	violation_done(c, SX_E_INTEGRITY, "must begin with SESSION", "x");

	c = cli_open_raw(SX_SUITE_AES256GCM);
	sx_msg m = {.type = SX_MSG_SESSION, .flags = 0x80, .hash_chunk = TEST_LEAF};
	assert_int_equal(send_msg(c, &m), 0);
	violation_done(c, SX_E_INTEGRITY, "unknown flags", NULL);

	c = cli_open_raw(SX_SUITE_AES256GCM);
	m.flags = 0;
	m.hash_chunk = 1;
	assert_int_equal(send_msg(c, &m), 0);
	violation_done(c, SX_E_INTEGRITY, "out of range", NULL);
}

/* ---- resume and re-sending (docs/PROTOCOL.md) ------------------------------- */

#define BIG_SIZE 300000u /* 4 leaves and a bit: 3 whole leaves held after 200000 */
#define BIG_CUT	 200000u
#define BIG_HELD (3u * TEST_LEAF)

static uint8_t *big_data(uint8_t seed)
{
	uint8_t *d = malloc(BIG_SIZE);
	assert_non_null(d);
	for (size_t i = 0; i < BIG_SIZE; i++)
		d[i] = (uint8_t)(i * 31 + seed + (i >> 9));
	return d;
}

static void send_data(cli *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t k = n < 50000 ? n : 50000;
		assert_int_equal(send_rec(c, SX_REC_DATA, p, k), 0);
		p += k;
		n -= k;
	}
}

static void held_path(const char *name, const char *suffix, char *out, size_t cap)
{
	char h[SX_HELD_NAME_MAX];
	sx_err err = {0};
	assert_int_equal(sx_held_name(name, suffix, h, sizeof(h), &err), 0);
	snprintf(out, cap, "%s/%s", peer_dir, h);
}

static bool wait_path(const char *p, bool present)
{
	struct stat st;
	for (int i = 0; i < 500; i++) {
		if ((lstat(p, &st) == 0) == present)
			return true;
		usleep(10000);
	}
	return false;
}

static void send_query(cli *c, uint32_t qid, const char *path, uint64_t size)
{
	sx_msg m = {.type = SX_MSG_QUERY,
		    .file_id = qid,
		    .size = size,
		    .path = (const uint8_t *)path,
		    .path_len = strlen(path)};
	assert_int_equal(send_msg(c, &m), 0);
}

static void expect_offer(cli *c, uint32_t qid, uint8_t kind, sx_msg *o)
{
	expect_msg(c, SX_MSG_OFFER, o);
	assert_int_equal(o->file_id, qid);
	assert_int_equal(o->kind, kind);
	assert_int_equal(o->flags, 0);
}

static void send_resume(cli *c, uint32_t id, const char *path, uint64_t size, uint64_t from,
			const uint8_t root[SX_HASH_LEN])
{
	sx_msg m = {.type = SX_MSG_FILE_RESUME,
		    .file_id = id,
		    .size = size,
		    .from = from,
		    .mode = 0644,
		    .mtime_sec = 1600000000,
		    .path = (const uint8_t *)path,
		    .path_len = strlen(path)};
	memcpy(m.root, root, SX_HASH_LEN);
	assert_int_equal(send_msg(c, &m), 0);
}

static void send_same(cli *c, uint32_t id, const char *path, uint64_t size,
		      const uint8_t root[SX_HASH_LEN])
{
	sx_msg m = {.type = SX_MSG_FILE_SAME,
		    .file_id = id,
		    .size = size,
		    .mode = 0644,
		    .mtime_sec = 1600000000,
		    .path = (const uint8_t *)path,
		    .path_len = strlen(path)};
	memcpy(m.root, root, SX_HASH_LEN);
	assert_int_equal(send_msg(c, &m), 0);
}

/* A file cut off after BIG_CUT bytes: its 3 whole leaves are held. */
static void cut_file(bool sign, const char *name, const uint8_t *data)
{
	char meta[2048];
	held_path(name, SX_HELD_META, meta, sizeof(meta));
	cli *c = cli_open_session(SX_SUITE_AES256GCM, sign);
	assert_int_equal(send_begin(c, 1, name, strlen(name), BIG_SIZE), 0);
	send_data(c, data, BIG_CUT);
	/* the temporary has its .sxmeta beside it while it is received */
	for (int i = 0; i < 300 && count_partials() == 0; i++)
		usleep(10000);
	usleep(100000);
	cli_close(c);
	assert_true(wait_path(meta, true));
	assert_no_partials();
	sx_held_meta m;
	sx_err err = {0};
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", peer_dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	char h[SX_HELD_NAME_MAX];
	assert_int_equal(sx_held_name(name, SX_HELD_META, h, sizeof(h), &err), 0);
	assert_int_equal(sx_held_read(dfd, h, &m, &err), 0);
	close(dfd);
	assert_int_equal(m.held, BIG_HELD);
	assert_int_equal(m.size, BIG_SIZE);
	assert_int_equal(m.leaf, TEST_LEAF);
	assert_int_equal(m.sign, sign);
	uint8_t root[SX_HASH_LEN];
	root_of(data, BIG_HELD, root);
	assert_memory_equal(m.root, root, SX_HASH_LEN);
}

static void resume_cases(bool sign, const char *name, const uint8_t *data)
{
	char hdata[2048], hmeta[2048];
	uint8_t root[SX_HASH_LEN], whole[SX_HASH_LEN], bad[SX_HASH_LEN] = {1};
	sx_msg o;
	held_path(name, SX_HELD_DATA, hdata, sizeof(hdata));
	held_path(name, SX_HELD_META, hmeta, sizeof(hmeta));
	root_of(data, BIG_HELD, root);
	root_of(data, BIG_SIZE, whole);
	cli *c = cli_open_session(SX_SUITE_AES256GCM, sign);
	send_query(c, 1, name, BIG_SIZE);
	expect_offer(c, 1, SX_OFFER_PARTIAL, &o);
	assert_int_equal(o.leaf, TEST_LEAF);
	assert_int_equal(o.from, BIG_HELD);
	assert_memory_equal(o.root, root, SX_HASH_LEN);
	/* another size: nothing */
	send_query(c, 2, name, BIG_SIZE + 1);
	expect_offer(c, 2, SX_OFFER_NONE, &o);
	/* a wrong root or from is refused, and the part stays */
	send_resume(c, 1, name, BIG_SIZE, BIG_HELD, bad);
	expect_file_err(c, 1, SX_E_IO, "root");
	sx_msg e = {.type = SX_MSG_FILE_END, .file_id = 1, .size = BIG_HELD};
	memcpy(e.root, bad, SX_HASH_LEN);
	assert_int_equal(send_msg(c, &e), 0);
	send_resume(c, 2, name, BIG_SIZE, TEST_LEAF, root);
	expect_file_err(c, 2, SX_E_IO, "held");
	e.file_id = 2;
	e.size = TEST_LEAF;
	assert_int_equal(send_msg(c, &e), 0);
	assert_true(exists_at(peer_dir, strrchr(hdata, '/') + 1));
	/* the right one: the rest, and the whole file's root */
	send_resume(c, 3, name, BIG_SIZE, BIG_HELD, root);
	send_data(c, data + BIG_HELD, BIG_SIZE - BIG_HELD);
	e.file_id = 3;
	e.size = BIG_SIZE;
	memcpy(e.root, whole, SX_HASH_LEN);
	assert_int_equal(send_msg(c, &e), 0);
	if (sign) {
		sx_desc d[3] = {{.size = BIG_HELD, .path = name},
				{.size = TEST_LEAF, .path = name},
				{.size = BIG_SIZE, .path = name}};
		memcpy(d[0].root, bad, SX_HASH_LEN);
		memcpy(d[1].root, bad, SX_HASH_LEN);
		memcpy(d[2].root, whole, SX_HASH_LEN);
		send_batch_of(c, cli_id.key, d, 3, 3);
	}
	expect_file_ok(c, 3);
	if (sign)
		expect_msg(c, SX_MSG_RECEIPT, &o);
	end_session(c);
	cli_close(c);
	assert_file(name, data, BIG_SIZE);
	assert_true(wait_path(hmeta, false));
	assert_false(exists_at(peer_dir, strrchr(hdata, '/') + 1));
	if (sign) {
		char sig[300];
		snprintf(sig, sizeof(sig), "%s.sxsig", name);
		assert_true(exists_at(peer_dir, sig));
	}
	assert_no_partials();
}

static void test_held_unsigned(void **state)
{
	(void)state;
	uint8_t *data = big_data(1);
	cut_file(false, "held-u.bin", data);
	resume_cases(false, "held-u.bin", data);
	free(data);
}

static void test_held_signed(void **state)
{
	(void)state;
	uint8_t *data = big_data(2);
	cut_file(true, "held-s.bin", data);
	resume_cases(true, "held-s.bin", data);
	free(data);
}

/* A held part written by hand: another certificate's, and an old one. */
static void test_held_foreign_and_expired(void **state)
{
	(void)state;
	const char *name = "held-f.bin";
	uint8_t *data = big_data(3);
	char hdata[2048], hmeta[2048];
	sx_msg o;
	sx_err err = {0};
	held_path(name, SX_HELD_DATA, hdata, sizeof(hdata));
	held_path(name, SX_HELD_META, hmeta, sizeof(hmeta));
	cut_file(false, name, data);
	int dfd = open(peer_dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	sx_held_meta m;
	assert_int_equal(sx_held_read(dfd, strrchr(hmeta, '/') + 1, &m, &err), 0);
	char fp[65];
	memcpy(fp, m.fingerprint, sizeof(fp));
	memset(m.fingerprint, 'a', 64);
	assert_int_equal(sx_held_write(dfd, strrchr(hmeta, '/') + 1, &m, true, &err), 0);
	cli *c = cli_open();
	send_query(c, 1, name, BIG_SIZE);
	expect_offer(c, 1, SX_OFFER_NONE, &o);
	send_resume(c, 1, name, BIG_SIZE, BIG_HELD, m.root);
	expect_file_err(c, 1, SX_E_IO, "another certificate");
	sx_msg e = {.type = SX_MSG_FILE_END, .file_id = 1, .size = BIG_HELD};
	assert_int_equal(send_msg(c, &e), 0);
	end_session(c);
	cli_close(c);
	assert_true(exists_at(peer_dir, strrchr(hdata, '/') + 1));
	/* older than the TTL (7 days by default): removed when asked about */
	memcpy(m.fingerprint, fp, sizeof(fp));
	m.kept = (int64_t)time(NULL) - 8 * 24 * 3600;
	assert_int_equal(sx_held_write(dfd, strrchr(hmeta, '/') + 1, &m, true, &err), 0);
	close(dfd);
	c = cli_open();
	send_query(c, 1, name, BIG_SIZE);
	expect_offer(c, 1, SX_OFFER_NONE, &o);
	end_session(c);
	cli_close(c);
	assert_false(exists_at(peer_dir, strrchr(hdata, '/') + 1));
	assert_false(exists_at(peer_dir, strrchr(hmeta, '/') + 1));
	free(data);
}

static void test_query_exists(void **state)
{
	(void)state;
	uint8_t root[SX_HASH_LEN];
	const char data[] = "stored before";
	sx_msg o;
	cli *c = cli_open();
	assert_int_equal(send_file(c, 1, "q-plain.bin", data, sizeof(data)), 0);
	expect_file_ok(c, 1);
	send_query(c, 1, "q-plain.bin", sizeof(data));
	expect_offer(c, 1, SX_OFFER_EXISTS, &o);
	assert_int_equal(o.from, sizeof(data));
	assert_int_equal(o.leaf, 0);
	send_query(c, 2, "q-plain.bin", sizeof(data) + 1);
	expect_offer(c, 2, SX_OFFER_NONE, &o);
	send_query(c, 3, "nothing/here.bin", 10);
	expect_offer(c, 3, SX_OFFER_NONE, &o);
	send_query(c, 4, "../escape", 10);
	expect_offer(c, 4, SX_OFFER_NONE, &o);
	end_session(c);
	cli_close(c);
	/* signed: its .sxsig gives the root */
	root_of(data, sizeof(data), root);
	c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "q-signed.bin", data, sizeof(data), root);
	send_batch(c, cli_id.key, "q-signed.bin", root, sizeof(data), 1);
	expect_file_ok(c, 1);
	expect_msg(c, SX_MSG_RECEIPT, &o);
	send_query(c, 1, "q-signed.bin", sizeof(data));
	expect_offer(c, 1, SX_OFFER_EXISTS, &o);
	assert_int_equal(o.leaf, TEST_LEAF);
	assert_memory_equal(o.root, root, SX_HASH_LEN);
	end_session(c);
	cli_close(c);
	/* before SESSION: a protocol violation */
	c = cli_open_raw(SX_SUITE_AES256GCM);
	send_query(c, 1, "q-plain.bin", 1);
	violation_done(c, SX_E_INTEGRITY, "must begin with SESSION", NULL);
}

static void test_file_same(void **state)
{
	(void)state;
	uint8_t root[SX_HASH_LEN], other[SX_HASH_LEN];
	const char data[] = "the same bytes";
	sx_msg o;
	root_of(data, sizeof(data), root);
	root_of("other", 5, other);
	/* unsigned, no .sxsig: the stored file is hashed (a thread) */
	cli *c = cli_open();
	assert_int_equal(send_file(c, 1, "same-u.bin", data, sizeof(data)), 0);
	expect_file_ok(c, 1);
	send_same(c, 2, "same-u.bin", sizeof(data), root);
	expect_file_ok(c, 2);
	send_same(c, 3, "same-u.bin", sizeof(data), other);
	expect_file_err(c, 3, SX_E_IO, "exists with other content");
	send_same(c, 4, "same-none.bin", sizeof(data), root);
	expect_file_err(c, 4, SX_E_IO, "not stored");
	end_session(c);
	cli_close(c);
	/* signed: known root (its .sxsig), in the batch, covered by the receipt */
	c = cli_open_session(SX_SUITE_AES256GCM, true);
	send_signed_file(c, 1, "same-s.bin", data, sizeof(data), root);
	send_batch(c, cli_id.key, "same-s.bin", root, sizeof(data), 1);
	expect_file_ok(c, 1);
	expect_msg(c, SX_MSG_RECEIPT, &o);
	send_same(c, 2, "same-s.bin", sizeof(data), root);
	/* and the unsigned one, hashed, gets its .sxsig */
	send_same(c, 3, "same-u.bin", sizeof(data), root);
	sx_desc d[2] = {{.size = sizeof(data), .path = "same-s.bin"},
			{.size = sizeof(data), .path = "same-u.bin"}};
	memcpy(d[0].root, root, SX_HASH_LEN);
	memcpy(d[1].root, root, SX_HASH_LEN);
	sx_batch b = {0};
	sx_err err = {0};
	int64_t t = (int64_t)time(NULL);
	d[0].mtime_sec = d[1].mtime_sec = 1600000000;
	assert_int_equal(sx_batch_sign(&b, d, 2, TEST_LEAF, test_tid, 2, t, cli_id.key, &err), 0);
	sx_msg bm = {.type = SX_MSG_BATCH,
		     .batch_no = 2,
		     .time = t,
		     .nfiles = 2,
		     .sig = b.sig,
		     .sig_len = b.sig_len};
	assert_int_equal(send_msg(c, &bm), 0);
	sx_batch_free(&b);
	uint32_t got = 0;
	for (int i = 0; i < 2; i++) {
		expect_msg(c, SX_MSG_FILE_OK, &o);
		got |= 1u << o.file_id;
	}
	assert_int_equal(got, (1u << 2) | (1u << 3));
	expect_msg(c, SX_MSG_RECEIPT, &o);
	assert_int_equal(o.batch_no, 2);
	end_session(c);
	cli_close(c);
	assert_true(exists_at(peer_dir, "same-u.bin.sxsig"));
	assert_file("same-u.bin", data, sizeof(data));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_symlinks),
	    cmocka_unit_test(test_data_outside_file),
	    cmocka_unit_test(test_more_data_than_announced),
	    cmocka_unit_test(test_refused_file_ends_early),
	    cmocka_unit_test(test_file_end_size_mismatch),
	    cmocka_unit_test(test_file_end_other_id),
	    cmocka_unit_test(test_begin_inside_file),
	    cmocka_unit_test(test_eos_inside_file),
	    cmocka_unit_test(test_malformed_records),
	    cmocka_unit_test(test_tampered_and_replayed),
	    cmocka_unit_test(test_oversized_record),
	    cmocka_unit_test(test_compressed_ok),
	    cmocka_unit_test(test_compressed_hostile),
	    cmocka_unit_test(test_closed_mid_file),
	    cmocka_unit_test(test_many_small_files),
	    cmocka_unit_test(test_suites_and_duplicate),
	    cmocka_unit_test(test_same_name_in_flight),
	    cmocka_unit_test(test_mode_and_time),
	    cmocka_unit_test(test_signed_session_ok),
	    cmocka_unit_test(test_signed_wrong_root),
	    cmocka_unit_test(test_signed_bad_signature),
	    cmocka_unit_test(test_signed_batch_all_refused),
	    cmocka_unit_test(test_signed_bad_path_left_out_of_batch),
	    cmocka_unit_test(test_signed_file_and_its_sxsig),
	    cmocka_unit_test(test_signed_batch_mass_refusal),
	    cmocka_unit_test(test_signed_batches_folders),
	    cmocka_unit_test(test_signed_unbatched_eos),
	    cmocka_unit_test(test_signed_time_skew),
	    cmocka_unit_test(test_checkpoint_time_skew),
	    cmocka_unit_test(test_signed_time_check),
	    cmocka_unit_test(test_signed_bad_path),
	    cmocka_unit_test(test_signed_refused_paths_not_kept),
	    cmocka_unit_test(test_signed_path_bytes_cap),
	    cmocka_unit_test(test_sbatch_drop_path),
	    cmocka_unit_test(test_session_first),
	    cmocka_unit_test(test_query_exists),
	    cmocka_unit_test(test_file_same),
	    cmocka_unit_test(test_held_unsigned),
	    cmocka_unit_test(test_held_signed),
	    cmocka_unit_test(test_held_foreign_and_expired),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
