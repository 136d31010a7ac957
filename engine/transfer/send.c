/* The sender: walks its arguments into an ordered list of entries, then
 * streams FILE_BEGIN, DATA..., FILE_END per file and EOS, keeping several
 * records in flight: the next chunks are read while the current one is sealed
 * and sent (ARCHITECTURE.md, "The data path of one chunk"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/sx_util.h"
#include "engine/channel/sx_link.h"
#include "engine/transfer/sx_pool.h"
#include "engine/sign/sx_sigsess.h"
#include "engine/transfer/sx_transfer.h"
#include "engine/wire/sx_wire.h"

#ifndef SX_SEND_SLOTS
#define SX_SEND_SLOTS 8 /* records in flight on the sender (docs/PERFORMANCE.md) */
#endif
#define NSLOTS	   SX_SEND_SLOTS
#define RX_CAP	   (64u * 1024)
#define CTRL_MAX   (SX_PATH_MAX + 64)
#define DIRECT_MIN (4u << 20) /* files from this size may be read with direct I/O */

enum { OP_HS_SEND = 1, OP_RECV, OP_READ, OP_SEND, OP_POOL };

typedef struct entry {
	char *src; /* path to open; NULL for standard input */
	char *rel; /* relative path on the receiver */
	bool is_dir;
	/* set when the file is begun, for its descriptor */
	uint32_t file_id;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
} entry;

typedef struct entries {
	entry *v;
	size_t n, cap;
	unsigned pflags;  /* sx_path_check_file flags of the session's files */
	uint64_t skipped; /* files and folders not sent (each with a warning) */
} entries;

/* READY: read, not yet sealed; SEALING: with the worker pool; DONE: sealed
 * by a worker, its leaf not yet folded into the file's tree; SEALED: ready to
 * send in order. */
enum {
	SLOT_FREE = 0,
	SLOT_READING,
	SLOT_READY,
	SLOT_SEALING,
	SLOT_DONE,
	SLOT_SEALED,
	SLOT_SENDING
};

typedef struct slot {
	uint8_t *buf;
	size_t cap;
	int state;
	uint8_t type;
	size_t plen;	/* plaintext bytes ready (DATA: bytes read so far) */
	size_t raw;	/* DATA: file bytes the record carries (plen before compression) */
	size_t rec_len; /* sealed record length */
	size_t want;	/* DATA: bytes to read */
	uint64_t off;	/* DATA: file offset of the chunk */
	int fd;		/* DATA: file being read */
	bool direct;	/* DATA: read with direct I/O (aligned offsets and lengths) */
	uint64_t order;
	bool stream; /* DATA from standard input: EOF turns it into FILE_END */
	int late;    /* what happens when the slot's turn to be sealed comes */
	size_t entry;
} slot;

/* Control records whose content is known only when every record before
 * them has been sealed (and hashed): they are encoded at sealing time. */
enum { LATE_NONE = 0, LATE_BEGIN, LATE_END, LATE_BATCH, LATE_CHECKPOINT };

typedef struct sender {
	const sx_send_cfg *cfg;
	sx_io *io;
	int sock;
	sx_link link;
	slot slots[NSLOTS];
	uint8_t *region; /* the slots' buffers, one allocation */
	uint64_t next_order, send_order;
	bool sending;
	entries ents;
	size_t cur; /* entry being produced */
	int phase;  /* 0 begin, 1 data, 2 end */
	int cur_fd;
	bool cur_direct;  /* cur_fd is read with direct I/O */
	bool cur_refused; /* the receiver refused the file being read: end it now */
	uint64_t cur_size, cur_off;
	uint32_t file_id;
	bool stream_reading;
	bool produced_eos;
	bool eos_sent, eos_received;
	uint8_t rxbuf[SX_REC_HDR_LEN + RX_CAP + SX_REC_TAG_MAX];
	uint32_t chunk;
	sx_progress prog;
	sx_send_stats *stats;
	sx_err file_err; /* first file the receiver refused */
	sx_err send_err; /* a failed send, reported unless the receiver said why */
	/* signing (docs/SIGNATURES.md) */
	bool sign;
	bool session_queued;
	uint8_t tid[SX_TID_LEN];
	sx_filehash fh; /* the file being sealed */
	bool fh_open;
	sx_sbatch *batches; /* [nbatches-1] is open; the others await receipts */
	size_t nbatches, batches_cap;
	uint32_t p_files; /* files ended, as produced, in the open batch */
	uint64_t p_bytes, p_t0;
	uint64_t stream_ckpt_off; /* stream bytes read when the last checkpoint was due */
	uint64_t receipts;
	/* per file id (1..file_id): its entry and whether it was answered */
	struct fid {
		size_t entry;
		int batch; /* index in batches, -1 when unsigned */
		uint32_t pos;
		bool answered;
	} * fids;
	size_t fids_cap;
	uint32_t batch_files, ckpt_records; /* effective settings */
	uint64_t batch_bytes, batch_ns;
	bool draining;
	/* the worker pool (NULL: everything is sealed on this thread) */
	sx_pool *pool;
	sx_pjob jobs[NSLOTS];
	uint64_t prep_order; /* next record to prepare (hash, compress, seal) */
	uint64_t fin_order;  /* next record whose worker result is folded in */
	uint64_t efd_buf;
	char receipts_dir[4096];
	uint64_t answers; /* files answered (FILE_OK or FILE_ERR) */
	bool peer_error;  /* the receiver sent ERROR */
	int fds_open[NSLOTS + 2];
	/* compression: one context and one scratch buffer of a chunk, used
	 * while a record is sealed (in order, on this thread) */
	ZSTD_CCtx *cctx;
	uint8_t *zbuf;
	size_t zcap;
	int zlevel;
	sx_zauto za; /* --compress auto: the file being sealed */
} sender;

static int park_fd(sender *s, int fd, sx_err *err);
static int fid_add(sender *s, uint32_t id, size_t entry, sx_err *err);

static uint64_t tag_of(int op, unsigned slot)
{
	return ((uint64_t)op << 24) | slot;
}

static int ents_add(entries *e, const char *src, const char *rel, bool is_dir, sx_err *err)
{
	if (e->n == e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 64;
		entry *nv = realloc(e->v, ncap * sizeof(*nv));
		if (nv == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		e->v = nv;
		e->cap = ncap;
	}
	entry *x = &e->v[e->n];
	x->src = src ? strdup(src) : NULL;
	x->rel = strdup(rel);
	x->is_dir = is_dir;
	if ((src && !x->src) || !x->rel)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	e->n++;
	return 0;
}

static void ents_free(entries *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].src);
		free(e->v[i].rel);
	}
	free(e->v);
}

/* Something in a sent tree that is not sent: a warning, and counted (the
 * session then ends with exit code 5 once everything else is sent). */
static void skip(entries *e, const char *src, const char *why)
{
	sx_log("warn", "skip", "path=%s reason=%s", SX_LOGQ(src), SX_LOGQ(why));
	e->skipped++;
}

