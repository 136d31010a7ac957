/* engine/agent: the watched tree (sx_watch.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/agent/sx_watch.h"

#define WATCH_DEPTH_MAX 64
#define WATCH_DIRS_MAX	(1u << 20)
#define WATCH_MASK                                                                                 \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_ONLYDIR | IN_EXCL_UNLINK)

typedef struct wdir {
	int wd; /* -1: free */
	char *rel;
} wdir;

struct sx_watch {
	int ifd, root;
	wdir *dirs;
	size_t n, cap;
	unsigned live;
};

int sx_watch_open(sx_watch **out, int rootfd, sx_err *err)
{
	sx_watch *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (w == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	w->root = rootfd;
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		free(w);
		return sx_fail_errno(err, SX_E_IO, errno, "inotify");
	}
	*out = w;
	return 0;
}

void sx_watch_close(sx_watch *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->dirs[i].rel);
	free(w->dirs);
	close(w->ifd);
	free(w);
}

int sx_watch_fd(const sx_watch *w)
{
	return w->ifd;
}

unsigned sx_watch_count(const sx_watch *w)
{
	return w->live;
}

static wdir *find_wd(sx_watch *w, int wd)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

static void drop(sx_watch *w, wdir *d)
{
	free(d->rel);
	d->rel = NULL;
	d->wd = -1;
	w->live--;
}

/* Records wd as folder rel (a folder moved within the tree keeps its wd:
 * its path is the new one). */
static int remember(sx_watch *w, int wd, const char *rel, sx_err *err)
{
	wdir *d = find_wd(w, wd);
	char *copy = strdup(rel);
	if (copy == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	if (d == NULL)
		d = find_wd(w, -1);
	if (d == NULL) {
		if (sx_grow(&w->dirs, &w->cap, w->n + 1, sizeof(*w->dirs), WATCH_DIRS_MAX,
			    "watched folders", err) < 0) {
			free(copy);
			return -1;
		}
		d = &w->dirs[w->n++];
		d->wd = -1;
	}
	if (d->wd < 0)
		w->live++;
	free(d->rel);
	d->wd = wd;
	d->rel = copy;
	return 0;
}

/* rel + "/" + name (or name at the root) into buf; false when too long. */
static bool join(char *buf, size_t cap, const char *rel, const char *name)
{
	int n = rel[0] ? snprintf(buf, cap, "%s/%s", rel, name) : snprintf(buf, cap, "%s", name);
	return n >= 0 && (size_t)n < cap;
}

static int scan_dir(sx_watch *w, const char *rel, int depth, sx_watch_fn fn, void *ctx,
		    sx_err *err);

/* The entries of folder dfd (rel): files reported, folders scanned. */
static int scan_entries(sx_watch *w, int dfd, const char *rel, int depth, sx_watch_fn fn, void *ctx,
			sx_err *err)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char path[PATH_MAX];
	int rc = 0;
	if (d == NULL) {
		close(dfd);
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot read folder", rel);
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.' || !join(path, sizeof(path), rel, de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone since */
		if (S_ISDIR(st.st_mode))
			rc = scan_dir(w, path, depth + 1, fn, ctx, err);
		else if (S_ISREG(st.st_mode))
			rc = fn(ctx, path, &st, false, err);
	}
	closedir(d);
	return rc;
}

/* Watches folder rel, then reports what is in it (in that order: a file
 * closed in between is reported twice, never missed). */
static int scan_dir(sx_watch *w, const char *rel, int depth, sx_watch_fn fn, void *ctx, sx_err *err)
{
	char proc[64];
	if (depth > WATCH_DEPTH_MAX) {
		sx_log("warn", "agent_watch", "path=%s reason=%s", SX_LOGQ(rel),
		       SX_LOGQ("folders nested too deeply: not watched"));
		return 0;
	}
	int dfd = rel[0] ? sx_open_beneath(w->root, rel, O_RDONLY | O_DIRECTORY)
			 : fcntl(w->root, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return 0; /* gone, or no longer a folder */
	/* Through the descriptor: the folder opened beneath the root, not
	 * whatever its name leads to by now. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
	int wd = inotify_add_watch(w->ifd, proc, WATCH_MASK);
	if (wd < 0) {
		int e = errno;
		close(dfd);
		if (e == ENOSPC)
			return sx_fail(err, SX_E_IO,
				       "%s: no inotify watch left (fs.inotify.max_user_watches)",
				       rel[0] ? rel : ".");
		return sx_fail_errno(err, SX_E_IO, e, "%s: cannot watch", rel[0] ? rel : ".");
	}
	if (remember(w, wd, rel, err) < 0) {
		close(dfd);
		return -1;
	}
	return scan_entries(w, dfd, rel, depth, fn, ctx, err);
}

int sx_watch_scan(sx_watch *w, sx_watch_fn fn, void *ctx, sx_err *err)
{
	return scan_dir(w, "", 0, fn, ctx, err);
}

/* A folder moved away from rel: its watches and those below it go (one
 * moved within the tree is watched again under its new name). */
static void forget_tree(sx_watch *w, const char *rel)
{
	size_t len = strlen(rel);
	for (size_t i = 0; i < w->n; i++) {
		wdir *d = &w->dirs[i];
		if (d->wd < 0 || strncmp(d->rel, rel, len) != 0 ||
		    (d->rel[len] != '\0' && d->rel[len] != '/'))
			continue;
		(void)inotify_rm_watch(w->ifd, d->wd);
		drop(w, d);
	}
}

static int file_event(sx_watch *w, const char *path, sx_watch_fn fn, void *ctx, sx_err *err)
{
	struct stat st;
	int fd = sx_open_beneath(w->root, path, O_PATH);
	if (fd < 0)
		return 0; /* gone already */
	int rc = fstat(fd, &st);
	close(fd);
	if (rc < 0 || !S_ISREG(st.st_mode))
		return 0;
	return fn(ctx, path, &st, true, err);
}

static int one_event(sx_watch *w, const struct inotify_event *ev, sx_watch_fn fn, void *ctx,
		     sx_err *err)
{
	char path[PATH_MAX];
	wdir *d = find_wd(w, ev->wd);
	if (ev->mask & IN_IGNORED) {
		if (d != NULL)
			drop(w, d);
		return 0;
	}
	if (d == NULL || ev->len == 0 || ev->name[0] == '.' ||
	    !join(path, sizeof(path), d->rel, ev->name))
		return 0;
	if (ev->mask & IN_ISDIR) {
		if (ev->mask & IN_MOVED_FROM)
			forget_tree(w, path);
		if (ev->mask & (IN_CREATE | IN_MOVED_TO))
			return scan_dir(w, path, 1, fn, ctx, err);
		return 0;
	}
	if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
		return file_event(w, path, fn, ctx, err);
	return 0;
}

int sx_watch_read(sx_watch *w, sx_watch_fn fn, void *ctx, sx_err *err)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->ifd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return sx_fail_errno(err, SX_E_IO, n < 0 ? errno : EIO, "inotify read");
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				/* Events were lost: everything is looked at again. */
				sx_log("warn", "agent_overflow", "watched=%u", w->live);
				if (sx_watch_scan(w, fn, ctx, err) < 0)
					return -1;
				continue;
			}
			if (one_event(w, ev, fn, ctx, err) < 0)
				return -1;
		}
	}
}
