/* engine/transfer: the server's ledger (engine/ledger) against the files in
 * OUT (docs/LEDGER.md, "Check and repair"). */
#ifndef SX_LEDGER_CHECK_H
#define SX_LEDGER_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/ledger/sx_ledger.h"

/* One difference: what ("missing", "size", "receiving", "unrecorded"),
 * the device (OUT/<device>/), the path beneath it, and what a repair makes
 * of it (NULL without --repair). */
typedef void (*sx_ledger_diff_fn)(void *ctx, const char *what, const char *device, const char *path,
				  const char *detail, const char *fix);

typedef struct sx_ledger_check_cfg {
	const char *out_dir;
	bool repair; /* mark rows, add the files found complete */
	bool walk;   /* look for files with a .sxsig the ledger does not have */
	/* with walk: only in folders changed (mtime) at or after this time,
	 * Unix seconds (0: every folder); a file stored since is renamed into
	 * its folder, which changes the folder's mtime */
	int64_t since;
	/* rows still receiving only: a stored row is recorded once its file
	 * is under its final name and flushed, so only a hand can make it
	 * wrong (that is `sxfer ledger check`'s part, not every start's) */
	bool no_stored;
	sx_ledger_diff_fn on_diff;
	void *ctx;
} sx_ledger_check_cfg;

/* Compares; *diffs counts the differences found (before any repair). The
 * rows checked: the newest stored row of each file (is it there, with its
 * size?), every row still receiving (a server that stopped in the middle),
 * and, with walk, every OUT/<device>/.../NAME with a batch NAME.sxsig of its
 * size (is it stored in the ledger?). */
int sx_ledger_check(sx_ledger *lg, const sx_ledger_check_cfg *cfg, uint64_t *diffs,
		    sx_err *err) SX_MUST_CHECK;

/* At a server's start, before it listens (after sx_serve_prepare's
 * recovery): rows left receiving become stored, partial or failed, sessions
 * left open become interrupted, and, when the last server did not close the
 * ledger (a crash, a kill), the whole check with repair. Logged. */
int sx_ledger_recover(sx_ledger *lg, const char *out_dir, sx_err *err) SX_MUST_CHECK;

#endif
