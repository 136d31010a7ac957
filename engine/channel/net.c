/* Listening and connecting sockets. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"

int sx_net_port_check(const char *port, bool allow_any)
{
	uint64_t v;
	/* getaddrinfo takes any number and keeps its low 16 bits: 70000 would
	 * be port 4464. */
	if (sx_parse_u64(port, &v) < 0 || v > 65535 || (v == 0 && !allow_any))
		return -1;
	return 0;
}

int sx_net_split(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	const char *h = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= pcap)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	snprintf(port, pcap, "%s", colon + 1);
	return 0;
}

static void tune(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int sx_net_listen(const char *addr_port, int *fd_out, int *port_out, sx_err *err)
{
	char host[256], port[32];
	struct addrinfo hints = {0}, *res = NULL;
	int fd = -1, rc = -1;
	if (sx_net_split(addr_port, host, sizeof(host), port, sizeof(port)) < 0)
		return sx_fail(err, SX_E_USAGE, "'%s': expected ADDR:PORT", addr_port);
	if (sx_net_port_check(port, true) < 0)
		return sx_fail(err, SX_E_USAGE, "'%s': the port must be 0 to 65535", addr_port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0)
		return sx_fail(err, SX_E_NET, "%s: %s", addr_port, gai_strerror(gai));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sx_fail_errno(err, SX_E_NET, errno, "%s: socket", addr_port);
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		sx_fail_errno(err, SX_E_NET, errno, "%s: cannot listen", addr_port);
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return rc;
}

int sx_net_connect(const char *host, const char *port, int timeout_ms, int *fd_out, sx_err *err)
{
	struct addrinfo hints = {0}, *res = NULL;
	int fd = -1, last = 0;
	if (sx_net_port_check(port, false) < 0)
		return sx_fail(err, SX_E_USAGE, "%s:%s: the port must be 1 to 65535", host, port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0)
		return sx_fail(err, SX_E_NET, "%s:%s: %s", host, port, gai_strerror(gai));
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = errno;
			close(fd);
			fd = -1;
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n = poll(&p, 1, timeout_ms);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (n == 1)
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (n == 1 && soerr == 0)
			break;
		last = n == 0 ? ETIMEDOUT : (soerr ? soerr : errno);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return sx_fail_errno(err, SX_E_NET, last ? last : ECONNREFUSED,
				     "%s:%s: cannot connect", host, port);
	/* The backends expect blocking semantics to be theirs to choose. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tune(fd);
	*fd_out = fd;
	return 0;
}

int sx_net_send_all(int fd, const void *buf, size_t len, int timeout_ms, sx_err *err)
{
	const uint8_t *p = buf;
	uint64_t end = sx_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return sx_fail_errno(err, SX_E_NET, errno, "send failed");
		uint64_t now = sx_now_ns();
		if (now >= end)
			return sx_fail(err, SX_E_NET, "send: no progress for %d ms (timeout)",
				       timeout_ms);
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		(void)poll(&pfd, 1, (int)((end - now) / 1000000u) + 1);
	}
	return 0;
}

long sx_net_recv_some(int fd, void *buf, size_t len, int timeout_ms, sx_err *err)
{
	uint64_t end = sx_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0)
			return (long)n;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return sx_fail_errno(err, SX_E_NET, errno, "receive failed");
		uint64_t now = sx_now_ns();
		if (now >= end)
			return sx_fail(err, SX_E_NET, "receive: nothing for %d ms (timeout)",
				       timeout_ms);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		(void)poll(&pfd, 1, (int)((end - now) / 1000000u) + 1);
	}
}
