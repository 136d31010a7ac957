/* engine/chat: names and conversation ids, the message and receipt
 * statements byte for byte (docs/SIGNATURES.md 11.5 vectors), the chat
 * messages (round trip, every truncation), transcript lines (round trip,
 * one spelling), and the verifier: chains, replays, drops, reorders,
 * alterations, HEAD and GAP, receipts that agree and that differ, strict
 * mode, certificates refused by the policy, whole transcripts edited. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sx_util.h"
#include "engine/chat/sx_chat.h"
#include "pki/sx_ca.h"

#define DAY 86400

/* docs/SIGNATURES.md 11.5: alice's message 3 at position 7 of #ops. */
static const char ED_SEED[] = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
static const char VEC_STMT[] =
    "73786665722063686174206d657373616765207631000004236f70730005616c696365000000000000000300"
    "00000000000007000001941f297c003468d9edbb3da21c5bcaa162661a1f81670552074babfdc2fed6554ad1"
    "7b893d000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char VEC_HASH[] = "55ac5d9d05757756168400b4a577c450a772eb5f531752c256582749abf299cf";
static const char VEC_SIG[] =
    "1934ba95a780fbd302735abce775e3ce3fc464c9f4b95092c74fffaaab7573e5345eb466f6388e54c43b8659"
    "6a7926832f9f482da8185ef17398289043c4fa06";
static const char VEC_RSTMT[] =
    "737866657220636861742072656365697074207631000004236f70730005616c69636555ac5d9d0575775616"
    "8400b4a577c450a772eb5f531752c256582749abf299cf00000000000000070000000000000005000001941f"
    "2a6660";
static const char VEC_RSIG[] =
    "64e4f01a98aa6b54dc1f018a004f551aaee578b050cc75815ec910506c34422b24272f7d13d9edbac11a03a7"
    "4157a9ecc75989fe547b8ffa6b12c267f2d17b0b";

typedef struct fixture {
	EVP_PKEY *ca_key, *alice_key, *bob_key, *ed_key;
	X509 *ca, *alice, *bob, *mallory, *ed;
	STACK_OF(X509) * anchors;
	X509_CRL *crl;
	sx_policy pol;
	uint8_t fp_alice[SX_HASH_LEN], fp_bob[SX_HASH_LEN], fp_mallory[SX_HASH_LEN];
} fixture;

static X509 *make_cert(sx_profile profile, const char *name, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key, time_t now)
{
	sx_cert_spec spec = {
	    .profile = profile, .name = name, .not_before = now - DAY, .not_after = now + 30 * DAY};
	sx_err err = {0};
	X509 *x = NULL;
	assert_int_equal(sx_cert_build(&spec, key, issuer, issuer_key, &x, &err), 0);
	return x;
}

static STACK_OF(X509) * one(X509 *x)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509_up_ref(x);
	sk_X509_push(sk, x);
	return sk;
}

