/* The client's side of sxfer get and ls: it connects, asks (GET or LIST,
 * get.c srv_client_request), and then receives exactly as a server
 * receives from a sender: the same connection state machine (serve_*.c),
 * on one event loop with one connection, storing into the local folder
 * with the same rules (temporary, fsync, rename, no overwrite, umask) and
 * verifying each batch signature, now the server's, before any file takes
 * its final name. */
#include <sys/file.h>

#include "engine/transfer/serve_int.h"

/* What a get killed earlier left beside the names asked for (temporaries
 * with their .sxmeta become held parts, expired parts and other
 * temporaries go: sx_store_recover_names). A shared lock on the folder is
 * held for the run (*lock_fd); only the get that first takes it alone
 * recovers, so a get running into the same folder keeps its temporaries. */
static void get_recover(const sx_get_cfg *cfg, int *lock_fd)
{
	sx_store_recovery rec;
	sx_err e = {0};
	const char *names[256];
	char *mem = NULL;
	size_t n = 0, used = 0, cap = 0;
	*lock_fd = open(cfg->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*lock_fd < 0)
		return; /* made by the session: nothing was left in it */
	bool alone = flock(*lock_fd, LOCK_EX | LOCK_NB) == 0;
	if (!alone && flock(*lock_fd, LOCK_SH | LOCK_NB) < 0) {
		close(*lock_fd); /* a server's folder, or busy: not touched */
		*lock_fd = -1;
		return;
	}
	for (int i = 0; alone && i < cfg->npaths; i++)
		cap += strlen(cfg->paths[i]) + 1;
	if (alone && cfg->npaths <= (int)SX_ARRAY_LEN(names) && (mem = malloc(cap + 1)) != NULL) {
		for (int i = 0; i < cfg->npaths; i++) {
			size_t b, l;
			sx_path_last(cfg->paths[i], &b, &l);
			memcpy(mem + used, cfg->paths[i] + b, l);
			mem[used + l] = '\0';
			names[n++] = mem + used;
			used += l + 1;
		}
		if (sx_store_recover_names(*lock_fd, names, n, &rec, &e) < 0)
			sx_log("warn", "recover", "out=%s reason=%s", SX_LOGQ(cfg->out_dir),
			       SX_LOGQ(e.msg));
	}
	free(mem);
	if (alone)
		(void)flock(*lock_fd, LOCK_SH);
}

int srv_client_early(server *s, conn *c, sx_err *err)
{
	bool complete = false;
	uint8_t type = 0, flags = 0, *pt = NULL;
	size_t len = 0;
	sx_msg m;
	sx_err bad = {0};
	if (sx_link_rx_early(&c->link) == 0)
		return 0;
	c->rx_cur = 0;
	sx_link_rx_set(&c->link, c->rx[0], SX_REC_HDR_LEN + s->cfg->max_record + SX_REC_TAG_MAX);
	while (!complete && sx_link_rx_early(&c->link) > 0)
		if (sx_link_rx_input(&c->link, sx_link_rx_feed(&c->link), &complete, &type, &flags,
				     &pt, &len, err) < 0)
			return -1;
	if (!complete)
		return 0;
	if (type == SX_REC_CTRL && sx_msg_decode(pt, len, &m, &bad) == 0 && m.type == SX_MSG_ERROR)
		return sx_fail(err, (sx_class)m.err_class, "%s: %.*s", c->link.k.peer_name,
			       (int)m.reason_len, (const char *)m.reason);
	return sx_fail(err, SX_E_INTEGRITY, "the server sent records before the request");
}

/* The client's side (get): every name the server sends lies under one of
 * the names asked for; with standard output, exactly the one file. */
int srv_client_check(server *s, const sx_msg *m, bool is_dir, sx_err *err)
{
	const sx_get_cfg *cl = s->cfg->client;
	if (cl == NULL)
		return 0;
	const uint8_t *slash = memchr(m->path, '/', m->path_len);
	size_t first = slash ? (size_t)(slash - m->path) : m->path_len;
	for (int i = 0; i < cl->npaths; i++) {
		size_t b, n;
		sx_path_last(cl->paths[i], &b, &n);
		if (n != first || memcmp(cl->paths[i] + b, m->path, first) != 0)
			continue;
		if (cl->single && (is_dir || first != m->path_len))
			break;
		return 0;
	}
	return sx_fail(err, SX_E_INTEGRITY, "the server sent '%.*s', which was not asked for",
		       (int)m->path_len, (const char *)m->path);
}

int srv_client_entry(server *s, conn *c, const sx_msg *m, sx_err *err)
{
	char path[SX_PATH_MAX + 1];
	SX_GUARD(sx_path_check(m->path, m->path_len, err));
	memcpy(path, m->path, m->path_len);
	path[m->path_len] = '\0';
	sx_list_entry e = {.path = path,
			   .is_dir = (m->flags & SX_LIST_DIR) != 0,
			   .has_sxsig = (m->flags & SX_LIST_SXSIG) != 0,
			   .size = m->size,
			   .mtime_sec = m->mtime_sec,
			   .mtime_nsec = m->mtime_nsec,
			   .mode = m->mode};
	c->entries++;
	if (s->cfg->client->on_entry != NULL)
		s->cfg->client->on_entry(s->cfg->client->entry_ctx, &e);
	return 0;
out:
	sx_err_prefix(err, "listing: ");
	return -1;
}

/* The client's side: once the channel is ready, the one request (GET or
 * LIST) that makes the server the sender. */
