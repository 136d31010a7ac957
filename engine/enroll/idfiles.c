/* The identity folder of the clients: a new one (sxfer enroll), a renewed
 * one (sxfer renew: the previous key.pem and cert.pem are kept as
 * key.pem.old and cert.pem.old until the new ones are durable under their
 * names), a new crl.pem (sxfer crl fetch); and the passphrase, asked once
 * and before anything is sent. Every file is written atomically
 * (sx_file_write_atomic: a temporary, fsync, rename, fsync of the folder). */
#include "engine/enroll/enroll_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"

/* ---- the passphrase, asked once ----------------------------------------- */

static int cached_get(void *ctx, char *buf, size_t cap, bool confirm, sx_err *err)
{
	enroll_pass *pc = ctx;
	if (!pc->have) {
		int n = pc->src->get(pc->src->ctx, pc->buf, sizeof(pc->buf), confirm, err);
		if (n < 0)
			return -1;
		pc->len = (size_t)n;
		pc->have = true;
	}
	if (pc->len + 1 > cap)
		return sx_fail(err, SX_E_USAGE, "the passphrase is too long");
	memcpy(buf, pc->buf, pc->len + 1);
	return (int)pc->len;
}

void enroll_pass_init(enroll_pass *pc, const sx_pass *src)
{
	memset(pc, 0, sizeof(*pc));
	pc->src = src;
	pc->pass.none = src == NULL || src->none || src->get == NULL;
	pc->pass.get = cached_get;
	pc->pass.ctx = pc;
}

int enroll_pass_ask(enroll_pass *pc, sx_err *err)
{
	char tmp[sizeof(pc->buf)];
	int rc = 0;
	if (!pc->pass.none)
		rc = cached_get(pc, tmp, sizeof(tmp), true, err);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc < 0 ? -1 : 0;
}

void enroll_pass_wipe(enroll_pass *pc)
{
	OPENSSL_cleanse(pc->buf, sizeof(pc->buf));
	pc->have = false;
}

/* ---- paths -------------------------------------------------------------- */

static int path_in(char *out, size_t cap, const char *dir, const char *name, sx_err *err)
{
	if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
		return sx_fail(err, SX_E_IO, "%s: path too long", dir);
	return 0;
}

static int fsync_dir(const char *dir, sx_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", dir);
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	return rc < 0 ? sx_fail_errno(err, SX_E_IO, e, "%s: fsync", dir) : 0;
}

/* ---- sxfer enroll ------------------------------------------------------- */

int enroll_out_prepare(const char *dir, bool *made, sx_err *err)
{
	static const char *const names[] = {"key.pem", "cert.pem"};
	char path[4096];
	*made = access(dir, F_OK) != 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		SX_GUARD(path_in(path, sizeof(path), dir, names[i], err));
		SX_ENSURE(access(path, F_OK) != 0, err, SX_E_IO,
			  "%s: already exists; refusing to overwrite an identity", path);
	}
	SX_GUARD(sx_mkdirs(dir, 0700, err));
	if (chmod(dir, 0700) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: chmod", dir);
	return 0;
out:
	return -1;
}

