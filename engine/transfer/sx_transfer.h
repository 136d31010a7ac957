/* engine/transfer: sessions of files, folder trees and streams; the sender
 * and receiver roles, written once against engine/io (either backend). */
#ifndef SX_TRANSFER_H
#define SX_TRANSFER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/sx_err.h"
#include "engine/channel/sx_net.h"
#include "engine/transfer/sx_compress.h"
#include "engine/transfer/sx_limits.h"
#include "engine/io/sx_io.h"
#include "engine/record/sx_record.h"
#include "pki/sx_pki.h"

#define SX_CHUNK_DEFAULT	      (1u << 20) /* sender's record payload (docs/PERFORMANCE.md) */
#define SX_CHUNK_MIN		      4096u
#define SX_MAX_RECORD_DEFAULT	      (16u << 20) /* receiver's largest accepted record body */
#define SX_TIMEOUT_HANDSHAKE_MS	      10000
#define SX_TIMEOUT_IDLE_MS	      60000
#define SX_BATCH_FILES_DEFAULT	      4096u
#define SX_BATCH_BYTES_DEFAULT	      (1ull << 30)
#define SX_BATCH_MS_DEFAULT	      10000
#define SX_CHECKPOINT_RECORDS_DEFAULT 64u
#define SX_RECEIPTS_SUB		      "receipts" /* under the state folder (common/sx_state.h) */

typedef struct sx_progress {
	uint64_t bytes_sent; /* file bytes handed to the socket */
	uint64_t bytes_total;
	uint64_t files_done; /* acknowledged by the receiver */
	uint64_t files_total;
	bool total_known; /* false with a stream of unknown length */
} sx_progress;

/* A file's outcome, final for the run (sx_send_cfg.on_file). */
typedef struct sx_file_result {
	int arg;	 /* index in paths of the argument it came from */
	const char *rel; /* its name on the receiver */
	uint64_t size;
	bool stored;	    /* stored (signed: its batch's receipt verified), else refused */
	bool same;	    /* it was already there (FILE_SAME) */
	sx_class cls;	    /* refused: the class */
	const char *reason; /* refused: why */
} sx_file_result;

typedef struct sx_send_cfg {
	const char *host;
	const char *port;
	const sx_identity *id;
	X509_CRL *crl;		 /* CRL for the server's certificate and receipts;
				    NULL: the identity's (id->crl) */
	const char *server_name; /* defaults to host */
	sx_suite suite;
	uint32_t chunk;
	uint64_t rotate_bytes;
	sx_io_kind io;
	char **paths; /* "-" is standard input */
	int npaths;
	/* A server's export (sxfer get): paths[i] is opened beneath
	 * path_dirs[i], with no symlink on the way, and sent under the name
	 * path_names[i]. NULL: paths as given, named by their last component. */
	const int *path_dirs;
	const char *const *path_names;
	const char *stream_name; /* name of the standard-input stream */
	int timeout_ms;
	/* a folder under the sender's own on the receiver: every path is sent
	 * as DEST/PATH (sx_send_dest_check); NULL: none */
	const char *dest;
	/* signing (docs/SIGNATURES.md); zero values mean the defaults */
	bool no_sign;
	bool zerocopy;		     /* io_uring zero-copy sends for records of 64 KiB or more */
	bool no_direct;		     /* never read files with direct I/O */
	unsigned threads;	     /* sealing workers; 0: one per core (at most 8), 1: none */
	const char *receipts_dir;    /* default SX_RECEIPTS_SUB of sx_state_dir */
	uint32_t batch_files;	     /* a batch closes after this many files, */
	uint64_t batch_bytes;	     /* or this many bytes, */
	int batch_ms;		     /* or this long after its first file */
	uint32_t checkpoint_records; /* a stream checkpoint every K chunks of data */
	/* zstd per DATA record (docs/PROTOCOL.md, "Compressed DATA records");
	 * zlevel 0 means the mode's default level */
	sx_zmode zmode;
	int zlevel;
	void (*on_progress)(void *ctx, const sx_progress *p);
	void *progress_ctx;
	/* called with progress_ctx when the run's first DATA record is handed
	 * to the socket (its send queued), before the socket has taken it
	 * (benchmarks: the time to first data); NULL: none */
	void (*on_first_data)(void *ctx);
	/* the server's side of sxfer get: each verified receipt is logged, and
	 * kept as a file only with receipts_dir; abort ends the session */
	bool serving;
	const atomic_bool *abort;
	/* resume and re-sending (docs/PROTOCOL.md, "Resume and re-sending"):
	 * attempts after a failed one (network errors, the server shutting
	 * down, a stall of timeout_ms), each resuming; backoff from
	 * retry_base_ms doubling to retry_max_ms, with jitter (0: 1 s, 60 s) */
	unsigned retries;
	int retry_base_ms, retry_max_ms;
	bool no_resume; /* ask nothing: every file from its first byte (benchmarks) */
	/* called before each wait for another attempt (NULL: logged only) */
	void (*on_retry)(void *ctx, unsigned attempt, unsigned wait_ms, const sx_err *why);
	void *retry_ctx;
	/* --limit-rate: bytes per second of sealed records handed to the
	 * socket (a token bucket, engine/transfer/sx_rate.h); 0: no limit */
	uint64_t limit_rate;
	/* called once per regular file when its outcome is final: stored
	 * (unsigned: answered FILE_OK; signed: covered by a verified receipt)
	 * or refused by the receiver. A file without a call was not finished
	 * (the run failed first). NULL: none. */
	void (*on_file)(void *ctx, const sx_file_result *r);
	void *file_ctx;
} sx_send_cfg;

