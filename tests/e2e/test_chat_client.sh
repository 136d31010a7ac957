#!/usr/bin/env bash
# sxfer chat against a relay that lies in ways a signature check alone does
# not catch: a NOTICE head that hides a dropped message of a direct
# conversation, messages of conversations the client is not in; and what
# the client refuses before it signs (a line with NUL or invalid UTF-8);
# SIGTERM while a server never answers.
source "$(dirname "$0")/chat_lib.sh"

make_pki
chat_ids alice bob carol

# 1. The relay drops alice's second message to bob and tells bob, as it
# tells a room's newcomer, that the chain goes on from it: bob must not take
# a head for a direct conversation (it would skip a message without a gap).
SXFER_TEST_HOSTILE_CHAT=skiphead:2 start_server head --id "$WORK/server" --out "$WORK/out" \
	--chat --chat-dir "$WORK/hub1"
printf 'one\ntwo\nthree\n' | chat alice --to bob --transcript "$WORK/a1.jsonl" \
	>/dev/null 2>"$WORK/a1.err" || { cat "$WORK/a1.err" >&2; fail "alice failed"; }
rc=0
chat bob --count 2 --transcript "$WORK/b1.jsonl" </dev/null >"$WORK/b1.out" 2>"$WORK/b1.err" ||
	rc=$?
[ "$rc" -eq 4 ] || { cat "$WORK/b1.err" >&2; fail "bob: exit $rc, not 4 (a head in @alice,bob)"; }
grep -q '@alice,bob' "$WORK/b1.err" || fail "the reason names no conversation: $(cat "$WORK/b1.err")"
! grep -q '"type":"head"' "$WORK/b1.jsonl" || fail "bob kept the relay's head"
! grep -q 'three' "$WORK/b1.out" || fail "bob showed what came after the hidden message"
verify_tr "$WORK/b1.jsonl"
stop_server "$SERVER_PID"
ok "a NOTICE head in a direct conversation is refused (exit 4), nothing of it kept"

# 2. A relay that sends carol alice's message to bob: carol is not in
# @alice,bob; she shows and keeps nothing of it.
SXFER_TEST_HOSTILE_CHAT=leak:1 start_server leak --id "$WORK/server" --out "$WORK/out" \
	--chat --chat-dir "$WORK/hub2"
chat carol --count 1 --transcript "$WORK/c2.jsonl" </dev/null >"$WORK/c2.out" \
	2>"$WORK/c2.err" &
cpid=$!
carol_in() { [ "$(log_count "$WORK/leak.log" 'chat_open.*carol')" -ge 1 ]; }
wait_until 20 "carol to join" carol_in
printf 'for bob only\n' | chat alice --to bob --transcript "$WORK/a2.jsonl" >/dev/null \
	2>"$WORK/a2.err" || { cat "$WORK/a2.err" >&2; fail "alice (leak) failed"; }
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 4 ] || { cat "$WORK/c2.err" >&2; fail "carol: exit $rc, not 4"; }
! grep -q 'for bob only' "$WORK/c2.out" "$WORK/c2.jsonl" || fail "carol showed or kept it"
verify_tr "$WORK/c2.jsonl"
stop_server "$SERVER_PID"
ok "a message of a conversation the client is not in is refused, not shown or kept"

# 3. Lines that are not UTF-8 without NUL are refused before they are
# signed (local), the others go, a last line without its newline too.
start_server plain --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$WORK/hub3"
rc=0
printf 'fine\nnul \000 here\nbad \377 byte\nlast' |
	chat alice --to bob --json --transcript "$WORK/a3.jsonl" >"$WORK/a3.out" \
		2>"$WORK/a3.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/a3.err" >&2; fail "alice: exit $rc, not 1"; }
python3 - "$WORK/a3.out" <<'EOF' || fail "alice's --json output: $(cat "$WORK/a3.out")"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
refused = [o for o in objs if o["type"] == "refused"]
assert len(refused) == 2 and all(o["local"] for o in refused), refused
assert all("UTF-8" in o["reason"] for o in refused), refused
end = objs[-1]
assert end["type"] == "end" and end["posted"] == 2 and end["refused"] == 2, end
EOF
[ "$(log_count "$WORK/plain.log" 'why=bad')" -eq 0 ] || fail "the server saw the bad lines"
stop_server "$SERVER_PID"
ok "NUL and invalid UTF-8 refused locally; a last line without newline posted"

