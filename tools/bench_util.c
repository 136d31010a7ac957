/* The helpers of the load generators (bench_util.h). */
#include "tools/bench_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sx_util.h"

void sx_bench_gate_init(sx_bench_gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

void sx_bench_gate_free(sx_bench_gate *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

void sx_bench_gate_wait(sx_bench_gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->ready++;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

uint64_t sx_bench_gate_open(sx_bench_gate *g, unsigned n)
{
	pthread_mutex_lock(&g->mu);
	while (g->ready < n)
		pthread_cond_wait(&g->cv, &g->mu);
	uint64_t t0 = sx_now_ns();
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return t0;
}

static volatile sig_atomic_t *stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	if (stop_flag != NULL)
		*stop_flag = 1;
}

void sx_bench_signals(volatile sig_atomic_t *flag)
{
	struct sigaction sa = {.sa_handler = on_signal};
	stop_flag = flag;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void sx_bench_sort(double *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_double);
}

double sx_bench_pct(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return 0.0;
	/* nearest rank: the smallest value with at least p% at or below it */
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

void sx_bench_cpu(double *user_s, double *sys_s)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0) {
		*user_s = *sys_s = 0.0;
		return;
	}
	*user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	*sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* $TMPDIR, else /dev/shm (tmpfs: no disk in the figures), else /tmp. */
const char *sx_bench_tmp_base(void)
{
	const char *t = getenv("TMPDIR");
	struct stat st;
	if (t != NULL && t[0] != '\0')
		return t;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	return "/tmp";
}

int sx_bench_mkdtemp(char *buf, size_t cap, const char *prefix, sx_err *err)
{
	const char *base = sx_bench_tmp_base();
	int n = snprintf(buf, cap, "%s/%s-XXXXXX", base, prefix);
	if (n < 0 || (size_t)n >= cap)
		return sx_fail(err, SX_E_IO, "TMPDIR is too long");
	if (mkdtemp(buf) == NULL)
		return sx_fail_errno(err, SX_E_IO, errno, "cannot make a temporary folder in %s",
				     base);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void sx_bench_rmtree(const char *dir)
{
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
