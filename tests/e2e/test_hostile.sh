#!/usr/bin/env bash
# Hostile peers beside a legitimate transfer: random bytes, a client that
# stops mid-record, one that announces a 4 GiB record. The legitimate
# transfer completes; each hostile connection is failed alone.
source "$(dirname "$0")/lib.sh"
make_pki
start_server srv --id "$WORK/server" --out "$WORK/out" --idle-timeout 2 --handshake-timeout 3
SRV=$SERVER_PID
rand_file "$WORK/legit.bin" $((64 << 20))

start_mitm() { # mode n
	rm -f "$WORK/m.port"
	python3 "$E2E_DIR/mitm.py" "$1" "$2" "$PORT" "$WORK/m.port" &
	PIDS+=($!)
	for i in $(seq 1 100); do [ -s "$WORK/m.port" ] && break; sleep 0.05; done
	MPORT=$(cat "$WORK/m.port")
}

# A legitimate transfer, slowed to a small chunk so it overlaps the attacks.
"$SXFER" send --id "$WORK/cam" --quiet --chunk 16K "127.0.0.1:$PORT" "$WORK/legit.bin" &
LEGIT=$!

python3 "$E2E_DIR/mitm.py" random 127.0.0.1 "$PORT" &
RND=$!

start_mitm stall 1
cp "$WORK/legit.bin" "$WORK/stalled.bin"
"$SXFER" send --id "$WORK/cam" --server-name localhost --quiet --timeout 20 \
	"127.0.0.1:$MPORT" "$WORK/stalled.bin" >/dev/null 2>&1 &
STALL=$!

start_mitm huge 0
cp "$WORK/legit.bin" "$WORK/huge.bin"
expect_exit 4 "$SXFER" send --id "$WORK/cam" --server-name localhost --quiet \
	"127.0.0.1:$MPORT" "$WORK/huge.bin"
ok "4 GiB record announcement refused: $(tail -n1 "$WORK/last.err")"

wait "$LEGIT" || fail "legitimate transfer failed beside hostile peers"
cmp "$WORK/legit.bin" "$WORK/out/cam-01/legit.bin" || fail "legitimate file differs"
ok "legitimate transfer completed beside hostile peers"
wait "$RND" || true

for i in $(seq 1 100); do
	grep -q 'idle timeout' "$WORK/srv.log" && break
	sleep 0.1
done
grep -q 'idle timeout' "$WORK/srv.log" || fail "stalled client not timed out"
ok "client stopped mid-record: dropped after the idle timeout"
grep -q 'not speaking TLS\|TLS\|handshake' "$WORK/srv.log" || fail "random client not logged"
ok "random bytes refused"
[ ! -e "$WORK/out/cam-01/stalled.bin" ] || fail "stalled file under its final name"
[ ! -e "$WORK/out/cam-01/huge.bin" ] || fail "huge file under its final name"
kill "$STALL" 2>/dev/null || true
wait "$STALL" 2>/dev/null || true
no_partials "$WORK/out"
stop_server "$SRV"

# With --max-conns 1 the server accepts again once its only slot is free,
# also when several event loops share the budget.
start_server one --id "$WORK/server" --out "$WORK/out-one" --max-conns 1 --threads 4
for i in 1 2 3; do
	"$SXFER" send --id "$WORK/cam" --quiet --timeout 10 "127.0.0.1:$PORT" "$WORK/legit.bin" \
		--name "x$i" >/dev/null 2>&1 || true
	rm -rf "$WORK/out-one/cam-01"
done
"$SXFER" send --id "$WORK/cam" --quiet --timeout 10 "127.0.0.1:$PORT" "$WORK/legit.bin"
cmp "$WORK/legit.bin" "$WORK/out-one/cam-01/legit.bin" || fail "--max-conns 1: later senders not served"
ok "--max-conns 1: one sender after another is served"
stop_server "$SERVER_PID"
