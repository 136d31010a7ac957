/* engine/channel: the CRL of a server's context swapped while it runs
 * (sx_chan_ctx_set_crl), a stale CRL that completes the handshake only to
 * say why the client is refused (sx_chan_result.refusal), and the renewal
 * warning of engine/transfer (sx_cert_life_warn). Certificates and CRLs are
 * made here with pki/ (explicit dates), nothing is read from files. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/sx_ca.h"
#include "engine/channel/sx_channel.h"
#include "engine/transfer/sx_transfer.h"

#define BOX 65536

/* A CA, a server (localhost) and a client, as identities in memory. */
typedef struct pki {
	EVP_PKEY *ca_key;
	X509 *ca;
	sx_identity server, client, wrong; /* wrong: a server certificate used as a client */
} pki;

static pki g;

static void make_id(sx_identity *id, sx_profile prof, const char *name, time_t nb, time_t na)
{
	static const char *const dns[] = {"localhost"};
	sx_cert_spec spec = {.profile = prof,
			     .name = name,
			     .dns = prof == SX_PROFILE_SERVER ? dns : NULL,
			     .ndns = prof == SX_PROFILE_SERVER ? 1 : 0,
			     .not_before = nb,
			     .not_after = na};
	X509 *cert = NULL;
	sx_err err = {0};
	memset(id, 0, sizeof(*id));
	assert_int_equal(sx_key_generate(SX_KEY_P256, &id->key, &err), 0);
	assert_int_equal(sx_cert_build(&spec, id->key, g.ca, g.ca_key, &cert, &err), 0);
	id->chain = sk_X509_new_null();
	id->anchors = sk_X509_new_null();
	assert_true(sk_X509_push(id->chain, cert) > 0);
	assert_true(X509_up_ref(g.ca) == 1 && sk_X509_push(id->anchors, g.ca) > 0);
	snprintf(id->name, sizeof(id->name), "%s", name);
}

