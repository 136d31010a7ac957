#!/usr/bin/env bash
# sxfer chat at scale and under limits: 50 identities chatting at once
# through one server (25 pairs, each side sending and waiting for the
# other's lines), every transcript verifying; limits (messages per second,
# recipients per message) refuse with their reasons while the other chats
# go on.
source "$(dirname "$0")/chat_lib.sh"
CHAT_DEADLINE=120
CHAT_CONNECT=60

make_pki
N=50
for i in $(seq -w 1 $N); do
	"$SXFER" ca issue --ca "$WORK/ca" --name "dev$i" --role client --no-passphrase \
		--out "$WORK/dev$i" >/dev/null 2>&1 &
	if ((10#$i % 10 == 0)); then wait; fi
done
wait
chat_ids alice bob carol dave

# 1. 50 identities at once: dev01..dev25 each talk to dev26..dev50.
start_server many --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$WORK/hub" \
	--chat-rate 1000 --max-conns 200 --max-handshakes-per-addr 100
pids=()
for i in $(seq 1 25); do
	a=$(printf 'dev%02d' "$i")
	b=$(printf 'dev%02d' $((i + 25)))
	for pair in "$a $b" "$b $a"; do
		set -- $pair
		printf '%s one\n%s two\n%s three\n' "$1" "$1" "$1" |
			chat "$1" --to "$2" --count 3 --transcript "$WORK/$1.jsonl" \
				>"$WORK/$1.out" 2>"$WORK/$1.err" &
		pids+=($!)
	done
done
failed=0
for p in "${pids[@]}"; do
	wait "$p" || failed=$((failed + 1))
done
if [ "$failed" -ne 0 ]; then
	for f in "$WORK"/dev*.err; do [ -s "$f" ] && { echo "--- $f" >&2; tail -3 "$f" >&2; }; done
	fail "$failed of 50 chat sessions failed"
fi
for i in $(seq 1 25); do
	a=$(printf 'dev%02d' "$i")
	b=$(printf 'dev%02d' $((i + 25)))
	grep -q "$b: $b three\$" "$WORK/$a.out" || fail "$a did not get $b's third line"
	grep -q "$a: $a three\$" "$WORK/$b.out" || fail "$b did not get $a's third line"
	[ "$(wc -l <"$WORK/$a.out")" -eq 3 ] || fail "$a shows other than 3 lines"
done
for f in "$WORK"/dev*.jsonl; do verify_tr "$f"; done
stop_server "$SERVER_PID"
verify_tr "$WORK/hub/transcript.jsonl"
msgs=$(grep -c '"type":"msg"' "$WORK/hub/transcript.jsonl")
[ "$msgs" -eq 150 ] || fail "the server's transcript holds $msgs messages, not 150"
ok "50 identities chatting at once; 150 messages; 51 transcripts verify"

# 2. Limits: 2 messages per second (a bucket of 4), at most 2 recipients.
start_server lim --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$WORK/hub2" \
	--chat-rate 2 --chat-max-to 2 --metrics 127.0.0.1:0 --metrics-port-file "$WORK/lim.mport"
# carol and dave chat at their pace while alice floods and over-addresses.
chat dave --to carol --count 2 --transcript "$WORK/dave.jsonl" </dev/null \
	>"$WORK/dave.out" 2>"$WORK/dave.err" &
dpid=$!
# paced by the client: five lines at 2 per second, none refused
seq 1 5 | sed 's/^/paced /' | chat alice --to bob --transcript "$WORK/alice.jsonl" \
	>/dev/null 2>"$WORK/alice-paced.err" || { cat "$WORK/alice-paced.err" >&2; fail "paced"; }
rc=0
echo "to three" | chat alice --to bob --to carol --to dave --transcript "$WORK/alice.jsonl" \
	>/dev/null 2>"$WORK/alice2.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/alice2.err" >&2; fail "alice to three: exit $rc, not 1"; }
grep -q 'refused (recipients)' "$WORK/alice2.err" ||
	fail "no recipients refusal: $(cat "$WORK/alice2.err")"
# sxfer chat paces itself to the rate the server announces; the test hook
# turns that off, as a client that ignores it would.
if grep -qaF SXFER_TEST_CHAT_NOPACE "$SXFER"; then
	rc=0
	seq 1 12 | sed 's/^/flood /' | SXFER_TEST_CHAT_NOPACE=1 chat alice --to bob \
		--transcript "$WORK/alice.jsonl" >/dev/null 2>"$WORK/alice.err" || rc=$?
	[ "$rc" -eq 1 ] || { cat "$WORK/alice.err" >&2; fail "alice flooding: exit $rc, not 1"; }
	grep -q 'refused (rate)' "$WORK/alice.err" || fail "no rate refusal: $(cat "$WORK/alice.err")"
fi
printf 'hi dave\nstill here\n' | chat carol --to dave --transcript "$WORK/carol.jsonl" \
	>/dev/null 2>"$WORK/carol.err" || { cat "$WORK/carol.err" >&2; fail "carol failed"; }
wait "$dpid" || { cat "$WORK/dave.err" >&2; fail "dave failed while alice was refused"; }
grep -q 'carol: still here$' "$WORK/dave.out" || fail "dave did not get carol's lines"
for f in alice carol dave; do verify_tr "$WORK/$f.jsonl"; done
# the chat's series on /metrics (promtool checks the whole exposition when
# it is installed; tests/e2e/test_metrics.sh)
python3 - "$(cat "$WORK/lim.mport")" >"$WORK/lim.prom" <<'PY' || fail "no metrics"
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode())
PY
if command -v promtool >/dev/null; then
	promtool check metrics <"$WORK/lim.prom" >"$WORK/promtool.out" 2>&1 ||
		{ cat "$WORK/promtool.out" >&2; fail "promtool check metrics"; }
fi
metric() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/lim.prom"; }
[ "$(metric 'sxfer_chat_messages_refused_total{reason="recipients"}')" -ge 1 ] ||
	fail "no recipients refusal counted: $(grep sxfer_chat "$WORK/lim.prom")"
[ "$(metric sxfer_chat_messages_accepted_total)" -ge 7 ] ||
	fail "accepted messages not counted: $(grep sxfer_chat "$WORK/lim.prom")"
[ "$(metric sxfer_chat_receipts_total)" -ge 1 ] || fail "receipts not counted"
stop_server "$SERVER_PID"
verify_tr "$WORK/hub2/transcript.jsonl"
[ "$(log_count "$WORK/lim.log" 'chat_refused')" -ge 2 ] || fail "refusals not logged"
ok "rate and recipient limits refuse with reasons while carol and dave chat on"
