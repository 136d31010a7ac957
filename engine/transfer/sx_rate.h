/* engine/transfer/rate: a token bucket kept as a virtual clock (the
 * generic cell rate algorithm): bytes may go once the clock has caught up
 * with now, and n bytes that go move it n / rate seconds on. Idle time
 * earns at most SX_RATE_BURST_NS of credit (the bucket's depth), so the
 * wake-ups of an event loop cost no rate, and no stretch of time carries
 * more than its share plus that. Pure. */
#ifndef SX_RATE_H
#define SX_RATE_H

#include <stdint.h>

#define SX_RATE_MIN	 1024u	    /* --limit-rate: at least 1 KiB per second */
#define SX_RATE_BURST_NS 100000000u /* a tenth of a second of credit at most */

typedef struct sx_rate {
	uint64_t bps; /* bytes per second; 0: no limit */
	uint64_t tat; /* nanoseconds (sx_now_ns) when the next bytes may go */
} sx_rate;

/* Nanoseconds to wait at now before the next bytes may go (0: at once). */
static inline uint64_t sx_rate_wait(const sx_rate *r, uint64_t now)
{
	return r->tat > now ? r->tat - now : 0;
}

/* n bytes went at now. */
static inline void sx_rate_charge(sx_rate *r, uint64_t n, uint64_t now)
{
	if (r->tat + SX_RATE_BURST_NS < now)
		r->tat = now - SX_RATE_BURST_NS;
	r->tat += n / r->bps * 1000000000ull + n % r->bps * 1000000000ull / r->bps;
}

/* The largest record payload that keeps one record within a quarter of a
 * second at the rate (whole 4 KiB blocks, at least min): a slow limit
 * sends small records rather than long silences the peer could take for
 * a stall. */
static inline uint32_t sx_rate_chunk(uint64_t bps, uint32_t chunk, uint32_t min)
{
	uint64_t cap = bps / 4 / 4096 * 4096;
	if (cap < min)
		cap = min;
	return bps != 0 && cap < chunk ? (uint32_t)cap : chunk;
}

#endif
