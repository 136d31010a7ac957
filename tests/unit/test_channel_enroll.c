/* engine/channel, the settings of the enrollment service: its own ALPN
 * protocol (and clear refusals between it and the transfer service), a
 * server whose client certificate is optional, extra certificates after the
 * server's chain, and a client that pins the server's root by fingerprint.
 * A client and a server sx_chan (or a raw OpenSSL client) are driven
 * against each other in memory; certificates come from chan_certs.py. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/sx_util.h"
#include "engine/channel/sx_channel.h"

#define INBOX_MAX (128 * 1024)

static char *g_dir;

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

/* The SHA-256 fingerprint of the first certificate of sub/file.pem. */
static void fp_of(const char *sub, bool anchor, uint8_t fp[SX_CERT_FP_LEN])
{
	sx_identity id;
	sx_err err = {0};
	id_load(sub, &id);
	X509 *x = sk_X509_value(anchor ? id.anchors : id.chain, 0);
	assert_int_equal(sx_cert_fp(x, fp, &err), 0);
	sx_identity_free(&id);
}

typedef struct opts {
	const char *alpn;
	bool peer_optional;
	bool extra_root;      /* server: send the root of its folder after its chain */
	const uint8_t *pin;   /* client: pin this root */
	const char *idsub;    /* client: NULL with a pin = no identity */
	bool expect_ctx_fail; /* sx_chan_ctx_new must refuse */
} opts;

static side *chan_side(bool server, const char *idsub, const opts *o)
{
	side *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	if (idsub != NULL)
		id_load(idsub, &s->id);
	sx_chan_cfg cfg = {
	    .server = server,
	    .id = &s->id,
	    .server_name = "localhost",
	    .max_record = server ? 131072 : 65536,
	    .alpn = o->alpn,
	    .peer_optional = o->peer_optional,
	    .extra_chain = o->extra_root ? s->id.anchors : NULL,
	    .pin_fp = o->pin,
	};
	int rc = sx_chan_ctx_new(&s->ctx, &cfg, &s->err);
	if (o->expect_ctx_fail) {
		assert_int_equal(rc, -1);
		assert_int_equal(s->err.cls, SX_E_USAGE);
		return s;
	}
	if (rc < 0)
		fail_msg("ctx: %s", s->err.msg);
	if (sx_chan_new(&s->ch, s->ctx, &s->err) < 0)
		fail_msg("chan: %s", s->err.msg);
	return s;
}

/* A raw TLS 1.3 client offering one ALPN protocol, without a certificate. */
static side *raw_side(const char *alpn)
{
	unsigned char wire[64];
	side *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->raw = true;
	s->rctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(s->rctx);
	SSL_CTX_set_min_proto_version(s->rctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(s->rctx, SSL_VERIFY_NONE, NULL);
	wire[0] = (unsigned char)strlen(alpn);
	memcpy(wire + 1, alpn, wire[0]);
	assert_int_equal(SSL_CTX_set_alpn_protos(s->rctx, wire, wire[0] + 1u), 0);
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

static size_t move(side *a, side *b)
{
	const uint8_t *p;
	size_t n;
	if (a->raw) {
		int k = BIO_read(a->wbio, a->rawout, (int)sizeof(a->rawout));
		p = a->rawout;
		n = k > 0 ? (size_t)k : 0;
	} else {
		sx_chan_output(a->ch, &p, &n);
	}
	if (n > 0) {
		assert_true(n <= INBOX_MAX - b->inlen);
		memcpy(b->inbox + b->inlen, p, n);
		b->inlen += n;
		if (!a->raw)
			sx_chan_consume(a->ch, n);
	}
	return n;
}

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
		if (r <= 0 && SSL_get_error(b->rssl, r) != SSL_ERROR_WANT_READ)
			b->failed = true;
		ERR_clear_error();
	} else {
		if (b->inlen == 0 && sx_chan_ready(b->ch))
			return 0;
		if (sx_chan_input(b->ch, b->inbox, b->inlen, &used, &b->err) < 0)
			b->failed = true;
	}
	memmove(b->inbox, b->inbox + used, b->inlen - used);
	b->inlen -= used;
	return used;
}

static void pump(side *cl, side *sv)
{
	for (int round = 0; round < 10000; round++) {
		size_t progress = move(cl, sv) + offer(sv) + move(sv, cl) + offer(cl);
		if (progress == 0)
			return;
	}
	fail_msg("pump did not settle");
}

