/* engine/transfer/ledger_check: the ledger against the disk (sx_ledger_check.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/sign/sx_manifest.h"
#include "engine/transfer/sx_held.h"
#include "engine/transfer/sx_ledger_check.h"
#include "engine/wire/sx_wire.h"

#define WALK_DEPTH_MAX (SX_PATH_DEPTH_MAX + 1)

typedef struct fix {
	int64_t id;
	sx_lfile_state st;
	const char *note;
} fix;

typedef struct chk {
	const sx_ledger_check_cfg *cfg;
	sx_ledger *lg;
	int out_fd;
	uint64_t diffs;
	fix *fixes;
	size_t nfix, fix_cap;
	sx_err *err;
} chk;

static void diff(chk *k, const char *what, const char *device, const char *path, const char *detail,
		 const char *fix)
{
	k->diffs++;
	if (k->cfg->on_diff != NULL)
		k->cfg->on_diff(k->cfg->ctx, what, device, path, detail,
				k->cfg->repair ? fix : NULL);
}

static int add_fix(chk *k, int64_t id, sx_lfile_state st, const char *note)
{
	if (sx_grow(&k->fixes, &k->fix_cap, k->nfix + 1, sizeof(*k->fixes), SIZE_MAX / 64,
		    "ledger repairs", k->err) < 0)
		return -1;
	k->fixes[k->nfix++] = (fix){id, st, note};
	return 0;
}

/* device/path (and a suffix) beneath OUT; false when it does not fit or
 * is not a name the server could have written. */
static bool rel_of(const char *device, const char *path, const char *suffix, char *buf, size_t cap)
{
	if (device == NULL || path == NULL || device[0] == '\0' || device[0] == '.' ||
	    strchr(device, '/') != NULL ||
	    sx_path_check((const uint8_t *)path, strlen(path), &(sx_err){0}) < 0)
		return false;
	int n = snprintf(buf, cap, "%s/%s%s", device, path, suffix);
	return n > 0 && (size_t)n < cap;
}

/* A held part of the row's file (its .sxheld-meta beside the name). */
static bool held_exists(chk *k, const sx_ledger_file *f)
{
	char rel[SX_PATH_MAX + 512], h[SX_HELD_NAME_MAX];
	struct stat sb;
	const char *slash = strrchr(f->path, '/');
	const char *name = slash != NULL ? slash + 1 : f->path;
	if (!rel_of(f->device, f->path, "", rel, sizeof(rel)) ||
	    sx_held_name(name, SX_HELD_META, h, sizeof(h), &(sx_err){0}) < 0)
		return false;
	char *cut = strrchr(rel, '/');
	size_t at = (size_t)(cut - rel) + 1;
	if (at + strlen(h) + 1 > sizeof(rel))
		return false;
	memcpy(rel + at, h, strlen(h) + 1);
	return fstatat(k->out_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode);
}

static int on_row(void *ctx, const sx_ledger_file *f)
{
	chk *k = ctx;
	char rel[SX_PATH_MAX + 512], detail[96];
	struct stat sb;
	bool there = rel_of(f->device, f->path, "", rel, sizeof(rel)) &&
		     fstatat(k->out_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode);
	if (f->state == SX_LF_STORED) {
		if (!there) {
			diff(k, "missing", f->device, f->path, "stored in the ledger, not on disk",
			     "failed");
			return add_fix(k, f->id, SX_LF_FAILED, "missing on disk (ledger check)");
		}
		if (f->has_size && (uint64_t)sb.st_size != f->size) {
			snprintf(detail, sizeof(detail), "%llu bytes in the ledger, %llu on disk",
				 (unsigned long long)f->size, (unsigned long long)sb.st_size);
			diff(k, "size", f->device, f->path, detail, "failed");
			return add_fix(k, f->id, SX_LF_FAILED,
				       "another size on disk (ledger check)");
		}
		return 0;
	}
	/* Left receiving: the server stopped while the file came. Under its
	 * final name, of its size and renamed since it began, it was stored
	 * (the event was lost); a kept prefix makes it partial. */
	if (there && f->has_size && (uint64_t)sb.st_size == f->size &&
	    (int64_t)sb.st_ctime >= f->started - 1) {
		diff(k, "receiving", f->device, f->path, "complete under its final name", "stored");
		return add_fix(k, f->id, SX_LF_STORED, "complete on disk (ledger check)");
	}
	if (rel_of(f->device, f->path, ".partial", rel, sizeof(rel)) &&
	    fstatat(k->out_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode)) {
		diff(k, "receiving", f->device, f->path, "its signed prefix is kept (.partial)",
		     "partial");
		return add_fix(k, f->id, SX_LF_PARTIAL, "signed prefix kept (ledger check)");
	}
	if (held_exists(k, f)) {
		diff(k, "receiving", f->device, f->path, "its whole leaves are held (.sxheld)",
		     "partial");
		return add_fix(k, f->id, SX_LF_PARTIAL, "held for a resume (ledger check)");
	}
	diff(k, "receiving", f->device, f->path, "interrupted", "failed");
	return add_fix(k, f->id, SX_LF_FAILED, "interrupted: the server stopped");
}

