/* engine/wire: the bounded cursor every parser reads through, the writer
 * every encoder writes through, and the control messages carried in sealed
 * CTRL records (docs/PROTOCOL.md, "Control messages"). Pure. */
#ifndef SX_WIRE_H
#define SX_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sx_err.h"

/* ---- bounded cursor (reader) ------------------------------------------- */

typedef struct sx_cur {
	const uint8_t *p;
	size_t len;
	size_t pos;
} sx_cur;

static inline sx_cur sx_cur_make(const uint8_t *p, size_t len)
{
	sx_cur c = {p, len, 0};
	return c;
}
static inline size_t sx_cur_left(const sx_cur *c)
{
	return c->len - c->pos;
}
int sx_cur_u8(sx_cur *c, uint8_t *v) SX_MUST_CHECK;
int sx_cur_u16(sx_cur *c, uint16_t *v) SX_MUST_CHECK;
int sx_cur_u32(sx_cur *c, uint32_t *v) SX_MUST_CHECK;
int sx_cur_u64(sx_cur *c, uint64_t *v) SX_MUST_CHECK;
int sx_cur_bytes(sx_cur *c, size_t n, const uint8_t **out) SX_MUST_CHECK;
/* A block prefixed by a 16-bit length, consumed exactly. */
int sx_cur_block16(sx_cur *c, const uint8_t **out, size_t *n) SX_MUST_CHECK;
/* Leftover bytes are an error. */
int sx_cur_end(const sx_cur *c) SX_MUST_CHECK;

/* ---- writer ------------------------------------------------------------- */

typedef struct sx_wbuf {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool overflow; /* set once a put did not fit; the buffer is then unusable */
} sx_wbuf;

static inline sx_wbuf sx_wbuf_make(uint8_t *p, size_t cap)
{
	sx_wbuf w = {p, cap, 0, false};
	return w;
}
void sx_put_u8(sx_wbuf *w, uint8_t v);
void sx_put_u16(sx_wbuf *w, uint16_t v);
void sx_put_u32(sx_wbuf *w, uint32_t v);
void sx_put_u64(sx_wbuf *w, uint64_t v);
void sx_put_bytes(sx_wbuf *w, const void *p, size_t n);
void sx_put_block16(sx_wbuf *w, const void *p, size_t n);

/* ---- the client's HELLO (sent inside TLS, RFC 8446 application data) ---- */

#define SX_PROTO_VERSION 1
#define SX_ALPN		 "sxfer/1"
#define SX_ALPN_ENROLL	 "sxfer-enroll/1" /* sxfer ca serve (docs/PKI.md) */

typedef struct sx_hello {
	uint8_t version;
	uint8_t suite;
	uint32_t max_record;   /* largest record body the client accepts */
	uint64_t rotate_bytes; /* key-update interval proposed by the client */
} sx_hello;

#define SX_HELLO_LEN 16
void sx_hello_encode(const sx_hello *h, uint8_t out[SX_HELLO_LEN]);
int sx_hello_decode(const uint8_t *in, size_t len, sx_hello *h, sx_err *err) SX_MUST_CHECK;

/* ---- control messages (bodies of SX_REC_CTRL records) ------------------ */

enum {
	SX_MSG_CONFIRM = 0x01,	   /* server -> client, first sealed record */
	SX_MSG_FILE_BEGIN = 0x10,  /* sender: a file (or stream) starts */
	SX_MSG_FILE_END = 0x11,	   /* sender: the file's data is complete */
	SX_MSG_DIR = 0x12,	   /* sender: a folder (kept even when empty) */
	SX_MSG_SESSION = 0x13,	   /* sender, first: transfer id and signing mode */
	SX_MSG_BATCH = 0x14,	   /* sender: signature over the files ended since the last */
	SX_MSG_CHECKPOINT = 0x15,  /* sender: signature over a stream's prefix */
	SX_MSG_QUERY = 0x16,	   /* sender: what do you hold of this path? */
	SX_MSG_FILE_RESUME = 0x17, /* sender: a file continuing the held part offered */
	SX_MSG_FILE_SAME = 0x18,   /* sender: the file stored under this name is this one */
	SX_MSG_FILE_OK = 0x20,	   /* receiver: stored durably under its final name */
	SX_MSG_FILE_ERR = 0x21,	   /* receiver: this file was refused or failed */
	SX_MSG_ERROR = 0x22,	   /* either side: fatal, the connection ends */
	SX_MSG_RECEIPT = 0x23,	   /* receiver: signature over a stored batch */
	SX_MSG_OFFER = 0x24,	   /* receiver: the answer to a QUERY */
	SX_MSG_GET = 0x30,	   /* client, first: send me these paths (the server sends) */
	SX_MSG_LIST = 0x31,	   /* client, first: what may I get under this path */
	SX_MSG_LIST_ENTRY = 0x32,  /* server: one file or folder of a listing */
};

/* OFFER kinds (docs/PROTOCOL.md, "Resume and re-sending") */
#define SX_OFFER_NONE	 0 /* nothing held: send the whole file */
#define SX_OFFER_PARTIAL 1 /* the first `from` bytes are held (whole leaves of `leaf`) */
#define SX_OFFER_EXISTS	 2 /* a file of this size is stored under this name */
/* OFFER flags */
#define SX_OFFER_OVERWRITE 0x1u /* the receiver replaces existing files (serve --overwrite) */