static void take_both(side *cl, side *sv, sx_chan_result *rc, sx_chan_result *rs)
{
	if (cl->failed || sv->failed)
		fail_msg("client: %s / server: %s", cl->err.msg, sv->err.msg);
	assert_true(sx_chan_ready(cl->ch));
	assert_true(sx_chan_ready(sv->ch));
	sx_chan_take(cl->ch, rc);
	sx_chan_take(sv->ch, rs);
}

static void result_free(sx_chan_result *r)
{
	sx_rdir_free(&r->tx);
	sx_rdir_free(&r->rx);
	sk_X509_pop_free(r->peer_chain, X509_free);
}

/* The keys of both sides agree in both directions. */
static void check_keys(sx_chan_result *a, sx_chan_result *b)
{
	for (int dir = 0; dir < 2; dir++) {
		sx_rdir *tx = dir == 0 ? &a->tx : &b->tx;
		sx_rdir *rx = dir == 0 ? &b->rx : &a->rx;
		uint8_t rec[SX_REC_HDR_LEN + 16 + SX_REC_TAG_MAX];
		size_t rec_len, pt_len;
		uint8_t type, flags, *pt;
		sx_err err = {0};
		memset(rec + SX_REC_HDR_LEN, 'k', 16);
		assert_int_equal(sx_record_seal(tx, SX_REC_CTRL, 0, rec, 16, &rec_len, &err), 0);
		assert_int_equal(
		    sx_record_open(rx, rec, rec_len, &type, &flags, &pt, &pt_len, &err), 0);
		assert_int_equal(pt_len, 16);
	}
}

/* An ordinary transfer handshake: both peers are verified. */
static void test_required_peer_verified(void **state)
{
	(void)state;
	opts o = {0};
	side *cl = chan_side(false, "client", &o);
	side *sv = chan_side(true, "server", &o);
	sx_chan_result rc, rs;
	pump(cl, sv);
	take_both(cl, sv, &rc, &rs);
	assert_true(rc.peer_verified);
	assert_true(rs.peer_verified);
	assert_string_equal(rs.peer_problem, "");
	assert_string_equal(rs.peer_name, "alice");
	result_free(&rc);
	result_free(&rs);
	side_free(cl);
	side_free(sv);
}

/* sxfer enroll: no identity, the root pinned, the server sends its root
 * after its chain and takes a client without a certificate. */
static void test_pinned_enroll(void **state)
{
	(void)state;
	uint8_t root[SX_CERT_FP_LEN];
	fp_of("server", true, root);
	opts so = {.alpn = SX_ALPN_ENROLL, .peer_optional = true, .extra_root = true};
	opts co = {.alpn = SX_ALPN_ENROLL, .pin = root};
	side *cl = chan_side(false, NULL, &co);
	side *sv = chan_side(true, "server", &so);
	sx_chan_result rc, rs;
	pump(cl, sv);
	take_both(cl, sv, &rc, &rs);
	assert_true(rc.peer_verified);
	assert_string_equal(rc.peer_name, "server");
	/* The server's chain as sent: its leaf, then the root. */
	assert_int_equal(sk_X509_num(rc.peer_chain), 2);
	assert_false(rs.peer_verified);
	assert_string_equal(rs.peer_problem, "no client certificate");
	assert_string_equal(rs.peer_name, "");
	assert_null(rs.peer_chain);
	check_keys(&rc, &rs);
	result_free(&rc);
	result_free(&rs);
	side_free(cl);
	side_free(sv);
}

/* A pinned client refuses, in its verify callback, a server whose chain
 * holds no certificate of the pinned fingerprint: the handshake fails
 * before the client could send anything. */
static void expect_pin_refused(const uint8_t *pin, bool extra_root, const char *want)
{
	opts so = {.alpn = SX_ALPN_ENROLL, .peer_optional = true, .extra_root = extra_root};
	opts co = {.alpn = SX_ALPN_ENROLL, .pin = pin};
	side *cl = chan_side(false, NULL, &co);
	side *sv = chan_side(true, "server", &so);
	pump(cl, sv);
	assert_true(cl->failed);
	assert_false(sx_chan_ready(cl->ch));
	assert_false(sx_chan_ready(sv->ch));
	assert_int_equal(cl->err.cls, SX_E_AUTH);
	if (strstr(cl->err.msg, want) == NULL)
		fail_msg("client: \"%s\" lacks \"%s\"", cl->err.msg, want);
	assert_true(sv->failed);
	if (strstr(sv->err.msg, "client refused the handshake") == NULL)
		fail_msg("server: %s", sv->err.msg);
	side_free(cl);
	side_free(sv);
}