static int walk(entries *e, const char *src, const char *rel, int depth, sx_err *err)
{
	struct dirent **names = NULL;
	int rc = -1, n = 0;
	if (depth > 64)
		return sx_fail(err, SX_E_IO, "%s: folders nested too deeply", src);
	SX_GUARD(ents_add(e, src, rel, true, err));
	n = scandir(src, &names, NULL, alphasort);
	if (n < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot read folder", src);
	for (int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		char s[SX_PATH_MAX + 256], r[SX_PATH_MAX + 256];
		if (snprintf(s, sizeof(s), "%s/%s", src, nm) >= (int)sizeof(s) ||
		    snprintf(r, sizeof(r), "%s/%s", rel, nm) >= (int)sizeof(r)) {
			skip(e, s, "refused path: longer than 4096 bytes");
			continue;
		}
		struct stat st;
		if (lstat(s, &st) < 0) {
			sx_fail_errno(err, SX_E_IO, errno, "%s", s);
			goto out;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
			skip(e, s, "not a regular file or folder");
			continue;
		}
		/* What the receiver would refuse is not sent: the same check
		 * it makes (a folder, with everything in it, by its path). */
		sx_err why = {0};
		if (S_ISDIR(st.st_mode)
			? sx_path_check((const uint8_t *)r, strlen(r), &why) < 0
			: sx_path_check_file((const uint8_t *)r, strlen(r), e->pflags, &why) < 0) {
			skip(e, s, why.msg);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			SX_GUARD(walk(e, s, r, depth + 1, err));
		else
			SX_GUARD(ents_add(e, s, r, false, err));
	}
	rc = 0;
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static const char *base_name(const char *p, char *buf, size_t cap)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	size_t s = n;
	while (s > 0 && p[s - 1] != '/')
		s--;
	snprintf(buf, cap, "%.*s", (int)(n - s), p + s);
	return buf;
}

typedef struct named {
	const char *rel;
	size_t entry;
	bool skip;
} named;

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const named *)a)->rel, ((const named *)b)->rel);
}

/* Signed, the receiver keeps the signature of a file X as X.sxsig beside
 * it, so a sent X.sxsig (signed earlier with `sxfer sign`, say) cannot be
 * stored beside a sent X: it is skipped (docs/SIGNATURES.md, section 8).
 * In name order a file comes before its X.sxsig, so whether X itself is
 * sent is known when X.sxsig is looked at (X.sxsig.sxsig is data again
 * once X.sxsig is skipped). */
static int skip_sig_companions(entries *e, sx_err *err)
{
	const size_t sfx = sizeof(SX_SUFFIX_SIG) - 1;
	named *files = malloc((e->n ? e->n : 1) * sizeof(*files));
	size_t nf = 0, kept = 0;
	if (files == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (size_t i = 0; i < e->n; i++)
		if (!e->v[i].is_dir)
			files[nf++] = (named){.rel = e->v[i].rel, .entry = i};
	qsort(files, nf, sizeof(*files), cmp_named);
	for (size_t i = 0; i < nf; i++) {
		size_t n = strlen(files[i].rel);
		char owner[SX_PATH_MAX + 1];
		named key = {.rel = owner};
		if (n <= sfx || n - sfx > SX_PATH_MAX ||
		    strcmp(files[i].rel + n - sfx, SX_SUFFIX_SIG))
			continue;
		memcpy(owner, files[i].rel, n - sfx);
		owner[n - sfx] = '\0';
		const named *o = bsearch(&key, files, nf, sizeof(*files), cmp_named);
		files[i].skip = o != NULL && !o->skip;
	}
	for (size_t i = 0; i < nf; i++) {
		if (!files[i].skip)
			continue;
		entry *x = &e->v[files[i].entry];
		skip(e, x->src ? x->src : x->rel,
		     "the receiver keeps the signature of the file beside it under this name "
		     "(--no-sign sends it as it is)");
		free(x->src);
		free(x->rel);
		x->rel = NULL;
	}
	free(files);
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].rel != NULL)
			e->v[kept++] = e->v[i];
	e->n = kept;
	return 0;
}

static int build_entries(sender *s, sx_err *err)
{
	const sx_send_cfg *cfg = s->cfg;
	sx_err why = {0};
	s->ents.pflags = s->sign ? SX_PATH_SIGNED : 0;
	for (int i = 0; i < cfg->npaths; i++) {
		const char *p = cfg->paths[i];
		char base[512];
		if (strcmp(p, "-") == 0) {
			const char *name = cfg->stream_name ? cfg->stream_name : "stdin";
			if (sx_path_check_file((const uint8_t *)name, strlen(name),
					       s->ents.pflags | SX_PATH_STREAM, &why) < 0)
				return sx_fail(err, SX_E_USAGE, "--name: %s", why.msg);
			SX_GUARD(ents_add(&s->ents, NULL, name, false, err));
			continue;
		}
		struct stat st;
		if (stat(p, &st) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "%s", p);
		base_name(p, base, sizeof(base));
		if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || base[0] == '\0' ||
		    strcmp(base, "/") == 0)
			return sx_fail(err, SX_E_USAGE,
				       "%s: name the folder itself, not '.', '..' or '/'", p);
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			return sx_fail(err, SX_E_USAGE, "%s: not a regular file or folder", p);
		/* Named on the command line: refused as a wrong argument, before
		 * anything is sent (inside a folder, a name is skipped). */
		if (S_ISDIR(st.st_mode)
			? sx_path_check((const uint8_t *)base, strlen(base), &why) < 0
			: sx_path_check_file((const uint8_t *)base, strlen(base), s->ents.pflags,
					     &why) < 0)
			return sx_fail(err, SX_E_USAGE, "%s: cannot be sent: %s", p, why.msg);
		if (S_ISDIR(st.st_mode))
			SX_GUARD(walk(&s->ents, p, base, 0, err));
		else
			SX_GUARD(ents_add(&s->ents, p, base, false, err));
	}
	if (s->sign)
		SX_GUARD(skip_sig_companions(&s->ents, err));
	for (size_t i = 0; i < s->ents.n; i++) {
		entry *e = &s->ents.v[i];
		if (e->is_dir)
			continue;
		s->prog.files_total++;
		if (e->src == NULL)
			s->prog.total_known = false;
		struct stat st;
		if (e->src && stat(e->src, &st) == 0)
			s->prog.bytes_total += (uint64_t)st.st_size;
	}
	return 0;
out:
	return -1;
}

static slot *free_slot(sender *s)
{
	for (unsigned i = 0; i < NSLOTS; i++)
		if (s->slots[i].state == SLOT_FREE)
			return &s->slots[i];
	return NULL;
}

static int fill_ctrl(slot *sl, const sx_msg *m, sx_err *err)
{
	sx_wbuf w = sx_wbuf_make(sl->buf + SX_REC_HDR_LEN, CTRL_MAX);
	sx_msg_encode(m, &w);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "control message does not fit");
	sl->type = SX_REC_CTRL;
	sl->plen = w.len;
	sl->state = SLOT_READY;
	return 0;
}

static int put_ctrl(sender *s, slot *sl, const sx_msg *m, sx_err *err)
{
	sl->order = s->next_order++;
	return fill_ctrl(sl, m, err);
}

static void stat_to_msg(const struct stat *st, sx_msg *m)
{
	m->mode = st->st_mode & 07777;
	m->mtime_sec = st->st_mtim.tv_sec;
	m->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
}

