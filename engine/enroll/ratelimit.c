/* Failed token attempts per address: a sliding window of the last `limit`
 * failure times of each address, in a table of a fixed number of
 * addresses (docs/PKI.md "Enrollment service, renewal and CRL
 * distribution"). */
#include "engine/enroll/sx_enroll.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

typedef struct rl_slot {
	uint8_t key[SX_RATELIMIT_KEY_LEN];
	bool used;
	uint32_t n;		      /* failures held in t (at most limit) */
	uint32_t head;		      /* where the next failure goes */
	uint64_t t[SX_RATELIMIT_MAX]; /* failure times, a ring */
	uint64_t last;		      /* the newest failure */
} rl_slot;

struct sx_ratelimit {
	unsigned limit, window;
	size_t nslots, used;
	rl_slot *slots;
};

int sx_ratelimit_new(sx_ratelimit **out, unsigned limit, unsigned window_s, size_t slots,
		     sx_err *err)
{
	sx_ratelimit *rl = NULL;
	*out = NULL;
	SX_ENSURE(limit >= 1 && limit <= SX_RATELIMIT_MAX && window_s >= 1 && slots >= 1, err,
		  SX_E_USAGE, "rate limit: 1 to %d failures per window of at least 1 s",
		  SX_RATELIMIT_MAX);
	rl = calloc(1, sizeof(*rl));
	SX_ENSURE(rl != NULL, err, SX_E_OTHER, "out of memory");
	rl->slots = calloc(slots, sizeof(*rl->slots));
	SX_ENSURE(rl->slots != NULL, err, SX_E_OTHER, "out of memory");
	rl->limit = limit;
	rl->window = window_s;
	rl->nslots = slots;
	*out = rl;
	return 0;
out:
	sx_ratelimit_free(rl);
	return -1;
}

void sx_ratelimit_free(sx_ratelimit *rl)
{
	if (rl == NULL)
		return;
	free(rl->slots);
	free(rl);
}

size_t sx_ratelimit_count(const sx_ratelimit *rl)
{
	return rl->used;
}

void sx_ratelimit_key(const struct sockaddr *sa, uint8_t key[SX_RATELIMIT_KEY_LEN])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	memset(key, 0, SX_RATELIMIT_KEY_LEN);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		key[0] = 4;
		memcpy(key + 1, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			key[0] = 4;
			memcpy(key + 1, a + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a, 8); /* the /64 */
		}
	}
}

/* Drops the failures older than the window. */
static void expire(const sx_ratelimit *rl, rl_slot *s, uint64_t now)
{
	while (s->n > 0) {
		uint32_t oldest = (s->head + rl->limit - s->n) % rl->limit;
		if (s->t[oldest] + rl->window > now)
			break;
		s->n--;
	}
}

static rl_slot *find(sx_ratelimit *rl, const uint8_t *key)
{
	for (size_t i = 0; i < rl->nslots; i++)
		if (rl->slots[i].used && memcmp(rl->slots[i].key, key, SX_RATELIMIT_KEY_LEN) == 0)
			return &rl->slots[i];
	return NULL;
}

unsigned sx_ratelimit_check(sx_ratelimit *rl, const uint8_t key[SX_RATELIMIT_KEY_LEN],
			    uint64_t now_s)
{
	rl_slot *s = find(rl, key);
	if (s == NULL)
		return 0;
	expire(rl, s, now_s);
	if (s->n < rl->limit)
		return 0;
	/* Full: the oldest failure leaves the window first. */
	uint64_t oldest = s->t[s->head % rl->limit];
	uint64_t free_at = oldest + rl->window;
	return free_at > now_s ? (unsigned)(free_at - now_s) : 1;
}

/* A slot for a new address: a free one, else one whose failures have all
 * left the window, else the one whose last failure is the oldest. */
static rl_slot *take_slot(sx_ratelimit *rl, uint64_t now)
{
	rl_slot *victim = NULL;
	for (size_t i = 0; i < rl->nslots; i++) {
		rl_slot *s = &rl->slots[i];
		if (!s->used) {
			rl->used++;
			return s;
		}
		expire(rl, s, now);
		if (s->n == 0)
			return s;
		if (victim == NULL || s->last < victim->last)
			victim = s;
	}
	return victim;
}

void sx_ratelimit_fail(sx_ratelimit *rl, const uint8_t key[SX_RATELIMIT_KEY_LEN], uint64_t now_s)
{
	rl_slot *s = find(rl, key);
	if (s == NULL) {
		s = take_slot(rl, now_s);
		memset(s, 0, sizeof(*s));
		memcpy(s->key, key, SX_RATELIMIT_KEY_LEN);
		s->used = true;
	}
	expire(rl, s, now_s);
	s->t[s->head] = now_s;
	s->head = (s->head + 1) % rl->limit;
	if (s->n < rl->limit)
		s->n++;
	s->last = now_s;
}
