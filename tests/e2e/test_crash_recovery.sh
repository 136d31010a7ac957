#!/usr/bin/env bash
# kill -9 of the server mid-transfer of many files and mid-stream: the next
# start removes every temporary and keeps the stream's signed prefix as
# NAME.partial with its .sxsig, which verifies as a stream checkpoint.
source "$(dirname "$0")/lib.sh"
make_pki
mkdir -p "$WORK/many"
for i in $(seq 1 300); do rand_file "$WORK/many/f$i.bin" 20000; done

start_server srv --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID

# A stream fed through a FIFO held open here: it stays in flight after its
# first 3 MiB (checkpoints every 4 chunks of 64 KiB).
mkfifo "$WORK/fifo"
"$SXFER" send --id "$WORK/cam" --quiet --chunk 64K --checkpoint 4 --name live.ts \
	"127.0.0.1:$PORT" - <"$WORK/fifo" 2>"$WORK/stream.err" &
STREAM=$!
PIDS+=("$STREAM")
exec 3>"$WORK/fifo"
head -c $((3 * 1024 * 1024)) /dev/urandom >&3
stream_checkpointed() {
	[ "$(log_count "$WORK/srv.log" 'event=checkpoint')" -ge 8 ] &&
		find "$WORK/out" -name '.live.ts.*.sxckpt' | grep -q .
}
wait_until 20 "8 checkpoints of the stream, kept beside it" stream_checkpointed

# Many files in flight, each held as a temporary until its batch is signed.
"$SXFER" send --id "$WORK/cam" --quiet --batch-files 4096 --batch-seconds 600 \
	"127.0.0.1:$PORT" "$WORK/many" 2>"$WORK/many.err" &
MANY=$!
PIDS+=("$MANY")
many_in_flight() { [ "$(find "$WORK/out" -name '*.sxpart' | wc -l)" -ge 20 ]; }
wait_until 20 "20 files in flight" many_in_flight
# Leftovers of every kind a crash can leave, also in a subfolder.
mkdir -p "$WORK/out/cam-01/sub/deeper"
head -c 5000 /dev/urandom >"$WORK/out/cam-01/sub/deeper/.x.bin.0123456789ab.sxpart"
echo junk >"$WORK/out/cam-01/sub/.y.bin.00000000000a.sxckpt"
echo junk >"$WORK/out/cam-01/sub/.z.bin.00000000000b.sxckpt-new"
echo keep >"$WORK/out/cam-01/sub/plain.sxpart" # not a temporary's name: kept
# Killed between the two renames of a commit: orph.bin.sxsig is in place,
# orph.bin is still its temporary. The signature goes with the temporary;
# the .sxsig of a file that is there (kept.bin) stays.
mkdir -p "$WORK/signed"
echo orphan >"$WORK/signed/orph.bin"
echo kept >"$WORK/signed/kept.bin"
"$SXFER" sign --id "$WORK/cam" "$WORK/signed/orph.bin" "$WORK/signed/kept.bin" >/dev/null
cp "$WORK/signed/orph.bin.sxsig" "$WORK/signed/kept.bin" "$WORK/signed/kept.bin.sxsig" \
	"$WORK/out/cam-01/sub/"
cp "$WORK/signed/orph.bin" "$WORK/out/cam-01/sub/.orph.bin.0123456789ab.sxpart"
cp "$WORK/signed/kept.bin" "$WORK/out/cam-01/sub/.kept.bin.0123456789ac.sxpart"

kill -9 "$SRV"
# Counted once the server is gone: until then files were still being
# renamed into place.
wait "$SRV" 2>/dev/null || true
before=$(find "$WORK/out" -name '*.sxpart' | wc -l)
[ "$before" -ge 3 ] || fail "only $before temporaries at the crash"
wait "$SRV" 2>/dev/null || true
exec 3>&-
wait "$STREAM" 2>/dev/null || true
wait "$MANY" 2>/dev/null || true
ok "server killed with $before temporaries in OUT"

start_server srv2 --id "$WORK/server" --out "$WORK/out"
left=$(find "$WORK/out" -name '.*.sxpart' -o -name '.*.sxckpt' -o -name '.*.sxckpt-new')
[ -z "$left" ] || fail "left after the restart: $left"
[ -e "$WORK/out/cam-01/sub/plain.sxpart" ] || fail "a stored file was removed"
[ ! -e "$WORK/out/cam-01/sub/orph.bin.sxsig" ] || fail "a signature without its file was left"
[ -e "$WORK/out/cam-01/sub/kept.bin.sxsig" ] || fail "the signature of a stored file was removed"
removed=$(grep -c 'event=recover.*action=removed' "$WORK/srv2.log" || true)
[ "$removed" -ge $((before - 1)) ] || fail "removed $removed of $before, not each logged"
ok "no temporary left; $removed removed, each logged"

p="$WORK/out/cam-01/live.ts.partial"
[ -f "$p" ] && [ -f "$p.sxsig" ] || { cat "$WORK/srv2.log" >&2; fail "stream prefix not kept"; }
grep -q 'event=recover.*live.ts.partial.*action=kept' "$WORK/srv2.log" || fail "kept, not logged"
size=$(stat -c %s "$p")
[ "$size" -gt 0 ] && [ "$size" -le $((3 * 1024 * 1024)) ] ||
	fail "prefix of $size bytes"
"$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$p" >"$WORK/v.out" ||
	fail "prefix does not verify: $(cat "$WORK/v.out")"
grep -q "stream prefix: the first $size bytes" "$WORK/v.out" || fail "not a checkpoint: $(cat "$WORK/v.out")"
ok "the stream's signed prefix ($size bytes) kept and verified"

# The server serves after its recovery.
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/many/f1.bin" || fail "no service"
stop_server "$SERVER_PID"
rm "$WORK/out/cam-01/sub/plain.sxpart"
no_partials "$WORK/out"
ok "serves after the recovery"
