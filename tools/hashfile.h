/* File edge of engine/sign for the offline tools: reads a local file
 * with plain read() into sx_filehash (one pass, bounded buffer). */
#ifndef SX_HASHFILE_H
#define SX_HASHFILE_H

#include <stdint.h>
#include <sys/stat.h>

#include "engine/sign/sx_manifest.h"

/* Root over path's content with chunk; *st is the fstat of the open file.
 * A missing, unreadable or non-regular file is SX_E_IO naming path. */
int sx_hash_file(const char *path, uint32_t chunk, uint8_t root[SX_HASH_LEN], uint64_t *size,
		 struct stat *st, sx_err *err) SX_MUST_CHECK;

/* Does the relative path recorded in a signature name this file? True when
 * file equals rel or ends with "/" + rel. */
bool sx_path_names(const char *file, const char *rel);

/* The last component of path (no copy). */
const char *sx_base_name(const char *path);

#endif
