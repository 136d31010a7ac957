#!/usr/bin/env bash
# Batched signing over a real transfer: every stored file has a .sxsig that
# `sxfer verify` accepts, the sender keeps a receipt that `sxfer verify
# --receipt` accepts, 1,000 small files carry one signature, --no-sign turns
# it all off, and a stream cut off mid-way verifies up to its last checkpoint
# and no further.
source "$(dirname "$0")/lib.sh"
make_pki
start_server srv --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
OUT=$WORK/out/cam-01
RC=$WORK/receipts
send() { "$SXFER" send --id "$WORK/cam" --quiet --receipts "$RC" "127.0.0.1:$PORT" "$@"; }

mkdir -p "$WORK/media/day1"
rand_file "$WORK/media/clip.mp4" $((3 << 20))
for i in 1 2 3; do rand_file "$WORK/media/day1/img$i.jpg" 200000; done
send "$WORK/media" --json >"$WORK/send.json"
grep -q '"signed":true' "$WORK/send.json" || fail "not signed: $(cat "$WORK/send.json")"
grep -q '"receipts":1' "$WORK/send.json" || fail "no receipt: $(cat "$WORK/send.json")"
(cd "$OUT" && "$SXFER" verify --ca "$WORK/ca" --signer cam-01 media/clip.mp4 media/day1/img*.jpg) \
	>"$WORK/verify.out" || { cat "$WORK/verify.out" >&2; fail "received files do not verify"; }
[ "$(grep -c ': ok (signer cam-01' "$WORK/verify.out")" -eq 4 ] || fail "not 4 ok lines"
ok "signed transfer: every received file verifies offline against its .sxsig"

