/* sxfer bench handshakes: full TLS 1.3 handshakes with a client certificate
 * against any TLS 1.3 server (sxfer serve, or nginx with ssl_verify_client
 * on), so that the servers' CPU per handshake can be compared with one
 * client. A measuring instrument, not part of sxfer's protocol: it speaks
 * plain TLS through OpenSSL's SSL_* API itself (the engine's channel would
 * only talk to sxfer), with no session resumption (no tickets kept, none
 * offered). Each handshake is a new connection, closed once done: the
 * client half-closes and waits for the server to close, so the server has
 * checked the client's certificate before the next one counts. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "engine/record/sx_record.h"
#include "engine/wire/sx_wire.h"
#include "tools/bench_util.h"
#include "tools/cli.h"

#define HS_COUNT_DEFAULT    1000u
#define HS_COUNT_MAX	    1000000u
#define HS_CONC_DEFAULT	    8u
#define HS_CONC_MAX	    4096u
#define HS_TIMEOUT_DEFAULT  10
#define HS_GROUPS_DEFAULT   "X25519"
#define HS_ERRORS_SHOWN	    5
#define HS_DRAIN_BUF	    4096
#define HS_HELLO_MAX_RECORD (64u * 1024 + 16) /* as sxfer send offers */
#define HS_HELLO_ROTATE	    (64ull << 30)     /* the default key-update interval */
#define HS_HOLD_POLL_US	    50000

static const char usage[] =
    "usage: sxfer bench handshakes --id DIR [options] HOST:PORT\n"
    "\n"
    "Full TLS 1.3 handshakes with a client certificate against the server at\n"
    "HOST:PORT (sxfer serve, or any TLS 1.3 server that asks for a client\n"
    "certificate), no session resumption, each on a new connection that is closed\n"
    "once the handshake is done: the client half-closes and waits for the server\n"
    "to close. Prints the handshakes per second (wall, from the release of all\n"
    "workers to the last close), the handshake latency (connect to done: p50,\n"
    "p99), the group, cipher and signature the server chose, and this process's\n"
    "CPU. Exits non-zero when any handshake failed. sxfer serve logs each such\n"
    "connection as failed (it sent no HELLO), and counts the handshakes in\n"
    "progress per address: raise its --max-handshakes-per-addr (default 8) above\n"
    "--concurrency.\n"
    "\n"
    "  --id DIR           client identity (key.pem, cert.pem; ca.pem checks the\n"
    "                     server's certificate)\n"
    "  --pass-file FILE   passphrase of its key (or SXFER_PASSPHRASE)\n"
    "  --count N          handshakes (default 1000)\n"
    "  --concurrency K    connections at once, one thread each (default 8)\n"
    "  --alpn PROTO       offer this ALPN protocol (sxfer serve needs " SX_ALPN ")\n"
    "  --server-name NAME name the server's certificate must carry, sent as SNI\n"
    "                     when it is a DNS name (default: HOST)\n"
    "  --groups LIST      key exchange groups offered, colon-separated (default\n"
    "                     " HS_GROUPS_DEFAULT ")\n"
    "  --timeout SEC      per connection (default 10)\n"
    "  --hold             keep every connection open once all --count are done,\n"
    "                     until SIGINT or SIGTERM (prints \"held N\" first): the\n"
    "                     server's memory per idle connection. With --alpn " SX_ALPN "\n"
    "                     each also sends sxfer's HELLO, so that sxfer serve takes\n"
    "                     it as an authenticated connection (its CONFIRM is not\n"
    "                     read); raise serve's --max-conns and --idle-timeout\n"
    "  --json             one JSON object on standard output\n";

enum {
	HO_ID = 700,
	HO_PASS_FILE,
	HO_COUNT,
	HO_CONC,
	HO_ALPN,
	HO_SERVER_NAME,
	HO_GROUPS,
	HO_TIMEOUT,
	HO_HOLD,
	HO_JSON,
};

typedef struct hs {
	/* options */
	char host[256], port[32];
	const char *id_dir, *pass_file, *alpn, *server_name, *groups;
	unsigned count, conc;
	int timeout_s;
	bool hold, json, sxfer_hello;
	/* state */
	sx_identity id;
	SSL_CTX *ctx;
	sx_bench_gate gate;
	atomic_uint next, threads_done, ok, failed;
	atomic_bool abort;
	double *lat; /* ms, per handshake; < 0: failed */
	int *held;   /* --hold: the connections, -1 where none */
	pthread_mutex_t mu;
	uint64_t t0, t_last;
	sx_err errs[HS_ERRORS_SHOWN];
	unsigned nerrs;
	char group[64], cipher[64], sigalg[64], version[16];
	double cpu_u, cpu_s;
} hs;

