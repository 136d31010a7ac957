/* sxfer verify: files against their .sxsig, a signed receipt (with the
 * files it acknowledges), or a chat transcript. Reads files and prints one line per file; every
 * check is engine/sign (sx_sxsig_verify_file, sx_receipt_verify). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/sx_util.h"
#include "engine/chat/sx_chat.h"
#include "engine/sign/sx_manifest.h"
#include "tools/args.h"
#include "tools/hashfile.h"

/* Step 2 of docs/SIGNATURES.md section 6: the .sxsig names FILE. A batch
 * signature names its file: FILE is `path` or ends in `/path`. A checkpoint
 * signature covers only a prefix of the stream `path`, which the receiver
 * keeps as `path.partial`: it names FILE only under that name, or under
 * `path` itself with --stream-prefix, so that a prefix never passes for the
 * complete file. */
static int names_file(const sx_sxsig *s, const char *file, bool stream_prefix, sx_err *err)
{
	static const char partial[] = ".partial";
	const size_t pl = sizeof(partial) - 1;
	size_t fl = strlen(file);
	char whole[4096];
	if (s->kind == SX_KIND_CHECKPOINT && fl > pl && strcmp(file + fl - pl, partial) == 0 &&
	    fl - pl < sizeof(whole)) {
		memcpy(whole, file, fl - pl);
		whole[fl - pl] = '\0';
		if (sx_path_names(whole, s->path))
			return 0;
	}
	if (!sx_path_names(file, s->path))
		return sx_fail(err, SX_E_INTEGRITY, "the .sxsig is for '%s'", s->path);
	if (s->kind == SX_KIND_CHECKPOINT && !stream_prefix)
		return sx_fail(err, SX_E_INTEGRITY,
			       "a stream checkpoint signs only a prefix of '%s': it verifies "
			       "'%s.partial', or this name with --stream-prefix",
			       s->path, sx_base_name(s->path));
	return 0;
}

/* One file against FILE.sxsig. */
static int verify_one(const char *file, const sx_policy *pol, const sx_args *a, char *note,
		      size_t cap, sx_err *err)
{
	char sigpath[4096], name[256], when[40];
	uint8_t *text = NULL, root[SX_HASH_LEN];
	size_t len;
	uint64_t size;
	struct stat st;
	sx_sxsig s = {0};
	int rc = -1;
	SX_ENSURE(snprintf(sigpath, sizeof(sigpath), "%s.sxsig", file) < (int)sizeof(sigpath), err,
		  SX_E_IO, "path too long");
	SX_GUARD(sx_file_read(sigpath, SX_SXSIG_TEXT_MAX, &text, &len, err));
	if (sx_sxsig_decode((const char *)text, len, &s, err) < 0) {
		sx_err_prefix(err, "%s: ", sigpath);
		goto out;
	}
	SX_GUARD(names_file(&s, file, a->stream_prefix, err));
	SX_GUARD(sx_hash_file(file, s.chunk, root, &size, &st, err));
	SX_GUARD(sx_sxsig_verify_file(&s, root, size, NULL, pol, a->signer, name, err));
	sx_time_format((time_t)s.signed_time, when, sizeof(when));
	if (s.kind == SX_KIND_CHECKPOINT)
		snprintf(note, cap,
			 "stream prefix: the first %llu bytes of '%s', signer %s, signed %s",
			 (unsigned long long)s.file_size, s.path, name, when);
	else
		snprintf(note, cap, "signer %s, signed %s", name, when);
	rc = 0;
out:
	sx_sxsig_free(&s);
	free(text);
	return rc;
}

/* The first failure decides the exit code. */
static void record(int *code, const sx_err *err)
{
	if (*code == 0)
		*code = err->cls ? (int)err->cls : 1;
}

static int verify_files(const sx_args *a, const sx_policy *pol)
{
	int code = 0;
	char note[SX_MPATH_MAX + 512]; /* the path, the signer CN and a time */
	for (int i = 0; i < a->npos; i++) {
		sx_err err = {0};
		if (verify_one(a->pos[i], pol, a, note, sizeof(note), &err) == 0) {
			printf("%s: ok (%s)\n", SX_TEXT(a->pos[i]), SX_TEXT(note));
		} else {
			printf("%s: FAILED (%s)\n", SX_TEXT(a->pos[i]), SX_TEXT(err.msg));
			record(&code, &err);
		}
	}
	return code;
}

