/* engine/agent/queue: the agent's persistent queue. The states and their
 * changes; a process killed at any point of a transaction leaves it whole
 * or absent; a write-ahead journal cut at any byte (a torn write at a
 * crash) replays to a state some committed transaction left. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "engine/agent/sx_agentq.h"

static char *dir;
static char db[4200];

static int setup(void **state)
{
	(void)state;
	dir = sx_test_tmpdir();
	if (dir == NULL)
		return -1;
	snprintf(db, sizeof(db), "%s/queue.sqlite", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sx_test_rmtree(dir);
	free(dir);
	return 0;
}

static sx_aq_stat st_of(uint64_t size, int64_t mtime)
{
	return (sx_aq_stat){.size = size, .mtime_ns = mtime, .ino = 7};
}

static uint64_t count(sx_aq *q, sx_aq_state s)
{
	uint64_t n = 0;
	sx_err err = {0};
	assert_int_equal(sx_aq_count(q, s, &n, &err), 0);
	return n;
}

static sx_aq_seen_result seen(sx_aq *q, const char *path, sx_aq_stat s, bool closed, int64_t now)
{
	sx_aq_seen_result r;
	sx_err err = {0};
	assert_int_equal(sx_aq_seen(q, path, &s, closed, now, &r, &err), 0);
	return r;
}

static void test_states(void **state)
{
	(void)state;
	sx_aq *q = NULL;
	sx_err err = {0};
	sx_aq_row *rows = NULL;
	size_t n = 0;
	uint64_t due, batch = 0;
	int64_t oldest, wake;
	assert_int_equal(sx_aq_open(db, &q, &err), 0);
	assert_int_equal(seen(q, "a", st_of(10, 1), true, 1000), SX_AQ_ADDED);
	assert_int_equal(seen(q, "d/b", st_of(20, 1), false, 1001), SX_AQ_ADDED);
	assert_int_equal(seen(q, "a", st_of(10, 1), false, 1500), SX_AQ_UPDATED);
	assert_int_equal(sx_aq_due(q, 2000, &due, &oldest, &wake, &err), 0);
	assert_int_equal(due, 2);
	assert_int_equal(oldest, 1000); /* an unchanged file keeps its time */
	assert_int_equal(seen(q, "a", st_of(11, 2), true, 1600), SX_AQ_UPDATED);
	assert_int_equal(sx_aq_take(q, 2000, 10, &rows, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].path, "d/b"); /* oldest first: a waits from 1600 */
	assert_int_equal(rows[1].st.size, 11);
	assert_true(rows[1].closed);
	assert_false(rows[0].closed);
	sx_aq_rows_free(rows, n);

	assert_int_equal(sx_aq_next_batch(q, &batch, &err), 0);
	assert_int_equal(batch, 1);
	assert_int_equal(sx_aq_set(q, "a", SX_AQ_SENDING, NULL, batch, 0, &err), 0);
	assert_int_equal(sx_aq_set(q, "d/b", SX_AQ_SENDING, NULL, batch, 0, &err), 0);
	assert_int_equal(seen(q, "a", st_of(11, 2), true, 1700), SX_AQ_KNOWN);
	assert_int_equal(sx_aq_due(q, 2000, &due, &oldest, &wake, &err), 0);
	assert_int_equal(due, 0);
	sx_aq_close(q);

	/* A stop in the middle of a batch: its files are queued again. */
	uint64_t rec = 0;
	assert_int_equal(sx_aq_open(db, &q, &err), 0);
	assert_int_equal(sx_aq_recover(q, &rec, &err), 0);
	assert_int_equal(rec, 2);
	assert_int_equal(count(q, SX_AQ_QUEUED), 2);
	assert_int_equal(sx_aq_next_batch(q, &batch, &err), 0);
	assert_int_equal(batch, 2); /* numbers are not reused */

	sx_aq_stat sent = st_of(11, 2);
	assert_int_equal(sx_aq_set(q, "a", SX_AQ_DONE, &sent, 2, 0, &err), 0);
	assert_int_equal(sx_aq_set(q, "d/b", SX_AQ_REFUSED, NULL, 2, 5000, &err), 0);
	assert_int_equal(seen(q, "a", st_of(11, 2), true, 3000), SX_AQ_KNOWN);
	assert_int_equal(seen(q, "a", st_of(12, 3), true, 3000), SX_AQ_CHANGED);
	assert_int_equal(count(q, SX_AQ_DONE), 1);
	/* refused: not due before its time, then due again */
	assert_int_equal(sx_aq_due(q, 4000, &due, &oldest, &wake, &err), 0);
	assert_int_equal(due, 0);
	assert_int_equal(wake, 5000);
	assert_int_equal(sx_aq_take(q, 5000, 10, &rows, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].tries, 1);
	sx_aq_rows_free(rows, n);

	/* --after pending until applied; forgotten once gone */
	assert_int_equal(sx_aq_after_pending(q, 10, &rows, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].path, "a");
	sx_aq_rows_free(rows, n);
	assert_int_equal(sx_aq_after_applied(q, "a", &err), 0);
	assert_int_equal(sx_aq_after_pending(q, 10, &rows, &n, &err), 0);
	assert_int_equal(n, 0);
	sx_aq_rows_free(rows, n);
	assert_int_equal(sx_aq_forget(q, "a", &err), 0);
	assert_int_equal(seen(q, "a", st_of(12, 3), true, 6000), SX_AQ_ADDED);
	sx_aq_close(q);
}

