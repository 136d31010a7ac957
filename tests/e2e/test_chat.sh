#!/usr/bin/env bash
# sxfer chat through sxfer serve --chat: two devices talk over each I/O
# backend (both sides), their transcripts and the server's verify; a
# recipient that was offline gets what waited for it; a line longer than
# the server takes is refused with its reason while the rest goes on; a
# relay that drops, alters, replays or reorders a message is caught by the
# recipient (exit 4, naming the conversation), which keeps nothing of it.
# Driven by pipes, --count and --wait: no sleeps.
source "$(dirname "$0")/chat_lib.sh"

make_pki
chat_ids alice bob carol

# 1. Two devices, each sending two lines and waiting for the other's two,
# on each backend (server and both clients).
for io in uring poll; do
	start_server "chat-$io" --id "$WORK/server" --out "$WORK/out-$io" --io "$io" \
		--chat --chat-dir "$WORK/hub-$io"
	printf 'hello from bob\nsecond from bob\n' |
		chat bob --io "$io" --to alice --count 2 --transcript "$WORK/bob-$io.jsonl" \
			>"$WORK/bob-$io.out" 2>"$WORK/bob-$io.err" &
	bpid=$!
	printf 'hello from alice\n\nsecond from alice\n' |
		chat alice --io "$io" --to bob --count 2 --transcript "$WORK/alice-$io.jsonl" \
			>"$WORK/alice-$io.out" 2>"$WORK/alice-$io.err" || {
		cat "$WORK/alice-$io.err" >&2
		fail "alice ($io) failed"
	}
	wait "$bpid" || { cat "$WORK/bob-$io.err" >&2; fail "bob ($io) failed"; }
	grep -q ' @alice,bob bob: hello from bob$' "$WORK/alice-$io.out" ||
		fail "alice ($io) did not show bob's message: $(cat "$WORK/alice-$io.out")"
	grep -q ' @alice,bob alice: second from alice$' "$WORK/bob-$io.out" ||
		fail "bob ($io) did not show alice's message: $(cat "$WORK/bob-$io.out")"
	[ "$(wc -l <"$WORK/bob-$io.out")" -eq 2 ] || fail "bob ($io): not two lines"
	stop_server "$SERVER_PID"
	for t in "$WORK/alice-$io.jsonl" "$WORK/bob-$io.jsonl" "$WORK/hub-$io/transcript.jsonl"; do
		verify_tr "$t"
	done
	ok "alice and bob chat over $io; the three transcripts verify"
done

# One server for the rest, with a small text limit; from here each identity
# keeps one transcript, as it would by default (a receipt of a conversation
# is checked against all its holder has of it).
start_server chat --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$WORK/hub" \
	--chat-max-text 100

# 2. carol is offline: alice's messages wait on the server, then reach her.
printf 'while you were out\nand another\n' |
	chat alice --to carol --transcript "$WORK/t-alice.jsonl" >/dev/null 2>"$WORK/a2.err" ||
	{ cat "$WORK/a2.err" >&2; fail "alice to offline carol failed"; }
chat carol --count 2 --json --transcript "$WORK/t-carol.jsonl" </dev/null >"$WORK/carol.out" \
	2>"$WORK/carol.err" || { cat "$WORK/carol.err" >&2; fail "carol failed"; }
python3 - "$WORK/carol.out" <<'EOF' || fail "carol's --json output: $(cat "$WORK/carol.out")"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
texts = [json.dumps(o) for o in objs]
assert any("while you were out" in t for t in texts), texts
assert any("and another" in t for t in texts), texts
assert objs[-1].get("type") == "end" and objs[-1].get("exit") == 0, objs[-1]
assert objs[-1].get("received") == 2, objs[-1]
EOF
verify_tr "$WORK/t-carol.jsonl"
# A second session on carol's transcript reads it back through the verifier.
chat carol --transcript "$WORK/t-carol.jsonl" </dev/null >/dev/null 2>"$WORK/carol2.err" ||
	{ cat "$WORK/carol2.err" >&2; fail "carol's second session failed"; }
