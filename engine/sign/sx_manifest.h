/* engine/sign: per-file Merkle trees (RFC 9162 section 2.1), file
 * descriptors, batch and checkpoint signatures, the `.sxsig` text format and
 * signed receipts (docs/SIGNATURES.md). Pure: byte buffers in, results out;
 * no files, no sockets, no clock (every time is an argument).
 *
 * The public interface of the folder; one file per section below: merkle.c,
 * filehash.c, statement.c, sig.c, sxsig.c, batch.c, receipt.c; text.c and
 * chain.c hold what .sxsig and receipts share (the armored text, the
 * signer's chain), sign_int.h what the files share inside the folder. */
#ifndef SX_MANIFEST_H
#define SX_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/sx_err.h"
#include "pki/sx_pki.h"

#define SX_HASH_LEN  32
#define SX_TID_LEN   16	  /* transfer id */
#define SX_PROOF_MAX 64	  /* nodes in an inclusion proof (tree sizes < 2^64) */
#define SX_SIG_MAX   1024 /* bytes of one signature (RSA up to 8192 bits) */
#define SX_CHAIN_MAX 8	  /* certificates in a signer's chain */
#define SX_MPATH_MAX 4096 /* bytes of a relative path (= SX_PATH_MAX) */
/* The limits of the text formats (docs/SIGNATURES.md sections 5 and 7):
 * decoders refuse more, and the encoders' growable buffers stop there. A
 * .sxsig (one proof, one chain) needs a few KiB; a receipt covers one batch
 * (SX_BATCH_FILES_MAX files), well below its caps. */
#define SX_SXSIG_TEXT_MAX    (1u << 20)	 /* a .sxsig file */
#define SX_RECEIPT_FILES_MAX 100000u	 /* files acknowledged by one receipt */
#define SX_RECEIPT_TEXT_MAX  (64u << 20) /* a receipt file */
#define SX_SXSIG_VERSION     1

/* ---- RFC 9162 section 2.1 Merkle tree (SHA-256) ------------------------- */

/* MTH({d}) = SHA-256(0x00 || d)  (section 2.1.1) */
int sx_merkle_leaf(const void *data, size_t len, uint8_t out[SX_HASH_LEN],
		   sx_err *err) SX_MUST_CHECK;
/* MTH(D[n]) over leaf hashes; n = 0 gives SHA-256(""). */
int sx_merkle_root(const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n, uint8_t out[SX_HASH_LEN],
		   sx_err *err) SX_MUST_CHECK;
/* The perfect subtrees of a tree, memoised level by level (O(n) hashes
 * once), so that each inclusion proof costs O(log^2 n) instead of O(n). */
typedef struct sx_mtree sx_mtree;
int sx_mtree_build(sx_mtree **out, const uint8_t (*leaves)[SX_HASH_LEN], uint64_t n,
		   sx_err *err) SX_MUST_CHECK;
/* PATH(index, D[n]) (section 2.1.3.1) into proof[0..max); *plen nodes. */
int sx_mtree_proof(const sx_mtree *t, uint64_t index, uint8_t (*proof)[SX_HASH_LEN], size_t max,
		   size_t *plen, sx_err *err) SX_MUST_CHECK;
void sx_mtree_free(sx_mtree *t);

/* The verification algorithm of section 2.1.3.2: 0 when the proof leads from
 * leaf_hash at index in a tree of n leaves to root; else SX_E_INTEGRITY
 * (the one proof sxfer checks is a file's leaf in its batch tree). */
int sx_merkle_verify_proof(const uint8_t leaf_hash[SX_HASH_LEN], uint64_t index, uint64_t n,
			   const uint8_t (*proof)[SX_HASH_LEN], size_t plen,
			   const uint8_t root[SX_HASH_LEN], sx_err *err) SX_MUST_CHECK;

/* ---- incremental per-file hasher --------------------------------------- */

/* Fed with pieces of any size; cuts a leaf at every multiple of chunk bytes
 * (the last leaf may be short; an empty file has no leaf). Keeps only the
 * compact range (one perfect-subtree root per set bit of the leaf count), so
 * memory is O(log n) and nothing is allocated after init. */
