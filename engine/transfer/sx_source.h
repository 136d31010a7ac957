/* engine/transfer/source: where the sender's files come from. The
 * arguments are walked into an ordered list of entries (folders in name
 * order, with the receiver's name checks applied and what it would refuse
 * skipped); each file is then opened as it is begun, standard input
 * included, and whether it is read with direct I/O is decided here. The
 * send pipeline (send.c) makes no file-system call of its own besides
 * closing what it was handed. */
#ifndef SX_SOURCE_H
#define SX_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"
#include "engine/transfer/sx_transfer.h"
#include "engine/wire/sx_wire.h"

#define SX_SEND_FILES_MAX (1u << 26) /* files and folders one send walks */

typedef struct sx_entry {
	int dirfd; /* AT_FDCWD: src as given; else src beneath it (no symlink) */
	char *src; /* path to open; NULL for standard input */
	char *rel; /* relative path on the receiver */
	bool is_dir;
	int arg; /* the index in cfg->paths of the argument it came from */
	/* set when the file is begun, for its descriptor */
	uint32_t file_id;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	/* its size when the walk listed it (listed), for the progress total */
	uint64_t listed_size;
	bool listed;
	/* across the attempts of a run (retries) */
	bool done;  /* answered (FILE_OK or FILE_ERR): not sent again */
	bool fresh; /* its resume was refused: sent from its first byte */
} sx_entry;

typedef struct sx_entries {
	sx_entry *v;
	size_t n, cap;
	unsigned pflags;  /* sx_path_check_file flags of the session's files */
	uint64_t skipped; /* files and folders not sent (each with a warning) */
} sx_entries;

/* The file being read. */
typedef struct sx_source {
	int fd;	       /* STDIN_FILENO for standard input; -1 between files */
	uint64_t size; /* as begun; SX_SIZE_UNKNOWN for standard input */
	bool direct;   /* fd is read with direct I/O */
} sx_source;

/* Walks cfg->paths into e, in the order they are sent; counts the files
 * and their bytes into prog. A signed session (sign) skips the .sxsig
 * companions of sent files. */
int sx_entries_build(sx_entries *e, const sx_send_cfg *cfg, bool sign, sx_progress *prog,
		     sx_err *err) SX_MUST_CHECK;
void sx_entries_free(sx_entries *e);

/* The mode and modification time of folder e, into m (DIR). */
int sx_source_stat_dir(const sx_entry *e, sx_msg *m, sx_err *err) SX_MUST_CHECK;
/* Opens file e into f (standard input when e->src is NULL) and puts its
 * mode, modification time and size into m (FILE_BEGIN). On failure f->fd
 * may still hold a descriptor for the caller to close. */
int sx_source_open(sx_source *f, const sx_entry *e, const sx_send_cfg *cfg, uint32_t chunk,
		   sx_msg *m, sx_err *err) SX_MUST_CHECK;
/* The size of regular file e now (for its QUERY); -1 when it cannot be
 * looked at (its open will say why). */
int sx_source_size(const sx_entry *e, uint64_t *size);
/* At the end of file e: warns (and counts in stats) when it has more bytes
 * than when it was begun. */
void sx_source_check_grown(const sx_source *f, const sx_entry *e, sx_send_stats *stats);

#endif