static volatile sig_atomic_t hs_stop;

/* ---- one handshake ---------------------------------------------------- */

static void note_error(hs *h, const sx_err *e)
{
	pthread_mutex_lock(&h->mu);
	if (h->nerrs < HS_ERRORS_SHOWN)
		h->errs[h->nerrs++] = *e;
	pthread_mutex_unlock(&h->mu);
}

/* What the server chose, from the first handshake that completed. */
static void note_params(hs *h, SSL *ssl)
{
	int nid = 0;
	pthread_mutex_lock(&h->mu);
	if (h->cipher[0] == '\0') {
		const char *g = SSL_group_to_name(ssl, SSL_get_negotiated_group(ssl));
		snprintf(h->group, sizeof(h->group), "%s", g ? g : "?");
		snprintf(h->cipher, sizeof(h->cipher), "%s", SSL_get_cipher_name(ssl));
		snprintf(h->version, sizeof(h->version), "%s", SSL_get_version(ssl));
		int md = 0;
		if (SSL_get_peer_signature_type_nid(ssl, &nid) == 1 &&
		    SSL_get_peer_signature_nid(ssl, &md) == 1)
			snprintf(h->sigalg, sizeof(h->sigalg), "%s+%s",
				 nid == EVP_PKEY_EC ? "ECDSA" : OBJ_nid2sn(nid), OBJ_nid2sn(md));
		else
			snprintf(h->sigalg, sizeof(h->sigalg), "?");
	}
	pthread_mutex_unlock(&h->mu);
}

/* The name the server's certificate must carry: a DNS name (also SNI) or
 * an IP address. */
static int set_peer_name(hs *h, SSL *ssl, sx_err *err)
{
	unsigned char ip[16];
	const char *name = h->server_name ? h->server_name : h->host;
	if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
			return sx_fail_ssl(err, SX_E_USAGE, "bad server address %s", name);
		return 0;
	}
	if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
		return sx_fail_ssl(err, SX_E_USAGE, "bad server name %s", name);
	return 0;
}

/* After the handshake: our end half-closed, then whatever the server still
 * sends (tickets, an alert) is read and dropped until it closes. */
static void close_after(int fd)
{
	char buf[HS_DRAIN_BUF];
	(void)shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* sxfer's HELLO inside TLS (docs/PROTOCOL.md, "Handshake"), so that sxfer
 * serve moves the connection out of its handshake. */
static int send_hello(SSL *ssl, sx_err *err)
{
	uint8_t buf[SX_HELLO_LEN];
	sx_hello hello = {.version = SX_PROTO_VERSION,
			  .suite = SX_SUITE_AES256GCM,
			  .max_record = HS_HELLO_MAX_RECORD,
			  .rotate_bytes = HS_HELLO_ROTATE};
	sx_hello_encode(&hello, buf);
	if (SSL_write(ssl, buf, sizeof(buf)) != (int)sizeof(buf))
		return sx_fail_ssl(err, SX_E_NET, "cannot send the HELLO");
	return 0;
}

static int one_handshake(hs *h, unsigned i, sx_err *err)
{
	struct timeval tv = {.tv_sec = h->timeout_s};
	uint64_t t = sx_now_ns();
	SSL *ssl = NULL;
	int fd = -1, rc = -1;
	SX_GUARD(sx_net_connect(h->host, h->port, h->timeout_s * 1000, &fd, err));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ssl = SSL_new(h->ctx);
	SX_ENSURE(ssl != NULL && SSL_set_fd(ssl, fd) == 1, err, SX_E_OTHER, "out of memory");
	SX_GUARD(set_peer_name(h, ssl, err));
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			sx_fail(err, SX_E_AUTH, "server certificate: %s",
				X509_verify_cert_error_string(v));
		else
			sx_fail_ssl(err, SX_E_NET, "handshake %u failed", i + 1);
		goto out;
	}
	h->lat[i] = (double)(sx_now_ns() - t) / 1e6;
	note_params(h, ssl);
	if (h->hold && h->sxfer_hello)
		SX_GUARD(send_hello(ssl, err));
	rc = 0;
out:
	/* Freed without a close_notify: only the handshake is measured. */
	SSL_free(ssl);
	ERR_clear_error();
	if (fd >= 0 && rc == 0 && h->hold)
		h->held[i] = fd;
	else if (fd >= 0)
		close_after(fd);
	return rc;
}

