/* engine/transfer: the server's CRL while it runs (docs/REVOCATION.md).
 *
 * A small thread looks at the CRL's file once a second (device, inode,
 * size, mtime, ctime) and at once when loop 0 passes on a SIGHUP. A new CRL
 * replaces the one in the TLS context (sx_chan_ctx_set_crl, which every new
 * handshake reads, and so does a get's receipt check: serve_out.c) only
 * when it loads, is issued and signed by one of the identity's trust
 * anchors, is current, and its crlNumber is above every one seen from its
 * issuer; an equal number with other content is refused too. Otherwise the
 * CRL in use stays and the reason is logged. Connections are never
 * dropped: a session already authenticated goes on.
 *
 * A SIGHUP also reads the configuration's limits again (serve_limits.c),
 * on this thread, before the CRL.
 *
 * The same thread logs a CRL that is no longer current (at once, then once
 * a minute: every new device is refused meanwhile, channel_crl.c), and,
 * once a day, the server's own certificate when its renewal is due. */
#include "engine/transfer/serve_int.h"

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define WATCH_TICK_MS 1000
#define STALE_LOG_S   60
#define LIFE_CHECK_S  86400
#define ISSUERS_MAX   16

/* The highest crlNumber seen from one CA, and the CRL that carried it. */
typedef struct seen_issuer {
	X509_NAME *name;
	uint64_t highest;
	uint8_t md[SHA256_DIGEST_LENGTH];
} seen_issuer;

struct crl_watch {
	shared *sh;
	const sx_serve_cfg *cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit, hup; /* under mu */
	struct stat st; /* the file as last looked at */
	bool have_st;
	uint8_t cur_md[SHA256_DIGEST_LENGTH]; /* the CRL in use */
	bool have_cur;
	seen_issuer issuers[ISSUERS_MAX];
	size_t nissuers;
	bool stale;
	time_t stale_logged, life_checked;
};

static bool crl_digest(X509_CRL *crl, uint8_t md[SHA256_DIGEST_LENGTH])
{
	unsigned len = 0;
	return X509_CRL_digest(crl, EVP_sha256(), md, &len) == 1 && len == SHA256_DIGEST_LENGTH;
}

static seen_issuer *issuer_of(crl_watch *w, X509_CRL *crl)
{
	for (size_t i = 0; i < w->nissuers; i++)
		if (X509_NAME_cmp(w->issuers[i].name, X509_CRL_get_issuer(crl)) == 0)
			return &w->issuers[i];
	return NULL;
}

/* The CRL is in use: its number is the highest of its issuer. */
static void note_current(crl_watch *w, X509_CRL *crl, const uint8_t *md)
{
	sx_err ignore = {0};
	uint64_t n = 0;
	memcpy(w->cur_md, md, sizeof(w->cur_md));
	w->have_cur = true;
	if (sx_crl_number(crl, &n, &ignore) < 0)
		return;
	seen_issuer *si = issuer_of(w, crl);
	if (si == NULL && w->nissuers < ISSUERS_MAX) {
		X509_NAME *name = X509_NAME_dup(X509_CRL_get_issuer(crl));
		if (name == NULL)
			return;
		si = &w->issuers[w->nissuers++];
		si->name = name;
	}
	if (si == NULL)
		return;
	si->highest = n;
	memcpy(si->md, md, sizeof(si->md));
}

/* Is the CRL one a verifier may take after those it has seen? */
static int check_new(crl_watch *w, X509_CRL *crl, const uint8_t *md, uint64_t *n, sx_err *err)
{
	SX_GUARD(sx_crl_verify_anchors(crl, w->cfg->id->anchors, err));
	SX_GUARD(sx_crl_number(crl, n, err));
	const seen_issuer *si = issuer_of(w, crl);
	SX_ENSURE(si == NULL || *n > si->highest ||
		      (*n == si->highest && memcmp(md, si->md, sizeof(si->md)) == 0),
		  err, SX_E_AUTH, "crlNumber %llu is %s (%llu)%s", (unsigned long long)*n,
		  *n < si->highest ? "lower than the highest seen from this CA"
				   : "the same as the last one's from this CA",
		  (unsigned long long)si->highest,
		  *n < si->highest ? ": an older CRL, which could hide revocations"
				   : ", but its content differs");
	SX_GUARD(sx_crl_check_time(crl, 0, err));
	return 0;
out:
	return -1;
}

/* Does the new CRL list this server's own certificate? Its clients will
 * refuse it: said loudly, the CRL is used all the same. */
static void check_own(crl_watch *w, X509_CRL *crl)
{
	X509 *leaf = sk_X509_value(w->cfg->id->chain, 0);
	X509_REVOKED *rev = NULL;
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(leaf)) == 0 &&
	    X509_CRL_get0_by_cert(crl, &rev, leaf) == 1)
		sx_log("error", "crl", "action=own_revoked name=%s reason=%s",
		       SX_LOGQ(w->cfg->id->name),
		       SX_LOGQ("the new CRL revokes this server's own certificate: its clients "
			       "will refuse it"));
}

