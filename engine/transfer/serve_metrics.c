/* The receiver's metrics (serve_metrics.h, docs/METRICS.md): the counters
 * the event loops keep, the per-device table, and the exposition a scrape
 * gets, made on the metrics listener's own thread (sx_mhttp.h). */
#include "engine/transfer/serve_int.h"
#include "engine/transfer/sx_mhttp.h"
#include "engine/chat/sx_chat_hub.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

/* ---- what the loops call ------------------------------------------------ */

void srv_m_handshake(server *s, const char *why)
{
	SRV_COUNT(s, hs[sx_hs_reason_of(why)], 1);
}

void srv_m_refused(server *s, const sx_err *why)
{
	SRV_COUNT(s, refused[sx_refuse_reason_of(why)], 1);
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* The entry of name in a table of cap entries (a power of two): its own,
 * or the free one where it would go. */
static mdev *dev_slot(mdev *tab, size_t cap, const char *name)
{
	size_t i = (size_t)fnv(name) & (cap - 1);
	while (tab[i].name != NULL && strcmp(tab[i].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

/* Keeps the table at most half full while devices are added. */
static void dev_grow(srv_metrics *m)
{
	if (m->ndev >= MDEV_MAX || (m->ndev + 1) * 2 <= m->dev_cap)
		return;
	size_t cap = m->dev_cap ? m->dev_cap * 2 : 64;
	mdev *tab = calloc(cap, sizeof(*tab));
	if (tab == NULL)
		return; /* the table as it is: full, the new device in the rest */
	for (size_t i = 0; i < m->dev_cap; i++)
		if (m->dev[i].name != NULL)
			*dev_slot(tab, cap, m->dev[i].name) = m->dev[i];
	free(m->dev);
	m->dev = tab;
	m->dev_cap = cap;
}

static void dev_add(srv_metrics *m, const char *name, uint64_t bytes)
{
	pthread_mutex_lock(&m->dev_lock);
	dev_grow(m);
	mdev *d = m->dev_cap > 0 ? dev_slot(m->dev, m->dev_cap, name) : NULL;
	if (d != NULL && d->name == NULL) {
		if ((m->ndev + 1) * 2 > m->dev_cap || (d->name = strdup(name)) == NULL)
			d = NULL;
		else
			m->ndev++;
	}
	if (d != NULL) {
		d->bytes += bytes;
		d->files++;
	} else {
		m->rest_bytes += bytes;
		m->rest_files++;
	}
	pthread_mutex_unlock(&m->dev_lock);
}

void srv_m_stored(server *s, conn *c, const rfile *f)
{
	srv_mloop *ml = SRV_MLOOP(s);
	if (ml == NULL)
		return;
	uint64_t ns = sx_now_ns() - f->t0;
	srv_madd(&ml->files_stored, 1);
	srv_madd(&ml->dur[sx_dur_bucket(ns)], 1);
	srv_madd(&ml->dur_ns, ns);
	if (s->sh->met->cfg->per_device > 0)
		dev_add(s->sh->met, c->link.k.peer_name, f->received);
}

/* ---- a scrape ------------------------------------------------------------ */

/* The loops' blocks summed. */
typedef struct msum {
	uint64_t bytes, files_stored, batches, receipts, conns_refused;
	uint64_t hs[SX_HS_N], refused[SX_RF_N], dur[SX_DUR_BUCKETS + 1], dur_ns;
} msum;

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void sum_loops(const srv_metrics *m, msum *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < m->nloops; i++) {
		srv_mloop *l = &m->loops[i];
		t->bytes += LD(l->bytes);
		t->files_stored += LD(l->files_stored);
		t->batches += LD(l->batches);
		t->receipts += LD(l->receipts);
		t->conns_refused += LD(l->conns_refused);
		for (int k = 0; k < SX_HS_N; k++)
			t->hs[k] += LD(l->hs[k]);
		for (int k = 0; k < SX_RF_N; k++)
			t->refused[k] += LD(l->refused[k]);
		for (int k = 0; k <= SX_DUR_BUCKETS; k++)
			t->dur[k] += LD(l->dur[k]);
		t->dur_ns += LD(l->dur_ns);
	}
}

static void counter(sx_prom *p, const char *name, const char *help, uint64_t v)
{
	sx_prom_family(p, name, "counter", help);
	sx_prom_u64(p, name, NULL, 0, v);
}

static void gauge(sx_prom *p, const char *name, const char *help, double v)
{
	sx_prom_family(p, name, "gauge", help);
	sx_prom_f64(p, name, NULL, 0, v);
}

static void render_conns(const srv_metrics *m, const msum *t, sx_prom *p)
{
	shared *sh = m->sh;
	gauge(p, "sxfer_connections_open",
	      "Connections open now: in their handshake, a session or "
	      "closing.",
	      (double)atomic_load(&sh->active));
	counter(p, "sxfer_connections_total", "Connections accepted.",
		(uint64_t)atomic_load(&sh->next_id));
	counter(p, "sxfer_connections_refused_total",
		"Connections closed at accept, before TLS: no handshake slot was free for "
		"them (the server or their address at its limit).",
		t->conns_refused);
	const char *name = "sxfer_handshakes_total";
	sx_prom_family(p, name, "counter",
		       "Handshakes that ended, by result (ok, failed) and reason (ok, revoked, "
		       "expired, unknown_ca, bad_certificate, no_certificate, timeout, stale_crl, "
		       "other).");
	for (int k = 0; k < SX_HS_N; k++) {
		sx_prom_label l[] = {{"result", k == SX_HS_OK ? "ok" : "failed"},
				     {"reason", sx_hs_reason_names[k]}};
		sx_prom_u64(p, name, l, 2, t->hs[k]);
	}
}

static void render_files(const msum *t, sx_prom *p)
{
	counter(p, "sxfer_received_bytes_total",
		"File bytes received (after decompression), stored or not.", t->bytes);
	counter(p, "sxfer_files_stored_total",
		"Files received and stored (answered FILE_OK after their data).", t->files_stored);
	const char *name = "sxfer_files_refused_total";
	sx_prom_family(p, name, "counter",
		       "Files refused (FILE_ERR), by reason (exists, quota, size, disk_full, "
		       "integrity, auth, io, other).");
	for (int k = 0; k < SX_RF_N; k++) {
		sx_prom_label l[] = {{"reason", sx_refuse_reason_names[k]}};
		sx_prom_u64(p, name, l, 1, t->refused[k]);
	}
	name = "sxfer_file_transfer_duration_seconds";
	sx_prom_family(p, name, "histogram",
		       "Seconds from a stored file's first message (FILE_BEGIN) to its FILE_OK.");
	sx_prom_hist(p, name, NULL, 0, sx_dur_bounds, t->dur, SX_DUR_BUCKETS,
		     (double)t->dur_ns / 1e9);
	counter(p, "sxfer_batches_verified_total", "Batch signatures verified.", t->batches);
	counter(p, "sxfer_receipts_sent_total", "Signed receipts sent.", t->receipts);
}

static void render_disk(const srv_metrics *m, sx_prom *p)
{
	const sx_serve_cfg *cfg = m->sh->cfg;
	struct statvfs vs;
	if (statvfs(cfg->out_dir, &vs) == 0) {
		double unit = (double)(vs.f_frsize ? vs.f_frsize : vs.f_bsize);
		gauge(p, "sxfer_output_free_bytes",
		      "Bytes free for the server in the file system of the output folder.",
		      (double)vs.f_bavail * unit);
		gauge(p, "sxfer_output_size_bytes",
		      "Size in bytes of the file system of the output folder.",
		      (double)vs.f_blocks * unit);
	}
	if (m->sh->ledger == NULL)
		return;
	char wal[4096 + 8];
	struct stat st;
	double size = 0;
	if (stat(cfg->ledger, &st) == 0)
		size += (double)st.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", cfg->ledger);
	if (stat(wal, &st) == 0)
		size += (double)st.st_size;
	gauge(p, "sxfer_ledger_size_bytes",
	      "Bytes of the ledger's files (the database and its "
	      "write-ahead log).",
	      size);
}

static int by_bytes(const void *a, const void *b)
{
	const mdev *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* The top per_device devices by bytes stored, then the rest summed as
 * device="other" (a device named other is always in the rest). Names are
 * never freed while the server runs: the copies keep their pointers. */
static int render_devices(srv_metrics *m, sx_prom *p)
{
	mdev *v = NULL;
	uint64_t rest[2];
	size_t n = 0;
	pthread_mutex_lock(&m->dev_lock);
	if (m->ndev > 0 && (v = malloc(m->ndev * sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&m->dev_lock);
		return -1;
	}
	for (size_t i = 0; i < m->dev_cap; i++)
		if (m->dev[i].name != NULL)
			v[n++] = m->dev[i];
	rest[0] = m->rest_bytes;
	rest[1] = m->rest_files;
	pthread_mutex_unlock(&m->dev_lock);
	if (n > 1)
		qsort(v, n, sizeof(*v), by_bytes);
	static const char *const names[2] = {"sxfer_device_stored_bytes_total",
					     "sxfer_device_files_stored_total"};
	static const char *const helps[2] = {
	    "Bytes of the files stored, for the devices that stored the most "
	    "(--metrics-per-device), the others summed as device=\"other\".",
	    "Files stored, for the same devices as sxfer_device_stored_bytes_total."};
	for (int k = 0; k < 2; k++) {
		unsigned shown = 0;
		sx_prom_family(p, names[k], "counter", helps[k]);
		for (size_t i = 0; i < n; i++) {
			bool top = shown < m->cfg->per_device && strcmp(v[i].name, "other") != 0;
			if (top) {
				sx_prom_label l[] = {{"device", v[i].name}};
				sx_prom_u64(p, names[k], l, 1, k == 0 ? v[i].bytes : v[i].files);
				shown++;
			} else {
				rest[k] += k == 0 ? v[i].bytes : v[i].files;
			}
		}
		sx_prom_label l[] = {{"device", "other"}};
		sx_prom_u64(p, names[k], l, 1, rest[k]);
	}
	free(v);
	return 0;
}

/* serve --chat: the hub's counters (engine/chat/sx_chat_hub.h). */
static void render_chat(const srv_metrics *m, sx_prom *p)
{
	if (m->sh->hub == NULL)
		return;
	const sx_chat_stats *st = sx_chat_hub_stats(m->sh->hub);
#define CHAT_LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
	sx_prom_family(p, "sxfer_chat_connections_open", "gauge",
		       "Chat connections now (sxfer chat; serve --chat).");
	sx_prom_u64(p, "sxfer_chat_connections_open", NULL, 0, CHAT_LD(st->conns));
	counter(p, "sxfer_chat_messages_accepted_total",
		"Chat messages accepted: verified, kept in the server's transcript, relayed.",
		CHAT_LD(st->accepted));
	counter(p, "sxfer_chat_messages_delivered_total",
		"Chat messages sent to a member's connection: live, queued or sent again.",
		CHAT_LD(st->delivered));
	counter(p, "sxfer_chat_messages_queued_total",
		"Chat messages queued for a member who was not connected (one per member).",
		CHAT_LD(st->queued));
	counter(p, "sxfer_chat_receipts_total", "Chat session receipts verified and kept.",
		CHAT_LD(st->receipts));
	const char *name = "sxfer_chat_messages_refused_total";
	sx_prom_family(p, name, "counter", "Chat messages refused, by the reason sent back.");
	for (int w = SX_CHAT_STALE; w <= SX_CHAT_BAD; w++) {
		sx_prom_label l[] = {{"reason", sx_chat_why_name((sx_chat_why)w)}};
		sx_prom_u64(p, name, l, 1, CHAT_LD(st->refused[w]));
	}
#undef CHAT_LD
}

static int render(void *ctx, sx_prom *p)
{
	srv_metrics *m = ctx;
	msum t;
	sum_loops(m, &t);
	sx_prom_family(p, "sxfer_build_info", "gauge", "The version of sxfer serving, as a label.");
	sx_prom_label v[] = {{"version", m->cfg->version ? m->cfg->version : "unknown"}};
	sx_prom_u64(p, "sxfer_build_info", v, 1, 1);
	gauge(p, "sxfer_start_time_seconds",
	      "When the server started, in seconds since the Unix "
	      "epoch.",
	      m->start_time);
	render_conns(m, &t, p);
	render_files(&t, p);
	render_disk(m, p);
	render_chat(m, p);
	if (m->cfg->per_device > 0)
		return render_devices(m, p);
	return 0;
}

/* ---- start and stop -------------------------------------------------------- */

int srv_metrics_start(shared *sh, unsigned nloops, sx_err *err)
{
	const sx_metrics_cfg *mc = sh->cfg->metrics;
	struct timespec now;
	int port = 0;
	if (mc == NULL || sh->cfg->client != NULL)
		return 0;
	srv_metrics *m = calloc(1, sizeof(*m));
	if (m == NULL || (m->loops = aligned_alloc(64, nloops * sizeof(srv_mloop))) == NULL) {
		free(m);
		return sx_fail(err, SX_E_OTHER, "out of memory");
	}
	memset(m->loops, 0, nloops * sizeof(srv_mloop));
	m->nloops = nloops;
	m->cfg = mc;
	m->sh = sh;
	clock_gettime(CLOCK_REALTIME, &now);
	m->start_time = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1e3;
	pthread_mutex_init(&m->dev_lock, NULL);
	sh->met = m;
	sx_mhttp_cfg hc = {
	    .listen = mc->listen, .public_ok = mc->public_ok, .render = render, .ctx = m};
	if (sx_mhttp_start(&hc, &m->http, &port, err) < 0) {
		srv_metrics_stop(sh);
		return -1;
	}
	sx_log("info", "metrics_listen", "addr=%s port=%d per_device=%u", SX_LOGT(mc->listen), port,
	       mc->per_device);
	if (mc->on_listen != NULL)
		mc->on_listen(mc->listen_ctx, port);
	return 0;
}

void srv_metrics_stop(shared *sh)
{
	srv_metrics *m = sh->met;
	if (m == NULL)
		return;
	sx_mhttp_stop(m->http);
	for (size_t i = 0; i < m->dev_cap; i++)
		free(m->dev[i].name);
	free(m->dev);
	free(m->loops);
	pthread_mutex_destroy(&m->dev_lock);
	free(m);
	sh->met = NULL;
}