typedef struct sx_send_stats {
	uint64_t files_ok, files_failed;
	uint64_t files_skipped; /* files and folders of the tree not sent (warned) */
	uint64_t bytes;		/* file bytes (uncompressed) */
	uint64_t wire_bytes;	/* DATA record plaintext bytes on the wire (compressed) */
	uint64_t records, records_compressed; /* DATA records, of which compressed */
	double seconds;
	char peer_name[256];
	char peer_fingerprint[65];
	const char *io_backend;
	sx_suite suite;
	uint64_t batches, checkpoints, receipts;
	unsigned threads;
	uint64_t direct_bytes; /* file bytes read with direct I/O */
	uint64_t files_grew;   /* files with more bytes at their end than announced */
	char receipts_dir[4096];
	uint64_t files_resumed;	 /* files continued from a part the receiver held */
	uint64_t bytes_resumed;	 /* bytes of those parts, not sent again */
	uint64_t files_same;	 /* files already there (FILE_SAME answered FILE_OK) */
	unsigned attempts;	 /* connections made (1 without a retry) */
	uint64_t bytes_compared; /* file bytes read to compare with an offer */
	uint64_t leaves_cached;	 /* leaves of those comparisons taken from the leaf cache */
} sx_send_stats;

/* send --dest: a relative path as the receiver accepts one (sx_path_check:
 * no '..', no absolute path, no empty component), at most
 * SX_DEST_MAX bytes; SX_E_USAGE naming why otherwise. */
#define SX_DEST_MAX 1024
int sx_send_dest_check(const char *dest, sx_err *err) SX_MUST_CHECK;

/* Sends everything; fails with the first fatal error, or after the session
 * with the class of the first file the receiver refused. */
int sx_send_run(const sx_send_cfg *cfg, sx_send_stats *stats, sx_err *err) SX_MUST_CHECK;

#define SX_SERVE_THREADS_MAX   8
#define SX_OPEN_THREADS_MAX    8
#define SX_HS_PER_ADDR_DEFAULT 8

typedef struct sx_serve_cfg {
	const char *listen; /* ADDR:PORT, [v6]:PORT */
	const sx_identity *id;
	X509_CRL *crl; /* CRL for the senders' certificates; NULL: id->crl */
	/* the file that CRL came from (or is expected at: the identity folder's
	 * crl.pem), watched while the server runs; a new CRL there is checked
	 * and swapped in (docs/REVOCATION.md). NULL: nothing is watched */
	const char *crl_path;
	volatile sig_atomic_t *reload; /* set by SIGHUP: the CRL is read again */
	const char *out_dir;
	bool once;	      /* serve one connection, exit with its result */
	bool overwrite;	      /* replace existing files */
	bool direct;	      /* direct I/O for large files where supported */
	bool require_signed;  /* refuse sessions whose sender does not sign */
	unsigned max_conns;   /* concurrent connections, all loops together */
	unsigned hs_per_addr; /* handshakes in progress per source address (0: default) */
	unsigned threads;     /* event loops; 0: one per core (at most 8); --once: 1 */
	/* threads that open and hash the records of one loop, the loop
	 * included (its pool of workers: docs/ARCHITECTURE.md, "Opening
	 * workers"); 0: one per core (at most SX_OPEN_THREADS_MAX); 1: the
	 * loop alone */
	unsigned open_threads;
	sx_io_kind io;
	uint32_t max_record;
	int handshake_timeout_ms;
	int idle_timeout_ms;
	volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM */
	/* sxfer get and ls (docs/PROTOCOL.md, "Pull"): a read-only export root
	 * (NULL: only what the identity uploaded is listed and sent), the
	 * compression of what the server sends, and where it keeps the signed
	 * receipts of its clients (NULL: logged only) */
	const char *export_dir;
	sx_zmode zmode;
	int zlevel;
	const char *receipts_dir;
	/* the server's ledger (engine/ledger); NULL: none */
	const char *ledger;
	/* held parts of broken transfers are removed after this many seconds
	 * (serve --partial-ttl; 0: the default, 7 days) */
	uint64_t partial_ttl_s;
	/* set by sx_get_run (get and ls): this is the client's side */
	const struct sx_get_cfg *client;
	/* called once listening, with the bound port (for port 0) */
	void (*on_listen)(void *ctx, int port);
	void *listen_ctx;
	/* serve --metrics (engine/transfer/sx_metrics.h); NULL: none */
	const struct sx_metrics_cfg *metrics;
	/* per-device limits (sx_limits.h; taken by sx_serve_run: left empty),
	 * NULL: none; and what a SIGHUP calls, on the thread that reloads the
	 * CRL, to read them again: 0 with the new policy in *out (taken), or -1
	 * (it logged why; the limits in use stay). NULL: nothing to reload */
	sx_limits_cfg *limits;
	int (*on_reload)(void *ctx, sx_limits_cfg *out);
	void *reload_ctx;
	/* serve --chat: the chat hub (engine/chat/sx_chat_hub.h); NULL: chat
	 * is off, and a CHAT_JOIN is answered with ERROR */
	const struct sx_chat_hub_cfg *chat;
} sx_serve_cfg;

