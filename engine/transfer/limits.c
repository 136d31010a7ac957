/* engine/transfer: per-device limits, the policy and the counters
 * (sx_limits.h). One mutex guards both: the event loops take it once per
 * connection authenticated and per file begun or ended, the reload thread
 * to swap the policy, the count of stored bytes only to start and to end. */
#include "engine/transfer/sx_limits.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/sx_util.h"
#include "engine/wire/sx_wire.h"

#define BUCKETS	   1024
#define DEVS_MAX   (1u << 20)
#define WALK_DEPTH 128 /* folders deeper than this are not counted */

struct sx_lim_use {
	struct sx_lim_use *next;
	uint64_t conns;
	int64_t day;	     /* the UTC day day_bytes counts */
	uint64_t day_bytes;  /* received that day, */
	uint64_t day_held;   /* and announced by files still arriving */
	uint64_t total;	     /* stored under OUT/NAME/, */
	uint64_t total_held; /* and announced by files still arriving */
	uint64_t added;	     /* stored while a count runs */
	unsigned gen;	     /* the policy ov was looked up in */
	long ov;	     /* its override in that policy; -1: none */
	char name[];
};

struct sx_limits {
	pthread_mutex_t mu;
	sx_limits_cfg cfg;
	unsigned gen;
	bool counting;
	sx_lim_use *bucket[BUCKETS];
};

static const char *const keys[SX_LIM_N] = {"max-conns-per-device", "max-file-size", "quota-per-day",
					   "quota-total"};

const char *sx_lim_key(int which)
{
	return which >= 0 && which < SX_LIM_N ? keys[which] : "?";
}

void sx_lim_human(uint64_t v, char *buf, size_t cap)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	uint64_t div = 1;
	int i = 0;
	while (i < 6 && v / div >= 1024) {
		div *= 1024;
		i++;
	}
	if (v % div == 0)
		snprintf(buf, cap, "%llu %s", (unsigned long long)(v / div), unit[i]);
	else
		snprintf(buf, cap, "%.1f %s", (double)v / (double)div, unit[i]);
}

/* ---- the policy -------------------------------------------------------- */

int sx_limits_cfg_set(sx_limits_cfg *c, const char *name, int which, uint64_t v, sx_err *err)
{
	sx_lim_vals *vals = &c->all;
	if (which < 0 || which >= SX_LIM_N)
		return sx_fail(err, SX_E_USAGE, "unknown limit");
	if (name != NULL) {
		size_t i = 0;
		while (i < c->ndev && strcmp(c->dev[i].name, name) != 0)
			i++;
		if (i == c->ndev) {
			if (sx_grow(&c->dev, &c->cap, c->ndev + 1, sizeof(*c->dev), DEVS_MAX,
				    "devices with limits of their own", err) < 0)
				return -1;
			if ((c->dev[i].name = strdup(name)) == NULL)
				return sx_fail(err, SX_E_OTHER, "out of memory");
			c->ndev++;
		}
		vals = &c->dev[i].vals;
	}
	vals->v[which] = v;
	vals->set[which] = true;
	return 0;
}

void sx_limits_cfg_free(sx_limits_cfg *c)
{
	for (size_t i = 0; i < c->ndev; i++)
		free(c->dev[i].name);
	free(c->dev);
	memset(c, 0, sizeof(*c));
}

bool sx_limits_cfg_any(const sx_limits_cfg *c, int which)
{
	if (c->all.set[which] && c->all.v[which] != SX_LIM_NONE)
		return true;
	for (size_t i = 0; i < c->ndev; i++)
		if (c->dev[i].vals.set[which] && c->dev[i].vals.v[which] != SX_LIM_NONE)
			return true;
	return false;
}

/* ---- the table ----------------------------------------------------------- */

int sx_limits_new(sx_limits **out, sx_err *err)
{
	sx_limits *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	l->gen = 1;
	*out = l;
	return 0;
}

void sx_limits_free(sx_limits *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < BUCKETS; i++)
		while (l->bucket[i] != NULL) {
			sx_lim_use *u = l->bucket[i];
			l->bucket[i] = u->next;
			free(u);
		}
	sx_limits_cfg_free(&l->cfg);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void sx_limits_set(sx_limits *l, sx_limits_cfg *cfg)
{
	pthread_mutex_lock(&l->mu);
	sx_limits_cfg_free(&l->cfg);
	l->cfg = *cfg;
	l->gen++;
	pthread_mutex_unlock(&l->mu);
	memset(cfg, 0, sizeof(*cfg));
}

