/* The CA folder (docs/PKI.md "CA folder"): the root, its key, the index of
 * issued certificates, the CRL number and a copy of each certificate.
 *
 * Crash safety: every file is replaced atomically (sx_file_write_atomic), and
 * a certificate file is written before the index that names it, so an
 * interrupted command leaves at most an unreferenced certificate file. A
 * flock on DIR/lock serialises writers. */
#include "pki/ca_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/sx_util.h"

#define SX_SERIAL_TRIES	     8
#define SX_REASON_SUPERSEDED 4 /* CRLReason superseded (RFC 5280 5.3.1) */

/* ---- open, close ------------------------------------------------------------ */

int sx_ca_load_root(sx_ca *ca, const char *dir, const sx_pass *pass, sx_err *err)
{
	int rc = -1;
	char path[4096];
	STACK_OF(X509) *certs = NULL;
	SX_ENSURE(strlen(dir) < sizeof(ca->dir), err, SX_E_IO, "%s: path too long", dir);
	memcpy(ca->dir, dir, strlen(dir) + 1);
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "ca.key.pem", err));
	SX_ENSURE(access(path, F_OK) == 0, err, SX_E_IO,
		  "%s: not a CA folder made by 'sxfer ca init' (no %s)", dir, path);
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_certs_load(path, &certs, err));
	ca->cert = sk_X509_shift(certs);
	SX_ENSURE(X509_get_extension_flags(ca->cert) & EXFLAG_CA, err, SX_E_AUTH,
		  "%s: not a CA certificate", path);
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "ca.key.pem", err));
	SX_GUARD(sx_key_load(path, pass, &ca->key, err));
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		sx_fail(err, SX_E_AUTH, "%s: the key does not match %s/ca.pem", path, dir);
		goto out;
	}
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int sx_ca_open(const char *dir, const sx_pass *pass, sx_ca *ca, sx_err *err)
{
	int rc = -1;
	memset(ca, 0, sizeof(*ca));
	ca->lock_fd = -1;
	SX_GUARD(sx_ca_load_root(ca, dir, pass, err));
	SX_GUARD(sx_ca_lock_take(dir, &ca->lock_fd, err));
	SX_GUARD(sx_ca_db_load(dir, &ca->db, err));
	rc = 0;
out:
	if (rc < 0)
		sx_ca_close(ca);
	return rc;
}

void sx_ca_close(sx_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sx_ca_db_free(&ca->db);
	sx_ca_db_free(&ca->superseded);
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
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_ca_path(keypath, sizeof(keypath), dir, "ca.key.pem", err));
	SX_ENSURE(access(path, F_OK) != 0 && access(keypath, F_OK) != 0, err, SX_E_IO,
		  "%s: a CA already exists here; refusing to overwrite it", dir);
	SX_GUARD(sx_mkdirs(dir, 0700, err));
	if (chmod(dir, 0700) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s: chmod", dir);
		goto out;
	}
	SX_GUARD(sx_ca_lock_take(dir, &lock_fd, err));
	/* Re-check under the lock: two concurrent inits must not both win. */
	SX_ENSURE(access(path, F_OK) != 0 && access(keypath, F_OK) != 0, err, SX_E_IO,
		  "%s: a CA already exists here; refusing to overwrite it", dir);
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "certs", err));
	SX_GUARD(sx_mkdirs(path, 0700, err));

	SX_GUARD(sx_key_generate(type, &key, err));
	spec.not_before = now - SX_BACKDATE_SECONDS;
	spec.not_after = now + (time_t)days * 86400;
	SX_GUARD(sx_cert_build(&spec, key, NULL, key, &cert, err));
	SX_GUARD(sx_key_save_cost(keypath, key, pass, SX_KEY_COST_ROOT, err));
	{
		sx_ca_db empty = {0};
		SX_GUARD(sx_ca_db_store(dir, &empty, err));
	}
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "crlnumber", err));
	SX_GUARD(sx_file_write_atomic(path, crlnumber, sizeof(crlnumber) - 1, 0600, err));
	/* ca.pem last: its presence marks a complete CA. */
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "ca.pem", err));
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

