#!/usr/bin/env bash
# Direct I/O on the receiver: files of 4 MiB or more are written with
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
