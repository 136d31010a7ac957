/* engine/io: every test runs against both backends (io_uring and poll). */
#include "testutil.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/io/sx_io.h"

#define BIG_LEN (8u << 20)
#define MANY	32

static sx_io_kind kinds[] = {SX_IO_URING, SX_IO_POLL};

static sx_io *open_io(void **state, unsigned depth)
{
	sx_io_kind kind = *(sx_io_kind *)*state;
	sx_io *io = NULL;
	sx_err err = {0};
	if (sx_io_open(&io, kind, depth, &err) < 0)
		fail_msg("sx_io_open: %s", err.msg);
	assert_string_equal(sx_io_name(io), kind == SX_IO_URING ? "io_uring" : "poll");
	return io;
}

/* Waits (at most 10 s) for exactly one completion. */
static sx_cqe wait_one(sx_io *io)
{
	sx_err err = {0};
	sx_cqe c = {0};
	uint64_t t0 = sx_now_ns();
	for (;;) {
		int n = sx_io_wait(io, &c, 1, 1000, &err);
		if (n < 0)
			fail_msg("sx_io_wait: %s", err.msg);
		if (n == 1)
			return c;
		if (sx_now_ns() - t0 > 10000000000ull)
			fail_msg("no completion within 10 s");
	}
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_send_big(void **state)
{
	sx_io *io = open_io(state, 8);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	uint8_t *src = malloc(BIG_LEN), *dst = malloc(BIG_LEN);
	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < BIG_LEN; i++)
		src[i] = (uint8_t)(i * 131 + (i >> 13));
	assert_int_equal(sx_io_send(io, sv[0], src, BIG_LEN, 1, &err), 0);
	size_t got = 0;
	int sends = 0;
	bool recv_pending = false;
	while (got < BIG_LEN || sends == 0) {
		if (!recv_pending && got < BIG_LEN) {
			size_t piece = BIG_LEN - got < 1000 ? BIG_LEN - got : 1000;
			assert_int_equal(sx_io_recv(io, sv[1], dst + got, piece, 2, &err), 0);
			recv_pending = true;
		}
		sx_cqe c = wait_one(io);
		if (c.tag == 1) {
			sends++;
			assert_int_equal(c.res, BIG_LEN);
		} else {
			assert_int_equal(c.tag, 2);
			assert_true(c.res > 0);
			got += (size_t)c.res;
			recv_pending = false;
		}
	}
	assert_int_equal(sends, 1);
	assert_int_equal(got, BIG_LEN);
	assert_memory_equal(src, dst, BIG_LEN);
	sx_cqe c;
	assert_int_equal(sx_io_wait(io, &c, 1, 0, &err), 0);
	free(src);
	free(dst);
	close(sv[0]);
	close(sv[1]);
	sx_io_close(io);
}

static void *drain(void *arg)
{
	int fd = *(int *)arg;
	size_t got = 0;
	uint8_t buf[1000];
	ssize_t r;
	while (got < BIG_LEN && (r = read(fd, buf, sizeof(buf))) > 0)
		got += (size_t)r;
	return NULL;
}

/* A send cut short by a small socket buffer, waited for without a timeout:
 * each remainder is submitted before the wait (the peer is read by a plain
 * thread, so nothing else completes meanwhile). A remainder left queued
 * would wait for ever: the alarm ends the test then. */
static void test_send_big_wait(void **state)
{
	sx_io *io = open_io(state, 8);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	uint8_t *src = calloc(1, BIG_LEN);
	assert_non_null(src);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, drain, &sv[1]), 0);
	alarm(60);
	assert_int_equal(sx_io_send(io, sv[0], src, BIG_LEN, 1, &err), 0);
	sx_cqe c;
	assert_int_equal(sx_io_wait(io, &c, 1, -1, &err), 1);
	alarm(0);
	assert_int_equal(c.tag, 1);
	assert_int_equal(c.res, BIG_LEN);
	pthread_join(th, NULL);
	free(src);
	close(sv[0]);
	close(sv[1]);
	sx_io_close(io);
}