bool sx_limits_any(sx_limits *l, int which)
{
	pthread_mutex_lock(&l->mu);
	bool any = sx_limits_cfg_any(&l->cfg, which);
	pthread_mutex_unlock(&l->mu);
	return any;
}

static size_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return (size_t)(h % BUCKETS);
}

/* Under mu: the counters of name, made when it has none. */
static sx_lim_use *use_of(sx_limits *l, const char *name)
{
	size_t b = hash(name), n = strlen(name);
	for (sx_lim_use *u = l->bucket[b]; u != NULL; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	sx_lim_use *u = calloc(1, sizeof(*u) + n + 1);
	if (u == NULL)
		return NULL;
	memcpy(u->name, name, n + 1);
	u->ov = -1;
	u->next = l->bucket[b];
	l->bucket[b] = u;
	return u;
}

/* Under mu: the limit of u's name (SX_LIM_NONE: none). */
static uint64_t lim_of(sx_limits *l, sx_lim_use *u, int which)
{
	if (u->gen != l->gen) {
		u->ov = -1;
		for (size_t i = 0; i < l->cfg.ndev; i++)
			if (strcmp(l->cfg.dev[i].name, u->name) == 0)
				u->ov = (long)i;
		u->gen = l->gen;
	}
	if (u->ov >= 0 && l->cfg.dev[u->ov].vals.set[which])
		return l->cfg.dev[u->ov].vals.v[which];
	return l->cfg.all.set[which] ? l->cfg.all.v[which] : SX_LIM_NONE;
}

/* Under mu: a new UTC day starts from nothing received. */
static void day_roll(sx_lim_use *u)
{
	int64_t today = (int64_t)(time(NULL) / 86400);
	if (u->day != today) {
		u->day = today;
		u->day_bytes = 0;
	}
}

/* ---- connections --------------------------------------------------------- */

int sx_limits_enter(sx_limits *l, const char *name, sx_lim_use **out, sx_err *why)
{
	int rc = -1;
	*out = NULL;
	pthread_mutex_lock(&l->mu);
	sx_lim_use *u = use_of(l, name);
	SX_ENSURE(u != NULL, why, SX_E_OTHER, "out of memory");
	uint64_t max = lim_of(l, u, SX_LIM_CONNS);
	SX_ENSURE(max == SX_LIM_NONE || u->conns < max, why, SX_E_IO,
		  "too many connections for %s (at most %llu at once)", name,
		  (unsigned long long)max);
	u->conns++;
	*out = u;
	rc = 0;
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void sx_limits_hold(sx_limits *l, sx_lim_use *u)
{
	pthread_mutex_lock(&l->mu);
	u->conns++;
	pthread_mutex_unlock(&l->mu);
}

void sx_limits_leave(sx_limits *l, sx_lim_use *u)
{
	pthread_mutex_lock(&l->mu);
	if (u->conns > 0)
		u->conns--;
	pthread_mutex_unlock(&l->mu);
}

/* ---- files --------------------------------------------------------------- */

/* Under mu: would need more bytes pass quota q with used already counted?
 * A stream (need unknown) passes only a quota used up. */
static bool over(uint64_t q, uint64_t used, uint64_t need, bool stream)
{
	if (q == SX_LIM_NONE)
		return false;
	if (stream)
		return used >= q;
	return used > q || need > q - used;
}

static int refuse_quota(sx_err *why, const char *what, uint64_t q, const char *name, uint64_t used,
			const char *path, uint64_t need, bool stream)
{
	char qs[32], us[32], ns[32];
	sx_lim_human(q, qs, sizeof(qs));
	sx_lim_human(used, us, sizeof(us));
	sx_lim_human(need, ns, sizeof(ns));
	if (stream)
		return sx_fail(why, SX_E_IO,
			       "quota exceeded: %s %s for %s, %s used; stream '%s' refused", qs,
			       what, name, us, path);
	return sx_fail(why, SX_E_IO, "quota exceeded: %s %s for %s, %s used; '%s' needs %s", qs,
		       what, name, us, path, ns);
}

int sx_limits_file_begin(sx_limits *l, sx_lim_use *u, const char *path, uint64_t size,
			 uint64_t need, uint64_t *held, sx_err *why)
{
	bool stream = size == SX_SIZE_UNKNOWN;
	char ss[32], ms[32];
	int rc = -1;
	*held = 0;
	if (stream)
		need = 0;
	pthread_mutex_lock(&l->mu);
	day_roll(u);
	uint64_t max = lim_of(l, u, SX_LIM_FILE_SIZE), qd = lim_of(l, u, SX_LIM_DAY),
		 qt = lim_of(l, u, SX_LIM_TOTAL);
	uint64_t day = u->day_bytes + u->day_held, total = u->total + u->total_held;
	if (!stream && max != SX_LIM_NONE && size > max) {
		sx_lim_human(size, ss, sizeof(ss));
		sx_lim_human(max, ms, sizeof(ms));
		sx_fail(why, SX_E_IO, "file too large: '%s' is %s, at most %s for %s", path, ss, ms,
			u->name);
		goto out;
	}
	if (over(qd, day, need, stream)) {
		refuse_quota(why, "per day (UTC)", qd, u->name, day, path, need, stream);
		goto out;
	}
	if (over(qt, total, need, stream)) {
		refuse_quota(why, "in all", qt, u->name, total, path, need, stream);
		goto out;
	}
	u->day_held += need;
	u->total_held += need;
	*held = need;
	rc = 0;
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

int sx_limits_stream(sx_limits *l, sx_lim_use *u, const char *path, uint64_t size, sx_err *why)
{
	char ss[32], ms[32];
	pthread_mutex_lock(&l->mu);
	uint64_t max = lim_of(l, u, SX_LIM_FILE_SIZE);
	pthread_mutex_unlock(&l->mu);
	if (max == SX_LIM_NONE || size <= max)
		return 0;
	sx_lim_human(size, ss, sizeof(ss));
	sx_lim_human(max, ms, sizeof(ms));
	return sx_fail(why, SX_E_IO, "file too large: stream '%s' reached %s, at most %s for %s",
		       path, ss, ms, u->name);
}

void sx_limits_file_end(sx_limits *l, sx_lim_use *u, uint64_t held, uint64_t got, uint64_t stored)
{
	pthread_mutex_lock(&l->mu);
	day_roll(u);
	u->day_held -= held < u->day_held ? held : u->day_held;
	u->total_held -= held < u->total_held ? held : u->total_held;
	u->day_bytes += got;
	u->total += stored;
	if (l->counting)
		u->added += stored;
	pthread_mutex_unlock(&l->mu);
}

/* ---- the count of stored bytes ------------------------------------------- */

/* Bytes of the regular files beneath the folder fd (closed here). */
static uint64_t walk(int fd, int depth)
{
	uint64_t sum = 0;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
		else if (S_ISDIR(st.st_mode) && depth < WALK_DEPTH) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				sum += walk(sub, depth + 1);
		}
	}
	closedir(d);
	return sum;
}

typedef struct counted {
	char *name;
	uint64_t bytes;
} counted;

/* Every folder of OUT (an identity's) with its bytes. */
static int count_out(const char *out_dir, counted **list, size_t *n, sx_err *err)
{
	size_t cap = 0;
	int fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return sx_fail_errno(err, SX_E_IO, errno, "%s: cannot count what is stored",
				     out_dir);
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		int sub =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		rc = sx_grow(list, &cap, *n + 1, sizeof(**list), DEVS_MAX, "identity folders", err);
		if (rc == 0 && ((*list)[*n].name = strdup(de->d_name)) == NULL)
			rc = sx_fail(err, SX_E_OTHER, "out of memory");
		if (rc < 0) {
			close(sub);
			break;
		}
		(*list)[(*n)++].bytes = walk(sub, 1);
	}
	closedir(d);
	return rc;
}

