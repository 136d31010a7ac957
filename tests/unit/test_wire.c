#include "testutil.h"

#include <string.h>

#include "engine/wire/sx_wire.h"

static void test_cursor_bounds(void **state)
{
	(void)state;
	const uint8_t b[] = {0x01, 0x02, 0x03, 0x00, 0x02, 'h', 'i'};
	sx_cur c = sx_cur_make(b, sizeof(b));
	uint16_t v16;
	uint8_t v8;
	const uint8_t *p;
	size_t n;
	assert_int_equal(sx_cur_u16(&c, &v16), 0);
	assert_int_equal(v16, 0x0102);
	assert_int_equal(sx_cur_u8(&c, &v8), 0);
	assert_int_equal(sx_cur_block16(&c, &p, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "hi", 2);
	assert_int_equal(sx_cur_end(&c), 0);
	assert_int_equal(sx_cur_u8(&c, &v8), -1);
	/* A block longer than what is left is refused without moving. */
	const uint8_t bad[] = {0x00, 0x05, 'a'};
	c = sx_cur_make(bad, sizeof(bad));
	assert_int_equal(sx_cur_block16(&c, &p, &n), -1);
	uint64_t v64;
	c = sx_cur_make(b, 7);
	assert_int_equal(sx_cur_u64(&c, &v64), -1);
}

static void test_writer_overflow(void **state)
{
	(void)state;
	uint8_t buf[5];
	sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
	sx_put_u32(&w, 0x01020304);
	assert_false(w.overflow);
	sx_put_u16(&w, 1);
	assert_true(w.overflow);
	assert_int_equal(w.len, 4);
}

static void roundtrip(const sx_msg *m)
{
	uint8_t buf[8192];
	sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
	sx_msg out;
	sx_err err = {0};
	sx_msg_encode(m, &w);
	assert_false(w.overflow);
	assert_int_equal(sx_msg_decode(buf, w.len, &out, &err), 0);
	assert_int_equal(out.type, m->type);
	assert_int_equal(out.file_id, m->file_id);
	assert_int_equal(out.size, m->size);
	assert_int_equal(out.mode, m->mode);
	assert_int_equal(out.mtime_sec, m->mtime_sec);
	assert_int_equal(out.mtime_nsec, m->mtime_nsec);
	assert_int_equal(out.path_len, m->path_len);
	if (m->path_len)
		assert_memory_equal(out.path, m->path, m->path_len);
	assert_int_equal(out.reason_len, m->reason_len);
	assert_memory_equal(out.root, m->root, sizeof(m->root));
	assert_memory_equal(out.transfer_id, m->transfer_id, sizeof(m->transfer_id));
	assert_int_equal(out.flags, m->flags);
	assert_int_equal(out.hash_chunk, m->hash_chunk);
	assert_int_equal(out.batch_no, m->batch_no);
	assert_int_equal(out.time, m->time);
	assert_int_equal(out.nfiles, m->nfiles);
	assert_int_equal(out.leaves, m->leaves);
	assert_int_equal(out.sig_len, m->sig_len);
	/* Every strict prefix is refused, and so is one byte more. */
	for (size_t cut = 0; cut < w.len; cut++) {
		sx_err_clear(&err);
		assert_int_equal(sx_msg_decode(buf, cut, &out, &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
	}
	buf[w.len] = 0;
	sx_err_clear(&err);
	assert_int_equal(sx_msg_decode(buf, w.len + 1, &out, &err), -1);
}

static void test_messages_roundtrip(void **state)
{
	(void)state;
	const char *p = "media/2026/clip.mp4";
	sx_msg begin = {.type = SX_MSG_FILE_BEGIN,
			.file_id = 7,
			.size = 1ull << 40,
			.mode = 0640,
			.mtime_sec = -5,
			.mtime_nsec = 999999999,
			.path = (const uint8_t *)p,
			.path_len = strlen(p)};
	sx_msg dir = {.type = SX_MSG_DIR,
		      .mode = 0755,
		      .mtime_sec = 1700000000,
		      .path = (const uint8_t *)"media",
		      .path_len = 5};
	sx_msg end = {.type = SX_MSG_FILE_END, .file_id = 7, .size = 12345};
	sx_msg okm = {.type = SX_MSG_FILE_OK, .file_id = 7, .size = 12345};
	sx_msg ferr = {.type = SX_MSG_FILE_ERR,
		       .file_id = 7,
		       .err_class = SX_E_IO,
		       .reason = (const uint8_t *)"disk full",
		       .reason_len = 9};
	sx_msg fatal = {.type = SX_MSG_ERROR,
			.err_class = SX_E_INTEGRITY,
			.reason = (const uint8_t *)"bad",
			.reason_len = 3};
	sx_msg conf = {.type = SX_MSG_CONFIRM, .max_record = 1 << 24};
	const uint8_t sig[] = {1, 2, 3, 4, 5};
	sx_msg sess = {.type = SX_MSG_SESSION, .flags = SX_SESSION_SIGNED, .hash_chunk = 1 << 20};
	memset(sess.transfer_id, 0xab, sizeof(sess.transfer_id));
	sx_msg batch = {.type = SX_MSG_BATCH,
			.batch_no = 3,
			.time = 1790000000,
			.nfiles = 1000,
			.sig = sig,
			.sig_len = sizeof(sig)};
	sx_msg ckpt = {.type = SX_MSG_CHECKPOINT,
		       .file_id = 2,
		       .leaves = 64,
		       .size = 64 << 20,
		       .time = 1790000001,
		       .sig = sig,
		       .sig_len = sizeof(sig)};
	sx_msg rcpt = {.type = SX_MSG_RECEIPT,
		       .batch_no = 3,
		       .time = 1790000002,
		       .sig = sig,
		       .sig_len = sizeof(sig)};
	memset(end.root, 0x5a, sizeof(end.root));
	roundtrip(&sess);
	roundtrip(&batch);
	roundtrip(&ckpt);
	roundtrip(&rcpt);
	roundtrip(&begin);
	roundtrip(&dir);
	roundtrip(&end);
	roundtrip(&okm);
	roundtrip(&ferr);
	roundtrip(&fatal);
	roundtrip(&conf);
}

static void test_unknown_and_bad_fields(void **state)
{
	(void)state;
	sx_msg m;
	sx_err err = {0};
	const uint8_t unknown[] = {0x7f};
	assert_int_equal(sx_msg_decode(unknown, 1, &m, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	/* nanoseconds out of range */
	uint8_t buf[64];
	sx_wbuf w = sx_wbuf_make(buf, sizeof(buf));
	sx_msg d = {.type = SX_MSG_DIR,
		    .mtime_nsec = 1000000000u,
		    .path = (const uint8_t *)"a",
		    .path_len = 1};
	sx_msg_encode(&d, &w);
	sx_err_clear(&err);
	assert_int_equal(sx_msg_decode(buf, w.len, &m, &err), -1);
}

/* Known-answer bytes (docs/PROTOCOL.md field order): each field lands where
 * the document puts it, every truncation and one extra byte are refused. */
static void test_decode_field_order(void **state)
{
	(void)state;
	static const uint8_t ckpt[] = {
	    SX_MSG_CHECKPOINT,
	    0x00,
	    0x00,
	    0x00,
	    0x02, /* file_id */
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x40, /* leaves */
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x04,
	    0x00,
	    0x00,
	    0x00, /* size */
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x6a,
	    0xb1,
	    0x2e,
	    0x81, /* time */
	    0x00,
	    0x03,
	    0xaa,
	    0xbb,
	    0xcc, /* sig<2> */
	};
	static const uint8_t begin[] = {
	    SX_MSG_FILE_BEGIN,
	    0x00,
	    0x00,
	    0x00,
	    0x07, /* file_id */
	    0x00,
	    0x00,
	    0x01,
	    0x00,
	    0x00,
	    0x00,
	    0x00,
	    0x00, /* size */
	    0x00,
	    0x00,
	    0x01,
	    0xa0, /* mode */
	    0xff,
	    0xff,
	    0xff,
	    0xff,
	    0xff,
	    0xff,
	    0xff,
	    0xfb, /* mtime_sec */
	    0x3b,
	    0x9a,
	    0xc9,
	    0xff, /* mtime_nsec */
	    0x00,
	    0x01,
	    'a', /* path<2> */
	};
	uint8_t buf[64];
	sx_msg m;
	sx_err err = {0};
	assert_int_equal(sx_msg_decode(ckpt, sizeof(ckpt), &m, &err), 0);
	assert_int_equal(m.file_id, 2);
	assert_int_equal(m.leaves, 64);
	assert_int_equal(m.size, 64 << 20);
	assert_int_equal(m.time, 0x6ab12e81);
	assert_int_equal(m.sig_len, 3);
	assert_int_equal(m.sig[0], 0xaa);
	assert_int_equal(sx_msg_decode(begin, sizeof(begin), &m, &err), 0);
	assert_int_equal(m.file_id, 7);
	assert_int_equal(m.size, 1ull << 40);
	assert_int_equal(m.mode, 0640);
	assert_int_equal(m.mtime_sec, -5);
	assert_int_equal(m.mtime_nsec, 999999999);
	assert_int_equal(m.path_len, 1);
	for (size_t cut = 0; cut < sizeof(ckpt); cut++)
		assert_int_equal(sx_msg_decode(ckpt, cut, &m, &err), -1);
	for (size_t cut = 0; cut < sizeof(begin); cut++)
		assert_int_equal(sx_msg_decode(begin, cut, &m, &err), -1);
	memcpy(buf, ckpt, sizeof(ckpt));
	buf[sizeof(ckpt)] = 0;
	assert_int_equal(sx_msg_decode(buf, sizeof(ckpt) + 1, &m, &err), -1);
}

/* docs/PROTOCOL.md, "Pull: GET and LIST", test vectors: the same hex. */
#define V_GET_TWO    "300000000100100000001c7368617265642f6269672e62696e0063616d2d30312f636f6e666967"
#define V_GET_SINGLE "300000000300000000000e7368617265642f6269672e62696e"
#define V_LIST_TOP   "31000000000000"
#define V_LIST_PATH  "3100000000000d7368617265642f747265652f61"
#define V_ENTRY_FILE                                                                               \
	"32000000020000000000010001000001a0000000005e0d5da5075bcd1500117368617265642f747265"       \
	"652f612f6f6e65"
#define V_ENTRY_DIR                                                                                \
	"32000000010000000000000000000001ed000000006955b90000000000000f7368617265642f747265"       \
	"652f612f62"
#define V_ERROR_MISSING                                                                            \
	"22050028277368617265642f6e6f7468696e67273a206e6f20737563682066696c65206f7220666f6c646572"

/* m encodes to exactly hex; hex decodes to m's fields; every truncation of
 * hex and hex with one byte more are refused as integrity failures. */
static void vector(const sx_msg *m, const char *hex)
{
	uint8_t want[256], got[256];
	long n = sx_test_unhex(hex, want, sizeof(want) - 1);
	assert_true(n > 0);
	sx_wbuf w = sx_wbuf_make(got, sizeof(got));
	sx_msg_encode(m, &w);
	assert_false(w.overflow);
	assert_int_equal(w.len, n);
	assert_memory_equal(got, want, (size_t)n);
	sx_msg out;
	sx_err err = {0};
	assert_int_equal(sx_msg_decode(want, (size_t)n, &out, &err), 0);
	assert_int_equal(out.type, m->type);
	assert_int_equal(out.flags, m->flags);
	assert_int_equal(out.chunk, m->chunk);
	assert_int_equal(out.size, m->size);
	assert_int_equal(out.mode, m->mode);
	assert_int_equal(out.mtime_sec, m->mtime_sec);
	assert_int_equal(out.mtime_nsec, m->mtime_nsec);
	assert_int_equal(out.err_class, m->err_class);
	assert_int_equal(out.path_len, m->path_len);
	if (m->path_len)
		assert_memory_equal(out.path, m->path, m->path_len);
	assert_int_equal(out.reason_len, m->reason_len);
	if (m->reason_len)
		assert_memory_equal(out.reason, m->reason, m->reason_len);
	for (long cut = 0; cut < n; cut++) {
		sx_err_clear(&err);
		assert_int_equal(sx_msg_decode(want, (size_t)cut, &out, &err), -1);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
	}
	want[n] = 0;
	sx_err_clear(&err);
	assert_int_equal(sx_msg_decode(want, (size_t)n + 1, &out, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
}

static void test_pull_vectors(void **state)
{
	(void)state;
	static const char two[] = "shared/big.bin\0cam-01/config";
	const sx_msg get_two = {.type = SX_MSG_GET,
				.flags = SX_GET_SIGNED,
				.chunk = 1u << 20,
				.path = (const uint8_t *)two,
				.path_len = sizeof(two) - 1};
	const sx_msg get_single = {.type = SX_MSG_GET,
				   .flags = SX_GET_SIGNED | SX_GET_SINGLE,
				   .path = (const uint8_t *)"shared/big.bin",
				   .path_len = 14};
	const sx_msg list_top = {.type = SX_MSG_LIST};
	const sx_msg list_path = {
	    .type = SX_MSG_LIST, .path = (const uint8_t *)"shared/tree/a", .path_len = 13};
	const sx_msg entry_file = {.type = SX_MSG_LIST_ENTRY,
				   .flags = SX_LIST_SXSIG,
				   .size = 65537,
				   .mode = 0640,
				   .mtime_sec = 1577934245,
				   .mtime_nsec = 123456789,
				   .path = (const uint8_t *)"shared/tree/a/one",
				   .path_len = 17};
	const sx_msg entry_dir = {.type = SX_MSG_LIST_ENTRY,
				  .flags = SX_LIST_DIR,
				  .mode = 0755,
				  .mtime_sec = 1767225600,
				  .path = (const uint8_t *)"shared/tree/a/b",
				  .path_len = 15};
	const char *why = "'shared/nothing': no such file or folder";
	const sx_msg missing = {.type = SX_MSG_ERROR,
				.err_class = SX_E_IO,
				.reason = (const uint8_t *)why,
				.reason_len = strlen(why)};
	vector(&get_two, V_GET_TWO);
	vector(&get_single, V_GET_SINGLE);
	vector(&list_top, V_LIST_TOP);
	vector(&list_path, V_LIST_PATH);
	vector(&entry_file, V_ENTRY_FILE);
	vector(&entry_dir, V_ENTRY_DIR);
	vector(&missing, V_ERROR_MISSING);

	/* The paths of a GET, one NUL between each. */
	uint8_t b[64];
	sx_msg m;
	sx_err err = {0};
	size_t at = 0, len;
	const uint8_t *p;
	long n = sx_test_unhex(V_GET_TWO, b, sizeof(b));
	assert_true(n > 0);
	assert_int_equal(sx_msg_decode(b, (size_t)n, &m, &err), 0);
	assert_int_equal(sx_msg_next_path(&m, &at, &p, &len), 1);
	assert_int_equal(len, 14);
	assert_memory_equal(p, "shared/big.bin", 14);
	assert_int_equal(sx_msg_next_path(&m, &at, &p, &len), 1);
	assert_int_equal(len, 13);
	assert_memory_equal(p, "cam-01/config", 13);
	assert_int_equal(sx_msg_next_path(&m, &at, &p, &len), 0);
	at = 0;
	n = sx_test_unhex(V_GET_SINGLE, b, sizeof(b));
	assert_int_equal(sx_msg_decode(b, (size_t)n, &m, &err), 0);
	assert_int_equal(sx_msg_next_path(&m, &at, &p, &len), 1);
	assert_int_equal(len, 14);
	assert_int_equal(sx_msg_next_path(&m, &at, &p, &len), 0);
	at = 0;
	n = sx_test_unhex(V_LIST_TOP, b, sizeof(b));
	assert_int_equal(sx_msg_decode(b, (size_t)n, &m, &err), 0);
	assert_int_equal(sx_msg_next_path(&m, &at, &p, &len), 0);
}

/* A GET carries at most SX_GET_PATHS_MAX bytes of paths; a LIST_ENTRY's
 * nanoseconds stay below 10^9. */
/* docs/PROTOCOL.md, "Resume and re-sending", test vectors. */
#define V_QUERY "1600000001000000002ee000000014636c6970732f63616d30372d303931352e6d7034"
#define V_OFFER_PARTIAL                                                                            \
	"2400000001010000000000000004000000000000000c3b469d6b2565374bf3f9d7405627a59e3dba9a32"     \
	"07f3c52b06db08e7190e1f14"
#define V_OFFER_EXISTS                                                                             \
	"2400000002020000000100000000000000000000002800000000000000000000000000000000000000"       \
	"00000000000000000000000000"
#define V_FILE_RESUME                                                                              \
	"17000000070000000000000028000000000000000c3b469d6b2565374bf3f9d7405627a59e3dba9a3207"     \
	"f3c52b06db08e7190e1f14000001a0000000005e0d5da5075bcd150005762e62696e"
#define V_FILE_SAME                                                                                \
	"180000000800000000000000286991ac557edb99afad8036b23c8b55ff8b74fc45ba3ef0e01272d49483"     \
	"6417bb000001a0000000005e0d5da5075bcd150005762e62696e"
#define V_ROOT3	 "3b469d6b2565374bf3f9d7405627a59e3dba9a3207f3c52b06db08e7190e1f14"
#define V_ROOT10 "6991ac557edb99afad8036b23c8b55ff8b74fc45ba3ef0e01272d494836417bb"

/* The fields vector() does not compare. */
static void resume_fields(const char *hex, uint32_t id, uint8_t kind, uint32_t leaf, uint64_t from,
			  const char *root_hex)
{
	uint8_t b[256], root[32] = {0};
	long n = sx_test_unhex(hex, b, sizeof(b));
	sx_msg m;
	sx_err err = {0};
	assert_int_equal(sx_msg_decode(b, (size_t)n, &m, &err), 0);
	assert_int_equal(m.file_id, id);
	assert_int_equal(m.kind, kind);
	assert_int_equal(m.leaf, leaf);
	assert_int_equal(m.from, from);
	if (root_hex != NULL)
		assert_int_equal(sx_test_unhex(root_hex, root, sizeof(root)), 32);
	assert_memory_equal(m.root, root, 32);
}

/* One byte of b at off set to v must make the decoder refuse it (class 4). */
static void refused_with(const char *hex, size_t off, uint8_t v)
{
	uint8_t b[256];
	long n = sx_test_unhex(hex, b, sizeof(b));
	sx_msg m;
	sx_err err = {0};
	b[off] = v;
	assert_int_equal(sx_msg_decode(b, (size_t)n, &m, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
}

static void test_resume_vectors(void **state)
{
	(void)state;
	uint8_t r3[32], r10[32];
	assert_int_equal(sx_test_unhex(V_ROOT3, r3, sizeof(r3)), 32);
	assert_int_equal(sx_test_unhex(V_ROOT10, r10, sizeof(r10)), 32);
	static const char clip[] = "clips/cam07-0915.mp4";
	sx_msg q = {.type = SX_MSG_QUERY,
		    .file_id = 1,
		    .size = 786432000,
		    .path = (const uint8_t *)clip,
		    .path_len = sizeof(clip) - 1};
	sx_msg partial = {
	    .type = SX_MSG_OFFER, .file_id = 1, .kind = SX_OFFER_PARTIAL, .leaf = 4, .from = 12};
	memcpy(partial.root, r3, 32);
	sx_msg exists = {.type = SX_MSG_OFFER,
			 .file_id = 2,
			 .kind = SX_OFFER_EXISTS,
			 .flags = SX_OFFER_OVERWRITE,
			 .from = 40};
	sx_msg resume = {.type = SX_MSG_FILE_RESUME,
			 .file_id = 7,
			 .size = 40,
			 .from = 12,
			 .mode = 0640,
			 .mtime_sec = 1577934245,
			 .mtime_nsec = 123456789,
			 .path = (const uint8_t *)"v.bin",
			 .path_len = 5};
	memcpy(resume.root, r3, 32);
	sx_msg same = resume;
	same.type = SX_MSG_FILE_SAME;
	same.file_id = 8;
	same.from = 0;
	memcpy(same.root, r10, 32);
	vector(&q, V_QUERY);
	vector(&partial, V_OFFER_PARTIAL);
	vector(&exists, V_OFFER_EXISTS);
	vector(&resume, V_FILE_RESUME);
	vector(&same, V_FILE_SAME);
	resume_fields(V_OFFER_PARTIAL, 1, SX_OFFER_PARTIAL, 4, 12, V_ROOT3);
	resume_fields(V_OFFER_EXISTS, 2, SX_OFFER_EXISTS, 0, 40, NULL);
	resume_fields(V_FILE_RESUME, 7, 0, 0, 12, V_ROOT3);
	resume_fields(V_FILE_SAME, 8, 0, 0, 0, V_ROOT10);
	/* OFFER: kind 3; an unknown flag; PARTIAL from 13 (not whole leaves);
	 * PARTIAL of leaf 0; EXISTS with a root but no leaf; NONE with a root. */
	refused_with(V_OFFER_PARTIAL, 5, 3);
	refused_with(V_OFFER_EXISTS, 9, 3);
	refused_with(V_OFFER_PARTIAL, 21, 13);
	refused_with(V_OFFER_PARTIAL, 13, 0);
	refused_with(V_OFFER_EXISTS, 22, 1);
	refused_with(V_OFFER_PARTIAL, 5, 0);
	/* FILE_RESUME from 0, from = size; FILE_SAME and QUERY of a stream. */
	refused_with(V_FILE_RESUME, 20, 0);
	refused_with(V_FILE_RESUME, 20, 40);
	uint8_t b[256];
	long n = sx_test_unhex(V_QUERY, b, sizeof(b));
	memset(b + 5, 0xff, 8);
	sx_msg m;
	sx_err err = {0};
	assert_int_equal(sx_msg_decode(b, (size_t)n, &m, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
}

static void test_pull_limits(void **state)
{
	(void)state;
	static uint8_t get[11 + SX_GET_PATHS_MAX + 1];
	const size_t max = SX_GET_PATHS_MAX;
	sx_msg m;
	sx_err err = {0};
	assert_int_equal(SX_GET_PATHS_MAX, 32768);
	memset(get, 'a', sizeof(get));
	get[0] = SX_MSG_GET;
	memset(get + 1, 0, 8); /* flags, chunk */
	get[9] = (uint8_t)(max >> 8);
	get[10] = (uint8_t)max;
	assert_int_equal(sx_msg_decode(get, 11 + max, &m, &err), 0);
	assert_int_equal(m.path_len, max);
	get[9] = (uint8_t)((max + 1) >> 8);
	get[10] = (uint8_t)(max + 1);
	assert_int_equal(sx_msg_decode(get, 11 + max + 1, &m, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	assert_non_null(strstr(err.msg, "more than 32768 bytes of paths"));

	uint8_t e[64];
	long n = sx_test_unhex(V_ENTRY_FILE, e, sizeof(e));
	assert_true(n > 29);
	memcpy(e + 25, "\x3b\x9a\xca\x00", 4); /* mtime_nsec = 10^9 */
	sx_err_clear(&err);
	assert_int_equal(sx_msg_decode(e, (size_t)n, &m, &err), -1);
	assert_int_equal(err.cls, SX_E_INTEGRITY);
	assert_non_null(strstr(err.msg, "timestamp"));
	memcpy(e + 25, "\xff\xff\xff\xff", 4);
	sx_err_clear(&err);
	assert_int_equal(sx_msg_decode(e, (size_t)n, &m, &err), -1);
	memcpy(e + 25, "\x3b\x9a\xc9\xff", 4); /* 999999999 */
	sx_err_clear(&err);
	assert_int_equal(sx_msg_decode(e, (size_t)n, &m, &err), 0);
	assert_int_equal(m.mtime_nsec, 999999999);
}

static void test_hello(void **state)
{
	(void)state;
	sx_hello h = {
	    .version = SX_PROTO_VERSION, .suite = 2, .max_record = 65536, .rotate_bytes = 1 << 20};
	uint8_t b[SX_HELLO_LEN];
	sx_hello o;
	sx_err err = {0};
	sx_hello_encode(&h, b);
	assert_int_equal(sx_hello_decode(b, sizeof(b), &o, &err), 0);
	assert_int_equal(o.suite, 2);
	assert_int_equal(o.max_record, 65536);
	assert_int_equal(o.rotate_bytes, 1 << 20);
	assert_int_equal(sx_hello_decode(b, sizeof(b) - 1, &o, &err), -1);
	b[0] = 9;
	sx_err_clear(&err);
	assert_int_equal(sx_hello_decode(b, sizeof(b), &o, &err), -1);
}

static int path_ok(const char *p)
{
	sx_err err = {0};
	return sx_path_check((const uint8_t *)p, strlen(p), &err);
}

static void test_paths(void **state)
{
	(void)state;
	assert_int_equal(path_ok("a"), 0);
	assert_int_equal(path_ok("a/b/c.txt"), 0);
	assert_int_equal(path_ok("..a/b..c/..."), 0);
	assert_int_equal(path_ok(""), -1);
	assert_int_equal(path_ok("/etc/passwd"), -1);
	assert_int_equal(path_ok("../x"), -1);
	assert_int_equal(path_ok("a/../../x"), -1);
	assert_int_equal(path_ok("a/./b"), -1);
	assert_int_equal(path_ok("a//b"), -1);
	assert_int_equal(path_ok("a/"), -1);
	assert_int_equal(path_ok(".."), -1);
	assert_int_equal(path_ok("a\nb"), -1);
	sx_err err = {0};
	assert_int_equal(sx_path_check((const uint8_t *)"a\0b", 3, &err), -1);
	char longc[300];
	memset(longc, 'x', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	assert_int_equal(path_ok(longc), -1);
}

static int file_ok(size_t name_len, const char *dir, unsigned flags)
{
	char p[600];
	sx_err err = {0};
	size_t d = strlen(dir);
	memcpy(p, dir, d);
	memset(p + d, 'n', name_len);
	return sx_path_check_file((const uint8_t *)p, d + name_len, flags, &err);
}

/* The name limits a signed session adds: NAME.sxsig, and for a stream
 * NAME.partial.sxsig, are names of at most 255 bytes too. */
static void test_file_paths(void **state)
{
	(void)state;
	const unsigned sig = SX_PATH_SIGNED, stream = SX_PATH_SIGNED | SX_PATH_STREAM;
	for (int i = 0; i < 2; i++) {
		const char *dir = i ? "a/b/" : "";
		assert_int_equal(file_ok(255, dir, 0), 0);
		assert_int_equal(file_ok(256, dir, 0), -1);
		assert_int_equal(file_ok(255, dir, SX_PATH_STREAM), 0); /* unsigned */
		assert_int_equal(file_ok(249, dir, sig), 0);
		assert_int_equal(file_ok(250, dir, sig), -1);
		assert_int_equal(file_ok(241, dir, stream), 0);
		assert_int_equal(file_ok(242, dir, stream), -1);
	}
	/* Only the last component carries the companions. */
	char p[600];
	memset(p, 'd', 255);
	memcpy(p + 255, "/x", 2);
	sx_err err = {0};
	assert_int_equal(sx_path_check_file((const uint8_t *)p, 257, sig, &err), 0);
	assert_int_equal(sx_path_check_file((const uint8_t *)"bad\nname", 8, SX_PATH_SIGNED, &err),
			 -1);
	assert_non_null(strstr(err.msg, "control character"));
	sx_err_clear(&err);
	memset(p, 'n', 250);
	assert_int_equal(sx_path_check_file((const uint8_t *)p, 250, sig, &err), -1);
	assert_non_null(strstr(err.msg, "NAME.sxsig"));
	assert_non_null(strstr(err.msg, "at most 249 bytes"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cursor_bounds),
	    cmocka_unit_test(test_writer_overflow),
	    cmocka_unit_test(test_messages_roundtrip),
	    cmocka_unit_test(test_unknown_and_bad_fields),
	    cmocka_unit_test(test_decode_field_order),
	    cmocka_unit_test(test_pull_vectors),
	    cmocka_unit_test(test_pull_limits),
	    cmocka_unit_test(test_resume_vectors),
	    cmocka_unit_test(test_hello),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_file_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
