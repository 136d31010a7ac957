/* The CA folder's index (DIR/index.txt, docs/PKI.md "CA folder"), its
 * lock and the paths inside it. */
#include "pki/ca_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/sx_util.h"

#define SX_INDEX_LINE_MAX 512
#define SX_INDEX_HEADER	  "# sxfer CA index v1: status serial notAfter revokedAt reason role name\n"

int sx_ca_path(char *buf, size_t cap, const char *dir, const char *file, sx_err *err)
{
	if (snprintf(buf, cap, "%s/%s", dir, file) >= (int)cap)
		return sx_fail(err, SX_E_IO, "%s: path too long", dir);
	return 0;
}

/* ---- serials ------------------------------------------------------------ */

int sx_serial_normalize(const char *in, char out[SX_SERIAL_HEX_MAX])
{
	size_t n = 0;
	const char *p = in;
	if (p == NULL)
		return -1;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	for (; *p != '\0'; p++) {
		char c = *p;
		if (c == ':')
			continue;
		if (c >= 'a' && c <= 'f')
			c = (char)(c - 'a' + 'A');
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return -1;
		if (n == 0 && c == '0')
			continue; /* leading zero */
		if (n + 1 >= SX_SERIAL_HEX_MAX)
			return -1;
		out[n++] = c;
	}
	if (n == 0) {
		if (p == in)
			return -1;
		out[n++] = '0';
	}
	out[n] = '\0';
	return 0;
}

/* ---- the index ---------------------------------------------------------- */

void sx_ca_db_free(sx_ca_db *db)
{
	free(db->e);
	memset(db, 0, sizeof(*db));
}

int sx_ca_db_push(sx_ca_db *db, const sx_ca_entry *e, sx_err *err)
{
	if (sx_grow(&db->e, &db->cap, db->n + 1, sizeof(*db->e), SX_CA_ENTRIES_MAX,
		    "certificates in the CA index", err) < 0)
		return -1;
	db->e[db->n++] = *e;
	return 0;
}

/* Copies the next tab-separated field of [*p, end) into buf. A NUL inside
 * a field is refused: the copy would end there, and the entry would be
 * written back as something else (an empty name the next read refuses). */
static int next_field(const char **p, const char *end, char *buf, size_t cap, bool last)
{
	const char *tab = last ? NULL : memchr(*p, '\t', (size_t)(end - *p));
	const char *stop = tab ? tab : end;
	size_t n = (size_t)(stop - *p);
	if ((!last && tab == NULL) || n == 0 || n >= cap || memchr(*p, '\0', n) != NULL)
		return -1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p = tab ? tab + 1 : end;
	return 0;
}

static int parse_line(const char *s, const char *end, sx_ca_entry *e)
{
	char st[4], serial[SX_SERIAL_HEX_MAX], na[24], ra[24], rs[8], role[16];
	uint64_t v;
	memset(e, 0, sizeof(*e));
	if (next_field(&s, end, st, sizeof(st), false) < 0 ||
	    next_field(&s, end, serial, sizeof(serial), false) < 0 ||
	    next_field(&s, end, na, sizeof(na), false) < 0 ||
	    next_field(&s, end, ra, sizeof(ra), false) < 0 ||
	    next_field(&s, end, rs, sizeof(rs), false) < 0 ||
	    next_field(&s, end, role, sizeof(role), false) < 0 ||
	    next_field(&s, end, e->name, sizeof(e->name), true) < 0)
		return -1;
	if (sx_serial_normalize(serial, e->serial) < 0 || strcmp(serial, e->serial) != 0)
		return -1;
	if (sx_parse_u64(na, &v) < 0 || v > INT64_MAX)
		return -1;
	e->not_after = (time_t)v;
	if (sx_parse_u64(ra, &v) < 0 || v > INT64_MAX)
		return -1;
	e->revoked_at = (time_t)v;
	if (sx_parse_u64(rs, &v) < 0 || v > 10)
		return -1;
	e->reason = (int)v;
	if (sx_profile_parse(role, &e->profile) < 0)
		return -1;
	if (strcmp(st, "V") == 0)
		return e->revoked_at == 0 ? 0 : -1;
	if (strcmp(st, "R") == 0)
		return e->revoked_at != 0 ? 0 : -1;
	return -1;
}

