#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>
#include <errno.h>
#include <sys/socket.h>

#include "engine/channel/sx_link.h"

char *sx_test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[512];
	snprintf(tmpl, sizeof(tmpl), "%s/sxfer-test-XXXXXX", base ? base : "/tmp");
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void sx_test_rmtree(const char *dir)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

long sx_test_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (long)(n / 2);
}

int sx_test_send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int sx_test_handshake(sx_link *l, int fd, sx_err *err)
{
	for (;;) {
		const uint8_t *o;
		size_t n;
		sx_link_hs_output(l, &o, &n);
		if (n > 0) {
			if (sx_test_send_all(fd, o, n) < 0)
				return sx_fail_errno(err, SX_E_NET, errno, "handshake: send");
			sx_link_hs_sent(l);
			continue;
		}
		if (l->ready)
			return 0;
		uint8_t *b;
		size_t cap;
		sx_link_hs_recv_buf(l, &b, &cap);
		ssize_t got = recv(fd, b, cap, 0);
		if (got <= 0)
			return sx_fail(err, SX_E_NET, "handshake: the peer closed or recv failed");
		if (sx_link_hs_input(l, (size_t)got, err) < 0)
			return -1;
	}
}
