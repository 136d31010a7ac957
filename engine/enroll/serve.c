/* sxfer ca serve: the CA as a network service. One listening socket, a
 * thread per connection (blocking sockets, handshake and idle timeouts),
 * at most max_conns at once (one more is closed at once), one log line
 * per request; SIGINT or SIGTERM (cfg->stop) end it cleanly. */
#include "engine/enroll/enroll_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "pki/sx_ca.h"

#define ACCEPT_POLL_MS 200

typedef struct serve {
	const sx_enroll_serve_cfg *cfg;
	enroll_srv srv;
	sx_identity tls; /* cfg->id's key and chain, the root as the one anchor */
	sx_chan_ctx *ctx;
	int hs_ms, idle_ms;
	unsigned max_conns;
	pthread_mutex_t mu; /* what follows */
	pthread_cond_t idle;
	unsigned active;
	int *fds; /* the sockets of the connections running (-1: free) */
} serve;

typedef struct job {
	serve *s;
	int fd;
	unsigned slot;
	enroll_asker who;
} job;

/* The peer's address for logs and messages, and what the rate limit
 * counts: the IPv4 address, or the /64 of an IPv6 address. */
static void describe_peer(const struct sockaddr_storage *ss, enroll_asker *who)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	sx_ratelimit_key((const struct sockaddr *)ss, who->rl_key);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(who->addr, sizeof(who->addr), "%s:%d", host, port);
		snprintf(who->rl_name, sizeof(who->rl_name), "%s", host);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		struct in6_addr net = in6->sin6_addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(who->addr, sizeof(who->addr), "[%s]:%d", host, port);
		if (who->rl_key[0] == 4) {
			inet_ntop(AF_INET, who->rl_key + 1, host, sizeof(host));
			snprintf(who->rl_name, sizeof(who->rl_name), "%s", host);
			return;
		}
		memset(net.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &net, host, sizeof(host));
		snprintf(who->rl_name, sizeof(who->rl_name), "%s/64", host);
	}
}

static void log_answer(const job *j, const enroll_answer *a, uint64_t t0)
{
	unsigned long long ms = (unsigned long long)((sx_now_ns() - t0) / 1000000u);
	if (a->why.cls != SX_OK) {
		sx_log(a->why.cls == SX_E_AUTH ? "warn" : "error", "enroll_request",
		       "peer=%s kind=%s result=%s name=%s reason=%s ms=%llu", SX_LOGT(j->who.addr),
		       SX_LOGT(a->kind), SX_LOGT(a->result), SX_LOGQ(a->name), SX_LOGQ(a->why.msg),
		       ms);
		return;
	}
	if (a->serial[0] == '\0') {
		sx_log("info", "enroll_request", "peer=%s kind=%s result=%s name=%s ms=%llu",
		       SX_LOGT(j->who.addr), SX_LOGT(a->kind), SX_LOGT(a->result), SX_LOGQ(a->name),
		       ms);
		return;
	}
	sx_log("info", "enroll_request", "peer=%s kind=%s result=%s name=%s serial=%s ms=%llu",
	       SX_LOGT(j->who.addr), SX_LOGT(a->kind), SX_LOGT(a->result), SX_LOGQ(a->name),
	       SX_LOGT(a->serial), ms);
}

/* One connection: handshake, one request, one answer. */
static void serve_conn(job *j)
{
	serve *s = j->s;
	enroll_conn *c = NULL;
	enroll_answer a = {0};
	sx_enroll_msg req;
	sx_err err = {0};
	uint64_t t0 = sx_now_ns();
	int fd = j->fd;
	j->fd = -1;
	if (enroll_conn_new(&c, fd, s->ctx, &err) < 0 ||
	    enroll_conn_handshake(c, s->hs_ms, &err) < 0) {
		sx_log("warn", "enroll_handshake", "peer=%s reason=%s", SX_LOGT(j->who.addr),
		       SX_LOGQ(err.msg));
		goto out;
	}
	j->who.peer = enroll_conn_peer(c);
	if (enroll_conn_recv(c, &req, s->idle_ms, &err) < 0) {
		a.kind = "unread";
		enroll_answer_error(&a, &err);
	} else {
		enroll_answer_request(&s->srv, &j->who, &req, &a);
	}
	if (enroll_conn_send(c, &a.msg, s->idle_ms, &err) < 0 && a.why.cls == SX_OK)
		a.why = err;
	log_answer(j, &a, t0);
out:
	enroll_answer_free(&a);
	/* No longer ours to cut at a stop once it is being closed. */
	pthread_mutex_lock(&s->mu);
	s->fds[j->slot] = -1;
	pthread_mutex_unlock(&s->mu);
	enroll_conn_free(c);
}

