/* Writes the seed corpus of the targets whose inputs are binary: real
 * outputs of the encoders (HELLO, every control message), records sealed
 * with the fixed key (tests/fuzz/fuzzutil.h) as a stream and as the link
 * receives them, compressed record plaintexts, relative paths, and the bytes
 * each side of a real in-memory handshake sends. The text formats (.sxsig,
 * receipts, CSRs, certificates, the CA index) come from the sxfer binary:
 * see make_corpus.sh. Usage: sx_fuzz_seeds DIR (creates DIR/<target>/). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_compress.h"
#include "engine/channel/sx_link.h"
#include "engine/enroll/sx_enroll.h"
#include "engine/sign/sx_manifest.h"
#include "engine/chat/sx_chat.h"
#include "engine/wire/sx_wire.h"
#include "tests/fuzz/fuzzutil.h"

static const char *root;

static void seed(const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", root, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* A growable byte string for streams of records. */
typedef struct bytes {
	uint8_t *p;
	size_t len, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void check(int rc, const sx_err *err)
{
	if (rc < 0) {
		fprintf(stderr, "sx_fuzz_seeds: %s\n", err->msg);
		exit(1);
	}
}

static const char long_path[] = "media/2026/01/cam-01/clip-0001.mp4";
static uint8_t sig[72];

/* One of each control message, as the sender and the receiver send them. */
static size_t messages(sx_msg *m)
{
	static const char reason[] = "refused path 'a/../b': empty, '.' or '..' component";
	size_t n = 0;
	memset(sig, 0x30, sizeof(sig));
	m[n++] = (sx_msg){.type = SX_MSG_CONFIRM, .max_record = 16u << 20};
	m[n++] = (sx_msg){.type = SX_MSG_SESSION,
			  .transfer_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			  .flags = SX_SESSION_SIGNED,
			  .hash_chunk = 1u << 20};
	m[n++] = (sx_msg){.type = SX_MSG_FILE_BEGIN,
			  .file_id = 1,
			  .size = 123456789,
			  .mode = 0644,
			  .mtime_sec = 1767225600,
			  .mtime_nsec = 123456789,
			  .path = (const uint8_t *)long_path,
			  .path_len = sizeof(long_path) - 1};
	m[n++] = (sx_msg){.type = SX_MSG_FILE_BEGIN,
			  .file_id = 2,
			  .size = SX_SIZE_UNKNOWN,
			  .mode = 0600,
			  .path = (const uint8_t *)"live.ts",
			  .path_len = 7};
	m[n++] = (sx_msg){.type = SX_MSG_DIR,
			  .mode = 0755,
			  .mtime_sec = 1767225600,
			  .path = (const uint8_t *)"media/empty",
			  .path_len = 11};
	m[n] = (sx_msg){.type = SX_MSG_FILE_END, .file_id = 1, .size = 123456789};
	memset(m[n++].root, 0xab, 32);
	m[n++] = (sx_msg){.type = SX_MSG_BATCH,
			  .batch_no = 1,
			  .time = 1767225600,
			  .nfiles = 3,
			  .sig = sig,
			  .sig_len = sizeof(sig)};
	m[n++] = (sx_msg){.type = SX_MSG_CHECKPOINT,
			  .file_id = 2,
			  .leaves = 8,
			  .size = 8u << 20,
			  .time = 1767225600,
			  .sig = sig,
			  .sig_len = 64};
	m[n++] = (sx_msg){.type = SX_MSG_FILE_OK, .file_id = 1, .size = 123456789};
	m[n++] = (sx_msg){.type = SX_MSG_FILE_ERR,
			  .file_id = 3,
			  .err_class = SX_E_USAGE,
			  .reason = (const uint8_t *)reason,
			  .reason_len = sizeof(reason) - 1};
	m[n++] = (sx_msg){.type = SX_MSG_ERROR,
			  .err_class = SX_E_AUTH,
			  .reason = (const uint8_t *)"certificate revoked",
			  .reason_len = 19};
	m[n++] = (sx_msg){.type = SX_MSG_RECEIPT,
			  .batch_no = 1,
			  .time = 1767225601,
			  .sig = sig,
			  .sig_len = sizeof(sig)};
	return n;
}

static size_t encode(const sx_msg *m, uint8_t *out, size_t cap)
{
	sx_wbuf w = sx_wbuf_make(out, cap);
	sx_msg_encode(m, &w);
	if (w.overflow)
		abort();
	return w.len;
}

static void wire_and_hello(void)
{
	sx_msg m[16];
	uint8_t buf[1024];
	char name[32];
	size_t n = messages(m);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "msg-%02zu-type-%02x", i, m[i].type);
		seed("fuzz_wire", name, buf, encode(&m[i], buf, sizeof(buf)));
	}
	for (int s = 1; s <= 3; s++) {
		sx_hello h = {.version = SX_PROTO_VERSION,
			      .suite = (uint8_t)s,
			      .max_record = 16u << 20,
			      .rotate_bytes = 64ull << 30};
		uint8_t out[SX_HELLO_LEN];
		sx_hello_encode(&h, out);
		snprintf(name, sizeof(name), "hello-suite-%d", s);
		seed("fuzz_hello", name, out, sizeof(out));
	}
	static const char *const paths[] = {
	    "clip.mp4",
	    "media/2026/01/cam-01/clip-0001.mp4",
	    "a/b/c/d/e/f/g/h",
	    "..hidden",
	    "dir/.config",
	    "name with spaces.txt",
	    "unicode-é.bin",
	    "a/../b",
	    "/etc/passwd",
	    "a//b",
	    "./a",
	    "tab\tname",
	};
	for (size_t i = 0; i < SX_ARRAY_LEN(paths); i++) {
		snprintf(name, sizeof(name), "path-%02zu", i);
		seed("fuzz_path", name, paths[i], strlen(paths[i]));
	}
}