static EVP_PKEY *ed_key(void)
{
	uint8_t seed[32];
	assert_int_equal(sx_test_unhex(ED_SEED, seed, sizeof(seed)), 32);
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	assert_non_null(k);
	return k;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	sx_err err = {0};
	time_t now = time(NULL);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &f->ca_key, &err), 0);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &f->alice_key, &err), 0);
	assert_int_equal(sx_key_generate(SX_KEY_P256, &f->bob_key, &err), 0);
	f->ed_key = ed_key();
	f->ca = make_cert(SX_PROFILE_CA, "Chat CA", f->ca_key, NULL, f->ca_key, now);
	f->alice = make_cert(SX_PROFILE_CLIENT, "alice", f->alice_key, f->ca, f->ca_key, now);
	f->bob = make_cert(SX_PROFILE_CLIENT, "bob", f->bob_key, f->ca, f->ca_key, now);
	f->mallory = make_cert(SX_PROFILE_CLIENT, "mallory", f->bob_key, f->ca, f->ca_key, now);
	f->ed = make_cert(SX_PROFILE_CLIENT, "alice", f->ed_key, f->ca, f->ca_key, now);
	f->anchors = one(f->ca);
	BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(f->mallory), NULL);
	sx_revoked rev = {.serial = serial, .when = now - 60, .reason = 1};
	assert_int_equal(
	    sx_crl_build(f->ca, f->ca_key, &rev, 1, 1, now - 60, now + 7 * DAY, &f->crl, &err), 0);
	BN_free(serial);
	f->pol = (sx_policy){.anchors = f->anchors, .crl = f->crl};
	assert_int_equal(sx_cert_fp(f->alice, f->fp_alice, &err), 0);
	assert_int_equal(sx_cert_fp(f->bob, f->fp_bob, &err), 0);
	assert_int_equal(sx_cert_fp(f->mallory, f->fp_mallory, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	EVP_PKEY_free(f->ca_key);
	EVP_PKEY_free(f->alice_key);
	EVP_PKEY_free(f->bob_key);
	EVP_PKEY_free(f->ed_key);
	X509 *certs[] = {f->ca, f->alice, f->bob, f->mallory, f->ed};
	for (size_t i = 0; i < SX_ARRAY_LEN(certs); i++)
		X509_free(certs[i]);
	sk_X509_pop_free(f->anchors, X509_free);
	X509_CRL_free(f->crl);
	free(f);
	return 0;
}

/* ---- names and conversations -------------------------------------------------- */

static void test_conv(void **state)
{
	(void)state;
	char c[256], name[SX_CHAT_NAME_MAX + 1];
	sx_err err = {0};
	const char *to[] = {"carol", "bob", "carol"};
	assert_int_equal(sx_chat_conv_direct("alice", to, 3, c, sizeof(c), &err), 0);
	assert_string_equal(c, "@alice,bob,carol");
	assert_int_equal(sx_chat_conv_check(c, strlen(c), &err), 0);
	assert_true(sx_chat_conv_has(c, "bob"));
	assert_false(sx_chat_conv_has(c, "bo"));
	size_t at = 0, n = 0;
	while (sx_chat_conv_next(c, &at, name) == 1)
		n++;
	assert_int_equal(n, 3);
	const char *self[] = {"alice"};
	assert_int_equal(sx_chat_conv_direct("alice", self, 1, c, sizeof(c), &err), -1);
	assert_non_null(strstr(err.msg, "recipient other than its author"));
	assert_int_equal(sx_chat_conv_room("ops", c, sizeof(c), &err), 0);
	assert_string_equal(c, "#ops");
	const char *bad[] = {"",      "#",   "@alice", "@bob,alice", "@alice,alice",
			     "@a,,b", "#.x", "#a b",   "ops",	     "@alice,bob,"};
	for (size_t i = 0; i < SX_ARRAY_LEN(bad); i++) {
		sx_err_clear(&err);
		assert_int_equal(sx_chat_conv_check(bad[i], strlen(bad[i]), &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
	}
	assert_int_equal(sx_chat_name_check("-x", 2, &err), -1);
	assert_int_equal(sx_chat_name_check("cam-01.site_a", 13, &err), 0);
}

/* ---- statements: the vectors of docs/SIGNATURES.md 11.5 ----------------------- */

static void vec_post(sx_chat_post *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->conv, sizeof(p->conv), "%s", "#ops");
	snprintf(p->author, sizeof(p->author), "%s", "alice");
	p->seq = 3;
	p->n = 7;
	p->time_ms = 1735689600000; /* 2025-01-01T00:00:00Z */
	for (int i = 0; i < SX_HASH_LEN; i++)
		p->prev[i] = (uint8_t)i;
	p->text = (const uint8_t *)"camera 7 is back online";
	p->text_len = strlen((const char *)p->text);
}

static void print_hex(const char *what, const uint8_t *b, size_t n)
{
	printf("%s ", what);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

static void expect_hex(const char *what, const char *want, const uint8_t *b, size_t n)
{
	uint8_t w[2048];
	if (want[0] == '\0') {
		print_hex(what, b, n);
		return;
	}
	long wl = sx_test_unhex(want, w, sizeof(w));
	assert_int_equal(wl, (long)n);
	assert_memory_equal(w, b, n);
}

static void test_vectors(void **state)
{
	fixture *f = *state;
	sx_chat_post p;
	sx_chat_receipt r = {0};
	uint8_t st[SX_CHAT_STMT_MAX], h[SX_HASH_LEN];
	size_t len;
	sx_err err = {0};
	vec_post(&p);
	assert_int_equal(sx_chat_post_sign(&p, f->ed_key, f->ed, &err), 0);
	assert_int_equal(sx_chat_statement(&p, st, sizeof(st), &len, &err), 0);
	expect_hex("statement", VEC_STMT, st, len);
	assert_int_equal(sx_chat_post_hash(&p, h, &err), 0);
	expect_hex("hash", VEC_HASH, h, SX_HASH_LEN);
	assert_int_equal(p.alg, SX_SIGALG_ED25519);
	expect_hex("sig", VEC_SIG, p.sig, p.sig_len);
	assert_int_equal(sx_chat_post_verify(&p, f->ed_key, &err), 0);
	/* every byte of the statement matters */
	p.text_hash[0] ^= 1;
	assert_int_equal(sx_chat_post_verify(&p, f->ed_key, &err), -1);
	assert_non_null(strstr(err.msg, "does not match its hash"));
	vec_post(&p);
	assert_int_equal(sx_chat_post_sign(&p, f->ed_key, f->ed, &err), 0);
	p.n++;
	sx_err_clear(&err);
	assert_int_equal(sx_chat_post_verify(&p, f->ed_key, &err), -1);
	assert_non_null(
	    strstr(err.msg, "alice's message 3 in #ops: the signature does not verify"));

	snprintf(r.conv, sizeof(r.conv), "%s", "#ops");
	snprintf(r.signer, sizeof(r.signer), "%s", "alice");
	memcpy(r.head, h, SX_HASH_LEN);
	r.n = 7;
	r.count = 5;
	r.time_ms = 1735689660000;
	assert_int_equal(sx_chat_receipt_sign(&r, f->ed_key, f->ed, &err), 0);
	assert_int_equal(sx_chat_receipt_statement(&r, st, sizeof(st), &len, &err), 0);
	expect_hex("receipt-statement", VEC_RSTMT, st, len);
	expect_hex("receipt-sig", VEC_RSIG, r.sig, r.sig_len);
	assert_int_equal(sx_chat_receipt_verify(&r, f->ed_key, &err), 0);
	r.count++;
	assert_int_equal(sx_chat_receipt_verify(&r, f->ed_key, &err), -1);
}

/* ---- chat messages -------------------------------------------------------------- */

static void roundtrip(const sx_chat_msg *m)
{
	static uint8_t buf[8192];
	sx_chat_msg *d = malloc(sizeof(*d));
	sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
	sx_err err = {0};
	sx_chat_msg_encode(m, &w);
	assert_false(w.overflow);
	assert_int_equal(sx_chat_msg_decode(buf, w.len, d, &err), 0);
	assert_int_equal(d->type, m->type);
	/* encoding the decoded message gives the same bytes */
	static uint8_t again[8192];
	sx_wbuf w2 = sx_wbuf_make(again, sizeof(again));
	sx_chat_msg_encode(d, &w2);
	assert_int_equal(w2.len, w.len);
	assert_memory_equal(again, buf, w.len);
	/* every truncation and one byte too many are refused */
	for (size_t cut = 0; cut < w.len; cut++)
		assert_int_equal(sx_chat_msg_decode(buf, cut, d, &err), -1);
	buf[w.len] = 0;
	assert_int_equal(sx_chat_msg_decode(buf, w.len + 1, d, &err), -1);
	free(d);
}

/* JOIN's tips: (conv, n) for direct conversations, sorted, each once. */
static int join_with(sx_chat_msg *m, uint8_t *buf, size_t cap, const char *const *convs,
		     const uint64_t *ns, size_t k, uint8_t *tips, size_t tips_cap)
{
	sx_wbuf t = sx_wbuf_make(tips, tips_cap);
	sx_err err = {0};
	for (size_t i = 0; i < k; i++)
		sx_chat_tip_put(&t, convs[i], ns[i]);
	assert_false(t.overflow);
	m->type = SX_MSG_CHAT_JOIN;
	m->tips = tips;
	m->tips_len = t.len;
	m->ntips = (uint16_t)k;
	sx_wbuf w = sx_wbuf_make(buf, cap);
	sx_chat_msg_encode(m, &w);
	assert_false(w.overflow);
	sx_chat_msg *d = malloc(sizeof(*d));
	assert_non_null(d);
	int rc = sx_chat_msg_decode(buf, w.len, d, &err);
	free(d);
	return rc;
}

static void test_join_tips(sx_chat_msg *m)
{
	static const char *const convs[] = {"@alice,bob", "@alice,bob,carol", "@bob,carol"};
	static const uint64_t ns[] = {7, 1, UINT64_MAX};
	uint8_t tips[512], buf[1024];
	char conv[SX_CHAT_CONV_MAX + 1];
	uint64_t n;
	size_t at = 0, i = 0;
	assert_int_equal(join_with(m, buf, sizeof(buf), convs, ns, 3, tips, sizeof(tips)), 0);
	roundtrip(m);
	while (sx_chat_tip_next(m, &at, conv, &n) == 1) {
		assert_string_equal(conv, convs[i]);
		assert_true(n == ns[i]);
		i++;
	}
	assert_int_equal(i, 3);
	/* refused: unsorted, twice, a room, position 0, not canonical */
	static const char *const unsorted[] = {"@alice,bob,carol", "@alice,bob"};
	static const char *const twice[] = {"@alice,bob", "@alice,bob"};
	static const char *const room[] = {"#ops"};
	static const char *const bad_conv[] = {"@bob,alice"};
	static const uint64_t zero[] = {0}, two[] = {1, 2};
	assert_int_equal(join_with(m, buf, sizeof(buf), unsorted, two, 2, tips, sizeof(tips)), -1);
	assert_int_equal(join_with(m, buf, sizeof(buf), twice, two, 2, tips, sizeof(tips)), -1);
	assert_int_equal(join_with(m, buf, sizeof(buf), room, two, 1, tips, sizeof(tips)), -1);
	assert_int_equal(join_with(m, buf, sizeof(buf), convs, zero, 1, tips, sizeof(tips)), -1);
	assert_int_equal(join_with(m, buf, sizeof(buf), bad_conv, two, 1, tips, sizeof(tips)), -1);
	/* more than SX_CHAT_TIPS_MAX */
	sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
	sx_err err = {0};
	sx_put_u8(&w, SX_MSG_CHAT_JOIN);
	sx_put_u8(&w, 1);
	sx_put_u32(&w, 0);
	sx_put_block16(&w, "", 0);
	sx_put_u16(&w, SX_CHAT_TIPS_MAX + 1);
	assert_int_equal(sx_chat_msg_decode(buf, w.len, m, &err), -1);
	assert_non_null(strstr(err.msg, "tips count"));
	memset(m, 0, sizeof(*m));
	m->type = SX_MSG_CHAT_JOIN;
	m->version = 1;
	m->room = "ops";
	m->room_len = 3;
}

static void test_messages(void **state)
{
	fixture *f = *state;
	sx_chat_msg *m = calloc(1, sizeof(*m));
	sx_err err = {0};
	m->type = SX_MSG_CHAT_JOIN;
	m->version = 1;
	m->room = "ops";
	m->room_len = 3;
	roundtrip(m);
	test_join_tips(m);
	m->type = SX_MSG_CHAT_WELCOME;
	m->max_text = 65536;
	m->n = 4;
	roundtrip(m);
	m->type = SX_MSG_CHAT_POST;
	vec_post(&m->post);
	assert_int_equal(sx_chat_post_sign(&m->post, f->alice_key, f->alice, &err), 0);
	roundtrip(m);
	m->type = SX_MSG_CHAT_DELIVER;
	m->flags = SX_CHAT_F_QUEUED;
	roundtrip(m);
	m->type = SX_MSG_CHAT_ACCEPTED;
	snprintf(m->conv, sizeof(m->conv), "%s", "@alice,bob");
	roundtrip(m);
	m->type = SX_MSG_CHAT_REFUSED;
	m->why = SX_CHAT_QUEUE_FULL;
	m->reason = "bob's queue is full";
	m->reason_len = strlen(m->reason);
	roundtrip(m);
	m->type = SX_MSG_CHAT_NOTICE;
	m->kind = SX_CHAT_N_GAP;
	roundtrip(m);
	m->type = SX_MSG_CHAT_RECEIPT;
	snprintf(m->receipt.conv, sizeof(m->receipt.conv), "%s", "#ops");
	snprintf(m->receipt.signer, sizeof(m->receipt.signer), "%s", "bob");
	assert_int_equal(sx_chat_receipt_sign(&m->receipt, f->bob_key, f->bob, &err), 0);
	roundtrip(m);
	m->type = SX_MSG_CHAT_MEMBERS;
	m->names = "alice\0bob";
	m->names_len = 9;
	m->nnames = 2;
	roundtrip(m);
	m->type = SX_MSG_CHAT_CERT;
	unsigned char *der = NULL;
	int dl = i2d_X509(f->alice, &der);
	m->certs[0] = der;
	m->cert_len[0] = (size_t)dl;
	m->ncerts = 1;
	memcpy(m->fp, f->fp_alice, SX_HASH_LEN);
	roundtrip(m);
	OPENSSL_free(der);
	m->type = SX_MSG_CHAT_BYE;
	roundtrip(m);
	/* a post with a bad conversation id */
	uint8_t buf[4096];
	m->type = SX_MSG_CHAT_POST;
	snprintf(m->post.conv, sizeof(m->post.conv), "%s", "@bob,alice");
	sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
	sx_chat_msg_encode(m, &w);
	assert_int_equal(sx_chat_msg_decode(buf, w.len, m, &err), -1);
	assert_non_null(strstr(err.msg, "sorted"));
	buf[0] = 0x4f;
	assert_int_equal(sx_chat_msg_decode(buf, 1, m, &err), -1);
	free(m);
}

/* ---- the verifier ----------------------------------------------------------------- */

static void mkpost(fixture *f, sx_chat_post *p, const char *who, const char *conv, uint64_t seq,
		   uint64_t n, const uint8_t *prev, const char *text)
{
	sx_err err = {0};
	memset(p, 0, sizeof(*p));
	snprintf(p->conv, sizeof(p->conv), "%s", conv);
	snprintf(p->author, sizeof(p->author), "%s", who);
	p->seq = seq;
	p->n = n;
	p->time_ms = 1735689600000 + (int64_t)n;
	if (prev != NULL)
		memcpy(p->prev, prev, SX_HASH_LEN);
	p->text = (const uint8_t *)text;
	p->text_len = strlen(text);
	bool a = strcmp(who, "alice") == 0;
	assert_int_equal(
	    sx_chat_post_sign(p, a ? f->alice_key : f->bob_key, a ? f->alice : f->bob, &err), 0);
}

static sx_chat_ver *ver_with_certs(fixture *f, const char *owner)
{
	sx_chat_ver *v;
	sx_err err = {0};
	assert_int_equal(sx_chat_ver_new(&v, &f->pol, owner, &err), 0);
	STACK_OF(X509) *a = one(f->alice), *b = one(f->bob);
	assert_int_equal(sx_chat_ver_cert(v, f->fp_alice, a, &err), 0);
	assert_int_equal(sx_chat_ver_cert(v, f->fp_bob, b, &err), 0);
	sk_X509_pop_free(a, X509_free);
	sk_X509_pop_free(b, X509_free);
	return v;
}

static void expect_refused(sx_chat_ver *v, const sx_chat_post *p, sx_chat_why want,
			   const char *text)
{
	sx_err err = {0};
	sx_chat_why why;
	assert_int_equal(sx_chat_ver_msg(v, p, true, &why, NULL, &err), -1);
	if (why != want || strstr(err.msg, text) == NULL)
		fail_msg("got why %d '%s', want %d '%s'", why, err.msg, want, text);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
}

static void test_chain(void **state)
{
	fixture *f = *state;
	sx_chat_ver *v = ver_with_certs(f, "bob");
	sx_chat_post p, q;
	uint8_t h1[32], h2[32], h3[32];
	sx_err err = {0};
	mkpost(f, &p, "alice", "#ops", 1, 1, NULL, "one");
	assert_int_equal(sx_chat_ver_msg(v, &p, false, NULL, h1, &err), 0);
	assert_int_equal(sx_chat_ver_count(v, "#ops"), 0); /* check only */
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, h1, &err), 0);
	mkpost(f, &q, "bob", "#ops", 1, 2, h1, "two");
	assert_int_equal(sx_chat_ver_msg(v, &q, true, NULL, h2, &err), 0);
	mkpost(f, &p, "alice", "#ops", 2, 3, h2, "three");
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, h3, &err), 0);
	/* the same message again, and an old seq on top of the head */
	expect_refused(v, &p, SX_CHAT_REPLAY, "replayed: alice's message 2 in #ops");
	mkpost(f, &p, "alice", "#ops", 1, 4, h3, "again");
	expect_refused(v, &p, SX_CHAT_REPLAY, "replayed");
	/* signed on an old head: stale (a server's answer), out of order */
	mkpost(f, &p, "alice", "#ops", 3, 3, h2, "late");
	expect_refused(v, &p, SX_CHAT_STALE, "already held");
	/* position 5 after 3: a message was dropped */
	mkpost(f, &p, "bob", "#ops", 2, 5, h3, "after a drop");
	expect_refused(v, &p, SX_CHAT_STALE, "1 message(s) missing");
	/* the right position naming another previous message */
	mkpost(f, &p, "bob", "#ops", 2, 4, h1, "forked");
	expect_refused(v, &p, SX_CHAT_STALE, "chain is broken");
	/* alice's seq 3 skipped: her message 3 is missing */
	mkpost(f, &p, "alice", "#ops", 4, 4, h3, "skipped");
	expect_refused(v, &p, SX_CHAT_REPLAY, "alice's message 3 in #ops is missing");
	/* altered text, altered author */
	mkpost(f, &p, "alice", "#ops", 3, 4, h3, "four");
	p.text = (const uint8_t *)"fouR";
	expect_refused(v, &p, SX_CHAT_BAD, "does not match its hash");
	mkpost(f, &p, "alice", "#ops", 3, 4, h3, "four");
	snprintf(p.author, sizeof(p.author), "%s", "bob");
	expect_refused(v, &p, SX_CHAT_BAD, "claims the author 'bob' but is signed by 'alice'");
	/* not UTF-8 */
	mkpost(f, &p, "alice", "#ops", 3, 4, h3, "caf\xe9");
	expect_refused(v, &p, SX_CHAT_BAD, "not UTF-8");
	/* a direct conversation without its author */
	mkpost(f, &p, "alice", "@bob,carol", 1, 1, NULL, "hi");
	expect_refused(v, &p, SX_CHAT_NOT_MEMBER, "not a member");
	/* nothing of the refusals changed the state */
	uint64_t n;
	uint8_t tip[32];
	sx_chat_ver_tip(v, "#ops", &n, tip);
	assert_int_equal(n, 3);
	assert_memory_equal(tip, h3, 32);
	assert_int_equal(sx_chat_ver_last_seq(v, "#ops", "alice"), 2);
	assert_int_equal(sx_chat_ver_count(v, "#ops"), 3);
	mkpost(f, &p, "alice", "#ops", 3, 4, h3, "four");
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, NULL, &err), 0);
	sx_chat_ver_free(v);
}

