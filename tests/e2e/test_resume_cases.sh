#!/usr/bin/env bash
# Resume and safe re-sending (docs/PROTOCOL.md, "Resume and re-sending"),
# each case against the real server:
#   - a link cut every 64 MiB (cutproxy.py): `send --retry` completes, each
#     attempt resuming; without --retry the first cut ends with exit 6;
#   - a stalled link counts as a network error and is retried;
#   - the result of a resumed file is byte-identical, its .sxsig verifies
#     and the receipt covers it; unsigned, compressed and with the poll
#     back end too, and for a file inside a folder;
#   - a source changed between attempts starts over and ends correct;
#   - another identity sending the same path gets no offer;
#   - a folder re-sent with one new file: exit 0, the others already there
#     (no data), all in the signed receipt; a changed file under an existing
#     name is refused before its data (exit 5), the rest still goes;
#   - --partial-ttl: an expired part is removed (logged) and not offered.
source "$(dirname "$0")/lib.sh"
make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name cam-02 --role client --out "$WORK/cam2" >/dev/null
OUT=$WORK/out
DEV=$OUT/cam-01
PRX=""
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
send_to() { # PORT ID JSON [send options and paths]
	local port=$1 id=$2 js=$3
	shift 3
	"$SXFER" send --id "$id" --quiet --json --retry-wait 100:400 --receipts "$js.rc" \
		"127.0.0.1:$port" "$@" >"$js"
}
start_proxy() { # MODE EVERY [LIMIT]: sets PPORT
	rm -f "$WORK/pport"
	python3 "$E2E_DIR/cutproxy.py" "$1" "$2" "$PORT" "$WORK/pport" "${3:--1}" >"$WORK/proxy.log" &
	PRX=$!
	PIDS+=("$PRX")
	wait_until 20 "the proxy to listen" test -s "$WORK/pport"
	PPORT=$(cat "$WORK/pport")
}
stop_proxy() {
	kill "$PRX" 2>/dev/null || true
	wait "$PRX" 2>/dev/null || true
	PRX=""
}
held_gone() { [ -z "$(find "$DEV" -name '*.sxheld*' 2>/dev/null)" ]; }
# held_there: a held part exists and no temporary is left (every part of
# the broken connection has been kept).
held_there() { [ -n "$(find "$DEV" -name '*.sxheld-meta' 2>/dev/null)" ] && partials_gone "$OUT"; }
# cut_once FILE: a send of FILE through a link cut after 12 MiB, then the
# server holds its part.
cut_once() {
	start_proxy cut $((12 << 20)) 1
	"$SXFER" send --id "$WORK/cam" --quiet --retry 0 "127.0.0.1:$PPORT" "$1" 2>/dev/null &&
		fail "the cut send of $1 succeeded"
	stop_proxy
	wait_until 30 "the server to hold the cut part of $1" held_there
}
verified() { # FILE: its .sxsig verifies against the CA, signed by cam-01
	"$SXFER" verify --ca "$WORK/ca/ca.pem" --signer cam-01 "$1" >"$WORK/v.out" ||
		{ cat "$WORK/v.out" >&2; fail "$1 does not verify"; }
}

start_server srv --id "$WORK/server" --out "$OUT"
SRV=$SERVER_PID

# ---- a link cut every 64 MiB ---------------------------------------------
rand_file "$WORK/clip.mp4" $((200 << 20))
start_proxy cut $((64 << 20))
expect_exit 6 "$SXFER" send --id "$WORK/cam" --quiet --retry 0 "127.0.0.1:$PPORT" "$WORK/clip.mp4"
wait_until 30 "the server to hold the cut part" held_there
send_to "$PPORT" "$WORK/cam" "$WORK/cut.json" --retry 3 "$WORK/clip.mp4" ||
	fail "send --retry through a link cut every 64 MiB: $(cat "$WORK/cut.json")"