int enroll_out_write(const char *dir, EVP_PKEY *key, const sx_pass *pass, X509 *leaf, X509 *root,
		     X509_CRL *crl, sx_err *err)
{
	char path[4096];
	/* cert.pem last: a folder with it is a whole identity. */
	SX_GUARD(path_in(path, sizeof(path), dir, "key.pem", err));
	SX_GUARD(sx_key_save(path, key, pass, err));
	SX_GUARD(path_in(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_certs_save(path, &root, 1, 0644, err));
	if (crl != NULL) {
		SX_GUARD(path_in(path, sizeof(path), dir, "crl.pem", err));
		SX_GUARD(sx_crl_save(path, crl, err));
	}
	SX_GUARD(path_in(path, sizeof(path), dir, "cert.pem", err));
	SX_GUARD(sx_certs_save(path, &leaf, 1, 0644, err));
	return 0;
out:
	return -1;
}

/* ---- sxfer renew -------------------------------------------------------- */

/* DIR/name.old: a second name for DIR/name (the same file). */
static int keep_old(const char *dir, const char *name, sx_err *err)
{
	char path[4096], old[4096];
	SX_GUARD(path_in(path, sizeof(path), dir, name, err));
	SX_ENSURE(snprintf(old, sizeof(old), "%s.old", path) < (int)sizeof(old), err, SX_E_IO,
		  "%s: path too long", dir);
	if (unlink(old) < 0 && errno != ENOENT)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", old);
	if (link(path, old) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "keeping %s as %s", path, old);
	return 0;
out:
	return -1;
}

static int drop_old(const char *dir, const char *name, sx_err *err)
{
	char old[4096];
	SX_ENSURE(snprintf(old, sizeof(old), "%s/%s.old", dir, name) < (int)sizeof(old), err,
		  SX_E_IO, "%s: path too long", dir);
	if (unlink(old) < 0 && errno != ENOENT)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", old);
	return 0;
out:
	return -1;
}

/* DIR/name.new (written durably before) becomes DIR/name. */
static int take_new(const char *dir, const char *name, sx_err *err)
{
	char path[4096], fresh[4096];
	SX_GUARD(path_in(path, sizeof(path), dir, name, err));
	SX_ENSURE(snprintf(fresh, sizeof(fresh), "%s.new", path) < (int)sizeof(fresh), err, SX_E_IO,
		  "%s: path too long", dir);
	if (rename(fresh, path) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s -> %s", fresh, path);
	return 0;
out:
	return -1;
}

int enroll_renew_replace(const char *dir, EVP_PKEY *new_key, const sx_pass *pass, X509 *leaf,
			 X509_CRL *crl, sx_err *err)
{
	char path[4096];
	SX_GUARD(keep_old(dir, "key.pem", err));
	SX_GUARD(keep_old(dir, "cert.pem", err));
	SX_GUARD(fsync_dir(dir, err));
	/* The new files, durable under names of their own first ... */
	if (new_key != NULL) {
		SX_GUARD(path_in(path, sizeof(path), dir, "key.pem.new", err));
		SX_GUARD(sx_key_save(path, new_key, pass, err));
	}
	SX_GUARD(path_in(path, sizeof(path), dir, "cert.pem.new", err));
	SX_GUARD(sx_certs_save(path, &leaf, 1, 0644, err));
	/* ... then under theirs: two renames in a row. */
	if (new_key != NULL)
		SX_GUARD(take_new(dir, "key.pem", err));
	SX_GUARD(take_new(dir, "cert.pem", err));
	SX_GUARD(fsync_dir(dir, err));
	if (crl != NULL) {
		SX_GUARD(path_in(path, sizeof(path), dir, "crl.pem", err));
		SX_GUARD(sx_crl_save(path, crl, err));
	}
	SX_GUARD(drop_old(dir, "key.pem", err));
	SX_GUARD(drop_old(dir, "cert.pem", err));
	return fsync_dir(dir, err);
out:
	return -1;
}

static bool same_file(const char *dir, const char *name, bool *exists)
{
	char a[4096], b[4096];
	struct stat sa, sb;
	*exists = false;
	if (snprintf(a, sizeof(a), "%s/%s", dir, name) >= (int)sizeof(a) ||
	    snprintf(b, sizeof(b), "%s/%s.old", dir, name) >= (int)sizeof(b) || lstat(b, &sb) < 0)
		return false;
	*exists = true;
	return lstat(a, &sa) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void unlink_in(const char *dir, const char *name)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path))
		(void)unlink(path);
}

int enroll_renew_recover(const char *dir, bool *restored, sx_err *err)
{
	bool key_old, cert_old;
	bool key_same = same_file(dir, "key.pem", &key_old);
	bool cert_same = same_file(dir, "cert.pem", &cert_old);
	*restored = false;
	if (!key_old && !cert_old)
		return 0;
	/* The new key under its name, the previous certificate still under
	 * its: the previous pair goes back (its certificate is valid). */
	if (key_old && cert_old && !key_same && cert_same) {
		char path[4096];
		if (path_in(path, sizeof(path), dir, "key.pem.old", err) < 0)
			return -1;
		char cur[4096];
		if (path_in(cur, sizeof(cur), dir, "key.pem", err) < 0)
			return -1;
		if (rename(path, cur) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "%s -> %s", path, cur);
		*restored = true;
	}
	unlink_in(dir, "key.pem.old");
	unlink_in(dir, "cert.pem.old");
	unlink_in(dir, "key.pem.new");
	unlink_in(dir, "cert.pem.new");
	return fsync_dir(dir, err);
}

/* Is DIR/key.pem encrypted? A renewed key keeps the protection the
 * current one has. */
int enroll_key_encrypted(const char *dir, bool *encrypted, sx_err *err)
{
	char path[4096];
	uint8_t *data = NULL;
	size_t len = 0;
	SX_GUARD(path_in(path, sizeof(path), dir, "key.pem", err));
	SX_GUARD(sx_file_read(path, 1u << 20, &data, &len, err));
	*encrypted = strstr((const char *)data, "BEGIN PRIVATE KEY") == NULL;
	OPENSSL_cleanse(data, len);
	free(data);
	return 0;
out:
	return -1;
}

/* ---- sxfer crl fetch ---------------------------------------------------- */

int enroll_crl_current(const char *dir, X509_CRL **out, sx_err *err)
{
	char path[4096];
	*out = NULL;
	if (path_in(path, sizeof(path), dir, "crl.pem", err) < 0)
		return -1;
	if (access(path, F_OK) != 0)
		return 0;
	return sx_crl_load(path, out, err);
}

int enroll_crl_write(const char *dir, X509_CRL *crl, sx_err *err)
{
	char path[4096];
	if (path_in(path, sizeof(path), dir, "crl.pem", err) < 0)
		return -1;
	return sx_crl_save(path, crl, err);
}
