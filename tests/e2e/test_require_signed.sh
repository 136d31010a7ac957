#!/usr/bin/env bash
# serve --require-signed: a sender that does not sign (send --no-sign) is
# refused with exit 3 and a reason that names the policy; a signing sender
# is served as before; without the option unsigned sessions still work.
source "$(dirname "$0")/lib.sh"
make_pki
start_server strict --id "$WORK/server" --out "$WORK/out" --require-signed
STRICT=$SERVER_PID
send() { "$SXFER" send --id "$WORK/cam" --quiet --receipts "$WORK/receipts" "$@"; }

rand_file "$WORK/plain.bin" 100000
expect_exit 3 send "127.0.0.1:$PORT" --no-sign "$WORK/plain.bin"
grep -q 'signed sessions only' "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "no reason"; }
[ ! -e "$WORK/out/cam-01/plain.bin" ] || fail "an unsigned file was stored"
no_partials "$WORK/out"
grep -q 'signed sessions only' "$WORK/strict.log" || fail "the server did not log the refusal"
ok "--require-signed: send --no-sign exits 3, nothing stored, the reason on both sides"

expect_exit 3 send "127.0.0.1:$PORT" --no-sign "$WORK/plain.bin" --json
grep -q '"exit":3,"message":"[^"]*signed sessions only' "$WORK/last.out" ||
	{ cat "$WORK/last.out" >&2; fail "--json carries no reason"; }
ok "--require-signed: the refusal in --json"

send "127.0.0.1:$PORT" "$WORK/plain.bin" --json >"$WORK/signed.json"
grep -q '"signed":true' "$WORK/signed.json" || fail "not signed: $(cat "$WORK/signed.json")"
cmp "$WORK/plain.bin" "$WORK/out/cam-01/plain.bin"
[ -e "$WORK/out/cam-01/plain.bin.sxsig" ] || fail "no .sxsig"
ok "--require-signed: a signed session is stored with its signature"
stop_server "$STRICT"

start_server open --id "$WORK/server" --out "$WORK/out2"
send "127.0.0.1:$PORT" --no-sign "$WORK/plain.bin"
cmp "$WORK/plain.bin" "$WORK/out2/cam-01/plain.bin"
ok "without --require-signed an unsigned session is served"
