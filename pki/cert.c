/* Certificates and CSRs: loading, building (the profiles of docs/PKI.md),
 * saving, and the small formatting helpers used in messages. */
#include "pki/ca_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/sx_util.h"

#define SX_PEM_FILE_MAX (4 * 1024 * 1024)

/* ---- loading ------------------------------------------------------------ */

int sx_certs_load(const char *path, STACK_OF(X509) * *out, sx_err *err)
{
	int rc = -1;
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	STACK_OF(X509) *sk = NULL;
	X509 *x = NULL;

	*out = NULL;
	SX_GUARD(sx_file_read(path, SX_PEM_FILE_MAX, &data, &len, err));
	bio = BIO_new_mem_buf(data, (int)len);
	sk = sk_X509_new_null();
	SX_ENSURE(bio != NULL && sk != NULL, err, SX_E_OTHER, "out of memory");
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			sx_fail(err, SX_E_OTHER, "out of memory");
			goto out;
		}
	}
	/* End of input is the expected way out of the loop; anything else is a
	 * corrupt certificate. */
	unsigned long e = ERR_peek_last_error();
	if (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		sx_fail_ssl(err, SX_E_IO, "%s: corrupt PEM certificate", path);
		goto out;
	}
	ERR_clear_error();
	SX_ENSURE(sk_X509_num(sk) > 0, err, SX_E_IO, "%s: no PEM certificate in the file", path);
	*out = sk;
	sk = NULL;
	rc = 0;
out:
	sk_X509_pop_free(sk, X509_free);
	BIO_free(bio);
	free(data);
	return rc;
}

int sx_cert_fp(X509 *cert, uint8_t out[SX_CERT_FP_LEN], sx_err *err)
{
	unsigned int n = 0;
	if (X509_digest(cert, EVP_sha256(), out, &n) != 1 || n != SX_CERT_FP_LEN)
		return sx_fail_ssl(err, SX_E_OTHER, "certificate fingerprint");
	return 0;
}

static int name_cn(X509_NAME *subj, char *buf, size_t cap, const char *what, sx_err *err)
{
	int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n;
	if (idx < 0)
		return sx_fail(err, SX_E_AUTH, "%s has no common name", what);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
	if (n < 0)
		return sx_fail_ssl(err, SX_E_AUTH, "%s common name is not a string", what);
	if ((size_t)n >= cap || memchr(utf8, '\0', (size_t)n) != NULL) {
		OPENSSL_free(utf8);
		return sx_fail(err, SX_E_AUTH, "%s common name is too long or malformed", what);
	}
	memcpy(buf, utf8, (size_t)n);
	buf[n] = '\0';
	OPENSSL_free(utf8);
	return 0;
}

int sx_cert_name(X509 *cert, char *buf, size_t cap, sx_err *err)
{
	return name_cn(X509_get_subject_name(cert), buf, cap, "certificate", err);
}

int sx_csr_name(X509_REQ *req, char *buf, size_t cap, sx_err *err)
{
	return name_cn(X509_REQ_get_subject_name(req), buf, cap, "CSR", err);
}

void sx_cert_sans(X509 *cert, char *buf, size_t cap)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && used < cap; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char one[INET6_ADDRSTRLEN + 300];
		int type;
		const ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
		const unsigned char *d = ASN1_STRING_get0_data(v);
		int len = ASN1_STRING_length(v);
		if (type == GEN_DNS)
			snprintf(one, sizeof(one), "DNS:%.*s", len > 255 ? 255 : len, d);
		else if (type == GEN_IPADD && (len == 4 || len == 16)) {
			char ip[INET6_ADDRSTRLEN];
			inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip));
			snprintf(one, sizeof(one), "IP:%s", ip);
		} else
			snprintf(one, sizeof(one), "(other)");
		int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", one);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (used >= cap && cap > 4)
		memcpy(buf + cap - 4, "...", 4);
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
}

void sx_cert_subject(X509 *cert, char *buf, size_t cap)
{
	char cn[SX_CN_MAX * 4 + 1];
	sx_err e = {0};
	if (sx_cert_name(cert, cn, sizeof(cn), &e) == 0) {
		snprintf(buf, cap, "CN=%s", cn);
		return;
	}
	if (X509_NAME_oneline(X509_get_subject_name(cert), buf, (int)cap) == NULL)
		snprintf(buf, cap, "(unnamed certificate)");
}