/* A .sxsig beside a file: of a batch and of the file's size, the file is
 * complete; is it stored in the ledger? */
static int found_sxsig(chk *k, int dfd, const char *name, const char *device, const char *rel)
{
	size_t n = strlen(name) - strlen(".sxsig");
	char base[NAME_MAX + 1], path[SX_PATH_MAX + 1];
	uint8_t *text = NULL;
	sx_sxsig sig = {0};
	struct stat sb, fb;
	int fd = -1, rc = 0;
	memcpy(base, name, n);
	base[n] = '\0';
	if (n > 8 && strcmp(base + n - 8, ".partial") == 0)
		return 0; /* a stream's kept prefix */
	int w = snprintf(path, sizeof(path), "%s%s", rel, base);
	if (w < 0 || (size_t)w >= sizeof(path))
		return 0;
	if (fstatat(dfd, base, &fb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(fb.st_mode))
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > SX_SXSIG_TEXT_MAX)
		goto out;
	text = malloc((size_t)sb.st_size + 1);
	if (text == NULL || read(fd, text, (size_t)sb.st_size) != (ssize_t)sb.st_size)
		goto out;
	text[sb.st_size] = 0;
	if (sx_sxsig_decode((const char *)text, (size_t)sb.st_size, &sig, &(sx_err){0}) < 0 ||
	    sig.kind != SX_KIND_BATCH || sig.file_size != (uint64_t)fb.st_size)
		goto out;
	bool yes = false;
	if (sx_ledger_has_stored(k->lg, device, path, &yes, k->err) < 0) {
		rc = -1;
		goto out;
	}
	if (!yes) {
		diff(k, "unrecorded", device, path, "complete with its .sxsig, not in the ledger",
		     "stored");
		if (k->cfg->repair)
			rc = sx_ledger_add_found(k->lg, device, path, sig.file_size, sig.file_root,
						 true, (int64_t)fb.st_mtime, k->err);
	}
out:
	sx_sxsig_free(&sig);
	free(text);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* OUT/<device>/rel: its files with a .sxsig, then its folders. Never
 * follows a symlink; temporaries (.NAME...) are not files. */
static int walk(chk *k, int dfd, const char *device, char *rel, size_t rlen, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int rc = 0;
	if (d == NULL) {
		close(dfd);
		return 0;
	}
	struct stat ds;
	bool look = k->cfg->since == 0 || (fstat(dfd, &ds) == 0 && ds.st_mtime >= k->cfg->since);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t nl = strlen(name);
		struct stat sb;
		if (name[0] == '.')
			continue;
		/* d_type spares a stat per file of the folders not looked at */
		bool is_sig = nl > 6 && strcmp(name + nl - 6, ".sxsig") == 0;
		if (e->d_type != DT_UNKNOWN && e->d_type != DT_DIR && !(is_sig && look))
			continue;
		if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(sb.st_mode) && is_sig && look)
			rc = found_sxsig(k, dfd, name, device, rel);
		else if (S_ISDIR(sb.st_mode) && depth < WALK_DEPTH_MAX &&
			 rlen + nl + 2 < SX_PATH_MAX) {
			int sub =
			    openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				continue;
			memcpy(rel + rlen, name, nl);
			rel[rlen + nl] = '/';
			rel[rlen + nl + 1] = '\0';
			rc = walk(k, sub, device, rel, rlen + nl + 1, depth + 1);
			rel[rlen] = '\0';
		}
	}
	closedir(d);
	return rc;
}