static void *worker(void *arg)
{
	hs *h = arg;
	sx_bench_gate_wait(&h->gate);
	while (!atomic_load(&h->abort)) {
		sx_err e = {0};
		unsigned i = atomic_fetch_add(&h->next, 1);
		if (i >= h->count)
			break;
		if (one_handshake(h, i, &e) == 0) {
			atomic_fetch_add(&h->ok, 1);
			continue;
		}
		h->lat[i] = -1.0;
		atomic_fetch_add(&h->failed, 1);
		note_error(h, &e);
	}
	uint64_t now = sx_now_ns();
	pthread_mutex_lock(&h->mu);
	if (now > h->t_last)
		h->t_last = now;
	pthread_mutex_unlock(&h->mu);
	atomic_fetch_add(&h->threads_done, 1);
	return NULL;
}

/* ---- setup ------------------------------------------------------------ */

/* The client's context: TLS 1.3 only, our certificate and key, the
 * identity's anchors for the server's certificate, the groups and the ALPN
 * protocol asked for, and no session cache or tickets. */
static int make_ctx(hs *h, sx_err *err)
{
	X509_STORE *store;
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	h->ctx = c;
	SX_ENSURE(c != NULL, err, SX_E_OTHER, "cannot create a TLS context");
	SX_ENSURE(SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) == 1 &&
		      SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1,
		  err, SX_E_OTHER, "cannot require TLS 1.3");
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set1_groups_list(c, h->groups) != 1)
		return sx_fail_ssl(err, SX_E_USAGE, "--groups '%s': unknown", h->groups);
	if (SSL_CTX_use_certificate(c, sk_X509_value(h->id.chain, 0)) != 1 ||
	    SSL_CTX_use_PrivateKey(c, h->id.key) != 1)
		return sx_fail_ssl(err, SX_E_AUTH, "%s: the certificate or key is not usable",
				   h->id_dir);
	for (int i = 1; i < sk_X509_num(h->id.chain); i++)
		SX_ENSURE(SSL_CTX_add1_chain_cert(c, sk_X509_value(h->id.chain, i)) == 1, err,
			  SX_E_AUTH, "%s: an intermediate certificate is not usable", h->id_dir);
	store = SSL_CTX_get_cert_store(c);
	for (int i = 0; i < sk_X509_num(h->id.anchors); i++)
		SX_ENSURE(X509_STORE_add_cert(store, sk_X509_value(h->id.anchors, i)) == 1, err,
			  SX_E_AUTH, "%s: ca.pem is not usable", h->id_dir);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	if (h->alpn != NULL) {
		unsigned char wire[256];
		size_t n = strlen(h->alpn);
		SX_ENSURE(n > 0 && n < 256, err, SX_E_USAGE, "--alpn: 1 to 255 bytes");
		wire[0] = (unsigned char)n;
		memcpy(wire + 1, h->alpn, n);
		/* 0 is success for this one */
		SX_ENSURE(SSL_CTX_set_alpn_protos(c, wire, (unsigned)n + 1) == 0, err, SX_E_OTHER,
			  "cannot set ALPN");
	}
	return 0;
out:
	return -1;
}

static int prepare(hs *h, sx_err *err)
{
	sx_cli_pass src = {.file = h->pass_file};
	sx_pass pass;
	struct rlimit rl;
	sx_cli_pass_init(&pass, &src);
	int rc = sx_identity_load(h->id_dir, &pass, &h->id, err);
	sx_cli_pass_wipe(&src);
	if (rc < 0)
		return -1;
	h->lat = calloc(h->count, sizeof(*h->lat));
	h->held = malloc((size_t)h->count * sizeof(*h->held));
	if (h->lat == NULL || h->held == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	for (unsigned i = 0; i < h->count; i++)
		h->held[i] = -1;
	/* --hold keeps every connection: the descriptors they need */
	rlim_t want = (rlim_t)(h->hold ? h->count : h->conc) + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur =
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < want)
			return sx_fail(err, SX_E_USAGE,
				       "%llu connections need %llu file descriptors; %llu allowed "
				       "(ulimit -n)",
				       (unsigned long long)(h->hold ? h->count : h->conc),
				       (unsigned long long)want, (unsigned long long)rl.rlim_cur);
	}
	return make_ctx(h, err);
}

/* ---- the run and its report ------------------------------------------- */