#define KBATCH 10
#define KFILES (4 * KBATCH)

/* The agent's pattern, as a child: files seen, a batch marked sending,
 * then done, in transactions of KBATCH; killed (SIGKILL) before its
 * kill_at-th write, inside a transaction or between two. */
static void child_run(int kill_at)
{
	sx_aq *q = NULL;
	sx_err err = {0};
	int ops = 0;
	char path[32];
	if (sx_aq_open(db, &q, &err) < 0)
		_exit(2);
#define OP()                                                                                       \
	do {                                                                                       \
		if (ops++ == kill_at)                                                              \
			raise(SIGKILL);                                                            \
	} while (0)
	for (int b = 0; b < KFILES / KBATCH; b++) {
		sx_aq_stat s = st_of(100, b);
		sx_aq_seen_result r;
		for (int phase = 0; phase < 3; phase++) {
			if (sx_aq_begin(q, &err) < 0)
				_exit(3);
			for (int i = 0; i < KBATCH; i++) {
				snprintf(path, sizeof(path), "f%03d", b * KBATCH + i);
				OP();
				int rc = phase == 0   ? sx_aq_seen(q, path, &s, true, 1, &r, &err)
					 : phase == 1 ? sx_aq_set(q, path, SX_AQ_SENDING, NULL,
								  (uint64_t)b + 1, 0, &err)
						      : sx_aq_set(q, path, SX_AQ_DONE, &s,
								  (uint64_t)b + 1, 0, &err);
				if (rc < 0)
					_exit(4);
			}
			OP();
			if (sx_aq_commit(q, &err) < 0)
				_exit(5);
		}
	}
	_exit(0); /* no close: the journal is left as a crash leaves it */
}

/* Every transaction whole or absent: each state's count is a multiple of
 * a batch, and nothing is sending once recovered. */
static void check_whole(uint64_t *done_out)
{
	sx_aq *q = NULL;
	sx_err err = {0};
	uint64_t rec = 0;
	assert_int_equal(sx_aq_open(db, &q, &err), 0);
	uint64_t queued = count(q, SX_AQ_QUEUED), sending = count(q, SX_AQ_SENDING);
	uint64_t done = count(q, SX_AQ_DONE);
	assert_int_equal(queued % KBATCH, 0);
	assert_int_equal(sending % KBATCH, 0);
	assert_int_equal(done % KBATCH, 0);
	assert_true(sending <= KBATCH);
	assert_int_equal(sx_aq_recover(q, &rec, &err), 0);
	assert_int_equal(count(q, SX_AQ_SENDING), 0);
	assert_int_equal(count(q, SX_AQ_QUEUED), queued + sending);
	*done_out = done;
	sx_aq_close(q);
}

static void test_killed(void **state)
{
	(void)state;
	int total = (KFILES / KBATCH) * 3 * (KBATCH + 1);
	for (int k = 0; k <= total; k += 3) {
		char wal[4300];
		snprintf(wal, sizeof(wal), "%s-wal", db);
		unlink(db);
		unlink(wal);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_run(k);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(k < total ? WIFSIGNALED(status) : WIFEXITED(status));
		uint64_t done = 0;
		check_whole(&done);
		if (k == total)
			assert_int_equal(done, KFILES);
	}
}

static void copy_file(const char *from, const char *to, off_t len)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char buf[65536];
	assert_true(in >= 0 && out >= 0);
	while (len > 0) {
		ssize_t n = read(in, buf, (size_t)len < sizeof(buf) ? (size_t)len : sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(write(out, buf, (size_t)n), n);
		len -= n;
	}
	close(in);
	close(out);
}

/* The journal as a crash may leave it, cut at any byte: the queue opens,
 * and holds what some prefix of the committed transactions made. */
static void test_truncated_journal(void **state)
{
	(void)state;
	char wal[4300], db2[4300], wal2[4400], shm2[4400];
	struct stat sb;
	snprintf(wal, sizeof(wal), "%s-wal", db);
	snprintf(db2, sizeof(db2), "%s/cut.sqlite", dir);
	snprintf(wal2, sizeof(wal2), "%s-wal", db2);
	snprintf(shm2, sizeof(shm2), "%s-shm", db2);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_run(-1);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(sb.st_size > 4096);
	struct stat dbst;
	assert_int_equal(stat(db, &dbst), 0);
	uint64_t last = 0;
	int steps = 0;
	for (off_t cut = 0; cut <= sb.st_size; cut += cut < 64 ? 8 : 1531) {
		if (cut + 1531 > sb.st_size && cut < sb.st_size)
			cut = sb.st_size;
		copy_file(db, db2, dbst.st_size);
		copy_file(wal, wal2, cut);
		unlink(shm2);
		sx_aq *q = NULL;
		sx_err err = {0};
		assert_int_equal(sx_aq_open(db2, &q, &err), 0);
		uint64_t done = count(q, SX_AQ_DONE), all = 0;
		for (int s = 0; s <= SX_AQ_SKIPPED; s++)
			all += count(q, (sx_aq_state)s);
		assert_int_equal(done % KBATCH, 0);
		assert_int_equal(all % KBATCH, 0);
		assert_true(done >= last); /* a longer journal never loses a commit */
		steps += done > last;
		last = done;
		sx_aq_close(q);
	}
	assert_int_equal(last, KFILES);
	assert_int_equal(steps, KFILES / KBATCH); /* each batch's commit replayed on its own */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_killed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_journal, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