static int walk_out(chk *k)
{
	int dfd = dup(k->out_fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;
	int rc = 0;
	if (d == NULL) {
		if (dfd >= 0)
			close(dfd);
		return sx_fail_errno(k->err, SX_E_IO, errno, "%s: cannot read", k->cfg->out_dir);
	}
	rewinddir(d);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char rel[SX_PATH_MAX + 1] = "";
		if (e->d_name[0] == '.')
			continue;
		int sub =
		    openat(k->out_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			rc = walk(k, sub, e->d_name, rel, 0, 1);
	}
	closedir(d);
	return rc;
}

int sx_ledger_check(sx_ledger *lg, const sx_ledger_check_cfg *cfg, uint64_t *diffs, sx_err *err)
{
	chk k = {.cfg = cfg, .lg = lg, .out_fd = -1, .err = err};
	bool txn = false;
	int rc = -1;
	*diffs = 0;
	k.out_fd = open(cfg->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k.out_fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot open the output folder",
				     cfg->out_dir);
	if (cfg->repair) {
		SX_GUARD(sx_ledger_begin(lg, err));
		txn = true;
	}
	SX_GUARD(sx_ledger_each_check(lg, !cfg->no_stored, on_row, &k, err));
	if (cfg->repair) {
		for (size_t i = 0; i < k.nfix; i++)
			SX_GUARD(
			    sx_ledger_mark(lg, k.fixes[i].id, k.fixes[i].st, k.fixes[i].note, err));
		SX_GUARD(sx_ledger_close_open_sessions(lg, err));
	}
	if (cfg->walk)
		SX_GUARD(walk_out(&k));
	if (txn) {
		txn = false;
		SX_GUARD(sx_ledger_commit(lg, err));
	}
	*diffs = k.diffs;
	rc = 0;
out:
	if (txn)
		if (sx_ledger_commit(lg, &(sx_err){0}) < 0) /* what was repaired stays */
			rc = -1;
	free(k.fixes);
	close(k.out_fd);
	return rc;
}

static void log_diff(void *ctx, const char *what, const char *device, const char *path,
		     const char *detail, const char *fix)
{
	(void)ctx;
	sx_log("warn", "ledger_repair", "what=%s device=%s path=%s detail=%s now=%s", SX_LOGT(what),
	       SX_LOGQ(device), SX_LOGQ(path), SX_LOGQ(detail), SX_LOGT(fix != NULL ? fix : "-"));
}

int sx_ledger_recover(sx_ledger *lg, const char *out_dir, sx_err *err)
{
	uint64_t t0 = sx_now_ns(), diffs = 0;
	bool clean = sx_ledger_was_clean(lg);
	int64_t last = 0;
	if (!clean && sx_ledger_last_time(lg, &last, err) < 0) {
		sx_err_prefix(err, "ledger: ");
		return -1;
	}
	/* After a crash only folders changed since the ledger's last record
	 * (less a margin for its commit interval and the clock) can hold a
	 * file it did not record. */
	sx_ledger_check_cfg cfg = {.out_dir = out_dir,
				   .repair = true,
				   .walk = !clean,
				   .since = last > 5 ? last - 5 : 0,
				   .no_stored = true,
				   .on_diff = log_diff};
	if (sx_ledger_check(lg, &cfg, &diffs, err) < 0) {
		sx_err_prefix(err, "ledger: ");
		return -1;
	}
	if (!clean || diffs > 0)
		sx_log("warn", "ledger_recover", "out=%s clean=%s differences=%llu seconds=%.3f",
		       SX_LOGQ(out_dir), SX_LOGT(clean ? "yes" : "no"), (unsigned long long)diffs,
		       (double)(sx_now_ns() - t0) / 1e9);
	return 0;
}