static int run(hs *h, sx_err *err)
{
	pthread_t *th = calloc(h->conc, sizeof(*th));
	unsigned started = 0;
	double u0, s0, u1, s1;
	int rc = -1;
	SX_ENSURE(th != NULL, err, SX_E_OTHER, "out of memory");
	for (; started < h->conc; started++) {
		int e = pthread_create(&th[started], NULL, worker, h);
		if (e != 0) {
			sx_fail_errno(err, SX_E_OTHER, e, "cannot start worker %u of %u",
				      started + 1, h->conc);
			atomic_store(&h->abort, true);
			break;
		}
	}
	sx_bench_cpu(&u0, &s0);
	h->t0 = sx_bench_gate_open(&h->gate, started);
	while (atomic_load(&h->threads_done) < started) {
		if (hs_stop)
			atomic_store(&h->abort, true);
		usleep(HS_HOLD_POLL_US / 5);
	}
	sx_bench_cpu(&u1, &s1);
	h->cpu_u = u1 - u0;
	h->cpu_s = s1 - s0;
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (started == h->conc)
		rc = hs_stop ? sx_fail(err, SX_E_OTHER, "interrupted") : 0;
out:
	free(th);
	return rc;
}

static void report(const hs *h, const double *lat, size_t n)
{
	double wall = (double)(h->t_last - h->t0) / 1e9;
	unsigned ok = atomic_load(&h->ok), failed = atomic_load(&h->failed);
	double rate = wall > 0 ? (double)ok / wall : 0.0;
	if (h->json) {
		printf("{\"result\":\"%s\",\"count\":%u,\"ok\":%u,\"failed\":%u,\"concurrency\":%u,"
		       "\"wall_s\":%.6f,\"per_s\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
		       "\"max\":%.3f},\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"version\":",
		       failed ? "failed" : "ok", h->count, ok, failed, h->conc, wall, rate,
		       sx_bench_pct(lat, n, 50), sx_bench_pct(lat, n, 99),
		       sx_bench_pct(lat, n, 100), h->cpu_u, h->cpu_s);
		sx_cli_json_str(h->version);
		printf(",\"group\":");
		sx_cli_json_str(h->group);
		printf(",\"cipher\":");
		sx_cli_json_str(h->cipher);
		printf(",\"server_sigalg\":");
		sx_cli_json_str(h->sigalg);
		printf(",\"errors\":[");
		for (unsigned i = 0; i < h->nerrs; i++) {
			printf("%s", i ? "," : "");
			sx_cli_json_str(h->errs[i].msg);
		}
		printf("]}\n");
		return;
	}
	printf("sxfer bench handshakes: %u to %s:%s, %u at once\n", h->count, SX_TEXT(h->host),
	       SX_TEXT(h->port), h->conc);
	printf("  %-22s %u ok, %u failed\n", "handshakes", ok, failed);
	for (unsigned i = 0; i < h->nerrs; i++)
		printf("    %s\n", SX_TEXT(h->errs[i].msg));
	printf("  %-22s %.1f per second (%.3f s)\n", "rate (wall)", rate, wall);
	printf("  %-22s p50 %.3f  p99 %.3f  max %.3f\n", "latency (ms)", sx_bench_pct(lat, n, 50),
	       sx_bench_pct(lat, n, 99), sx_bench_pct(lat, n, 100));
	printf("  %-22s %s, %s, group %s, server signature %s\n", "negotiated",
	       h->version[0] ? h->version : "?", h->cipher[0] ? h->cipher : "?",
	       h->group[0] ? h->group : "?", h->sigalg[0] ? h->sigalg : "?");
	printf("  %-22s user %.2f s  system %.2f s\n", "client CPU", h->cpu_u, h->cpu_s);
}

/* --hold: "held N" on standard output, then until a signal. */
static void hold(hs *h)
{
	unsigned n = 0;
	for (unsigned i = 0; i < h->count; i++)
		n += h->held[i] >= 0;
	printf("held %u\n", n);
	fflush(stdout);
	while (!hs_stop)
		usleep(HS_HOLD_POLL_US);
	for (unsigned i = 0; i < h->count; i++)
		if (h->held[i] >= 0) {
			close(h->held[i]);
			h->held[i] = -1;
		}
}

/* ---- the command ------------------------------------------------------ */

