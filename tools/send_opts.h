/* The options `sxfer send` and `sxfer agent` share: the identity, the
 * connection and how files are sent. One table, one parser, one help text,
 * so both commands take them alike. */
#ifndef SX_SEND_OPTS_H
#define SX_SEND_OPTS_H

#include <getopt.h>
#include <stdbool.h>

#include "engine/transfer/sx_transfer.h"
#include "tools/cli.h"

enum {
	SO_ID = 512,
	SO_SERVER_NAME,
	SO_CRL,
	SO_SUITE,
	SO_CHUNK,
	SO_KEY_UPDATE,
	SO_IO,
	SO_TIMEOUT,
	SO_QUIET,
	SO_JSON,
	SO_VERBOSE,
	SO_PASS_FILE,
	SO_THREADS,
	SO_ZEROCOPY,
	SO_NO_DIRECT,
	SO_NO_SIGN,
	SO_RECEIPTS,
	SO_BATCH_FILES,
	SO_BATCH_BYTES,
	SO_CHECKPOINT,
	SO_COMPRESS,
	SO_RETRY,
	SO_RETRY_WAIT,
	SO_NO_RESUME,
	SO_LIMIT_RATE,
	SO_DEST,
};

/* The entries of a getopt_long table (followed by the command's own). */
// clang-format off
#define SX_SEND_OPTIONS                                                        \
	{"id", required_argument, 0, SO_ID},                                   \
	{"server-name", required_argument, 0, SO_SERVER_NAME},                \
	{"crl", required_argument, 0, SO_CRL},                                 \
	{"suite", required_argument, 0, SO_SUITE},                             \
	{"chunk", required_argument, 0, SO_CHUNK},                             \
	{"key-update", required_argument, 0, SO_KEY_UPDATE},                   \
	{"io", required_argument, 0, SO_IO},                                   \
	{"timeout", required_argument, 0, SO_TIMEOUT},                         \
	{"quiet", no_argument, 0, SO_QUIET},                                   \
	{"json", no_argument, 0, SO_JSON},                                     \
	{"verbose", no_argument, 0, SO_VERBOSE},                               \
	{"pass-file", required_argument, 0, SO_PASS_FILE},                     \
	{"threads", required_argument, 0, SO_THREADS},                         \
	{"zerocopy", no_argument, 0, SO_ZEROCOPY},                             \
	{"no-direct", no_argument, 0, SO_NO_DIRECT},                           \
	{"no-sign", no_argument, 0, SO_NO_SIGN},                               \
	{"receipts", required_argument, 0, SO_RECEIPTS},                       \
	{"batch-files", required_argument, 0, SO_BATCH_FILES},                 \
	{"batch-bytes", required_argument, 0, SO_BATCH_BYTES},                 \
	{"checkpoint", required_argument, 0, SO_CHECKPOINT},                   \
	{"compress", required_argument, 0, SO_COMPRESS},                       \
	{"retry", required_argument, 0, SO_RETRY},                             \
	{"retry-wait", required_argument, 0, SO_RETRY_WAIT},                   \
	{"no-resume", no_argument, 0, SO_NO_RESUME},                           \
	{"limit-rate", required_argument, 0, SO_LIMIT_RATE},                   \
	{"dest", required_argument, 0, SO_DEST}
// clang-format on

