#!/usr/bin/env bash
# sxfer bench fleet and sxfer bench handshakes against a real `sxfer serve`:
# a small fleet from one process (identities issued in memory, then into
# folders and reused), every stored file checked against its device's
# content; a fleet that cannot connect fails with its errors; handshakes
# counted, X25519 negotiated, and --hold keeping authenticated connections.
# Behaviour only: no figure is asserted.
. "$(dirname "$0")/lib.sh"
sx=$SXFER
# Plain keys (no scrypt): the CA opens at once for each fleet that issues.
"$sx" ca init --ca "$WORK/ca" --name "fleet CA" --no-passphrase >/dev/null 2>&1
"$sx" ca issue --ca "$WORK/ca" --name server.test --role server --dns localhost \
	--ip 127.0.0.1 --out "$WORK/server" --no-passphrase >/dev/null 2>&1
"$sx" ca issue --ca "$WORK/ca" --name cam-01 --role client --out "$WORK/cam" \
	--no-passphrase >/dev/null 2>&1
start_server fleet --id "$WORK/server" --out "$WORK/out" --no-ledger --threads 1 \
	--max-conns 64 --max-handshakes-per-addr 32
SRV=$SERVER_PID
export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"

expect_exit 0 "$sx" bench fleet --help
grep -q "^usage: sxfer bench fleet" "$WORK/last.out" || fail "no fleet usage"
expect_exit 0 "$sx" bench handshakes --help
grep -q "^usage: sxfer bench handshakes" "$WORK/last.out" || fail "no handshakes usage"
expect_exit 0 "$sx" bench --help
grep -qE "^  fleet " "$WORK/last.out" || fail "bench --help does not list fleet"
ok "--help of both, listed by bench --help"

# 20 devices x 256K, identities in memory, each its own content
expect_exit 0 "$sx" bench fleet --ca "$WORK/ca" --devices 20 --size 256K --data "$WORK/data" \
	--json "127.0.0.1:$PORT"
python3 - "$WORK/last.out" <<'PY' || { cat "$WORK/last.out" >&2; fail "fleet JSON"; }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "ok" and d["devices"] == 20 and d["ok"] == 20 and d["failed"] == 0, d
assert d["bytes"] == 20 * 256 * 1024 and d["signed"] is True and d["issued"] == 20, d
assert d["first_data_ms"]["n"] == 20 and d["total_s"]["n"] == 20, d
assert d["wall_s"] > 0 and d["mib_per_s"] > 0, d
PY
for i in $(seq -f '%04g' 1 20); do
	cmp -s "$WORK/data/dev-$i.bin" "$WORK/out/dev-$i/dev-$i.bin" || fail "dev-$i: stored copy differs"
	[ -f "$WORK/out/dev-$i/dev-$i.bin.sxsig" ] || fail "dev-$i: no .sxsig"
done
cmp -s "$WORK/data/dev-0001.bin" "$WORK/data/dev-0002.bin" && fail "two devices sent the same content"
# device 1's content is the documented keystream
head -c 262144 /dev/zero | openssl enc -aes-128-ctr -K 73786665722d666c6565742d00000001 \
	-iv 00000000000000000000000000000000 | cmp -s - "$WORK/data/dev-0001.bin" ||
	fail "dev-0001's content is not the documented keystream"
[ -z "$(ls -A "$TMPDIR")" ] || fail "temporary folder left behind"
ok "20 devices x 256K from one process: all stored, each its own content, verified"

# identities into folders: issued by the first run, reused by the next
rm -rf "$WORK"/out/dev-*
expect_exit 0 "$sx" bench fleet --ca "$WORK/ca" --ids "$WORK/ids" --devices 3 --size 64K \
	--data "$WORK/data3" --no-sign --concurrency 2 --io poll --json "127.0.0.1:$PORT"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] == 3 and d["issued"] == 3 and not d["signed"] and d["concurrency"] == 2, d' \
	<"$WORK/last.out" || fail "first --ids run"
