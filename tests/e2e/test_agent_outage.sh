#!/usr/bin/env bash
# sxfer agent with the server down for a while: the agent keeps running,
# waits with a capped backoff (logged), and once the server is back on the
# same address everything written meanwhile arrives exactly once; --after
# move:DIR moves each file, keeping its path under the watched folder, only
# after its receipt.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_lib.sh"
make_pki
mkdir -p "$WORK/watch" "$WORK/ref" "$WORK/out"
export XDG_STATE_HOME="$WORK/state"
# The agent needs a stable HOST:PORT: a free port, chosen here.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
serve() {
	"$SXFER" serve --listen "127.0.0.1:$port" --port-file "$WORK/srv.port" --id "$WORK/server" \
		--out "$WORK/out" 2>>"$WORK/srv.log" &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_until 20 "the server to listen" test -s "$WORK/srv.port"
}
serve
start_agent agent --id "$WORK/cam" --watch "$WORK/watch" --after "move:$WORK/sent" \
	--batch-files 10 --batch-wait 0.2 --retry-wait 100:1000 --json "127.0.0.1:$port"

python3 "$E2E_DIR/agent_writer.py" "$WORK/watch" "$WORK/ref" 30 2 2 2 a >/dev/null
wait_until 60 "the first 30 files" watch_empty "$WORK/watch"
ok "30 files sent and moved while the server runs"

stop_server "$SERVER_PID"
rm -f "$WORK/srv.port"
python3 "$E2E_DIR/agent_writer.py" "$WORK/watch" "$WORK/ref" 40 3 3 3 b >/dev/null
waits() { [ "$(log_count "$WORK/agent.log" 'event=agent_wait')" -ge 4 ]; }
wait_until 30 "the agent to wait and retry" waits
kill -0 "$AGENT_PID" || fail "the agent exited while the server was down"
[ "$(files_left "$WORK/watch")" -eq 40 ] || fail "files left the watched folder with the server down"
grep 'event=agent_wait' "$WORK/agent.log" | tail -n 1 | grep -q 'wait_ms=[0-9]' || fail "no wait logged"
grep -q '"event":"wait"' "$WORK/agent.json" || fail "no wait event"
ok "server down: the agent waits and retries ($(log_count "$WORK/agent.log" 'event=agent_wait') waits), keeps the 40 new files"

serve
wait_until 60 "the 40 files written while the server was down" watch_empty "$WORK/watch"
stop_agent "$AGENT_PID"
stop_server "$SERVER_PID"
ok "server back on the same address: the rest sent, the agent stopped with exit 0"

check_exactly_once "$WORK/ref" "$WORK/out/cam-01" "$WORK/srv.log" 70
(cd "$WORK/sent" && find . -type f | sort) >"$WORK/sent.list"
diff "$WORK/ref.list" "$WORK/sent.list" >&2 || fail "the move folder does not hold every file"
while read -r f; do
	cmp -s "$WORK/ref/$f" "$WORK/sent/$f" || fail "$f differs in the move folder"
done <"$WORK/ref.list"
check_after_order moved 70 "$WORK/agent.json"
ok "70 files exactly once; each moved to the move folder under its path, after its receipt"
