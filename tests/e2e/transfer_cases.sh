# End-to-end transfers over loopback with one I/O backend ($IO: uring or
# poll). Sourced by test_transfer_uring.sh and test_transfer_poll.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${IO:?}"

make_pki
# Three event loops whatever the core count, so connections spread over them;
# each with two opening workers, to which every DATA record goes (the test
# hook SXFER_TEST_RXPOOL=all: not only when a worker is free and the server
# has fewer connections than cores), so that every transfer below, the 20 at
# once too, is opened by workers and processed in order on its loop.
SXFER_TEST_RXPOOL=all start_server srv --id "$WORK/server" --out "$WORK/out" --io "$IO" \
	--threads 3 --open-threads 3
SRV=$SERVER_PID
OUT=$WORK/out/cam-01
send() { "$SXFER" send --id "$WORK/cam" --io "$IO" --quiet "127.0.0.1:$PORT" "$@"; }

# A 256 MiB random file.
rand_file "$WORK/big.bin" $((256 << 20))
send "$WORK/big.bin"
cmp "$WORK/big.bin" "$OUT/big.bin" || fail "256 MiB file differs"
ok "$IO: 256 MiB random file byte-identical"

# A tree: nested folders, empty files, exactly one chunk, one chunk plus one.
T=$WORK/tree
mkdir -p "$T/a/b/c" "$T/empty-dir" "$T/x y"
: >"$T/empty.txt"
: >"$T/a/b/c/empty2"
rand_file "$T/a/one-chunk" $((64 << 10))
rand_file "$T/a/b/chunk-plus-one" $(((64 << 10) + 1))
rand_file "$T/x y/small file" 1000
printf 'hello\n' >"$T/a/b/c/deep.txt"
chmod 0640 "$T/a/one-chunk"
chmod 0755 "$T/a/b/c/deep.txt"
touch -d '2020-01-02 03:04:05.123456789' "$T/a/b/chunk-plus-one"
touch -d '2019-05-06 07:08:09' "$T/a/b"
send --chunk 64K "$T"
diff -r -x "*.sxsig" "$T" "$OUT/tree" || fail "tree differs"
[ "$(find "$OUT/tree" -name "*.sxsig" | wc -l)" -eq "$(find "$T" -type f | wc -l)" ] || fail "a .sxsig is missing"
[ -d "$OUT/tree/empty-dir" ] || fail "empty folder missing"
for f in a/one-chunk a/b/c/deep.txt a/b/chunk-plus-one "x y/small file"; do
	a=$(stat -c '%a %s %Y' "$T/$f")
	b=$(stat -c '%a %s %Y' "$OUT/tree/$f")
	[ "$a" = "$b" ] || fail "metadata of $f: sent '$a', stored '$b'"
done
[ "$(stat -c %y "$T/a/b/chunk-plus-one")" = "$(stat -c %y "$OUT/tree/a/b/chunk-plus-one")" ] ||
	fail "nanosecond mtime not kept"
[ "$(stat -c %Y "$T/a/b")" = "$(stat -c %Y "$OUT/tree/a/b")" ] || fail "folder mtime not kept"
ok "$IO: tree with nested folders, empty files, chunk edges; modes and mtimes kept"

# The worker pool: 1, 2 and 4 threads, a key update every 1 MiB, signed; the
# same bytes arrive and verify whichever thread sealed which chunk.
rand_file "$WORK/pool.bin" $((24 << 20))
for t in 1 2 4; do
	cp "$WORK/pool.bin" "$WORK/pool$t.bin"
	send --threads "$t" --key-update 1M --compress off "$WORK/pool$t.bin"
	cmp "$WORK/pool.bin" "$OUT/pool$t.bin" || fail "--threads $t: differs"
	"$SXFER" verify --ca "$WORK/ca" "$OUT/pool$t.bin" >/dev/null || fail "--threads $t: does not verify"
done
ok "$IO: worker pool (1, 2, 4 threads) with key updates: byte-identical, signatures verify"
# Opened by the receiver's workers, unsigned, with a key update every
# 256 KiB; compressible data (opened by a worker, decompressed in order).
cp "$WORK/pool.bin" "$WORK/pool-ns.bin"
send --no-sign --key-update 256K --chunk 256K "$WORK/pool-ns.bin"
cmp "$WORK/pool.bin" "$OUT/pool-ns.bin" || fail "unsigned, receiver's workers: differs"
[ ! -e "$OUT/pool-ns.bin.sxsig" ] || fail "unsigned: a .sxsig was written"
head -c $((8 << 20)) <(yes "a line of text the opening workers see compressed") >"$WORK/text.log"
send --compress on --json "$WORK/text.log" >"$WORK/text.json"
grep -q '"compressed_records":[1-9]' "$WORK/text.json" || fail "text.log not compressed: $(cat "$WORK/text.json")"
cmp "$WORK/text.log" "$OUT/text.log" || fail "compressed, receiver's workers: differs"
"$SXFER" verify --ca "$WORK/ca" "$OUT/text.log" >/dev/null || fail "compressed: does not verify"
ok "$IO: receiver's workers: unsigned with key updates, and compressed: byte-identical"
send --zerocopy --threads 2 "$WORK/pool.bin"
cmp "$WORK/pool.bin" "$OUT/pool.bin" || fail "--zerocopy: differs"
ok "$IO: --zerocopy: byte-identical"