stop_proxy
cmp "$WORK/clip.mp4" "$DEV/clip.mp4" || fail "the resumed clip differs"
verified "$DEV/clip.mp4"
att=$(json_field "$WORK/cut.json" attempts)
res=$(json_field "$WORK/cut.json" bytes_resumed)
wire=$(json_field "$WORK/cut.json" wire_bytes)
[ "$att" -ge 3 ] || fail "only $att attempts through a link cut every 64 MiB"
# Each cut loses what was in flight (socket buffers of both hops, the
# proxy's, records not yet written): up to 16 MiB here; a send that started
# over instead would move 200 MiB per attempt.
[ "$wire" -le $(((200 - 64 + 16 * att) << 20)) ] || fail "$wire bytes on the wire for 136 MiB missing"
[ "$res" -ge $((64 << 20)) ] || fail "resumed only $res bytes"
held_gone || fail "held parts left once the clip was stored"
r=$(ls "$WORK"/cut.json.rc/*.sxreceipt | tail -n 1)
(cd "$DEV" && "$SXFER" verify --receipt "$r" --ca "$WORK/ca/ca.pem" clip.mp4) >"$WORK/r.out" ||
	{ cat "$WORK/r.out" >&2; fail "the receipt does not cover the resumed clip"; }
ok "a link cut every 64 MiB: --retry completes in $att attempts ($wire bytes on the wire, $res resumed); identical, verifies, receipt covers it"

# ---- a stalled link ------------------------------------------------------
rand_file "$WORK/stall.bin" $((24 << 20))
start_proxy stall $((8 << 20)) 1
t0=$(now_ms)
send_to "$PPORT" "$WORK/cam" "$WORK/stall.json" --timeout 2 --retry 2 "$WORK/stall.bin" ||
	fail "a stalled link was not retried: $(cat "$WORK/stall.json")"
stop_proxy
cmp "$WORK/stall.bin" "$DEV/stall.bin" || fail "stall.bin differs"
[ "$(json_field "$WORK/stall.json" attempts)" -eq 2 ] || fail "attempts: $(cat "$WORK/stall.json")"
# The stalled connection breaks only now, after the retry stored the file:
# what it leaves is stale and goes (it once stayed as a held part).
stall_end() { grep -q 'event=held[a-z_]* peer="cam-01" path="stall.bin"' "$WORK/srv.log"; }
wait_until 15 "the stalled connection to end on the server" stall_end
held_gone || fail "the stalled transfer left a held part of a file already stored"
ok "a stall of --timeout counts as a network error: retried and completed in $(($(now_ms) - t0)) ms"

# ---- unsigned, compressed, poll back end, in a folder ---------------------
mkdir -p "$WORK/media/day1"
head -c $((40 << 20)) /dev/zero | tr '\0' 'a' >"$WORK/media/day1/log.txt"
rand_file "$WORK/media/day1/raw.bin" $((40 << 20))
for opts in "--no-sign" "--compress on" "--io poll"; do
	rm -rf "$DEV/media" && sync
	start_proxy cut $((12 << 20)) 1
	# shellcheck disable=SC2086
	"$SXFER" send --id "$WORK/cam" --quiet --retry 0 $opts "127.0.0.1:$PPORT" "$WORK/media" \
		2>/dev/null && fail "$opts: the cut send succeeded"
	stop_proxy
	wait_until 30 "the server to hold the cut part ($opts)" held_there
	# shellcheck disable=SC2086
	send_to "$PORT" "$WORK/cam" "$WORK/m.json" $opts "$WORK/media" ||
		fail "$opts: the resume failed: $(cat "$WORK/m.json")"
	diff -r -x '*.sxsig' "$WORK/media" "$DEV/media" || fail "$opts: media differs"
	[ "$(json_field "$WORK/m.json" files_resumed)" -ge 1 ] || fail "$opts: nothing resumed: $(cat "$WORK/m.json")"
	[ "$opts" = --no-sign ] || verified "$DEV/media/day1/raw.bin"
	held_gone || {
		find "$DEV" -name '*.sxheld*' -printf '%p %s %TT\n' >&2
		grep -E 'held|resume|file_stored' "$WORK/srv.log" | tail -20 >&2
		fail "$opts: held parts left"
	}
done
ok "resume unsigned, compressed and with --io poll, for files in a folder"

# ---- the source changed between attempts ----------------------------------
rand_file "$WORK/edit.bin" $((24 << 20))
cut_once "$WORK/edit.bin"
flip_byte "$WORK/edit.bin" 1000
send_to "$PORT" "$WORK/cam" "$WORK/e.json" "$WORK/edit.bin" || fail "changed source: $(cat "$WORK/e.json")"
cmp "$WORK/edit.bin" "$DEV/edit.bin" || fail "a changed source ended different"
verified "$DEV/edit.bin"
[ "$(json_field "$WORK/e.json" bytes_resumed)" -eq 0 ] || fail "a changed source resumed"
held_gone || fail "the stale held part was left"
ok "a source changed between attempts starts over and ends correct"

# ---- another identity gets no offer ------------------------------------------
rand_file "$WORK/shared.bin" $((24 << 20))
cut_once "$WORK/shared.bin"
send_to "$PORT" "$WORK/cam2" "$WORK/o.json" "$WORK/shared.bin" || fail "cam-02: $(cat "$WORK/o.json")"
[ "$(json_field "$WORK/o.json" bytes_resumed)" -eq 0 ] || fail "cam-02 was offered cam-01's part"
cmp "$WORK/shared.bin" "$OUT/cam-02/shared.bin" || fail "cam-02's copy differs"
held_there || fail "cam-01's held part went when cam-02 sent the same path"
send_to "$PORT" "$WORK/cam" "$WORK/o1.json" "$WORK/shared.bin" || fail "cam-01 resume"
[ "$(json_field "$WORK/o1.json" bytes_resumed)" -gt 0 ] || fail "cam-01 did not resume its own part"
ok "another identity sending the same path gets no offer; the owner still resumes"

# ---- a folder re-sent with one new file; a changed file is refused ---------
mkdir -p "$WORK/photos"
for i in $(seq 1 30); do rand_file "$WORK/photos/p$i.jpg" $((100000 + i)); done
send_to "$PORT" "$WORK/cam" "$WORK/f1.json" "$WORK/photos" || fail "first photos send"
rand_file "$WORK/photos/p31.jpg" 4242
send_to "$PORT" "$WORK/cam" "$WORK/f2.json" "$WORK/photos" || fail "re-send with one new file: $(cat "$WORK/f2.json")"
[ "$(json_field "$WORK/f2.json" files_same)" -eq 30 ] || fail "already there: $(cat "$WORK/f2.json")"
[ "$(json_field "$WORK/f2.json" wire_bytes)" -le 4242 ] || fail "data sent for files already there"
r=$(ls "$WORK"/f2.json.rc/*.sxreceipt)
[ "$(echo "$r" | wc -l)" -eq 1 ] || fail "receipts of the re-send: $r"
(cd "$DEV" && "$SXFER" verify --receipt "$r" --ca "$WORK/ca/ca.pem" photos/p*.jpg) >"$WORK/r.out" ||
	{ cat "$WORK/r.out" >&2; fail "the re-send's receipt does not cover all 31 photos"; }
flip_byte "$WORK/photos/p3.jpg" 10
rand_file "$WORK/photos/p32.jpg" 777
expect_exit 5 send_to "$PORT" "$WORK/cam" "$WORK/f3.json" "$WORK/photos"
grep -q "p3.jpg" "$WORK/last.err" || fail "the refusal does not name p3.jpg: $(cat "$WORK/last.err")"
[ "$(json_field "$WORK/f3.json" wire_bytes)" -le 777 ] || fail "the changed file's data was sent"
cmp "$WORK/photos/p32.jpg" "$DEV/photos/p32.jpg" || fail "p32 was not stored beside the refusal"
ok "a folder re-sent: already there counted (exit 0, in the receipt); a changed file refused before its data (exit 5), the rest stored"

# ---- a NAME.sxsig is no proof of NAME's content -------------------------------
# A genuine .sxsig of content A, uploaded unsigned as data beside a file of
# other content B of the same size: a signed send of A must not be taken
# as already there (the receiver compares the bytes it holds).
mkdir -p "$WORK/forge/real" "$WORK/forge/evil/v"
rand_file "$WORK/forge/real/v.bin" 300000
send_to "$PORT" "$WORK/cam" "$WORK/g1.json" "$WORK/forge/real" || fail "forge: the genuine send"
rand_file "$WORK/forge/evil/v/v.bin" 300000
cp "$DEV/real/v.bin.sxsig" "$WORK/forge/evil/v/v.bin.sxsig"
send_to "$PORT" "$WORK/cam" "$WORK/g2.json" --no-sign "$WORK/forge/evil/v" ||
	fail "forge: the unsigned upload"
mkdir -p "$WORK/forge/again/v" && cp "$WORK/forge/real/v.bin" "$WORK/forge/again/v/v.bin"
expect_exit 5 send_to "$PORT" "$WORK/cam" "$WORK/g3.json" "$WORK/forge/again/v"
grep -q 'other content' "$WORK/last.err" || fail "forge: $(cat "$WORK/last.err")"
[ "$(json_field "$WORK/g3.json" files_same)" -eq 0 ] || fail "forge: taken as already there"
cmp -s "$WORK/forge/evil/v/v.bin" "$DEV/v/v.bin" || fail "forge: the stored file changed"
ok "a NAME.sxsig uploaded as data beside other content does not make a file already there"

# ---- --partial-ttl -----------------------------------------------------------
stop_server "$SRV"
start_server ttl --id "$WORK/server" --out "$OUT" --partial-ttl 2s
SRV=$SERVER_PID
rand_file "$WORK/old.bin" $((24 << 20))
cut_once "$WORK/old.bin"
sleep 3 # older than --partial-ttl
send_to "$PORT" "$WORK/cam" "$WORK/t.json" "$WORK/old.bin" || fail "after expiry: $(cat "$WORK/t.json")"
[ "$(json_field "$WORK/t.json" bytes_resumed)" -eq 0 ] || fail "an expired part was offered"
[ "$(log_count "$WORK/ttl.log" 'event=held_expired')" -ge 1 ] || fail "the expiry was not logged"
cmp "$WORK/old.bin" "$DEV/old.bin" || fail "old.bin differs"
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$OUT" --partial-ttl 0
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$OUT" --partial-ttl 3w
stop_server "$SRV"
"$SXFER" ledger check --ledger "$WORK/out.ledger.sqlite" --out "$OUT" >"$WORK/check.txt" ||
	fail "ledger check: $(cat "$WORK/check.txt")"
ok "--partial-ttl: an expired part is removed, logged and not offered; bad durations are exit 2; the ledger agrees"