receipt=$(ls "$RC"/*.sxreceipt)
(cd "$OUT" && "$SXFER" verify --receipt "$receipt" --ca "$WORK/ca" media/clip.mp4 \
	media/day1/img1.jpg media/day1/img2.jpg media/day1/img3.jpg) >"$WORK/rverify.out" ||
	{ cat "$WORK/rverify.out" >&2; fail "receipt does not verify"; }
ok "the sender's receipt verifies and acknowledges exactly the files sent"

# Tampering after the fact is caught by the offline check.
cp "$OUT/media/day1/img1.jpg" "$WORK/img1.bak"
flip_byte "$OUT/media/day1/img1.jpg" 1000
expect_exit 4 "$SXFER" verify --ca "$WORK/ca" "$OUT/media/day1/img1.jpg"
cp "$WORK/img1.bak" "$OUT/media/day1/img1.jpg"
expect_exit 3 "$SXFER" verify --ca "$WORK/ca" --signer someone-else "$OUT/media/clip.mp4"
sed -i 's/^file: \([0-9a-f]*\) [0-9]* media\/clip.mp4/file: \1 1 media\/clip.mp4/' "$receipt"
expect_exit 4 "$SXFER" verify --receipt "$receipt" --ca "$WORK/ca"
ok "a changed file, a wrong signer, an edited receipt: refused"

# Two acknowledged files with the same base name: each file given matches the
# entry its path names first, whatever the order on the command line.
mkdir -p "$WORK/dup/d1" "$WORK/dup/d2"
printf 'one\n' >"$WORK/dup/d1/same.txt"
printf 'two\n' >"$WORK/dup/d2/same.txt"
send "$WORK/dup"
receipt=$(ls -t "$RC"/*.sxreceipt | head -n 1)
(cd "$OUT" && "$SXFER" verify --receipt "$receipt" --ca "$WORK/ca" dup/d2/same.txt \
	dup/d1/same.txt) >"$WORK/dup.out" || { cat "$WORK/dup.out" >&2; fail "same base names"; }
grep -q "^dup/d2/same.txt: ok (acknowledged as 'dup/d2/same.txt')$" "$WORK/dup.out" ||
	{ cat "$WORK/dup.out" >&2; fail "matched by base name before the exact path"; }
ok "a receipt matches each file by its exact path first, then by base name"

# 1,000 small files in one session: exactly one signature.
mkdir -p "$WORK/small"
for i in $(seq 1 1000); do printf 'file %d\n' "$i" >"$WORK/small/f$i.txt"; done
send "$WORK/small" --json >"$WORK/small.json"
grep -q '"batches":1,' "$WORK/small.json" || fail "1,000 files: $(cat "$WORK/small.json")"
[ "$(ls "$OUT/small" | grep -c '\.sxsig$')" -eq 1000 ] || fail "1,000 files: .sxsig missing"
[ "$(grep -h '^signature: ' "$OUT"/small/*.sxsig | sort -u | wc -l)" -eq 1 ] ||
	fail "1,000 files carry more than one signature"
(cd "$OUT" && "$SXFER" verify --ca "$WORK/ca" small/f1.txt small/f500.txt small/f1000.txt) >/dev/null ||
	fail "small files do not verify"
ok "1,000 small files: one batch, one signature, each file verifies"

# --no-sign: a plain channel transfer.
rand_file "$WORK/plain.bin" 100000
before=$(ls "$RC" | wc -l)
send --no-sign "$WORK/plain.bin" --json >"$WORK/plain.json"
grep -q '"signed":false' "$WORK/plain.json" || fail "--no-sign: $(cat "$WORK/plain.json")"
cmp "$WORK/plain.bin" "$OUT/plain.bin"
[ ! -e "$OUT/plain.bin.sxsig" ] || fail "--no-sign wrote a .sxsig"
[ "$(ls "$RC" | wc -l)" -eq "$before" ] || fail "--no-sign stored a receipt"
ok "--no-sign: no signature, no receipt"

# A stream cut off mid-way keeps its signed prefix as NAME.partial.
head -c $((3 << 20)) /dev/urandom >"$WORK/live.src"
# A camera that goes silent: 3 MiB, then the pipe stays open.
mkfifo "$WORK/live.fifo"
"$SXFER" send --id "$WORK/cam" --quiet --receipts "$RC" --chunk 64K --checkpoint 8 \
	--name live.raw "127.0.0.1:$PORT" - <"$WORK/live.fifo" 2>/dev/null &
STREAM=$!
PIDS+=("$STREAM")
exec 7>"$WORK/live.fifo"
cat "$WORK/live.src" >&7
stream_checkpointed() { grep -q 'event=checkpoint .*path="live.raw" leaves=48 bytes=3145728' "$WORK/srv.log"; }
wait_until 20 "the stream's checkpoint at 3 MiB" stream_checkpointed
kill -KILL "$STREAM"
wait "$STREAM" 2>/dev/null || true
exec 7>&-
wait_until 10 "the cut-off stream's live.raw.partial.sxsig" test -e "$OUT/live.raw.partial.sxsig"
[ ! -e "$OUT/live.raw" ] || fail "a cut-off stream stands under its final name"
cmp "$WORK/live.src" "$OUT/live.raw.partial" || fail "the kept prefix differs"
"$SXFER" verify --ca "$WORK/ca" "$OUT/live.raw.partial" >"$WORK/partial.out" ||
	{ cat "$WORK/partial.out" >&2; fail "the kept prefix does not verify"; }
grep -q 'ok (stream prefix: the first 3145728 bytes of .live.raw.' "$WORK/partial.out" ||
	{ cat "$WORK/partial.out" >&2; fail "not reported as a stream prefix"; }
# The prefix under the stream's own name does not pass for the complete file.
mkdir "$WORK/copy"
cp "$OUT/live.raw.partial" "$WORK/copy/live.raw"
cp "$OUT/live.raw.partial.sxsig" "$WORK/copy/live.raw.sxsig"
expect_exit 4 "$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$WORK/copy/live.raw"
grep -q "FAILED (a stream checkpoint signs only a prefix of 'live.raw': it verifies 'live.raw.partial'" \
	"$WORK/last.out" || { cat "$WORK/last.out" >&2; fail "a checkpoint passed for a whole file"; }
expect_exit 0 "$SXFER" verify --ca "$WORK/ca" --signer cam-01 --stream-prefix "$WORK/copy/live.raw"
grep -q 'live.raw: ok (stream prefix: the first 3145728 bytes' "$WORK/last.out" ||
	{ cat "$WORK/last.out" >&2; fail "--stream-prefix: not reported as a stream prefix"; }
ok "a checkpoint signature verifies only NAME.partial, or NAME with --stream-prefix"
printf 'more' >>"$OUT/live.raw.partial"
expect_exit 4 "$SXFER" verify --ca "$WORK/ca" "$OUT/live.raw.partial"
ok "a cut-off stream verifies up to its last checkpoint and no further"

# Through a pipe, records are shorter than a chunk (short reads): checkpoints
# still come every K chunks, each covering new whole leaves.
head -c $(((5 << 20) + 3)) /dev/urandom >"$WORK/pipe.src"
cat "$WORK/pipe.src" | "$SXFER" send --id "$WORK/cam" --quiet --receipts "$RC" --checkpoint 2 \
	--name piped.raw "127.0.0.1:$PORT" - || fail "a piped stream with --checkpoint 2 failed"
cmp "$WORK/pipe.src" "$OUT/piped.raw" || fail "the piped stream differs"
"$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$OUT/piped.raw" >/dev/null ||
	fail "the piped stream does not verify"
n=$(grep -c 'event=checkpoint .*path="piped.raw"' "$WORK/srv.log" || true)
[ "$n" -eq 2 ] || fail "piped stream: $n checkpoints, expected 2 (at 2 and 4 MiB)"
ok "a piped stream (short reads) gets a checkpoint every 2 chunks and verifies"

no_partials "$WORK/out"
stop_server "$SRV"