int sx_limits_count(sx_limits *l, const char *out_dir, uint64_t *folders, uint64_t *bytes,
		    sx_err *err)
{
	counted *list = NULL;
	size_t n = 0;
	pthread_mutex_lock(&l->mu);
	l->counting = true;
	for (size_t b = 0; b < BUCKETS; b++)
		for (sx_lim_use *u = l->bucket[b]; u != NULL; u = u->next)
			u->added = 0;
	pthread_mutex_unlock(&l->mu);
	int rc = count_out(out_dir, &list, &n, err);
	pthread_mutex_lock(&l->mu);
	/* What the count saw, and what was stored while it ran. */
	if (rc == 0)
		for (size_t b = 0; b < BUCKETS; b++)
			for (sx_lim_use *u = l->bucket[b]; u != NULL; u = u->next)
				u->total = u->added;
	*folders = *bytes = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sx_lim_use *u = use_of(l, list[i].name);
		if (u == NULL) {
			rc = sx_fail(err, SX_E_OTHER, "out of memory");
			break;
		}
		u->total += list[i].bytes;
		*bytes += list[i].bytes;
		(*folders)++;
	}
	l->counting = false;
	pthread_mutex_unlock(&l->mu);
	for (size_t i = 0; i < n; i++)
		free(list[i].name);
	free(list);
	return rc;
}
