/* engine/sign/statement: file descriptors (the leaves of a batch tree) and
 * the byte strings that batch and checkpoint signatures cover
 * (docs/SIGNATURES.md sections 2 and 3). Pure. */
#include "engine/sign/sign_int.h"

#include <string.h>

#include "common/sx_util.h"

int sx_path_ok(const char *path, size_t *len, sx_err *err)
{
	sx_err e = {0};
	size_t n = path ? strnlen(path, SX_MPATH_MAX + 1) : 0;
	if (sx_path_check((const uint8_t *)path, n, &e) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "%s", e.msg);
	*len = n;
	return 0;
}

int sx_desc_encode(const sx_desc *d, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	size_t plen = 0;
	if (sx_path_ok(d->path, &plen, err) < 0)
		return -1;
	sx_wbuf w = sx_wbuf_make(out, cap);
	sx_put_bytes(&w, d->root, SX_HASH_LEN);
	sx_put_u64(&w, d->size);
	sx_put_u64(&w, (uint64_t)d->mtime_sec);
	sx_put_u32(&w, d->mtime_nsec);
	sx_put_block16(&w, d->path, plen);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "descriptor does not fit");
	*len = w.len;
	return 0;
}

int sx_desc_leaf(const sx_desc *d, uint8_t out[SX_HASH_LEN], sx_err *err)
{
	uint8_t buf[SX_DESC_MAX];
	size_t n = 0;
	if (sx_desc_encode(d, buf, sizeof(buf), &n, err) < 0)
		return -1;
	return sx_merkle_leaf(buf, n, out, err);
}

static const char DOM_BATCH[] = "sxfer batch signature v1";	   /* + its NUL: 25 bytes */
static const char DOM_CHECKPOINT[] = "sxfer stream checkpoint v1"; /* 27 bytes */

void sx_stmt_batch(const uint8_t tid[SX_TID_LEN], uint64_t batch, int64_t time, uint32_t count,
		   uint32_t chunk, const uint8_t root[SX_HASH_LEN], uint8_t out[SX_STMT_BATCH_LEN])
{
	sx_wbuf w = sx_wbuf_make(out, SX_STMT_BATCH_LEN);
	sx_put_bytes(&w, DOM_BATCH, sizeof(DOM_BATCH));
	sx_put_bytes(&w, tid, SX_TID_LEN);
	sx_put_u64(&w, batch);
	sx_put_u64(&w, (uint64_t)time);
	sx_put_u32(&w, count);
	sx_put_u32(&w, chunk);
	sx_put_bytes(&w, root, SX_HASH_LEN);
}

int sx_stmt_checkpoint(const uint8_t tid[SX_TID_LEN], const char *path, uint32_t chunk,
		       uint64_t leaves, uint64_t bytes, const uint8_t root[SX_HASH_LEN],
		       int64_t time, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	size_t plen;
	if (sx_path_ok(path, &plen, err) < 0)
		return -1;
	sx_wbuf w = sx_wbuf_make(out, cap);
	sx_put_bytes(&w, DOM_CHECKPOINT, sizeof(DOM_CHECKPOINT));
	sx_put_bytes(&w, tid, SX_TID_LEN);
	sx_put_block16(&w, path, plen);
	sx_put_u32(&w, chunk);
	sx_put_u64(&w, leaves);
	sx_put_u64(&w, bytes);
	sx_put_bytes(&w, root, SX_HASH_LEN);
	sx_put_u64(&w, (uint64_t)time);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "checkpoint statement does not fit");
	*len = w.len;
	return 0;
}
