/* engine/channel: a client and a server sx_chan (or a raw OpenSSL client)
 * driven against each other in memory. Certificates are made at start by
 * chan_certs.py (next to this file) into a temporary folder. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "common/sx_util.h"
#include "engine/channel/sx_channel.h"

#define INBOX_MAX (256 * 1024)

static char *g_dir;

/* One side of a connection: an sx_chan, or a raw OpenSSL client. */
typedef struct side {
	bool raw;
	sx_identity id;
	sx_chan_ctx *ctx;
	sx_chan *ch;
	SSL_CTX *rctx;
	SSL *rssl;
	BIO *rbio, *wbio;
	sx_err err;
	bool failed;
	uint8_t inbox[INBOX_MAX];
	size_t inlen;
	uint8_t rawout[INBOX_MAX];
} side;

static void id_load(const char *sub, sx_identity *id)
{
	char dir[700];
	sx_err err = {0};
	sx_pass pass = {.none = true};
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, sub);
	if (sx_identity_load(dir, &pass, id, &err) < 0)
		fail_msg("loading %s: %s", dir, err.msg);
}

typedef struct opts {
	const char *server_name;
	sx_suite suite;
	uint32_t max_record;
	uint64_t rotate_bytes;
} opts;

static side *chan_side(bool server, const char *idsub, const opts *o)
{
	side *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	id_load(idsub, &s->id);
	sx_chan_cfg cfg = {
	    .server = server,
	    .id = &s->id,
	    .server_name = o && o->server_name ? o->server_name : "localhost",
	    .suite = o && o->suite ? o->suite : SX_SUITE_AES256GCM,
	    .rotate_bytes = o && o->rotate_bytes ? o->rotate_bytes : (1ull << 30),
	    .max_record = o && o->max_record ? o->max_record : (server ? 131072 : 65536),
	};
	if (sx_chan_ctx_new(&s->ctx, &cfg, &s->err) < 0)
		fail_msg("ctx: %s", s->err.msg);
	if (sx_chan_new(&s->ch, s->ctx, &s->err) < 0)
		fail_msg("chan: %s", s->err.msg);
	return s;
}

/* A raw TLS 1.3 client: alpn in wire format (or NULL for none), optional
 * identity folder for a client certificate. */
