/* The metrics' HTTP listener (sx_mhttp.h): one thread, poll(2) over a wake
 * pipe, the listening socket and at most MHTTP_CLIENTS connections, each a
 * small state machine: its request head read, its answer written, then its
 * input read and dropped until it closes (a close with unread input would
 * reset the connection and could destroy the answer before it is read). */
#include "engine/transfer/sx_mhttp.h"

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CL_FREE = 0, CL_READ, CL_WRITE, CL_DRAIN };

typedef struct mclient {
	int st, fd;
	char req[MHTTP_REQ_MAX];
	size_t have;
	char *resp;
	size_t resp_len, sent;
	uint64_t deadline;
} mclient;

struct sx_mhttp {
	sx_mhttp_cfg cfg;
	int lfd, wake[2];
	pthread_t thread;
	bool started;
	mclient cl[MHTTP_CLIENTS];
};

static void cl_close(mclient *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->resp);
	c->resp = NULL;
	c->fd = -1;
	c->st = CL_FREE;
}

static void answer(mclient *c, int code, const char *status, const char *type, const char *body,
		   size_t blen, bool head_only, const char *extra)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			 "Connection: close\r\n\r\n",
			 code, status, type, blen, extra);
	size_t bl = head_only ? 0 : blen;
	c->resp = malloc((size_t)n + bl);
	if (c->resp == NULL) {
		cl_close(c);
		return;
	}
	memcpy(c->resp, hdr, (size_t)n);
	if (bl > 0)
		memcpy(c->resp + n, body, bl);
	c->resp_len = (size_t)n + bl;
	c->sent = 0;
	c->st = CL_WRITE;
}

static void answer_text(mclient *c, int code, const char *status, const char *extra)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", code, status);
	answer(c, code, status, "text/plain; charset=utf-8", body, (size_t)n, false, extra);
}

/* The request head is whole: the answer for its request line. */
static void on_request(sx_mhttp *m, mclient *c)
{
	char *nl = memchr(c->req, '\n', c->have);
	*nl = '\0';
	if (nl > c->req && nl[-1] == '\r')
		nl[-1] = '\0';
	char *method = c->req, *target = strchr(method, ' ');
	char *version = target != NULL ? strchr(target + 1, ' ') : NULL;
	if (version == NULL || strchr(version + 1, ' ') != NULL ||
	    strncmp(version + 1, "HTTP/1.", 7) != 0) {
		answer_text(c, 400, "Bad Request", "");
		return;
	}
	*target++ = '\0';
	*version = '\0';
	bool head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		answer_text(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
		return;
	}
	target[strcspn(target, "?")] = '\0';
	if (strcmp(target, "/metrics") != 0) {
		answer_text(c, 404, "Not Found", "");
		return;
	}
	sx_prom p;
	sx_prom_init(&p);
	if (m->cfg.render(m->cfg.ctx, &p) < 0 || p.oom)
		answer_text(c, 500, "Internal Server Error", "");
	else
		answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", p.buf, p.len, head,
		       "");
	sx_prom_free(&p);
}

static bool head_done(const mclient *c)
{
	for (size_t i = 0; i + 1 < c->have; i++)
		if (c->req[i] == '\n' &&
		    (c->req[i + 1] == '\n' ||
		     (c->req[i + 1] == '\r' && i + 2 < c->have && c->req[i + 2] == '\n')))
			return true;
	return false;
}

static void on_readable(sx_mhttp *m, mclient *c)
{
	char drop[4096];
	bool draining = c->st == CL_DRAIN;
	ssize_t n = draining ? recv(c->fd, drop, sizeof(drop), 0)
			     : recv(c->fd, c->req + c->have, sizeof(c->req) - c->have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		cl_close(c);
		return;
	}
	if (draining)
		return;
	c->have += (size_t)n;
	if (head_done(c))
		on_request(m, c);
	else if (c->have == sizeof(c->req))
		answer_text(c, 431, "Request Header Fields Too Large", "");
}

static void on_writable(mclient *c)
{
	ssize_t n = send(c->fd, c->resp + c->sent, c->resp_len - c->sent, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		cl_close(c);
		return;
	}
	c->sent += (size_t)n;
	if (c->sent < c->resp_len)
		return;
	free(c->resp);
	c->resp = NULL;
	shutdown(c->fd, SHUT_WR);
	c->st = CL_DRAIN;
	c->deadline = sx_now_ns() + (uint64_t)MHTTP_LINGER_MS * 1000000u;
}