static int verify_receipt(const sx_args *a, const sx_policy *pol)
{
	sx_receipt r = {0};
	sx_err err = {0};
	uint8_t *text = NULL;
	size_t len;
	char name[256], when[40];
	bool *seen = NULL;
	int code = 0;
	if (sx_file_read(a->receipt, SX_RECEIPT_TEXT_MAX, &text, &len, &err) < 0 ||
	    sx_receipt_decode((const char *)text, len, &r, &err) < 0 ||
	    sx_receipt_verify(&r, pol, NULL, &err) < 0 ||
	    sx_cert_name(sk_X509_value(r.chain, 0), name, sizeof(name), &err) < 0) {
		printf("%s: FAILED (%s)\n", SX_TEXT(a->receipt), SX_TEXT(err.msg));
		record(&code, &err);
		goto out;
	}
	sx_time_format((time_t)r.time, when, sizeof(when));
	printf("%s: ok (receipt from %s, %u file(s), signed %s)\n", SX_TEXT(a->receipt),
	       SX_TEXT(name), r.count, when);
	if (a->npos == 0)
		goto out;
	seen = calloc(r.count ? r.count : 1, sizeof(*seen));
	if (seen == NULL) {
		sx_fail(&err, SX_E_OTHER, "out of memory");
		record(&code, &err);
		goto out;
	}
	/* The files given must be exactly the set acknowledged
	 * (docs/SIGNATURES.md section 7): each matches the first entry not yet
	 * matched that its path names, else the first such entry with its base
	 * name; its size and root are recomputed from the content. */
	for (int i = 0; i < a->npos; i++) {
		const char *f = a->pos[i];
		sx_err e = {0};
		uint32_t j, hit = r.count;
		for (j = 0; j < r.count && hit == r.count; j++)
			if (!seen[j] && sx_path_names(f, r.files[j].path))
				hit = j;
		for (j = 0; j < r.count && hit == r.count; j++)
			if (!seen[j] && strcmp(sx_base_name(f), sx_base_name(r.files[j].path)) == 0)
				hit = j;
		uint8_t root[SX_HASH_LEN];
		uint64_t size;
		struct stat st;
		if (hit == r.count) {
			sx_fail(&e, SX_E_INTEGRITY, "not acknowledged by the receipt");
		} else if (sx_hash_file(f, r.chunk, root, &size, &st, &e) == 0) {
			seen[hit] = true;
			if (size != r.files[hit].size)
				sx_fail(&e, SX_E_INTEGRITY,
					"size differs: file has %llu bytes, the receipt %llu",
					(unsigned long long)size,
					(unsigned long long)r.files[hit].size);
			else if (memcmp(root, r.files[hit].root, SX_HASH_LEN) != 0)
				sx_fail(&e, SX_E_INTEGRITY,
					"file content does not match the acknowledged root");
		}
		if (e.cls == SX_OK) {
			printf("%s: ok (acknowledged as '%s')\n", SX_TEXT(f),
			       SX_TEXT(r.files[hit].path));
		} else {
			printf("%s: FAILED (%s)\n", SX_TEXT(f), SX_TEXT(e.msg));
			record(&code, &e);
		}
	}
	for (uint32_t j = 0; j < r.count; j++)
		if (!seen[j]) {
			sx_err e = {0};
			sx_fail(&e, SX_E_INTEGRITY, "acknowledged by the receipt but not given");
			printf("%s: FAILED (%s)\n", SX_TEXT(r.files[j].path), SX_TEXT(e.msg));
			record(&code, &e);
		}
out:
	free(seen);
	free(text);
	sx_receipt_free(&r);
	return code;
}

/* A chat transcript (docs/SIGNATURES.md section 11): every line through
 * the one verifier; the first line that fails is named. */
#define TRANSCRIPT_MAX (1ull << 30)

