#!/usr/bin/env bash
# Direct I/O. The receiver: files of 4 MiB or more are written with
# O_DIRECT where the file system supports it (an unaligned tail or chunk size
# falls back to the page cache), smaller files and --no-direct never are, and
# every file arrives byte for byte, signed, on both backends.
source "$(dirname "$0")/lib.sh"
make_pki

mkdir -p "$WORK/in"
rand_file "$WORK/in/tail.bin" $(((8 << 20) + 123))  # aligned chunks, then a tail
rand_file "$WORK/in/exact.bin" $((16 << 20))        # nothing but aligned chunks
rand_file "$WORK/in/odd.bin" $((5 << 20))           # sent with a 100,000-byte chunk
rand_file "$WORK/in/small.bin" $((100 << 10))       # below the threshold
rand_file "$WORK/in/stream.bin" $(((6 << 20) + 7))  # standard input: size unknown
# Compressible: records are decompressed into their own buffers first.
seq 1 1200000 >"$WORK/in/log.txt" # about 9 MB

# Whether this file system takes direct I/O: the receiver asks statx, the
# test decides from the file system type (tmpfs does not).
direct_fs=0
case "$(stat -f -c %T "$WORK")" in ext2/ext3 | ext4 | xfs | btrfs) direct_fs=1 ;; esac

direct_bytes() { # LOG PATH
	sed -n "s/.*event=file_stored .*path=\"$2\" .*direct_bytes=\([0-9]*\).*/\1/p" "$1"
}

run_case() { # NAME IO [serve options...]
	local name=$1 io=$2 f
	shift 2
	start_server "$name" --id "$WORK/server" --out "$WORK/out-$name" --io "$io" "$@"
	local send=("$SXFER" send --id "$WORK/cam" --io "$io" --quiet "127.0.0.1:$PORT")
	"${send[@]}" "$WORK/in/tail.bin" "$WORK/in/exact.bin" "$WORK/in/small.bin"
	"${send[@]}" --chunk 100000 "$WORK/in/odd.bin"
	"${send[@]}" --compress on "$WORK/in/log.txt"
	"${send[@]}" --name stream.bin - <"$WORK/in/stream.bin"
	stop_server "$SERVER_PID"
	for f in tail.bin exact.bin odd.bin small.bin stream.bin log.txt; do
		cmp "$WORK/in/$f" "$WORK/out-$name/cam-01/$f" || fail "$name: $f differs"
		"$SXFER" verify --ca "$WORK/ca/ca.pem" --signer cam-01 \
			"$WORK/out-$name/cam-01/$f" >/dev/null || fail "$name: $f does not verify"
	done
	no_partials "$WORK/out-$name"
	ok "$name ($io): every file byte-identical and verified"
}

expect_direct() { # NAME FILE yes|no
	local got
	got=$(direct_bytes "$WORK/$1.log" "$2")
	[ -n "$got" ] || fail "$1: no file_stored line for $2"
	if [ "$3" = yes ]; then
		[ "$got" -gt 0 ] || fail "$1: $2 was not written with direct I/O"
	else
		[ "$got" -eq 0 ] || fail "$1: $2 was written with direct I/O ($got bytes)"
	fi
}

for io in uring poll; do
	run_case "direct-$io" "$io"
	if ((direct_fs)); then
		expect_direct "direct-$io" tail.bin yes
		# All but the last 8 MiB + 123 bytes' tail (the 123 bytes).
		[ "$(direct_bytes "$WORK/direct-$io.log" tail.bin)" -eq $((8 << 20)) ] ||
			fail "direct-$io: tail.bin: the aligned part was not all direct"
		expect_direct "direct-$io" exact.bin yes
		expect_direct "direct-$io" log.txt yes
		expect_direct "direct-$io" stream.bin yes
		expect_direct "direct-$io" small.bin no
		expect_direct "direct-$io" odd.bin no
		ok "direct-$io: large files bypass the page cache; tails, odd chunks and small files do not"
	else
		ok "direct-$io: this file system has no direct I/O; the page cache served"
	fi
