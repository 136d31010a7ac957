/* Where sxfer keeps its state on this machine: the sender's receipts and
 * leaf cache, the agent's queue. One rule for every caller, so a service
 * user without a home works as a person at a shell does. */
#ifndef SX_STATE_H
#define SX_STATE_H

#include <stddef.h>

#include "common/sx_err.h"

/* Writes into out (cap bytes) the folder `sub` (a relative path such as
 * "receipts"; NULL or "" for the state folder itself) under the first of:
 *
 *   $STATE_DIRECTORY             set by systemd's StateDirectory= (the first
 *                                entry of a ':'-separated list), already
 *                                sxfer's own folder (/var/lib/sxfer)
 *   $XDG_STATE_HOME/sxfer
 *   $HOME/.local/state/sxfer     HOME must be an existing folder
 *
 * A variable that is unset, empty or not an absolute path is skipped (as the
 * XDG base directory specification says of a relative one). Nothing is
 * created: the caller makes the folder with the mode it needs. With none of
 * the three usable (HOME unset, or /nonexistent as for a system user): -1,
 * SX_E_USAGE, naming what to set. Never a folder of the current directory. */
int sx_state_dir(char *out, size_t cap, const char *sub, sx_err *err) SX_MUST_CHECK;

#endif
