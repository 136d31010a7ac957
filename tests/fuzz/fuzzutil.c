#include "tests/fuzz/fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pki/sx_ca.h"

const uint8_t fz_secret[SX_SECRET_LEN] = {
    0x73, 0x78, 0x66, 0x65, 0x72, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6b, 0x65, 0x79, 0x00, 0x01,
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
};

void fz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: property does not hold: %s\n", file, line, what);
	abort();
}

void fz_canonical_head(const uint8_t *in, size_t n, const char *enc, size_t elen)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	const uint8_t *a = memmem(in, n, begin, sizeof(begin) - 1);
	const char *b = memmem(enc, elen, begin, sizeof(begin) - 1);
	FZ_CHECK(a != NULL && b != NULL);
	size_t head = (size_t)(b - enc);
	FZ_CHECK((size_t)(a - in) == head && memcmp(in, enc, head) == 0);
}

sx_suite fz_suite(uint8_t b)
{
	static const sx_suite suites[] = {SX_SUITE_AES256GCM, SX_SUITE_AES256CTR_HMAC,
					  SX_SUITE_CHACHA20POLY1305};
	return suites[b % 3];
}

void fz_rdir(sx_rdir *d, sx_suite suite)
{
	sx_err err = {0};
	if (sx_rdir_init(d, suite, fz_secret, FZ_ROTATE, &err) < 0) {
		fprintf(stderr, "fuzz: cannot key a record direction: %s\n", err.msg);
		abort();
	}
}

const char *fz_memfile(const uint8_t *data, size_t len)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("sxfer-fuzz", MFD_CLOEXEC);
		if (fd < 0) {
			perror("fuzz: memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || (len > 0 && pwrite(fd, data, len, 0) != (ssize_t)len)) {
		perror("fuzz: memory file");
		abort();
	}
	return path;
}

static void die(const char *what, const sx_err *err)
{
	fprintf(stderr, "fuzz: %s: %s\n", what, err->msg);
	abort();
}

static void leaf(sx_identity *id, sx_profile profile, const char *name, X509 *ca, EVP_PKEY *ca_key,
		 time_t now)
{
	static const char *const dns[] = {FZ_SERVER_NAME};
	sx_err err = {0};
	X509 *cert = NULL;
	sx_cert_spec spec = {
	    .profile = profile,
	    .name = name,
	    .dns = profile == SX_PROFILE_SERVER ? dns : NULL,
	    .ndns = profile == SX_PROFILE_SERVER ? 1 : 0,
	    .not_before = now - 3600,
	    .not_after = now + 30 * 86400,
	};
	memset(id, 0, sizeof(*id));
	if (sx_key_generate(SX_KEY_P256, &id->key, &err) < 0 ||
	    sx_cert_build(&spec, id->key, ca, ca_key, &cert, &err) < 0)
		die("building a test identity", &err);
	id->chain = sk_X509_new_null();
	id->anchors = sk_X509_new_null();
	if (id->chain == NULL || id->anchors == NULL || sk_X509_push(id->chain, cert) <= 0 ||
	    X509_up_ref(ca) != 1 || sk_X509_push(id->anchors, ca) <= 0)
		abort();
	snprintf(id->name, sizeof(id->name), "%s", name);
}

void fz_identities(const sx_identity **server, const sx_identity **client)
{
	static sx_identity srv, cli;
	static int made;
	if (!made) {
		sx_err err = {0};
		EVP_PKEY *ca_key = NULL;
		X509 *ca = NULL;
		time_t now = time(NULL);
		sx_cert_spec spec = {
		    .profile = SX_PROFILE_CA,
		    .name = "sxfer fuzz CA",
		    .not_before = now - 3600,
		    .not_after = now + 365 * 86400,
		};
		if (sx_key_generate(SX_KEY_P256, &ca_key, &err) < 0 ||
		    sx_cert_build(&spec, ca_key, NULL, ca_key, &ca, &err) < 0)
			die("building the test CA", &err);
		leaf(&srv, SX_PROFILE_SERVER, "fuzz-server", ca, ca_key, now);
		leaf(&cli, SX_PROFILE_CLIENT, "fuzz-client", ca, ca_key, now);
		X509_free(ca);
		EVP_PKEY_free(ca_key);
		made = 1;
	}
	*server = &srv;
	*client = &cli;
}