static void test_recv_eof(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	char buf[16];
	assert_int_equal(write(sv[1], "x", 1), 1);
	close(sv[1]);
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 7, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.tag, 7);
	assert_int_equal(c.res, 1);
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 8, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 8);
	assert_int_equal(c.res, 0);
	close(sv[0]);
	sx_io_close(io);
}

static void test_file_rw(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	char *dir = sx_test_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/f", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(sx_io_write(io, fd, "hello", 5, 0, 1, &err), 0);
	assert_int_equal(sx_io_write(io, fd, "world", 5, 100, 2, &err), 0);
	int seen = 0;
	for (int i = 0; i < 2; i++) {
		sx_cqe c = wait_one(io);
		assert_int_equal(c.res, 5);
		seen |= 1 << c.tag;
	}
	assert_int_equal(seen, 6);
	char buf[200] = {0};
	assert_int_equal(sx_io_read(io, fd, buf, sizeof(buf), 0, 3, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.tag, 3);
	assert_int_equal(c.res, 105);
	assert_memory_equal(buf, "hello", 5);
	assert_memory_equal(buf + 100, "world", 5);
	assert_int_equal(buf[50], 0);
	/* Read at end of file. */
	assert_int_equal(sx_io_read(io, fd, buf, sizeof(buf), 105, 4, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 4);
	assert_int_equal(c.res, 0);
	assert_int_equal(sx_io_fsync(io, fd, 5, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 5);
	assert_int_equal(c.res, 0);
	close(fd);
	sx_test_rmtree(dir);
	free(dir);
	sx_io_close(io);
}

static void test_pipe_cur(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	char buf[16] = {0};
	assert_int_equal(sx_io_read(io, p[0], buf, sizeof(buf), SX_IO_OFF_CUR, 1, &err), 0);
	assert_int_equal(sx_io_write(io, p[1], "abc", 3, SX_IO_OFF_CUR, 2, &err), 0);
	int seen = 0;
	for (int i = 0; i < 2; i++) {
		sx_cqe c = wait_one(io);
		assert_int_equal(c.res, 3);
		seen |= 1 << c.tag;
	}
	assert_int_equal(seen, 6);
	assert_memory_equal(buf, "abc", 3);
	/* A write larger than the pipe completes once the reader drains it. */
	size_t big = 1u << 20;
	uint8_t *src = malloc(big), *dst = malloc(big);
	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < big; i++)
		src[i] = (uint8_t)(i % 251);
	assert_int_equal(sx_io_write(io, p[1], src, big, SX_IO_OFF_CUR, 10, &err), 0);
	size_t got = 0;
	bool wrote = false, reading = false;
	while (!wrote || got < big) {
		if (!reading && got < big) {
			assert_int_equal(
			    sx_io_read(io, p[0], dst + got, big - got, SX_IO_OFF_CUR, 11, &err), 0);
			reading = true;
		}
		sx_cqe c = wait_one(io);
		if (c.tag == 10) {
			assert_false(wrote);
			assert_int_equal(c.res, big);
			wrote = true;
		} else {
			assert_int_equal(c.tag, 11);
			assert_true(c.res > 0);
			got += (size_t)c.res;
			reading = false;
		}
	}
	assert_memory_equal(src, dst, big);
	free(src);
	free(dst);
	close(p[0]);
	close(p[1]);
	sx_io_close(io);
}

static void test_accept(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(sx_io_accept(io, lfd, 42, &err), 0);
	sx_cqe c;
	assert_int_equal(sx_io_wait(io, &c, 1, 0, &err), 0);
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 42);
	assert_true(c.res >= 0);
	int nfd = (int)c.res;
	assert_int_equal(sx_io_send(io, nfd, "hi", 2, 43, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 43);
	assert_int_equal(c.res, 2);
	char buf[4];
	assert_int_equal(recv(cfd, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "hi", 2);
	close(nfd);
	close(cfd);
	close(lfd);
	sx_io_close(io);
}

static void test_many(void **state)
{
	sx_io *io = open_io(state, MANY);
	sx_err err = {0};
	int sv[MANY][2];
	uint8_t buf[MANY][4];
	for (int i = 0; i < MANY; i++) {
		pair(sv[i]);
		assert_int_equal(sx_io_recv(io, sv[i][0], buf[i], sizeof(buf[i]), 100 + i, &err),
				 0);
	}
	/* The table is full now. */
	int dummy[2];
	pair(dummy);
	assert_int_equal(sx_io_recv(io, dummy[0], buf[0], 1, 999, &err), -1);
	assert_int_equal(err.cls, SX_E_OTHER);
	assert_non_null(strstr(err.msg, "io queue full"));
	for (int i = MANY - 1; i >= 0; i--) {
		uint8_t b = (uint8_t)i;
		assert_int_equal(write(sv[i][1], &b, 1), 1);
	}
	uint64_t seen = 0;
	int total = 0;
	while (total < MANY) {
		sx_cqe c[8];
		int n = sx_io_wait(io, c, SX_ARRAY_LEN(c), 5000, &err);
		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			int i = (int)c[k].tag - 100;
			assert_true(i >= 0 && i < MANY);
			assert_false(seen & (1ull << i));
			seen |= 1ull << i;
			assert_int_equal(c[k].res, 1);
			assert_int_equal(buf[i][0], i);
		}
		total += n;
	}
	for (int i = 0; i < MANY; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	close(dummy[0]);
	close(dummy[1]);
	sx_io_close(io);
}

static void test_cancel(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	char buf[8];
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 5, &err), 0);
	sx_cqe c;
	assert_int_equal(sx_io_wait(io, &c, 1, 20, &err), 0);
	assert_int_equal(sx_io_cancel_fd(io, sv[0], &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 5);
	assert_int_equal(c.res, -ECANCELED);
	assert_int_equal(sx_io_wait(io, &c, 1, 20, &err), 0);
	/* Cancelling an fd with nothing pending is harmless. */
	assert_int_equal(sx_io_cancel_fd(io, sv[1], &err), 0);
	assert_int_equal(sx_io_wait(io, &c, 1, 20, &err), 0);
	close(sv[0]);
	close(sv[1]);
	sx_io_close(io);
}

static void test_timeout(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	sx_cqe c;
	uint64_t t0 = sx_now_ns();
	assert_int_equal(sx_io_wait(io, &c, 1, 150, &err), 0);
	uint64_t ms = (sx_now_ns() - t0) / 1000000u;
	assert_true(ms >= 140);
	assert_true(ms < 3000);
	sx_io_close(io);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void test_signal(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	char buf[8];
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 9, &err), 0);
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	struct itimerval it = {.it_value = {.tv_usec = 50000}};
	alarms = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	sx_cqe c;
	uint64_t t0 = sx_now_ns();
	assert_int_equal(sx_io_wait(io, &c, 1, 5000, &err), 0);
	assert_true(sx_now_ns() - t0 < 4000000000ull);
	assert_int_equal(alarms, 1);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	/* Closing with the recv still pending drains it. */
	close(sv[1]);
	sx_io_close(io);
	close(sv[0]);
}

static void test_badfd(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	close(sv[1]);
	close(sv[0]); /* both numbers are now unused */
	char buf[8];
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 1, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.tag, 1);
	assert_int_equal(c.res, -EBADF);
	assert_int_equal(sx_io_send(io, sv[1], "x", 1, 2, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 2);
	assert_int_equal(c.res, -EBADF);
	assert_int_equal(sx_io_write(io, sv[1], "x", 1, 0, 3, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 3);
	assert_int_equal(c.res, -EBADF);
	sx_io_close(io);
}

/* A peer that went away: EPIPE as a result, never SIGPIPE. */
static void test_send_epipe(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	close(sv[1]);
	assert_int_equal(sx_io_send(io, sv[0], "x", 1, 1, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.tag, 1);
	assert_int_equal(c.res, -EPIPE);
	close(sv[0]);
	sx_io_close(io);
}

/* Registration is io_uring's; the poll backend reports false and the same
 * ops work unchanged. */
static bool registers(void **state)
{
	return *(sx_io_kind *)*state == SX_IO_URING;
}

static void test_fixed(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	size_t half = 64u << 10;
	uint8_t *pool = malloc(2 * half);
	assert_non_null(pool);
	for (size_t i = 0; i < half; i++)
		pool[i] = (uint8_t)(i * 7);
	memset(pool + half, 0, half);
	assert_int_equal(sx_io_buf_add(io, pool, 2 * half), registers(state));
	/* Again: no second slot; an overlapping region is refused. */
	assert_int_equal(sx_io_buf_add(io, pool, 2 * half), registers(state));
	assert_false(sx_io_buf_add(io, pool + 4096, half));
	char *dir = sx_test_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/f", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	/* Inside the region (fixed path) and outside it (plain path). */
	assert_int_equal(sx_io_write(io, fd, pool, half, 4096, 1, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.tag, 1);
	assert_int_equal(c.res, half);
	assert_int_equal(sx_io_write(io, fd, "tail", 4, 4096 + half, 2, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.res, 4);
	assert_int_equal(sx_io_read(io, fd, pool + half, half, 4096, 3, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 3);
	assert_int_equal(c.res, half);
	assert_memory_equal(pool, pool + half, half);
	/* Removed, then a plain read into the same memory still works. */
	sx_io_buf_remove(io, pool);
	sx_io_buf_remove(io, pool); /* twice: a no-op */
	assert_int_equal(sx_io_read(io, fd, pool, 4, 4096 + half, 4, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.res, 4);
	assert_memory_equal(pool, "tail", 4);
	/* A smaller region inside the old one can now be added. */
	assert_int_equal(sx_io_buf_add(io, pool + 4096, half), registers(state));
	assert_int_equal(sx_io_read(io, fd, pool + 4096, half, 4096, 5, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.res, half);
	assert_int_equal(pool[4096 + 1], 7);
	close(fd);
	sx_test_rmtree(dir);
	free(dir);
	sx_io_close(io); /* removes the region, then it is freed */
	free(pool);
}

/* A registered socket, file and listening socket: every op completes as on
 * a plain fd; removed then closed, the peer sees the close at once. */
static void test_reg_files(void **state)
{
	sx_io *io = open_io(state, 8);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	assert_int_equal(sx_io_file_add(io, sv[0]), registers(state));
	assert_int_equal(sx_io_file_add(io, sv[0]), registers(state)); /* again: no-op */
	assert_int_equal(sx_io_send(io, sv[0], "ping", 4, 1, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.tag, 1);
	assert_int_equal(c.res, 4);
	char buf[8];
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 4);
	assert_int_equal(write(sv[1], "pong", 4), 4);
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 2, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 2);
	assert_int_equal(c.res, 4);
	assert_memory_equal(buf, "pong", 4);

	char *dir = sx_test_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/f", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(sx_io_file_add(io, fd), registers(state));
	assert_int_equal(sx_io_write(io, fd, "hello", 5, 10, 3, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.res, 5);
	assert_int_equal(sx_io_fsync(io, fd, 4, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.res, 0);
	char rb[32] = {0};
	assert_int_equal(sx_io_read(io, fd, rb, sizeof(rb), 0, 5, &err), 0);
	c = wait_one(io);
	assert_int_equal(c.res, 15);
	assert_memory_equal(rb + 10, "hello", 5);
	sx_io_file_remove(io, fd);
	sx_io_file_remove(io, fd); /* twice: a no-op */
	close(fd);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(sx_io_file_add(io, lfd), registers(state));
	assert_int_equal(sx_io_accept(io, lfd, 6, &err), 0);
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 6);
	assert_true(c.res >= 0);
	close((int)c.res); /* a plain fd: accept does not register it */
	close(cfd);

	/* Remove, then close: the file is gone from the kernel too, so the
	 * peer reads EOF at once. */
	sx_io_file_remove(io, sv[0]);
	close(sv[0]);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
	close(sv[1]);

	/* Registered and closed without a remove, the ring keeps the socket
	 * open; sx_io_close lets it go before it returns. */
	pair(sv);
	assert_int_equal(sx_io_file_add(io, sv[0]), registers(state));
	close(sv[0]);
	if (registers(state)) {
		assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
		/* Ops go through the slot, not the (now closed) fd number. */
		assert_int_equal(sx_io_send(io, sv[0], "x", 1, 7, &err), 0);
		c = wait_one(io);
		assert_int_equal(c.res, 1);
		assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 1);
	}
	sx_io_close(io);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
	close(sv[1]);
	close(lfd);
	sx_test_rmtree(dir);
	free(dir);
}

/* Sends n one-byte messages on fd and reads them on peer. */
static void sends(sx_io *io, int fd, int peer, int n)
{
	sx_err err = {0};
	char b;
	for (int i = 0; i < n; i++) {
		assert_int_equal(sx_io_send(io, fd, "x", 1, 40 + (uint64_t)i, &err), 0);
		assert_int_equal(wait_one(io).res, 1);
		assert_int_equal(read(peer, &b, 1), 1);
	}
}

/* A registration asked for after 3 ops: the first two go through the plain
 * fd, the third takes a slot (seen as the ring holding the socket open
 * after a close without a remove); a remove before then ends the wait. */
static void test_reg_after(void **state)
{
	sx_io *io = open_io(state, 8);
	int a[2], b[2], c[2];
	char buf[4];
	pair(a);
	pair(b);
	pair(c);
	assert_int_equal(sx_io_file_add_after(io, a[0], 3), registers(state));
	assert_int_equal(sx_io_file_add_after(io, b[0], 3), registers(state));
	assert_int_equal(sx_io_file_add_after(io, c[0], 3), registers(state));
	sends(io, a[0], a[1], 2); /* not yet */
	sends(io, b[0], b[1], 3); /* registered at the third */
	sx_io_file_remove(io, c[0]);
	sends(io, c[0], c[1], 3); /* asked for no more */
	close(a[0]);
	close(b[0]);
	close(c[0]);
	assert_int_equal(recv(a[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
	assert_int_equal(recv(c[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
	if (registers(state)) {
		assert_int_equal(recv(b[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
	}
	sx_io_close(io);
	assert_int_equal(recv(b[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
	close(a[1]);
	close(b[1]);
	close(c[1]);
}

/* Cancel by fd reaches ops on a registered fd, also after the fd was
 * removed while they were in flight. */
static void test_reg_cancel(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	char buf[8];
	for (int round = 0; round < 2; round++) {
		assert_int_equal(sx_io_file_add(io, sv[0]), registers(state));
		assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 10 + round, &err), 0);
		sx_cqe c;
		assert_int_equal(sx_io_wait(io, &c, 1, 20, &err), 0);
		if (round == 1)
			sx_io_file_remove(io, sv[0]);
		assert_int_equal(sx_io_cancel_fd(io, sv[0], &err), 0);
		c = wait_one(io);
		assert_int_equal(c.tag, 10 + round);
		assert_int_equal(c.res, -ECANCELED);
		assert_int_equal(sx_io_wait(io, &c, 1, 20, &err), 0);
	}
	/* The fd is still good for plain ops after all this. */
	assert_int_equal(write(sv[1], "z", 1), 1);
	assert_int_equal(sx_io_recv(io, sv[0], buf, sizeof(buf), 20, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.res, 1);
	close(sv[0]);
	close(sv[1]);
	sx_io_close(io);
}

/* Depth 4 gets the smallest tables (16 slots): the 17th add falls back to
 * the plain fd or buffer, which works as before; a remove makes room. */
#define TABLE 16
static void test_reg_full(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int p[TABLE + 1][2];
	for (int i = 0; i <= TABLE; i++) {
		assert_int_equal(pipe2(p[i], O_CLOEXEC), 0);
		assert_int_equal(sx_io_file_add(io, p[i][1]), registers(state) && i < TABLE);
	}
	size_t page = 4096;
	uint8_t *mem = malloc((TABLE + 1) * page);
	assert_non_null(mem);
	for (int i = 0; i <= TABLE; i++) {
		memset(mem + (size_t)i * page, 'a' + i, page);
		assert_int_equal(sx_io_buf_add(io, mem + (size_t)i * page, page),
				 registers(state) && i < TABLE);
	}
	/* Every fd with every buffer: registered or not, the bytes arrive. */
	for (int i = 0; i <= TABLE; i++) {
		assert_int_equal(sx_io_write(io, p[i][1], mem + (size_t)(TABLE - i) * page, 100,
					     SX_IO_OFF_CUR, (uint64_t)i, &err),
				 0);
		sx_cqe c = wait_one(io);
		assert_int_equal(c.tag, i);
		assert_int_equal(c.res, 100);
		char b[100];
		assert_int_equal(read(p[i][0], b, sizeof(b)), 100);
		assert_int_equal(b[0], 'a' + TABLE - i);
	}
	sx_io_file_remove(io, p[3][1]);
	assert_int_equal(sx_io_file_add(io, p[TABLE][1]), registers(state));
	sx_io_buf_remove(io, mem + 3 * page);
	assert_int_equal(sx_io_buf_add(io, mem + TABLE * page, page), registers(state));
	assert_int_equal(
	    sx_io_write(io, p[TABLE][1], mem + TABLE * page, 10, SX_IO_OFF_CUR, 99, &err), 0);
	sx_cqe c = wait_one(io);
	assert_int_equal(c.res, 10);
	char b[10];
	assert_int_equal(read(p[TABLE][0], b, sizeof(b)), 10);
	assert_int_equal(b[9], 'a' + TABLE);
	for (int i = 0; i <= TABLE; i++) {
		sx_io_file_remove(io, p[i][1]);
		close(p[i][0]);
		close(p[i][1]);
	}
	sx_io_close(io);
	free(mem);
}

/* Closing with ops in flight drains them: no leak, no hang, no late write. */
static void test_close_pending(void **state)
{
	sx_io *io = open_io(state, 8);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	char *buf = malloc(64);
	assert_non_null(buf);
	assert_int_equal(sx_io_recv(io, sv[0], buf, 64, 1, &err), 0);
	assert_int_equal(sx_io_accept(io, lfd, 2, &err), 0);
	sx_cqe c;
	assert_int_equal(sx_io_wait(io, &c, 1, 10, &err), 0);
	uint64_t t0 = sx_now_ns();
	sx_io_close(io);
	assert_true(sx_now_ns() - t0 < 2000000000ull);
	free(buf);
	close(lfd);
	close(sv[0]);
	close(sv[1]);
}

/* Cancel while a large send is partly out: one completion, -ECANCELED (or
 * the full length if it happened to finish first). */
static void test_cancel_send(void **state)
{
	sx_io *io = open_io(state, 4);
	sx_err err = {0};
	int sv[2];
	pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	size_t len = 1u << 20;
	uint8_t *src = calloc(1, len);
	assert_non_null(src);
	assert_int_equal(sx_io_send(io, sv[0], src, len, 1, &err), 0);
	sx_cqe c;
	assert_int_equal(sx_io_wait(io, &c, 1, 20, &err), 0);
	assert_int_equal(sx_io_cancel_fd(io, sv[0], &err), 0);
	c = wait_one(io);
	assert_int_equal(c.tag, 1);
	assert_true(c.res == -ECANCELED || c.res == (int64_t)len);
	assert_int_equal(sx_io_wait(io, &c, 1, 50, &err), 0);
	free(src);
	close(sv[0]);
	close(sv[1]);
	sx_io_close(io);
}

/* What a container's seccomp profile does: io_uring_setup fails with EPERM.
 * In a child (the filter cannot be removed): explicit io_uring fails naming
 * the reason, AUTO falls back to poll, and poll works. */
static int seccomp_child(void)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = SX_ARRAY_LEN(f), .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return 10;
	sx_io *io = NULL;
	sx_err err = {0};
	if (sx_io_open(&io, SX_IO_URING, 4, &err) == 0)
		return 11;
	if (err.cls != SX_E_OTHER || strstr(err.msg, "Operation not permitted") == NULL)
		return 12;
	sx_err_clear(&err);
	if (sx_io_open(&io, SX_IO_AUTO, 4, &err) < 0 || strcmp(sx_io_name(io), "poll") != 0)
		return 13;
	int sv[2];
	char b[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || write(sv[1], "ok", 2) != 2 ||
	    sx_io_recv(io, sv[0], b, 2, 1, &err) < 0)
		return 14;
	sx_cqe c;
	if (sx_io_wait(io, &c, 1, 1000, &err) != 1 || c.res != 2)
		return 15;
	sx_io_close(io);
	return 0;
}

static void test_seccomp_fallback(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(seccomp_child());
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_auto(void **state)
{
	(void)state;
	sx_io *io = NULL;
	sx_err err = {0};
	assert_int_equal(setenv("SXFER_IO_FORCE_FALLBACK", "1", 1), 0);
	assert_int_equal(sx_io_open(&io, SX_IO_AUTO, 4, &err), 0);
	assert_string_equal(sx_io_name(io), "poll");
	sx_io_close(io);
	/* An explicit choice is not overridden. */
	assert_int_equal(sx_io_open(&io, SX_IO_URING, 4, &err), 0);
	assert_string_equal(sx_io_name(io), "io_uring");
	sx_io_close(io);
	assert_int_equal(unsetenv("SXFER_IO_FORCE_FALLBACK"), 0);
	assert_int_equal(sx_io_open(&io, SX_IO_AUTO, 4, &err), 0);
	assert_string_equal(sx_io_name(io), "io_uring");
	sx_io_close(io);
	assert_int_equal(sx_io_open(&io, SX_IO_POLL, 0, &err), -1);
	assert_int_equal(err.cls, SX_E_USAGE);
}

static void test_kind_parse(void **state)
{
	(void)state;
	sx_io_kind k;
	assert_int_equal(sx_io_kind_parse("auto", &k), 0);
	assert_int_equal(k, SX_IO_AUTO);
	assert_int_equal(sx_io_kind_parse("io_uring", &k), 0);
	assert_int_equal(k, SX_IO_URING);
	assert_int_equal(sx_io_kind_parse("poll", &k), 0);
	assert_int_equal(k, SX_IO_POLL);
	assert_int_equal(sx_io_kind_parse("epoll", &k), -1);
}

#define BOTH(f) cmocka_unit_test_prestate(f, &kinds[0]), cmocka_unit_test_prestate(f, &kinds[1])

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(test_send_big),
	    BOTH(test_send_big_wait),
	    BOTH(test_recv_eof),
	    BOTH(test_file_rw),
	    BOTH(test_pipe_cur),
	    BOTH(test_accept),
	    BOTH(test_many),
	    BOTH(test_cancel),
	    BOTH(test_timeout),
	    BOTH(test_signal),
	    BOTH(test_badfd),
	    BOTH(test_send_epipe),
	    BOTH(test_fixed),
	    BOTH(test_reg_files),
	    BOTH(test_reg_cancel),
	    BOTH(test_reg_after),
	    BOTH(test_reg_full),
	    BOTH(test_close_pending),
	    BOTH(test_cancel_send),
	    cmocka_unit_test(test_auto),
	    cmocka_unit_test(test_seccomp_fallback),
	    cmocka_unit_test(test_kind_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