static int submit_read(sender *s, slot *sl, sx_err *err)
{
	unsigned idx = (unsigned)(sl - s->slots);
	uint64_t off = sl->stream ? SX_IO_OFF_CUR : sl->off + sl->plen;
	size_t len = sl->want - sl->plen;
	/* Direct I/O reads whole blocks: the last one of a file is asked for
	 * in full and comes back short (the slot has the room). */
	if (sl->direct)
		len = (len + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	sl->state = SLOT_READING;
	return sx_io_read(s->io, sl->fd, sl->buf + SX_REC_HDR_LEN + sl->plen, len, off,
			  tag_of(OP_READ, idx), err);
}

/* A large regular file that is mostly not in the page cache is read with
 * direct I/O: the device writes into the slot, and no page of the page
 * cache is filled, copied and evicted for it. A cached file is read from
 * the cache (direct reads would go to the device). */
static bool read_direct(sender *s, int fd, uint64_t size)
{
	if (s->cfg->no_direct || size < DIRECT_MIN || s->chunk % SX_DIO_ALIGN != 0)
		return false;
	int64_t cached = sx_cached_bytes(fd, size);
	if (cached < 0 || (uint64_t)cached > size / 8)
		return false;
	return sx_direct_on(fd) != 0;
}

/* A file is sent at the size it had when it was begun (FILE_BEGIN, and the
 * signed descriptor, carry it). One that has more bytes by the time its
 * last read is asked for grew while it was being sent, or its size said
 * less than it holds (files under /proc); the rest is not sent, and the
 * sender says so, once per file. With direct I/O the size tells (a read
 * of one byte is not aligned); otherwise one byte is read past the end. */
static void check_grown(sender *s, const entry *e)
{
	struct stat st;
	uint8_t probe;
	bool grew = fstat(s->cur_fd, &st) == 0 && (uint64_t)st.st_size > s->cur_size;
	if (!grew && !s->cur_direct)
		grew = pread(s->cur_fd, &probe, 1, (off_t)s->cur_size) == 1;
	if (!grew)
		return;
	s->stats->files_grew++;
	sx_log("warn", "file_grew",
	       "path=%s sent=%llu reason=\"the file has more bytes than when it was begun: "
	       "only the bytes it had then were sent\"",
	       SX_LOGQ(e->src), (unsigned long long)s->cur_size);
}

/* Fills free slots with the next records, in order. */
static int produce(sender *s, sx_err *err)
{
	slot *sl;
	while (!s->produced_eos && (sl = free_slot(s)) != NULL) {
		sl->late = LATE_NONE;
		if (!s->session_queued) {
			sx_msg m = {.type = SX_MSG_SESSION,
				    .flags = s->sign ? SX_SESSION_SIGNED : 0,
				    .hash_chunk = s->chunk};
			memcpy(m.transfer_id, s->tid, SX_TID_LEN);
			SX_GUARD(put_ctrl(s, sl, &m, err));
			s->session_queued = true;
			continue;
		}
		if (s->sign && s->p_files > 0 &&
		    (s->p_files >= s->batch_files || s->p_bytes >= s->batch_bytes ||
		     sx_now_ns() - s->p_t0 >= s->batch_ns || s->cur == s->ents.n)) {
			/* The batch closes: its BATCH record follows the FILE_END
			 * of its last file. */
			sl->type = SX_REC_CTRL;
			sl->late = LATE_BATCH;
			sl->state = SLOT_READY;
			sl->order = s->next_order++;
			s->p_files = 0;
			s->p_bytes = 0;
			continue;
		}
		if (s->cur == s->ents.n) {
			sl->type = SX_REC_EOS;
			sl->plen = 0;
			sl->state = SLOT_READY;
			sl->order = s->next_order++;
			s->produced_eos = true;
			break;
		}
		entry *e = &s->ents.v[s->cur];
		sx_msg m = {0};
		if (s->phase == 0) {
			struct stat st;
			m.path = (const uint8_t *)e->rel;
			m.path_len = strlen(e->rel);
			if (e->is_dir) {
				if (stat(e->src, &st) < 0)
					return sx_fail_errno(err, SX_E_IO, errno, "%s", e->src);
				m.type = SX_MSG_DIR;
				stat_to_msg(&st, &m);
				SX_GUARD(put_ctrl(s, sl, &m, err));
				s->cur++;
				continue;
			}
			if (e->src == NULL) {
				s->cur_fd = STDIN_FILENO;
				memset(&st, 0, sizeof(st));
				st.st_mode = 0644;
				struct timespec now;
				clock_gettime(CLOCK_REALTIME, &now);
				st.st_mtim = now;
				s->cur_size = SX_SIZE_UNKNOWN;
			} else {
				s->cur_fd = open(e->src, O_RDONLY | O_CLOEXEC);
				if (s->cur_fd < 0 || fstat(s->cur_fd, &st) < 0)
					return sx_fail_errno(err, SX_E_IO, errno, "%s", e->src);
				s->cur_size = (uint64_t)st.st_size;
				s->cur_direct =
				    S_ISREG(st.st_mode) && read_direct(s, s->cur_fd, s->cur_size);
				/* Removed before its close (close_idle_fds); the
				 * rest go with sx_io_close. */
				(void)sx_io_file_add(s->io, s->cur_fd);
			}
			s->cur_refused = false;
			m.type = SX_MSG_FILE_BEGIN;
			m.file_id = ++s->file_id;
			m.size = s->cur_size;
			stat_to_msg(&st, &m);
			SX_GUARD(put_ctrl(s, sl, &m, err));
			sl->late = LATE_BEGIN;
			sl->entry = s->cur;
			e->file_id = m.file_id;
			e->size = s->cur_size;
			SX_GUARD(fid_add(s, m.file_id, s->cur, err));
			e->mtime_sec = m.mtime_sec;
			e->mtime_nsec = m.mtime_nsec;
			s->cur_off = 0;
			s->stream_ckpt_off = 0;
			s->phase = 1;
			continue;
		}
		if (s->phase == 1) {
			if (e->src == NULL) {
				if (s->stream_reading)
					break;
				if (s->sign && s->cur_off - s->stream_ckpt_off >=
						   (uint64_t)s->ckpt_records * s->chunk) {
					/* A signed checkpoint every K chunks of a
					 * stream: a cut-off stream stays verifiable
					 * up to here. Counted in bytes, not records
					 * (a pipe gives short reads), so each
					 * checkpoint covers K more whole leaves. */
					sl->type = SX_REC_CTRL;
					sl->late = LATE_CHECKPOINT;
					sl->entry = s->cur;
					sl->state = SLOT_READY;
					sl->order = s->next_order++;
					s->stream_ckpt_off = s->cur_off;
					continue;
				}
				sl->stream = true;
				sl->want = s->chunk;
			} else if (s->cur_refused && s->cur_off < s->cur_size) {
				/* The receiver refused it (FILE_ERR): the rest
				 * would be dropped there. It ends here with
				 * what was sent (docs/PROTOCOL.md, FILE_END). */
				s->cur_size = e->size = s->cur_off;
				s->phase = 2;
				continue;
			} else if (s->cur_off < s->cur_size) {
				uint64_t left = s->cur_size - s->cur_off;
				sl->stream = false;
				sl->want = left < s->chunk ? (size_t)left : s->chunk;
			} else {
				s->phase = 2;
				continue;
			}
			sl->type = SX_REC_DATA;
			sl->fd = s->cur_fd;
			sl->off = s->cur_off;
			sl->plen = 0;
			sl->direct = !sl->stream && s->cur_direct;
			sl->order = s->next_order++;
			SX_GUARD(submit_read(s, sl, err));
			if (sl->stream)
				s->stream_reading = true;
			else
				s->cur_off += sl->want;
			continue;
		}
		/* phase 2: end of a regular file (a stream ends in on_read) */
		if (!s->cur_refused)
			check_grown(s, e);
		sl->type = SX_REC_CTRL;
		sl->late = LATE_END;
		sl->entry = s->cur;
		sl->state = SLOT_READY;
		sl->order = s->next_order++;
		if (s->p_files++ == 0)
			s->p_t0 = sx_now_ns();
		s->p_bytes += s->cur_size;
		/* Reads of this file may still be in flight; its fd is closed
		 * when the last one completes (see on_read), or now when none
		 * is (an empty file has none). */
		SX_GUARD(park_fd(s, s->cur_fd, err));
		s->cur_fd = -1;
		s->cur++;
		s->phase = 0;
	}
	return 0;
out:
	return -1;
}

static void close_idle_fds(sender *s);

/* Keeps fd until the reads in flight on it complete. */
static int park_fd(sender *s, int fd, sx_err *err)
{
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++)
		if (s->fds_open[i] < 0) {
			s->fds_open[i] = fd;
			close_idle_fds(s);
			return 0;
		}
	sx_io_file_remove(s->io, fd);
	close(fd);
	return sx_fail(err, SX_E_OTHER, "too many files with reads in flight (internal)");
}