/* Seals a plaintext as one more record of the stream out. */
static void seal(sx_rdir *tx, bytes *out, uint8_t type, uint8_t flags, const void *pt, size_t n)
{
	uint8_t *rec = malloc(SX_REC_HDR_LEN + n + SX_REC_TAG_MAX);
	size_t len;
	sx_err err = {0};
	if (rec == NULL)
		abort();
	if (n)
		memcpy(rec + SX_REC_HDR_LEN, pt, n);
	check(sx_record_seal(tx, type, flags, rec, n, &len, &err), &err);
	put(out, rec, len);
	free(rec);
}

/* A receiver's view of a short transfer: SESSION, FILE_BEGIN, DATA
 * (plain and compressed) across a key update, FILE_END, BATCH, EOS. */
static void transfer_stream(sx_suite suite, bytes *out)
{
	sx_rdir tx;
	sx_msg m[16];
	uint8_t buf[1024], data[3000], z[3000];
	size_t zlen;
	sx_err err = {0};
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	messages(m);
	fz_rdir(&tx, suite);
	seal(&tx, out, SX_REC_CTRL, 0, buf, encode(&m[1], buf, sizeof(buf)));
	seal(&tx, out, SX_REC_CTRL, 0, buf, encode(&m[2], buf, sizeof(buf)));
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + (i >> 5));
	seal(&tx, out, SX_REC_DATA, 0, data, sizeof(data));
	memset(data, 'x', sizeof(data));
	if (cctx == NULL ||
	    sx_zrec_compress(cctx, SX_ZLEVEL_ON, data, sizeof(data), z, &zlen, &err) != 1)
		abort();
	seal(&tx, out, SX_REC_DATA, SX_REC_FLAG_COMPRESSED, z, zlen);
	seal(&tx, out, SX_REC_DATA, 0, data, 1500); /* crosses FZ_ROTATE */
	seal(&tx, out, SX_REC_CTRL, 0, buf, encode(&m[5], buf, sizeof(buf)));
	seal(&tx, out, SX_REC_CTRL, 0, buf, encode(&m[6], buf, sizeof(buf)));
	seal(&tx, out, SX_REC_EOS, 0, NULL, 0);
	sx_rdir_free(&tx);
	ZSTD_freeCCtx(cctx);
}

