/* engine/serve_start: what the server checks and recovers before it
 * listens, so that a server that cannot work says why at start and not at
 * the first connection (sx_serve_prepare in sx_transfer.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_store.h"
#include "engine/transfer/sx_transfer.h"

/* The CRL for client certificates is current: a stale one would refuse
 * every device, so the server does not start with it. */
static int check_crl_time(const sx_serve_cfg *cfg, X509_CRL *crl, sx_err *err)
{
	if (crl == NULL || sx_crl_check_time(crl, 0, err) == 0)
		return 0;
	if (cfg->crl_path != NULL)
		sx_err_prefix(err, "%s: ", cfg->crl_path);
	else
		sx_err_prefix(err, "the CRL for client certificates: ");
	char msg[sizeof(err->msg)];
	snprintf(msg, sizeof(msg), "%s", err->msg);
	sx_err_clear(err);
	return sx_fail(err, SX_E_AUTH,
		       "%s; every device would be refused: fetch a new one with `sxfer crl fetch` "
		       "or `sxfer ca crl` and put it in place",
		       msg);
}

/* The server's own certificate through the one policy, with the role its
 * peers will require of it. */
static int check_identity(const sx_serve_cfg *cfg, sx_err *err)
{
	const sx_identity *id = cfg->id;
	X509_CRL *crl = cfg->crl != NULL ? cfg->crl : id->crl;
	X509 *leaf = sk_X509_value(id->chain, 0);
	STACK_OF(X509) *inter = sk_X509_dup(id->chain);
	sx_policy pol = {.anchors = id->anchors};
	int rc = -1;
	SX_ENSURE(inter != NULL, err, SX_E_OTHER, "out of memory");
	(void)sk_X509_shift(inter);
	SX_GUARD(check_crl_time(cfg, crl, err));
	/* Its own revocation too, when the CRL is its issuer's (a CRL given
	 * for clients may come from another CA). */
	if (crl != NULL && X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(leaf)) == 0)
		pol.crl = crl;
	if (sx_policy_check(&pol, leaf, inter, SX_ROLE_SERVER, NULL, err) < 0) {
		sx_err_prefix(err, "identity '%s' cannot serve: ", id->name);
		goto out;
	}
	rc = 0;
out:
	sk_X509_free(inter);
	return rc;
}

/* OUT exists (created 0750 less the umask), can be written, and is not
 * used by another server: the recovery below removes temporaries, which
 * must not be a running server's. */
static int open_out(const char *out_dir, int *lock_fd, sx_err *err)
{
	int fd = -1, rc = -1;
	SX_GUARD(sx_mkdirs(out_dir, SX_STORE_DIR_MODE, err));
	fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: cannot open the output folder", out_dir);
		goto out;
	}
	if (faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: the output folder cannot be written",
			      out_dir);
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			sx_fail(err, SX_E_IO, "%s: another sxfer serve uses this output folder",
				out_dir);
		else
			sx_fail_errno(err, SX_E_IO, errno, "%s: cannot lock the output folder",
				      out_dir);
		goto out;
	}
	*lock_fd = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int sx_serve_prepare(const sx_serve_cfg *cfg, int *lock_fd, sx_err *err)
{
	sx_store_recovery rec;
	uint64_t t0 = sx_now_ns();
	int rc = -1;
	*lock_fd = -1;
	/* Read before any loop thread exists (sx_store_umask). */
	(void)sx_store_umask();
	SX_GUARD(check_identity(cfg, err));
	SX_GUARD(open_out(cfg->out_dir, lock_fd, err));
	SX_GUARD(sx_store_recover_ttl(*lock_fd, cfg->partial_ttl_s, false, &rec, err));
	if (rec.kept > 0 || rec.removed > 0 || rec.failed > 0 || rec.held > 0 || rec.expired > 0)
		sx_log("warn", "recover",
		       "out=%s folders=%llu kept=%llu held=%llu expired=%llu removed=%llu "
		       "removed_bytes=%llu failed=%llu seconds=%.3f",
		       SX_LOGQ(cfg->out_dir), (unsigned long long)rec.dirs,
		       (unsigned long long)rec.kept, (unsigned long long)rec.held,
		       (unsigned long long)rec.expired, (unsigned long long)rec.removed,
		       (unsigned long long)rec.removed_bytes, (unsigned long long)rec.failed,
		       (double)(sx_now_ns() - t0) / 1e9);
	rc = 0;
out:
	if (rc < 0 && *lock_fd >= 0) {
		close(*lock_fd);
		*lock_fd = -1;
	}
	return rc;
}