static void close_idle_fds(sender *s)
{
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++) {
		int fd = s->fds_open[i];
		if (fd < 0)
			continue;
		bool busy = false;
		for (unsigned j = 0; j < NSLOTS; j++)
			if (s->slots[j].state == SLOT_READING && s->slots[j].fd == fd)
				busy = true;
		if (!busy) {
			sx_io_file_remove(s->io, fd);
			close(fd);
			s->fds_open[i] = -1;
		}
	}
}

static int on_read(sender *s, unsigned idx, int64_t res, sx_err *err)
{
	slot *sl = &s->slots[idx];
	if (res < 0)
		return sx_fail_errno(err, SX_E_IO, (int)-res, "%s: read failed",
				     sl->stream ? "standard input" : "file");
	if (sl->stream) {
		s->stream_reading = false;
		if (res == 0) {
			/* End of the stream: this slot keeps its place in the
			 * order and carries FILE_END instead of data. */
			sl->type = SX_REC_CTRL;
			sl->late = LATE_END;
			sl->entry = s->cur;
			sl->state = SLOT_READY;
			s->ents.v[s->cur].size = s->cur_off;
			if (s->p_files++ == 0)
				s->p_t0 = sx_now_ns();
			s->p_bytes += s->cur_off;
			s->cur++;
			s->phase = 0;
			return 0;
		}
		sl->plen = (size_t)res;
		s->cur_off += (uint64_t)res;
		sl->state = SLOT_READY;
		return 0;
	}
	if (res == 0)
		return sx_fail(err, SX_E_IO, "a file shrank while it was being sent");
	sl->plen += (size_t)res;
	if (sl->direct) {
		/* Whole blocks were asked for: more than wanted means the
		 * file grew since it was announced (its announced size is
		 * sent, as with buffered reads); a short read that is not
		 * whole blocks means it shrank. */
		if (sl->plen >= sl->want) {
			s->stats->direct_bytes += sl->want;
			sl->plen = sl->want;
		} else if (sl->plen % SX_DIO_ALIGN != 0) {
			return sx_fail(err, SX_E_IO, "a file shrank while it was being sent");
		}
	}
	if (sl->plen < sl->want)
		return submit_read(s, sl, err);
	sl->state = SLOT_READY;
	return 0;
}

static sx_sbatch *open_batch(sender *s, sx_err *err)
{
	if (s->nbatches > 0 && !s->batches[s->nbatches - 1].sealed)
		return &s->batches[s->nbatches - 1];
	if (s->nbatches == s->batches_cap) {
		size_t ncap = s->batches_cap ? s->batches_cap * 2 : 8;
		sx_sbatch *nb = realloc(s->batches, ncap * sizeof(*nb));
		if (nb == NULL) {
			sx_fail(err, SX_E_OTHER, "out of memory");
			return NULL;
		}
		s->batches = nb;
		s->batches_cap = ncap;
	}
	sx_sbatch *b = &s->batches[s->nbatches++];
	memset(b, 0, sizeof(*b));
	b->number = s->nbatches;
	return b;
}

/* Runs when a late slot's turn to be sealed comes: everything before it has
 * been sealed and hashed, in order. */
static int seal_time(sender *s, slot *sl, sx_err *err)
{
	entry *e = &s->ents.v[sl->entry];
	uint8_t sig[SX_SIG_MAX], root[SX_HASH_LEN] = {0};
	uint64_t leaves = 0, bytes = 0;
	size_t sig_len = 0;
	int64_t now = (int64_t)time(NULL);
	sx_msg m = {0};
	switch (sl->late) {
	case LATE_BEGIN:
		sx_zauto_reset(&s->za);
		if (s->sign) {
			SX_GUARD(sx_filehash_init(&s->fh, s->chunk, err));
			s->fh_open = true;
		}
		return 0;
	case LATE_END:
		if (s->fh_open) {
			SX_GUARD(sx_filehash_final(&s->fh, root, &leaves, &bytes, err));
			sx_filehash_free(&s->fh);
			s->fh_open = false;
			sx_sbatch *b = open_batch(s, err);
			if (b == NULL)
				goto out;
			SX_GUARD(sx_sbatch_add(b, e->file_id, root, e->size, e->mtime_sec,
					       e->mtime_nsec, e->rel, err));
			s->fids[e->file_id].batch = (int)(b - s->batches);
			s->fids[e->file_id].pos = b->n - 1;
		}
		m.type = SX_MSG_FILE_END;
		m.file_id = e->file_id;
		m.size = e->size;
		memcpy(m.root, root, sizeof(root));
		return fill_ctrl(sl, &m, err);
	case LATE_BATCH: {
		sx_sbatch *b = open_batch(s, err);
		if (b == NULL)
			goto out;
		SX_GUARD(sx_sbatch_sign(b, s->tid, s->chunk, now, s->cfg->id->key, err));
		m.type = SX_MSG_BATCH;
		m.batch_no = b->number;
		m.time = now;
		m.nfiles = b->n;
		m.sig = b->b.sig;
		m.sig_len = b->b.sig_len;
		s->stats->batches++;
		return fill_ctrl(sl, &m, err);
	}
	case LATE_CHECKPOINT: {
		uint8_t stmt[SX_STMT_CHECKPOINT_MAX];
		size_t stmt_len = 0;
		SX_GUARD(sx_filehash_checkpoint(&s->fh, root, &leaves, &bytes, err));
		SX_GUARD(sx_stmt_checkpoint(s->tid, e->rel, s->chunk, leaves, bytes, root, now,
					    stmt, sizeof(stmt), &stmt_len, err));
		SX_GUARD(sx_sign(s->cfg->id->key, stmt, stmt_len, sig, &sig_len, err));
		m.type = SX_MSG_CHECKPOINT;
		m.file_id = e->file_id;
		m.leaves = leaves;
		m.size = bytes;
		m.time = now;
		m.sig = sig;
		m.sig_len = sig_len;
		s->stats->checkpoints++;
		return fill_ctrl(sl, &m, err);
	}
	default: return sx_fail(err, SX_E_OTHER, "unknown late slot %d", sl->late);
	}
out:
	return -1;
}