static side *raw_side(const unsigned char *alpn, size_t alpn_len, const char *idsub)
{
	side *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->raw = true;
	s->rctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(s->rctx);
	SSL_CTX_set_min_proto_version(s->rctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(s->rctx, SSL_VERIFY_NONE, NULL);
	if (alpn != NULL)
		assert_int_equal(SSL_CTX_set_alpn_protos(s->rctx, alpn, (unsigned)alpn_len), 0);
	if (idsub != NULL) {
		id_load(idsub, &s->id);
		assert_int_equal(SSL_CTX_use_certificate(s->rctx, sk_X509_value(s->id.chain, 0)),
				 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(s->rctx, s->id.key), 1);
	}
	s->rssl = SSL_new(s->rctx);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	SSL_set_bio(s->rssl, s->rbio, s->wbio);
	SSL_set_connect_state(s->rssl);
	(void)SSL_do_handshake(s->rssl);
	return s;
}

static void side_free(side *s)
{
	if (s == NULL)
		return;
	sx_chan_free(s->ch);
	sx_chan_ctx_free(s->ctx);
	SSL_free(s->rssl);
	SSL_CTX_free(s->rctx);
	sx_identity_free(&s->id);
	free(s);
}

/* Moves at most step bytes of a's output into b's inbox; returns the count. */
static size_t move(side *a, side *b, size_t step)
{
	const uint8_t *p;
	size_t n;
	if (a->raw) {
		int k = BIO_read(a->wbio, a->rawout, (int)sizeof(a->rawout));
		p = a->rawout;
		n = k > 0 ? (size_t)k : 0;
		step = n; /* raw output cannot be put back: move all */
	} else {
		sx_chan_output(a->ch, &p, &n);
	}
	if (n > step)
		n = step;
	if (n > 0) {
		assert_true(n <= INBOX_MAX - b->inlen);
		memcpy(b->inbox + b->inlen, p, n);
		b->inlen += n;
		if (!a->raw)
			sx_chan_consume(a->ch, n);
	}
	return n;
}

/* Offers b's inbox to b; returns how many bytes b consumed. */
static size_t offer(side *b)
{
	size_t used = 0;
	if (b->failed)
		return 0;
	if (b->raw) {
		if (b->inlen > 0)
			assert_int_equal(BIO_write(b->rbio, b->inbox, (int)b->inlen),
					 (int)b->inlen);
		used = b->inlen;
		int r = SSL_do_handshake(b->rssl);
		if (r == 1) {
			uint8_t x;
			r = SSL_read(b->rssl, &x, 1);
		}
		int e = SSL_get_error(b->rssl, r);
		if (r <= 0 && e != SSL_ERROR_WANT_READ)
			b->failed = true;
		ERR_clear_error();
	} else {
		if (b->inlen == 0 && sx_chan_ready(b->ch))
			return 0;
		if (sx_chan_input(b->ch, b->inbox, b->inlen, &used, &b->err) < 0)
			b->failed = true;
		assert_true(used <= b->inlen);
	}
	memmove(b->inbox, b->inbox + used, b->inlen - used);
	b->inlen -= used;
	return used;
}

/* Pumps until neither side makes progress. step bounds the bytes moved at
 * a time (1 = one byte at a time). marker: appended once to the client's
 * inbox right after the server's CONFIRM. */
static void pump(side *cl, side *sv, size_t step, const char *marker)
{
	bool marked = false;
	for (int round = 0; round < 2000000; round++) {
		size_t progress = 0;
		progress += move(cl, sv, step);
		progress += offer(sv);
		bool sv_ready = !sv->raw && sx_chan_ready(sv->ch);
		progress += move(sv, cl, step);
		if (marker != NULL && !marked && sv_ready) {
			const uint8_t *p;
			size_t n;
			sx_chan_output(sv->ch, &p, &n);
			if (n == 0) {
				memcpy(cl->inbox + cl->inlen, marker, strlen(marker));
				cl->inlen += strlen(marker);
				marked = true;
			}
		}
		size_t before = cl->inlen;
		progress += offer(cl);
		if (cl->inlen != before)
			progress++;
		if (progress == 0)
			return;
	}
	fail_msg("pump did not settle");
}

static void check_keys(sx_chan_result *a, sx_chan_result *b)
{
	/* a.tx -> b.rx, then b.tx -> a.rx, for a few records. */
	for (int dir = 0; dir < 2; dir++) {
		sx_rdir *tx = dir == 0 ? &a->tx : &b->tx;
		sx_rdir *rx = dir == 0 ? &b->rx : &a->rx;
		for (int i = 0; i < 3; i++) {
			uint8_t rec[SX_REC_HDR_LEN + 100 + SX_REC_TAG_MAX];
			size_t rec_len;
			uint8_t type, flags, *pt;
			size_t pt_len;
			sx_err err = {0};
			memset(rec + SX_REC_HDR_LEN, 'a' + i, 100);
			assert_int_equal(
			    sx_record_seal(tx, SX_REC_DATA, 0, rec, 100, &rec_len, &err), 0);
			assert_int_equal(
			    sx_record_open(rx, rec, rec_len, &type, &flags, &pt, &pt_len, &err), 0);
			assert_int_equal(type, SX_REC_DATA);
			assert_int_equal(pt_len, 100);
			assert_int_equal(pt[0], 'a' + i);
		}
	}
}

static void test_success(void **state)
{
	(void)state;
	const sx_suite suites[] = {SX_SUITE_AES256GCM, SX_SUITE_AES256CTR_HMAC,
				   SX_SUITE_CHACHA20POLY1305};
	const char *names[] = {"localhost", "127.0.0.1", "localhost"};
	for (size_t i = 0; i < SX_ARRAY_LEN(suites); i++) {
		opts o = {.server_name = names[i], .suite = suites[i]};
		side *cl = chan_side(false, "client", &o);
		side *sv = chan_side(true, "server", NULL);
		pump(cl, sv, SIZE_MAX, NULL);
		if (cl->failed || sv->failed)
			fail_msg("client: %s / server: %s", cl->err.msg, sv->err.msg);
		assert_true(sx_chan_ready(cl->ch));
		assert_true(sx_chan_ready(sv->ch));
		assert_int_equal(cl->inlen, 0);
		assert_int_equal(sv->inlen, 0);

		sx_chan_result rc, rs;
		sx_chan_take(cl->ch, &rc);
		sx_chan_take(sv->ch, &rs);
		assert_string_equal(rc.peer_name, "server");
		assert_string_equal(rs.peer_name, "alice");
		assert_int_equal(rc.peer_max_record, 131072);
		assert_int_equal(rs.peer_max_record, 65536);
		assert_int_equal(rc.hello.suite, suites[i]);
		assert_int_equal(rs.hello.suite, suites[i]);
		assert_int_equal(rs.hello.rotate_bytes, 1ull << 30);
		assert_int_equal(rs.hello.version, SX_PROTO_VERSION);
		uint8_t fpb[SX_CERT_FP_LEN];
		char fp[SX_CERT_FP_HEX_LEN];
		sx_err err = {0};
		assert_int_equal(sx_cert_fp(sk_X509_value(sv->id.chain, 0), fpb, &err), 0);
		sx_hex(fpb, sizeof(fpb), fp);
		assert_string_equal(rc.peer_fingerprint, fp);
		assert_int_equal(sx_cert_fp(sk_X509_value(cl->id.chain, 0), fpb, &err), 0);
		sx_hex(fpb, sizeof(fpb), fp);
		assert_string_equal(rs.peer_fingerprint, fp);
		/* The CONFIRM used seq 0 of server tx / client rx. */
		assert_int_equal(rs.tx.seq, 1);
		assert_int_equal(rc.rx.seq, 1);
		check_keys(&rc, &rs);
		sx_rdir_free(&rc.tx);
		sx_rdir_free(&rc.rx);
		sx_rdir_free(&rs.tx);
		sx_rdir_free(&rs.rx);
		sk_X509_pop_free(rc.peer_chain, X509_free);
		sk_X509_pop_free(rs.peer_chain, X509_free);
		side_free(cl);
		side_free(sv);
	}
}

/* suite 0 and rotate_bytes 0 mean the defaults; the HELLO carries the
 * effective values. */
static void test_defaults(void **state)
{
	(void)state;
	side *cl = chan_side(false, "client", NULL);
	side *sv = chan_side(true, "server", NULL);
	sx_chan_free(cl->ch);
	sx_chan_ctx_free(cl->ctx);
	sx_chan_cfg cfg = {.id = &cl->id, .server_name = "localhost", .max_record = 4096};
	assert_int_equal(sx_chan_ctx_new(&cl->ctx, &cfg, &cl->err), 0);
	assert_int_equal(sx_chan_new(&cl->ch, cl->ctx, &cl->err), 0);
	pump(cl, sv, SIZE_MAX, NULL);
	assert_true(sx_chan_ready(cl->ch));
	assert_true(sx_chan_ready(sv->ch));
	sx_chan_result rc, rs;
	sx_chan_take(cl->ch, &rc);
	sx_chan_take(sv->ch, &rs);
	assert_int_equal(rs.hello.suite, SX_SUITE_AES256GCM);
	assert_int_equal(rs.hello.rotate_bytes, 64ull << 30);
	assert_int_equal(rs.peer_max_record, 4096);
	check_keys(&rc, &rs);
	sx_rdir_free(&rc.tx);
	sx_rdir_free(&rc.rx);
	sx_rdir_free(&rs.tx);
	sx_rdir_free(&rs.rx);
	sk_X509_pop_free(rc.peer_chain, X509_free);
	sk_X509_pop_free(rs.peer_chain, X509_free);
	side_free(cl);
	side_free(sv);
}

static void test_one_byte_at_a_time_and_leftover(void **state)
{
	(void)state;
	side *cl = chan_side(false, "client", NULL);
	side *sv = chan_side(true, "server", NULL);
	pump(cl, sv, 1, "MARKER");
	if (cl->failed || sv->failed)
		fail_msg("client: %s / server: %s", cl->err.msg, sv->err.msg);
	assert_true(sx_chan_ready(cl->ch));
	assert_true(sx_chan_ready(sv->ch));
	/* The bytes after the CONFIRM are the first sxfer records: not consumed. */
	assert_int_equal(cl->inlen, 6);
	assert_memory_equal(cl->inbox, "MARKER", 6);
	size_t used = 99;
	sx_err err = {0};
	assert_int_equal(sx_chan_input(cl->ch, cl->inbox, cl->inlen, &used, &err), 0);
	assert_int_equal(used, 0);
	side_free(cl);
	side_free(sv);
}

/* Does msg contain the '*'-separated parts of want, in order? The policy's
 * wording between the parts is its own (e.g. "CN=server: ... (notAfter ...)"). */
static bool matches(const char *msg, const char *want)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", want);
	const char *at = msg;
	for (char *part = buf, *star; part != NULL; part = star) {
		star = strchr(part, '*');
		if (star != NULL)
			*star++ = '\0';
		const char *hit = strstr(at, part);
		if (hit == NULL)
			return false;
		at = hit + strlen(part);
	}
	return true;
}