typedef struct sx_filehash {
	EVP_MD *md;
	EVP_MD_CTX *leaf; /* the open leaf: 0x00 || bytes so far */
	EVP_MD_CTX *node; /* interior nodes */
	uint32_t chunk;
	uint32_t in_leaf; /* bytes in the open leaf */
	uint64_t nleaves; /* complete leaves */
	uint64_t bytes;	  /* all bytes fed */
	uint8_t range[64][SX_HASH_LEN];
	unsigned depth; /* entries in range */
	bool ended;	/* a short leaf was added: nothing may follow */
} sx_filehash;

int sx_filehash_init(sx_filehash *h, uint32_t chunk, sx_err *err) SX_MUST_CHECK;
int sx_filehash_update(sx_filehash *h, const void *data, size_t len, sx_err *err) SX_MUST_CHECK;
/* Adds a leaf hashed elsewhere (sx_merkle_leaf of len bytes, len <= chunk;
 * shorter only for the file's last leaf), at a leaf boundary: the same tree
 * as feeding those bytes to sx_filehash_update. */
int sx_filehash_add_leaf(sx_filehash *h, const uint8_t leaf[SX_HASH_LEN], size_t len,
			 sx_err *err) SX_MUST_CHECK;
/* Root over the complete leaves so far (a stream checkpoint); does not
 * close the open leaf. *nleaves, *bytes: what the root covers. */
int sx_filehash_checkpoint(sx_filehash *h, uint8_t root[SX_HASH_LEN], uint64_t *nleaves,
			   uint64_t *bytes, sx_err *err) SX_MUST_CHECK;
/* Closes the open leaf (if any) and gives the file root. */
int sx_filehash_final(sx_filehash *h, uint8_t root[SX_HASH_LEN], uint64_t *nleaves, uint64_t *bytes,
		      sx_err *err) SX_MUST_CHECK;
void sx_filehash_free(sx_filehash *h);
/* Starts h (as sx_filehash_init) at a leaf boundary after nleaves leaves of
 * chunk bytes whose compact range is range[0..depth) (h->range, h->depth of
 * a hasher that had those leaves; depth must be the number of set bits of
 * nleaves): what follows builds the same tree as feeding every byte from
 * the start. A resumed transfer continues its file's root this way. */
int sx_filehash_resume(sx_filehash *h, uint32_t chunk, uint64_t nleaves,
		       const uint8_t (*range)[SX_HASH_LEN], unsigned depth,
		       sx_err *err) SX_MUST_CHECK;

/* ---- file descriptors and statements ------------------------------------ */

typedef struct sx_desc {
	uint8_t root[SX_HASH_LEN];
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	const char *path; /* relative, sx_path_check rules; not owned */
} sx_desc;

/* root 32 || size u64 || mtime_sec i64 || mtime_nsec u32 || path<2>
 * (big-endian). Returns the length, or -1 when it does not fit. */
#define SX_DESC_MAX (SX_HASH_LEN + 8 + 8 + 4 + 2 + SX_MPATH_MAX)
int sx_desc_encode(const sx_desc *d, uint8_t *out, size_t cap, size_t *len,
		   sx_err *err) SX_MUST_CHECK;
int sx_desc_leaf(const sx_desc *d, uint8_t out[SX_HASH_LEN], sx_err *err) SX_MUST_CHECK;

typedef enum sx_sig_kind {
	SX_KIND_BATCH = 1,
	SX_KIND_CHECKPOINT = 2,
} sx_sig_kind;

#define SX_STMT_BATCH_LEN (25 + SX_TID_LEN + 8 + 8 + 4 + 4 + SX_HASH_LEN)
/* "sxfer batch signature v1\0" || tid || batch u64 || time i64 || count u32
 * || chunk u32 || batch root. */
void sx_stmt_batch(const uint8_t tid[SX_TID_LEN], uint64_t batch, int64_t time, uint32_t count,
		   uint32_t chunk, const uint8_t root[SX_HASH_LEN], uint8_t out[SX_STMT_BATCH_LEN]);

