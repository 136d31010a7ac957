#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "engine/transfer/sx_admit.h"

static void key4(const char *ip, uint8_t key[SX_ADMIT_KEY_LEN])
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(1234);
	assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	sx_admit_key(&ss, key);
}

static void key6(const char *ip, uint8_t key[SX_ADMIT_KEY_LEN])
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(4321);
	assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	sx_admit_key(&ss, key);
}

static void test_keys(void **state)
{
	(void)state;
	uint8_t a[SX_ADMIT_KEY_LEN], b[SX_ADMIT_KEY_LEN];
	key4("192.0.2.1", a);
	key4("192.0.2.2", b);
	assert_memory_not_equal(a, b, SX_ADMIT_KEY_LEN);
	/* An IPv4-mapped IPv6 address is the IPv4 address. */
	key6("::ffff:192.0.2.1", b);
	assert_memory_equal(a, b, SX_ADMIT_KEY_LEN);
	/* One /64 is one address; another /64 is another. */
	key6("2001:db8:1:2::1", a);
	key6("2001:db8:1:2:ffff::9", b);
	assert_memory_equal(a, b, SX_ADMIT_KEY_LEN);
	key6("2001:db8:1:3::1", b);
	assert_memory_not_equal(a, b, SX_ADMIT_KEY_LEN);
	/* 0.0.0.1 as IPv4 is not ::1's /64 (the family is in the key). */
	key4("0.0.0.0", a);
	key6("::", b);
	assert_memory_not_equal(a, b, SX_ADMIT_KEY_LEN);
}

static void test_limits(void **state)
{
	(void)state;
	sx_admit ad;
	sx_err err = {0};
	uint8_t x[SX_ADMIT_KEY_LEN], y[SX_ADMIT_KEY_LEN], z[SX_ADMIT_KEY_LEN];
	key4("198.51.100.7", x);
	key4("198.51.100.8", y);
	key6("2001:db8::5", z);
	/* hs_max 5: at most two waiting per address (max(2, 5 / 2)). */
	assert_int_equal(sx_admit_init(&ad, 5, 5, 2, &err), 0);
	/* Per address: two in progress, two waiting, the fifth refused; y
	 * still gets in. */
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_OK);
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_OK);
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_WAIT);
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_WAIT);
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_ADDR_FULL);
	assert_false(sx_admit_promote(&ad, x)); /* none of x has ended */
	assert_int_equal(sx_admit_enter(&ad, y), SX_ADMIT_OK);
	/* In all: five in progress or waiting. */
	assert_int_equal(sx_admit_enter(&ad, y), SX_ADMIT_FULL);
	assert_int_equal(sx_admit_enter(&ad, z), SX_ADMIT_FULL);
	/* x at its own limits is told so, not that all are full (it would make
	 * another connection give way for nothing). */
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_ADDR_FULL);
	assert_int_equal(ad.handshakes, 3);
	assert_int_equal(ad.waiting, 2);
	assert_int_equal(sx_admit_count(&ad, x), 4);
	assert_int_equal(sx_admit_count(&ad, y), 1);
	assert_int_equal(sx_admit_count(&ad, z), 0);
	/* One of x ends: one waiting of x begins; y's slot is not x's. */
	sx_admit_leave(&ad, x);
	assert_false(sx_admit_promote(&ad, y));
	assert_true(sx_admit_promote(&ad, x));
	assert_false(sx_admit_promote(&ad, x));
	assert_int_equal(ad.handshakes, 3);
	assert_int_equal(ad.waiting, 1);
	/* The other waiting one goes away; all end: every entry is free again,
	 * for as many addresses. */
	sx_admit_unwait(&ad, x);
	sx_admit_leave(&ad, x);
	sx_admit_leave(&ad, x);
	sx_admit_leave(&ad, y);
	assert_int_equal(ad.handshakes, 0);
	assert_int_equal(ad.waiting, 0);
	/* With many slots, one address may wait for half of them. */
	sx_admit_free(&ad);
	assert_int_equal(sx_admit_init(&ad, 48, 48, 8, &err), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_OK);
	for (int i = 0; i < 24; i++)
		assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_WAIT);
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_ADDR_FULL);
	assert_int_equal(sx_admit_enter(&ad, y), SX_ADMIT_OK);
	sx_admit_free(&ad);
	assert_int_equal(sx_admit_init(&ad, 7, 7, 2, &err), 0);
	for (int i = 0; i < 7; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "203.0.113.%d", i + 1);
		key4(ip, x);
		assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_OK);
	}
	assert_int_equal(ad.handshakes, 7);
	/* Leaving or unwaiting for an address that has none changes nothing. */
	sx_admit_leave(&ad, z);
	sx_admit_unwait(&ad, z);
	assert_int_equal(ad.handshakes, 7);
	assert_int_equal(ad.waiting, 0);
	sx_admit_free(&ad);
}

/* Beyond hs_max, only an address that holds nothing gets in, up to
 * fresh_max. */
static void test_fresh_addresses(void **state)
{
	(void)state;
	sx_admit ad;
	sx_err err = {0};
	uint8_t x[SX_ADMIT_KEY_LEN], y[SX_ADMIT_KEY_LEN], z[SX_ADMIT_KEY_LEN];
	key4("198.51.100.1", x);
	key4("198.51.100.2", y);
	key4("198.51.100.3", z);
	assert_int_equal(sx_admit_init(&ad, 3, 4, 8, &err), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_OK);
	assert_int_equal(sx_admit_enter(&ad, x), SX_ADMIT_FULL); /* x holds some */
	assert_int_equal(sx_admit_enter(&ad, y), SX_ADMIT_OK);	 /* y holds none */
	assert_int_equal(sx_admit_enter(&ad, y), SX_ADMIT_FULL);
	assert_int_equal(sx_admit_enter(&ad, z), SX_ADMIT_FULL); /* fresh_max reached */
	sx_admit_free(&ad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_fresh_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