/* Their help lines (--batch-files is the command's). */
#define SX_SEND_OPTIONS_HELP                                                                       \
	"  --id DIR             identity folder (key.pem, cert.pem, ca.pem, crl.pem)\n"            \
	"  --server-name NAME   name the server's certificate must carry (default: HOST)\n"        \
	"  --crl FILE           revocation list for the server's certificate and its\n"            \
	"                       receipts (default: crl.pem of the identity folder, if any)\n"      \
	"  --suite S            aes256gcm (default), aes256ctr-hmac, chacha20poly1305\n"           \
	"  --chunk SIZE         record payload size (default 1M; e.g. 256K, 4M)\n"                 \
	"  --compress MODE      zstd per record: auto (default: level 1; a file whose\n"           \
	"                       64K sample does not shrink by 10% goes uncompressed,\n"            \
	"                       sampled again every 64 records), on (level 3),\n"                  \
	"                       LEVEL (1-19) or off; 'off' is faster for compressible\n"           \
	"                       data on links above about 3 Gbit/s\n"                              \
	"  --key-update SIZE    ratchet the record keys every SIZE bytes (default 64G)\n"          \
	"  --io KIND            auto (default), uring or poll\n"                                   \
	"  --timeout SEC        network timeout (default 30)\n"                                    \
	"  --dest SUBDIR        land under SUBDIR of this identity's folder on the\n"              \
	"                       server (OUT/NAME/SUBDIR/...): a relative path without\n"           \
	"                       '..' or empty parts, created as needed\n"                          \
	"  --limit-rate RATE    at most RATE bytes per second on the wire (e.g. 500K, 10M;\n"      \
	"                       binary multiples; default: no limit)\n"                            \
	"  --quiet              no progress bar\n"                                                 \
	"  --json               JSON on standard output\n"                                         \
	"  --verbose            also a log line per file resumed or already there\n"               \
	"  --zerocopy           io_uring zero-copy sends (measured: no gain on loopback)\n"        \
	"  --no-direct          read every file through the page cache (default: files of\n"       \
	"                       4 MiB or more that are mostly not cached are read with\n"          \
	"                       direct I/O where the file system supports it)\n"                   \
	"  --no-sign            no batch signatures, .sxsig files or receipts (plain channel)\n"   \
	"  --receipts DIR       where the receiver's signed receipts are stored; the leaf\n"       \
	"                       cache that speeds up resuming goes beside it, in leaves/\n"        \
	"  --batch-bytes SIZE   a signed batch closes after SIZE bytes (default 1G)\n"             \
	"  --checkpoint K       a signed checkpoint every K chunks of a stream (default 64)\n"     \
	"  --retry N            after a network failure (refused, reset, cut, a stall of\n"        \
	"                       --timeout, the server shutting down) connect again up to\n"        \
	"                       N times (default 5; 0: never), each attempt resuming what\n"       \
	"                       the receiver holds; an attempt that moved forward starts\n"        \
	"                       the count again. Waits 1 s doubling to 60 s, randomized\n"         \
	"  --retry-wait MS[:MS] the first wait and the longest, in milliseconds\n"                 \
	"  --no-resume          ask the receiver nothing: every file from its first byte\n"        \
	"  --threads N          hashing and sealing threads of a signed session\n"                 \
	"                       (default: one per core, at most 8)\n"                              \
	"  --pass-file FILE     passphrase of the identity key (or SXFER_PASSPHRASE)\n"

/* What the shared options set besides the send configuration. */
typedef struct sx_send_opts {
	const char *id_dir, *crl_file;
	bool quiet, json, verbose;
	sx_cli_pass pass;
} sx_send_opts;

/* The defaults of send: AES-256-GCM, 1 MiB chunks, 30 s, auto
 * compression, 5 retries. */
void sx_send_opts_init(sx_send_cfg *cfg, sx_send_opts *o);

/* One option of getopt_long (code c, its argument arg): 1 when c is not
 * one of the shared options, 0 when it was taken, -1 for a bad value
 * (SX_E_USAGE in err, the message starting with the option's name). */
int sx_send_opt(int c, const char *arg, sx_send_cfg *cfg, sx_send_opts *o, sx_err *err);

/* Once the options are read: the identity (its passphrase as the options
 * say) and --crl, into cfg->id and cfg->crl. */
int sx_send_opts_load(sx_send_opts *o, sx_send_cfg *cfg, sx_identity *id, X509_CRL **crl,
		      sx_err *err) SX_MUST_CHECK;

#endif