void sx_asn1_time_format(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "(invalid time)");
}

void sx_time_format(time_t t, char *buf, size_t cap)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "(invalid time)");
}

int sx_time_parse(const char *s, time_t *out)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0, used = 0;
	uint64_t v;
	if (s == NULL)
		return -1;
	if (s[0] == '@') {
		if (sx_parse_u64(s + 1, &v) < 0 || v > (uint64_t)INT64_MAX / 2)
			return -1;
		*out = (time_t)v;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &sec, &used) == 6 &&
	    s[used] == '\0') {
		/* full form */
	} else if (h = mi = sec = 0, used = 0,
		   sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) == 3 && s[used] == '\0') {
		/* date only: midnight UTC */
	} else {
		return -1;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = timegm(&tm);
	return 0;
}

void sx_cert_serial_hex(X509 *cert, char *buf, size_t cap)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	const char *h = hex;
	/* BN_bn2hex writes whole bytes ("0A1B"); drop a leading zero digit so
	 * that every place prints the same serial as the CA index. */
	while (h != NULL && h[0] == '0' && h[1] != '\0')
		h++;
	snprintf(buf, cap, "%s", h ? h : "?");
	OPENSSL_free(hex);
	BN_free(bn);
}

/* ---- profiles ----------------------------------------------------------- */

static const char *const profile_names[] = {"CA", "server", "client", "both"};

int sx_profile_parse(const char *s, sx_profile *out)
{
	for (size_t i = SX_PROFILE_SERVER; s != NULL && i < SX_ARRAY_LEN(profile_names); i++) {
		if (strcasecmp(s, profile_names[i]) == 0) {
			*out = (sx_profile)i;
			return 0;
		}
	}
	return -1;
}

const char *sx_profile_name(sx_profile p)
{
	return (size_t)p < SX_ARRAY_LEN(profile_names) ? profile_names[p] : "unknown";
}

const char *sx_cert_role(X509 *cert)
{
	uint32_t flags = X509_get_extension_flags(cert);
	if (flags & EXFLAG_CA)
		return "CA";
	if (!(flags & EXFLAG_XKUSAGE))
		return "none";
	uint32_t xku = X509_get_extended_key_usage(cert);
	bool srv = xku & XKU_SSL_SERVER, cli = xku & XKU_SSL_CLIENT;
	return srv && cli ? "both" : srv ? "server" : cli ? "client" : "none";
}

int sx_name_check(const char *name, sx_err *err)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > SX_CN_MAX)
		return sx_fail(err, SX_E_USAGE, "name must be 1 to %d characters", SX_CN_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return sx_fail(err, SX_E_USAGE, "name contains a control character");
	}
	return 0;
}

int sx_dns_check(const char *s, sx_err *err)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return sx_fail(err, SX_E_USAGE, "DNS name '%s' has a bad length", s);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			  (c == '*' && i == 0 && s[1] == '.');
		if (!ok)
			return sx_fail(err, SX_E_USAGE, "DNS name '%s' has an invalid character",
				       s);
	}
	return 0;
}

/* ---- building ----------------------------------------------------------- */

int sx_serial_random(BIGNUM **out, sx_err *err)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	*out = NULL;
	do {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return sx_fail_ssl(err, SX_E_OTHER, "random serial");
		b[0] &= 0x7f;		  /* positive, so the DER INTEGER stays within 16 bytes */
	} while (b[0] == 0 && b[1] == 0); /* keep serials at >= 113 bits */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn == NULL)
		return sx_fail_ssl(err, SX_E_OTHER, "random serial");
	*out = bn;
	return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, sx_err *err)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
		X509_EXTENSION_free(ext);
		return sx_fail_ssl(err, SX_E_OTHER, "adding extension %s", OBJ_nid2sn(nid));
	}
	X509_EXTENSION_free(ext);
	return 0;
}

/* The SAN is built from typed values, never from a config string, so that
 * an operator-given name cannot smuggle in another entry. */
