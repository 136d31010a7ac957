#include "tools/hashfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASH_READ_BUF (1u << 20)

int sx_hash_file(const char *path, uint32_t chunk, uint8_t root[SX_HASH_LEN], uint64_t *size,
		 struct stat *st, sx_err *err)
{
	int rc = -1, fd = -1;
	uint8_t *buf = NULL;
	sx_filehash h = {0};
	bool hinit = false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", path);
		goto out;
	}
	if (fstat(fd, st) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", path);
		goto out;
	}
	SX_ENSURE(S_ISREG(st->st_mode), err, SX_E_IO, "%s: not a regular file", path);
	buf = malloc(HASH_READ_BUF);
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_filehash_init(&h, chunk, err));
	hinit = true;
	for (;;) {
		ssize_t n = read(fd, buf, HASH_READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sx_fail_errno(err, SX_E_IO, errno, "%s: read", path);
			goto out;
		}
		if (n == 0)
			break;
		SX_GUARD(sx_filehash_update(&h, buf, (size_t)n, err));
	}
	SX_GUARD(sx_filehash_final(&h, root, NULL, size, err));
	rc = 0;
out:
	if (hinit)
		sx_filehash_free(&h);
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

bool sx_path_names(const char *file, const char *rel)
{
	size_t fl = strlen(file), rl = strlen(rel);
	if (fl == rl)
		return strcmp(file, rel) == 0;
	return fl > rl && file[fl - rl - 1] == '/' && strcmp(file + fl - rl, rel) == 0;
}

const char *sx_base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}
