#!/usr/bin/env bash
# What a chat transcript proves, through the real binary: alice and bob talk
# in a room; the three transcripts verify; a message edited, removed or
# reordered in a copy is found (exit 4, the line named); a certificate
# revoked since is a certificate problem (exit 3); a revoked device cannot
# join; a message sent again with the same sequence number is refused by
# the server with its reason.
source "$(dirname "$0")/chat_lib.sh"

make_pki
chat_ids alice bob eve
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/server/crl.pem" >/dev/null
cp "$WORK/server/crl.pem" "$WORK/crl0.pem"

start_server ev --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$WORK/hub"

# 1. A room: bob joins and waits for four lines; alice joins and sends them.
chat bob --room ops --count 4 --transcript "$WORK/bob.jsonl" </dev/null >"$WORK/bob.out" \
	2>"$WORK/bob.err" &
bpid=$!
joined() { [ "$(log_count "$WORK/ev.log" 'chat_open.*bob')" -ge 1 ]; }
wait_until 20 "bob in the room" joined
printf 'one\ntwo\nthree\nfour\n' | chat alice --room ops --transcript "$WORK/alice.jsonl" \
	>/dev/null 2>"$WORK/alice.err" || { cat "$WORK/alice.err" >&2; fail "alice failed"; }
wait "$bpid" || { cat "$WORK/bob.err" >&2; fail "bob failed"; }
grep -q '#ops alice: four$' "$WORK/bob.out" || fail "bob did not get the room's lines"
for t in alice bob; do verify_exit 0 "$WORK/$t.jsonl" --crl "$WORK/crl0.pem"; done
ok "a room: both transcripts verify"

# 2. Copies of bob's transcript, each changed once.
tr=$WORK/bob.jsonl
msg_lines=($(grep -n '"type":"msg"' "$tr" | cut -d: -f1))
[ "${#msg_lines[@]}" -eq 4 ] || fail "bob's transcript holds ${#msg_lines[@]} messages, not 4"
second=${msg_lines[1]}
third=${msg_lines[2]}
sed "${second}s/\"text\":\"two\"/\"text\":\"TWO\"/" "$tr" >"$WORK/edited.jsonl"
verify_exit 4 "$WORK/edited.jsonl"
grep -q "line $second: " "$WORK/last.out" || fail "the edit is not named: $(cat "$WORK/last.out")"
sed "${second}d" "$tr" >"$WORK/removed.jsonl"
verify_exit 4 "$WORK/removed.jsonl"
grep -q "line $second: .*missing" "$WORK/last.out" ||
	fail "the removal is not named: $(cat "$WORK/last.out")"
sed -n "1,$((second - 1))p" "$tr" >"$WORK/swapped.jsonl"
sed -n "${third}p" "$tr" >>"$WORK/swapped.jsonl"
sed -n "${second}p" "$tr" >>"$WORK/swapped.jsonl"
sed -n "$((third + 1)),\$p" "$tr" >>"$WORK/swapped.jsonl"
verify_exit 4 "$WORK/swapped.jsonl"
grep -q "line $second: " "$WORK/last.out" || fail "the swap is not named: $(cat "$WORK/last.out")"
head -c -1 "$tr" >"$WORK/cut.jsonl"
verify_exit 4 "$WORK/cut.jsonl"
grep -q "cut" "$WORK/last.out" || fail "a cut line is not named"
ok "an edited, removed, reordered or cut line is named (exit 4)"

# 3. alice revoked afterwards: her messages' certificate is refused (exit 3).
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/alice/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-alice.pem" >/dev/null
verify_exit 3 "$tr" --crl "$WORK/crl-alice.pem"
grep -q "revoked" "$WORK/last.out" || fail "no revocation reason: $(cat "$WORK/last.out")"
ok "a transcript whose author is revoked since is a certificate problem (exit 3)"

# 4. A revoked device cannot join.
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/eve/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-eve.pem" >/dev/null
cp "$WORK/crl-eve.pem" "$WORK/server/crl.pem.new"
mv "$WORK/server/crl.pem.new" "$WORK/server/crl.pem"
eve_refused() {
	local rc=0
	echo hi | chat eve --room ops --transcript "$WORK/eve.jsonl" >/dev/null \
		2>"$WORK/eve.err" || rc=$?
	[ "$rc" -eq 3 ]
}
wait_until 20 "eve refused" eve_refused
grep -qi "revoked" "$WORK/eve.err" || fail "eve's refusal does not say revoked: $(cat "$WORK/eve.err")"
ok "a revoked device cannot join (exit 3)"

# 4b. A device revoked while it is connected is ended with the reason.
chat_ids frank
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-f0.pem" >/dev/null
cp "$WORK/crl-f0.pem" "$WORK/server/crl.pem.new"
mv "$WORK/server/crl.pem.new" "$WORK/server/crl.pem"
frank_joined() { [ "$(log_count "$WORK/ev.log" 'chat_open.*frank')" -ge 1 ]; }
frank_in() {
	local rc=0
	chat frank --room ops --wait 30 --transcript "$WORK/frank.jsonl" </dev/null >/dev/null \
		2>"$WORK/frank.err" || rc=$?
	echo "$rc" >"$WORK/frank.rc"
}
frank_in &
fpid=$!
wait_until 20 "frank in the room" frank_joined
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/frank/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-f.pem" >/dev/null
cp "$WORK/crl-f.pem" "$WORK/server/crl.pem.new"
mv "$WORK/server/crl.pem.new" "$WORK/server/crl.pem"
wait "$fpid"
[ "$(cat "$WORK/frank.rc")" -eq 3 ] || { cat "$WORK/frank.err" >&2; fail "frank: exit $(cat "$WORK/frank.rc"), not 3"; }
grep -q "revokes this identity" "$WORK/frank.err" || fail "frank not told why: $(cat "$WORK/frank.err")"
[ "$(log_count "$WORK/ev.log" 'chat_revoked.*frank')" -ge 1 ] || fail "the revocation not logged"
ok "a device revoked while connected is ended with the reason (exit 3)"

# 5. The same message sent twice (same seq): the server refuses it.
if grep -qaF SXFER_TEST_CHAT_REPLAY "$SXFER"; then
	rc=0
	echo "only once" | SXFER_TEST_CHAT_REPLAY=1 chat bob --to alice \
		--transcript "$WORK/bob2.jsonl" >/dev/null 2>"$WORK/bob2.err" || rc=$?
	[ "$rc" -eq 1 ] || { cat "$WORK/bob2.err" >&2; fail "replay: exit $rc, not 1"; }
	grep -q 'refused (replay)' "$WORK/bob2.err" || fail "no replay refusal: $(cat "$WORK/bob2.err")"
	[ "$(log_count "$WORK/ev.log" 'chat_refused.*replay')" -ge 1 ] || fail "replay not logged"
	"$SXFER" verify --transcript "$WORK/bob2.jsonl" --ca "$WORK/ca" >/dev/null ||
		fail "bob's transcript after the refused replay does not verify"
	ok "a replayed message is refused by the server"
fi
stop_server "$SERVER_PID"
# (with the CRL of the start: alice is revoked since)
verify_exit 0 "$WORK/hub/transcript.jsonl" --crl "$WORK/crl0.pem"
ok "the server's transcript verifies"
