/* engine/transfer: a server's per-device limits (docs/OPERATIONS.md,
 * "Limits"): connections at once per identity name, the largest file,
 * bytes received per UTC day and bytes stored in all under the identity's
 * folder, each with a value for every device and overrides per name.
 *
 * The policy (sx_limits_cfg) is built by the command line and handed over
 * whole; a reload (SIGHUP) swaps it under the table's mutex, so the event
 * loops never see half of one. The counters of each identity live in the
 * same table: a lock per connection and per file begun or ended, never one
 * per record. */
#ifndef SX_LIMITS_H
#define SX_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"

enum {
	SX_LIM_CONNS = 0, /* connections at once (max-conns-per-device) */
	SX_LIM_FILE_SIZE, /* bytes of one file (max-file-size) */
	SX_LIM_DAY,	  /* bytes received per UTC day (quota-per-day) */
	SX_LIM_TOTAL,	  /* bytes stored under OUT/NAME/ (quota-total) */
	SX_LIM_N
};
#define SX_LIM_NONE UINT64_MAX /* no limit (also to lift a default for one name) */

/* The configuration key of a limit ("max-file-size"). */
const char *sx_lim_key(int which);

typedef struct sx_lim_vals {
	uint64_t v[SX_LIM_N];
	bool set[SX_LIM_N]; /* false: not given (a name inherits the default) */
} sx_lim_vals;

typedef struct sx_lim_dev {
	char *name; /* an identity name (its certificate's CN) */
	sx_lim_vals vals;
} sx_lim_dev;

typedef struct sx_limits_cfg {
	sx_lim_vals all; /* the default of every device */
	sx_lim_dev *dev;
	size_t ndev, cap;
} sx_limits_cfg;

/* Sets a limit for every device (name NULL) or for one name; v is a
 * count or bytes, SX_LIM_NONE for none. A later value replaces an earlier. */
int sx_limits_cfg_set(sx_limits_cfg *c, const char *name, int which, uint64_t v,
		      sx_err *err) SX_MUST_CHECK;
void sx_limits_cfg_free(sx_limits_cfg *c);
/* Does any device (the default or a name) have a limit of this kind? */
bool sx_limits_cfg_any(const sx_limits_cfg *c, int which);

/* The table a server keeps: the policy in use and the counters. */
typedef struct sx_limits sx_limits;
/* One identity's counters: the pointer stays valid until sx_limits_free. */
typedef struct sx_lim_use sx_lim_use;

int sx_limits_new(sx_limits **out, sx_err *err) SX_MUST_CHECK;
void sx_limits_free(sx_limits *l);
/* Takes the policy (moved: *cfg is left empty); the previous one goes. */
void sx_limits_set(sx_limits *l, sx_limits_cfg *cfg);
/* Is a limit of this kind set anywhere in the policy in use? */
bool sx_limits_any(sx_limits *l, int which);

/* Counts the bytes of every regular file under each OUT/NAME/ (no symlink
 * followed): the stored total of each identity, kept up to date after by
 * sx_limits_file_end. Safe while files are stored: one stored during the
 * count may be counted twice until the next count. */
int sx_limits_count(sx_limits *l, const char *out_dir, uint64_t *folders, uint64_t *bytes,
		    sx_err *err) SX_MUST_CHECK;

/* A connection of name is authenticated: counted, or refused (-1, why
 * says so, class SX_E_IO) when it would pass its max-conns-per-device.
 * *u is the name's counters (NULL after a refusal). */
int sx_limits_enter(sx_limits *l, const char *name, sx_lim_use **u, sx_err *why) SX_MUST_CHECK;
/* Takes one more connection of u without a check (a get handed to its
 * thread keeps counting). */
void sx_limits_hold(sx_limits *l, sx_lim_use *u);
void sx_limits_leave(sx_limits *l, sx_lim_use *u);

/* A file of size bytes (SX_SIZE_UNKNOWN: a stream) of which need bytes are
 * still to come (a resume continues a held part) is begun: refused (-1,
 * class SX_E_IO, why names the limit, the device and what is used) when it
 * is larger than max-file-size or would pass a quota; else need bytes are
 * reserved in *held until sx_limits_file_end. A stream is refused only when
 * a quota is already used up. path is for the message. */
int sx_limits_file_begin(sx_limits *l, sx_lim_use *u, const char *path, uint64_t size,
			 uint64_t need, uint64_t *held, sx_err *why) SX_MUST_CHECK;
/* A stream has reached size bytes: -1 (why) once it passes max-file-size. */
int sx_limits_stream(sx_limits *l, sx_lim_use *u, const char *path, uint64_t size,
		     sx_err *why) SX_MUST_CHECK;
/* The file ended: its reservation goes, got bytes count as received today
 * and stored bytes (0 when it was not stored) add to the stored total. */
void sx_limits_file_end(sx_limits *l, sx_lim_use *u, uint64_t held, uint64_t got, uint64_t stored);

/* Bytes as "1.5 GiB", "10 GiB", "512 KiB", "300 B". */
void sx_lim_human(uint64_t v, char *buf, size_t cap);

#endif