#define SX_STMT_CHECKPOINT_MAX (27 + SX_TID_LEN + 2 + SX_MPATH_MAX + 4 + 8 + 8 + SX_HASH_LEN + 8)
/* "sxfer stream checkpoint v1\0" || tid || path<2> || chunk u32 || leaves
 * u64 || bytes u64 || root || time i64. */
int sx_stmt_checkpoint(const uint8_t tid[SX_TID_LEN], const char *path, uint32_t chunk,
		       uint64_t leaves, uint64_t bytes, const uint8_t root[SX_HASH_LEN],
		       int64_t time, uint8_t *out, size_t cap, size_t *len,
		       sx_err *err) SX_MUST_CHECK;

/* ---- signatures ---------------------------------------------------------- */

typedef enum sx_sigalg {
	SX_SIGALG_NONE = 0,
	SX_SIGALG_ECDSA_SHA256,	  /* "ecdsa-sha256": DER ECDSA-Sig-Value */
	SX_SIGALG_ED25519,	  /* "ed25519": RFC 8032 pure Ed25519 */
	SX_SIGALG_RSA_PSS_SHA256, /* "rsa-pss-sha256": MGF1-SHA-256, salt 32 */
} sx_sigalg;

const char *sx_sigalg_name(sx_sigalg a);
/* The one algorithm a key's type dictates; SX_SIGALG_NONE for others. */
sx_sigalg sx_sigalg_for_key(EVP_PKEY *key);

int sx_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t *sig, size_t *siglen,
	    sx_err *err) SX_MUST_CHECK;
/* sig_cap is the size of sig (SX_SIG_MAX is enough). A mismatch is
 * SX_E_INTEGRITY "signature does not verify". */
int sx_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen,
	      sx_err *err) SX_MUST_CHECK;

/* ---- .sxsig ------------------------------------------------------------- */

typedef struct sx_sxsig {
	sx_sig_kind kind;
	uint32_t chunk;
	uint64_t file_size;
	uint8_t file_root[SX_HASH_LEN];
	char path[SX_MPATH_MAX + 1];
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint8_t tid[SX_TID_LEN];
	uint64_t batch;
	uint32_t batch_files;
	uint32_t leaf_index;
	uint8_t proof[SX_PROOF_MAX][SX_HASH_LEN];
	size_t proof_len;
	uint8_t batch_root[SX_HASH_LEN];
	int64_t signed_time;
	sx_sigalg alg;
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
	STACK_OF(X509) * chain; /* owned; [0] is the signer */
} sx_sxsig;

/* Text armor (docs/SIGNATURES.md ".sxsig"); *out is malloc'd, NUL
 * terminated, at most SX_SXSIG_TEXT_MAX bytes. */
int sx_sxsig_encode(const sx_sxsig *s, char **out, size_t *len, sx_err *err) SX_MUST_CHECK;
/* Strict: a missing, unknown, repeated or misplaced key, bad hex or base64,
 * an oversized or non-canonical value is SX_E_INTEGRITY naming the field. */
int sx_sxsig_decode(const char *text, size_t len, sx_sxsig *s, sx_err *err) SX_MUST_CHECK;
void sx_sxsig_free(sx_sxsig *s);

/* The statement the signature covers: batch or checkpoint, by s->kind. */
int sx_sxsig_statement(const sx_sxsig *s, uint8_t *out, size_t cap, size_t *len,
		       sx_err *err) SX_MUST_CHECK;

/* Everything a verifier checks, in this order (docs/SIGNATURES.md
 * "Verifying a file"), each failure with its own reason:
 *   expect_path (when non-NULL) equals s->path      INTEGRITY "the .sxsig is for 'x'"
 *   size == s->file_size                             INTEGRITY "size differs: ..."
 *   file_root == s->file_root                        INTEGRITY "file content does not ..."
 *   inclusion proof to s->batch_root                 INTEGRITY "inclusion proof ..."
 *   signer chain through sx_policy_check (signer)    AUTH "signer certificate: ..."
 *   signature over the statement                     INTEGRITY "batch signature ..."
 *   signer CN == signer (when non-NULL)              AUTH "signed by 'x', expected 'y'"
 * On success the signer's CN goes to signer_name (may be NULL). */
