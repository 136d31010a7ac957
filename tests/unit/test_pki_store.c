/* Keys on disk, the CA index text form, serials and the CA folder. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>

#include "common/sx_util.h"
#include "pki/sx_ca.h"

static int fixed_pass(void *ctx, char *buf, size_t cap, bool confirm, sx_err *err)
{
	const char *p = ctx;
	(void)confirm;
	size_t n = strlen(p);
	if (n + 1 > cap)
		return sx_fail(err, SX_E_USAGE, "too long");
	memcpy(buf, p, n + 1);
	return (int)n;
}

static void path_of(char *buf, size_t cap, const char *dir, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static void test_key_roundtrip(void **state)
{
	(void)state;
	char *dir = sx_test_tmpdir();
	char path[600], desc[96];
	sx_pass good = {.get = fixed_pass, .ctx = "correct horse"};
	sx_pass bad = {.get = fixed_pass, .ctx = "wrong horse"};
	sx_pass plain = {.none = true};
	sx_err err = {0};
	EVP_PKEY *key = NULL, *back = NULL;
	struct stat st;

	path_of(path, sizeof(path), dir, "key.pem");
	assert_int_equal(sx_key_generate(SX_KEY_ED25519, &key, &err), 0);
	assert_int_equal(sx_key_save(path, key, &good, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(sx_key_load(path, &good, &back, &err), 0);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
	sx_key_describe(back, desc, sizeof(desc));
	assert_string_equal(desc, "Ed25519");
	EVP_PKEY_free(back);
	back = NULL;

	/* wrong passphrase: SX_E_AUTH and says so */
	assert_int_equal(sx_key_load(path, &bad, &back, &err), -1);
	assert_int_equal(err.cls, SX_E_AUTH);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	assert_non_null(strstr(err.msg, path));
	sx_err_clear(&err);

	/* group-readable: refused, naming the file */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(sx_key_load(path, &good, &back, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "permissions 0640 are too open"));
	assert_non_null(strstr(err.msg, path));
	sx_err_clear(&err);

	/* corrupt PEM */
	assert_int_equal(sx_file_write_atomic(path, "garbage\n", 8, 0600, &err), 0);
	assert_int_equal(sx_key_load(path, &good, &back, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "not a PEM private key"));
	sx_err_clear(&err);

	/* a plain key needs no passphrase source */
	assert_int_equal(sx_key_save(path, key, &plain, &err), 0);
	assert_int_equal(sx_key_load(path, NULL, &back, &err), 0);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
	EVP_PKEY_free(back);

	/* a traditional EC key whose DER has bytes after the key: refused
	 * (every key form is consumed exactly) */
	{
		EVP_PKEY *ec = NULL;
		unsigned char *der = NULL, buf[512];
		int n;
		BIO *b = BIO_new(BIO_s_mem());
		char *pem;
		assert_int_equal(sx_key_generate(SX_KEY_P256, &ec, &err), 0);
		n = i2d_PrivateKey(ec, &der);
		assert_true(n > 0 && (size_t)n + 2 <= sizeof(buf));
		memcpy(buf, der, (size_t)n);
		for (int extra = 0; extra <= 2; extra += 2) {
			buf[n] = 0x05; /* an ASN.1 NULL after the key */
			buf[n + 1] = 0x00;
			assert_int_equal(BIO_reset(b), 1);
			assert_true(PEM_write_bio(b, "EC PRIVATE KEY", "", buf, (long)n + extra) >
				    0);
			long pl = BIO_get_mem_data(b, &pem);
			assert_int_equal(sx_file_write_atomic(path, pem, (size_t)pl, 0600, &err),
					 0);
			sx_err_clear(&err);
			int rc = sx_key_load(path, NULL, &back, &err);
			if (extra == 0) {
				assert_int_equal(rc, 0);
				assert_int_equal(EVP_PKEY_eq(ec, back), 1);
				EVP_PKEY_free(back);
				back = NULL;
			} else {
				assert_int_equal(rc, -1);
				assert_non_null(strstr(err.msg, "corrupt key data"));
			}
		}
		OPENSSL_free(der);
		BIO_free(b);
		EVP_PKEY_free(ec);
		sx_err_clear(&err);
	}

	/* an encrypted key with no passphrase source */
	assert_int_equal(sx_key_save(path, key, &good, &err), 0);
	assert_int_equal(sx_key_load(path, NULL, &back, &err), -1);
	assert_int_equal(err.cls, SX_E_USAGE);
	EVP_PKEY_free(key);
	sx_test_rmtree(dir);
	free(dir);
}

