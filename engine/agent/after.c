/* engine/agent: whether a queued file is complete, and what --after does
 * with a file once a verified receipt covers it (docs/AGENT.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/agent/agent_int.h"

static void stat_of(const struct stat *st, sx_aq_stat *out)
{
	out->size = (uint64_t)st->st_size;
	out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
	out->ino = (uint64_t)st->st_ino;
}

static bool same(const sx_aq_stat *a, const sx_aq_stat *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ino == b->ino;
}

/* Whether some process has fd's file open for writing: a read lease is
 * refused exactly then (fcntl(2), F_SETLEASE). 1: open for writing, 0: not,
 * -1: the kernel cannot tell (leases off, not the file's owner, a file
 * system without leases). */
static int open_for_writing(int fd)
{
	if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
		(void)fcntl(fd, F_SETLEASE, F_UNLCK);
		return 0;
	}
	return errno == EAGAIN || errno == EBUSY ? 1 : -1;
}

agent_check agent_check_file(const agent *a, const sx_aq_row *r, int64_t now_ms, sx_aq_stat *now)
{
	struct stat st;
	agent_check ck = CK_OK;
	int fd = sx_open_beneath(a->root, r->path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return CK_GONE;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return CK_GONE;
	}
	stat_of(&st, now);
	int w = open_for_writing(fd);
	close(fd);
	if (!same(now, &r->st))
		ck = CK_CHANGED;
	else if (w == 1)
		ck = CK_BUSY;
	else if (w < 0 && !r->closed &&
		 now_ms - now->mtime_ns / 1000000 < (int64_t)a->cfg->settle_ms)
		ck = CK_UNSETTLED; /* found by a scan, and nothing else tells */
	return ck;
}

/* The folder part of rel opened beneath root (created beneath it when
 * create), and the last component in *base. */
static int parent_of(int root, const char *rel, bool create, const char **base)
{
	const char *slash = strrchr(rel, '/');
	char dir[4096];
	*base = slash ? slash + 1 : rel;
	if (slash == NULL)
		return fcntl(root, F_DUPFD_CLOEXEC, 0);
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rel), rel);
	int cur = fcntl(root, F_DUPFD_CLOEXEC, 0);
	for (char *comp = dir, *next; cur >= 0 && comp != NULL; comp = next) {
		next = strchr(comp, '/');
		if (next != NULL)
			*next++ = '\0';
		if (create && mkdirat(cur, comp, 0750) < 0 && errno != EEXIST) {
			close(cur);
			return -1;
		}
		int d = sx_open_beneath(cur, comp, O_RDONLY | O_DIRECTORY);
		close(cur);
		cur = d;
	}
	return cur;
}

/* Another file system: copied to a temporary beside the target, flushed,
 * renamed into place (never over a file), then the original removed. */
static int move_copy(int sfd, const char *base, int tfd, int pfd, sx_err *err)
{
	char tmp[300];
	struct stat st;
	int rc = -1, in = -1, out = -1;
	snprintf(tmp, sizeof(tmp), ".%.200s.sxmove", base);
	in = openat(sfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "cannot read it");
		goto out;
	}
	out = openat(tfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		     st.st_mode & 0777);
	if (out < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "cannot create it in the move folder");
		goto out;
	}
	for (off_t done = 0; done < st.st_size;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)(st.st_size - done), 0);
		if (n <= 0) {
			sx_fail_errno(err, SX_E_IO, n < 0 ? errno : EIO, "copy to the move folder");
			goto out;
		}
		done += n;
	}
	struct timespec t[2] = {st.st_atim, st.st_mtim};
	if (futimens(out, t) < 0 || fsync(out) < 0 ||
	    renameat2(tfd, tmp, tfd, base, RENAME_NOREPLACE) < 0 || fsync(tfd) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "cannot place it in the move folder");
		goto out;
	}
	SX_ENSURE(unlinkat(pfd, base, 0) == 0, err, SX_E_IO, "copied, but cannot remove it");
	rc = 0;
out:
	if (rc < 0 && out >= 0)
		(void)unlinkat(tfd, tmp, 0);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* Deletes or moves rel (in folder pfd, last component base). */
static int remove_or_move(agent *a, const char *rel, int pfd, const char *base, sx_err *err)
{
	const char *tbase;
	int rc = -1;
	if (a->cfg->after == SX_AFTER_DELETE) {
		if (unlinkat(pfd, base, 0) < 0)
			return sx_fail_errno(err, SX_E_IO, errno, "cannot delete it");
		return 0;
	}
	int tfd = parent_of(a->move_fd, rel, true, &tbase);
	if (tfd < 0)
		return sx_fail_errno(err, SX_E_IO, errno,
				     "cannot make its folder in the move folder");
	if (renameat2(pfd, base, tfd, tbase, RENAME_NOREPLACE) == 0)
		rc = fsync(tfd) < 0 ? sx_fail_errno(err, SX_E_IO, errno, "fsync") : 0;
	else if (errno == EXDEV)
		rc = move_copy(pfd, base, tfd, pfd, err);
	else
		sx_fail_errno(err, SX_E_IO, errno, "cannot move it");
	close(tfd);
	return rc;
}

static void after_event(const agent *a, const char *rel, const char *result, const char *why)
{
	if (why != NULL)
		sx_log("warn", "agent_after", "path=%s action=%s reason=%s", SX_LOGQ(rel),
		       SX_LOGT(result), SX_LOGQ(why));
	else
		sx_log("info", "agent_after", "path=%s action=%s", SX_LOGQ(rel), SX_LOGT(result));
	sx_agent_event ev = {.kind = SX_AEV_AFTER, .path = rel, .result = result, .message = why};
	agent_emit(a, &ev);
}

int agent_after(agent *a, const char *rel, const sx_aq_stat *sent, sx_err *err)
{
	const char *base;
	sx_aq_stat now;
	struct stat st;
	sx_err why = {0};
	if (a->cfg->after == SX_AFTER_KEEP)
		return sx_aq_after_applied(a->q, rel, err);
	int pfd = parent_of(a->root, rel, false, &base);
	int fd = pfd < 0 ? -1 : openat(pfd, base, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		if (pfd >= 0)
			close(pfd);
		return sx_aq_forget(a->q, rel, err); /* gone already */
	}
	stat_of(&st, &now);
	/* Never a file that changed since it was sent, or that is being
	 * written again: it stays, and stays done (docs/AGENT.md). */
	if (!same(&now, sent))
		sx_fail(&why, SX_E_IO, "changed since it was sent: kept");
	else if (open_for_writing(fd) == 1)
		sx_fail(&why, SX_E_IO, "open for writing: kept");
	close(fd);
	if (why.cls == SX_OK && remove_or_move(a, rel, pfd, base, &why) == 0) {
		close(pfd);
		after_event(a, rel, a->cfg->after == SX_AFTER_DELETE ? "deleted" : "moved", NULL);
		return sx_aq_forget(a->q, rel, err);
	}
	close(pfd);
	after_event(a, rel, "kept", why.msg);
	return sx_aq_after_applied(a->q, rel, err);
}

int agent_after_pending(agent *a, sx_err *err)
{
	sx_aq_row *rows = NULL;
	size_t n = 0;
	int rc = 0;
	do {
		if (sx_aq_after_pending(a->q, 256, &rows, &n, err) < 0)
			return -1;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = agent_after(a, rows[i].path, &rows[i].st, err);
		sx_aq_rows_free(rows, n);
	} while (rc == 0 && n == 256);
	return rc;
}