static int setup(void **state)
{
	(void)state;
	sx_err err = {0};
	time_t now = time(NULL);
	sx_cert_spec ca = {.profile = SX_PROFILE_CA,
			   .name = "Reload CA",
			   .not_before = now - 3600,
			   .not_after = now + 86400 * 30};
	if (sx_key_generate(SX_KEY_P256, &g.ca_key, &err) < 0 ||
	    sx_cert_build(&ca, g.ca_key, NULL, g.ca_key, &g.ca, &err) < 0)
		return -1;
	make_id(&g.server, SX_PROFILE_SERVER, "server", now - 3600, now + 86400 * 20);
	make_id(&g.client, SX_PROFILE_CLIENT, "cam-01", now - 3600, now + 86400 * 20);
	make_id(&g.wrong, SX_PROFILE_SERVER, "bob", now - 3600, now + 86400 * 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sx_identity_free(&g.server);
	sx_identity_free(&g.client);
	sx_identity_free(&g.wrong);
	X509_free(g.ca);
	EVP_PKEY_free(g.ca_key);
	return 0;
}

/* A CRL of the CA, revoking who (or nobody), current from this_update to
 * next_update. */
static X509_CRL *make_crl(const sx_identity *who, uint64_t number, time_t tu, time_t nu)
{
	X509_CRL *crl = NULL;
	sx_err err = {0};
	BIGNUM *serial = NULL;
	sx_revoked r = {0};
	if (who != NULL) {
		serial =
		    ASN1_INTEGER_to_BN(X509_get0_serialNumber(sk_X509_value(who->chain, 0)), NULL);
		assert_non_null(serial);
		r = (sx_revoked){.serial = serial, .when = tu, .reason = 1};
	}
	assert_int_equal(
	    sx_crl_build(g.ca, g.ca_key, who ? &r : NULL, who ? 1 : 0, number, tu, nu, &crl, &err),
	    0);
	BN_free(serial);
	return crl;
}

static sx_chan_ctx *ctx_for(const sx_identity *id, bool server)
{
	sx_chan_ctx *ctx = NULL;
	sx_err err = {0};
	sx_chan_cfg cfg = {
	    .server = server, .id = id, .server_name = "localhost", .max_record = 65536};
	if (sx_chan_ctx_new(&ctx, &cfg, &err) < 0)
		fail_msg("ctx: %s", err.msg);
	return ctx;
}

typedef struct end {
	sx_chan *ch;
	uint8_t in[BOX];
	size_t have;
	bool failed;
	sx_err err;
} end;

/* Moves a's pending output into b's inbox. */
static bool carry(end *a, end *b)
{
	const uint8_t *p;
	size_t n;
	sx_chan_output(a->ch, &p, &n);
	assert_true(n <= BOX - b->have);
	memcpy(b->in + b->have, p, n);
	b->have += n;
	sx_chan_consume(a->ch, n);
	return n > 0;
}

static void feed(end *e)
{
	size_t used = 0;
	if (e->failed || sx_chan_ready(e->ch))
		return;
	if (sx_chan_input(e->ch, e->in, e->have, &used, &e->err) < 0)
		e->failed = true;
	memmove(e->in, e->in + used, e->have - used);
	e->have -= used;
}

/* One handshake between a new client and a new server channel; 0 when both
 * are ready. The server's result (refusal) in *sr when given. */
static int handshake(sx_chan_ctx *cctx, sx_chan_ctx *sctx, sx_err *cerr, sx_err *serr,
		     sx_chan_result *sr)
{
	end *c = calloc(1, sizeof(*c)), *s = calloc(1, sizeof(*s));
	sx_err err = {0};
	int rc = -1;
	assert_non_null(c);
	assert_non_null(s);
	assert_int_equal(sx_chan_new(&c->ch, cctx, &err), 0);
	assert_int_equal(sx_chan_new(&s->ch, sctx, &err), 0);
	for (int i = 0; i < 50; i++) {
		bool moved = carry(c, s);
		feed(s);
		moved |= carry(s, c);
		feed(c);
		if (sx_chan_ready(c->ch) && sx_chan_ready(s->ch)) {
			rc = 0;
			break;
		}
		if ((c->failed || s->failed) && !moved)
			break;
	}
	if (cerr != NULL)
		*cerr = c->err;
	if (serr != NULL)
		*serr = s->err;
	if (rc == 0) {
		sx_chan_result cres, sres;
		sx_chan_take(c->ch, &cres);
		sx_chan_take(s->ch, &sres);
		assert_string_equal(cres.refusal, "");
		if (sr != NULL)
			memcpy(sr->refusal, sres.refusal, sizeof(sr->refusal));
		sx_rdir_free(&cres.tx);
		sx_rdir_free(&cres.rx);
		sx_rdir_free(&sres.tx);
		sx_rdir_free(&sres.rx);
		sk_X509_pop_free(cres.peer_chain, X509_free);
		sk_X509_pop_free(sres.peer_chain, X509_free);
	}
	sx_chan_free(c->ch);
	sx_chan_free(s->ch);
	free(c);
	free(s);
	return rc;
}

static void expect_ok(sx_chan_ctx *cctx, sx_chan_ctx *sctx)
{
	sx_err ce = {0}, se = {0};
	sx_chan_result r = {0};
	if (handshake(cctx, sctx, &ce, &se, &r) < 0)
		fail_msg("handshake refused: client: %s / server: %s", ce.msg, se.msg);
	assert_string_equal(r.refusal, "");
}

static void expect_refused(sx_chan_ctx *cctx, sx_chan_ctx *sctx, const char *why)
{
	sx_err ce = {0}, se = {0};
	assert_int_equal(handshake(cctx, sctx, &ce, &se, NULL), -1);
	assert_int_equal(se.cls, SX_E_AUTH);
	if (strstr(se.msg, why) == NULL)
		fail_msg("server: expected '%s' in '%s'", why, se.msg);
}

/* A CRL set while the context is in use applies to the next handshake. */
static void test_swap(void **state)
{
	(void)state;
	time_t now = time(NULL);
	sx_chan_ctx *cctx = ctx_for(&g.client, false), *sctx = ctx_for(&g.server, true);
	X509_CRL *none = make_crl(NULL, 1, now - 60, now + 86400);
	X509_CRL *rev = make_crl(&g.client, 2, now - 60, now + 86400);
	sx_err err = {0};

	assert_null(sx_chan_ctx_crl(sctx));
	expect_ok(cctx, sctx);
	assert_int_equal(sx_chan_ctx_set_crl(sctx, none, &err), 0);
	expect_ok(cctx, sctx);
	assert_int_equal(sx_chan_ctx_set_crl(sctx, rev, &err), 0);
	X509_CRL *cur = sx_chan_ctx_crl(sctx);
	assert_ptr_equal(cur, rev);
	X509_CRL_free(cur);
	/* The context holds its own reference. */
	X509_CRL_free(rev);
	expect_refused(cctx, sctx, "certificate is revoked");
	assert_int_equal(sx_chan_ctx_set_crl(sctx, NULL, &err), 0);
	expect_ok(cctx, sctx);
	X509_CRL_free(none);
	sx_chan_ctx_free(cctx);
	sx_chan_ctx_free(sctx);
}

/* A stale CRL: the client the policy would otherwise accept completes the
 * handshake, with the server's refusal saying why; one the stale CRL lists,
 * or that fails another check, is refused in the handshake as before. */
static void test_stale(void **state)
{
	(void)state;
	time_t now = time(NULL);
	sx_chan_ctx *cctx = ctx_for(&g.client, false), *sctx = ctx_for(&g.server, true);
	sx_chan_ctx *wctx = ctx_for(&g.wrong, false);
	X509_CRL *stale = make_crl(NULL, 3, now - 8 * 86400, now - 86400);
	X509_CRL *stale_rev = make_crl(&g.client, 4, now - 8 * 86400, now - 86400);
	sx_chan_result r = {0};
	sx_err ce = {0}, se = {0}, err = {0};

	assert_int_equal(sx_chan_ctx_set_crl(sctx, stale, &err), 0);
	assert_int_equal(handshake(cctx, sctx, &ce, &se, &r), 0);
	if (strstr(r.refusal, "the server's revocation list is stale (nextUpdate") == NULL)
		fail_msg("refusal: '%s'", r.refusal);
	expect_refused(wctx, sctx, "extendedKeyUsage");

	assert_int_equal(sx_chan_ctx_set_crl(sctx, stale_rev, &err), 0);
	expect_refused(cctx, sctx, "certificate is revoked");

	/* A current CRL again: no refusal. */
	X509_CRL *fresh = make_crl(NULL, 5, now - 60, now + 86400);
	assert_int_equal(sx_chan_ctx_set_crl(sctx, fresh, &err), 0);
	expect_ok(cctx, sctx);
	X509_CRL_free(fresh);
	X509_CRL_free(stale);
	X509_CRL_free(stale_rev);
	sx_chan_ctx_free(cctx);
	sx_chan_ctx_free(sctx);
	sx_chan_ctx_free(wctx);
}

typedef struct swapper {
	sx_chan_ctx *ctx;
	X509_CRL *a, *b;
	atomic_bool stop;
	unsigned swaps;
} swapper;

static void *swap_main(void *arg)
{
	swapper *w = arg;
	sx_err err = {0};
	while (!atomic_load(&w->stop)) {
		if (sx_chan_ctx_set_crl(w->ctx, (w->swaps & 1) ? w->a : w->b, &err) < 0)
			break;
		w->swaps++;
	}
	return NULL;
}

/* Handshakes while another thread swaps the CRL: each sees one whole CRL
 * (accepted, or refused as revoked), and nothing is freed under it (the
 * sanitizer build would say). */
static void test_swap_threads(void **state)
{
	(void)state;
	time_t now = time(NULL);
	sx_chan_ctx *cctx = ctx_for(&g.client, false);
	swapper w = {.ctx = ctx_for(&g.server, true),
		     .a = make_crl(NULL, 6, now - 60, now + 86400),
		     .b = make_crl(&g.client, 7, now - 60, now + 86400)};
	pthread_t th;
	unsigned ok = 0, refused = 0;
	atomic_store(&w.stop, false);
	assert_int_equal(pthread_create(&th, NULL, swap_main, &w), 0);
	for (int i = 0; i < 30; i++) {
		sx_err ce = {0}, se = {0};
		if (handshake(cctx, w.ctx, &ce, &se, NULL) == 0) {
			ok++;
			continue;
		}
		if (strstr(se.msg, "certificate is revoked") == NULL)
			fail_msg("handshake %d: client: %s / server: %s", i, ce.msg, se.msg);
		refused++;
	}
	atomic_store(&w.stop, true);
	pthread_join(th, NULL);
	assert_int_equal(ok + refused, 30);
	assert_true(w.swaps > 0);
	X509_CRL_free(w.a);
	X509_CRL_free(w.b);
	sx_chan_ctx_free(cctx);
	sx_chan_ctx_free(w.ctx);
}

/* Renewal is due once less than a third of the lifetime is left. */
static void test_life_warn(void **state)
{
	(void)state;
	const time_t t0 = 1800000000;
	sx_identity id;
	make_id(&id, SX_PROFILE_CLIENT, "cam-02", t0, t0 + 30 * 86400);
	assert_false(sx_cert_life_warn(&id, t0 + 86400));
	assert_false(sx_cert_life_warn(&id, t0 + 20 * 86400));
	assert_true(sx_cert_life_warn(&id, t0 + 20 * 86400 + 1));
	assert_true(sx_cert_life_warn(&id, t0 + 29 * 86400));
	assert_true(sx_cert_life_warn(&id, t0 + 31 * 86400)); /* expired */
	sx_identity_free(&id);
	assert_false(sx_cert_life_warn(NULL, t0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_swap),
	    cmocka_unit_test(test_stale),
	    cmocka_unit_test(test_swap_threads),
	    cmocka_unit_test(test_life_warn),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
