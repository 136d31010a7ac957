/* The bounded label sets of the receiver's metrics: why a handshake or a
 * file was refused, read from the message the server already has for it,
 * and the buckets of the transfer duration histogram. */
#include "engine/transfer/sx_metrics.h"

#include <stddef.h>
#include <string.h>

const char *const sx_hs_reason_names[SX_HS_N] = {
    "ok",      "revoked",   "expired", "unknown_ca", "bad_certificate", "no_certificate",
    "timeout", "stale_crl", "other",
};

const char *const sx_refuse_reason_names[SX_RF_N] = {
    "exists", "quota", "size", "disk_full", "integrity", "auth", "io", "other",
};

/* Sizes of files from camera clips to whole recordings: from a tenth of a
 * second to four hours. */
const double sx_dur_bounds[SX_DUR_BUCKETS] = {0.1, 0.5, 1,   2.5, 5,	10,
					      30,  60,	300, 900, 3600, 14400};

typedef struct phrase {
	const char *text;
	int reason;
} phrase;

/* The reason of the phrase whose last occurrence in msg ends last; dflt
 * when none occurs. What the peer chose (a subject, a file name) comes
 * before the server's own words in every message that quotes it, so a
 * phrase planted there loses to the real one. */
static int last_phrase(const char *msg, const phrase *tab, size_t n, int dflt)
{
	int best = dflt;
	size_t best_end = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(tab[i].text);
		for (const char *p = strstr(msg, tab[i].text); p != NULL;
		     p = strstr(p + 1, tab[i].text)) {
			size_t end = (size_t)(p - msg) + len;
			if (end > best_end) {
				best_end = end;
				best = tab[i].reason;
			}
		}
	}
	return best;
}

sx_hs_reason sx_hs_reason_of(const char *msg)
{
	static const phrase tab[] = {
	    {"client certificate:", SX_HS_BAD_CERTIFICATE}, /* the prefix: any check */
	    {"lacks extendedKeyUsage", SX_HS_BAD_CERTIFICATE},
	    {"signature does not verify", SX_HS_BAD_CERTIFICATE},
	    {"weak key", SX_HS_BAD_CERTIFICATE},
	    {"certificate is revoked", SX_HS_REVOKED},
	    {"certificate revoked", SX_HS_REVOKED},
	    {"certificate has expired", SX_HS_EXPIRED},
	    {"certificate is not yet valid", SX_HS_EXPIRED},
	    {"not issued by the trusted CA", SX_HS_UNKNOWN_CA},
	    {"unable to get local issuer", SX_HS_UNKNOWN_CA},
	    {"self-signed certificate", SX_HS_UNKNOWN_CA},
	    {"issuer is not a valid CA", SX_HS_UNKNOWN_CA},
	    {"sent no certificate", SX_HS_NO_CERTIFICATE},
	    {"handshake timeout", SX_HS_TIMEOUT},
	    {"revocation list is stale", SX_HS_STALE_CRL},
	    {"revocation list is not usable", SX_HS_STALE_CRL},
	};
	if (msg == NULL)
		return SX_HS_OK;
	return (sx_hs_reason)last_phrase(msg, tab, sizeof(tab) / sizeof(tab[0]), SX_HS_OTHER);
}

sx_refuse_reason sx_refuse_reason_of(const sx_err *why)
{
	static const phrase tab[] = {
	    {"exists on the receiver", SX_RF_EXISTS},
	    {"exists with other content", SX_RF_EXISTS},
	    {"quota", SX_RF_QUOTA},
	    {"Disk quota exceeded", SX_RF_QUOTA},
	    {"larger than", SX_RF_SIZE},
	    {"too large", SX_RF_SIZE},
	    {"maximum file size", SX_RF_SIZE},
	    {"does not fit", SX_RF_DISK_FULL},
	    {"No space left on device", SX_RF_DISK_FULL},
	};
	switch (why->cls) {
	case SX_E_INTEGRITY: return SX_RF_INTEGRITY;
	case SX_E_AUTH: return SX_RF_AUTH;
	case SX_E_IO:
		return (sx_refuse_reason)last_phrase(why->msg, tab, sizeof(tab) / sizeof(tab[0]),
						     SX_RF_IO);
	default:
		return (sx_refuse_reason)last_phrase(why->msg, tab, sizeof(tab) / sizeof(tab[0]),
						     SX_RF_OTHER);
	}
}

unsigned sx_dur_bucket(uint64_t ns)
{
	double s = (double)ns / 1e9;
	unsigned i = 0;
	while (i < SX_DUR_BUCKETS && s > sx_dur_bounds[i])
		i++;
	return i;
}