int sx_ca_name_rule(const sx_ca_db *db, const char *name, bool replace, time_t now,
		    const char *hint, sx_ca_db *found, sx_err *err)
{
	char until[32];
	memset(found, 0, sizeof(*found));
	for (size_t i = 0; i < db->n; i++) {
		const sx_ca_entry *e = &db->e[i];
		if (e->revoked_at != 0 || e->not_after <= now || strcmp(e->name, name) != 0)
			continue;
		if (!replace) {
			sx_time_format(e->not_after, until, sizeof(until));
			sx_ca_db_free(found);
			return sx_fail(
			    err, SX_E_AUTH,
			    "name '%s' already has a valid certificate (serial %s, until "
			    "%s); %s",
			    name, e->serial, until, hint);
		}
		if (sx_ca_db_push(found, e, err) < 0) {
			sx_ca_db_free(found);
			return -1;
		}
	}
	return 0;
}

/* An unused serial (random, checked against the index). */
static int fresh_serial(const sx_ca_db *db, BIGNUM **out, char shex[SX_SERIAL_HEX_MAX], sx_err *err)
{
	for (int i = 0; i < SX_SERIAL_TRIES; i++) {
		BIGNUM *bn = NULL;
		char *hex = NULL;
		if (sx_serial_random(&bn, err) < 0)
			return -1;
		hex = BN_bn2hex(bn);
		if (hex == NULL || sx_serial_normalize(hex, shex) != 0) {
			OPENSSL_free(hex);
			BN_free(bn);
			return sx_fail(err, SX_E_OTHER, "serial encoding");
		}
		OPENSSL_free(hex);
		if (sx_ca_db_find(db, shex) == NULL) {
			*out = bn;
			return 0;
		}
		BN_free(bn);
	}
	return sx_fail(err, SX_E_OTHER, "cannot find an unused serial");
}

/* A server or both certificate with no DNS/IP SAN gets the name as DNS SAN
 * when it is a valid host name (a server needs a name to be checked
 * against). notAfter never exceeds the CA's. */
int sx_ca_build_leaf(sx_ca *ca, const sx_cert_spec *spec_in, EVP_PKEY *subject_key, unsigned days,
		     X509 **out, char shex[SX_SERIAL_HEX_MAX], sx_err *err)
{
	int rc = -1;
	sx_cert_spec spec = *spec_in;
	BIGNUM *serial = NULL;
	time_t now = time(NULL), ca_end = 0;
	const char *dns[1];
	sx_err ignored = {0};

	*out = NULL;
	SX_ENSURE(spec.profile != SX_PROFILE_CA, err, SX_E_USAGE,
		  "this CA issues end-entity certificates only");
	if (days == 0)
		days = SX_LEAF_DAYS_DEFAULT;
	SX_ENSURE(days <= SX_DAYS_MAX, err, SX_E_USAGE, "--days must be at most %d", SX_DAYS_MAX);
	SX_GUARD(sx_key_check_strength(subject_key, err));
	if (spec.profile != SX_PROFILE_CLIENT && spec.ndns == 0 && spec.nips == 0 &&
	    sx_dns_check(spec.name, &ignored) == 0) {
		dns[0] = spec.name;
		spec.dns = dns;
		spec.ndns = 1;
	}
	if (spec.not_before == 0 && spec.not_after == 0) {
		spec.not_before = now - SX_BACKDATE_SECONDS;
		spec.not_after = now + (time_t)days * 86400;
	}
	if (sx_asn1_to_time_t(X509_get0_notAfter(ca->cert), &ca_end) == 0 &&
	    spec.not_after > ca_end)
		spec.not_after = ca_end; /* a leaf never outlives its CA */
	SX_GUARD(fresh_serial(&ca->db, &serial, shex, err));
	spec.serial = serial;
	SX_GUARD(sx_cert_build(&spec, subject_key, ca->cert, ca->key, out, err));
	rc = 0;
out:
	BN_free(serial);
	return rc;
}

