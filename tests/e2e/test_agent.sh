#!/usr/bin/env bash
# sxfer agent: 200 files written slowly into the watched folder (some in
# place, some moved in from a hidden temporary, six held open for writing
# in pieces while the agent runs) all arrive exactly once, byte for byte,
# their .sxsig verifying, and each is deleted only after a verified receipt
# covers it; the agent is killed (SIGKILL) in the middle of a batch and
# started again, and what that batch left is sent again without a second
# copy (the receiver answers "already there" or resumes).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_lib.sh"
make_pki
mkdir -p "$WORK/watch" "$WORK/ref" "$WORK/out"
export XDG_STATE_HOME="$WORK/state"
start_server srv --id "$WORK/server" --out "$WORK/out"
args=(--id "$WORK/cam" --watch "$WORK/watch" --after delete --batch-files 20 --batch-wait 0.3
	--limit-rate 8M --json "127.0.0.1:$PORT")

python3 "$E2E_DIR/agent_writer.py" "$WORK/watch" "$WORK/ref" 200 8 6 1 >"$WORK/writer.out" &
writer=$!
PIDS+=("$writer")
start_agent agent "${args[@]}"

# In the middle of a batch: two have ended, the next has begun and the
# server has not sent its receipt. Whether it stored a file of it yet
# (then that file must come back as "already there") depends on timing.
in_flight() {
	local sent done receipts
	sent=$(log_count "$WORK/agent.log" 'event=agent_send')
	done=$(log_count "$WORK/agent.log" 'event=agent_batch')
	receipts=$(log_count "$WORK/srv.log" 'event=receipt ')
	[ "$done" -ge 2 ] && [ "$sent" -gt "$receipts" ]
}
# The server is held (SIGSTOP) while the logs are read, so that no receipt
# can reach the agent between the check and the kill.
SRV=$SERVER_PID
held_in_flight() {
	kill -STOP "$SRV"
	in_flight && return 0
	kill -CONT "$SRV"
	return 1
}
wait_until 60 "a batch in flight" held_in_flight
stored_in_flight=0
[ "$(log_count "$WORK/srv.log" 'event=file_stored')" -gt "$(log_count "$WORK/agent.log" 'event=agent_file')" ] &&
	stored_in_flight=1
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
kill -CONT "$SRV"
ok "agent killed during batch $(log_count "$WORK/agent.log" 'event=agent_send')"

start_agent agent2 "${args[@]}"
wait_until 30 "the agent to start again" grep -qs 'event=agent_start' "$WORK/agent2.log"
grep 'event=agent_start' "$WORK/agent2.log" | grep -q 'recovered=[1-9]' ||
	fail "the restarted agent recovered no file of the batch in flight"
wait "$writer" || fail "the writer failed"
wait_until 120 "every file to be sent and deleted" watch_empty "$WORK/watch"
stop_agent "$AGENT_PID"
stop_server "$SERVER_PID"
ok "200 files sent, the watched folder empty, the agent stopped with exit 0"

check_exactly_once "$WORK/ref" "$WORK/out/cam-01" "$WORK/srv.log" 200
ok "exactly once: 200 files byte-identical, one file_stored each, the ledger agrees, .sxsig verify"
check_after_order deleted 200 "$WORK/agent.json" "$WORK/agent2.json"
n=$(check_receipts "$WORK/state/sxfer/agent/"*/receipts)
[ "$n" -ge 10 ] || fail "$n receipts"
ok "each file deleted once, only after the receipt covering it ($n receipts, each verifies)"
same=$(log_count "$WORK/srv.log" 'event=same')
resumed=$(log_count "$WORK/srv.log" 'event=resume')
[ "$stored_in_flight" -eq 0 ] || [ "$same" -ge 1 ] ||
	fail "no file of the batch cut off was answered 'already there'"
ok "after the kill ($([ "$stored_in_flight" -eq 1 ] && echo "files of the batch stored" || echo "none of the batch stored yet")): $same file(s) already there (not stored again), $resumed resumed"