/* Reads the file and takes its CRL when a verifier may; logs either way. */
static void crl_try(crl_watch *w, bool hup)
{
	const char *path = w->cfg->crl_path;
	const char *trigger = hup ? "sighup" : "file";
	X509_CRL *crl = NULL;
	uint8_t md[SHA256_DIGEST_LENGTH];
	uint64_t n = 0;
	sx_err err = {0};
	if (sx_crl_load(path, &crl, &err) < 0)
		goto refused;
	if (!crl_digest(crl, md)) {
		sx_fail_ssl(&err, SX_E_OTHER, "cannot hash the CRL");
		goto refused;
	}
	if (w->have_cur && memcmp(md, w->cur_md, sizeof(md)) == 0) {
		if (hup)
			sx_log("info", "crl", "action=unchanged path=%s trigger=%s", SX_LOGQ(path),
			       SX_LOGT(trigger));
		goto out;
	}
	if (check_new(w, crl, md, &n, &err) < 0 || sx_chan_ctx_set_crl(w->sh->ctx, crl, &err) < 0)
		goto refused;
	note_current(w, crl, md);
	w->stale = false;
	STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
	sx_log("info", "crl", "action=reloaded path=%s number=%llu revoked=%d trigger=%s",
	       SX_LOGQ(path), (unsigned long long)n,
	       revoked != NULL ? sk_X509_REVOKED_num(revoked) : 0, SX_LOGT(trigger));
	check_own(w, crl);
	goto out;
refused:
	sx_log("warn", "crl", "action=refused path=%s trigger=%s reason=%s kept=%s", SX_LOGQ(path),
	       SX_LOGT(trigger), SX_LOGQ(err.msg),
	       SX_LOGQ(w->have_cur ? "the CRL in use" : "no CRL (none was loaded)"));
out:
	X509_CRL_free(crl);
}

/* Has the file changed since it was last looked at? A file that is gone
 * changes nothing: the CRL in use stays. */
static bool file_changed(crl_watch *w)
{
	struct stat st;
	if (w->cfg->crl_path == NULL || stat(w->cfg->crl_path, &st) < 0)
		return false;
	bool same = w->have_st && st.st_dev == w->st.st_dev && st.st_ino == w->st.st_ino &&
		    st.st_size == w->st.st_size && st.st_mtim.tv_sec == w->st.st_mtim.tv_sec &&
		    st.st_mtim.tv_nsec == w->st.st_mtim.tv_nsec &&
		    st.st_ctim.tv_sec == w->st.st_ctim.tv_sec &&
		    st.st_ctim.tv_nsec == w->st.st_ctim.tv_nsec;
	w->st = st;
	w->have_st = true;
	return !same;
}

/* A CRL in use that is no longer current: every new device is refused
 * (told why: channel_crl.c) until a current one is put in place. */
static void stale_tick(crl_watch *w, time_t now)
{
	X509_CRL *crl = sx_chan_ctx_crl(w->sh->ctx);
	sx_err err = {0};
	if (crl == NULL || sx_crl_check_time(crl, now, &err) == 0) {
		w->stale = false;
		X509_CRL_free(crl);
		return;
	}
	X509_CRL_free(crl);
	if (w->stale && now - w->stale_logged < STALE_LOG_S)
		return;
	w->stale = true;
	w->stale_logged = now;
	sx_log("error", "crl", "action=stale path=%s reason=%s effect=%s hint=%s",
	       SX_LOGQ(w->cfg->crl_path != NULL ? w->cfg->crl_path : ""), SX_LOGQ(err.msg),
	       SX_LOGQ("every new device is refused"),
	       SX_LOGQ("fetch a new one with sxfer crl fetch or sxfer ca crl and put it in place"));
}

static void *watch_main(void *arg)
{
	crl_watch *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->quit) {
		bool hup = w->hup;
		w->hup = false;
		pthread_mutex_unlock(&w->mu);
		time_t now = time(NULL);
		/* SIGHUP: the configuration's limits first, then the CRL. */
		if (hup)
			srv_limits_reload(w->sh);
		if (file_changed(w) || hup)
			crl_try(w, hup);
		stale_tick(w, now);
		if (now - w->life_checked >= LIFE_CHECK_S) {
			(void)sx_cert_life_warn(w->cfg->id, now);
			w->life_checked = now;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += WATCH_TICK_MS / 1000;
		pthread_mutex_lock(&w->mu);
		if (!w->quit && !w->hup)
			(void)pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void watch_free(crl_watch *w)
{
	for (size_t i = 0; i < w->nissuers; i++)
		X509_NAME_free(w->issuers[i].name);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int srv_watch_start(shared *sh, sx_err *err)
{
	crl_watch *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	sigset_t all, old;
	uint8_t md[SHA256_DIGEST_LENGTH];
	if (w == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	w->sh = sh;
	w->cfg = sh->cfg;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The CRL the server started with: the first against which a new
	 * one's number is checked; its own certificate was logged at start. */
	X509_CRL *cur = sx_chan_ctx_crl(sh->ctx);
	if (cur != NULL && crl_digest(cur, md))
		note_current(w, cur, md);
	X509_CRL_free(cur);
	w->life_checked = time(NULL);
	/* Signals go to loop 0's thread, not this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&w->thread, NULL, watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		watch_free(w);
		return sx_fail_errno(err, SX_E_OTHER, e,
				     "cannot start the thread that watches the CRL");
	}
	sh->watch = w;
	return 0;
}

void srv_watch_hup(shared *sh)
{
	crl_watch *w = sh->watch;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->hup = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void srv_watch_stop(shared *sh)
{
	crl_watch *w = sh->watch;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	watch_free(w);
	sh->watch = NULL;
}
