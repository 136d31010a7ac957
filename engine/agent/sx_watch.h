/* engine/agent/watch: a folder tree watched with inotify (docs/AGENT.md,
 * "When a file is complete"). Every folder under the root gets a watch,
 * new ones as they appear; a file is reported when it is closed after
 * writing (IN_CLOSE_WRITE) or moved in (IN_MOVED_TO), and by the scans (at
 * start, of a new folder, after the kernel's queue overflowed). Names that
 * start with '.' (temporaries by convention) are neither reported nor
 * descended into, nor is anything but regular files and folders (a
 * symbolic link is never followed). */
#ifndef SX_WATCH_H
#define SX_WATCH_H

#include <stdbool.h>
#include <sys/stat.h>

#include "common/sx_err.h"

typedef struct sx_watch sx_watch;

/* A file: its path relative to the root, its stat, and closed: reported by
 * an event (closed after writing or moved in) rather than found by a scan. */
typedef int (*sx_watch_fn)(void *ctx, const char *rel, const struct stat *st, bool closed,
			   sx_err *err);

/* Watches the tree under rootfd (kept open by the caller). */
int sx_watch_open(sx_watch **w, int rootfd, sx_err *err) SX_MUST_CHECK;
void sx_watch_close(sx_watch *w);
/* The inotify descriptor, readable when events wait. */
int sx_watch_fd(const sx_watch *w);
/* Watches every folder of the tree and reports every file in it. */
int sx_watch_scan(sx_watch *w, sx_watch_fn fn, void *ctx, sx_err *err) SX_MUST_CHECK;
/* Takes the events that wait (none: returns at once). */
int sx_watch_read(sx_watch *w, sx_watch_fn fn, void *ctx, sx_err *err) SX_MUST_CHECK;
/* Folders watched now. */
unsigned sx_watch_count(const sx_watch *w);

#endif