/* Compresses a DATA record in place when it is worth it (docs/PROTOCOL.md,
 * "Compressed DATA records"): the frame is made in the scratch buffer and
 * copied over the chunk only when it is smaller, so an incompressible chunk
 * costs no copy and a compressed record is never larger than the plain one. */
static int compress_slot(sender *s, slot *sl, uint8_t *flags, sx_err *err)
{
	const uint8_t *src = sl->buf + SX_REC_HDR_LEN;
	bool automatic = s->cfg->zmode == SX_ZMODE_AUTO;
	size_t z = 0;
	int r;
	*flags = 0;
	if (s->cctx == NULL || sl->plen == 0)
		return 0;
	if (automatic) {
		int next = sx_zauto_next(&s->za);
		if (next == SX_ZAUTO_SKIP)
			return 0;
		if (next == SX_ZAUTO_SAMPLE && sl->plen > SX_ZAUTO_SAMPLE_LEN) {
			/* The sample alone: on media this is all the work done. */
			r = sx_zrec_compress(s->cctx, SX_ZLEVEL_AUTO, src, SX_ZAUTO_SAMPLE_LEN,
					     s->zbuf, &z, err);
			if (r < 0)
				return -1;
			sx_zauto_result(&s->za, SX_ZAUTO_SAMPLE_LEN, r ? z : SX_ZAUTO_SAMPLE_LEN);
			if (s->za.skipping)
				return 0;
		}
	}
	r = sx_zrec_compress(s->cctx, s->zlevel, src, sl->plen, s->zbuf, &z, err);
	if (r < 0)
		return -1;
	if (automatic)
		sx_zauto_result(&s->za, sl->plen, r ? z : sl->plen);
	if (r == 0)
		return 0;
	memcpy(sl->buf + SX_REC_HDR_LEN, s->zbuf, z);
	sl->plen = z;
	*flags = SX_REC_FLAG_COMPRESSED;
	s->stats->records_compressed++;
	return 0;
}

static slot *slot_at(sender *s, uint64_t order)
{
	for (unsigned i = 0; i < NSLOTS; i++)
		if (s->slots[i].state != SLOT_FREE && s->slots[i].state != SLOT_READING &&
		    s->slots[i].order == order)
			return &s->slots[i];
	return NULL;
}

/* A whole-chunk DATA record of a regular file that goes out uncompressed
 * can be hashed and sealed by a worker: its Merkle leaf is the chunk itself.
 * Streams (leaves across records) and records being compressed stay here. */
static bool poolable(sender *s, const slot *sl)
{
	if (s->pool == NULL || sl->type != SX_REC_DATA || sl->stream || sl->plen == 0)
		return false;
	if (s->cctx == NULL)
		return true;
	/* auto: the next answer of sx_zauto_next is known to be SKIP */
	return s->cfg->zmode == SX_ZMODE_AUTO && !s->za.fresh && s->za.skipping &&
	       s->za.since + 1 < SX_ZAUTO_RECHECK;
}

/* Prepares records in sequence order: reserves (sequence number, epoch) and
 * hands whole chunks to the pool, or hashes, compresses and seals here,
 * which waits until every earlier record is folded in. */
static int prepare(sender *s, sx_err *err)
{
	slot *sl;
	while ((sl = slot_at(s, s->prep_order)) != NULL && sl->state == SLOT_READY) {
		unsigned idx = (unsigned)(sl - s->slots);
		if (poolable(s, sl)) {
			sx_pjob *j = &s->jobs[idx];
			memset(j, 0, sizeof(*j));
			j->rec = sl->buf;
			j->plen = sl->plen;
			j->type = SX_REC_DATA;
			j->leaf = s->fh_open;
			j->slot = idx;
			if (s->cctx != NULL)
				(void)sx_zauto_next(&s->za);
			sl->raw = sl->plen;
			SX_GUARD(sx_record_reserve(&s->link.k.tx, sl->plen, &j->key, err));
			SX_GUARD(sx_pool_submit(s->pool, j, err));
			sl->state = SLOT_SEALING;
			s->prep_order++;
			continue;
		}
		if (s->fin_order != s->prep_order)
			return 0;
		uint8_t flags = 0;
		if (sl->type == SX_REC_DATA) {
			/* The Merkle leaves are over the file's bytes: hashed
			 * before compression. */
			if (s->fh_open)
				SX_GUARD(sx_filehash_update(&s->fh, sl->buf + SX_REC_HDR_LEN,
							    sl->plen, err));
			sl->raw = sl->plen;
			SX_GUARD(compress_slot(s, sl, &flags, err));
		}
		if (sl->late != LATE_NONE)
			SX_GUARD(seal_time(s, sl, err));
		SX_GUARD(sx_record_seal(&s->link.k.tx, sl->type, flags, sl->buf, sl->plen,
					&sl->rec_len, err));
		sl->state = SLOT_SEALED;
		s->prep_order++;
		s->fin_order++;
	}
	return 0;
out:
	return -1;
}

/* Finished jobs: their leaves go into the file's tree in record order. */
static int on_pool(sender *s, int64_t res, sx_err *err)
{
	sx_pjob *done[SX_POOL_QUEUE];
	if (res < 0)
		return sx_fail_errno(err, SX_E_OTHER, (int)-res, "worker notification");
	size_t n = sx_pool_take(s->pool, done, SX_ARRAY_LEN(done));
	for (size_t i = 0; i < n; i++) {
		if (done[i]->rc < 0) {
			*err = done[i]->err;
			return -1;
		}
		s->slots[done[i]->slot].rec_len = done[i]->rec_len;
		s->slots[done[i]->slot].state = SLOT_DONE;
	}
	slot *sl;
	while ((sl = slot_at(s, s->fin_order)) != NULL && sl->state == SLOT_DONE) {
		sx_pjob *j = &s->jobs[sl - s->slots];
		if (j->leaf && sx_filehash_add_leaf(&s->fh, j->leaf_hash, sl->raw, err) < 0)
			return -1;
		sl->state = SLOT_SEALED;
		s->fin_order++;
	}
	return sx_io_read(s->io, sx_pool_fd(s->pool), &s->efd_buf, sizeof(s->efd_buf),
			  SX_IO_OFF_CUR, tag_of(OP_POOL, 0), err);
}

/* One send in flight keeps the byte stream in sequence order. */
static int send_next(sender *s, sx_err *err)
{
	if (s->sending || !s->link.ready)
		return 0;
	slot *sl = slot_at(s, s->send_order);
	if (sl == NULL || sl->state != SLOT_SEALED)
		return 0;
	sl->state = SLOT_SENDING;
	s->sending = true;
	return sx_io_send(s->io, s->sock, sl->buf, sl->rec_len,
			  tag_of(OP_SEND, (unsigned)(sl - s->slots)), err);
}

