#!/usr/bin/env bash
# 1,000 hostile connections against one server while devices send: garbage,
# ClientHellos dripped a byte at a time, whole ClientHellos then silence,
# authenticated senders announcing a 4 GiB record, authenticated senders
# that go quiet. Every device transfer completes, every hostile connection
# is closed within its deadline, and afterwards the server is back to its
# idle descriptors and its memory does not grow from one round to the next.
source "$(dirname "$0")/lib.sh"
make_pki
rand_file "$WORK/dev.bin" $((8 << 20))
# The allocator's quarantine would hide what the server frees.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
start_server srv --id "$WORK/server" --out "$WORK/out" --handshake-timeout 3 \
	--idle-timeout 3 --threads 2
SRV=$SERVER_PID
fds() { ls /proc/"$SRV"/fd | wc -l; }
rss() { awk '/^VmRSS/ {print $2}' /proc/"$SRV"/status; }
# settle: waits until no connection is open (the log's opens = closes)
all_closed() {
	[ "$(log_count "$WORK/srv.log" 'event=conn_open')" -eq "$(log_count "$WORK/srv.log" 'event=conn_close')" ]
}
settle() { wait_until 20 "every connection of the swarm to close" all_closed; }
n=0
device() { # one device transfer, which must complete
	n=$((n + 1))
	cp "$WORK/dev.bin" "$WORK/d$n.bin"
	"$SXFER" send --id "$WORK/cam" --quiet --timeout 30 "127.0.0.1:$PORT" "$WORK/d$n.bin" ||
		fail "device transfer $n failed during the swarm"
	cmp "$WORK/dev.bin" "$WORK/out/cam-01/d$n.bin" || fail "d$n.bin differs"
}

device # warm: the server's buffers and TLS state have been used once
settle
fd0=$(fds)
rss0=$(rss)
mix=garbage=400,drip=250,silent=250,auth-huge=50,auth-idle=50
declare -a after
for round in 1 2; do
	python3 "$E2E_DIR/swarm.py" 127.0.0.1 "$PORT" "$mix" --sources 8 --concurrency 150 \
		--interval 0.5 --limit 20 --cert "$WORK/cam/cert.pem" --key "$WORK/cam/key.pem" \
		--ca "$WORK/cam/ca.pem" >"$WORK/swarm$round.json" &
	SW=$!
	PIDS+=("$SW")
	t0=$SECONDS
	while kill -0 "$SW" 2>/dev/null; do
		device
	done
	wait "$SW" || fail "swarm round $round failed"
	r=$(cat "$WORK/swarm$round.json")
	python3 - "$r" <<'PY' || fail "round $round: $r"
import json, sys
st = json.loads(sys.argv[1])
assert sum(v["conns"] for v in st.values()) == 1000, "not 1,000 connections"
for mode, v in st.items():
    assert v["not_closed"] == 0, mode + ": a connection was never closed"
    # the deadlines: 3 s handshake, 3 s idle; then closed at once
    assert v["max_close_s"] <= 6.5, "%s: closed after %.1f s" % (mode, v["max_close_s"])
PY
	settle
	after[$round]=$(rss)
	f=$(fds)
	[ "$f" -eq "$fd0" ] || fail "round $round: $f descriptors after the swarm, $fd0 before"
	ok "round $round: 1,000 hostile connections in $((SECONDS - t0)) s beside $n device transfers; descriptors back to $fd0; RSS ${rss0} -> ${after[$round]} KiB ($r)"
done
[ "${after[2]}" -le $((after[1] + 16384)) ] ||
	fail "memory grew from round 1 (${after[1]} KiB) to round 2 (${after[2]} KiB)"
[ "${after[1]}" -le $((rss0 + 65536)) ] ||
	fail "memory after the swarm ${after[1]} KiB, idle ${rss0} KiB"
ok "memory does not grow from one swarm to the next (${after[1]} -> ${after[2]} KiB)"
grep -q 'event=conn_error.*4 GiB\|record.*too large\|larger than' "$WORK/srv.log" ||
	grep -q 'event=conn_error' "$WORK/srv.log" || fail "no hostile connection logged"
no_partials "$WORK/out"
stop_server "$SRV"
