/* sxfer sign: FILE.sxsig for local files under one batch signature
 * (docs/SIGNATURES.md). Reads the files and writes the .sxsig files; the
 * tree, the statement and the format are engine/sign. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/sx_util.h"
#include "engine/sign/sx_manifest.h"
#include "engine/transfer/sx_transfer.h"
#include "tools/args.h"
#include "tools/hashfile.h"

#define SIGN_FILES_MAX 100000

/* Fail early, with the policy's reason, rather than write signatures that
 * `sxfer verify` will refuse: the signer must pass the policy as a client. */
static int check_signer(const sx_identity *id, sx_err *err)
{
	sx_policy pol = {.anchors = id->anchors, .crl = id->crl};
	STACK_OF(X509) *inter = sk_X509_new_null();
	int rc = -1;
	SX_ENSURE(inter != NULL, err, SX_E_OTHER, "out of memory");
	for (int i = 1; i < sk_X509_num(id->chain); i++)
		SX_ENSURE(sk_X509_push(inter, sk_X509_value(id->chain, i)) > 0, err, SX_E_OTHER,
			  "out of memory");
	if (sx_policy_check(&pol, sk_X509_value(id->chain, 0), inter, SX_ROLE_CLIENT, NULL, err) <
	    0) {
		sx_err_prefix(err, "this identity cannot sign files: ");
		goto out;
	}
	rc = 0;
out:
	sk_X509_free(inter);
	return rc;
}

int sx_cmd_sign(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer sign --id IDDIR [--chunk SIZE] FILE...\n"
	    "Writes FILE.sxsig beside each FILE: its Merkle root, an inclusion proof and one\n"
	    "signature over the whole batch with the identity's key (docs/SIGNATURES.md).\n"
	    "The path recorded for each file is its base name. Check with 'sxfer verify'.\n"
	    "  --id IDDIR       identity folder (key.pem, cert.pem, ca.pem); its certificate\n"
	    "                   must carry clientAuth (role client or both)\n"
	    "  --chunk SIZE     leaf size of the per-file tree (default 1M; 4K, 64K, 1M...)\n"
	    "  --pass-file F    read the key's passphrase from F (else SXFER_PASSPHRASE)\n";
	static const struct option opts[] = {SX_OPT("id", required_argument, OPT_ID),
					     SX_OPT("chunk", required_argument, OPT_CHUNK),
					     SX_OPT_PASS, SX_OPT_HELP, SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_identity id = {0};
	sx_desc *descs = NULL;
	sx_batch batch = {0};
	sx_sxsig sig = {0};
	char *text = NULL, out[4096];
	uint8_t tid[SX_TID_LEN];
	uint64_t chunk = SX_CHUNK_DEFAULT;
	size_t len;
	int rc = sx_args_parse("sign", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.id == NULL)
		return sx_args_need("sign", "--id IDDIR");
	if (a.npos < 1)
		return sx_cli_usage_error("sign", "give at least one file to sign");
	if (a.npos > SIGN_FILES_MAX)
		return sx_cli_usage_error("sign", "at most %d files per batch", SIGN_FILES_MAX);
	if (a.chunk != NULL &&
	    (sx_parse_size(a.chunk, &chunk) < 0 || chunk < 1 || chunk > (1u << 30)))
		return sx_cli_usage_error("sign", "--chunk must be a size from 1 to 1G, not '%s'",
					  a.chunk);
	rc = -1;
	descs = calloc((size_t)a.npos, sizeof(*descs));
	SX_ENSURE(descs != NULL, &err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_identity_load(a.id, &a.pass, &id, &err));
	SX_GUARD(check_signer(&id, &err));
	for (int i = 0; i < a.npos; i++) {
		struct stat st;
		descs[i].path = sx_base_name(a.pos[i]);
		SX_GUARD(sx_hash_file(a.pos[i], (uint32_t)chunk, descs[i].root, &descs[i].size, &st,
				      &err));
		descs[i].mtime_sec = (int64_t)st.st_mtim.tv_sec;
		descs[i].mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	}
	SX_ENSURE(RAND_bytes(tid, sizeof(tid)) == 1, &err, SX_E_OTHER, "no randomness");
	SX_GUARD(sx_batch_sign(&batch, descs, (uint32_t)a.npos, (uint32_t)chunk, tid, 0,
			       (int64_t)time(NULL), id.key, &err));
	for (int i = 0; i < a.npos; i++) {
		SX_ENSURE(snprintf(out, sizeof(out), "%s.sxsig", a.pos[i]) < (int)sizeof(out), &err,
			  SX_E_IO, "%s: path too long", a.pos[i]);
		SX_GUARD(sx_batch_sxsig(&batch, descs, (uint32_t)i, id.chain, &sig, &err));
		SX_GUARD(sx_sxsig_encode(&sig, &text, &len, &err));
		SX_GUARD(sx_file_write_atomic(out, text, len, 0644, &err));
		free(text);
		text = NULL;
		sx_sxsig_free(&sig);
	}
	printf("signed %d file(s) as %s under one batch signature (%s)\n", a.npos, id.name,
	       sx_sigalg_name(batch.alg));
	rc = 0;
out:
	free(text);
	sx_sxsig_free(&sig);
	sx_batch_free(&batch);
	free(descs);
	sx_identity_free(&id);
	return rc < 0 ? sx_cli_report(&err) : 0;
}