/* GET flags */
#define SX_GET_SIGNED 0x1u /* the server signs its batches (sxfer get without --no-sign) */
#define SX_GET_SINGLE 0x2u /* one file only (sxfer get ... -): a folder is refused */
/* LIST_ENTRY flags */
#define SX_LIST_DIR	 0x1u	      /* a folder (size 0) */
#define SX_LIST_SXSIG	 0x2u	      /* NAME.sxsig is beside the file */
#define SX_GET_PATHS_MAX (32u * 1024) /* bytes of a GET's path list */

#define SX_PATH_MAX	  4096
#define SX_PATH_DEPTH_MAX 128 /* folder levels in a relative path */
#define SX_REASON_MAX	  400
#define SX_SIZE_UNKNOWN	  UINT64_MAX
#define SX_SESSION_SIGNED 0x1u
#define SX_SIG_MAX	  1024 /* RSA-3072 is 384 bytes */ /* a stream from standard input */

typedef struct sx_msg {
	uint8_t type;
	uint32_t file_id;    /* FILE_BEGIN, FILE_END, FILE_OK, FILE_ERR, CHECKPOINT */
	uint64_t size;	     /* FILE_BEGIN (may be unknown), FILE_END, FILE_OK, CHECKPOINT */
	uint32_t mode;	     /* FILE_BEGIN, DIR: permission bits */
	int64_t mtime_sec;   /* FILE_BEGIN, DIR */
	uint32_t mtime_nsec; /* FILE_BEGIN, DIR */
	uint32_t max_record; /* CONFIRM */
	uint8_t err_class;   /* FILE_ERR, ERROR: an sx_class */
	const uint8_t *path; /* FILE_BEGIN, DIR, GET, LIST, LIST_ENTRY: not NUL terminated */
	size_t path_len;
	const uint8_t *reason; /* FILE_ERR, ERROR: text, not NUL terminated */
	size_t reason_len;
	uint8_t transfer_id[16]; /* SESSION */
	uint32_t flags;		 /* SESSION, GET, LIST, LIST_ENTRY */
	uint32_t hash_chunk;	 /* SESSION: bytes per Merkle leaf */
	uint8_t root[32];	 /* FILE_END: the file's Merkle root (zero when unsigned) */
	uint64_t batch_no;	 /* BATCH, RECEIPT */
	int64_t time;		 /* BATCH, CHECKPOINT, RECEIPT: signed time, unix seconds */
	uint32_t nfiles;	 /* BATCH */
	uint64_t leaves;	 /* CHECKPOINT */
	const uint8_t *sig;	 /* BATCH, CHECKPOINT, RECEIPT */
	size_t sig_len;
	uint32_t chunk; /* GET: the client's preferred chunk (0: the server's) */
	uint8_t kind;	/* OFFER: SX_OFFER_* */
	uint32_t leaf;	/* OFFER: bytes per leaf of root (0: no root known) */
	uint64_t from;	/* OFFER: bytes held; FILE_RESUME: first byte sent */
} sx_msg;

/* GET carries its paths in path/path_len, separated by one NUL each (a NUL
 * is in no valid path). Walks them: *at is 0 before the first; returns 1
 * with the next path in p/len, 0 after the last. */
int sx_msg_next_path(const sx_msg *m, size_t *at, const uint8_t **p, size_t *len);

/* Encodes into w; check w->overflow after. */
void sx_msg_encode(const sx_msg *m, sx_wbuf *w);
/* Decodes a CTRL record body; pointers in m point into body. */
int sx_msg_decode(const uint8_t *body, size_t len, sx_msg *m, sx_err *err) SX_MUST_CHECK;

/* A relative path as the receiver accepts it: non-empty, at most
 * SX_PATH_MAX bytes, '/'-separated, no leading '/', no empty, '.' or '..'
 * component, no NUL, no control characters. */
int sx_path_check(const uint8_t *path, size_t len, sx_err *err) SX_MUST_CHECK;

/* The receiver keeps companions beside a received file NAME: NAME.sxsig
 * (signed sessions) and, for a signed stream cut off after a checkpoint,
 * NAME.partial with NAME.partial.sxsig. Every one is a name of at most
 * SX_NAME_MAX bytes. */
#define SX_NAME_MAX	  255
#define SX_SUFFIX_SIG	  ".sxsig"
#define SX_SUFFIX_PARTIAL ".partial"
#define SX_PATH_SIGNED	  0x1u /* the session is signed: NAME.sxsig must fit */
#define SX_PATH_STREAM	  0x2u /* with SX_PATH_SIGNED: NAME.partial.sxsig must fit */

/* The path of a file in a session as the receiver accepts it: the rules of
 * sx_path_check, and a last component short enough for the companions the
 * flags call for (docs/PROTOCOL.md, "Control messages"). The one check the
 * sender makes before it sends a name and the receiver makes at FILE_BEGIN. */
int sx_path_check_file(const uint8_t *path, size_t len, unsigned flags, sx_err *err) SX_MUST_CHECK;

#endif