static void test_strict_head_gap(void **state)
{
	fixture *f = *state;
	sx_chat_ver *v = ver_with_certs(f, "server");
	sx_chat_post p;
	uint8_t h[32], other[32] = {1};
	sx_err err = {0};
	sx_chat_ver_set_strict(v, true);
	mkpost(f, &p, "alice", "#ops", 1, 2, other, "midway");
	expect_refused(v, &p, SX_CHAT_STALE, "must be at position 1");
	mkpost(f, &p, "alice", "#ops", 2, 1, NULL, "first");
	expect_refused(v, &p, SX_CHAT_REPLAY, "must be number 1");
	assert_int_equal(sx_chat_ver_head(v, "#ops", 3, other, &err), -1);
	sx_chat_ver_free(v);

	/* a participant joining a room midway */
	v = ver_with_certs(f, "bob");
	mkpost(f, &p, "alice", "#ops", 5, 9, other, "midway");
	assert_int_equal(sx_chat_ver_head(v, "#ops", 8, other, &err), 0);
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, h, &err), 0);
	/* a head behind what is held, or the same position with another hash */
	assert_int_equal(sx_chat_ver_head(v, "#ops", 8, other, &err), -1);
	assert_int_equal(sx_chat_ver_head(v, "#ops", 9, other, &err), -1);
	assert_int_equal(sx_chat_ver_head(v, "#ops", 9, h, &err), 0);
	/* a gap: the next message may name any prev, at the next position */
	assert_int_equal(sx_chat_ver_head(v, "#ops", 20, NULL, &err), 0);
	mkpost(f, &p, "alice", "#ops", 9, 22, other, "too far");
	expect_refused(v, &p, SX_CHAT_STALE, "missing");
	mkpost(f, &p, "alice", "#ops", 9, 21, other, "after the gap");
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, h, &err), 0);
	/* positions and seqs start at 1, whatever a transcript line says */
	mkpost(f, &p, "bob", "#zero", 1, 0, NULL, "x");
	expect_refused(v, &p, SX_CHAT_BAD, "start at 1");
	mkpost(f, &p, "bob", "#zero", 0, 1, NULL, "x");
	expect_refused(v, &p, SX_CHAT_BAD, "start at 1");
	/* a message at position 1 naming a previous one */
	mkpost(f, &p, "bob", "#x", 1, 1, other, "x");
	expect_refused(v, &p, SX_CHAT_BAD, "first message names");
	sx_chat_ver_free(v);
}

