/* Private keys: generation, PKCS#8 storage (AES-256-CBC under scrypt) and
 * loading with the permission and passphrase checks of docs/PKI.md. */
#include "pki/sx_pki.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "common/sx_util.h"

/* scrypt parameters for key encryption: N = 2^14, r = 8, p = 1 (16 MiB),
 * inside OpenSSL's default 32 MiB scrypt memory limit so that `openssl pkey`
 * opens the files without extra options. */
#define SX_SCRYPT_N	   16384
#define SX_SCRYPT_R	   8
#define SX_SCRYPT_P	   1
#define SX_SCRYPT_P_ROOT   8 /* the CA root: eight times the work, the same memory */
#define SX_SCRYPT_SALT_LEN 16
#define SX_PASS_MAX	   1024
#define SX_KEY_FILE_MAX	   (64 * 1024)

static const struct {
	const char *name;
	sx_key_type type;
} key_types[] = {
    {"p256", SX_KEY_P256},
    {"ed25519", SX_KEY_ED25519},
    {"rsa3072", SX_KEY_RSA3072},
};

int sx_key_type_parse(const char *s, sx_key_type *out)
{
	for (size_t i = 0; s != NULL && i < SX_ARRAY_LEN(key_types); i++) {
		if (strcasecmp(s, key_types[i].name) == 0) {
			*out = key_types[i].type;
			return 0;
		}
	}
	return -1;
}

const char *sx_key_type_name(sx_key_type t)
{
	for (size_t i = 0; i < SX_ARRAY_LEN(key_types); i++)
		if (key_types[i].type == t)
			return key_types[i].name;
	return "unknown";
}

int sx_key_generate(sx_key_type type, EVP_PKEY **out, sx_err *err)
{
	EVP_PKEY *key = NULL;
	*out = NULL;
	switch (type) {
	case SX_KEY_P256: key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
	case SX_KEY_ED25519: key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
	case SX_KEY_RSA3072: key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072); break;
	default: return sx_fail(err, SX_E_USAGE, "unknown key type");
	}
	if (key == NULL)
		return sx_fail_ssl(err, SX_E_OTHER, "generating a %s key failed",
				   sx_key_type_name(type));
	*out = key;
	return 0;
}

void sx_key_describe(EVP_PKEY *key, char *buf, size_t cap)
{
	char group[64];
	size_t glen = 0;
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA: snprintf(buf, cap, "RSA %d bits", EVP_PKEY_get_bits(key)); break;
	case EVP_PKEY_ED25519: snprintf(buf, cap, "Ed25519"); break;
	case EVP_PKEY_ED448: snprintf(buf, cap, "Ed448"); break;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), &glen) != 1)
			snprintf(group, sizeof(group), "unknown curve");
		snprintf(buf, cap, "EC %s (%d bits)", group, EVP_PKEY_get_bits(key));
		break;
	default: snprintf(buf, cap, "%s", OBJ_nid2sn(EVP_PKEY_get_base_id(key))); break;
	}
}

/* Asks the passphrase source; an empty passphrase is refused so that a plain
 * key is always an explicit --no-passphrase. */
static int get_pass(const sx_pass *pass, const char *path, char *buf, size_t cap, bool confirm,
		    sx_err *err)
{
	if (pass == NULL || pass->get == NULL)
		return sx_fail(err, SX_E_USAGE, "%s: a passphrase is needed and none was given",
			       path);
	int n = pass->get(pass->ctx, buf, cap, confirm, err);
	if (n < 0) {
		sx_err_prefix(err, "%s: ", path);
		return -1;
	}
	if (n == 0)
		return sx_fail(err, SX_E_USAGE,
			       "%s: empty passphrase (use --no-passphrase for a plain key)", path);
	return n;
}

int sx_key_save(const char *path, EVP_PKEY *key, const sx_pass *pass, sx_err *err)
{
	return sx_key_save_cost(path, key, pass, SX_KEY_COST_DEVICE, err);
}