int sx_sans_build(const char *const *dns, size_t ndns, const char *const *ips, size_t nips,
		  GENERAL_NAMES **out, sx_err *err)
{
	int rc = -1;
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gen = NULL;
	*out = NULL;
	SX_ENSURE(gens != NULL, err, SX_E_OTHER, "out of memory");
	for (size_t i = 0; i < ndns; i++) {
		ASN1_IA5STRING *ia5 = NULL;
		SX_GUARD(sx_dns_check(dns[i], err));
		gen = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new();
		if (gen == NULL || ia5 == NULL ||
		    ASN1_STRING_set(ia5, dns[i], (int)strlen(dns[i])) != 1) {
			ASN1_IA5STRING_free(ia5);
			sx_fail(err, SX_E_OTHER, "out of memory");
			goto out;
		}
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
		SX_ENSURE(sk_GENERAL_NAME_push(gens, gen) > 0, err, SX_E_OTHER, "out of memory");
		gen = NULL;
	}
	for (size_t i = 0; i < nips; i++) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(ips[i]);
		if (ip == NULL) {
			ERR_clear_error();
			sx_fail(err, SX_E_USAGE, "'%s' is not an IP address", ips[i]);
			goto out;
		}
		gen = GENERAL_NAME_new();
		if (gen == NULL) {
			ASN1_OCTET_STRING_free(ip);
			sx_fail(err, SX_E_OTHER, "out of memory");
			goto out;
		}
		GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
		SX_ENSURE(sk_GENERAL_NAME_push(gens, gen) > 0, err, SX_E_OTHER, "out of memory");
		gen = NULL;
	}
	if (sk_GENERAL_NAME_num(gens) > 0) {
		*out = gens;
		gens = NULL;
	}
	rc = 0;
out:
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return rc;
}