static void test_pinned_refusals(void **state)
{
	(void)state;
	uint8_t other[SX_CERT_FP_LEN], root[SX_CERT_FP_LEN], leaf[SX_CERT_FP_LEN];
	char want[200], hex[SX_CERT_FP_HEX_LEN];
	memset(other, 0xab, sizeof(other));
	sx_hex(other, sizeof(other), hex);
	snprintf(want, sizeof(want),
		 "enrollment server's certificate does not chain to the pinned root %s", hex);
	/* Another CA's server: our root is not among what it sends. */
	expect_pin_refused(other, true, want);
	/* The right root, but the server does not send it. */
	fp_of("server", true, root);
	sx_hex(root, sizeof(root), hex);
	snprintf(want, sizeof(want), "does not chain to the pinned root %s", hex);
	expect_pin_refused(root, false, want);
	/* A pin on the server's leaf: not a CA certificate. */
	fp_of("server", false, leaf);
	expect_pin_refused(leaf, true, "is not a self-signed CA certificate");
}

/* An optional client certificate: the policy's verdict is recorded, the
 * handshake completes. want: NULL for a verified client. */
static void optional_peer(const char *idsub, const char *name, const char *want)
{
	uint8_t root[SX_CERT_FP_LEN];
	fp_of("server", true, root);
	opts so = {.alpn = SX_ALPN_ENROLL, .peer_optional = true, .extra_root = true};
	opts co = {.alpn = SX_ALPN_ENROLL};
	side *cl = chan_side(false, idsub, &co);
	side *sv = chan_side(true, "server", &so);
	sx_chan_result rc, rs;
	pump(cl, sv);
	take_both(cl, sv, &rc, &rs);
	assert_string_equal(rs.peer_name, name);
	assert_non_null(rs.peer_chain);
	assert_true(rs.peer_fingerprint[0] != '\0');
	if (want == NULL) {
		assert_true(rs.peer_verified);
		assert_string_equal(rs.peer_problem, "");
	} else {
		assert_false(rs.peer_verified);
		if (strstr(rs.peer_problem, want) == NULL)
			fail_msg("%s: problem \"%s\" lacks \"%s\"", idsub, rs.peer_problem, want);
	}
	check_keys(&rc, &rs);
	result_free(&rc);
	result_free(&rs);
	side_free(cl);
	side_free(sv);
}

static void test_optional_peer(void **state)
{
	(void)state;
	optional_peer("client", "alice", NULL);
	optional_peer("client_revoked", "mallory", "client certificate: ");
	optional_peer("client_revoked", "mallory", "revoked");
	optional_peer("client_expired", "carol", "expired");
	optional_peer("client_other_ca", "eve", "client certificate: ");
	/* A server's certificate is taken too (a server renews), but not one
	 * for neither TLS role. */
	optional_peer("client_wrong_eku", "bob", NULL);
	optional_peer("client_no_tls_eku", "dave", "clientAuth or serverAuth");
}

/* A transfer client at the enrollment service, and an enrollment client at
 * a transfer server: both refused, each side saying which protocol. */
static void test_alpn_services(void **state)
{
	(void)state;
	uint8_t root[SX_CERT_FP_LEN];
	fp_of("server", true, root);
	opts enroll_sv = {.alpn = SX_ALPN_ENROLL, .peer_optional = true, .extra_root = true};
	opts plain = {0};
	side *cl = chan_side(false, "client", &plain);
	side *sv = chan_side(true, "server", &enroll_sv);
	pump(cl, sv);
	assert_true(cl->failed && sv->failed);
	if (strstr(cl->err.msg, "server does not speak sxfer/1 (file transfer: sxfer serve)") ==
	    NULL)
		fail_msg("client: %s", cl->err.msg);
	if (strstr(sv->err.msg, "client does not offer ALPN sxfer-enroll/1 (enrollment: sxfer ca "
				"serve); it offers sxfer/1") == NULL)
		fail_msg("server: %s", sv->err.msg);
	side_free(cl);
	side_free(sv);

	opts enroll_cl = {.alpn = SX_ALPN_ENROLL, .pin = root};
	cl = chan_side(false, NULL, &enroll_cl);
	sv = chan_side(true, "server", &plain);
	pump(cl, sv);
	assert_true(cl->failed && sv->failed);
	if (strstr(cl->err.msg,
		   "server does not speak sxfer-enroll/1 (enrollment: sxfer ca "
		   "serve): server refused the handshake: no application protocol") == NULL)
		fail_msg("client: %s", cl->err.msg);
	if (strstr(sv->err.msg, "client does not offer ALPN sxfer/1") == NULL ||
	    strstr(sv->err.msg, "it offers sxfer-enroll/1") == NULL)
		fail_msg("server: %s", sv->err.msg);
	side_free(cl);
	side_free(sv);
}