static void test_index_text(void **state)
{
	(void)state;
	sx_ca_db db = {0};
	sx_err err = {0};
	char *text = NULL;
	size_t len = 0;
	const char good[] = "# header\n"
			    "V\tABC\t1900000000\t0\t0\tserver\tsrv one\n"
			    "R\t1F\t1900000000\t1800000000\t1\tclient\tcam\n";
	assert_int_equal(sx_ca_db_parse(good, sizeof(good) - 1, &db, &err), 0);
	assert_int_equal(db.n, 2);
	assert_string_equal(db.e[0].name, "srv one");
	assert_int_equal(db.e[1].reason, 1);
	assert_int_equal(db.e[1].profile, SX_PROFILE_CLIENT);
	assert_int_equal(sx_ca_db_format(&db, &text, &len, &err), 0);
	sx_ca_db db2 = {0};
	assert_int_equal(sx_ca_db_parse(text, len, &db2, &err), 0);
	assert_int_equal(db2.n, 2);
	assert_memory_equal(db.e, db2.e, 2 * sizeof(db.e[0]));
	free(text);
	sx_ca_db_free(&db);
	sx_ca_db_free(&db2);

	static const char *const bad[] = {
	    "V\tABC\t1900000000\t0\t0\tserver\n",			/* missing field */
	    "V\tabc\t1900000000\t0\t0\tserver\tx\n",			/* not canonical */
	    "V\tXYZ\t1900000000\t0\t0\tserver\tx\n",			/* not hex */
	    "V\tABC\t-5\t0\t0\tserver\tx\n",				/* negative */
	    "R\tABC\t1900000000\t0\t0\tserver\tx\n",			/* revoked without a date */
	    "V\tABC\t1900000000\t0\t0\tadmin\tx\n",			/* unknown role */
	    "V\tABC\t1\t0\t0\tserver\tx\nV\tABC\t1\t0\t0\tclient\ty\n", /* repeated serial */
	    "Q\tABC\t1900000000\t0\t0\tserver\tx\n",			/* unknown status */
	    "V\tABC\t1900000000\t0\t0\tserver\t\n",			/* empty name */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sx_err_clear(&err);
		assert_int_equal(sx_ca_db_parse(bad[i], strlen(bad[i]), &db, &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
		assert_int_equal(db.n, 0);
	}
	/* A NUL in a field (found by fuzz_cadb): the name would be stored as
	 * "" and written back as a line the next read refuses. */
	static const char nul_name[] = "V\tABC\t1900000000\t0\t0\tserver\t\0cam\n";
	static const char nul_role[] = "V\tABC\t1900000000\t0\t0\tserver\0\tcam\n";
	sx_err_clear(&err);
	assert_int_equal(sx_ca_db_parse(nul_name, sizeof(nul_name) - 1, &db, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	sx_err_clear(&err);
	assert_int_equal(sx_ca_db_parse(nul_role, sizeof(nul_role) - 1, &db, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	/* an over-long line */
	char longline[2048];
	memset(longline, 'A', sizeof(longline));
	longline[sizeof(longline) - 1] = '\n';
	sx_err_clear(&err);
	assert_int_equal(sx_ca_db_parse(longline, sizeof(longline), &db, &err), -1);
}

static void test_serials_and_names(void **state)
{
	(void)state;
	char out[SX_SERIAL_HEX_MAX];
	sx_err err = {0};
	assert_int_equal(sx_serial_normalize("0x0a:bc", out), 0);
	assert_string_equal(out, "ABC");
	assert_int_equal(sx_serial_normalize("000", out), 0);
	assert_string_equal(out, "0");
	assert_int_equal(sx_serial_normalize("", out), -1);
	assert_int_equal(sx_serial_normalize("12G", out), -1);
	assert_int_equal(sx_serial_normalize("112233445566778899AABBCCDDEEFF0011", out), -1);
	for (int i = 0; i < 64; i++) {
		BIGNUM *bn = NULL;
		assert_int_equal(sx_serial_random(&bn, &err), 0);
		assert_false(BN_is_negative(bn));
		assert_true(BN_num_bits(bn) <= 127);
		assert_true(BN_num_bits(bn) >= 113);
		BN_free(bn);
	}
	assert_int_equal(sx_name_check("ok name", &err), 0);
	assert_int_equal(sx_name_check("tab\there", &err), -1);
	sx_err_clear(&err);
	assert_int_equal(sx_name_check("", &err), -1);
	time_t t;
	assert_int_equal(sx_time_parse("2030-01-02T03:04:05Z", &t), 0);
	assert_int_equal(t, 1893553445);
	assert_int_equal(sx_time_parse("@12345", &t), 0);
	assert_int_equal(t, 12345);
	assert_int_equal(sx_time_parse("2030-13-01", &t), -1);
	assert_int_equal(sx_time_parse("yesterday", &t), -1);
}

static void test_ca_folder(void **state)
{
	(void)state;
	char *dir = sx_test_tmpdir();
	char cadir[600], iddir[600];
	sx_pass pass = {.get = fixed_pass, .ctx = "ca pass"};
	sx_err err = {0};
	sx_ca ca;
	X509 *cert = NULL;
	X509_CRL *crl = NULL;
	static const char *const dns[] = {"host.test"};
	sx_cert_spec spec = {.profile = SX_PROFILE_SERVER, .name = "host", .dns = dns, .ndns = 1};
	sx_identity id;
	char serial[80];

	path_of(cadir, sizeof(cadir), dir, "ca");
	path_of(iddir, sizeof(iddir), dir, "id");
	assert_int_equal(sx_ca_init(cadir, "Unit CA", SX_KEY_P256, 0, &pass, &err), 0);
	assert_int_equal(sx_ca_init(cadir, "Unit CA", SX_KEY_P256, 0, &pass, &err), -1);
	assert_non_null(strstr(err.msg, "already exists"));
	sx_err_clear(&err);

	assert_int_equal(sx_ca_open(cadir, &pass, &ca, &err), 0);
	assert_int_equal(
	    sx_ca_issue_identity(&ca, &spec, SX_KEY_P256, 0, iddir, &pass, &cert, &err), 0);
	sx_cert_serial_hex(cert, serial, sizeof(serial));
	assert_int_equal(ca.db.n, 1);
	assert_string_equal(ca.db.e[0].serial, serial);
	assert_int_equal(sx_ca_revoke(&ca, serial, 4, &err), 0);
	assert_int_equal(sx_ca_revoke(&ca, serial, 4, &err), -1);
	sx_err_clear(&err);
	assert_int_equal(sx_ca_crl(&ca, 0, &crl, &err), 0);
	sx_ca_close(&ca);

	/* the identity folder loads, and the CRL (not in the folder: issued after)
	 * marks it revoked */
	assert_int_equal(sx_identity_load(iddir, &pass, &id, &err), 0);
	assert_string_equal(id.name, "host");
	assert_null(id.crl);
	sx_policy pol = {.anchors = id.anchors};
	assert_int_equal(sx_policy_check(&pol, sk_X509_value(id.chain, 0), NULL, SX_ROLE_SERVER,
					 "host.test", &err),
			 0);
	pol.crl = crl;
	assert_int_equal(sx_policy_check(&pol, sk_X509_value(id.chain, 0), NULL, SX_ROLE_SERVER,
					 "host.test", &err),
			 -1);
	assert_non_null(strstr(err.msg, "revoked"));
	assert_non_null(strstr(err.msg, "superseded"));
	sx_identity_free(&id);

	sx_ca_db db;
	assert_int_equal(sx_ca_list(cadir, &db, &err), 0);
	assert_int_equal(db.n, 1);
	assert_true(db.e[0].revoked_at != 0);
	sx_ca_db_free(&db);

	X509_CRL_free(crl);
	X509_free(cert);
	sx_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_roundtrip),
	    cmocka_unit_test(test_index_text),
	    cmocka_unit_test(test_serials_and_names),
	    cmocka_unit_test(test_ca_folder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