[ -f "$WORK/ids/dev-0003/key.pem" ] || fail "no identity folder"
"$sx" ca list --ca "$WORK/ca" | grep -q ' dev-0003$' || fail "dev-0003 not in the CA's index"
rm -rf "$WORK"/out/dev-*
expect_exit 0 "$sx" bench fleet --ids "$WORK/ids" --devices 3 --size 64K --data "$WORK/data3" \
	--json "127.0.0.1:$PORT"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] == 3 and d["issued"] == 0, d' \
	<"$WORK/last.out" || fail "second --ids run"
expect_exit 0 "$sx" bench fleet --prepare --ids "$WORK/ids" --devices 3 --size 64K \
	--data "$WORK/data3"
grep -q "3 identities ready (0 issued now)" "$WORK/last.out" || fail "--prepare"
ok "--ids: issued once into folders (recorded by the CA), reused; --prepare"

# a fleet that cannot connect: non-zero, the errors named
"$sx" bench fleet --ca "$WORK/ca" --devices 3 --size 4K --input "$WORK/data3/dev-0001.bin" \
	--timeout 5 "127.0.0.1:1" >"$WORK/bad.out" 2>"$WORK/bad.err" && fail "a failed fleet exited 0"
grep -q "devices failed  *3" "$WORK/bad.out" || { cat "$WORK/bad.out" >&2; fail "failures not counted"; }
grep -q "dev-0001: .*cannot connect" "$WORK/bad.out" || fail "no error for dev-0001"
grep -q "3 of 3 devices failed" "$WORK/bad.err" || fail "no summary of the failure"
ok "a fleet that cannot connect: exit non-zero, first errors listed"

# handshakes against sxfer serve (its ALPN)
expect_exit 0 "$sx" bench handshakes --id "$WORK/cam" --alpn sxfer/1 --count 20 --concurrency 4 \
	--json "127.0.0.1:$PORT"
python3 - "$WORK/last.out" <<'PY' || { cat "$WORK/last.out" >&2; fail "handshakes JSON"; }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "ok" and d["ok"] == 20 and d["failed"] == 0, d
assert d["version"] == "TLSv1.3" and d["group"].lower() == "x25519", d
assert d["per_s"] > 0, d
PY
ok "20 handshakes against sxfer serve, TLS 1.3 with X25519"

# without its ALPN, sxfer serve refuses every handshake
expect_exit 6 "$sx" bench handshakes --id "$WORK/cam" --count 2 --concurrency 1 "127.0.0.1:$PORT"
grep -q "2 of 2 handshakes failed" "$WORK/last.err" || fail "no failure summary"
ok "no ALPN: refused, exit non-zero"

# --hold: authenticated connections (HELLO sent), kept until SIGTERM
hs_before=$(log_count "$WORK/fleet.log" "event=handshake ")
"$sx" bench handshakes --id "$WORK/cam" --alpn sxfer/1 --count 5 --concurrency 5 --hold \
	"127.0.0.1:$PORT" >"$WORK/hold.out" 2>"$WORK/hold.err" &
HOLD=$!
held() { grep -q '^held 5$' "$WORK/hold.out"; }
wait_until 20 "5 held connections" held
all_ready() { [ "$(log_count "$WORK/fleet.log" "event=handshake ")" -ge $((hs_before + 5)) ]; }
wait_until 20 "the server to take the 5 held connections as authenticated" all_ready
kill -0 "$SRV" || fail "server exited"
kill -TERM "$HOLD"
rc=0
wait "$HOLD" || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/hold.err" >&2; fail "--hold exited $rc after SIGTERM"; }
ok "--hold: 5 connections authenticated by the server and held until SIGTERM"

expect_exit 2 "$sx" bench fleet --devices 2 "127.0.0.1:$PORT"
grep -q -- "--ca DIR or --ids DIR" "$WORK/last.err" || fail "no reason for a fleet without identities"
expect_exit 2 "$sx" bench fleet --ca "$WORK/ca" --devices 0 "127.0.0.1:$PORT"
expect_exit 2 "$sx" bench fleet --ca "$WORK/ca" nothost
expect_exit 2 "$sx" bench handshakes --count 3 "127.0.0.1:$PORT"
expect_exit 2 "$sx" bench handshakes --id "$WORK/cam" --count 0 "127.0.0.1:$PORT"
ok "usage errors exit 2"
stop_server "$SRV"
