/* The options sxfer send and sxfer agent share (send_opts.h). */
#include "tools/send_opts.h"

#include <string.h>

#include "common/sx_util.h"
#include "engine/transfer/sx_rate.h"

void sx_send_opts_init(sx_send_cfg *cfg, sx_send_opts *o)
{
	memset(cfg, 0, sizeof(*cfg));
	memset(o, 0, sizeof(*o));
	cfg->suite = SX_SUITE_AES256GCM;
	cfg->chunk = SX_CHUNK_DEFAULT;
	cfg->timeout_ms = 30000;
	cfg->zmode = SX_ZMODE_AUTO;
	cfg->zlevel = SX_ZLEVEL_AUTO;
	cfg->retries = 5;
}

/* --retry-wait MS[:MS] */
static int parse_retry_wait(const char *arg, sx_send_cfg *cfg)
{
	char a[32];
	uint64_t lo, hi;
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
	if (n == 0 || n >= sizeof(a))
		return -1;
	memcpy(a, arg, n);
	a[n] = '\0';
	if (sx_parse_u64(a, &lo) < 0 || lo == 0 || lo > 3600000)
		return -1;
	hi = lo > 60000 ? lo : 60000;
	if (colon && (sx_parse_u64(colon + 1, &hi) < 0 || hi < lo || hi > 3600000))
		return -1;
	cfg->retry_base_ms = (int)lo;
	cfg->retry_max_ms = (int)hi;
	return 0;
}

/* The options that take a number or a size: 1 not one of them, 0 taken,
 * -1 a bad value (err). */
static int numeric_opt(int c, const char *arg, sx_send_cfg *cfg, sx_err *err)
{
	uint64_t v;
	switch (c) {
	case SO_CHUNK:
		if (sx_parse_size(arg, &v) < 0 || v < SX_CHUNK_MIN || v > (64u << 20))
			return sx_fail(err, SX_E_USAGE, "--chunk: a size from 4K to 64M");
		cfg->chunk = (uint32_t)v;
		return 0;
	case SO_KEY_UPDATE:
		if (sx_parse_size(arg, &v) < 0 || v == 0)
			return sx_fail(err, SX_E_USAGE, "--key-update: a size such as 64G");
		cfg->rotate_bytes = v;
		return 0;
	case SO_TIMEOUT:
		if (sx_parse_u64(arg, &v) < 0 || v == 0 || v > 86400)
			return sx_fail(err, SX_E_USAGE, "--timeout: seconds");
		cfg->timeout_ms = (int)(v * 1000);
		return 0;
	case SO_THREADS:
		if (sx_parse_u64(arg, &v) < 0 || v == 0 || v > 8)
			return sx_fail(err, SX_E_USAGE, "--threads: 1 to 8");
		cfg->threads = (unsigned)v;
		return 0;
	case SO_BATCH_FILES:
		if (sx_parse_u64(arg, &v) < 0 || v == 0 || v > 4096)
			return sx_fail(err, SX_E_USAGE, "--batch-files: 1 to 4096");
		cfg->batch_files = (uint32_t)v;
		return 0;
	case SO_BATCH_BYTES:
		if (sx_parse_size(arg, &v) < 0 || v == 0)
			return sx_fail(err, SX_E_USAGE, "--batch-bytes: a size such as 1G");
		cfg->batch_bytes = v;
		return 0;
	case SO_CHECKPOINT:
		if (sx_parse_u64(arg, &v) < 0 || v == 0 || v > 1000000)
			return sx_fail(err, SX_E_USAGE, "--checkpoint: chunks, 1 to 1000000");
		cfg->checkpoint_records = (uint32_t)v;
		return 0;
	case SO_RETRY:
		if (sx_parse_u64(arg, &v) < 0 || v > 1000)
			return sx_fail(err, SX_E_USAGE, "--retry: 0 to 1000");
		cfg->retries = (unsigned)v;
		return 0;
	case SO_LIMIT_RATE:
		if (sx_parse_size(arg, &v) < 0 || v < SX_RATE_MIN)
			return sx_fail(
			    err, SX_E_USAGE,
			    "--limit-rate: bytes per second, at least 1K (e.g. 500K, 10M)");
		cfg->limit_rate = v;
		return 0;
	default: return 1;
	}
}

int sx_send_opt(int c, const char *arg, sx_send_cfg *cfg, sx_send_opts *o, sx_err *err)
{
	int rc = numeric_opt(c, arg, cfg, err);
	if (rc <= 0)
		return rc;
	switch (c) {
	case SO_ID: o->id_dir = arg; return 0;
	case SO_SERVER_NAME: cfg->server_name = arg; return 0;
	case SO_CRL: o->crl_file = arg; return 0;
	case SO_SUITE:
		if (sx_suite_parse(arg, (sx_suite *)&cfg->suite) < 0)
			return sx_fail(err, SX_E_USAGE,
				       "--suite: '%s' is not aes256gcm, aes256ctr-hmac or "
				       "chacha20poly1305",
				       arg);
		return 0;
	case SO_IO:
		if (sx_io_kind_parse(arg, &cfg->io) < 0)
			return sx_fail(err, SX_E_USAGE, "--io: auto, uring or poll");
		return 0;
	case SO_QUIET: o->quiet = true; return 0;
	case SO_JSON: o->json = true; return 0;
	case SO_VERBOSE: o->verbose = true; return 0;
	case SO_PASS_FILE: o->pass.file = arg; return 0;
	case SO_NO_SIGN: cfg->no_sign = true; return 0;
	case SO_ZEROCOPY: cfg->zerocopy = true; return 0;
	case SO_NO_DIRECT: cfg->no_direct = true; return 0;
	case SO_RECEIPTS: cfg->receipts_dir = arg; return 0;
	case SO_COMPRESS:
		if (sx_zmode_parse(arg, &cfg->zmode, &cfg->zlevel) < 0)
			return sx_fail(err, SX_E_USAGE,
				       "--compress: auto, on, off or a level 1-19");
		return 0;
	case SO_RETRY_WAIT:
		if (parse_retry_wait(arg, cfg) < 0)
			return sx_fail(err, SX_E_USAGE,
				       "--retry-wait: MS or MS:MS, milliseconds, 1 to 3600000");
		return 0;
	case SO_NO_RESUME: cfg->no_resume = true; return 0;
	case SO_DEST: {
		sx_err why = {0};
		if (sx_send_dest_check(arg, &why) < 0)
			return sx_fail(err, SX_E_USAGE, "%s", why.msg);
		cfg->dest = arg;
		return 0;
	}
	default: return 1;
	}
}

int sx_send_opts_load(sx_send_opts *o, sx_send_cfg *cfg, sx_identity *id, X509_CRL **crl,
		      sx_err *err)
{
	sx_pass pass;
	sx_cli_pass_init(&pass, &o->pass);
	if (sx_identity_load(o->id_dir, &pass, id, err) < 0 ||
	    (o->crl_file != NULL && sx_crl_load(o->crl_file, crl, err) < 0))
		return -1;
	cfg->id = id;
	cfg->crl = *crl;
	return 0;
}