int sx_ca_record_leaf(sx_ca *ca, X509 *cert, const char *serial, const char *name,
		      sx_profile profile, const sx_ca_db *supersede, sx_err *err)
{
	int rc = -1;
	char path[4096], file[64];
	sx_ca_entry e = {0}, *old;
	size_t n0 = ca->db.n, marked = 0;
	time_t now = time(NULL);

	SX_ENSURE(sx_asn1_to_time_t(X509_get0_notAfter(cert), &e.not_after) == 0, err, SX_E_OTHER,
		  "the new certificate's notAfter");
	/* 1. the certificate file, 2. the index that names it (atomic). */
	snprintf(file, sizeof(file), "certs/%s.pem", serial);
	SX_GUARD(sx_ca_path(path, sizeof(path), ca->dir, file, err));
	SX_GUARD(sx_certs_save(path, &cert, 1, 0644, err));
	snprintf(e.serial, sizeof(e.serial), "%s", serial);
	snprintf(e.name, sizeof(e.name), "%s", name);
	e.profile = profile;
	for (; supersede != NULL && marked < supersede->n; marked++) {
		old = sx_ca_db_find(&ca->db, supersede->e[marked].serial);
		SX_ENSURE(old != NULL && old->revoked_at == 0, err, SX_E_OTHER,
			  "serial %s changed in the index", supersede->e[marked].serial);
		old->revoked_at = now;
		old->reason = SX_REASON_SUPERSEDED;
	}
	SX_GUARD(sx_ca_db_push(&ca->db, &e, err));
	SX_GUARD(sx_ca_db_store(ca->dir, &ca->db, err));
	rc = 0;
out:
	if (rc < 0) {
		ca->db.n = n0;
		for (size_t i = 0; i < marked; i++) {
			old = sx_ca_db_find(&ca->db, supersede->e[i].serial);
			if (old != NULL) {
				old->revoked_at = 0;
				old->reason = 0;
			}
		}
	}
	return rc;
}

/* The one-name rule, then a new leaf recorded in the index; what it
 * revoked is in ca->superseded. */
int sx_ca_issue(sx_ca *ca, const sx_cert_spec *spec, EVP_PKEY *subject_key, unsigned days,
		X509 **out, sx_err *err)
{
	int rc = -1;
	char serial[SX_SERIAL_HEX_MAX];
	X509 *cert = NULL;
	sx_ca_db found = {0};

	*out = NULL;
	sx_ca_db_free(&ca->superseded);
	SX_GUARD(sx_name_check(spec->name, err));
	SX_GUARD(sx_ca_name_rule(&ca->db, spec->name, spec->replace, time(NULL),
				 "--replace revokes it", &found, err));
	SX_GUARD(sx_ca_build_leaf(ca, spec, subject_key, days, &cert, serial, err));
	SX_GUARD(sx_ca_record_leaf(ca, cert, serial, spec->name, spec->profile, &found, err));
	ca->superseded = found;
	memset(&found, 0, sizeof(found));
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	sx_ca_db_free(&found);
	X509_free(cert);
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
		if (sx_ca_db_store(ca->dir, &ca->db, err) < 0) {
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
	SX_GUARD(sx_ca_path(path, sizeof(path), ca->dir, "crlnumber", err));
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
	/* thisUpdate backdated like a certificate's notBefore (clock skew). */
	SX_GUARD(sx_crl_build(ca->cert, ca->key, rev, nrev, number, now - SX_BACKDATE_SECONDS,
			      now + (time_t)days * 86400, out, err));
	SX_GUARD(sx_ca_path(path, sizeof(path), ca->dir, "crl.pem", err));
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
	return sx_ca_db_load(dir, db, err);
}
