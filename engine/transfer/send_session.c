/* The sender's session: sx_send_run walks its arguments into an ordered
 * list of entries (source.c), connects, and streams FILE_BEGIN, DATA...,
 * FILE_END per file and EOS through the pipeline (send.c) while the
 * receiver's answers, receipts and errors come in here. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/sx_state.h"
#include "engine/transfer/send_int.h"

int sx_send_fid_add(sender *s, uint32_t id, size_t entry, sx_err *err)
{
	if (sx_grow(&s->fids, &s->fids_cap, (size_t)id + 1, sizeof(*s->fids), SX_SEND_FILES_MAX,
		    "files in one session", err) < 0)
		return -1;
	s->fids[id] = (struct fid){.entry = entry, .batch = -1};
	return 0;
}

void sx_send_report_file(sender *s, const sx_entry *e, bool stored, bool same, sx_class cls,
			 const char *reason)
{
	if (s->cfg->on_file == NULL)
		return;
	sx_file_result r = {.arg = e->arg,
			    .rel = e->rel,
			    .size = e->size,
			    .stored = stored,
			    .same = same,
			    .cls = stored ? SX_OK : cls,
			    .reason = reason};
	s->cfg->on_file(s->cfg->file_ctx, &r);
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
	/* Done for the run: unsigned once stored; signed once its batch has
	 * its receipt (on_receipt), so that a file stored in an attempt cut
	 * before the receipt is asked about again (and comes back as FILE_SAME,
	 * covered by the next attempt's receipt). */
	if (state == SX_ANS_STORED && !s->sign) {
		s->ents.v[f->entry].done = true;
		sx_send_report_file(s, &s->ents.v[f->entry], true, f->same, SX_OK, NULL);
	}
	if (state == SX_ANS_STORED && f->same)
		s->stats->files_same++;
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
	SX_GUARD(sx_chain_copy(&r.chain, peer, err));
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
	char path[4096], hex[2 * SX_TID_LEN + 1];
	for (int i = 0; i < SX_TID_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", s->tid[i]);
	if (s->cfg->serving) {
		char root[2 * SX_HASH_LEN + 1];
		for (int i = 0; i < SX_HASH_LEN; i++)
			snprintf(root + 2 * i, 3, "%02x", b->b.root[i]);
		sx_log("info", "receipt",
		       "peer=%s transfer=%s batch=%llu files=%u root=%s verified=yes",
		       SX_LOGQ(s->link.k.peer_name), SX_LOGT(hex), (unsigned long long)m->batch_no,
		       b->b.count, SX_LOGT(root));
	}
	if (s->receipts_dir[0] != '\0') {
		SX_GUARD(sx_receipt_encode(&r, &text, &text_len, err));
		SX_ENSURE(snprintf(path, sizeof(path), "%s/%s-%04llu.sxreceipt", s->receipts_dir,
				   hex, (unsigned long long)m->batch_no) < (int)sizeof(path),
			  err, SX_E_IO, "receipts folder path too long");
		SX_GUARD(sx_file_write_atomic(path, text, text_len, 0644, err));
	}
	for (uint32_t i = 0; i < b->n; i++) {
		struct fid *f = &s->fids[b->file_ids[i]];
		if (b->state[i] != SX_ANS_STORED)
			continue;
		s->ents.v[f->entry].done = true;
		sx_send_report_file(s, &s->ents.v[f->entry], true, f->same, SX_OK, NULL);
		/* Done: its leaves will not be asked for again. */
		if (f->cached)
			sx_leafcache_remove(s->leaves_dir, &f->lc);
	}
	b->receipted = true;
	s->receipts++;
	s->stats->receipts++;
	rc = 0;
out:
	free(text);
	sx_receipt_free(&r);
	return rc;
}

/* A FILE_RESUME refused (the held part expired or was taken): the file is
 * sent whole by the next attempt, which this one's end asks for. */