static void records(void)
{
	char name[48];
	for (uint8_t s = 0; s < 3; s++) {
		bytes b = {0};
		uint8_t head[3] = {s, 0, 0};
		put(&b, head, 2);
		transfer_stream(fz_suite(s), &b);
		snprintf(name, sizeof(name), "stream-%s", sx_suite_name(fz_suite(s)));
		seed("fuzz_record", name, b.p, b.len);
		/* The same stream as the link receives it, in pieces. */
		static const uint8_t pieces[] = {0, 1, 100};
		for (size_t i = 0; i < sizeof(pieces); i++) {
			b.len = 0;
			head[1] = pieces[i];
			head[2] = 255;
			put(&b, head, 3);
			transfer_stream(fz_suite(s), &b);
			snprintf(name, sizeof(name), "stream-%s-piece-%u",
				 sx_suite_name(fz_suite(s)), pieces[i]);
			seed("fuzz_link", name, b.p, b.len);
		}
		/* Round-trip mode: type, flags, bit to flip, plaintext. */
		static const char pt[] = "a plaintext that seals and opens";
		b.len = 0;
		uint8_t rt[6] = {s, 1, SX_REC_DATA, 0, 0, 77};
		put(&b, rt, sizeof(rt));
		put(&b, pt, sizeof(pt) - 1);
		snprintf(name, sizeof(name), "seal-open-%s", sx_suite_name(fz_suite(s)));
		seed("fuzz_record", name, b.p, b.len);
		free(b.p);
	}
}

static void zstd_records(void)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	static uint8_t src[64 * 1024], z[64 * 1024];
	static const size_t sizes[] = {100, 4096, 65536};
	char name[48];
	sx_err err = {0};
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)("sxfer zstd record "[i % 18] + (i / 4096));
	for (size_t i = 0; i < SX_ARRAY_LEN(sizes); i++) {
		size_t zlen;
		if (cctx == NULL ||
		    sx_zrec_compress(cctx, SX_ZLEVEL_ON, src, sizes[i], z + 1, &zlen, &err) != 1)
			abort();
		z[0] = 0; /* no limit */
		snprintf(name, sizeof(name), "record-%zu", sizes[i]);
		seed("fuzz_zstd", name, z, zlen + 1);
	}
	ZSTD_freeCCtx(cctx);
}

/* Runs a client and a server link against each other in memory and keeps
 * what each one sends, until both are ready. */
static void handshake(void)
{
	const sx_identity *srv, *cli;
	sx_chan_ctx *sctx, *cctx;
	sx_link *side[2];
	bytes sent[2] = {{0}, {0}};
	sx_err err = {0};
	fz_identities(&srv, &cli);
	sx_chan_cfg scfg = {.server = true, .id = srv, .max_record = 1u << 20};
	sx_chan_cfg ccfg = {.id = cli, .server_name = FZ_SERVER_NAME, .max_record = 1u << 20};
	check(sx_chan_ctx_new(&sctx, &scfg, &err), &err);
	check(sx_chan_ctx_new(&cctx, &ccfg, &err), &err);
	for (int i = 0; i < 2; i++) {
		side[i] = calloc(1, sizeof(sx_link));
		if (side[i] == NULL)
			abort();
		check(sx_link_init(side[i], i == 0 ? sctx : cctx, &err), &err);
	}
	uint8_t head = 0;
	put(&sent[0], &head, 1); /* the server's input: what the client sent */
	head = 1;
	put(&sent[1], &head, 1); /* the client's input: what the server sent */
	for (int round = 0; round < 16 && !(side[0]->ready && side[1]->ready); round++) {
		for (int from = 0; from < 2; from++) {
			sx_link *a = side[from], *b = side[!from];
			const uint8_t *out;
			size_t n;
			sx_link_hs_output(a, &out, &n);
			if (n == 0)
				continue;
			put(&sent[!from], out, n);
			uint8_t *buf;
			size_t room;
			sx_link_hs_recv_buf(b, &buf, &room);
			if (n > room)
				abort();
			memcpy(buf, out, n);
			sx_link_hs_sent(a);
			if (!b->ready)
				check(sx_link_hs_input(b, n, &err), &err);
		}
	}
	if (!side[0]->ready || !side[1]->ready) {
		fprintf(stderr, "sx_fuzz_seeds: the in-memory handshake did not finish\n");
		exit(1);
	}
	seed("fuzz_tls", "client-flights", sent[0].p, sent[0].len);
	seed("fuzz_tls", "server-flights", sent[1].p, sent[1].len);
	sent[0].p[0] = 2 << 1; /* the same, in pieces of 122 bytes */
	seed("fuzz_tls", "client-flights-pieces", sent[0].p, sent[0].len);
	for (int i = 0; i < 2; i++) {
		sx_link_free(side[i]);
		free(side[i]);
		free(sent[i].p);
	}
	sx_chan_ctx_free(sctx);
	sx_chan_ctx_free(cctx);
}

