/* engine/enroll, the pure parts: the messages of docs/PROTOCOL.md
 * "Enrollment" (its test vectors both ways, every truncation, one byte
 * more, each bound), the rate limit of failed token attempts, and the
 * parsing of a CA fingerprint. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/enroll/sx_enroll.h"
#include "engine/wire/sx_wire.h"

#define BUF_MAX (SX_ENROLL_REPLY_MAX + 16)

static uint8_t g_buf[BUF_MAX], g_enc[BUF_MAX];

typedef struct vector {
	const char *what;
	sx_enroll_msg m;
	const char *hex;
} vector;

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

/* docs/PROTOCOL.md "Enrollment", "Test vectors". The DER fields are short
 * stand-ins: the codec carries them, the pki layer parses them. */
static const vector vectors[] = {
    {"ENROLL",
     {.type = SX_EMSG_ENROLL, .token = B("tok-123"), .csr = B("\x30\x03\x02\x01\x00")},
     "400007746f6b2d31323300053003020100"},
    {"RENEW", {.type = SX_EMSG_RENEW, .csr = B("\x30\x03\x02\x01\x01")}, "4100053003020101"},
    {"CRL request", {.type = SX_EMSG_CRL_REQ}, "42"},
    {"ISSUED, no CRL",
     {.type = SX_EMSG_ISSUED, .leaf = B("\x30\x03\x02\x01\x02"), .root = B("\x30\x03\x02\x01\x03")},
     "480005300302010200053003020103"
     "00000000"},
    {"ISSUED with a CRL",
     {.type = SX_EMSG_ISSUED,
      .leaf = B("\x30\x03\x02\x01\x02"),
      .root = B("\x30\x03\x02\x01\x03"),
      .crl = B("\x30\x03\x02\x01\x04")},
     "480005300302010200053003020103"
     "000000053003020104"},
    {"CRL", {.type = SX_EMSG_CRL, .crl = B("\x30\x03\x02\x01\x04")}, "49000000053003020104"},
    {"ERROR",
     {.type = SX_EMSG_ERROR, .err_class = 3, .reason = B("token already used")},
     "4f030012746f6b656e20616c72656164792075736564"},
};

static bool same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void same_msg(const sx_enroll_msg *a, const sx_enroll_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_true(same(a->token, a->token_len, b->token, b->token_len));
	assert_true(same(a->csr, a->csr_len, b->csr, b->csr_len));
	assert_true(same(a->leaf, a->leaf_len, b->leaf, b->leaf_len));
	assert_true(same(a->root, a->root_len, b->root, b->root_len));
	assert_true(same(a->crl, a->crl_len, b->crl, b->crl_len));
	assert_int_equal(a->err_class, b->err_class);
	assert_true(same(a->reason, a->reason_len, b->reason, b->reason_len));
}