static int on_resume_refused(sender *s, const sx_msg *m)
{
	sx_entry *e = &s->ents.v[s->fids[m->file_id].entry];
	e->fresh = true;
	s->resume_refused = true;
	sx_log("warn", "resume_refused", "path=%s reason=%s", SX_LOGQ(e->rel),
	       SX_LOGQN((const char *)m->reason, m->reason_len));
	return 0;
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
	case SX_MSG_OFFER: return sx_send_on_offer(s, &m, err);
	case SX_MSG_FILE_ERR:
		if (mark_answer(s, m.file_id, SX_ANS_REFUSED, 0, err) < 0)
			return -1;
		/* Refused while it is still being read: stop reading it. */
		if (s->phase == PH_DATA && s->cur < s->ents.n &&
		    s->ents.v[s->cur].file_id == m.file_id && s->ents.v[s->cur].src != NULL)
			s->cur_refused = true;
		if (m.file_id != 0 && s->fids[m.file_id].resumed)
			return on_resume_refused(s, &m);
		s->stats->files_failed++;
		s->prog.files_done++;
		sx_log("error", "file_refused", "file_id=%u class=%u reason=%s", m.file_id,
		       m.err_class, SX_LOGQN((const char *)m.reason, m.reason_len));
		if (m.file_id != 0) {
			sx_entry *e = &s->ents.v[s->fids[m.file_id].entry];
			char why[SX_REASON_MAX + 1];
			snprintf(why, sizeof(why), "%.*s", (int)m.reason_len,
				 (const char *)m.reason);
			e->done = true;
			sx_send_report_file(s, e, false, false, (sx_class)m.err_class, why);
		}
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

/* The keys are taken: records from here on. */
static int link_ready(sender *s, sx_err *err)
{
	sx_link_rx_set(&s->link, s->rxbuf, sizeof(s->rxbuf));
	s->link.max_body = RX_CAP + SX_REC_TAG_MAX;
	uint32_t peer = s->link.k.peer_max_record;
	size_t tag = sx_suite_tag_len(s->link.k.tx.suite);
	if (peer < tag + SX_CHUNK_MIN)
		return sx_fail(err, SX_E_NET, "receiver's maximum record is too small");
	/* Clamped to whole blocks (at least SX_CHUNK_MIN, as checked above):
	 * both ends keep direct I/O, which an odd chunk size turns off. */
	if (s->chunk > peer - tag)
		s->chunk = (uint32_t)((peer - tag) / SX_DIO_ALIGN * SX_DIO_ALIGN);
	snprintf(s->stats->peer_name, sizeof(s->stats->peer_name), "%s", s->link.k.peer_name);
	memcpy(s->stats->peer_fingerprint, s->link.k.peer_fingerprint, 65);
	s->stats->suite = (sx_suite)s->link.k.hello.suite;
	return 0;
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
		s->truncated = true;
		return sx_fail(err, SX_E_INTEGRITY,
			       "%s closed the connection without end-of-stream (truncated)",
			       s->cfg->host);
	}
	if (!s->link.ready) {
		SX_GUARD(sx_link_hs_input(&s->link, (size_t)res, err));
		SX_GUARD(handshake_send(s, err));
		if (s->link.ready) {
			SX_GUARD(link_ready(s, err));
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

/* Where a signed session keeps its receipts: --receipts DIR, else (a
 * sender) receipts/ of the state folder (common/sx_state.h); a server keeps
 * receipt files only where it is told to (each verified receipt is logged).
 * The leaf cache goes beside them, for the offers of a later attempt or run
 * (best effort: none when it cannot be made). */
static int receipts_init(sender *s, const sx_send_cfg *cfg, sx_send_stats *stats, sx_err *err)
{
	if (cfg->receipts_dir != NULL) {
		snprintf(s->receipts_dir, sizeof(s->receipts_dir), "%s", cfg->receipts_dir);
	} else if (!cfg->serving && sx_state_dir(s->receipts_dir, sizeof(s->receipts_dir),
						 SX_RECEIPTS_SUB, err) < 0) {
		sx_err_prefix(err, "where to keep the receipts (--receipts DIR): ");
		return -1;
	}
	if (s->receipts_dir[0] != '\0' && sx_mkdirs(s->receipts_dir, 0700, err) < 0)
		return -1;
	memcpy(stats->receipts_dir, s->receipts_dir, sizeof(stats->receipts_dir));
	if (s->ask && s->receipts_dir[0] != '\0')
		(void)sx_leafcache_dir(s->receipts_dir, s->leaves_dir, sizeof(s->leaves_dir));
	return 0;
}

/* The settings, the entries and the buffers of a session: everything that
 * is allocated once, before the connection. */
static int sender_init(sender *s, const sx_send_cfg *cfg, sx_send_stats *stats, send_run *run,
		       sx_err *err)
{
	s->cfg = cfg;
	s->stats = stats;
	s->sock = -1;
	s->file.fd = -1;
	s->lc.fd = -1;
	s->prog.total_known = true;
	for (unsigned i = 0; i < SX_ARRAY_LEN(s->fds_open); i++)
		s->fds_open[i] = -1;
	s->chunk = cfg->chunk ? cfg->chunk : SX_CHUNK_DEFAULT;
	s->rate.bps = cfg->limit_rate;
	s->chunk = sx_rate_chunk(cfg->limit_rate, s->chunk, SX_CHUNK_MIN);
	s->sign = !cfg->no_sign;
#ifdef SXFER_TEST_HOOKS
	/* TEST HOOK unsigned (see send.c): the server's side of get sends an
	 * unsigned session although the client asked for signatures. */
	const char *hostile = getenv("SXFER_TEST_HOSTILE");
	if (cfg->serving && hostile != NULL && strcmp(hostile, "unsigned") == 0)
		s->sign = false;
#endif
	s->batch_files = cfg->batch_files ? cfg->batch_files : SX_BATCH_FILES_DEFAULT;
	if (s->batch_files > SX_BATCH_FILES_MAX)
		s->batch_files = SX_BATCH_FILES_MAX;
	s->batch_bytes = cfg->batch_bytes ? cfg->batch_bytes : SX_BATCH_BYTES_DEFAULT;
	s->batch_ns =
	    (uint64_t)(cfg->batch_ms > 0 ? cfg->batch_ms : SX_BATCH_MS_DEFAULT) * 1000000u;
	s->ckpt_records =
	    cfg->checkpoint_records ? cfg->checkpoint_records : SX_CHECKPOINT_RECORDS_DEFAULT;
	if (run != NULL) {
		s->ents = run->ents;
		s->borrowed = true;
		s->prog = run->prog;
		s->file_err = run->file_err;
	} else {
		SX_GUARD(sx_entries_build(&s->ents, cfg, s->sign, &s->prog, err));
	}
	/* The server's side of get asks its client as a sender asks a
	 * server (not for standard output: serve_out.c sets no_resume). */
	s->ask = !cfg->no_resume;
	if (s->ask) {
		s->q = calloc(QWIN, sizeof(*s->q));
		SX_ENSURE(s->q != NULL, err, SX_E_OTHER, "out of memory");
	}
	if (s->sign) {
		SX_ENSURE(RAND_bytes(s->tid, sizeof(s->tid)) == 1, err, SX_E_OTHER,
			  "no random bytes for the transfer id");
		SX_GUARD(receipts_init(s, cfg, stats, err));
	}
	/* All slots in one region, so the backend can register it once. Each
	 * slot's payload starts on an SX_DIO_ALIGN boundary (its header just
	 * before), with a block to spare behind the chunk and its tag, so a
	 * direct read of a whole last block fits. */
	size_t stride = SX_DIO_ALIGN + (s->chunk > CTRL_MAX ? s->chunk : CTRL_MAX) +
			SX_REC_TAG_MAX + SX_DIO_ALIGN;
	stride = (stride + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	size_t cap = stride - (SX_DIO_ALIGN - SX_REC_HDR_LEN);
	s->region_len = stride * NSLOTS;
	s->region = aligned_alloc(SX_DIO_ALIGN, s->region_len);
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
	return 0;
out:
	return -1;
}

/* The event loop's helpers: the I/O backend, and the worker pool when
 * more than one thread seals. */
static int sender_start_io(sender *s, sx_err *err)
{
	const sx_send_cfg *cfg = s->cfg;
	SX_GUARD(sx_io_open(&s->io, cfg->io, 64, err));
	s->stats->io_backend = sx_io_name(s->io);
	if (cfg->zerocopy)
		sx_io_set_zerocopy(s->io, 64 * 1024);
	/* A registered region spares the kernel a page walk per read; where the
	 * memlock limit is too small the plain path is as correct. Removed by
	 * sx_io_close, before the region is freed. */
	(void)sx_io_buf_add(s->io, s->region, s->region_len);
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
	s->stats->threads = threads;
	return 0;
out:
	return -1;
}

/* One completion of the event loop. */
static int on_completion(sender *s, const sx_cqe *c, sx_err *err)
{
	const sx_send_cfg *cfg = s->cfg;
	int op = (int)(c->tag >> 24);
	unsigned idx = (unsigned)(c->tag & 0xffffff);
	switch (op) {
	case OP_HS_SEND:
		if (c->res < 0)
			return sx_fail_errno(err, SX_E_NET, (int)-c->res, "send to %s failed",
					     cfg->host);
		sx_link_hs_sent(&s->link);
		return handshake_send(s, err);
	case OP_RECV:
		if (on_recv(s, c->res, err) < 0) {
			if (s->draining && !s->peer_error)
				*err = s->send_err;
			return -1;
		}
		return 0;
	case OP_READ:
		SX_GUARD(sx_send_on_read(s, idx, c->res, err));
		sx_send_close_idle(s);
		return 0;
	case OP_POOL: return sx_send_on_pool(s, c->res, err);
	case OP_SEND:
		SX_GUARD(sx_send_on_send(s, idx, c->res, err));
		if (cfg->on_progress)
			cfg->on_progress(cfg->progress_ctx, &s->prog);
		return 0;
	default: sx_io_bug("sender: completion of an unknown operation", c->tag);
	}
out:
	return -1;
}

/* Until EOS went both ways: fill, prepare and send slots, then take what
 * completed. */
static int sender_loop(sender *s, sx_err *err)
{
	const sx_send_cfg *cfg = s->cfg;
	uint64_t last = sx_now_ns();
	while (!(s->eos_sent && s->eos_received)) {
		sx_cqe cqe[16];
		if (s->link.ready && !s->draining) {
			SX_GUARD(sx_send_produce(s, err));
			SX_GUARD(sx_send_prepare(s, err));
			SX_GUARD(sx_send_next(s, err));
			/* Hashing a file to compare it took the loop's time, not
			 * the receiver's. */
			if (s->hashed) {
				last = sx_now_ns();
				s->hashed = false;
			}
		}
		int wait_ms = s->draining ? 1000 : cfg->timeout_ms;
		/* --limit-rate: up again when the next record's tokens are in;
		 * waiting for them is not the receiver's stall. */
		if (s->rate_wait_ns > 0) {
			uint64_t ms = (s->rate_wait_ns + 999999) / 1000000;
			if (ms < (uint64_t)wait_ms)
				wait_ms = (int)ms;
			last = sx_now_ns();
			s->rate_wait_ns = 0;
		}
		/* A server's sending thread looks at its stop flag this often. */
		if (cfg->abort != NULL && wait_ms > 250)
			wait_ms = 250;
		int n = sx_io_wait(s->io, cqe, SX_ARRAY_LEN(cqe), wait_ms, err);
		SX_GUARD(n);
		if (cfg->abort != NULL && atomic_load(cfg->abort))
			return sx_fail(err, SX_E_NET, "%s",
				       cfg->serving ? "server shutting down" : "stopped");
		uint64_t now = sx_now_ns();
		if (n > 0)
			last = now;
		uint64_t idle_ms = (now - last) / 1000000u;
		if (n == 0 && s->draining && idle_ms >= 1000) {
			*err = s->send_err;
			goto out;
		}
		if (n == 0 && !s->draining && idle_ms >= (uint64_t)cfg->timeout_ms)
			return sx_fail(err, SX_E_NET, "%s: no progress for %d ms (timeout)",
				       cfg->host, cfg->timeout_ms);
		for (int i = 0; i < n; i++)
			SX_GUARD(on_completion(s, &cqe[i], err));
	}
	return 0;
out:
	return -1;
}

/* After EOS: every file answered, every batch receipted, nothing skipped. */
static int sender_check_done(sender *s, sx_err *err)
{
	if (s->file_err.cls != SX_OK)
		return sx_fail(err, s->file_err.cls, "%s", s->file_err.msg);
	SX_ENSURE(!s->resume_refused, err, SX_E_IO,
		  "%s refused to continue a file from its held part (see the log): it is sent "
		  "whole by the next attempt",
		  s->link.k.peer_name);
	SX_ENSURE(s->answers == s->file_id, err, SX_E_INTEGRITY,
		  "%s answered %llu of %u files before ending the session", s->link.k.peer_name,
		  (unsigned long long)s->answers, s->file_id);
	for (size_t i = 0; i < s->nbatches; i++)
		SX_ENSURE(s->batches[i].receipted, err, SX_E_INTEGRITY,
			  "%s sent no valid receipt for batch %llu", s->link.k.peer_name,
			  (unsigned long long)s->batches[i].number);
	/* Everything that could be sent was; what was skipped makes the
	 * session fail as a local problem, so a script notices. A server
	 * (get) serves no symlink or special file of its export: logged with
	 * the session, not a failure. */
	SX_ENSURE(s->ents.skipped == 0 || s->cfg->serving, err, SX_E_IO,
		  "%llu file(s) sent; %llu file(s) or folder(s) skipped, not sent (see the "
		  "warnings)",
		  (unsigned long long)s->stats->files_ok, (unsigned long long)s->ents.skipped);
	return 0;
out:
	return -1;
}

/* Closes and frees everything of the session; failed: it ended in an
 * error. */
static void sender_free(sender *s, sx_chan_ctx *ctx, bool failed)
{
	if (failed && s->link.chan != NULL && !s->link.ready && s->sock >= 0 &&
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
	if (s->file.fd > STDIN_FILENO)
		close(s->file.fd);
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
	sx_leafcache_close(&s->lc, false);
	for (size_t i = 0; i < s->nbatches; i++)
		sx_sbatch_free(&s->batches[i]);
	free(s->batches);
	free(s->fids);
	free(s->q);
	if (!s->borrowed)
		sx_entries_free(&s->ents);
	OPENSSL_cleanse(s->rxbuf, sizeof(s->rxbuf));
	free(s);
}

void sx_send_error_now(sx_link *l, int sock, const sx_err *why)
{
	uint8_t rec[SX_REC_HDR_LEN + 16 + SX_REASON_MAX + SX_REC_TAG_MAX];
	size_t len = 0;
	sx_msg m = {.type = SX_MSG_ERROR,
		    .err_class = (uint8_t)why->cls,
		    .reason = (const uint8_t *)why->msg,
		    .reason_len = strlen(why->msg)};
	sx_err e2 = {0};
	if (sx_link_seal_msg(l, &m, rec, sizeof(rec), &len, &e2) < 0 ||
	    sx_net_send_all(sock, rec, len, 5000, &e2) < 0)
		sx_log("debug", "error_send", "reason=%s", SX_LOGQ(e2.msg));
}

/* The session once the sender has its settings: the event loop's helpers,
 * the connection (connected and its handshake done here when there is a
 * context, else handed over ready with its keys), everything sent and
 * answered. */
static int sender_go(sender *s, sx_chan_ctx *ctx, sx_err *err)
{
	SX_GUARD(sender_start_io(s, err));
	if (ctx != NULL)
		SX_GUARD(
		    sx_net_connect(s->cfg->host, s->cfg->port, s->cfg->timeout_ms, &s->sock, err));
	/* Registered until sx_io_close, which comes before the close. */
	(void)sx_io_file_add(s->io, s->sock);
	if (ctx != NULL) {
		SX_GUARD(sx_link_init(&s->link, ctx, err));
		SX_GUARD(handshake_send(s, err));
	} else {
		SX_GUARD(link_ready(s, err));
	}
	SX_GUARD(post_recv(s, err));
	SX_GUARD(sender_loop(s, err));
	SX_GUARD(sender_check_done(s, err));
	return 0;
out:
	return -1;
}

static int sender_end(sender *s, sx_chan_ctx *ctx, int rc, uint64_t t0)
{
	s->stats->files_skipped = s->ents.skipped;
	s->stats->seconds = (double)(sx_now_ns() - t0) / 1e9;
	sender_free(s, ctx, rc < 0);
	return rc;
}

int sx_send_serve(const sx_send_cfg *cfg, int sock, sx_link *from, sx_send_stats *stats,
		  sx_err *err)
{
	sender *s = calloc(1, sizeof(*s));
	uint64_t t0 = sx_now_ns();
	if (s == NULL) {
		close(sock);
		sx_link_free(from);
		return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	memset(stats, 0, sizeof(*stats));
	sx_link_move(&s->link, from);
	int rc = sender_init(s, cfg, stats, NULL, err);
	s->sock = sock; /* after sender_init, which starts with none */
	if (rc < 0)
		sx_send_error_now(&s->link, s->sock, err);
	else
		rc = sender_go(s, NULL, err);
	return sender_end(s, NULL, rc, t0);
}

int sx_send_attempt(const sx_send_cfg *cfg, sx_send_stats *stats, send_run *run, sx_err *err)
{
	sender *s = calloc(1, sizeof(*s));
	sx_chan_ctx *ctx = NULL;
	uint64_t t0 = sx_now_ns(), bytes0 = stats->bytes, resumed0 = stats->bytes_resumed;
	if (s == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	sx_chan_cfg cc =
	    sx_chan_client(cfg->id, cfg->crl, cfg->server_name ? cfg->server_name : cfg->host,
			   cfg->suite, cfg->rotate_bytes, RX_CAP + SX_REC_TAG_MAX);
	int rc = sender_init(s, cfg, stats, run, err);
	if (rc == 0)
		rc = sx_chan_ctx_new(&ctx, &cc, err);
	if (rc == 0)
		rc = sender_go(s, ctx, err);
	run->prog = s->prog;
	run->file_err = s->file_err;
	run->stream_begun = run->stream_begun || s->stream_begun;
	/* A refused resume is retried (the file then goes whole), but not an
	 * attempt that also failed authentication or integrity. */
	run->retryable = rc < 0 && (err->cls == SX_E_NET || s->truncated ||
				    (s->resume_refused && err->cls == SX_E_IO));
	/* Moved forward: got further than any attempt before (what is done,
	 * plus what this attempt resumed and sent of the rest). A receiver that
	 * keeps nothing, or answers without receipts, does not count. */
	uint64_t reach =
	    sx_send_done_bytes(run) + (stats->bytes_resumed - resumed0) + (stats->bytes - bytes0);
	run->progressed = reach > run->reach;
	if (reach > run->reach)
		run->reach = reach;
	return sender_end(s, ctx, rc, t0);
}
