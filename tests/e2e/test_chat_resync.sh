#!/usr/bin/env bash
# A direct conversation recovers from a lost delivery: a relay drops one of
# alice's messages to bob, bob's verifier stops there (exit 4, nothing of
# the later message kept); on the next session bob's JOIN names the last
# message his transcript holds and the server sends the rest again from
# its own transcript (the authors' signed messages: nothing the verifier
# accepts changes). A queue delivered again after a cut-off delivery does
# not hand bob what he holds. The three transcripts verify.
source "$(dirname "$0")/chat_lib.sh"

if ! grep -qaF SXFER_TEST_HOSTILE_CHAT "$SXFER"; then
	echo "skip - $SXFER was built without the test hooks"
	exit 0
fi

make_pki
chat_ids alice bob

hub=$WORK/hub
queue=$hub/queue/bob.jsonl

# 1. The relay drops the second DELIVER: bob stops at it (exit 4).
SXFER_TEST_HOSTILE_CHAT=drop:2 start_server drop --id "$WORK/server" --out "$WORK/out" \
	--chat --chat-dir "$hub"
printf 'm-one\nm-two\nm-three\n' |
	chat alice --to bob --transcript "$WORK/alice.jsonl" >/dev/null 2>"$WORK/alice.err" ||
	{ cat "$WORK/alice.err" >&2; fail "alice failed"; }
cp "$queue" "$WORK/queue.saved" # what waited for bob, as it was
expect_exit 4 chat bob --count 3 --transcript "$WORK/bob.jsonl" </dev/null
grep -q '@alice,bob' "$WORK/last.err" ||
	fail "the reason does not name the conversation: $(cat "$WORK/last.err")"
grep -q 'alice: m-one$' "$WORK/last.out" || fail "bob did not show m-one"
! grep -q 'm-three' "$WORK/last.out" || fail "bob showed m-three"
! grep -q 'm-three' "$WORK/bob.jsonl" || fail "bob kept m-three"
verify_tr "$WORK/bob.jsonl"
stop_server "$SERVER_PID"
ok "a dropped delivery is caught: exit 4: $(grep '^sxfer:' "$WORK/last.err")"

# 2. The same chat folder, a server without the hook, and bob's queue as it
# was before (a delivery cut off keeps it): bob's JOIN says he holds
# message 1; he gets 2 and 3 again, and none of the queue's three twice.
cp "$WORK/queue.saved" "$queue"
start_server resync --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$hub"
chat bob --count 2 --transcript "$WORK/bob.jsonl" </dev/null >"$WORK/bob2.out" \
	2>"$WORK/bob2.err" || { cat "$WORK/bob2.err" >&2; fail "bob's second session failed"; }
grep -q 'alice: m-two$' "$WORK/bob2.out" || fail "bob did not get m-two: $(cat "$WORK/bob2.out")"
grep -q 'alice: m-three$' "$WORK/bob2.out" || fail "bob did not get m-three"
! grep -q 'm-one' "$WORK/bob2.out" || fail "bob got m-one again"
[ "$(log_count "$WORK/resync.log" 'event=chat_resend.*held=1 from=2 to=3')" -eq 1 ] ||
	fail "no resend of 2..3 logged: $(grep chat_ "$WORK/resync.log")"
[ "$(log_count "$WORK/resync.log" 'event=chat_queue.*action=deliver msgs=0 .* skipped=3')" -eq 1 ] ||
	fail "the queue's entries were not skipped: $(grep chat_queue "$WORK/resync.log")"
[ "$(grep -c '"type":"msg"' "$WORK/bob.jsonl")" -eq 3 ] || fail "bob's transcript: not 3 messages"
ok "bob's next session gets the dropped message and the rest, once each"

# 3. Holding everything, the queue delivered again hands him nothing.
stop_server "$SERVER_PID"
cp "$WORK/queue.saved" "$queue"
start_server again --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$hub"
chat bob --transcript "$WORK/bob.jsonl" </dev/null >"$WORK/bob3.out" 2>"$WORK/bob3.err" ||
	{ cat "$WORK/bob3.err" >&2; fail "bob's third session failed"; }
[ ! -s "$WORK/bob3.out" ] || fail "bob was shown again: $(cat "$WORK/bob3.out")"
[ "$(log_count "$WORK/again.log" 'event=chat_queue.*action=deliver msgs=0 .* skipped=3')" -eq 1 ] ||
	fail "the queue's entries were not skipped: $(grep chat_queue "$WORK/again.log")"
stop_server "$SERVER_PID"
for t in "$WORK/alice.jsonl" "$WORK/bob.jsonl" "$hub/transcript.jsonl"; do
	verify_tr "$t"
done
ok "a queue delivered again skips what bob holds; the three transcripts verify"
