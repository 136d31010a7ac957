/* Bounded cursor, writer, HELLO and control messages: encoder and decoder of
 * each message side by side (docs/PROTOCOL.md, "Control messages"). */
#include "engine/wire/sx_wire.h"

#include <string.h>

#include "engine/record/sx_record.h"

int sx_cur_bytes(sx_cur *c, size_t n, const uint8_t **out)
{
	if (n > sx_cur_left(c))
		return -1;
	*out = c->p + c->pos;
	c->pos += n;
	return 0;
}

static int cur_be(sx_cur *c, size_t n, uint64_t *v)
{
	const uint8_t *p;
	if (sx_cur_bytes(c, n, &p) < 0)
		return -1;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | p[i];
	*v = x;
	return 0;
}

int sx_cur_u8(sx_cur *c, uint8_t *v)
{
	uint64_t x;
	if (cur_be(c, 1, &x) < 0)
		return -1;
	*v = (uint8_t)x;
	return 0;
}

int sx_cur_u16(sx_cur *c, uint16_t *v)
{
	uint64_t x;
	if (cur_be(c, 2, &x) < 0)
		return -1;
	*v = (uint16_t)x;
	return 0;
}

int sx_cur_u32(sx_cur *c, uint32_t *v)
{
	uint64_t x;
	if (cur_be(c, 4, &x) < 0)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

int sx_cur_u64(sx_cur *c, uint64_t *v)
{
	return cur_be(c, 8, v);
}

int sx_cur_block16(sx_cur *c, const uint8_t **out, size_t *n)
{
	uint16_t len;
	if (sx_cur_u16(c, &len) < 0 || sx_cur_bytes(c, len, out) < 0)
		return -1;
	*n = len;
	return 0;
}

int sx_cur_end(const sx_cur *c)
{
	return c->pos == c->len ? 0 : -1;
}

static void put_be(sx_wbuf *w, uint64_t v, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		w->p[w->len + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	w->len += n;
}

void sx_put_u8(sx_wbuf *w, uint8_t v)
{
	put_be(w, v, 1);
}
void sx_put_u16(sx_wbuf *w, uint16_t v)
{
	put_be(w, v, 2);
}
void sx_put_u32(sx_wbuf *w, uint32_t v)
{
	put_be(w, v, 4);
}
void sx_put_u64(sx_wbuf *w, uint64_t v)
{
	put_be(w, v, 8);
}

void sx_put_bytes(sx_wbuf *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (n)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

void sx_put_block16(sx_wbuf *w, const void *p, size_t n)
{
	if (n > UINT16_MAX) {
		w->overflow = true;
		return;
	}
	sx_put_u16(w, (uint16_t)n);
	sx_put_bytes(w, p, n);
}

/* HELLO: version (1) | suite (1) | reserved, zero (2) | max_record (4) |
 * rotate_bytes (8). */
void sx_hello_encode(const sx_hello *h, uint8_t out[SX_HELLO_LEN])
{
	sx_wbuf w = sx_wbuf_make(out, SX_HELLO_LEN);
	sx_put_u8(&w, h->version);
	sx_put_u8(&w, h->suite);
	sx_put_u16(&w, 0);
	sx_put_u32(&w, h->max_record);
	sx_put_u64(&w, h->rotate_bytes);
}

int sx_hello_decode(const uint8_t *in, size_t len, sx_hello *h, sx_err *err)
{
	sx_cur c = sx_cur_make(in, len);
	uint16_t reserved;
	if (sx_cur_u8(&c, &h->version) < 0 || sx_cur_u8(&c, &h->suite) < 0 ||
	    sx_cur_u16(&c, &reserved) < 0 || sx_cur_u32(&c, &h->max_record) < 0 ||
	    sx_cur_u64(&c, &h->rotate_bytes) < 0 || sx_cur_end(&c) < 0)
		return sx_fail(err, SX_E_NET, "malformed HELLO (%zu bytes)", len);
	if (h->version != SX_PROTO_VERSION)
		return sx_fail(err, SX_E_NET, "unsupported protocol version %u", h->version);
	if (reserved != 0)
		return sx_fail(err, SX_E_NET, "malformed HELLO: reserved bits set");
	return 0;
}

/* Control messages: type (1), then per type (all integers big-endian):
 *   CONFIRM    max_record u32
 *   FILE_BEGIN file_id u32 | size u64 | mode u32 | mtime_sec u64 | mtime_nsec u32 | path<2>
 *   FILE_END   file_id u32 | size u64 | root (32)
 *   DIR        mode u32 | mtime_sec u64 | mtime_nsec u32 | path<2>
 *   SESSION    transfer_id (16) | flags u32 | hash_chunk u32
 *   BATCH      batch_no u64 | time u64 | nfiles u32 | sig<2>
 *   CHECKPOINT file_id u32 | leaves u64 | size u64 | time u64 | sig<2>
 *   FILE_OK    file_id u32 | size u64
 *   FILE_ERR   file_id u32 | class u8 | reason<2>
 *   ERROR      class u8 | reason<2>
 *   RECEIPT    batch_no u64 | time u64 | sig<2>
 *   GET        flags u32 | chunk u32 | paths<2> (NUL-separated)
 *   LIST       flags u32 | path<2> (empty: the top)
 *   LIST_ENTRY flags u32 | size u64 | mode u32 | mtime_sec u64 | mtime_nsec u32 | path<2>
 *   QUERY      file_id u32 | size u64 | path<2>  (file_id: the question's number)
 *   OFFER      file_id u32 | kind u8 | flags u32 | leaf u32 | from u64 | root (32)
 *   FILE_RESUME file_id u32 | size u64 | from u64 | root (32) | mode u32 | mtime_sec u64 |
 *              mtime_nsec u32 | path<2>
 *   FILE_SAME  file_id u32 | size u64 | root (32) | mode u32 | mtime_sec u64 |
 *              mtime_nsec u32 | path<2>
 * where x<2> is a 16-bit length followed by that many bytes. */
void sx_msg_encode(const sx_msg *m, sx_wbuf *w)
{
	sx_put_u8(w, m->type);
	switch (m->type) {
	case SX_MSG_CONFIRM: sx_put_u32(w, m->max_record); break;
	case SX_MSG_QUERY:
		sx_put_u32(w, m->file_id);
		sx_put_u64(w, m->size);
		sx_put_block16(w, m->path, m->path_len);
		break;
	case SX_MSG_OFFER:
		sx_put_u32(w, m->file_id);
		sx_put_u8(w, m->kind);
		sx_put_u32(w, m->flags);
		sx_put_u32(w, m->leaf);
		sx_put_u64(w, m->from);
		sx_put_bytes(w, m->root, sizeof(m->root));
		break;
	case SX_MSG_FILE_RESUME:
	case SX_MSG_FILE_SAME:
	case SX_MSG_FILE_BEGIN:
		sx_put_u32(w, m->file_id);
		sx_put_u64(w, m->size);
		if (m->type == SX_MSG_FILE_RESUME)
			sx_put_u64(w, m->from);
		if (m->type != SX_MSG_FILE_BEGIN)
			sx_put_bytes(w, m->root, sizeof(m->root));
		/* fall through */
	case SX_MSG_DIR:
		sx_put_u32(w, m->mode);
		sx_put_u64(w, (uint64_t)m->mtime_sec);
		sx_put_u32(w, m->mtime_nsec);
		sx_put_block16(w, m->path, m->path_len);
		break;
	case SX_MSG_FILE_END:
		sx_put_u32(w, m->file_id);
		sx_put_u64(w, m->size);
		sx_put_bytes(w, m->root, sizeof(m->root));
		break;
	case SX_MSG_FILE_OK:
		sx_put_u32(w, m->file_id);
		sx_put_u64(w, m->size);
		break;
	case SX_MSG_SESSION:
		sx_put_bytes(w, m->transfer_id, sizeof(m->transfer_id));
		sx_put_u32(w, m->flags);
		sx_put_u32(w, m->hash_chunk);
		break;
	case SX_MSG_BATCH:
		sx_put_u64(w, m->batch_no);
		sx_put_u64(w, (uint64_t)m->time);
		sx_put_u32(w, m->nfiles);
		sx_put_block16(w, m->sig, m->sig_len);
		break;
	case SX_MSG_CHECKPOINT:
		sx_put_u32(w, m->file_id);
		sx_put_u64(w, m->leaves);
		sx_put_u64(w, m->size);
		sx_put_u64(w, (uint64_t)m->time);
		sx_put_block16(w, m->sig, m->sig_len);
		break;
	case SX_MSG_RECEIPT:
		sx_put_u64(w, m->batch_no);
		sx_put_u64(w, (uint64_t)m->time);
		sx_put_block16(w, m->sig, m->sig_len);
		break;
	case SX_MSG_GET:
		sx_put_u32(w, m->flags);
		sx_put_u32(w, m->chunk);
		sx_put_block16(w, m->path, m->path_len);
		break;
	case SX_MSG_LIST:
		sx_put_u32(w, m->flags);
		sx_put_block16(w, m->path, m->path_len);
		break;
	case SX_MSG_LIST_ENTRY:
		sx_put_u32(w, m->flags);
		sx_put_u64(w, m->size);
		sx_put_u32(w, m->mode);
		sx_put_u64(w, (uint64_t)m->mtime_sec);
		sx_put_u32(w, m->mtime_nsec);
		sx_put_block16(w, m->path, m->path_len);
		break;
	case SX_MSG_FILE_ERR:
		sx_put_u32(w, m->file_id);
		/* fall through */
	case SX_MSG_ERROR:
		sx_put_u8(w, m->err_class);
		sx_put_block16(w, m->reason,
			       m->reason_len > SX_REASON_MAX ? SX_REASON_MAX : m->reason_len);
		break;
	default: w->overflow = true;
	}
}

/* The fields of m->type, in the order of the table above. Every read moves
 * the cursor, so each one is its own step, sequenced by || (C11 6.5.14): a
 * bitwise | between two reads leaves their order to the compiler (C11
 * 6.5p3). -1 when the body is too short, MSG_UNKNOWN for a type not in the
 * table. */
#define MSG_UNKNOWN (-2)

static int msg_fields(sx_cur *c, sx_msg *m)
{
	uint64_t mt = 0, t = 0;
	const uint8_t *p = NULL;
	switch (m->type) {
	case SX_MSG_CONFIRM: return sx_cur_u32(c, &m->max_record);
	case SX_MSG_QUERY:
		return sx_cur_u32(c, &m->file_id) < 0 || sx_cur_u64(c, &m->size) < 0 ||
			       sx_cur_block16(c, &m->path, &m->path_len) < 0
			   ? -1
			   : 0;
	case SX_MSG_OFFER:
		if (sx_cur_u32(c, &m->file_id) < 0 || sx_cur_u8(c, &m->kind) < 0 ||
		    sx_cur_u32(c, &m->flags) < 0 || sx_cur_u32(c, &m->leaf) < 0 ||
		    sx_cur_u64(c, &m->from) < 0 || sx_cur_bytes(c, sizeof(m->root), &p) < 0)
			return -1;
		memcpy(m->root, p, sizeof(m->root));
		return 0;
	case SX_MSG_FILE_RESUME:
	case SX_MSG_FILE_SAME:
	case SX_MSG_FILE_BEGIN:
		if (sx_cur_u32(c, &m->file_id) < 0 || sx_cur_u64(c, &m->size) < 0)
			return -1;
		if (m->type == SX_MSG_FILE_RESUME && sx_cur_u64(c, &m->from) < 0)
			return -1;
		if (m->type != SX_MSG_FILE_BEGIN) {
			if (sx_cur_bytes(c, sizeof(m->root), &p) < 0)
				return -1;
			memcpy(m->root, p, sizeof(m->root));
		}
		/* fall through */
	case SX_MSG_DIR:
		if (sx_cur_u32(c, &m->mode) < 0 || sx_cur_u64(c, &mt) < 0 ||
		    sx_cur_u32(c, &m->mtime_nsec) < 0 ||
		    sx_cur_block16(c, &m->path, &m->path_len) < 0)
			return -1;
		m->mtime_sec = (int64_t)mt;
		return 0;
	case SX_MSG_FILE_END:
		if (sx_cur_u32(c, &m->file_id) < 0 || sx_cur_u64(c, &m->size) < 0 ||
		    sx_cur_bytes(c, sizeof(m->root), &p) < 0)
			return -1;
		memcpy(m->root, p, sizeof(m->root));
		return 0;
	case SX_MSG_FILE_OK:
		if (sx_cur_u32(c, &m->file_id) < 0 || sx_cur_u64(c, &m->size) < 0)
			return -1;
		return 0;
	case SX_MSG_SESSION:
		if (sx_cur_bytes(c, sizeof(m->transfer_id), &p) < 0)
			return -1;
		memcpy(m->transfer_id, p, sizeof(m->transfer_id));
		if (sx_cur_u32(c, &m->flags) < 0 || sx_cur_u32(c, &m->hash_chunk) < 0)
			return -1;
		return 0;
	case SX_MSG_BATCH:
		if (sx_cur_u64(c, &m->batch_no) < 0 || sx_cur_u64(c, &t) < 0 ||
		    sx_cur_u32(c, &m->nfiles) < 0 || sx_cur_block16(c, &m->sig, &m->sig_len) < 0)
			return -1;
		m->time = (int64_t)t;
		return 0;
	case SX_MSG_CHECKPOINT:
		if (sx_cur_u32(c, &m->file_id) < 0 || sx_cur_u64(c, &m->leaves) < 0 ||
		    sx_cur_u64(c, &m->size) < 0 || sx_cur_u64(c, &t) < 0 ||
		    sx_cur_block16(c, &m->sig, &m->sig_len) < 0)
			return -1;
		m->time = (int64_t)t;
		return 0;
	case SX_MSG_RECEIPT:
		if (sx_cur_u64(c, &m->batch_no) < 0 || sx_cur_u64(c, &t) < 0 ||
		    sx_cur_block16(c, &m->sig, &m->sig_len) < 0)
			return -1;
		m->time = (int64_t)t;
		return 0;
	case SX_MSG_GET:
		return sx_cur_u32(c, &m->flags) < 0 || sx_cur_u32(c, &m->chunk) < 0 ||
			       sx_cur_block16(c, &m->path, &m->path_len) < 0
			   ? -1
			   : 0;
	case SX_MSG_LIST:
		return sx_cur_u32(c, &m->flags) < 0 || sx_cur_block16(c, &m->path, &m->path_len) < 0
			   ? -1
			   : 0;
	case SX_MSG_LIST_ENTRY:
		if (sx_cur_u32(c, &m->flags) < 0 || sx_cur_u64(c, &m->size) < 0 ||
		    sx_cur_u32(c, &m->mode) < 0 || sx_cur_u64(c, &mt) < 0 ||
		    sx_cur_u32(c, &m->mtime_nsec) < 0 ||
		    sx_cur_block16(c, &m->path, &m->path_len) < 0)
			return -1;
		m->mtime_sec = (int64_t)mt;
		return 0;
	case SX_MSG_FILE_ERR:
		if (sx_cur_u32(c, &m->file_id) < 0)
			return -1;
		/* fall through */
	case SX_MSG_ERROR:
		if (sx_cur_u8(c, &m->err_class) < 0 ||
		    sx_cur_block16(c, &m->reason, &m->reason_len) < 0)
			return -1;
		return 0;
	default: return MSG_UNKNOWN;
	}
}

/* NONE carries nothing; PARTIAL a non-empty whole number of leaves and a
 * root; EXISTS a root only with its leaf size (leaf 0: root unknown, zero). */
static bool offer_valid(const sx_msg *m)
{
	static const uint8_t zero[32];
	if ((m->flags & ~SX_OFFER_OVERWRITE) != 0)
		return false;
	switch (m->kind) {
	case SX_OFFER_NONE:
		return m->leaf == 0 && m->from == 0 && memcmp(m->root, zero, sizeof(zero)) == 0;
	case SX_OFFER_PARTIAL: return m->leaf > 0 && m->from > 0 && m->from % m->leaf == 0;
	case SX_OFFER_EXISTS: return m->leaf > 0 || memcmp(m->root, zero, sizeof(zero)) == 0;
	default: return false;
	}
}

int sx_msg_decode(const uint8_t *body, size_t len, sx_msg *m, sx_err *err)
{
	sx_cur c = sx_cur_make(body, len);
	int rc = -1;
	memset(m, 0, sizeof(*m));
	SX_ENSURE(sx_cur_u8(&c, &m->type) == 0, err, SX_E_INTEGRITY, "empty control message");
	int f = msg_fields(&c, m);
	SX_ENSURE(f != MSG_UNKNOWN, err, SX_E_INTEGRITY, "unknown control message type 0x%02x",
		  m->type);
	SX_ENSURE(f == 0 && sx_cur_end(&c) == 0, err, SX_E_INTEGRITY,
		  "malformed control message type 0x%02x", m->type);
	SX_ENSURE(!(m->type == SX_MSG_FILE_BEGIN || m->type == SX_MSG_DIR ||
		    m->type == SX_MSG_LIST_ENTRY || m->type == SX_MSG_FILE_RESUME ||
		    m->type == SX_MSG_FILE_SAME) ||
		      m->mtime_nsec < 1000000000u,
		  err, SX_E_INTEGRITY, "malformed timestamp in control message");
	SX_ENSURE(m->type != SX_MSG_OFFER || offer_valid(m), err, SX_E_INTEGRITY,
		  "malformed OFFER (kind %u, leaf %u, from %llu)", m->kind, m->leaf,
		  (unsigned long long)m->from);
	SX_ENSURE(m->type != SX_MSG_FILE_RESUME ||
		      (m->size != SX_SIZE_UNKNOWN && m->from > 0 && m->from < m->size),
		  err, SX_E_INTEGRITY, "malformed FILE_RESUME (from %llu of %llu bytes)",
		  (unsigned long long)m->from, (unsigned long long)m->size);
	SX_ENSURE((m->type != SX_MSG_FILE_SAME && m->type != SX_MSG_QUERY) ||
		      m->size != SX_SIZE_UNKNOWN,
		  err, SX_E_INTEGRITY, "a stream has no resume (control message 0x%02x)", m->type);
	SX_ENSURE(m->sig_len <= SX_SIG_MAX, err, SX_E_INTEGRITY, "signature longer than %d bytes",
		  SX_SIG_MAX);
	SX_ENSURE(m->type != SX_MSG_GET || m->path_len <= SX_GET_PATHS_MAX, err, SX_E_INTEGRITY,
		  "GET: more than %u bytes of paths", SX_GET_PATHS_MAX);
	if ((m->type == SX_MSG_FILE_ERR || m->type == SX_MSG_ERROR) &&
	    (m->err_class == SX_OK || m->err_class > SX_E_NET))
		m->err_class = SX_E_OTHER;
	rc = 0;
out:
	return rc;
}

int sx_msg_next_path(const sx_msg *m, size_t *at, const uint8_t **p, size_t *len)
{
	if (*at >= m->path_len)
		return 0;
	const uint8_t *s = m->path + *at;
	const uint8_t *e = memchr(s, 0, m->path_len - *at);
	*p = s;
	*len = e != NULL ? (size_t)(e - s) : m->path_len - *at;
	*at += *len + 1;
	return 1;
}

int sx_path_check(const uint8_t *path, size_t len, sx_err *err)
{
	if (len == 0 || len > SX_PATH_MAX)
		return sx_fail(err, SX_E_USAGE, "refused path: empty or longer than %d bytes",
			       SX_PATH_MAX);
	if (path[0] == '/')
		return sx_fail(err, SX_E_USAGE, "refused path '%.*s': absolute", (int)len,
			       (const char *)path);
	size_t start = 0;
	int depth = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/') {
			if (path[i] < 0x20 || path[i] == 0x7f)
				return sx_fail(err, SX_E_USAGE,
					       "refused path: contains a NUL or control character");
			continue;
		}
		size_t n = i - start;
		if (n == 0 || (n == 1 && path[start] == '.') ||
		    (n == 2 && path[start] == '.' && path[start + 1] == '.'))
			return sx_fail(err, SX_E_USAGE,
				       "refused path '%.*s': empty, '.' or '..' component",
				       (int)len, (const char *)path);
		if (n > SX_NAME_MAX)
			return sx_fail(err, SX_E_USAGE,
				       "refused path: a component is longer than %d bytes",
				       SX_NAME_MAX);
		if (++depth > SX_PATH_DEPTH_MAX)
			return sx_fail(err, SX_E_USAGE, "refused path: more than %d levels",
				       SX_PATH_DEPTH_MAX);
		start = i + 1;
	}
	return 0;
}

int sx_path_check_file(const uint8_t *path, size_t len, unsigned flags, sx_err *err)
{
	if (sx_path_check(path, len, err) < 0)
		return -1;
	if (!(flags & SX_PATH_SIGNED))
		return 0;
	size_t name = len;
	while (name > 0 && path[name - 1] != '/')
		name--;
	name = len - name;
	const char *what = SX_SUFFIX_SIG;
	size_t extra = sizeof(SX_SUFFIX_SIG) - 1;
	if (flags & SX_PATH_STREAM) {
		what = SX_SUFFIX_PARTIAL SX_SUFFIX_SIG;
		extra += sizeof(SX_SUFFIX_PARTIAL) - 1;
	}
	if (name + extra > SX_NAME_MAX)
		return sx_fail(err, SX_E_USAGE,
			       "refused path: a name of %zu bytes leaves no room for its "
			       "signature NAME%s (signed, a name is at most %zu bytes)",
			       name, what, SX_NAME_MAX - extra);
	return 0;
}