int srv_client_request(server *s, conn *c, sx_err *err)
{
	const sx_get_cfg *cl = s->cfg->client;
	size_t len = 0;
	int rc = -1;
	/* The server speaks only once asked: nothing may come before but an
	 * ERROR that says why it refuses us (get.c). */
	SX_GUARD(srv_client_early(s, c, err));
	uint8_t *blob = malloc(SX_GET_PATHS_MAX);
	SX_ENSURE(blob != NULL, err, SX_E_OTHER, "out of memory");
	for (int i = 0; i < cl->npaths; i++) {
		size_t n = strlen(cl->paths[i]);
		if (n + 1 > SX_GET_PATHS_MAX - len) {
			free(blob);
			return sx_fail(err, SX_E_USAGE, "more than %u bytes of remote paths",
				       SX_GET_PATHS_MAX);
		}
		memcpy(blob + len, cl->paths[i], n);
		len += n;
		if (i + 1 < cl->npaths)
			blob[len++] = 0;
	}
	sx_msg m = {.type = cl->list ? SX_MSG_LIST : SX_MSG_GET,
		    .flags = (cl->no_sign ? 0 : SX_GET_SIGNED) | (cl->single ? SX_GET_SINGLE : 0),
		    .chunk = cl->chunk,
		    .path = blob,
		    .path_len = len};
	if (cl->list)
		m.flags = 0;
	rc = srv_send_msg(s, c, &m, err);
	free(blob);
out:
	return rc;
}

int sx_get_run(const sx_get_cfg *given, sx_get_stats *stats, sx_err *err)
{
	/* --limit-rate: records the server sends in a quarter of a second at
	 * most (the chunk asked for), so its sends do not stall on us. */
	sx_get_cfg limited = *given;
	if (limited.limit_rate != 0)
		limited.chunk =
		    sx_rate_chunk(limited.limit_rate,
				  limited.chunk ? limited.chunk : SX_CHUNK_DEFAULT, SX_CHUNK_MIN);
	const sx_get_cfg *cfg = &limited;
	sx_serve_cfg sc = {
	    .id = cfg->id,
	    .crl = cfg->crl,
	    .out_dir = cfg->out_dir,
	    .once = true,
	    .overwrite = cfg->overwrite,
	    .direct = cfg->direct,
	    .max_conns = 1,
	    .threads = 1,
	    .io = cfg->io,
	    .max_record = cfg->max_record ? cfg->max_record : SX_MAX_RECORD_DEFAULT,
	    .open_threads = cfg->open_threads,
	    .handshake_timeout_ms = cfg->timeout_ms,
	    .idle_timeout_ms = cfg->timeout_ms,
	    .client = cfg,
	};
	shared sh = {.cfg = &sc, .lfd = -1, .cores = srv_cores()};
	server s = {.cfg = &sc,
		    .sh = &sh,
		    .lfd = -1,
		    .kind = cfg->io,
		    .ntab = 1,
		    .rx_rate = {.bps = cfg->limit_rate}};
	sx_chan_cfg cc =
	    sx_chan_client(cfg->id, cfg->crl, cfg->server_name ? cfg->server_name : cfg->host,
			   cfg->suite, cfg->rotate_bytes, sc.max_record);
	int rc = -1, fd = -1, lock_fd = -1;
	uint64_t t0 = sx_now_ns();
	memset(stats, 0, sizeof(*stats));
	s.conns = calloc(1, sizeof(conn));
	if (s.conns == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	(void)sx_store_umask(); /* read before anything is created */
	if (!cfg->single && !cfg->list)
		get_recover(cfg, &lock_fd);
	SX_GUARD(sx_chan_ctx_new(&sh.ctx, &cc, err));
	s.ctx = sh.ctx;
	sh.fd_budget = FD_BUDGET_MAX;
	atomic_store(&sh.loops, 1);
	SX_GUARD(sx_io_open(&s.io, cfg->io, RX_SLOTS + SYNC_MAX + 8, err));
	stats->io_backend = sx_io_name(s.io);
	SX_GUARD(sx_net_connect(cfg->host, cfg->port, cfg->timeout_ms, &fd, err));
	char addr[64];
	snprintf(addr, sizeof(addr), "%s:%s", cfg->host, cfg->port);
	conn *c = srv_conn_add(&s, fd, addr);
	SX_ENSURE(c != NULL, err, SX_E_OTHER, "no connection entry");
	fd = -1; /* the connection's now */
	atomic_fetch_add(&sh.slots, 1);
	atomic_fetch_add(&sh.inslot, 1);
	c->deadline = c->t0 + (uint64_t)sc.handshake_timeout_ms * 1000000u;
	sx_err cerr = {0};
	if (sx_link_init(&c->link, s.ctx, &cerr) < 0) {
		srv_conn_fail(&s, c, &cerr);
	} else {
		srv_hs_send(&s, c); /* the ClientHello */
		srv_post_recv(&s, c);
	}
	SX_GUARD(srv_loop_run(&s, err));
	*stats = s.once_stats;
	stats->io_backend = sx_io_name(s.io);
	if (s.once_result != SX_OK) {
		if (s.once_err.cls != SX_OK)
			*err = s.once_err;
		else
			sx_fail(err, s.once_result, "%llu file(s) refused (see the messages above)",
				(unsigned long long)stats->files_failed);
		goto out;
	}
	rc = 0;
out:
	srv_wait_keepers(&sh);
	stats->seconds = (double)(sx_now_ns() - t0) / 1e9;
	if (fd >= 0)
		close(fd);
	if (lock_fd >= 0)
		close(lock_fd);
	if (s.io != NULL)
		sx_io_close(s.io);
	srv_pool_free(&s); /* after the ring, before the buffers its jobs use */
	free(s.conns);
	sx_chan_ctx_free(sh.ctx);
	return rc;
}
