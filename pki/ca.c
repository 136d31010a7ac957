/* The CA folder (docs/PKI.md "CA folder"): the root, its key, the index of
 * issued certificates, the CRL number and a copy of each certificate.
 *
 * Crash safety: every file is replaced atomically (sx_file_write_atomic), and
 * a certificate file is written before the index that names it, so an
 * interrupted command leaves at most an unreferenced certificate file. A
 * flock on DIR/lock serialises writers. */
#include "pki/sx_ca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/sx_util.h"

#define SX_INDEX_MAX	  (64 * 1024 * 1024)
#define SX_INDEX_LINE_MAX 512
#define SX_INDEX_HEADER	  "# sxfer CA index v1: status serial notAfter revokedAt reason role name\n"
#define SX_SERIAL_TRIES	  8

static int ca_path(char *buf, size_t cap, const char *dir, const char *file, sx_err *err)
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

static int db_push(sx_ca_db *db, const sx_ca_entry *e, sx_err *err)
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
			if (db_push(db, &e, err) < 0) {
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

static int db_load(const char *dir, sx_ca_db *db, sx_err *err)
{
	char path[4096];
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;
	if (ca_path(path, sizeof(path), dir, "index.txt", err) < 0)
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

static int db_store(const char *dir, const sx_ca_db *db, sx_err *err)
{
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	int rc = -1;
	SX_GUARD(ca_path(path, sizeof(path), dir, "index.txt", err));
	SX_GUARD(sx_ca_db_format(db, &text, &len, err));
	SX_GUARD(sx_file_write_atomic(path, text, len, 0600, err));
	rc = 0;
out:
	free(text);
	return rc;
}

/* ---- lock, open, close --------------------------------------------------- */

static int lock_take(const char *dir, int *fd_out, sx_err *err)
{
	char path[4096];
	int fd;
	*fd_out = -1;
	if (ca_path(path, sizeof(path), dir, "lock", err) < 0)
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

static int asn1_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

int sx_ca_open(const char *dir, const sx_pass *pass, sx_ca *ca, sx_err *err)
{
	int rc = -1;
	char path[4096];
	STACK_OF(X509) *certs = NULL;
	memset(ca, 0, sizeof(*ca));
	ca->lock_fd = -1;
	SX_ENSURE(strlen(dir) < sizeof(ca->dir), err, SX_E_IO, "%s: path too long", dir);
	memcpy(ca->dir, dir, strlen(dir) + 1);
	SX_GUARD(ca_path(path, sizeof(path), dir, "ca.key.pem", err));
	SX_ENSURE(access(path, F_OK) == 0, err, SX_E_IO,
		  "%s: not a CA folder made by 'sxfer ca init' (no %s)", dir, path);
	SX_GUARD(lock_take(dir, &ca->lock_fd, err));
	SX_GUARD(ca_path(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_certs_load(path, &certs, err));
	ca->cert = sk_X509_shift(certs);
	SX_ENSURE(X509_get_extension_flags(ca->cert) & EXFLAG_CA, err, SX_E_AUTH,
		  "%s: not a CA certificate", path);
	SX_GUARD(db_load(dir, &ca->db, err));
	SX_GUARD(ca_path(path, sizeof(path), dir, "ca.key.pem", err));
	SX_GUARD(sx_key_load(path, pass, &ca->key, err));
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		sx_fail(err, SX_E_AUTH, "%s: the key does not match %s/ca.pem", path, dir);
		goto out;
	}
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	if (rc < 0)
		sx_ca_close(ca);
	return rc;
}

void sx_ca_close(sx_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sx_ca_db_free(&ca->db);
	if (ca->lock_fd >= 0)
		close(ca->lock_fd); /* releases the flock */
	memset(ca, 0, sizeof(*ca));
	ca->lock_fd = -1;
}

/* ---- init ----------------------------------------------------------------- */

int sx_ca_init(const char *dir, const char *name, sx_key_type type, unsigned days,
	       const sx_pass *pass, sx_err *err)
{
	int rc = -1, lock_fd = -1;
	char path[4096], keypath[4096];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	time_t now = time(NULL);
	sx_cert_spec spec = {.profile = SX_PROFILE_CA, .name = name};
	static const char crlnumber[] = "1\n";

	if (days == 0)
		days = SX_CA_DAYS_DEFAULT;
	SX_ENSURE(days <= SX_DAYS_MAX, err, SX_E_USAGE, "--days must be at most %d", SX_DAYS_MAX);
	SX_GUARD(sx_name_check(name, err));
	SX_GUARD(ca_path(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(ca_path(keypath, sizeof(keypath), dir, "ca.key.pem", err));
	SX_ENSURE(access(path, F_OK) != 0 && access(keypath, F_OK) != 0, err, SX_E_IO,
		  "%s: a CA already exists here; refusing to overwrite it", dir);
	SX_GUARD(sx_mkdirs(dir, 0700, err));
	if (chmod(dir, 0700) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: chmod", dir);
		goto out;
	}
	SX_GUARD(lock_take(dir, &lock_fd, err));
	/* Re-check under the lock: two concurrent inits must not both win. */
	SX_ENSURE(access(path, F_OK) != 0 && access(keypath, F_OK) != 0, err, SX_E_IO,
		  "%s: a CA already exists here; refusing to overwrite it", dir);
	SX_GUARD(ca_path(path, sizeof(path), dir, "certs", err));
	SX_GUARD(sx_mkdirs(path, 0700, err));

	SX_GUARD(sx_key_generate(type, &key, err));
	spec.not_before = now - SX_BACKDATE_SECONDS;
	spec.not_after = now + (time_t)days * 86400;
	SX_GUARD(sx_cert_build(&spec, key, NULL, key, &cert, err));
	SX_GUARD(sx_key_save(keypath, key, pass, err));
	{
		sx_ca_db empty = {0};
		SX_GUARD(db_store(dir, &empty, err));
	}
	SX_GUARD(ca_path(path, sizeof(path), dir, "crlnumber", err));
	SX_GUARD(sx_file_write_atomic(path, crlnumber, sizeof(crlnumber) - 1, 0600, err));
	/* ca.pem last: its presence marks a complete CA. */
	SX_GUARD(ca_path(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_certs_save(path, &cert, 1, 0644, err));
	rc = 0;
out:
	if (lock_fd >= 0)
		close(lock_fd);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- issue ---------------------------------------------------------------- */

static bool db_has(const sx_ca_db *db, const char *serial)
{
	for (size_t i = 0; i < db->n; i++)
		if (strcmp(db->e[i].serial, serial) == 0)
			return true;
	return false;
}

/* Issues a certificate for subject_key: picks an unused serial, writes
 * DIR/certs/<SERIAL>.pem, then atomically replaces the index. days 0: the
 * default. notAfter never exceeds the CA's. A server or both certificate
 * with no DNS/IP SAN gets the name as DNS SAN when it is a valid host name. */
static int ca_issue(sx_ca *ca, const sx_cert_spec *spec_in, EVP_PKEY *subject_key, unsigned days,
		    X509 **out, sx_err *err)
{
	int rc = -1;
	sx_cert_spec spec = *spec_in;
	BIGNUM *serial = NULL;
	char *hex = NULL;
	char path[4096], file[64], shex[SX_SERIAL_HEX_MAX];
	X509 *cert = NULL;
	sx_ca_entry e = {0};
	time_t now = time(NULL), ca_end = 0;
	bool pushed = false;
	const char *dns[1];
	sx_err ignored = {0};

	*out = NULL;
	SX_ENSURE(spec.profile != SX_PROFILE_CA, err, SX_E_USAGE,
		  "this CA issues end-entity certificates only");
	if (days == 0)
		days = SX_LEAF_DAYS_DEFAULT;
	SX_ENSURE(days <= SX_DAYS_MAX, err, SX_E_USAGE, "--days must be at most %d", SX_DAYS_MAX);
	SX_GUARD(sx_key_check_strength(subject_key, err));
	/* A server needs a name to be checked against: with no --dns/--ip, the
	 * CN becomes the DNS SAN when it is a valid host name. */
	if (spec.profile != SX_PROFILE_CLIENT && spec.ndns == 0 && spec.nips == 0 &&
	    sx_dns_check(spec.name, &ignored) == 0) {
		dns[0] = spec.name;
		spec.dns = dns;
		spec.ndns = 1;
	}
	if (spec.not_before == 0 && spec.not_after == 0) {
		spec.not_before = now - SX_BACKDATE_SECONDS;
		spec.not_after = now + (time_t)days * 86400;
		if (asn1_to_time_t(X509_get0_notAfter(ca->cert), &ca_end) == 0 &&
		    spec.not_after > ca_end)
			spec.not_after = ca_end; /* a leaf never outlives its CA */
	}
	for (int i = 0;; i++) {
		SX_ENSURE(i < SX_SERIAL_TRIES, err, SX_E_OTHER, "cannot find an unused serial");
		BN_free(serial);
		serial = NULL;
		OPENSSL_free(hex);
		hex = NULL;
		SX_GUARD(sx_serial_random(&serial, err));
		hex = BN_bn2hex(serial);
		SX_ENSURE(hex != NULL && sx_serial_normalize(hex, shex) == 0, err, SX_E_OTHER,
			  "serial encoding");
		if (!db_has(&ca->db, shex))
			break;
	}
	spec.serial = serial;
	SX_GUARD(sx_cert_build(&spec, subject_key, ca->cert, ca->key, &cert, err));

	/* 1. the certificate file, 2. the index that names it (atomic). */
	snprintf(file, sizeof(file), "certs/%s.pem", shex);
	SX_GUARD(ca_path(path, sizeof(path), ca->dir, file, err));
	SX_GUARD(sx_certs_save(path, &cert, 1, 0644, err));
	memcpy(e.serial, shex, sizeof(shex));
	snprintf(e.name, sizeof(e.name), "%s", spec.name);
	e.profile = spec.profile;
	e.not_after = spec.not_after;
	SX_GUARD(db_push(&ca->db, &e, err));
	pushed = true;
	SX_GUARD(db_store(ca->dir, &ca->db, err));
	pushed = false;
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	if (pushed)
		ca->db.n--;
	X509_free(cert);
	OPENSSL_free(hex);
	BN_free(serial);
	return rc;
}

/* ---- revoke and CRL ------------------------------------------------------- */

int sx_ca_revoke(sx_ca *ca, const char *serial_hex, int reason, sx_err *err)
{
	char serial[SX_SERIAL_HEX_MAX];
	if (sx_serial_normalize(serial_hex, serial) < 0)
		return sx_fail(err, SX_E_USAGE, "'%s' is not a hexadecimal serial", serial_hex);
	for (size_t i = 0; i < ca->db.n; i++) {
		sx_ca_entry *e = &ca->db.e[i];
		if (strcmp(e->serial, serial) != 0)
			continue;
		if (e->revoked_at != 0)
			return sx_fail(err, SX_E_OTHER, "serial %s (%s) is already revoked", serial,
				       e->name);
		e->revoked_at = time(NULL);
		e->reason = reason;
		if (db_store(ca->dir, &ca->db, err) < 0) {
			e->revoked_at = 0;
			e->reason = 0;
			return -1;
		}
		return 0;
	}
	return sx_fail(err, SX_E_USAGE, "serial %s is not in the index of %s", serial, ca->dir);
}

int sx_ca_crl(sx_ca *ca, unsigned days, X509_CRL **out, sx_err *err)
{
	int rc = -1;
	char path[4096], numtext[32];
	uint8_t *data = NULL;
	size_t len = 0, nrev = 0;
	uint64_t number = 1;
	sx_revoked *rev = NULL;
	BIGNUM **bns = NULL;
	time_t now = time(NULL);
	int n;

	*out = NULL;
	if (days == 0)
		days = SX_CRL_DAYS_DEFAULT;
	SX_ENSURE(days <= SX_DAYS_MAX, err, SX_E_USAGE, "--days must be at most %d", SX_DAYS_MAX);
	SX_GUARD(ca_path(path, sizeof(path), ca->dir, "crlnumber", err));
	if (access(path, F_OK) == 0) {
		SX_GUARD(sx_file_read(path, 32, &data, &len, err));
		while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
			data[--len] = '\0';
		SX_ENSURE(sx_parse_u64((const char *)data, &number) == 0 && number < UINT64_MAX,
			  err, SX_E_INTEGRITY, "%s: not a number", path);
	}
	/* Consume the number durably before using it, so numbers only grow even
	 * if this command is interrupted. */
	n = snprintf(numtext, sizeof(numtext), "%llu\n", (unsigned long long)(number + 1));
	SX_GUARD(sx_file_write_atomic(path, numtext, (size_t)n, 0600, err));

	rev = calloc(ca->db.n ? ca->db.n : 1, sizeof(*rev));
	bns = calloc(ca->db.n ? ca->db.n : 1, sizeof(*bns));
	SX_ENSURE(rev != NULL && bns != NULL, err, SX_E_OTHER, "out of memory");
	for (size_t i = 0; i < ca->db.n; i++) {
		const sx_ca_entry *e = &ca->db.e[i];
		if (e->revoked_at == 0)
			continue;
		SX_ENSURE(BN_hex2bn(&bns[nrev], e->serial) > 0, err, SX_E_INTEGRITY,
			  "index serial %s", e->serial);
		rev[nrev].serial = bns[nrev];
		rev[nrev].when = e->revoked_at;
		rev[nrev].reason = e->reason;
		nrev++;
	}
	SX_GUARD(sx_crl_build(ca->cert, ca->key, rev, nrev, number, now, now + (time_t)days * 86400,
			      out, err));
	SX_GUARD(ca_path(path, sizeof(path), ca->dir, "crl.pem", err));
	SX_GUARD(sx_crl_save(path, *out, err));
	rc = 0;
out:
	if (rc < 0) {
		X509_CRL_free(*out);
		*out = NULL;
	}
	for (size_t i = 0; bns != NULL && i < ca->db.n; i++)
		BN_free(bns[i]);
	free(bns);
	free(rev);
	free(data);
	return rc;
}

int sx_ca_list(const char *dir, sx_ca_db *db, sx_err *err)
{
	memset(db, 0, sizeof(*db));
	return db_load(dir, db, err);
}

/* ---- identity folders ------------------------------------------------------ */

static int copy_file(const char *from, const char *to, mode_t mode, sx_err *err)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = sx_file_read(from, SX_INDEX_MAX, &data, &len, err);
	if (rc == 0)
		rc = sx_file_write_atomic(to, data, len, mode, err);
	free(data);
	return rc;
}

int sx_ca_issue_identity(sx_ca *ca, const sx_cert_spec *spec, sx_key_type type, unsigned days,
			 const char *outdir, const sx_pass *pass, X509 **out, sx_err *err)
{
	int rc = -1;
	char path[4096], from[4096];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;

	*out = NULL;
	SX_GUARD(ca_path(path, sizeof(path), outdir, "key.pem", err));
	SX_ENSURE(access(path, F_OK) != 0, err, SX_E_IO,
		  "%s: already exists; refusing to overwrite an identity", path);
	SX_GUARD(ca_path(path, sizeof(path), outdir, "cert.pem", err));
	SX_ENSURE(access(path, F_OK) != 0, err, SX_E_IO,
		  "%s: already exists; refusing to overwrite an identity", path);
	SX_GUARD(sx_mkdirs(outdir, 0700, err));
	if (chmod(outdir, 0700) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: chmod", outdir);
		goto out;
	}
	SX_GUARD(sx_key_generate(type, &key, err));
	SX_GUARD(ca_path(path, sizeof(path), outdir, "key.pem", err));
	SX_GUARD(sx_key_save(path, key, pass, err));
	SX_GUARD(ca_issue(ca, spec, key, days, &cert, err));
	SX_GUARD(ca_path(path, sizeof(path), outdir, "cert.pem", err));
	SX_GUARD(sx_certs_save(path, &cert, 1, 0644, err));
	SX_GUARD(ca_path(path, sizeof(path), outdir, "ca.pem", err));
	SX_GUARD(sx_certs_save(path, &ca->cert, 1, 0644, err));
	SX_GUARD(ca_path(from, sizeof(from), ca->dir, "crl.pem", err));
	if (access(from, F_OK) == 0) {
		SX_GUARD(ca_path(path, sizeof(path), outdir, "crl.pem", err));
		SX_GUARD(copy_file(from, path, 0644, err));
	}
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int sx_ca_sign_csr(sx_ca *ca, const char *csr_path, const sx_cert_spec *spec_in, unsigned days,
		   const char *out_path, X509 **out, sx_err *err)
{
	int rc = -1;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	sx_cert_spec spec = *spec_in;
	char cn[SX_NAME_MAX * 4 + 1];

	*out = NULL;
	SX_GUARD(sx_csr_load(csr_path, &req, err));
	if (spec.name == NULL) {
		if (sx_csr_name(req, cn, sizeof(cn), err) < 0) {
			sx_err_prefix(err, "%s: ", csr_path);
			goto out;
		}
		spec.name = cn;
	}
	if (sx_key_check_strength(X509_REQ_get0_pubkey(req), err) < 0) {
		sx_err_prefix(err, "%s: ", csr_path);
		goto out;
	}
	SX_GUARD(ca_issue(ca, &spec, X509_REQ_get0_pubkey(req), days, &cert, err));
	SX_GUARD(sx_certs_save(out_path, &cert, 1, 0644, err));
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	X509_free(cert);
	X509_REQ_free(req);
	return rc;
}