# A stream from standard input.
head -c 3000000 /dev/urandom | tee "$WORK/stream.src" |
	send --name cam-stream.raw --chunk 256K -
cmp "$WORK/stream.src" "$OUT/cam-stream.raw" || fail "stream differs"
ok "$IO: standard-input stream stored"

# The same file again is already there: exit 0, no data on the wire.
send --json "$WORK/big.bin" >"$WORK/same.json" || fail "identical re-send: $(cat "$WORK/same.json")"
grep -q '"files_same":1' "$WORK/same.json" && grep -q '"wire_bytes":0' "$WORK/same.json" ||
	fail "identical re-send not already there: $(cat "$WORK/same.json")"
# Other content under an existing name, of the same size or another, is not
# written over; the sender is told why (exit 5).
mkdir -p "$WORK/other1" "$WORK/other2"
rand_file "$WORK/other1/big.bin" "$(stat -c %s "$WORK/big.bin")"
rand_file "$WORK/other2/big.bin" 12345
expect_exit 5 send "$WORK/other1/big.bin"
grep -q "exists" "$WORK/last.err" || fail "sender not told the file exists (same size)"
expect_exit 5 send "$WORK/other2/big.bin"
grep -q "exists" "$WORK/last.err" || fail "sender not told the file exists"
cmp "$WORK/big.bin" "$OUT/big.bin" || fail "existing file damaged"
rm -rf "$WORK/other1" "$WORK/other2"
ok "$IO: the same file again is already there (exit 0); other content kept out, sender told why"

# Sent again beside a new file with --no-resume (no QUERY: the receiver
# refuses the existing name at its FILE_BEGIN), signed and not: the refused
# 256 MiB file is ended early (the receiver would drop the rest), the new
# file is stored and verified, the receipt covers it.
printf 'new beside an old one\n' >"$WORK/beside.txt"
for mode in signed --no-sign; do
	extra=()
	[ "$mode" = signed ] || extra=(--no-sign)
	rm -f "$OUT/beside.txt" "$OUT/beside.txt.sxsig"
	set +e
	"$SXFER" send --id "$WORK/cam" --io "$IO" --json --no-resume "${extra[@]}" \
		"127.0.0.1:$PORT" "$WORK/big.bin" "$WORK/beside.txt" >"$WORK/again.json" 2>"$WORK/again.err"
	rc=$?
	set -e
	[ "$rc" -eq 5 ] || { cat "$WORK/again.err" >&2; fail "$mode: re-sent file: exit $rc, not 5"; }
	sent=$(sed -n 's/.*"bytes":\([0-9]*\).*/\1/p' "$WORK/again.json")
	[ "$sent" -lt $((128 << 20)) ] || fail "$mode: a refused 256 MiB file was still sent ($sent bytes)"
	cmp "$WORK/beside.txt" "$OUT/beside.txt" || fail "$mode: the new file beside it differs"
	if [ "$mode" = signed ]; then
		"$SXFER" verify --ca "$WORK/ca/ca.pem" --signer cam-01 "$OUT/beside.txt" >/dev/null ||
			fail "signed: the new file does not verify"
		grep -q '"receipts":1' "$WORK/again.json" || fail "signed: no verified receipt"
	fi
	cmp "$WORK/big.bin" "$OUT/big.bin" || fail "$mode: existing file damaged"
	ok "$IO ($mode): a refused file ends early ($sent of 268435456 bytes sent), the rest of the session stored"
done

# Twenty senders at once to one server.
mkdir -p "$WORK/many"
for i in $(seq 1 20); do rand_file "$WORK/many/f$i" $((1 << 20 + (i % 3))); done
pids=()
for i in $(seq 1 20); do
	send "$WORK/many/f$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent sender failed"; done
for i in $(seq 1 20); do cmp "$WORK/many/f$i" "$OUT/f$i" || fail "f$i differs"; done
ok "$IO: 20 concurrent senders"
loops=$(sed -n 's/.*event=conn_open .* loop=\([0-9]*\).*/\1/p' "$WORK/srv.log" | sort -u | wc -l)
[ "$loops" -ge 2 ] || fail "20 concurrent senders all went to one event loop"
ok "$IO: connections spread over $loops event loops"

no_partials "$WORK/out"
stop_server "$SRV"
# The records went to the workers (without the test hook, a release build's
# tests on two cores and more: the one big transfer at least).
if [ "$(nproc)" -ge 2 ]; then
	grep -q 'event=conn_close .*worker_records=[1-9]' "$WORK/srv.log" ||
		fail "no record was opened by a worker"
fi
grep -q 'event=file_stored' "$WORK/srv.log" || fail "no file_stored log line"
ok "$IO: server stopped cleanly on SIGTERM"
