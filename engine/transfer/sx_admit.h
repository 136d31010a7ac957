/* engine/admit: who may start a handshake. A connection that has not yet
 * authenticated costs the server a slot, memory and a TLS state, and anyone
 * who can reach the port can open one; so connections that have not
 * authenticated are capped in total (the rest of --max-conns is kept for
 * authenticated peers) and per source address: at most per_addr handshakes
 * in progress, and at most max(per_addr, hs_max / 2) more waiting, unread,
 * for one of those to end (a fleet behind one NAT address connecting at
 * once is served in turn; a host opening more is refused). Shared by the server's event loops
 * (a mutex: a lock per accept and per handshake end, never on the data
 * path). */
#ifndef SX_ADMIT_H
#define SX_ADMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/sx_err.h"

#define SX_ADMIT_KEY_LEN 16

/* What one source address is: an IPv4 address, or the /64 prefix of an
 * IPv6 address (a host usually owns a whole /64). IPv4-mapped IPv6 is the
 * IPv4 address. */
void sx_admit_key(const struct sockaddr_storage *ss, uint8_t key[SX_ADMIT_KEY_LEN]);

typedef enum sx_admit_result {
	SX_ADMIT_OK = 0,
	SX_ADMIT_WAIT,	    /* counted as waiting: sx_admit_promote later */
	SX_ADMIT_ADDR_FULL, /* this address has as many in progress and waiting as it may */
	SX_ADMIT_FULL,	    /* hs_max connections in progress or waiting in all */
} sx_admit_result;

struct sx_admit_ent {
	uint8_t key[SX_ADMIT_KEY_LEN];
	unsigned n, w; /* in progress, waiting; both 0: a free entry */
};

typedef struct sx_admit {
	pthread_mutex_t mu;
	unsigned hs_max, per_addr;
	unsigned fresh_max;  /* the total for an address that holds none */
	unsigned wait_max;   /* waiting per address */
	unsigned handshakes; /* in progress, all addresses */
	unsigned waiting;    /* waiting, all addresses */
	struct sx_admit_ent *tab;
	unsigned cap; /* entries in tab: fresh_max (one per connection at most) */
} sx_admit;

int sx_admit_init(sx_admit *a, unsigned hs_max, unsigned fresh_max, unsigned per_addr,
		  sx_err *err) SX_MUST_CHECK;
void sx_admit_free(sx_admit *a);
/* Counts a new connection from key in: as a handshake in progress, or as
 * waiting for one, unless a limit is reached. */
sx_admit_result sx_admit_enter(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN]);
/* A waiting connection from key may start its handshake now: true when it
 * was moved from waiting to in progress. */
bool sx_admit_promote(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN]);
/* Connections from key in progress or waiting. */
unsigned sx_admit_count(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN]);
/* A waiting connection from key went away. */
void sx_admit_unwait(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN]);
/* The handshake from key ended (authenticated, failed or timed out). */
void sx_admit_leave(sx_admit *a, const uint8_t key[SX_ADMIT_KEY_LEN]);

#endif
