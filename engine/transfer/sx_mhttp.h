/* engine/transfer: the HTTP/1.1 listener of the metrics (sxfer serve
 * --metrics): GET (or HEAD) /metrics answers with what render writes, any
 * other path 404, another method 405, a request that is not HTTP 400, a
 * request head over MHTTP_REQ_MAX bytes 431. One thread of its own, never
 * an event loop's; at most MHTTP_CLIENTS connections at once (more wait in
 * the listening socket's backlog), each closed after its answer, or after
 * MHTTP_TIMEOUT_MS from its accept. */
#ifndef SX_MHTTP_H
#define SX_MHTTP_H

#include <stdbool.h>

#include "common/sx_err.h"
#include "common/sx_prom.h"

#define MHTTP_CLIENTS	 4
#define MHTTP_REQ_MAX	 4096
#define MHTTP_TIMEOUT_MS 5000
#define MHTTP_LINGER_MS	 1000 /* after the answer, the peer's input is read and dropped */

typedef struct sx_mhttp sx_mhttp;

typedef struct sx_mhttp_cfg {
	const char *listen; /* ADDR:PORT */
	bool public_ok;	    /* else a non-loopback address is refused (SX_E_USAGE) */
	/* writes the exposition into out (on the listener's thread); -1 (or
	 * out->oom): answered 500 */
	int (*render)(void *ctx, sx_prom *out);
	void *ctx;
} sx_mhttp_cfg;

/* Listens and starts the thread; *port is the bound port. */
int sx_mhttp_start(const sx_mhttp_cfg *cfg, sx_mhttp **out, int *port, sx_err *err) SX_MUST_CHECK;
/* Stops the thread, closes every socket; NULL: nothing. */
void sx_mhttp_stop(sx_mhttp *m);

#endif