static int parse_num(const char *opt, const char *arg, uint64_t lo, uint64_t hi, uint64_t *v)
{
	if (sx_parse_u64(arg, v) < 0 || *v < lo || *v > hi)
		return sx_cli_usage_error("bench handshakes", "%s: %llu to %llu", opt,
					  (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}

static int opt(hs *h, int c, const char *arg)
{
	uint64_t v = 0;
	int rc = 0;
	switch (c) {
	case HO_ID: h->id_dir = arg; break;
	case HO_PASS_FILE: h->pass_file = arg; break;
	case HO_COUNT:
		if ((rc = parse_num("--count", arg, 1, HS_COUNT_MAX, &v)) == 0)
			h->count = (unsigned)v;
		break;
	case HO_CONC:
		if ((rc = parse_num("--concurrency", arg, 1, HS_CONC_MAX, &v)) == 0)
			h->conc = (unsigned)v;
		break;
	case HO_ALPN: h->alpn = arg; break;
	case HO_SERVER_NAME: h->server_name = arg; break;
	case HO_GROUPS: h->groups = arg; break;
	case HO_TIMEOUT:
		if ((rc = parse_num("--timeout", arg, 1, 3600, &v)) == 0)
			h->timeout_s = (int)v;
		break;
	case HO_HOLD: h->hold = true; break;
	case HO_JSON: h->json = true; break;
	default: rc = sx_cli_usage_error("bench handshakes", "unknown option");
	}
	return rc;
}

/* -1: go on; else the exit code (0 after --help). */
static int parse(hs *h, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, 0, HO_ID},
	    {"pass-file", required_argument, 0, HO_PASS_FILE},
	    {"count", required_argument, 0, HO_COUNT},
	    {"concurrency", required_argument, 0, HO_CONC},
	    {"alpn", required_argument, 0, HO_ALPN},
	    {"server-name", required_argument, 0, HO_SERVER_NAME},
	    {"groups", required_argument, 0, HO_GROUPS},
	    {"timeout", required_argument, 0, HO_TIMEOUT},
	    {"hold", no_argument, 0, HO_HOLD},
	    {"json", no_argument, 0, HO_JSON},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c, rc;
	h->count = HS_COUNT_DEFAULT;
	h->conc = HS_CONC_DEFAULT;
	h->timeout_s = HS_TIMEOUT_DEFAULT;
	h->groups = HS_GROUPS_DEFAULT;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if ((rc = opt(h, c, optarg)) != 0)
			return rc;
	}
	if (h->id_dir == NULL)
		return sx_cli_usage_error("bench handshakes", "--id DIR is required");
	if (argc - optind != 1 ||
	    sx_net_split(argv[optind], h->host, sizeof(h->host), h->port, sizeof(h->port)) < 0 ||
	    sx_net_port_check(h->port, false) < 0)
		return sx_cli_usage_error("bench handshakes", "expected HOST:PORT (port 1-65535)");
	if (h->conc > h->count)
		h->conc = h->count;
	h->sxfer_hello = h->alpn != NULL && strcmp(h->alpn, SX_ALPN) == 0;
	return -1;
}

int sx_cmd_bench_handshakes(int argc, char **argv)
{
	hs *h = calloc(1, sizeof(*h));
	sx_err err = {0};
	int rc;
	if (h == NULL) {
		sx_fail(&err, SX_E_OTHER, "out of memory");
		return sx_cli_report(&err);
	}
	sx_bench_gate_init(&h->gate);
	pthread_mutex_init(&h->mu, NULL);
	if ((rc = parse(h, argc, argv)) >= 0)
		goto out;
	sx_bench_signals(&hs_stop);
	if (prepare(h, &err) < 0 || run(h, &err) < 0) {
		rc = sx_cli_report(&err);
		goto out;
	}
	size_t n = 0;
	for (unsigned i = 0; i < h->count; i++)
		if (h->lat[i] > 0)
			h->lat[n++] = h->lat[i];
	sx_bench_sort(h->lat, n);
	report(h, h->lat, n);
	rc = 0;
	if (atomic_load(&h->failed) > 0) {
		err = h->errs[0];
		sx_err_prefix(&err,
			      "%u of %u handshakes failed; the first: ", atomic_load(&h->failed),
			      h->count);
		rc = sx_cli_report(&err);
	} else if (h->hold) {
		hold(h);
	}
out:
	for (unsigned i = 0; h->held != NULL && i < h->count; i++)
		if (h->held[i] >= 0)
			close(h->held[i]);
	free(h->held);
	free(h->lat);
	SSL_CTX_free(h->ctx);
	sx_identity_free(&h->id);
	sx_bench_gate_free(&h->gate);
	pthread_mutex_destroy(&h->mu);
	free(h);
	return rc;
}