done

run_case buffered uring --no-direct
for f in tail.bin exact.bin log.txt stream.bin; do expect_direct buffered "$f" no; done
ok "--no-direct: every file through the page cache"

# The sender: a large file that is not in the page cache is read with direct
# I/O (cachestat, Linux 6.5, says how much is cached); a cached one, and any
# with --no-direct, through the page cache.
start_server sender-side --id "$WORK/server" --out "$WORK/out-send"
rand_file "$WORK/in/cold.bin" $(((12 << 20) + 77))
sync "$WORK/in/cold.bin" # written back, so its pages can be dropped
# Whether cachestat(2) answers here (Linux 6.5, and not blocked by a filter).
cachestat_ok=$(python3 - "$WORK/in/cold.bin" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
rng = (ctypes.c_uint64 * 2)(0, 0)
out = (ctypes.c_uint64 * 5)()
print(1 if libc.syscall(451, fd, rng, out, 0) == 0 else 0)
PY
)
send_json() { # FILE [options] -> direct_bytes
	local f=$1
	shift
	rm -f "$WORK/out-send/cam-01/$(basename "$f")" "$WORK/out-send/cam-01/$(basename "$f").sxsig"
	"$SXFER" send --id "$WORK/cam" --json "$@" "127.0.0.1:$PORT" "$f" >"$WORK/send.json"
	cmp "$f" "$WORK/out-send/cam-01/$(basename "$f")" || fail "sender side: $(basename "$f") differs"
	sed -n 's/.*"direct_bytes":\([0-9]*\).*/\1/p' "$WORK/send.json"
}
for io in uring poll; do
	dd if="$WORK/in/cold.bin" iflag=nocache count=0 status=none
	cold=$(send_json "$WORK/in/cold.bin" --io "$io")
	cat "$WORK/in/cold.bin" >/dev/null
	warm=$(send_json "$WORK/in/cold.bin" --io "$io")
	dd if="$WORK/in/cold.bin" iflag=nocache count=0 status=none
	off=$(send_json "$WORK/in/cold.bin" --io "$io" --no-direct)
	dd if="$WORK/in/cold.bin" iflag=nocache count=0 status=none
	odd=$(send_json "$WORK/in/cold.bin" --io "$io" --chunk 100000)
	[ "$warm" -eq 0 ] || fail "sender ($io): a cached file was read with direct I/O"
	[ "$off" -eq 0 ] || fail "sender ($io): --no-direct read with direct I/O"
	[ "$odd" -eq 0 ] || fail "sender ($io): an odd chunk size read with direct I/O"
	if ((direct_fs && cachestat_ok)); then
		[ "$cold" -eq $(((12 << 20) + 77)) ] ||
			fail "sender ($io): a file not in the cache was not read with direct I/O ($cold bytes)"
		ok "sender ($io): an uncached file read with direct I/O, whole, tail included"
	else
		ok "sender ($io): no direct reads here (file system or kernel); page cache used"
	fi
done
# Direct reads with the smallest chunk, with the worker pool and compression,
# and with a chunk larger than the receiver's maximum record (16 MiB by
# default): clamped after the handshake, the chunk stays whole blocks.
if ((direct_fs && cachestat_ok)); then
	for opts in "--chunk 4K" "--threads 4 --compress on" "--chunk 64M" "--chunk 16M --io poll"; do
		dd if="$WORK/in/cold.bin" iflag=nocache count=0 status=none
		# shellcheck disable=SC2086 # word splitting of the options is wanted
		got=$(send_json "$WORK/in/cold.bin" $opts)
		[ "$got" -eq $(((12 << 20) + 77)) ] ||
			fail "sender ($opts): an uncached file was not read with direct I/O ($got bytes)"
	done
	ok "sender: direct reads with 4K and clamped chunks, workers and compression"
fi
stop_server "$SERVER_PID"
ok "sender: cached files, --no-direct and odd chunk sizes read through the page cache"