static int on_send(sender *s, unsigned idx, int64_t res, sx_err *err)
{
	slot *sl = &s->slots[idx];
	if (res < 0) {
		/* The receiver may have closed after telling us why (a sealed
		 * ERROR already in our socket buffer): read on for a moment before
		 * reporting the broken send. */
		sx_fail_errno(&s->send_err, SX_E_NET, (int)-res, "send to %s failed", s->cfg->host);
		s->draining = true;
		(void)err;
		return 0;
	}
	if (sl->type == SX_REC_DATA) {
		s->prog.bytes_sent += sl->raw;
		s->stats->bytes += sl->raw;
		s->stats->wire_bytes += sl->plen;
		s->stats->records++;
	}
	if (sl->type == SX_REC_EOS)
		s->eos_sent = true;
	sl->state = SLOT_FREE;
	s->sending = false;
	s->send_order++;
	return 0;
}

static int fid_add(sender *s, uint32_t id, size_t entry, sx_err *err)
{
	if (id >= s->fids_cap) {
		size_t ncap = s->fids_cap ? s->fids_cap * 2 : 256;
		while (ncap <= id)
			ncap *= 2;
		struct fid *n = realloc(s->fids, ncap * sizeof(*n));
		if (n == NULL)
			return sx_fail(err, SX_E_OTHER, "out of memory");
		s->fids = n;
		s->fids_cap = ncap;
	}
	s->fids[id] = (struct fid){.entry = entry, .batch = -1};
	return 0;
}

/* Each file the sender began gets exactly one answer; a FILE_OK must name
 * the size that was sent. Anything else is the receiver misbehaving. */
static int mark_answer(sender *s, uint32_t file_id, sx_answer state, uint64_t size, sx_err *err)
{
	if (file_id == 0 && state == SX_ANS_REFUSED)
		return 0; /* a folder the receiver could not create */
	if (file_id == 0 || file_id > s->file_id || s->fids[file_id].answered)
		return sx_fail(err, SX_E_INTEGRITY, "receiver answered for unknown file %u",
			       file_id);
	struct fid *f = &s->fids[file_id];
	if (state == SX_ANS_STORED && size != s->ents.v[f->entry].size)
		return sx_fail(err, SX_E_INTEGRITY,
			       "receiver stored %llu bytes of '%s', %llu were sent",
			       (unsigned long long)size, s->ents.v[f->entry].rel,
			       (unsigned long long)s->ents.v[f->entry].size);
	f->answered = true;
	s->answers++;
	if (f->batch >= 0) {
		s->batches[f->batch].state[f->pos] = (uint8_t)state;
		s->batches[f->batch].answered++;
	}
	return 0;
}

/* A receipt is rebuilt here from what this side knows (the batch, the files
 * the receiver stored, both certificates) and must verify under the
 * receiver's signature; then it is written to the receipts folder. */
static int on_receipt(sender *s, const sx_msg *m, sx_err *err)
{
	sx_receipt r = {0};
	sx_sbatch *b = NULL;
	char *text = NULL;
	size_t text_len = 0;
	int rc = -1;
	for (size_t i = 0; i < s->nbatches; i++)
		if (s->batches[i].number == m->batch_no && s->batches[i].sealed)
			b = &s->batches[i];
	if (b == NULL || b->receipted)
		return sx_fail(err, SX_E_INTEGRITY, "receipt for unknown batch %llu",
			       (unsigned long long)m->batch_no);
	STACK_OF(X509) *peer = s->link.k.peer_chain;
	SX_GUARD(
	    sx_sbatch_receipt(b, s->tid, m->time, sk_X509_value(s->cfg->id->chain, 0), &r, err));
	SX_GUARD(sx_cert_fp(sk_X509_value(peer, 0), r.receiver_fp, err));
	r.chain = sk_X509_dup(peer);
	SX_ENSURE(r.chain != NULL, err, SX_E_OTHER, "out of memory");
	for (int i = 0; i < sk_X509_num(r.chain); i++)
		X509_up_ref(sk_X509_value(r.chain, i));
	r.alg = sx_sigalg_for_key(X509_get0_pubkey(sk_X509_value(peer, 0)));
	SX_ENSURE(m->sig_len <= sizeof(r.sig), err, SX_E_INTEGRITY, "receipt signature too long");
	memcpy(r.sig, m->sig, m->sig_len);
	r.sig_len = m->sig_len;
	/* The receiver's revocation, as for its certificate in the handshake. */
	sx_policy pol = {.anchors = s->cfg->id->anchors,
			 .crl = s->cfg->crl != NULL ? s->cfg->crl : s->cfg->id->crl};
	if (sx_receipt_verify(&r, &pol, r.sender_fp, err) < 0) {
		sx_err_prefix(err, "receipt for batch %llu: ", (unsigned long long)m->batch_no);
		goto out;
	}
	SX_GUARD(sx_receipt_encode(&r, &text, &text_len, err));
	char path[4096], hex[2 * SX_TID_LEN + 1];
	for (int i = 0; i < SX_TID_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", s->tid[i]);
	SX_ENSURE(snprintf(path, sizeof(path), "%s/%s-%04llu.sxreceipt", s->receipts_dir, hex,
			   (unsigned long long)m->batch_no) < (int)sizeof(path),
		  err, SX_E_IO, "receipts folder path too long");
	SX_GUARD(sx_file_write_atomic(path, text, text_len, 0644, err));
	b->receipted = true;
	s->receipts++;
	s->stats->receipts++;
	rc = 0;
out:
	free(text);
	sx_receipt_free(&r);
	return rc;
}

static int on_ctrl(sender *s, const uint8_t *pt, size_t len, sx_err *err)
{
	sx_msg m;
	if (sx_msg_decode(pt, len, &m, err) < 0)
		return -1;
	switch (m.type) {
	case SX_MSG_FILE_OK:
		if (mark_answer(s, m.file_id, SX_ANS_STORED, m.size, err) < 0)
			return -1;
		s->stats->files_ok++;
		s->prog.files_done++;
		return 0;
	case SX_MSG_RECEIPT: return on_receipt(s, &m, err);
	case SX_MSG_FILE_ERR:
		if (mark_answer(s, m.file_id, SX_ANS_REFUSED, 0, err) < 0)
			return -1;
		/* Refused while it is still being read: stop reading it. */
		if (s->phase == 1 && s->cur < s->ents.n && s->ents.v[s->cur].file_id == m.file_id &&
		    s->ents.v[s->cur].src != NULL)
			s->cur_refused = true;
		s->stats->files_failed++;
		s->prog.files_done++;
		sx_log("error", "file_refused", "file_id=%u class=%u reason=%s", m.file_id,
		       m.err_class, SX_LOGQN((const char *)m.reason, m.reason_len));
		sx_fail(&s->file_err, (sx_class)m.err_class, "receiver refused a file: %.*s",
			(int)m.reason_len, (const char *)m.reason);
		return 0;
	case SX_MSG_ERROR:
		s->peer_error = true;
		return sx_fail(err, (sx_class)m.err_class, "receiver %s: %.*s", s->link.k.peer_name,
			       (int)m.reason_len, (const char *)m.reason);
	default:
		return sx_fail(err, SX_E_INTEGRITY,
			       "unexpected control message 0x%02x from receiver", m.type);
	}
}

static int post_recv(sender *s, sx_err *err)
{
	uint8_t *buf;
	size_t len;
	if (!s->link.ready)
		sx_link_hs_recv_buf(&s->link, &buf, &len);
	else
		sx_link_rx_want(&s->link, &buf, &len);
	return sx_io_recv(s->io, s->sock, buf, len, tag_of(OP_RECV, 0), err);
}

static int handshake_send(sender *s, sx_err *err)
{
	const uint8_t *buf;
	size_t len;
	sx_link_hs_output(&s->link, &buf, &len);
	if (len == 0)
		return 0;
	return sx_io_send(s->io, s->sock, buf, len, tag_of(OP_HS_SEND, 0), err);
}

/* n more bytes of the record being assembled; *more is false once the
 * session's end arrived (no further receive). */
static int on_input(sender *s, size_t n, bool *more, sx_err *err)
{
	bool complete;
	uint8_t type, flags, *pt;
	size_t len;
	*more = true;
	SX_GUARD(sx_link_rx_input(&s->link, n, &complete, &type, &flags, &pt, &len, err));
	if (complete) {
		if (flags != 0)
			return sx_fail(err, SX_E_INTEGRITY,
				       "compressed record from the receiver (only DATA may be)");
		if (type == SX_REC_CTRL)
			SX_GUARD(on_ctrl(s, pt, len, err));
		else if (type == SX_REC_EOS) {
			if (!s->eos_sent)
				return sx_fail(err, SX_E_INTEGRITY,
					       "receiver ended the session early");
			s->eos_received = true;
			*more = false;
		} else
			return sx_fail(err, SX_E_INTEGRITY,
				       "unexpected record type %u from receiver", type);
	}
	return 0;
out:
	return -1;
}

static int on_recv(sender *s, int64_t res, sx_err *err)
{
	bool more = true;
	if (res < 0)
		return sx_fail_errno(err, SX_E_NET, (int)-res, "receive from %s failed",
				     s->cfg->host);
	if (res == 0) {
		if (!s->link.ready)
			return sx_fail(err, SX_E_NET,
				       "%s closed the connection during the handshake",
				       s->cfg->host);
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s closed the connection without end-of-stream (truncated)",
			       s->cfg->host);
	}
	if (!s->link.ready) {
		SX_GUARD(sx_link_hs_input(&s->link, (size_t)res, err));
		SX_GUARD(handshake_send(s, err));
		if (s->link.ready) {
			sx_link_rx_set(&s->link, s->rxbuf, sizeof(s->rxbuf));
			s->link.max_body = RX_CAP + SX_REC_TAG_MAX;
			uint32_t peer = s->link.k.peer_max_record;
			size_t tag = sx_suite_tag_len(s->link.k.tx.suite);
			if (peer < tag + SX_CHUNK_MIN)
				return sx_fail(err, SX_E_NET,
					       "receiver's maximum record is too small");
			/* Clamped to whole blocks (at least SX_CHUNK_MIN, as
			 * checked above): both ends keep direct I/O, which an
			 * odd chunk size turns off. */
			if (s->chunk > peer - tag)
				s->chunk = (uint32_t)((peer - tag) / SX_DIO_ALIGN * SX_DIO_ALIGN);
			snprintf(s->stats->peer_name, sizeof(s->stats->peer_name), "%s",
				 s->link.k.peer_name);
			memcpy(s->stats->peer_fingerprint, s->link.k.peer_fingerprint, 65);
			s->stats->suite = (sx_suite)s->link.k.hello.suite;
			/* Records right behind CONFIRM (a receiver that fails at
			 * once says why in an ERROR there). */
			while (more && sx_link_rx_early(&s->link) > 0)
				SX_GUARD(on_input(s, sx_link_rx_feed(&s->link), &more, err));
		}
		return more ? post_recv(s, err) : 0;
	}
	SX_GUARD(on_input(s, (size_t)res, &more, err));
	return more ? post_recv(s, err) : 0;
out:
	return -1;
}