static void refused(const uint8_t *p, size_t n, const char *want)
{
	sx_enroll_msg m;
	sx_err err = {0};
	assert_int_equal(sx_enroll_msg_decode(p, n, &m, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	if (want != NULL && strstr(err.msg, want) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", err.msg, want);
}

static void test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const vector *v = &vectors[i];
		long n = sx_test_unhex(v->hex, g_buf, sizeof(g_buf));
		assert_true(n > 0);
		size_t len = sx_enroll_msg_encode(&v->m, g_enc, sizeof(g_enc));
		assert_true(len > 0);
		if (!same(g_enc, len, g_buf, (size_t)n))
			fail_msg("%s: the encoding differs from the document", v->what);
		sx_enroll_msg m;
		sx_err err = {0};
		if (sx_enroll_msg_decode(g_buf, (size_t)n, &m, &err) < 0)
			fail_msg("%s: %s", v->what, err.msg);
		same_msg(&v->m, &m);
		/* Every truncation, and one byte more. */
		for (long k = 0; k < n; k++)
			refused(g_buf, (size_t)k, NULL);
		g_buf[n] = 0;
		refused(g_buf, (size_t)n + 1, "left over");
	}
	assert_string_equal(sx_enroll_msg_name(SX_EMSG_ISSUED), "ISSUED");
}

/* What the encoder will not write and the decoder will not read. */
static void bad(const sx_enroll_msg *m, const char *want)
{
	assert_int_equal(sx_enroll_msg_encode(m, g_enc, sizeof(g_enc)), 0);
	/* The same fields, written by hand. */
	sx_wbuf h = sx_wbuf_make(g_buf, sizeof(g_buf));
	sx_put_u8(&h, m->type);
	switch (m->type) {
	case SX_EMSG_ENROLL:
		sx_put_block16(&h, m->token, m->token_len);
		sx_put_block16(&h, m->csr, m->csr_len);
		break;
	case SX_EMSG_RENEW: sx_put_block16(&h, m->csr, m->csr_len); break;
	case SX_EMSG_ISSUED:
		sx_put_block16(&h, m->leaf, m->leaf_len);
		sx_put_block16(&h, m->root, m->root_len);
		/* fall through */
	case SX_EMSG_CRL:
		sx_put_u32(&h, (uint32_t)m->crl_len);
		sx_put_bytes(&h, m->crl, m->crl_len);
		break;
	case SX_EMSG_ERROR:
		sx_put_u8(&h, m->err_class);
		sx_put_block16(&h, m->reason, m->reason_len);
		break;
	default: break;
	}
	assert_false(h.overflow);
	refused(g_buf, h.len, want);
}

static void test_bounds(void **state)
{
	(void)state;
	static uint8_t big[SX_ENROLL_CRL_MAX + 1];
	const uint8_t *der = (const uint8_t *)"\x30\x00";
	memset(big, 'a', sizeof(big));
	bad(&(sx_enroll_msg){.type = SX_EMSG_ENROLL, .token = B("a b"), .csr = der, .csr_len = 2},
	    "visible ASCII");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ENROLL, .token = B("a\0b"), .csr = der, .csr_len = 2},
	    "visible ASCII");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ENROLL, .csr = der, .csr_len = 2}, "token");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ENROLL,
			     .token = big,
			     .token_len = SX_ENROLL_TOKEN_MAX + 1,
			     .csr = der,
			     .csr_len = 2},
	    "token");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ENROLL, .token = B("t")}, "CSR");
	bad(&(sx_enroll_msg){.type = SX_EMSG_RENEW, .csr = big, .csr_len = SX_ENROLL_CSR_MAX + 1},
	    "CSR");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ISSUED, .root = der, .root_len = 2}, "certificate");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ISSUED,
			     .leaf = der,
			     .leaf_len = 2,
			     .root = big,
			     .root_len = SX_ENROLL_CERT_MAX + 1},
	    "certificate");
	bad(&(sx_enroll_msg){.type = SX_EMSG_CRL}, "CRL of 0");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ERROR, .err_class = 0}, "class");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ERROR, .err_class = 7}, "class");
	bad(&(sx_enroll_msg){.type = SX_EMSG_ERROR,
			     .err_class = 3,
			     .reason = big,
			     .reason_len = SX_REASON_MAX + 1},
	    "reason");
	/* A CRL over 4 MiB: refused on its length, before its bytes. */
	static const uint8_t huge[] = {0x49, 0x00, 0x40, 0x00, 0x01};
	refused(huge, sizeof(huge), "truncated");
	assert_int_equal(
	    sx_enroll_msg_encode(
		&(sx_enroll_msg){.type = SX_EMSG_CRL, .crl = big, .crl_len = SX_ENROLL_CRL_MAX + 1},
		g_enc, sizeof(g_enc)),
	    0);
	/* The largest ISSUED fits SX_ENROLL_REPLY_MAX exactly. */
	sx_enroll_msg most = {.type = SX_EMSG_ISSUED,
			      .leaf = big,
			      .leaf_len = SX_ENROLL_CERT_MAX,
			      .root = big,
			      .root_len = SX_ENROLL_CERT_MAX,
			      .crl = big,
			      .crl_len = SX_ENROLL_CRL_MAX};
	assert_int_equal(sx_enroll_msg_encode(&most, g_enc, SX_ENROLL_REPLY_MAX),
			 SX_ENROLL_REPLY_MAX);
	assert_int_equal(sx_enroll_msg_encode(&most, g_enc, SX_ENROLL_REPLY_MAX - 1), 0);
	/* Unknown types, a transfer message among them, and nothing at all. */
	refused((const uint8_t *)"\x43", 1, "unknown type 0x43");
	refused((const uint8_t *)"\x22\x03\x00\x00", 4, "unknown type 0x22");
	refused(NULL, 0, "empty");
}