int sx_key_save_cost(const char *path, EVP_PKEY *key, const sx_pass *pass, sx_key_cost cost,
		     sx_err *err)
{
	int rc = -1;
	char pw[SX_PASS_MAX];
	int pwlen = 0;
	BIO *bio = NULL;
	PKCS8_PRIV_KEY_INFO *p8inf = NULL;
	X509_ALGOR *pbe = NULL;
	X509_SIG *p8 = NULL;
	char *data = NULL;
	long len = 0;

	p8inf = EVP_PKEY2PKCS8(key);
	bio = BIO_new(BIO_s_secmem());
	if (p8inf == NULL || bio == NULL) {
		sx_fail_ssl(err, SX_E_OTHER, "%s: cannot encode the private key", path);
		goto out;
	}
	if (pass != NULL && pass->none) {
		if (PEM_write_bio_PKCS8_PRIV_KEY_INFO(bio, p8inf) != 1) {
			sx_fail_ssl(err, SX_E_OTHER, "%s: cannot encode the private key", path);
			goto out;
		}
	} else {
		SX_GUARD(pwlen = get_pass(pass, path, pw, sizeof(pw), true, err));
		pbe = PKCS5_pbe2_set_scrypt(
		    EVP_aes_256_cbc(), NULL, SX_SCRYPT_SALT_LEN, NULL, SX_SCRYPT_N, SX_SCRYPT_R,
		    cost == SX_KEY_COST_ROOT ? SX_SCRYPT_P_ROOT : SX_SCRYPT_P);
		if (pbe == NULL) {
			sx_fail_ssl(err, SX_E_OTHER, "%s: cannot set up key encryption", path);
			goto out;
		}
		p8 = PKCS8_set0_pbe(pw, pwlen, p8inf, pbe);
		if (p8 == NULL) {
			sx_fail_ssl(err, SX_E_OTHER, "%s: cannot encrypt the private key", path);
			goto out;
		}
		pbe = NULL; /* owned by p8 now */
		if (PEM_write_bio_PKCS8(bio, p8) != 1) {
			sx_fail_ssl(err, SX_E_OTHER, "%s: cannot encode the private key", path);
			goto out;
		}
	}
	len = BIO_get_mem_data(bio, &data);
	SX_ENSURE(len > 0, err, SX_E_OTHER, "%s: cannot encode the private key", path);
	SX_GUARD(sx_file_write_atomic(path, data, (size_t)len, 0600, err));
	rc = 0;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	X509_ALGOR_free(pbe);
	X509_SIG_free(p8);
	PKCS8_PRIV_KEY_INFO_free(p8inf);
	BIO_free(bio); /* secure memory BIO: cleared on free */
	return rc;
}

int sx_key_load(const char *path, const sx_pass *pass, EVP_PKEY **out, sx_err *err)
{
	int rc = -1;
	struct stat st;
	uint8_t *file = NULL;
	size_t flen = 0;
	BIO *bio = NULL;
	char *pem_name = NULL, *pem_header = NULL;
	unsigned char *der = NULL;
	long derlen = 0;
	const unsigned char *p;
	X509_SIG *p8 = NULL;
	PKCS8_PRIV_KEY_INFO *p8inf = NULL;
	EVP_PKEY *key = NULL;
	char pw[SX_PASS_MAX];
	int pwlen = 0;

	*out = NULL;
	if (stat(path, &st) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", path);
		goto out;
	}
	SX_ENSURE(S_ISREG(st.st_mode), err, SX_E_IO, "%s: not a regular file", path);
	SX_ENSURE((st.st_mode & 077) == 0, err, SX_E_IO,
		  "%s: permissions %04o are too open; the key must not be readable by group or "
		  "others (chmod 600)",
		  path, (unsigned)(st.st_mode & 07777));
	SX_GUARD(sx_file_read(path, SX_KEY_FILE_MAX, &file, &flen, err));
	bio = BIO_new_mem_buf(file, (int)flen);
	SX_ENSURE(bio != NULL, err, SX_E_OTHER, "out of memory");
	if (PEM_read_bio(bio, &pem_name, &pem_header, &der, &derlen) != 1 || derlen <= 0) {
		ERR_clear_error();
		sx_fail(err, SX_E_IO, "%s: not a PEM private key", path);
		goto out;
	}
	p = der;
	if (strcmp(pem_name, "ENCRYPTED PRIVATE KEY") == 0) {
		p8 = d2i_X509_SIG(NULL, &p, derlen);
		if (p8 == NULL || p != der + derlen) {
			ERR_clear_error();
			sx_fail(err, SX_E_IO, "%s: not a PEM private key (corrupt encrypted key)",
				path);
			goto out;
		}
		SX_GUARD(pwlen = get_pass(pass, path, pw, sizeof(pw), false, err));
		p8inf = PKCS8_decrypt(p8, pw, pwlen);
		if (p8inf == NULL) {
			/* The structure parsed; only the decryption (padding check) failed. */
			ERR_clear_error();
			sx_fail(err, SX_E_AUTH, "%s: wrong passphrase", path);
			goto out;
		}
		key = EVP_PKCS82PKEY(p8inf);
	} else if (strcmp(pem_name, "PRIVATE KEY") == 0) {
		p8inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, derlen);
		if (p8inf != NULL && p == der + derlen)
			key = EVP_PKCS82PKEY(p8inf);
	} else if ((strcmp(pem_name, "EC PRIVATE KEY") == 0 ||
		    strcmp(pem_name, "RSA PRIVATE KEY") == 0) &&
		   strstr(pem_header, "ENCRYPTED") == NULL) {
		key = d2i_AutoPrivateKey(NULL, &p, derlen);
		if (key != NULL && p != der + derlen) { /* consumed exactly, as above */
			EVP_PKEY_free(key);
			key = NULL;
		}
	} else {
		sx_fail(err, SX_E_IO, "%s: not a PEM private key (found '%s')", path, pem_name);
		goto out;
	}
	if (key == NULL) {
		ERR_clear_error();
		sx_fail(err, SX_E_IO, "%s: not a PEM private key (corrupt key data)", path);
		goto out;
	}
	*out = key;
	key = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	EVP_PKEY_free(key);
	PKCS8_PRIV_KEY_INFO_free(p8inf);
	X509_SIG_free(p8);
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)derlen);
	OPENSSL_free(pem_name);
	OPENSSL_free(pem_header);
	BIO_free(bio);
	if (file != NULL)
		OPENSSL_cleanse(file, flen);
	free(file);
	return rc;
}