int sx_send_run(const sx_send_cfg *cfg, sx_send_stats *stats, sx_err *err)
{
	sender *s = calloc(1, sizeof(*s));
	sx_chan_ctx *ctx = NULL;
	int rc = -1;
	uint64_t t0 = sx_now_ns();
	if (s == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	memset(stats, 0, sizeof(*stats));
	s->cfg = cfg;
	s->stats = stats;
	s->sock = -1;
	s->cur_fd = -1;
	s->prog.total_known = true;
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++)
		s->fds_open[i] = -1;
	s->chunk = cfg->chunk ? cfg->chunk : SX_CHUNK_DEFAULT;
	s->sign = !cfg->no_sign;
	s->batch_files = cfg->batch_files ? cfg->batch_files : SX_BATCH_FILES_DEFAULT;
	if (s->batch_files > SX_BATCH_FILES_MAX)
		s->batch_files = SX_BATCH_FILES_MAX;
	s->batch_bytes = cfg->batch_bytes ? cfg->batch_bytes : SX_BATCH_BYTES_DEFAULT;
	s->batch_ns =
	    (uint64_t)(cfg->batch_ms > 0 ? cfg->batch_ms : SX_BATCH_MS_DEFAULT) * 1000000u;
	s->ckpt_records =
	    cfg->checkpoint_records ? cfg->checkpoint_records : SX_CHECKPOINT_RECORDS_DEFAULT;
	SX_GUARD(build_entries(s, err));
	if (s->sign) {
		SX_ENSURE(RAND_bytes(s->tid, sizeof(s->tid)) == 1, err, SX_E_OTHER,
			  "no random bytes for the transfer id");
		const char *home = getenv("HOME");
		if (cfg->receipts_dir != NULL)
			snprintf(s->receipts_dir, sizeof(s->receipts_dir), "%s", cfg->receipts_dir);
		else
			snprintf(s->receipts_dir, sizeof(s->receipts_dir), "%s/%s",
				 home ? home : ".", SX_RECEIPTS_DEFAULT);
		SX_GUARD(sx_mkdirs(s->receipts_dir, 0700, err));
		memcpy(stats->receipts_dir, s->receipts_dir, sizeof(stats->receipts_dir));
	}
	/* All slots in one region, so the backend can register it once. Each
	 * slot's payload starts on an SX_DIO_ALIGN boundary (its header just
	 * before), with a block to spare behind the chunk and its tag, so a
	 * direct read of a whole last block fits. */
	size_t stride = SX_DIO_ALIGN + (s->chunk > CTRL_MAX ? s->chunk : CTRL_MAX) +
			SX_REC_TAG_MAX + SX_DIO_ALIGN;
	stride = (stride + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	size_t cap = stride - (SX_DIO_ALIGN - SX_REC_HDR_LEN);
	s->region = aligned_alloc(SX_DIO_ALIGN, stride * NSLOTS);
	if (s->region == NULL) {
		sx_fail(err, SX_E_OTHER, "out of memory");
		goto out;
	}
	if (cfg->zmode != SX_ZMODE_OFF) {
		/* Allocated once: nothing on the data path allocates. */
		s->zlevel = cfg->zlevel
				? cfg->zlevel
				: (cfg->zmode == SX_ZMODE_AUTO ? SX_ZLEVEL_AUTO : SX_ZLEVEL_ON);
		s->cctx = ZSTD_createCCtx();
		s->zcap = s->chunk;
		s->zbuf = malloc(s->zcap);
		SX_ENSURE(s->cctx != NULL && s->zbuf != NULL, err, SX_E_OTHER, "out of memory");
	}
	for (unsigned i = 0; i < NSLOTS; i++) {
		s->slots[i].cap = cap;
		s->slots[i].buf = s->region + stride * i + SX_DIO_ALIGN - SX_REC_HDR_LEN;
		s->slots[i].fd = -1;
	}
	sx_chan_cfg cc = {
	    .server = false,
	    .id = cfg->id,
	    .crl = cfg->crl,
	    .server_name = cfg->server_name ? cfg->server_name : cfg->host,
	    .suite = cfg->suite,
	    .rotate_bytes = cfg->rotate_bytes,
	    .max_record = RX_CAP + SX_REC_TAG_MAX,
	};
	SX_GUARD(sx_chan_ctx_new(&ctx, &cc, err));
	SX_GUARD(sx_io_open(&s->io, cfg->io, 64, err));
	stats->io_backend = sx_io_name(s->io);
	if (cfg->zerocopy)
		sx_io_set_zerocopy(s->io, 64 * 1024);
	/* A registered region spares the kernel a page walk per read; where the
	 * memlock limit is too small the plain path is as correct. Removed by
	 * sx_io_close, before the region is freed. */
	(void)sx_io_buf_add(s->io, s->region, stride * NSLOTS);
	unsigned threads = cfg->threads;
	if (threads == 0) {
		/* One per core this process may run on. */
		cpu_set_t set;
		threads =
		    sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
	}
	if (threads > 8)
		threads = 8;
	if (threads > 1) {
		sx_err perr = {0};
		if (sx_pool_new(&s->pool, threads - 1, &perr) < 0) {
			if (cfg->threads != 0) {
				*err = perr;
				goto out;
			}
			/* Not asked for: seal on this thread rather than fail. */
			sx_log("warn", "threads", "reason=%s fallback=\"one thread\"",
			       SX_LOGQ(perr.msg));
			threads = 1;
		} else {
			SX_GUARD(sx_io_read(s->io, sx_pool_fd(s->pool), &s->efd_buf,
					    sizeof(s->efd_buf), SX_IO_OFF_CUR, tag_of(OP_POOL, 0),
					    err));
		}
	}
	stats->threads = threads;
	SX_GUARD(sx_net_connect(cfg->host, cfg->port, cfg->timeout_ms, &s->sock, err));
	/* Registered until sx_io_close, which comes before the close. */
	(void)sx_io_file_add(s->io, s->sock);
	SX_GUARD(sx_link_init(&s->link, ctx, err));
	SX_GUARD(handshake_send(s, err));
	SX_GUARD(post_recv(s, err));
	while (!(s->eos_sent && s->eos_received)) {
		sx_cqe cqe[16];
		if (s->link.ready && !s->draining) {
			SX_GUARD(produce(s, err));
			SX_GUARD(prepare(s, err));
			SX_GUARD(send_next(s, err));
		}
		int n = sx_io_wait(s->io, cqe, SX_ARRAY_LEN(cqe),
				   s->draining ? 1000 : cfg->timeout_ms, err);
		SX_GUARD(n);
		if (n == 0 && s->draining) {
			*err = s->send_err;
			goto out;
		}
		if (n == 0) {
			sx_fail(err, SX_E_NET, "%s: no progress for %d ms (timeout)", cfg->host,
				cfg->timeout_ms);
			goto out;
		}
		for (int i = 0; i < n; i++) {
			int op = (int)(cqe[i].tag >> 24);
			unsigned idx = (unsigned)(cqe[i].tag & 0xffffff);
			switch (op) {
			case OP_HS_SEND:
				if (cqe[i].res < 0) {
					sx_fail_errno(err, SX_E_NET, (int)-cqe[i].res,
						      "send to %s failed", cfg->host);
					goto out;
				}
				sx_link_hs_sent(&s->link);
				SX_GUARD(handshake_send(s, err));
				break;
			case OP_RECV:
				if (on_recv(s, cqe[i].res, err) < 0) {
					if (s->draining && !s->peer_error)
						*err = s->send_err;
					goto out;
				}
				break;
			case OP_READ:
				SX_GUARD(on_read(s, idx, cqe[i].res, err));
				close_idle_fds(s);
				break;
			case OP_POOL: SX_GUARD(on_pool(s, cqe[i].res, err)); break;
			case OP_SEND:
				SX_GUARD(on_send(s, idx, cqe[i].res, err));
				if (cfg->on_progress)
					cfg->on_progress(cfg->progress_ctx, &s->prog);
				break;
			default:
				sx_fail(err, SX_E_OTHER, "unknown completion %llx",
					(unsigned long long)cqe[i].tag);
				goto out;
			}
		}
	}
	if (s->file_err.cls != SX_OK) {
		sx_fail(err, s->file_err.cls, "%s", s->file_err.msg);
		goto out;
	}
	SX_ENSURE(s->answers == s->file_id, err, SX_E_INTEGRITY,
		  "%s answered %llu of %u files before ending the session", s->link.k.peer_name,
		  (unsigned long long)s->answers, s->file_id);
	for (size_t i = 0; i < s->nbatches; i++)
		SX_ENSURE(s->batches[i].receipted, err, SX_E_INTEGRITY,
			  "%s sent no valid receipt for batch %llu", s->link.k.peer_name,
			  (unsigned long long)s->batches[i].number);
	/* Everything that could be sent was; what was skipped makes the
	 * session fail as a local problem, so a script notices. */
	SX_ENSURE(s->ents.skipped == 0, err, SX_E_IO,
		  "%llu file(s) sent; %llu file(s) or folder(s) skipped, not sent (see the "
		  "warnings)",
		  (unsigned long long)stats->files_ok, (unsigned long long)s->ents.skipped);
	rc = 0;
out:
	stats->files_skipped = s->ents.skipped;
	stats->seconds = (double)(sx_now_ns() - t0) / 1e9;
	if (rc < 0 && s->link.chan != NULL && !s->link.ready && s->sock >= 0 &&
	    s->link.hs_out_len == 0) {
		/* Best effort: the TLS alert that tells the server why. */
		const uint8_t *buf;
		size_t len;
		sx_chan_output(s->link.chan, &buf, &len);
		if (len > 0 && send(s->sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			sx_log("debug", "alert", "reason=\"cannot send the TLS alert\"");
	}
	if (s->io != NULL) {
		if (s->sock >= 0)
			if (sx_io_cancel_fd(s->io, s->sock, NULL) < 0)
				sx_log("warn", "cancel", "reason=\"cannot cancel socket I/O\"");
		sx_io_close(s->io);
	}
	/* The workers may still be sealing into the slots: stop them before
	 * the slots are freed. A job that never reached a worker still holds
	 * its epoch secret. */
	sx_pool_free(s->pool);
	OPENSSL_cleanse(s->jobs, sizeof(s->jobs));
	if (s->sock >= 0)
		close(s->sock);
	if (s->cur_fd > STDIN_FILENO)
		close(s->cur_fd);
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++)
		if (s->fds_open[i] >= 0)
			close(s->fds_open[i]);
	sx_link_free(&s->link);
	sx_chan_ctx_free(ctx);
	free(s->region);
	ZSTD_freeCCtx(s->cctx);
	if (s->zbuf != NULL)
		OPENSSL_cleanse(s->zbuf, s->zcap);
	free(s->zbuf);
	if (s->fh_open)
		sx_filehash_free(&s->fh);
	for (size_t i = 0; i < s->nbatches; i++)
		sx_sbatch_free(&s->batches[i]);
	free(s->batches);
	free(s->fids);
	ents_free(&s->ents);
	OPENSSL_cleanse(s->rxbuf, sizeof(s->rxbuf));
	free(s);
	return rc;
}
