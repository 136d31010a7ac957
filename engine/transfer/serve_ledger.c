/* The receiver's events for its ledger (engine/ledger, docs/LEDGER.md):
 * each a copy into the ledger's queue, never a wait for the disk. Every
 * function does nothing without a ledger (--no-ledger, the client of get). */
#include "engine/transfer/serve_int.h"
#include "engine/transfer/sx_ledger_check.h"

int srv_ledger_open(shared *sh, sx_err *err)
{
	const sx_serve_cfg *cfg = sh->cfg;
	if (cfg->ledger == NULL || cfg->client != NULL)
		return 0;
	if (sx_ledger_open(cfg->ledger, SX_LEDGER_SERVER, &sh->ledger, err) < 0)
		return -1;
	if (sx_ledger_recover(sh->ledger, cfg->out_dir, err) < 0 ||
	    sx_ledger_start(sh->ledger, err) < 0) {
		sx_ledger_close(sh->ledger);
		sh->ledger = NULL;
		return -1;
	}
	sx_log("info", "ledger", "path=%s", SX_LOGQ(cfg->ledger));
	return 0;
}

/* A bounded copy: cut, never overflowing. */
static void cpy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void peer_of(const conn *c, sx_ledger_ev *ev)
{
	cpy(ev->name, sizeof(ev->name), c->link.k.peer_name);
	cpy(ev->fingerprint, sizeof(ev->fingerprint), c->link.k.peer_fingerprint);
	ev->session = c->lg_session;
	ev->conn = c->id;
}

void srv_lg_session(server *s, conn *c)
{
	sx_ledger *lg = s->sh->ledger;
	sx_ledger_ev ev = {.kind = SX_LEV_SESSION_START};
	if (lg == NULL)
		return;
	c->lg_session = sx_ledger_session_id(lg);
	peer_of(c, &ev);
	cpy(ev.addr, sizeof(ev.addr), c->addr);
	sx_ledger_event(lg, &ev);
}

void srv_lg_end(server *s, conn *c)
{
	sx_ledger_ev ev = {.kind = SX_LEV_SESSION_END};
	if (s->sh->ledger == NULL || c->lg_session == 0)
		return;
	peer_of(c, &ev);
	ev.ok = c->ok;
	ev.size = c->bytes;
	ev.files = c->files_ok;
	ev.failed = c->files_failed;
	if (!c->ok)
		cpy(ev.reason, sizeof(ev.reason), c->err.msg);
	sx_ledger_event(s->sh->ledger, &ev);
}

bool srv_lg_prepare(server *s, conn *c, rfile *f, sx_lfile_state st, const char *reason,
		    sx_ledger_ev *out)
{
	sx_ledger_ev ev = {.kind = st == SX_LF_RECEIVING ? SX_LEV_FILE_BEGIN : SX_LEV_FILE_END};
	if (s->sh->ledger == NULL || c->lg_session == 0 || f->path == NULL || f->lg_done)
		return false;
	peer_of(c, &ev);
	ev.file_id = f->id;
	ev.state = st;
	ev.sign = c->sign;
	cpy(ev.path, sizeof(ev.path), f->path);
	if (reason != NULL)
		cpy(ev.reason, sizeof(ev.reason), reason);
	ev.has_size = f->announced != SX_SIZE_UNKNOWN;
	ev.size = f->announced;
	if (st == SX_LF_STORED) {
		ev.has_size = true;
		ev.size = f->received;
		if (f->batch >= 0 && f->batch < c->nbatches && c->batches[f->batch] != NULL) {
			sx_sbatch *b = c->batches[f->batch];
			memcpy(ev.root, b->descs[f->pos].root, sizeof(ev.root));
			ev.has_root = true;
			ev.batch = b->number;
			ev.verified = f->received;
		}
	} else if (st == SX_LF_PARTIAL && f->ck != NULL) {
		ev.has_size = true;
		ev.size = ev.verified = f->ck->bytes;
		memcpy(ev.root, f->ck->root, sizeof(ev.root));
		ev.has_root = true;
	}
	if (st != SX_LF_RECEIVING)
		f->lg_done = true;
	*out = ev;
	return true;
}

void srv_lg_file(server *s, conn *c, rfile *f, sx_lfile_state st, const char *reason)
{
	sx_ledger_ev *ev = malloc(sizeof(*ev));
	if (ev != NULL && srv_lg_prepare(s, c, f, st, reason, ev))
		sx_ledger_event(s->sh->ledger, ev);
	free(ev);
}

void srv_lg_refused(server *s, conn *c, uint32_t id, const char *reason)
{
	if (s->sh->ledger == NULL)
		return;
	for (int i = 0; i < c->nfiles; i++)
		if (c->files[i].state != F_FREE && c->files[i].id == id && !c->files[i].lg_done) {
			srv_lg_file(s, c, &c->files[i], SX_LF_REFUSED, reason);
			return;
		}
}

void srv_lg_gone(server *s, conn *c, rfile *f)
{
	/* Renamed into place, only its folder's flush was missing: stored. */
	if (f->state == F_SYNC_DIR && f->sf.committed)
		srv_lg_file(s, c, f, SX_LF_STORED, NULL);
	else
		srv_lg_file(s, c, f, SX_LF_FAILED,
			    c->err.cls != SX_OK ? c->err.msg : "the session ended");
}

void srv_lg_batch(server *s, conn *c, const sx_sbatch *b, const sx_receipt *r)
{
	sx_ledger_ev ev = {.kind = SX_LEV_BATCH};
	if (s->sh->ledger == NULL || c->lg_session == 0)
		return;
	peer_of(c, &ev);
	ev.batch = b->number;
	ev.batch_files = b->n;
	ev.stored = r->count;
	memcpy(ev.root, b->b.root, sizeof(ev.root));
	ev.sig_len = r->sig_len < sizeof(ev.sig) ? r->sig_len : sizeof(ev.sig);
	memcpy(ev.sig, r->sig, ev.sig_len);
	sx_ledger_event(s->sh->ledger, &ev);
}