static void on_accept(sx_mhttp *m)
{
	for (int i = 0; i < MHTTP_CLIENTS; i++) {
		mclient *c = &m->cl[i];
		if (c->st != CL_FREE)
			continue;
		int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a connection gone before its accept */
		c->fd = fd;
		c->st = CL_READ;
		c->have = 0;
		c->deadline = sx_now_ns() + (uint64_t)MHTTP_TIMEOUT_MS * 1000000u;
	}
}

/* Fills the poll set; returns its size. */
static nfds_t poll_set(sx_mhttp *m, struct pollfd *pf, int *who)
{
	nfds_t n = 0;
	bool room = false;
	pf[n++] = (struct pollfd){.fd = m->wake[0], .events = POLLIN};
	for (int i = 0; i < MHTTP_CLIENTS; i++) {
		mclient *c = &m->cl[i];
		if (c->st == CL_FREE) {
			room = true;
			continue;
		}
		who[n] = i;
		pf[n++] =
		    (struct pollfd){.fd = c->fd, .events = c->st == CL_WRITE ? POLLOUT : POLLIN};
	}
	/* A full table leaves new connections in the backlog. */
	if (room) {
		who[n] = -1;
		pf[n++] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
	}
	return n;
}

static void *mhttp_thread(void *arg)
{
	sx_mhttp *m = arg;
	for (;;) {
		struct pollfd pf[MHTTP_CLIENTS + 2];
		int who[MHTTP_CLIENTS + 2];
		nfds_t n = poll_set(m, pf, who);
		if (poll(pf, n, 250) < 0 && errno != EINTR)
			break;
		if (pf[0].revents != 0)
			break; /* sx_mhttp_stop */
		for (nfds_t k = 1; k < n; k++) {
			if (pf[k].revents == 0)
				continue;
			if (who[k] < 0) {
				on_accept(m);
				continue;
			}
			mclient *c = &m->cl[who[k]];
			if (c->st == CL_WRITE)
				on_writable(c);
			else if (c->st != CL_FREE)
				on_readable(m, c);
		}
		uint64_t now = sx_now_ns();
		for (int i = 0; i < MHTTP_CLIENTS; i++)
			if (m->cl[i].st != CL_FREE && now >= m->cl[i].deadline)
				cl_close(&m->cl[i]);
	}
	return NULL;
}

/* 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104. */
static bool loopback(int fd)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family != AF_INET6)
		return false;
	const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

int sx_mhttp_start(const sx_mhttp_cfg *cfg, sx_mhttp **out, int *port, sx_err *err)
{
	sx_mhttp *m = calloc(1, sizeof(*m));
	sigset_t all, old;
	int rc = -1;
	if (m == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	m->cfg = *cfg;
	m->lfd = m->wake[0] = m->wake[1] = -1;
	for (int i = 0; i < MHTTP_CLIENTS; i++)
		m->cl[i].fd = -1;
	if (sx_net_listen(cfg->listen, &m->lfd, port, err) < 0) {
		sx_err_prefix(err, "metrics: ");
		goto out;
	}
	SX_ENSURE(cfg->public_ok || loopback(m->lfd), err, SX_E_USAGE,
		  "metrics: %s is not a loopback address; the metrics have no authentication: "
		  "listen on 127.0.0.1 or ::1, or allow it with --metrics-public",
		  cfg->listen);
	if (fcntl(m->lfd, F_SETFL, fcntl(m->lfd, F_GETFL) | O_NONBLOCK) < 0 ||
	    pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		sx_fail_errno(err, SX_E_OTHER, errno, "metrics: cannot set up the listener");
		goto out;
	}
	/* Signals stay with the thread that runs the first event loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&m->thread, NULL, mhttp_thread, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	SX_ENSURE(e == 0, err, SX_E_OTHER, "metrics: cannot start its thread: %s", strerror(e));
	m->started = true;
	*out = m;
	m = NULL;
	rc = 0;
out:
	sx_mhttp_stop(m);
	return rc;
}

void sx_mhttp_stop(sx_mhttp *m)
{
	if (m == NULL)
		return;
	if (m->started) {
		char b = 1;
		while (write(m->wake[1], &b, 1) < 0 && errno == EINTR)
			;
		pthread_join(m->thread, NULL);
	}
	for (int i = 0; i < MHTTP_CLIENTS; i++)
		cl_close(&m->cl[i]);
	if (m->lfd >= 0)
		close(m->lfd);
	for (int i = 0; i < 2; i++)
		if (m->wake[i] >= 0)
			close(m->wake[i]);
	free(m);
}