static void mkreceipt(fixture *f, sx_chat_receipt *r, const char *who, const char *conv, uint64_t n,
		      const uint8_t *head, uint64_t count)
{
	sx_err err = {0};
	memset(r, 0, sizeof(*r));
	snprintf(r->conv, sizeof(r->conv), "%s", conv);
	snprintf(r->signer, sizeof(r->signer), "%s", who);
	r->n = n;
	r->count = count;
	if (head != NULL)
		memcpy(r->head, head, 32);
	r->time_ms = 1735689700000;
	bool a = strcmp(who, "alice") == 0;
	assert_int_equal(
	    sx_chat_receipt_sign(r, a ? f->alice_key : f->bob_key, a ? f->alice : f->bob, &err), 0);
}

static void test_receipts_and_certs(void **state)
{
	fixture *f = *state;
	sx_chat_ver *v = ver_with_certs(f, "bob");
	sx_chat_post p;
	sx_chat_receipt r;
	uint8_t h1[32], h2[32], other[32] = {7};
	sx_err err = {0};
	mkpost(f, &p, "alice", "@alice,bob", 1, 1, NULL, "hi bob");
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, h1, &err), 0);
	mkpost(f, &p, "bob", "@alice,bob", 1, 2, h1, "hi alice");
	assert_int_equal(sx_chat_ver_msg(v, &p, true, NULL, h2, &err), 0);
	mkreceipt(f, &r, "alice", "@alice,bob", 2, h2, 2);
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), 0);
	mkreceipt(f, &r, "alice", "@alice,bob", 1, h1, 1); /* an earlier point: agrees */
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), 0);
	mkreceipt(f, &r, "alice", "@alice,bob", 2, other, 2);
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), -1);
	assert_non_null(strstr(err.msg, "the transcripts differ"));
	sx_err_clear(&err);
	mkreceipt(f, &r, "alice", "@alice,bob", 3, other, 3);
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), -1);
	assert_non_null(strstr(err.msg, "messages are missing"));
	sx_err_clear(&err);
	mkreceipt(f, &r, "bob", "@alice,bob", 2, h2, 1); /* own receipt, wrong count */
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), -1);
	assert_non_null(strstr(err.msg, "own receipt"));
	mkreceipt(f, &r, "bob", "@alice,bob", 2, h2, 2);
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), 0);
	r.count = 3; /* not what was signed */
	assert_int_equal(sx_chat_ver_receipt(v, &r, &err), -1);
	/* a revoked certificate, and one of an unknown CA, are certificate errors */
	STACK_OF(X509) *m = one(f->mallory);
	sx_err_clear(&err);
	assert_int_equal(sx_chat_ver_cert(v, f->fp_mallory, m, &err), -1);
	assert_int_equal(err.cls, SX_E_AUTH);
	assert_non_null(strstr(err.msg, "revoked"));
	sk_X509_pop_free(m, X509_free);
	/* a chain that is not the fingerprint's */
	STACK_OF(X509) *a = one(f->alice);
	sx_err_clear(&err);
	assert_int_equal(sx_chat_ver_cert(v, other, a, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	sk_X509_pop_free(a, X509_free);
	sx_chat_ver_free(v);
}

/* ---- transcripts ------------------------------------------------------------------- */

typedef struct text {
	char *p;
	size_t len;
	size_t starts[32]; /* offset of each line */
	size_t nlines;
} text;

static void add_line(text *t, const sx_chat_line *l)
{
	char *s;
	size_t n;
	sx_err err = {0};
	assert_int_equal(sx_chat_line_encode(l, &s, &n, &err), 0);
	/* each line reads back to itself */
	sx_chat_line *d = calloc(1, sizeof(*d));
	if (sx_chat_line_decode(s, n, d, &err) != 0)
		fail_msg("%s: %s", s, err.msg);
	sx_chat_line_free(d);
	free(d);
	t->p = realloc(t->p, t->len + n + 2);
	t->starts[t->nlines++] = t->len;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len++] = '\n';
	t->p[t->len] = '\0';
	free(s);
}