int sx_sxsig_verify_file(const sx_sxsig *s, const uint8_t file_root[SX_HASH_LEN], uint64_t size,
			 const char *expect_path, const sx_policy *pol, const char *signer,
			 char signer_name[256], sx_err *err) SX_MUST_CHECK;

/* ---- batches ------------------------------------------------------------ */

typedef struct sx_batch {
	uint8_t tid[SX_TID_LEN];
	uint64_t number;
	int64_t time;
	uint32_t chunk;
	uint32_t count;
	uint8_t (*leaves)[SX_HASH_LEN]; /* descriptor leaf hashes, owned */
	uint8_t root[SX_HASH_LEN];
	sx_sigalg alg;
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
	sx_mtree *tree; /* perfect subtrees, built on the first proof (owned) */
} sx_batch;

/* Descriptor leaves, batch root, one signature over the batch statement. */
int sx_batch_sign(sx_batch *b, const sx_desc *descs, uint32_t n, uint32_t chunk,
		  const uint8_t tid[SX_TID_LEN], uint64_t number, int64_t time, EVP_PKEY *key,
		  sx_err *err) SX_MUST_CHECK;
/* The .sxsig of file i (its inclusion proof computed); chain is copied
 * (references taken). */
int sx_batch_sxsig(sx_batch *b, const sx_desc *descs, uint32_t i, STACK_OF(X509) * chain,
		   sx_sxsig *out, sx_err *err) SX_MUST_CHECK;
void sx_batch_free(sx_batch *b);

/* ---- receipts ----------------------------------------------------------- */

typedef struct sx_receipt_file {
	uint8_t root[SX_HASH_LEN];
	uint64_t size;
	char *path; /* owned */
} sx_receipt_file;

_Static_assert(SX_CERT_FP_LEN == SX_HASH_LEN, "a fingerprint is one SHA-256 hash");

typedef struct sx_receipt {
	uint8_t tid[SX_TID_LEN];
	uint64_t batch;
	uint8_t batch_root[SX_HASH_LEN];
	int64_t time;
	uint8_t sender_fp[SX_HASH_LEN];	  /* sx_cert_fp of the sender's certificate */
	uint8_t receiver_fp[SX_HASH_LEN]; /* sx_cert_fp of the receiver's certificate */
	uint32_t chunk;			  /* chunk size the file roots were computed with */
	uint32_t count;
	sx_receipt_file *files; /* owned, count entries */
	size_t files_cap;	/* room in files (sx_grow, at most SX_RECEIPT_FILES_MAX) */
	sx_sigalg alg;
	uint8_t sig[SX_SIG_MAX];
	size_t sig_len;
	STACK_OF(X509) * chain; /* owned; [0] is the receiver */
} sx_receipt;

/* Adds one acknowledged file (path copied). */
int sx_receipt_add(sx_receipt *r, const uint8_t root[SX_HASH_LEN], uint64_t size, const char *path,
		   sx_err *err) SX_MUST_CHECK;
/* "sxfer receipt v1\0" || ... (docs/SIGNATURES.md); *out malloc'd. */
int sx_receipt_statement(const sx_receipt *r, uint8_t **out, size_t *len,
			 sx_err *err) SX_MUST_CHECK;
/* Sets receiver_fp from chain[0], signs with key, keeps a copy of chain. */
int sx_receipt_sign(sx_receipt *r, EVP_PKEY *key, STACK_OF(X509) * chain,
		    sx_err *err) SX_MUST_CHECK;
int sx_receipt_encode(const sx_receipt *r, char **out, size_t *len, sx_err *err) SX_MUST_CHECK;
int sx_receipt_decode(const char *text, size_t len, sx_receipt *r, sx_err *err) SX_MUST_CHECK;
/* Receiver chain through the policy (role server), receiver_fp == chain[0],
 * sender_fp == expect_sender_fp when non-NULL, signature. */
int sx_receipt_verify(const sx_receipt *r, const sx_policy *pol, const uint8_t *expect_sender_fp,
		      sx_err *err) SX_MUST_CHECK;
void sx_receipt_free(sx_receipt *r);

#endif