int sx_serve_run(const sx_serve_cfg *cfg, sx_err *err) SX_MUST_CHECK;

/* One entry of a listing (sxfer ls). */
typedef struct sx_list_entry {
	const char *path; /* from the export's top, e.g. "shared/fw.bin" */
	bool is_dir;
	bool has_sxsig; /* NAME.sxsig beside the file */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
} sx_list_entry;

/* sxfer get and ls: the client asks, the server sends (the send pipeline
 * on the server, the receive state machine here: docs/ARCHITECTURE.md). */
typedef struct sx_get_cfg {
	const char *host;
	const char *port;
	const sx_identity *id;
	X509_CRL *crl;		 /* NULL: the identity's */
	const char *server_name; /* defaults to host */
	sx_suite suite;
	uint64_t rotate_bytes;
	sx_io_kind io;
	char **paths; /* remote paths (get), or at most one (ls) */
	int npaths;
	bool list;	     /* ls */
	const char *out_dir; /* get: where files land */
	bool single;	     /* get into standard output: one file only */
	bool no_sign;	     /* ask for an unsigned session */
	bool overwrite;
	bool direct;
	uint32_t chunk; /* preferred record payload (0: the server's) */
	uint32_t max_record;
	unsigned open_threads; /* as sx_serve_cfg's */
	int timeout_ms;
	/* --limit-rate: bytes per second read from the socket, so that the
	 * server's sending is held to it by TCP's flow control (0: no limit) */
	uint64_t limit_rate;
	void (*on_entry)(void *ctx, const sx_list_entry *e);
	void *entry_ctx;
	void (*on_progress)(void *ctx, const sx_progress *p);
	void *progress_ctx;
} sx_get_cfg;

typedef struct sx_get_stats {
	uint64_t files_ok, files_failed, bytes, batches, entries;
	/* files continued from a held part, the bytes not fetched again, and
	 * files already there (counted in files_ok) */
	uint64_t files_resumed, bytes_resumed, files_same;
	double seconds;
	char peer_name[256];
	char peer_fingerprint[65];
	const char *io_backend;
	sx_suite suite;
	bool sign;
} sx_get_stats;

int sx_get_run(const sx_get_cfg *cfg, sx_get_stats *stats, sx_err *err) SX_MUST_CHECK;

/* What sx_serve_run does before it listens (engine/transfer/serve_start.c), so that
 * a server that cannot work says why at once, not at the first connection:
 *   the identity may serve: its certificate passes the policy with the
 *   server role (and its CRL when that CRL is from its issuer); the CRL
 *   (cfg->crl, or the identity's) is current                  SX_E_AUTH
 *   OUT exists or is created (0750), can be written, and no other server
 *   uses it (an exclusive lock held in *lock_fd until it is closed) SX_E_IO
 *   what a killed server left in OUT is recovered (sx_store_recover). */
int sx_serve_prepare(const sx_serve_cfg *cfg, int *lock_fd, sx_err *err) SX_MUST_CHECK;

/* Logs a warning when the identity's certificate has less than a third of
 * its lifetime left (renewal is due: docs/REVOCATION.md); now 0: the
 * current time. True when it warned. */
bool sx_cert_life_warn(const sx_identity *id, time_t now);

#endif