static void checkpoint(void)
{
	const sx_identity *srv, *cli;
	static const uint8_t tid[SX_TID_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
	uint8_t root[SX_HASH_LEN];
	uint8_t stmt[SX_STMT_CHECKPOINT_MAX];
	size_t slen = 0;
	static sx_sxsig s;
	char *text;
	size_t len;
	sx_err err = {0};
	fz_identities(&srv, &cli);
	memset(root, 0x5a, sizeof(root));
	/* As the receiver keeps one: the checkpoint's fields and the signer's
	 * signature over its statement. */
	snprintf(s.path, sizeof(s.path), "live.raw");
	s.kind = SX_KIND_CHECKPOINT;
	s.chunk = 65536;
	s.file_size = 48ull * 65536;
	memcpy(s.file_root, root, SX_HASH_LEN);
	memcpy(s.batch_root, root, SX_HASH_LEN);
	memcpy(s.tid, tid, SX_TID_LEN);
	s.batch_files = 1;
	s.signed_time = 1767225600;
	s.alg = sx_sigalg_for_key(cli->key);
	check(sx_sxsig_statement(&s, stmt, sizeof(stmt), &slen, &err), &err);
	check(sx_sign(cli->key, stmt, slen, s.sig, &s.sig_len, &err), &err);
	check(sx_chain_copy(&s.chain, cli->chain, &err), &err);
	check(sx_sxsig_encode(&s, &text, &len, &err), &err);
	seed("fuzz_sxsig", "checkpoint.sxsig", text, len);
	free(text);
	sx_sxsig_free(&s);
}

static void enroll_seed(const char *name, const sx_enroll_msg *m)
{
	static uint8_t buf[64 * 1024];
	size_t n = sx_enroll_msg_encode(m, buf, sizeof(buf));
	if (n == 0)
		abort();
	seed("fuzz_enroll", name, buf, n);
}

/* One of each enrollment message, with real certificates and a real CSR. */
static void enroll_messages(void)
{
	static const char token[] = "sxfer-token-example-0123456789abcdef";
	static const char reason[] = "token already used";
	const sx_identity *srv, *cli;
	unsigned char *leaf = NULL, *root = NULL, *csr = NULL;
	X509_REQ *req = NULL;
	fz_identities(&srv, &cli);
	/* A CSR as `sxfer id new` makes, built here with OpenSSL. */
	req = X509_REQ_new();
	if (req == NULL ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)"dev-01", -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, cli->key) != 1 ||
	    X509_REQ_sign(req, cli->key, EVP_sha256()) <= 0)
		abort();
	int leaf_len = i2d_X509(sk_X509_value(cli->chain, 0), &leaf);
	int root_len = i2d_X509(sk_X509_value(cli->anchors, 0), &root);
	int csr_len = i2d_X509_REQ(req, &csr);
	if (leaf_len <= 0 || root_len <= 0 || csr_len <= 0)
		abort();
	enroll_seed("enroll", &(sx_enroll_msg){.type = SX_EMSG_ENROLL,
					       .token = (const uint8_t *)token,
					       .token_len = strlen(token),
					       .csr = csr,
					       .csr_len = (size_t)csr_len});
	enroll_seed("renew", &(sx_enroll_msg){
				 .type = SX_EMSG_RENEW, .csr = csr, .csr_len = (size_t)csr_len});
	enroll_seed("crl-request", &(sx_enroll_msg){.type = SX_EMSG_CRL_REQ});
	enroll_seed("issued", &(sx_enroll_msg){.type = SX_EMSG_ISSUED,
					       .leaf = leaf,
					       .leaf_len = (size_t)leaf_len,
					       .root = root,
					       .root_len = (size_t)root_len});
	enroll_seed("error", &(sx_enroll_msg){.type = SX_EMSG_ERROR,
					      .err_class = SX_E_AUTH,
					      .reason = (const uint8_t *)reason,
					      .reason_len = strlen(reason)});
	OPENSSL_free(leaf);
	OPENSSL_free(root);
	OPENSSL_free(csr);
	X509_REQ_free(req);
}