static void add_cert(text *t, X509 *x)
{
	sx_chat_line *l = calloc(1, sizeof(*l));
	sx_err err = {0};
	l->kind = SX_CHAT_L_CERT;
	assert_int_equal(sx_cert_fp(x, l->fp, &err), 0);
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	l->certs[0] = malloc((size_t)n);
	memcpy(l->certs[0], der, (size_t)n);
	l->cert_len[0] = (size_t)n;
	l->ncerts = 1;
	OPENSSL_free(der);
	add_line(t, l);
	sx_chat_line_free(l);
	free(l);
}

static void add_msg(text *t, const sx_chat_post *p)
{
	sx_chat_line *l = calloc(1, sizeof(*l));
	sx_err err = {0};
	l->kind = SX_CHAT_L_MSG;
	l->post = *p;
	assert_int_equal(sx_chat_post_hash(p, l->hash, &err), 0);
	add_line(t, l);
	free(l);
}

/* bob's transcript: 1 header, 2-3 certs, 4-7 messages, 8-9 receipts. */
static void make_transcript(fixture *f, text *t)
{
	sx_chat_line *l = calloc(1, sizeof(*l));
	sx_chat_post p;
	sx_chat_receipt r;
	uint8_t h[4][32];
	sx_err err = {0};
	const char *words[] = {"good morning", "tab\there \"quoted\" \\ and \x1b[31m",
			       "caf\xc3\xa9", "last"};
	memset(t, 0, sizeof(*t));
	l->kind = SX_CHAT_L_TRANSCRIPT;
	snprintf(l->owner, sizeof(l->owner), "%s", "bob");
	l->time_ms = 1735689600000;
	add_line(t, l);
	add_cert(t, f->alice);
	add_cert(t, f->bob);
	for (int i = 0; i < 4; i++) {
		const char *who = i % 2 == 0 ? "alice" : "bob";
		mkpost(f, &p, who, "#ops", (uint64_t)(i / 2 + 1), (uint64_t)(i + 1),
		       i > 0 ? h[i - 1] : NULL, words[i]);
		assert_int_equal(sx_chat_post_hash(&p, h[i], &err), 0);
		add_msg(t, &p);
	}
	mkreceipt(f, &r, "alice", "#ops", 4, h[3], 4);
	memset(l, 0, sizeof(*l));
	l->kind = SX_CHAT_L_RECEIPT;
	l->receipt = r;
	add_line(t, l);
	mkreceipt(f, &r, "bob", "#ops", 4, h[3], 4);
	l->receipt = r;
	add_line(t, l);
	free(l);
}

