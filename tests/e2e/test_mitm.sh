#!/usr/bin/env bash
# A man in the middle that flips a byte, drops or replays a record in the
# data phase: the transfer fails with exit code 4 and no file stands under its
# final name; the server keeps serving.
source "$(dirname "$0")/lib.sh"
make_pki
start_server srv --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
rand_file "$WORK/f.bin" $((5 << 20))

for mode in flip drop replay; do
	# record 0 is FILE_BEGIN; 2 is a DATA record in the middle of the file
	rm -f "$WORK/mitm.port"
	python3 "$E2E_DIR/mitm.py" "$mode" 2 "$PORT" "$WORK/mitm.port" &
	PIDS+=($!)
	MITM=$!
	wait_until 10 "mitm.py $mode to listen" test -s "$WORK/mitm.port"
	cp "$WORK/f.bin" "$WORK/$mode.bin"
	expect_exit 4 "$SXFER" send --id "$WORK/cam" --server-name localhost --chunk 256K --quiet \
		"127.0.0.1:$(cat "$WORK/mitm.port")" "$WORK/$mode.bin"
	grep -qi "authentication\|integrity\|record" "$WORK/last.err" || fail "$mode: no reason given"
	[ ! -e "$WORK/out/cam-01/$mode.bin" ] || fail "$mode: file stands under its final name"
	kill "$MITM"; wait "$MITM" 2>/dev/null || true
	ok "mitm $mode: exit 4 ($(tail -n1 "$WORK/last.err"))"
done
# The server fails each connection when it sees the bad record; the sender
# may have exited just before it has removed the temporary.
wait_until 10 "the temporaries of the failed transfers to be removed" partials_gone "$WORK/out"
no_partials "$WORK/out"

# The server still serves.
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin"
cmp "$WORK/f.bin" "$WORK/out/cam-01/f.bin" || fail "transfer after attacks differs"
ok "server keeps serving after the attacks"
stop_server "$SRV"

# A DATA record in the middle of a stream that the receiver's workers open
# (every one of them: the test hook SXFER_TEST_RXPOOL=all) is refused word
# for word as when the loop opens every record itself, and the sender exits
# 4 either way.
for how in loop workers; do
	if [ "$how" = loop ]; then
		start_server "mi-$how" --id "$WORK/server" --out "$WORK/out-$how" --open-threads 1
	else
		SXFER_TEST_RXPOOL=all start_server "mi-$how" --id "$WORK/server" --out "$WORK/out-$how" \
			--open-threads 3
	fi
	rm -f "$WORK/mitm.port"
	python3 "$E2E_DIR/mitm.py" flip 9 "$PORT" "$WORK/mitm.port" &
	PIDS+=($!)
	MITM=$!
	wait_until 10 "mitm.py to listen" test -s "$WORK/mitm.port"
	expect_exit 4 "$SXFER" send --id "$WORK/cam" --server-name localhost --chunk 256K --quiet \
		"127.0.0.1:$(cat "$WORK/mitm.port")" "$WORK/f.bin"
	tail -n1 "$WORK/last.err" >"$WORK/why-$how"
	kill "$MITM"; wait "$MITM" 2>/dev/null || true
	wait_until 10 "the failed transfer's temporary to be removed" partials_gone "$WORK/out-$how"
	stop_server "$SERVER_PID"
	sed -n 's/.*event=conn_error .*cause=//p' "$WORK/mi-$how.log" >"$WORK/cause-$how"
done
grep -q "failed authentication" "$WORK/why-loop" || fail "tampered record: $(cat "$WORK/why-loop")"
cmp -s "$WORK/why-loop" "$WORK/why-workers" ||
	fail "the sender is told '$(cat "$WORK/why-workers")', not '$(cat "$WORK/why-loop")'"
cmp -s "$WORK/cause-loop" "$WORK/cause-workers" ||
	fail "the server logs '$(cat "$WORK/cause-workers")', not '$(cat "$WORK/cause-loop")'"
grep -q 'event=conn_close .*result=failed worker_records=[1-9]' "$WORK/mi-workers.log" ||
	fail "no record of the tampered stream went to a worker"
ok "a tampered record opened by a worker: exit 4, the same reason ($(cat "$WORK/why-loop"))"