static void *conn_thread(void *arg)
{
	job *j = arg;
	serve *s = j->s;
	serve_conn(j);
	pthread_mutex_lock(&s->mu);
	s->active--;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
	free(j);
	return NULL;
}

/* A thread for the accepted fd, or a prompt close when max_conns run. */
static void start_conn(serve *s, int fd, const struct sockaddr_storage *ss)
{
	job *j = calloc(1, sizeof(*j));
	pthread_t th;
	pthread_attr_t attr;
	bool started = false;
	if (j == NULL) {
		close(fd);
		return;
	}
	j->s = s;
	j->fd = fd;
	describe_peer(ss, &j->who);
	pthread_mutex_lock(&s->mu);
	if (s->active < s->max_conns) {
		while (s->fds[j->slot] >= 0)
			j->slot++;
		s->fds[j->slot] = fd;
		s->active++;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&th, &attr, conn_thread, j) == 0;
		pthread_attr_destroy(&attr);
		if (!started) {
			s->fds[j->slot] = -1;
			s->active--;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (!started) {
		sx_log("warn", "enroll_busy", "peer=%s max_conns=%u", SX_LOGT(j->who.addr),
		       s->max_conns);
		close(fd);
		free(j);
	}
}

static int accept_loop(serve *s, int lfd, sx_err *err)
{
	while (s->cfg->stop == NULL || !*s->cfg->stop) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		int n = poll(&p, 1, ACCEPT_POLL_MS);
		if (n < 0 && errno != EINTR)
			return sx_fail_errno(err, SX_E_NET, errno, "poll");
		if (n <= 0)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			/* Out of descriptors, say: a pause, not the end. */
			sx_log("warn", "enroll_accept", "errno=%d", errno);
			(void)poll(NULL, 0, ACCEPT_POLL_MS);
			continue;
		}
		start_conn(s, fd, &ss);
	}
	return 0;
}

/* After the stop: the connections still running are cut and waited for. */
static void drain(serve *s)
{
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->max_conns; i++)
		if (s->fds[i] >= 0)
			(void)shutdown(s->fds[i], SHUT_RDWR);
	while (s->active > 0)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

/* The service's TLS identity must be a server certificate of this CA (the
 * clients pin this root, or hold it as their ca.pem) that the CA's current
 * CRL does not list (renew and crl fetch check it against theirs). */
static int check_identity(serve *s, sx_err *err)
{
	const sx_identity *id = s->cfg->id;
	sx_policy pol = {.anchors = s->tls.anchors};
	X509_CRL *crl = NULL;
	sx_err none = {0};
	int rc = -1;
	SX_ENSURE(id != NULL && id->key != NULL && id->chain != NULL && sk_X509_num(id->chain) > 0,
		  err, SX_E_USAGE, "ca serve: no identity (key and certificate)");
	if (sx_ca_svc_crl(s->srv.ca, &crl, &none) == 0 && crl != NULL &&
	    sx_crl_check_time(crl, 0, &none) == 0)
		pol.crl = crl;
	if (sx_policy_check(&pol, sk_X509_value(id->chain, 0), id->chain, SX_ROLE_SERVER, NULL,
			    err) < 0) {
		sx_err_prefix(err, "ca serve: the identity is not a valid server certificate of "
				   "this CA: ");
		goto out;
	}
	rc = 0;
out:
	X509_CRL_free(crl);
	return rc;
}

