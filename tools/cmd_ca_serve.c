/* sxfer ca serve: the CA as an enrollment service (docs/PKI.md "Enrollment
 * service, renewal and CRL distribution"). Flag parsing only; the service
 * is engine/enroll. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/sx_util.h"
#include "engine/channel/sx_net.h"
#include "engine/enroll/sx_enroll.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: sxfer ca serve --ca DIR --listen ADDR:PORT --id SERVERID [options]\n"
    "\n"
    "Runs the CA as a network service for devices: `sxfer enroll` (a first\n"
    "certificate for a one-time token of `sxfer ca token`), `sxfer renew` (a\n"
    "new certificate for a valid current one) and `sxfer crl fetch` (the CRL\n"
    "that `sxfer ca crl` last made). The CA key is loaded once; `ca token`,\n"
    "`ca revoke` and `ca crl` run beside the service. Clients pin the root by\n"
    "its SHA-256 fingerprint (`sxfer ca show`), which the first log line shows.\n"
    "\n"
    "  --ca DIR                the CA folder\n"
    "  --listen ADDR:PORT      address to listen on (port 0: any free port)\n"
    "  --id DIR                the service's TLS identity: a server certificate of\n"
    "                          this CA (sxfer ca issue --role server)\n"
    "  --port-file FILE        write the bound port to FILE once listening\n"
    "  --max-conns N           connections at once (default 64); one more is\n"
    "                          closed at once\n"
    "  --max-failures N        failed token attempts per address (an IPv4 address\n"
    "                          or an IPv6 /64) within the window; beyond, the\n"
    "                          address is refused without the CA being asked\n"
    "                          (default 10, at most 32)\n"
    "  --failure-window S      the window, in seconds (default 60)\n"
    "  --handshake-timeout S   seconds from accept to a completed handshake (10)\n"
    "  --idle-timeout S        seconds for the request and the answer (30)\n"
    "  --pass-file FILE        passphrase of the CA key (else SXFER_PASSPHRASE, else\n"
    "                          a prompt); also of the identity key unless:\n"
    "  --id-pass-file FILE     passphrase of the identity key\n"
    "\n"
    "SIGINT or SIGTERM: stop accepting, cut the connections in progress, exit 0.\n"
    "One log line per request on stderr: peer, kind, result, name, serial or\n"
    "the reason of a refusal.\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int parse_count(const char *s, uint64_t lo, uint64_t hi, unsigned *out)
{
	uint64_t v;
	if (sx_parse_u64(s, &v) < 0 || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int serve_go(sx_enroll_serve_cfg *cfg, const char *id_dir, sx_cli_pass *ca_ps,
		    sx_cli_pass *id_ps)
{
	sx_err err = {0};
	sx_identity id = {0};
	sx_pass ca_pass, id_pass;
	sx_cli_pass_init(&ca_pass, ca_ps);
	sx_cli_pass_init(&id_pass, id_ps);
	if (sx_identity_load(id_dir, &id_pass, &id, &err) < 0)
		goto done;
	cfg->id = &id;
	cfg->pass = &ca_pass;
	cfg->stop = &stop_flag;
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (sx_enroll_serve_run(cfg, &err) < 0 && err.cls == SX_OK)
		sx_fail(&err, SX_E_OTHER, "ca serve failed");
done:
	sx_identity_free(&id);
	return err.cls != SX_OK ? sx_cli_report(&err) : 0;
}

int sx_cmd_ca_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, 0, 'c'},
	    {"listen", required_argument, 0, 'l'},
	    {"id", required_argument, 0, 'i'},
	    {"port-file", required_argument, 0, 'P'},
	    {"max-conns", required_argument, 0, 'm'},
	    {"max-failures", required_argument, 0, 'f'},
	    {"failure-window", required_argument, 0, 'w'},
	    {"handshake-timeout", required_argument, 0, 'H'},
	    {"idle-timeout", required_argument, 0, 'I'},
	    {"pass-file", required_argument, 0, 'p'},
	    {"id-pass-file", required_argument, 0, 'q'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	sx_enroll_serve_cfg cfg = {0};
	sx_cli_pass ca_ps = {0}, id_ps = {0};
	const char *id_dir = NULL, *id_pass_file = NULL;
	unsigned secs;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg.ca_dir = optarg; break;
		case 'l': cfg.listen = optarg; break;
		case 'i': id_dir = optarg; break;
		case 'P': cfg.listen_ctx = optarg; break;
		case 'm':
			if (parse_count(optarg, 1, 4096, &cfg.max_conns) < 0)
				return sx_cli_usage_error("ca serve", "--max-conns: 1 to 4096");
			break;
		case 'f':
			if (parse_count(optarg, 1, SX_RATELIMIT_MAX, &cfg.fail_limit) < 0)
				return sx_cli_usage_error("ca serve", "--max-failures: 1 to %d",
							  SX_RATELIMIT_MAX);
			break;
		case 'w':
			if (parse_count(optarg, 1, 86400, &cfg.fail_window_s) < 0)
				return sx_cli_usage_error("ca serve",
							  "--failure-window: 1 to 86400 s");
			break;
		case 'H':
		case 'I':
			if (parse_count(optarg, 1, 3600, &secs) < 0)
				return sx_cli_usage_error("ca serve",
							  "timeouts are whole seconds, 1 to 3600");
			*(c == 'H' ? &cfg.handshake_timeout_ms : &cfg.idle_timeout_ms) =
			    (int)secs * 1000;
			break;
		case 'p': ca_ps.file = optarg; break;
		case 'q': id_pass_file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return sx_cli_usage_error("ca serve", "unknown option");
		}
	}
	if (optind != argc)
		return sx_cli_usage_error("ca serve", "unexpected argument '%s'", argv[optind]);
	if (cfg.ca_dir == NULL || cfg.listen == NULL || id_dir == NULL)
		return sx_cli_usage_error("ca serve", "--ca, --listen and --id are required");
	char host[256], port[32];
	if (sx_net_split(cfg.listen, host, sizeof(host), port, sizeof(port)) < 0 ||
	    sx_net_port_check(port, true) < 0)
		return sx_cli_usage_error("ca serve", "--listen '%s': expected ADDR:PORT (0-65535)",
					  cfg.listen);
	cfg.on_listen = sx_cli_write_port;
	ca_ps.prompt = "Passphrase of the CA key";
	id_ps.prompt = "Passphrase of the service's identity key";
	id_ps.file = id_pass_file != NULL ? id_pass_file : ca_ps.file;
	return serve_go(&cfg, id_dir, &ca_ps, &id_ps);
}
