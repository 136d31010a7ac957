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
	wait_until 10 "mitm.py $1 to listen" test -s "$WORK/m.port"
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

idle_timed_out() { grep -q 'idle timeout' "$WORK/srv.log"; }
wait_until 10 "the stalled client's idle timeout (2 s)" idle_timed_out
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

# Out of descriptors (ulimit -n 14): a burst of senders is refused with the
# cause, the accept loop does not spin, and the server serves again after.
mkdir -p "$WORK/burst"
for i in $(seq 1 12); do rand_file "$WORK/burst/b$i" $((1 << 20)); done
rm -f "$WORK/fd.port"
(
	# 14 descriptors in all: the ledger's four (database, WAL, shared
	# memory, lock) would leave too few for the point of this test.
	ulimit -n 14
	exec "$SXFER" serve --listen 127.0.0.1:0 --port-file "$WORK/fd.port" --id "$WORK/server" \
		--out "$WORK/out-fd" --threads 1 --no-ledger
) 2>"$WORK/fd.log" &
FD=$!
PIDS+=("$FD")
await_port fd "$FD"
FDPORT=$PORT
pids=()
for i in $(seq 1 12); do
	"$SXFER" send --id "$WORK/cam" --quiet --timeout 30 "127.0.0.1:$FDPORT" "$WORK/burst/b$i" \
		2>"$WORK/burst/b$i.err" &
	pids+=($!)
done
for i in $(seq 1 12); do
	if ! wait "${pids[$((i - 1))]}"; then
		grep -q "Too many open files" "$WORK/burst/b$i.err" ||
			{ cat "$WORK/burst/b$i.err" >&2; fail "sender $i failed without the receiver's cause"; }
	else
		cmp "$WORK/burst/b$i" "$WORK/out-fd/cam-01/b$i" || fail "burst file $i differs"
	fi
done
! grep -q 'reason=""' "$WORK/fd.log" || fail "a refusal without a reason in the server log"
n=$(grep -c 'event=accept' "$WORK/fd.log" || true)
[ "$n" -lt 50 ] || fail "accept retried $n times out of descriptors (spinning)"
printf 'after the burst\n' >"$WORK/after-burst.txt"
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$FDPORT" "$WORK/after-burst.txt" ||
	fail "server unusable after running out of descriptors"
cmp "$WORK/after-burst.txt" "$WORK/out-fd/cam-01/after-burst.txt" || fail "file after the burst differs"
stop_server "$FD"
no_partials "$WORK/out-fd"
ok "out of descriptors: each refused sender told why, no spinning accept, served again after"
