#include "engine/transfer/sx_admit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

void sx_admit_key(const struct sockaddr_storage *ss, uint8_t key[SX_ADMIT_KEY_LEN])
{
	memset(key, 0, SX_ADMIT_KEY_LEN);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		key[0] = 4;
		memcpy(key + 1, &a->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, a->sin6_addr.s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a->sin6_addr.s6_addr, 8);
		}
	}
	/* Anything else (a Unix socket in a test) is one address, key 0. */
}

int sx_admit_init(sx_admit *a, unsigned hs_max, unsigned fresh_max, unsigned per_addr, sx_err *err)
{
	memset(a, 0, sizeof(*a));
	a->hs_max = hs_max ? hs_max : 1;
	a->per_addr = per_addr ? per_addr : 1;
	/* Waiting: as many as in progress, or up to half of all the slots of
	 * connections not yet authenticated, so that a fleet behind one
	 * address is served in turn while other addresses keep the rest. */
	a->wait_max = a->per_addr > a->hs_max / 2 ? a->per_addr : a->hs_max / 2;
	a->fresh_max = fresh_max > a->hs_max ? fresh_max : a->hs_max;
	a->cap = a->fresh_max;
	a->tab = calloc(a->cap, sizeof(*a->tab));
	if (a->tab == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	return 0;
}

void sx_admit_free(sx_admit *a)
{
	if (a->tab == NULL)
		return;
	pthread_mutex_destroy(&a->mu);
	free(a->tab);
	a->tab = NULL;
}

/* The entry of key, or a free one when key has none (there is always one
 * below the total limit: every used entry holds at least one of at most cap
 * connections). */
static struct sx_admit_ent *lookup(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN], bool add)
{
	struct sx_admit_ent *free_ent = NULL;
	for (unsigned i = 0; i < a->cap; i++) {
		struct sx_admit_ent *e = &a->tab[i];
		if (e->n == 0 && e->w == 0) {
			if (free_ent == NULL)
				free_ent = e;
		} else if (memcmp(e->key, key, SX_ADMIT_KEY_LEN) == 0) {
			return e;
		}
	}
	if (!add || free_ent == NULL)
		return NULL;
	memcpy(free_ent->key, key, SX_ADMIT_KEY_LEN);
	return free_ent;
}

sx_admit_result sx_admit_enter(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN])
{
	sx_admit_result r = SX_ADMIT_FULL;
	pthread_mutex_lock(&a->mu);
	/* The address's own limits first: an address at them is refused
	 * whatever the total (and makes no other connection give way). */
	struct sx_admit_ent *e = lookup(a, key, false);
	if (e != NULL && e->n >= a->per_addr && e->w >= a->wait_max)
		r = SX_ADMIT_ADDR_FULL;
	/* An address with no connection in progress or waiting may go beyond
	 * hs_max, up to fresh_max: a device arriving while the others hold
	 * every slot gets in even where no slot can be taken back for it. */
	else if (a->handshakes + a->waiting >= (e == NULL ? a->fresh_max : a->hs_max) ||
		 (e == NULL && (e = lookup(a, key, true)) == NULL))
		r = SX_ADMIT_FULL;
	else if (e->n < a->per_addr) {
		e->n++;
		a->handshakes++;
		r = SX_ADMIT_OK;
	} else if (e->w < a->wait_max) {
		e->w++;
		a->waiting++;
		r = SX_ADMIT_WAIT;
	} else {
		r = SX_ADMIT_ADDR_FULL;
	}
	pthread_mutex_unlock(&a->mu);
	return r;
}

bool sx_admit_promote(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN])
{
	bool ok = false;
	pthread_mutex_lock(&a->mu);
	struct sx_admit_ent *e = lookup(a, key, false);
	if (e != NULL && e->w > 0 && e->n < a->per_addr) {
		e->w--;
		a->waiting--;
		e->n++;
		a->handshakes++;
		ok = true;
	}
	pthread_mutex_unlock(&a->mu);
	return ok;
}

unsigned sx_admit_count(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN])
{
	pthread_mutex_lock(&a->mu);
	struct sx_admit_ent *e = lookup(a, key, false);
	unsigned n = e != NULL ? e->n + e->w : 0;
	pthread_mutex_unlock(&a->mu);
	return n;
}

void sx_admit_unwait(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN])
{
	pthread_mutex_lock(&a->mu);
	struct sx_admit_ent *e = lookup(a, key, false);
	if (e != NULL && e->w > 0) {
		e->w--;
		a->waiting--;
	}
	pthread_mutex_unlock(&a->mu);
}

void sx_admit_leave(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN])
{
	pthread_mutex_lock(&a->mu);
	struct sx_admit_ent *e = lookup(a, key, false);
	if (e != NULL && e->n > 0) {
		e->n--;
		a->handshakes--;
	}
	pthread_mutex_unlock(&a->mu);
}
