/* engine/transfer: the receiver's metrics (sxfer serve --metrics), in the
 * Prometheus text format on a listener and thread of their own
 * (docs/METRICS.md). The event loops only add to counters of their own;
 * a scrape sums them. */
#ifndef SX_METRICS_H
#define SX_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "common/sx_prom.h"

#define SX_METRICS_DEVICES_MAX 1000 /* --metrics-per-device N: at most this */

typedef struct sx_metrics_cfg {
	const char *listen; /* ADDR:PORT (port 0: any free port) */
	/* a listening address that is not loopback (127.0.0.0/8, ::1) is
	 * refused (SX_E_USAGE) unless this is set */
	bool public_ok;
	/* series per device for the N that stored the most bytes, the others
	 * summed under device="other"; 0: none */
	unsigned per_device;
	const char *version; /* sxfer_build_info{version} */
	/* called once listening, with the bound port */
	void (*on_listen)(void *ctx, int port);
	void *listen_ctx;
} sx_metrics_cfg;

/* Why a handshake ended as it did: the label reason of
 * sxfer_handshakes_total. */
typedef enum sx_hs_reason {
	SX_HS_OK = 0,
	SX_HS_REVOKED,
	SX_HS_EXPIRED, /* also not yet valid */
	SX_HS_UNKNOWN_CA,
	SX_HS_BAD_CERTIFICATE,
	SX_HS_NO_CERTIFICATE,
	SX_HS_TIMEOUT,
	SX_HS_STALE_CRL,
	SX_HS_OTHER,
	SX_HS_N
} sx_hs_reason;

/* Why a file was refused: the label reason of sxfer_files_refused_total. */
typedef enum sx_refuse_reason {
	SX_RF_EXISTS = 0,
	SX_RF_QUOTA,
	SX_RF_SIZE,
	SX_RF_DISK_FULL,
	SX_RF_INTEGRITY,
	SX_RF_AUTH,
	SX_RF_IO,
	SX_RF_OTHER,
	SX_RF_N
} sx_refuse_reason;

extern const char *const sx_hs_reason_names[SX_HS_N];
extern const char *const sx_refuse_reason_names[SX_RF_N];

/* From the message the server has for a handshake that failed (msg NULL:
 * it succeeded). The message names what was checked and may quote what the
 * peer sent (its certificate's subject, a file's name) before the reason:
 * of the phrases that name a reason, the one that ends last decides. */
sx_hs_reason sx_hs_reason_of(const char *msg);
/* From the class and message of a FILE_ERR the server sent. */
sx_refuse_reason sx_refuse_reason_of(const sx_err *why);

/* The bucket bounds of sxfer_file_transfer_duration_seconds. */
#define SX_DUR_BUCKETS 12
extern const double sx_dur_bounds[SX_DUR_BUCKETS];
/* The bucket of a duration in nanoseconds: 0..SX_DUR_BUCKETS (the last
 * one is above every bound). */
unsigned sx_dur_bucket(uint64_t ns);

#endif