int sx_ca_db_parse(const char *text, size_t len, sx_ca_db *db, sx_err *err)
{
	const char *p = text, *end = text + len;
	size_t lineno = 0;
	memset(db, 0, sizeof(*db));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		sx_ca_entry e;
		lineno++;
		if (le - p > SX_INDEX_LINE_MAX) {
			sx_ca_db_free(db);
			return sx_fail(err, SX_E_INTEGRITY, "index line %zu is too long", lineno);
		}
		if (le > p && p[0] != '#') {
			if (parse_line(p, le, &e) < 0) {
				sx_ca_db_free(db);
				return sx_fail(err, SX_E_INTEGRITY, "index line %zu is malformed",
					       lineno);
			}
			for (size_t i = 0; i < db->n; i++) {
				if (strcmp(db->e[i].serial, e.serial) == 0) {
					sx_ca_db_free(db);
					return sx_fail(err, SX_E_INTEGRITY,
						       "index line %zu repeats serial %s", lineno,
						       e.serial);
				}
			}
			if (sx_ca_db_push(db, &e, err) < 0) {
				sx_ca_db_free(db);
				return -1;
			}
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int sx_ca_db_format(const sx_ca_db *db, char **out, size_t *len, sx_err *err)
{
	size_t cap, used = 0;
	char *buf;
	*out = NULL;
	*len = 0;
	if (!sx_mul_ok(db->n + 1, SX_INDEX_LINE_MAX + 1, &cap))
		return sx_fail(err, SX_E_OTHER, "CA index too large");
	buf = malloc(cap);
	if (buf == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	used = (size_t)snprintf(buf, cap, "%s", SX_INDEX_HEADER);
	for (size_t i = 0; i < db->n; i++) {
		const sx_ca_entry *e = &db->e[i];
		int n = snprintf(buf + used, cap - used, "%s\t%s\t%lld\t%lld\t%d\t%s\t%s\n",
				 e->revoked_at ? "R" : "V", e->serial, (long long)e->not_after,
				 (long long)e->revoked_at, e->reason, sx_profile_name(e->profile),
				 e->name);
		if (n < 0 || (size_t)n >= cap - used) {
			free(buf);
			return sx_fail(err, SX_E_OTHER, "CA index line too long");
		}
		used += (size_t)n;
	}
	*out = buf;
	*len = used;
	return 0;
}

int sx_ca_db_load(const char *dir, sx_ca_db *db, sx_err *err)
{
	char path[4096];
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;
	if (sx_ca_path(path, sizeof(path), dir, "index.txt", err) < 0)
		return -1;
	if (access(path, F_OK) != 0)
		return sx_fail(err, SX_E_IO, "%s: not a CA folder made by 'sxfer ca init' (no %s)",
			       dir, path);
	if (sx_file_read(path, SX_INDEX_MAX, &data, &len, err) < 0)
		return -1;
	rc = sx_ca_db_parse((const char *)data, len, db, err);
	if (rc < 0)
		sx_err_prefix(err, "%s: ", path);
	free(data);
	return rc;
}

int sx_ca_db_store(const char *dir, const sx_ca_db *db, sx_err *err)
{
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	int rc = -1;
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "index.txt", err));
	SX_GUARD(sx_ca_db_format(db, &text, &len, err));
	SX_GUARD(sx_file_write_atomic(path, text, len, 0600, err));
	rc = 0;
out:
	free(text);
	return rc;
}

int sx_ca_lock_take(const char *dir, int *fd_out, sx_err *err)
{
	char path[4096];
	int fd;
	*fd_out = -1;
	if (sx_ca_path(path, sizeof(path), dir, "lock", err) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return sx_fail_errno(err, SX_E_IO, e, "%s: cannot lock", path);
		}
	}
	*fd_out = fd;
	return 0;
}

int sx_asn1_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

sx_ca_entry *sx_ca_db_find(const sx_ca_db *db, const char *serial)
{
	for (size_t i = 0; i < db->n; i++)
		if (strcmp(db->e[i].serial, serial) == 0)
			return &db->e[i];
	return NULL;
}