static int add_san(X509 *x, const sx_cert_spec *spec, sx_err *err)
{
	GENERAL_NAMES *gens = NULL;
	int rc = sx_sans_build(spec->dns, spec->ndns, spec->ips, spec->nips, &gens, err);
	if (rc == 0 && gens != NULL &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		rc = sx_fail_ssl(err, SX_E_OTHER, "adding subjectAltName");
	GENERAL_NAMES_free(gens);
	return rc;
}

const EVP_MD *sx_sig_md(EVP_PKEY *key)
{
	int id = EVP_PKEY_get_base_id(key);
	return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();
}

int sx_cert_build(const sx_cert_spec *spec, EVP_PKEY *subject_key, X509 *issuer,
		  EVP_PKEY *issuer_key, X509 **out, sx_err *err)
{
	int rc = -1;
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	time_t nb = spec->not_before, na = spec->not_after;
	BIGNUM *serial = NULL;
	ASN1_INTEGER *aserial = NULL;
	const char *ku = "critical,digitalSignature";
	const char *eku = NULL;

	*out = NULL;
	SX_ENSURE(x != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_name_check(spec->name, err));
	SX_ENSURE(spec->not_after > spec->not_before, err, SX_E_USAGE,
		  "notAfter must be later than notBefore");
	if (spec->serial == NULL)
		SX_GUARD(sx_serial_random(&serial, err));
	aserial = BN_to_ASN1_INTEGER(spec->serial ? spec->serial : serial, NULL);
	name = X509_NAME_new();
	if (aserial == NULL || name == NULL ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)spec->name, -1, -1, 0) != 1 ||
	    X509_set_version(x, X509_VERSION_3) != 1 || X509_set_serialNumber(x, aserial) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na) == NULL ||
	    X509_set_pubkey(x, subject_key) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "building the certificate for '%s'", spec->name);
		goto out;
	}
	if (spec->profile == SX_PROFILE_CA) {
		SX_GUARD(add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE", err));
		SX_GUARD(add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign", err));
	} else {
		bool rsa = EVP_PKEY_get_base_id(subject_key) == EVP_PKEY_RSA;
		if (rsa && spec->profile != SX_PROFILE_CLIENT)
			ku = "critical,digitalSignature,keyEncipherment";
		eku = spec->profile == SX_PROFILE_SERVER   ? "serverAuth"
		      : spec->profile == SX_PROFILE_CLIENT ? "clientAuth"
							   : "serverAuth,clientAuth";
		SX_GUARD(add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE", err));
		SX_GUARD(add_ext(x, issuer, NID_key_usage, ku, err));
		SX_GUARD(add_ext(x, issuer, NID_ext_key_usage, eku, err));
		SX_GUARD(add_san(x, spec, err));
	}
	SX_GUARD(add_ext(x, issuer, NID_subject_key_identifier, "hash", err));
	SX_GUARD(add_ext(x, issuer, NID_authority_key_identifier, "keyid:always", err));
	if (X509_sign(x, issuer_key, sx_sig_md(issuer_key)) <= 0) {
		sx_fail_ssl(err, SX_E_OTHER, "signing the certificate for '%s'", spec->name);
		goto out;
	}
	*out = x;
	x = NULL;
	rc = 0;
out:
	X509_free(x);
	X509_NAME_free(name);
	ASN1_INTEGER_free(aserial);
	BN_free(serial);
	return rc;
}

int sx_bio_save(const char *path, BIO *bio, mode_t mode, sx_err *err)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		return sx_fail(err, SX_E_OTHER, "%s: nothing to write", path);
	return sx_file_write_atomic(path, data, (size_t)len, mode, err);
}

int sx_certs_save(const char *path, X509 *const *certs, size_t n, mode_t mode, sx_err *err)
{
	int rc = -1;
	BIO *bio = BIO_new(BIO_s_mem());
	SX_ENSURE(bio != NULL, err, SX_E_OTHER, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (PEM_write_bio_X509(bio, certs[i]) != 1) {
			sx_fail_ssl(err, SX_E_OTHER, "%s: encoding a certificate", path);
			goto out;
		}
	}
	SX_GUARD(sx_bio_save(path, bio, mode, err));
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

/* ---- CSRs --------------------------------------------------------------- */

int sx_csr_build(EVP_PKEY *key, const char *name, X509_REQ **out, sx_err *err)
{
	int rc = -1;
	X509_REQ *req = X509_REQ_new();
	X509_NAME *subj = NULL;
	*out = NULL;
	SX_ENSURE(req != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_name_check(name, err));
	subj = X509_REQ_get_subject_name(req);
	if (X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, sx_sig_md(key)) <= 0) {
		sx_fail_ssl(err, SX_E_OTHER, "building the CSR for '%s'", name);
		goto out;
	}
	*out = req;
	req = NULL;
	rc = 0;
out:
	X509_REQ_free(req);
	return rc;
}

int sx_csr_save(const char *path, X509_REQ *req, sx_err *err)
{
	int rc = -1;
	BIO *bio = BIO_new(BIO_s_mem());
	SX_ENSURE(bio != NULL, err, SX_E_OTHER, "out of memory");
	if (PEM_write_bio_X509_REQ(bio, req) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "%s: encoding the CSR", path);
		goto out;
	}
	SX_GUARD(sx_bio_save(path, bio, 0644, err));
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

int sx_csr_load(const char *path, X509_REQ **out, sx_err *err)
{
	int rc = -1;
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	*out = NULL;
	SX_GUARD(sx_file_read(path, SX_PEM_FILE_MAX, &data, &len, err));
	bio = BIO_new_mem_buf(data, (int)len);
	SX_ENSURE(bio != NULL, err, SX_E_OTHER, "out of memory");
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	if (req == NULL) {
		sx_fail_ssl(err, SX_E_IO, "%s: not a PEM certificate request", path);
		goto out;
	}
	pub = X509_REQ_get0_pubkey(req);
	if (pub == NULL) {
		sx_fail_ssl(err, SX_E_AUTH, "%s: the CSR's public key cannot be read", path);
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		sx_fail(err, SX_E_AUTH, "%s: the CSR's self-signature does not verify", path);
		goto out;
	}
	*out = req;
	req = NULL;
	rc = 0;
out:
	X509_REQ_free(req);
	BIO_free(bio);
	free(data);
	return rc;
}

int sx_chain_copy(STACK_OF(X509) * *out, STACK_OF(X509) * chain, sx_err *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	*out = NULL;
	if (sk == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		if (X509_up_ref(x) != 1)
			goto fail;
		if (sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			goto fail;
		}
	}
	*out = sk;
	return 0;
fail:
	sk_X509_pop_free(sk, X509_free);
	return sx_fail(err, SX_E_OTHER, "out of memory");
}