static void expect_bad(fixture *f, const char *s, size_t len, size_t line, const char *why)
{
	size_t bad;
	sx_chat_summary sum;
	sx_err err = {0};
	assert_int_equal(sx_chat_verify_text(s, len, &f->pol, &bad, &sum, &err), -1);
	if (bad != line || strstr(err.msg, why) == NULL)
		fail_msg("got line %zu '%s', want line %zu '%s'", bad, err.msg, line, why);
}

static void test_transcript(void **state)
{
	fixture *f = *state;
	text t;
	size_t bad;
	sx_chat_summary sum;
	sx_err err = {0};
	make_transcript(f, &t);
	if (sx_chat_verify_text(t.p, t.len, &f->pol, &bad, &sum, &err) != 0)
		fail_msg("line %zu: %s", bad, err.msg);
	assert_int_equal(sum.lines, 9);
	assert_int_equal(sum.msgs, 4);
	assert_int_equal(sum.receipts, 2);
	assert_string_equal(sum.owner, "bob");

	char *e = malloc(2 * t.len);
	/* a word of line 5 edited: its hash no longer matches */
	memcpy(e, t.p, t.len);
	char *w = strstr(e + t.starts[3], "good morning");
	w[0] = 'G';
	expect_bad(f, e, t.len, 4, "");
	/* line 5 removed: line 6 (now line 5) breaks the chain */
	size_t l5 = t.starts[4], l6 = t.starts[5];
	memcpy(e, t.p, l5);
	memcpy(e + l5, t.p + l6, t.len - l6);
	expect_bad(f, e, t.len - (l6 - l5), 5, "1 message(s) missing");
	/* lines 6 and 7 swapped */
	size_t l7 = t.starts[6], l8 = t.starts[7];
	memcpy(e, t.p, l6);
	memcpy(e + l6, t.p + l7, l8 - l7);
	memcpy(e + l6 + (l8 - l7), t.p + l6, l7 - l6);
	memcpy(e + l8, t.p + l8, t.len - l8);
	expect_bad(f, e, t.len, 6, "");
	/* the last message removed: the receipts name a message not held */
	memcpy(e, t.p, l7);
	memcpy(e + l7, t.p + l8, t.len - l8);
	expect_bad(f, e, t.len - (l8 - l7), 7, "messages are missing");
	/* a cut last line, an empty file, a line before the header */
	expect_bad(f, t.p, t.len - 1, 9, "cut");
	expect_bad(f, t.p, 0, 1, "empty");
	expect_bad(f, t.p + t.starts[1], t.len - t.starts[1], 1, "first line");
	/* another spelling of the same line: a space, an escape, upper-case hex */
	memcpy(e, t.p, t.len);
	e[t.starts[1] + 1] = ' ';
	expect_bad(f, e, t.len, 2, "");
	memcpy(e, t.p, t.len);
	w = strstr(e + t.starts[3], "\"n\":1,");
	memcpy(w, "\"n\":01", 6);
	expect_bad(f, e, t.len, 4, "");
	memcpy(e, t.p, t.len);
	w = strstr(e + t.starts[4], "\\u0009");
	assert_non_null(w);
	memcpy(w, "\\u000A", 6);
	expect_bad(f, e, t.len, 5, "");
	/* the header again later */
	memcpy(e, t.p, t.len);
	memcpy(e + t.len, t.p, t.starts[1]);
	expect_bad(f, e, t.len + t.starts[1], 10, "only be the first");
	free(e);
	free(t.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conv),
	    cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strict_head_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receipts_and_certs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transcript, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