static void test_ratelimit(void **state)
{
	(void)state;
	sx_ratelimit *rl = NULL;
	sx_err err = {0};
	uint8_t a[SX_RATELIMIT_KEY_LEN] = {4, 10, 0, 0, 1},
		b[SX_RATELIMIT_KEY_LEN] = {4, 10, 0, 0, 2};
	assert_int_equal(sx_ratelimit_new(&rl, 3, 60, 4, &err), 0);
	assert_int_equal(sx_ratelimit_check(rl, a, 100), 0);
	sx_ratelimit_fail(rl, a, 100);
	sx_ratelimit_fail(rl, a, 110);
	assert_int_equal(sx_ratelimit_check(rl, a, 115), 0);
	sx_ratelimit_fail(rl, a, 120);
	/* Three failures within the minute: blocked until the first leaves it. */
	assert_int_equal(sx_ratelimit_check(rl, a, 121), 39);
	assert_int_equal(sx_ratelimit_check(rl, b, 121), 0);
	assert_int_equal(sx_ratelimit_check(rl, a, 159), 1);
	assert_int_equal(sx_ratelimit_check(rl, a, 160), 0);
	sx_ratelimit_fail(rl, a, 160);
	assert_int_equal(sx_ratelimit_check(rl, a, 161), 9);
	assert_int_equal(sx_ratelimit_check(rl, a, 300), 0);
	/* A bounded table: a fifth address takes the place of the oldest. */
	for (uint8_t i = 0; i < 6; i++) {
		uint8_t k[SX_RATELIMIT_KEY_LEN] = {4, 192, 0, 2, i};
		sx_ratelimit_fail(rl, k, 400 + i);
		assert_true(sx_ratelimit_count(rl) <= 4);
	}
	assert_int_equal(sx_ratelimit_count(rl), 4);
	sx_ratelimit_free(rl);
	assert_int_equal(sx_ratelimit_new(&rl, 0, 60, 4, &err), -1);
	assert_int_equal(sx_ratelimit_new(&rl, SX_RATELIMIT_MAX + 1, 60, 4, &err), -1);
}

static void key_of(const char *addr, uint8_t key[SX_RATELIMIT_KEY_LEN])
{
	struct sockaddr_storage ss = {0};
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &in->sin_addr), 1);
	}
	sx_ratelimit_key((struct sockaddr *)&ss, key);
}

static void test_ratelimit_keys(void **state)
{
	(void)state;
	uint8_t k1[SX_RATELIMIT_KEY_LEN], k2[SX_RATELIMIT_KEY_LEN];
	key_of("192.0.2.7", k1);
	key_of("::ffff:192.0.2.7", k2);
	assert_memory_equal(k1, k2, sizeof(k1));
	key_of("192.0.2.8", k2);
	assert_memory_not_equal(k1, k2, sizeof(k1));
	/* One /64: one key. */
	key_of("2001:db8:1:2::1", k1);
	key_of("2001:db8:1:2:ffff::9", k2);
	assert_memory_equal(k1, k2, sizeof(k1));
	key_of("2001:db8:1:3::1", k2);
	assert_memory_not_equal(k1, k2, sizeof(k1));
}

static void test_fp_parse(void **state)
{
	(void)state;
	static const char hex[] =
	    "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
	uint8_t fp[SX_CERT_FP_LEN];
	sx_err err = {0};
	assert_int_equal(sx_enroll_fp_parse(hex, fp, &err), 0);
	assert_int_equal(fp[0], 0x00);
	assert_int_equal(fp[5], 0x55);
	assert_int_equal(fp[31], 0xff);
	assert_int_equal(sx_enroll_fp_parse("00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
					    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
					    fp, &err),
			 0);
	assert_int_equal(fp[10], 0xaa);
	const char *badfp[] = {"",
			       "0011",
			       ":00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
			       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00",
			       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg",
			       "0:0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
			       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff:"};
	for (size_t i = 0; i < sizeof(badfp) / sizeof(badfp[0]); i++) {
		sx_err_clear(&err);
		if (sx_enroll_fp_parse(badfp[i], fp, &err) != -1)
			fail_msg("accepted '%s'", badfp[i]);
		assert_int_equal(err.cls, SX_E_USAGE);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),   cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_ratelimit), cmocka_unit_test(test_ratelimit_keys),
	    cmocka_unit_test(test_fp_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