/* Runs a handshake expected to fail on `who` ('c' or 's') with class
 * SX_E_AUTH and a message matching want; other_want (may be NULL) is what
 * the other side must report. */
static void expect_fail(side *cl, side *sv, char who, const char *want, const char *other_want)
{
	pump(cl, sv, SIZE_MAX, NULL);
	side *f = who == 'c' ? cl : sv;
	side *o = who == 'c' ? sv : cl;
	if (getenv("SX_TEST_VERBOSE") != NULL)
		fprintf(stderr, "  failing side: %s\n  other side:   %s\n", f->err.msg, o->err.msg);
	if (!f->failed)
		fail_msg("%s did not fail", who == 'c' ? "client" : "server");
	assert_int_equal(f->err.cls, SX_E_AUTH);
	if (!matches(f->err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", f->err.msg, want);
	if (!o->raw)
		assert_false(sx_chan_ready(o->ch));
	if (other_want != NULL) {
		if (!o->failed)
			fail_msg("other side did not fail");
		assert_int_equal(o->err.cls, SX_E_AUTH);
		if (!matches(o->err.msg, other_want))
			fail_msg("other message \"%s\" lacks \"%s\"", o->err.msg, other_want);
	}
	/* The failure is sticky. */
	if (!f->raw) {
		sx_err again = {0};
		size_t used;
		assert_int_equal(sx_chan_input(f->ch, (const uint8_t *)"x", 1, &used, &again), -1);
		assert_int_equal(again.cls, f->err.cls);
	}
	side_free(cl);
	side_free(sv);
}

static void test_name_mismatch(void **state)
{
	(void)state;
	opts o = {.server_name = "files.example.org"};
	expect_fail(chan_side(false, "client", &o), chan_side(true, "server", NULL), 'c',
		    "server certificate: *files.example.org", "client refused the handshake");
	opts ip = {.server_name = "10.1.2.3"};
	expect_fail(chan_side(false, "client", &ip), chan_side(true, "server", NULL), 'c',
		    "10.1.2.3", NULL);
}

static void test_other_ca(void **state)
{
	(void)state;
	/* The server's certificate comes from a CA the client does not trust. */
	expect_fail(chan_side(false, "client", NULL), chan_side(true, "server_other_ca", NULL), 'c',
		    "server certificate: ", "client refused the handshake: unknown CA");
	/* The client's certificate comes from a CA the server does not trust. */
	expect_fail(chan_side(false, "client_other_ca", NULL), chan_side(true, "server", NULL), 's',
		    "client certificate: ", "server refused the handshake: unknown CA");
}

static void test_expired_server(void **state)
{
	(void)state;
	expect_fail(chan_side(false, "client", NULL), chan_side(true, "server_expired", NULL), 'c',
		    "server certificate: *expired",
		    "client refused the handshake: certificate expired");
}

static void test_revoked_client(void **state)
{
	(void)state;
	expect_fail(chan_side(false, "client_revoked", NULL), chan_side(true, "server", NULL), 's',
		    "client certificate: *revoked",
		    "server refused the handshake: certificate revoked");
}

static void test_wrong_eku(void **state)
{
	(void)state;
	expect_fail(chan_side(false, "client_wrong_eku", NULL), chan_side(true, "server", NULL),
		    's', "client certificate: *",
		    "server refused the handshake: unsupported certificate");
}

static void test_client_without_certificate(void **state)
{
	(void)state;
	static const unsigned char alpn[] = {7, 's', 'x', 'f', 'e', 'r', '/', '1'};
	expect_fail(raw_side(alpn, sizeof(alpn), NULL), chan_side(true, "server", NULL), 's',
		    "client sent no certificate", NULL);
}

static void test_alpn(void **state)
{
	(void)state;
	static const unsigned char http[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
	static const unsigned char near[] = {7, 's', 'x', 'f', 'e', 'r', '/', '2'};
	side *raw = raw_side(http, sizeof(http), "client");
	side *srv = chan_side(true, "server", NULL);
	pump(raw, srv, SIZE_MAX, NULL);
	assert_true(raw->failed); /* the raw client got the fatal alert */
	assert_int_equal(SSL_get_verify_result(raw->rssl), X509_V_OK);
	side_free(raw);
	side_free(srv);
	expect_fail(raw_side(http, sizeof(http), "client"), chan_side(true, "server", NULL), 's',
		    "ALPN sxfer/1", NULL);
	expect_fail(raw_side(near, sizeof(near), "client"), chan_side(true, "server", NULL), 's',
		    "ALPN sxfer/1", NULL);
	expect_fail(raw_side(NULL, 0, "client"), chan_side(true, "server", NULL), 's', "no ALPN",
		    NULL);
	/* The raw client with the right ALPN and a certificate gets through TLS. */
	static const unsigned char ok[] = {7, 's', 'x', 'f', 'e', 'r', '/', '1'};
	side *cl = raw_side(ok, sizeof(ok), "client");
	side *sv = chan_side(true, "server", NULL);
	pump(cl, sv, SIZE_MAX, NULL);
	assert_false(sv->failed);
	assert_true(SSL_is_init_finished(cl->rssl));
	assert_false(sx_chan_ready(sv->ch)); /* still waiting for the HELLO */
	side_free(cl);
	side_free(sv);
}

/* docs/PROTOCOL.md ("Handshake") "Keys: one exporter call", checked independently of
 * engine/channel/channel.c: a plain OpenSSL client sends the HELLO itself, derives
 * the keys from the documented label and context bytes, and opens the
 * server's CONFIRM with them. */
static void test_exporter_as_documented(void **state)
{
	(void)state;
	static const unsigned char alpn[] = {7, 's', 'x', 'f', 'e', 'r', '/', '1'};
	static const char label[] = "EXPORTER-sxfer/1 record keys";
	/* version 1, AES-256-GCM, rotate_bytes 64 GiB, client max_record 65536 */
	static const char context_hex[] = "73786665722f310101000000100000000000010000";
	uint8_t context[21], master[32], c2s[32], s2c[32];
	sx_err err = {0};

	side *cl = raw_side(alpn, sizeof(alpn), "client");
	opts o = {.max_record = 131072};
	side *sv = chan_side(true, "server", &o);
	pump(cl, sv, SIZE_MAX, NULL);
	assert_true(SSL_is_init_finished(cl->rssl));
	assert_false(sv->failed);

	sx_hello h = {.version = 1,
		      .suite = SX_SUITE_AES256GCM,
		      .max_record = 65536,
		      .rotate_bytes = 64ull << 30};
	uint8_t hello[SX_HELLO_LEN];
	sx_hello_encode(&h, hello);
	assert_int_equal(SSL_write(cl->rssl, hello, sizeof(hello)), sizeof(hello));
	move(cl, sv, SIZE_MAX);
	offer(sv);
	if (sv->failed)
		fail_msg("server: %s", sv->err.msg);
	assert_true(sx_chan_ready(sv->ch));

	assert_int_equal(sx_test_unhex(context_hex, context, sizeof(context)), 21);
	assert_int_equal(SSL_export_keying_material(cl->rssl, master, sizeof(master), label,
						    strlen(label), context, sizeof(context), 1),
			 1);
	assert_int_equal(sx_keys_split(master, c2s, s2c, &err), 0);
	sx_rdir tx, rx;
	assert_int_equal(sx_rdir_init(&rx, SX_SUITE_AES256GCM, s2c, 64ull << 30, &err), 0);
	assert_int_equal(sx_rdir_init(&tx, SX_SUITE_AES256GCM, c2s, 64ull << 30, &err), 0);

	/* The CONFIRM: CTRL record, body = 01 || max_record (131072). */
	const uint8_t *p;
	size_t n;
	uint8_t rec[256];
	sx_chan_output(sv->ch, &p, &n);
	assert_true(n > SX_REC_HDR_LEN && n <= sizeof(rec));
	memcpy(rec, p, n);
	uint8_t type, flags, *pt;
	size_t pt_len;
	if (sx_record_open(&rx, rec, n, &type, &flags, &pt, &pt_len, &err) < 0)
		fail_msg("CONFIRM does not open with the documented exporter: %s", err.msg);
	assert_int_equal(type, SX_REC_CTRL);
	static const uint8_t confirm[] = {0x01, 0x00, 0x02, 0x00, 0x00};
	assert_int_equal(pt_len, sizeof(confirm));
	assert_memory_equal(pt, confirm, sizeof(confirm));

	/* And the server's keys match ours in both directions. */
	sx_chan_result rs;
	sx_chan_take(sv->ch, &rs);
	assert_int_equal(rs.peer_max_record, 65536);
	sx_chan_result mine = {.tx = tx, .rx = rx};
	check_keys(&mine, &rs);
	sx_rdir_free(&mine.tx);
	sx_rdir_free(&mine.rx);
	sx_rdir_free(&rs.tx);
	sx_rdir_free(&rs.rx);
	sk_X509_pop_free(rs.peer_chain, X509_free);
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(c2s, sizeof(c2s));
	OPENSSL_cleanse(s2c, sizeof(s2c));
	side_free(cl);
	side_free(sv);
}

static void not_tls(const uint8_t *in, size_t len)
{
	side *sv = chan_side(true, "server", NULL);
	size_t used = 0;
	sx_err err = {0};
	assert_int_equal(sx_chan_input(sv->ch, in, len, &used, &err), -1);
	assert_true(err.cls == SX_E_NET || err.cls == SX_E_AUTH);
	if (strstr(err.msg, "not speaking TLS") == NULL)
		fail_msg("message: %s", err.msg);
	side_free(sv);
}

static void test_not_tls(void **state)
{
	(void)state;
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	not_tls((const uint8_t *)http, strlen(http));
	/* Just the first byte is enough to tell. */
	not_tls((const uint8_t *)"G", 1);
	/* A handshake header with an impossible length. */
	static const uint8_t huge[] = {0x16, 0x03, 0x01, 0xff, 0xff};
	not_tls(huge, sizeof(huge));
	/* A wrong version. */
	static const uint8_t ver[] = {0x16, 0x02, 0x00};
	not_tls(ver, sizeof(ver));
	for (int i = 0; i < 50; i++) {
		uint8_t rnd[256];
		assert_int_equal(RAND_bytes(rnd, sizeof(rnd)), 1);
		/* Random bytes, unless by chance they start like a record header. */
		if (rnd[0] >= 20 && rnd[0] <= 23)
			rnd[0] = 0x99;
		not_tls(rnd, sizeof(rnd));
	}
	/* A partial but valid-looking header is not consumed and not an error. */
	side *sv = chan_side(true, "server", NULL);
	static const uint8_t part[] = {0x16, 0x03, 0x01, 0x00};
	size_t used = 7;
	sx_err err = {0};
	assert_int_equal(sx_chan_input(sv->ch, part, sizeof(part), &used, &err), 0);
	assert_int_equal(used, 0);
	side_free(sv);
}

static void test_bad_confirm(void **state)
{
	(void)state;
	side *cl = chan_side(false, "client", NULL);
	side *sv = chan_side(true, "server", NULL);
	/* Stop before the client has seen the CONFIRM: pump with the server's
	 * last output held back. */
	for (int i = 0; i < 100 && !sx_chan_ready(sv->ch); i++) {
		move(cl, sv, SIZE_MAX);
		offer(sv);
		if (sx_chan_ready(sv->ch))
			break;
		move(sv, cl, SIZE_MAX);
		offer(cl);
	}
	assert_true(sx_chan_ready(sv->ch));
	assert_false(sx_chan_ready(cl->ch));
	const uint8_t *p;
	size_t n;
	sx_chan_output(sv->ch, &p, &n);
	assert_true(n > SX_REC_HDR_LEN);
	uint8_t rec[256];
	assert_true(n <= sizeof(rec));
	memcpy(rec, p, n);
	rec[n - 1] ^= 1; /* flip a tag bit */
	size_t used = 0;
	sx_err err = {0};
	/* Partial first: not consumed. */
	assert_int_equal(sx_chan_input(cl->ch, rec, n - 1, &used, &err), 0);
	assert_int_equal(used, 0);
	assert_int_equal(sx_chan_input(cl->ch, rec, n, &used, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	assert_false(sx_chan_ready(cl->ch));
	side_free(cl);
	side_free(sv);
}

static void test_bad_config(void **state)
{
	(void)state;
	sx_identity id;
	id_load("client", &id);
	sx_chan_ctx *ctx = NULL;
	sx_err err = {0};
	sx_chan_cfg cfg = {.id = &id,
			   .server_name = NULL,
			   .suite = SX_SUITE_AES256GCM,
			   .rotate_bytes = 1 << 20,
			   .max_record = 65536};
	assert_int_equal(sx_chan_ctx_new(&ctx, &cfg, &err), -1);
	assert_int_equal(err.cls, SX_E_USAGE);
	cfg.server_name = "localhost";
	cfg.max_record = 100;
	sx_err_clear(&err);
	assert_int_equal(sx_chan_ctx_new(&ctx, &cfg, &err), -1);
	cfg.max_record = 65536;
	cfg.rotate_bytes = (64ull << 30) + 1;
	sx_err_clear(&err);
	assert_int_equal(sx_chan_ctx_new(&ctx, &cfg, &err), -1);
	cfg.rotate_bytes = 1 << 20;
	cfg.suite = (sx_suite)9;
	sx_err_clear(&err);
	assert_int_equal(sx_chan_ctx_new(&ctx, &cfg, &err), -1);
	assert_null(ctx);
	sx_identity_free(&id);
}

static int group_setup(void **state)
{
	(void)state;
	char script[1024], cmd[2048];
	const char *self = __FILE__;
	const char *slash = strrchr(self, '/');
	int dl = slash ? (int)(slash - self) : 1;
	snprintf(script, sizeof(script), "%.*s/chan_certs.py", dl, slash ? self : ".");
	g_dir = sx_test_tmpdir();
	if (g_dir == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "python3 '%s' '%s'", script, g_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot make test certificates: %s\n", cmd);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sx_test_rmtree(g_dir);
	free(g_dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_success),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_one_byte_at_a_time_and_leftover),
	    cmocka_unit_test(test_name_mismatch),
	    cmocka_unit_test(test_other_ca),
	    cmocka_unit_test(test_expired_server),
	    cmocka_unit_test(test_revoked_client),
	    cmocka_unit_test(test_wrong_eku),
	    cmocka_unit_test(test_client_without_certificate),
	    cmocka_unit_test(test_alpn),
	    cmocka_unit_test(test_exporter_as_documented),
	    cmocka_unit_test(test_not_tls),
	    cmocka_unit_test(test_bad_confirm),
	    cmocka_unit_test(test_bad_config),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
