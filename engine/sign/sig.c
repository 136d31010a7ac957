/* engine/sign/sig: the signature algorithms a key dictates, signing and
 * verifying a statement (docs/SIGNATURES.md section 4). */
#include "engine/sign/sign_int.h"

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "common/sx_util.h"

static const char *const alg_names[] = {
    [SX_SIGALG_NONE] = "none",
    [SX_SIGALG_ECDSA_SHA256] = "ecdsa-sha256",
    [SX_SIGALG_ED25519] = "ed25519",
    [SX_SIGALG_RSA_PSS_SHA256] = "rsa-pss-sha256",
};
_Static_assert(SX_ARRAY_LEN(alg_names) == SX_SIGALG_COUNT, "a name for every algorithm");

const char *sx_sigalg_name(sx_sigalg a)
{
	return (unsigned)a < SX_ARRAY_LEN(alg_names) ? alg_names[a] : "none";
}

sx_sigalg sx_sigalg_for_key(EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC: return SX_SIGALG_ECDSA_SHA256;
	case EVP_PKEY_ED25519: return SX_SIGALG_ED25519;
	case EVP_PKEY_RSA: return SX_SIGALG_RSA_PSS_SHA256;
	default: return SX_SIGALG_NONE;
	}
}

/* ECDSA and RSA-PSS hash with SHA-256; Ed25519 is pure (RFC 8032 section
 * 5.1.6, no pre-hash). RSA-PSS: MGF1 with SHA-256, salt length = 32
 * (RFC 8017 section 9.1), checked exactly on verification. */
static int sig_setup(EVP_MD_CTX *ctx, EVP_PKEY *key, bool sign, sx_err *err)
{
	EVP_PKEY_CTX *pctx = NULL;
	sx_sigalg alg = sx_sigalg_for_key(key);
	const EVP_MD *md = alg == SX_SIGALG_ED25519 ? NULL : EVP_sha256();
	if (alg == SX_SIGALG_NONE)
		return sx_fail(err, SX_E_AUTH,
			       "unsupported key type for signatures (ECDSA, Ed25519 or RSA)");
	int ok = sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, key)
		      : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key);
	if (ok != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "signature setup");
	if (alg == SX_SIGALG_RSA_PSS_SHA256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))
		return sx_fail_ssl(err, SX_E_OTHER, "RSA-PSS setup");
	return 0;
}

int sx_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t *sig, size_t *siglen,
	    sx_err *err)
{
	int rc = -1;
	size_t n = SX_SIG_MAX;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	SX_ENSURE(ctx != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sig_setup(ctx, key, true, err));
	SX_ENSURE(EVP_PKEY_get_size(key) > 0 && EVP_PKEY_get_size(key) <= SX_SIG_MAX, err,
		  SX_E_AUTH, "signing key too large");
	if (EVP_DigestSign(ctx, sig, &n, msg, len) != 1) {
		sx_fail_ssl(err, SX_E_OTHER, "signing");
		goto out;
	}
	*siglen = n;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int sx_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen,
	      sx_err *err)
{
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	SX_ENSURE(ctx != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sig_setup(ctx, pub, false, err));
	if (EVP_DigestVerify(ctx, sig, siglen, msg, len) != 1) {
		ERR_clear_error();
		sx_fail(err, SX_E_INTEGRITY, "signature does not verify");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* The signature over a statement, with the algorithm the signer's key
 * dictates (a .sxsig cannot pick a weaker one). */
int sx_check_sig(X509 *signer, sx_sigalg alg, const uint8_t *msg, size_t len, const uint8_t *sig,
		 size_t siglen, const char *what, sx_err *err)
{
	EVP_PKEY *pub = X509_get0_pubkey(signer);
	if (pub == NULL || sx_sigalg_for_key(pub) != alg)
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s: algorithm '%s' does not match the signer's key", what,
			       sx_sigalg_name(alg));
	sx_err e = {0};
	if (sx_verify(pub, msg, len, sig, siglen, &e) < 0)
		return sx_fail(err, e.cls, "%s does not verify", what);
	return 0;
}