static int verify_transcript(const sx_args *a, const sx_policy *pol)
{
	uint8_t *text = NULL;
	size_t len, bad = 0;
	sx_chat_summary sum;
	sx_err err = {0};
	int code = 0;
	if (sx_file_read(a->transcript, TRANSCRIPT_MAX, &text, &len, &err) < 0 ||
	    sx_chat_verify_text((const char *)text, len, pol, &bad, &sum, &err) < 0) {
		printf("%s: FAILED (%s)\n", SX_TEXT(a->transcript), SX_TEXT(err.msg));
		record(&code, &err);
		goto out;
	}
	printf("%s: ok (transcript of %s, %s: %zu line(s), %zu message(s) in %zu "
	       "conversation(s), %zu receipt(s)%s)\n",
	       SX_TEXT(a->transcript), SX_TEXT(sum.owner), sum.server ? "server" : "participant",
	       sum.lines, sum.msgs, sum.convs, sum.receipts,
	       sum.gaps > 0 ? ", with gaps the server announced" : "");
out:
	free(text);
	return code;
}

int sx_cmd_verify(int argc, char **argv)
{
	static const char usage[] =
	    "usage: sxfer verify --ca CA [--crl CRL] [--signer NAME] [--stream-prefix] FILE...\n"
	    "       sxfer verify --receipt RECEIPT --ca CA [--crl CRL] [FILE...]\n"
	    "       sxfer verify --transcript FILE --ca CA [--crl CRL]\n"
	    "Checks each FILE against FILE.sxsig: content (Merkle root recomputed), size,\n"
	    "inclusion proof, batch signature, signer certificate (validation policy; a\n"
	    "client or a server certificate: a server signs what `sxfer get` fetches).\n"
	    "One line per file: 'FILE: ok (...)' or 'FILE: FAILED (reason)'.\n"
	    "With --receipt: checks the receipt's signature (the receiver's certificate,\n"
	    "client or server) and that the FILEs are exactly the files it acknowledges.\n"
	    "With --transcript: checks a chat transcript (sxfer chat, serve --chat): every\n"
	    "certificate, message signature, the hash chain of each conversation, the\n"
	    "authors' sequence numbers and the receipts; names the first line that fails.\n"
	    "  --ca CA          PEM file of trust anchors, or a folder holding ca.pem\n"
	    "                   (an identity folder: its crl.pem is used too)\n"
	    "  --crl CRL        check the signer's revocation against this CRL\n"
	    "  --signer NAME    the signer's certificate name (CN) must be NAME\n"
	    "  --stream-prefix  let a stream checkpoint's .sxsig verify FILE under the\n"
	    "                   stream's own name (without it, only NAME.partial)\n"
	    "Exit: 0 all verified, 4 content or signature mismatch, 3 certificate problem,\n"
	    "5 missing or unreadable file or .sxsig, 2 usage; the first failure decides.\n";
	static const struct option opts[] = {
	    SX_OPT("ca", required_argument, OPT_CA),
	    SX_OPT("crl", required_argument, OPT_CRL),
	    SX_OPT("signer", required_argument, OPT_SIGNER),
	    SX_OPT("receipt", required_argument, OPT_RECEIPT),
	    SX_OPT("transcript", required_argument, OPT_TRANSCRIPT),
	    SX_OPT("stream-prefix", no_argument, OPT_STREAM_PREFIX),
	    SX_OPT_HELP,
	    SX_OPT_END};
	sx_args a;
	sx_err err = {0};
	sx_policy pol = {0};
	int rc = sx_args_parse("verify", usage, opts, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.ca == NULL)
		return sx_args_need("verify", "--ca CA");
	if (a.transcript != NULL &&
	    (a.receipt != NULL || a.npos > 0 || a.signer != NULL || a.stream_prefix))
		return sx_cli_usage_error("verify", "--transcript takes no other file or option "
						    "but --ca and --crl");
	if (a.transcript == NULL && a.receipt == NULL && a.npos < 1)
		return sx_cli_usage_error("verify", "give at least one file to verify");
	if (a.receipt != NULL && (a.signer != NULL || a.stream_prefix))
		return sx_cli_usage_error(
		    "verify", "--signer and --stream-prefix apply to .sxsig files, not --receipt");
	if (sx_args_trust(&a, &pol, &err) < 0) {
		rc = sx_cli_report(&err);
		goto out;
	}
	if (a.transcript != NULL)
		rc = verify_transcript(&a, &pol);
	else
		rc = a.receipt != NULL ? verify_receipt(&a, &pol) : verify_files(&a, &pol);
out:
	sk_X509_pop_free(pol.anchors, X509_free);
	X509_CRL_free(pol.crl);
	return rc;
}