verify_tr "$WORK/t-carol.jsonl"
ok "queued for an offline recipient, delivered on connect, still signed"

# 3. A line over the server's limit is refused locally with the reason; the
# next line still goes, and bob gets it.
long=$(printf 'x%.0s' $(seq 1 150))
chat bob --to alice --count 1 --transcript "$WORK/t-bob.jsonl" </dev/null >"$WORK/b3.out" \
	2>"$WORK/b3.err" &
bpid=$!
rc=0
printf '%s\nshort one\n' "$long" | chat alice --to bob --transcript "$WORK/t-alice.jsonl" \
	>/dev/null 2>"$WORK/a3.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/a3.err" >&2; fail "alice: exit $rc, not 1 (a line refused)"; }
grep -q 'refused (too_big)' "$WORK/a3.err" || fail "no too_big reason: $(cat "$WORK/a3.err")"
grep -q '150 bytes; this server takes at most 100' "$WORK/a3.err" ||
	fail "the reason does not say the sizes: $(cat "$WORK/a3.err")"
wait "$bpid" || { cat "$WORK/b3.err" >&2; fail "bob (limit) failed"; }
grep -q 'alice: short one$' "$WORK/b3.out" || fail "bob did not get the short line"
ok "a line over --chat-max-text is refused with its reason; the chat goes on"

# 4. A second process on the same transcript is refused.
# (not through chat(): the signal goes to sxfer itself)
"$SXFER" chat --id "$WORK/bob" "127.0.0.1:$PORT" --to alice --wait 30 \
	--transcript "$WORK/t-bob.jsonl" </dev/null >/dev/null 2>"$WORK/b4.err" &
bpid=$!
PIDS+=("$bpid")
wait_until 20 "bob's session" grep -q 'event=chat_joined' "$WORK/b4.err"
expect_exit 5 chat bob --to alice --transcript "$WORK/t-bob.jsonl" </dev/null
grep -q 'in use by another sxfer chat/serve' "$WORK/last.err" || fail "no in-use reason"
kill -TERM "$bpid"
wait "$bpid" || { cat "$WORK/b4.err" >&2; fail "bob did not end cleanly on SIGTERM"; }
for n in alice bob carol; do verify_tr "$WORK/t-$n.jsonl"; done
verify_tr "$WORK/hub/transcript.jsonl"
ok "one session per transcript; SIGTERM ends a session as the end of input does"
stop_server "$SERVER_PID"

# 5. A hostile relay: the recipient catches each misdeed.
if ! grep -qaF SXFER_TEST_HOSTILE_CHAT "$SXFER"; then
	echo "skip - hostile relay: $SXFER was built without the test hooks"
	exit 0
fi
for mode in drop alter replay reorder; do
	SXFER_TEST_HOSTILE_CHAT=$mode:2 start_server "h-$mode" --id "$WORK/server" \
		--out "$WORK/out-$mode" --chat --chat-dir "$WORK/hub-$mode"
	printf 'm-one\nm-two\nm-three\n' |
		chat alice --to bob --transcript "$WORK/ha-$mode.jsonl" >/dev/null 2>"$WORK/ha.err" ||
		{ cat "$WORK/ha.err" >&2; fail "alice ($mode) failed"; }
	expect_exit 4 chat bob --count 3 --transcript "$WORK/hb-$mode.jsonl" </dev/null
	grep -q '@alice,bob' "$WORK/last.err" ||
		fail "$mode: the reason does not name the conversation: $(cat "$WORK/last.err")"
	# Nothing of the bad message was shown or kept: bob's transcript
	# verifies; m-one was shown, m-three (after the fault) never.
	verify_tr "$WORK/hb-$mode.jsonl"
	grep -q 'alice: m-one$' "$WORK/last.out" || fail "$mode: bob did not show m-one"
	! grep -q 'm-three' "$WORK/last.out" || fail "$mode: bob showed m-three"
	stop_server "$SERVER_PID"
	ok "hostile relay ($mode) detected by the recipient: exit 4: $(grep "^sxfer:" "$WORK/last.err")"
done