static int serve_open(serve *s, const sx_enroll_serve_cfg *cfg, sx_err *err)
{
	uint8_t fp[SX_CERT_FP_LEN];
	s->cfg = cfg;
	s->hs_ms =
	    cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : SX_ENROLL_HS_TIMEOUT_MS;
	s->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : SX_ENROLL_IDLE_TIMEOUT_MS;
	s->max_conns = cfg->max_conns > 0 ? cfg->max_conns : SX_ENROLL_CONNS_DEFAULT;
	s->fds = malloc(s->max_conns * sizeof(*s->fds));
	SX_ENSURE(s->fds != NULL, err, SX_E_OTHER, "out of memory");
	for (unsigned i = 0; i < s->max_conns; i++)
		s->fds[i] = -1;
	SX_GUARD(sx_ca_svc_open(cfg->ca_dir, cfg->pass, &s->srv.ca, err));
	s->srv.root = sx_ca_svc_root(s->srv.ca);
	SX_GUARD(sx_cert_fp(s->srv.root, fp, err));
	sx_hex(fp, sizeof(fp), s->srv.root_fp);
	s->tls.anchors = sk_X509_new_null();
	SX_ENSURE(s->tls.anchors != NULL && sk_X509_push(s->tls.anchors, s->srv.root) > 0, err,
		  SX_E_OTHER, "out of memory");
	SX_GUARD(check_identity(s, err));
	s->tls.key = cfg->id->key;
	s->tls.chain = cfg->id->chain;
	SX_GUARD(enroll_ctx_server(&s->tls, s->srv.root, &s->ctx, err));
	SX_GUARD(sx_ratelimit_new(
	    &s->srv.rl, cfg->fail_limit > 0 ? cfg->fail_limit : SX_ENROLL_FAIL_LIMIT,
	    cfg->fail_window_s > 0 ? cfg->fail_window_s : SX_ENROLL_FAIL_WINDOW_S,
	    SX_ENROLL_RATE_SLOTS, err));
	return 0;
out:
	return -1;
}

static void serve_close(serve *s)
{
	enroll_ctx_free(s->ctx);
	sx_ratelimit_free(s->srv.rl);
	sk_X509_free(s->tls.anchors);
	if (s->srv.ca != NULL)
		sx_ca_svc_close(s->srv.ca);
	free(s->fds);
}

int sx_enroll_serve_run(const sx_enroll_serve_cfg *cfg, sx_err *err)
{
	serve s = {0};
	int lfd = -1, port = 0, rc = -1;
	char name[256] = "";
	sx_err none = {0};
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.idle, NULL);
	pthread_mutex_init(&s.srv.rl_mu, NULL);
	SX_GUARD(serve_open(&s, cfg, err));
	SX_GUARD(sx_net_listen(cfg->listen, &lfd, &port, err));
	if (sx_cert_name(s.srv.root, name, sizeof(name), &none) < 0)
		name[0] = '\0';
	sx_log("info", "ca_serve", "listen=%s port=%d ca=%s root=%s fingerprint=%s max_conns=%u",
	       SX_LOGT(cfg->listen), port, SX_LOGQ(cfg->ca_dir), SX_LOGQ(name),
	       SX_LOGT(s.srv.root_fp), s.max_conns);
	if (cfg->on_listen != NULL)
		cfg->on_listen(cfg->listen_ctx, port);
	rc = accept_loop(&s, lfd, err);
	close(lfd);
	lfd = -1;
	drain(&s);
	if (rc == 0)
		sx_log("info", "ca_serve_stop", "reason=%s", SX_LOGQ("signal"));
out:
	if (lfd >= 0)
		close(lfd);
	serve_close(&s);
	pthread_mutex_destroy(&s.srv.rl_mu);
	pthread_cond_destroy(&s.idle);
	pthread_mutex_destroy(&s.mu);
	return rc;
}