# 4. SIGTERM while the server accepts the connection and never answers:
# the client ends (exit 6) instead of waiting out its --timeout.
python3 - "$WORK/mute.port" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
c, _ = s.accept()
open(sys.argv[1] + ".accepted", "w").close()
time.sleep(120)
EOF
mpid=$!
PIDS+=("$mpid")
wait_until 20 "the mute server" test -s "$WORK/mute.port"
# (not under timeout(1): it sends the signal again, to its whole process
# group, and one that comes after the session has ended kills sxfer; PIDS
# ends it, wait_until bounds the wait)
"$SXFER" chat --id "$WORK/alice" --timeout 600 --to bob \
	--transcript "$WORK/a4.jsonl" "127.0.0.1:$(cat "$WORK/mute.port")" </dev/null \
	>/dev/null 2>"$WORK/a4.err" &
apid=$!
PIDS+=("$apid")
wait_until 20 "alice to connect" test -e "$WORK/mute.port.accepted"
kill -TERM "$apid"
wait_until 20 "alice to end" eval '! kill -0 "$apid" 2>/dev/null'
rc=0
wait "$apid" || rc=$?
[ "$rc" -eq 6 ] || { cat "$WORK/a4.err" >&2; fail "alice: exit $rc after SIGTERM, not 6"; }
grep -q 'interrupted' "$WORK/a4.err" || fail "no reason: $(cat "$WORK/a4.err")"
ok "SIGTERM before the server answers ends the client (exit 6)"

# 5. A server that never answers a POST: the first SIGTERM ends the session
# once the answer comes; a second one ends it now (exit 6).
SXFER_TEST_HOSTILE_CHAT=mute:1 start_server mute --id "$WORK/server" --out "$WORK/out" \
	--chat --chat-dir "$WORK/hub5"
printf 'no answer\n' >"$WORK/a5.in"
# (not under timeout(1), which takes the signals itself; PIDS ends it)
"$SXFER" chat --id "$WORK/alice" --to bob --transcript "$WORK/a5.jsonl" \
	"127.0.0.1:$PORT" <"$WORK/a5.in" >/dev/null 2>"$WORK/a5.err" &
apid=$!
PIDS+=("$apid")
kept() { grep -q 'no answer' "$WORK/hub5/transcript.jsonl" 2>/dev/null; }
wait_until 20 "the server to keep the message" kept
kill -TERM "$apid"
signalled() { [ "$(log_count "$WORK/a5.err" 'chat_signal')" -ge 1 ]; }
wait_until 20 "alice to take the first SIGTERM" signalled
kill -TERM "$apid"
wait_until 20 "alice to end" eval '! kill -0 "$apid" 2>/dev/null'
rc=0
wait "$apid" || rc=$?
[ "$rc" -eq 6 ] || { cat "$WORK/a5.err" >&2; fail "alice: exit $rc after two SIGTERMs, not 6"; }
! grep -q 'no answer' "$WORK/a5.jsonl" || fail "alice kept a message never accepted"
ok "a second SIGTERM ends a session whose message has no answer (exit 6)"

# 6. Without a signal, --timeout bounds the wait for a message's answer.
stop_server "$SERVER_PID"
SXFER_TEST_HOSTILE_CHAT=mute:1 start_server mute6 --id "$WORK/server" --out "$WORK/out" \
	--chat --chat-dir "$WORK/hub6"
rc=0
echo "no answer either" | timeout 60 "$SXFER" chat --id "$WORK/alice" --to bob --timeout 2 \
	--transcript "$WORK/a6.jsonl" "127.0.0.1:$PORT" >/dev/null 2>"$WORK/a6.err" || rc=$?
[ "$rc" -eq 6 ] || { cat "$WORK/a6.err" >&2; fail "alice: exit $rc without an answer, not 6"; }
grep -q 'no answer to message 1 of @alice,bob in 2000 ms' "$WORK/a6.err" ||
	fail "no timeout reason: $(cat "$WORK/a6.err")"
ok "a message without an answer ends the session after --timeout (exit 6)"