/* fuzz_chat: chat messages (first byte 0) and a transcript (first byte 1). */
static void chat_seed_msg(const char *name, const sx_chat_msg *m)
{
	static uint8_t buf[8192];
	sx_wbuf w = sx_wbuf_make(buf + 1, sizeof(buf) - 1);
	sx_chat_msg_encode(m, &w);
	if (w.overflow)
		abort();
	buf[0] = 0;
	seed("fuzz_chat", name, buf, w.len + 1);
}

static void chat(void)
{
	static sx_chat_msg m;
	static const char text[] =
	    "\x01{\"type\":\"transcript\",\"v\":1,\"owner\":\"bob\",\"role\":\"participant\","
	    "\"time\":1735689600000}\n"
	    "{\"type\":\"head\",\"conv\":\"#ops\",\"n\":2,\"head\":"
	    "\"55ac5d9d05757756168400b4a577c450a772eb5f531752c256582749abf299cf\"}\n"
	    "{\"type\":\"gap\",\"conv\":\"@alice,bob\",\"n\":4,\"reason\":\"expired\"}\n";
	uint8_t sig[64];
	memset(sig, 0x5a, sizeof(sig));
	memset(&m, 0, sizeof(m));
	m.type = SX_MSG_CHAT_JOIN;
	m.version = 1;
	m.room = "ops";
	m.room_len = 3;
	chat_seed_msg("join", &m);
	/* a JOIN with the tips of two direct conversations */
	uint8_t tips[128];
	sx_wbuf tw = sx_wbuf_make(tips, sizeof(tips));
	sx_chat_tip_put(&tw, "@alice,bob", 3);
	sx_chat_tip_put(&tw, "@alice,bob,carol", 1);
	m.tips = tips;
	m.tips_len = tw.len;
	m.ntips = 2;
	chat_seed_msg("join-tips", &m);
	m.tips = NULL;
	m.tips_len = 0;
	m.ntips = 0;
	m.type = SX_MSG_CHAT_POST;
	snprintf(m.post.conv, sizeof(m.post.conv), "%s", "@alice,bob");
	snprintf(m.post.author, sizeof(m.post.author), "%s", "alice");
	m.post.seq = 1;
	m.post.n = 1;
	m.post.text = (const uint8_t *)"hello";
	m.post.text_len = 5;
	m.post.alg = SX_SIGALG_ED25519;
	memcpy(m.post.sig, sig, sizeof(sig));
	m.post.sig_len = sizeof(sig);
	chat_seed_msg("post", &m);
	m.type = SX_MSG_CHAT_DELIVER;
	chat_seed_msg("deliver", &m);
	m.type = SX_MSG_CHAT_REFUSED;
	snprintf(m.conv, sizeof(m.conv), "%s", "#ops");
	m.why = SX_CHAT_STALE;
	m.reason = "stale";
	m.reason_len = 5;
	chat_seed_msg("refused", &m);
	m.type = SX_MSG_CHAT_NOTICE;
	m.kind = SX_CHAT_N_JOINED;
	snprintf(m.name, sizeof(m.name), "%s", "bob");
	chat_seed_msg("notice", &m);
	m.type = SX_MSG_CHAT_RECEIPT;
	snprintf(m.receipt.conv, sizeof(m.receipt.conv), "%s", "#ops");
	snprintf(m.receipt.signer, sizeof(m.receipt.signer), "%s", "bob");
	m.receipt.alg = SX_SIGALG_ED25519;
	memcpy(m.receipt.sig, sig, sizeof(sig));
	m.receipt.sig_len = sizeof(sig);
	chat_seed_msg("receipt", &m);
	seed("fuzz_chat", "transcript", text, sizeof(text) - 1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: sx_fuzz_seeds DIR\n");
		return 2;
	}
	root = argv[1];
	if (mkdir(root, 0755) < 0 && errno != EEXIST) {
		perror(root);
		return 1;
	}
	wire_and_hello();
	records();
	zstd_records();
	handshake();
	checkpoint();
	enroll_messages();
	chat();
	return 0;
}