/* docs/PROTOCOL.md "Enrollment": the exporter context starts with the ALPN
 * protocol, "sxfer-enroll/1" here. A plain OpenSSL client (no certificate)
 * sends the HELLO, derives the keys from the documented bytes and opens
 * the server's CONFIRM. */
static void test_enroll_exporter(void **state)
{
	(void)state;
	static const char label[] = "EXPORTER-sxfer/1 record keys";
	static const char context_hex[] =
	    "73786665722d656e726f6c6c2f310101000000100000000000010000";
	uint8_t context[28], master[32], c2s[32], s2c[32], rec[256];
	sx_err err = {0};
	opts so = {.alpn = SX_ALPN_ENROLL, .peer_optional = true, .extra_root = true};
	side *cl = raw_side(SX_ALPN_ENROLL);
	side *sv = chan_side(true, "server", &so);
	pump(cl, sv);
	assert_true(SSL_is_init_finished(cl->rssl));
	sx_hello h = {.version = 1,
		      .suite = SX_SUITE_AES256GCM,
		      .max_record = 65536,
		      .rotate_bytes = 64ull << 30};
	uint8_t hello[SX_HELLO_LEN];
	sx_hello_encode(&h, hello);
	assert_int_equal(SSL_write(cl->rssl, hello, sizeof(hello)), sizeof(hello));
	move(cl, sv);
	offer(sv);
	if (sv->failed)
		fail_msg("server: %s", sv->err.msg);
	assert_true(sx_chan_ready(sv->ch));
	assert_int_equal(sx_test_unhex(context_hex, context, sizeof(context)), 28);
	assert_int_equal(SSL_export_keying_material(cl->rssl, master, sizeof(master), label,
						    strlen(label), context, sizeof(context), 1),
			 1);
	assert_int_equal(sx_keys_split(master, c2s, s2c, &err), 0);
	sx_rdir rx;
	assert_int_equal(sx_rdir_init(&rx, SX_SUITE_AES256GCM, s2c, 64ull << 30, &err), 0);
	const uint8_t *p;
	size_t n, pt_len;
	uint8_t type, flags, *pt;
	sx_chan_output(sv->ch, &p, &n);
	assert_true(n > SX_REC_HDR_LEN && n <= sizeof(rec));
	memcpy(rec, p, n);
	if (sx_record_open(&rx, rec, n, &type, &flags, &pt, &pt_len, &err) < 0)
		fail_msg("CONFIRM does not open with the documented context: %s", err.msg);
	assert_int_equal(pt[0], 0x01);
	sx_chan_result rs;
	sx_chan_take(sv->ch, &rs);
	assert_false(rs.peer_verified);
	assert_string_equal(rs.peer_problem, "no client certificate");
	result_free(&rs);
	sx_rdir_free(&rx);
	OPENSSL_cleanse(master, sizeof(master));
	side_free(cl);
	side_free(sv);
}

static void test_bad_settings(void **state)
{
	(void)state;
	uint8_t pin[SX_CERT_FP_LEN] = {1};
	opts server_pins = {.pin = pin, .expect_ctx_fail = true};
	side_free(chan_side(true, "server", &server_pins));
	opts client_optional = {.peer_optional = true, .expect_ctx_fail = true};
	side_free(chan_side(false, "client", &client_optional));
	opts client_extra = {.extra_root = true, .expect_ctx_fail = true};
	side_free(chan_side(false, "client", &client_extra));
	opts empty_alpn = {.alpn = "", .expect_ctx_fail = true};
	side_free(chan_side(false, "client", &empty_alpn));
	/* Without a pin a client needs its identity, and a server always. */
	opts none = {.expect_ctx_fail = true};
	side_free(chan_side(false, NULL, &none));
	opts optional = {.peer_optional = true, .expect_ctx_fail = true};
	side_free(chan_side(true, NULL, &optional));
	/* A pinned client with no id at all is a usage error too. */
	sx_chan_ctx *ctx = NULL;
	sx_err err = {0};
	sx_chan_cfg cfg = {.server_name = "localhost", .max_record = 65536, .pin_fp = pin};
	assert_int_equal(sx_chan_ctx_new(&ctx, &cfg, &err), -1);
	assert_int_equal(err.cls, SX_E_USAGE);
	assert_null(ctx);
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
	    cmocka_unit_test(test_required_peer_verified), cmocka_unit_test(test_pinned_enroll),
	    cmocka_unit_test(test_pinned_refusals),	   cmocka_unit_test(test_optional_peer),
	    cmocka_unit_test(test_alpn_services),	   cmocka_unit_test(test_enroll_exporter),
	    cmocka_unit_test(test_bad_settings),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
