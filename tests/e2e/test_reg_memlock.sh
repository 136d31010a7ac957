#!/usr/bin/env bash
# Registered buffers under a small RLIMIT_MEMLOCK: some of the receiver's
# and all of the sender's buffer registrations are refused (ENOMEM) and
# those buffers stay plain; files, compressed or not, still arrive intact.
# Needs a process without CAP_IPC_LOCK (which ignores the limit): root drops
# it with setpriv.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
	echo "skip - registration under RLIMIT_MEMLOCK: needs root and setpriv"
	exit 77
fi
# 2,900 KiB: the ring itself, and two of the receiver's four 1 MiB
# buffers. The server's subshell execs, so that its PID is sxfer's own.
limited() {
	(
		ulimit -l 2900
		exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock "$@"
	)
}
make_pki
(
	ulimit -l 2900
	exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock "$SXFER" serve \
		--listen 127.0.0.1:0 --port-file "$WORK/srv.port" --id "$WORK/server" \
		--out "$WORK/out" --io io_uring 2>"$WORK/srv.log"
) &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
await_port srv "$SERVER_PID"
rand_file "$WORK/big.bin" $((20 << 20))
mkdir -p "$WORK/tree"
for i in $(seq 1 50); do rand_file "$WORK/tree/f$i" $((i * 9000)); done
limited "$SXFER" send --id "$WORK/cam" --quiet --io io_uring --receipts "$WORK/rc" \
	"127.0.0.1:$PORT" "$WORK/big.bin" "$WORK/tree"
cmp "$WORK/big.bin" "$WORK/out/cam-01/big.bin" || fail "big file differs"
for i in $(seq 1 50); do
	cmp "$WORK/tree/f$i" "$WORK/out/cam-01/tree/f$i" || fail "tree/f$i differs"
done
ok "io_uring with registrations refused by RLIMIT_MEMLOCK: files intact"
head -c $((8 << 20)) /dev/zero >"$WORK/zeros.bin"
limited "$SXFER" send --id "$WORK/cam" --quiet --io io_uring --compress 1 --no-sign \
	"127.0.0.1:$PORT" "$WORK/zeros.bin"
cmp "$WORK/zeros.bin" "$WORK/out/cam-01/zeros.bin" || fail "compressed file differs"
ok "compressed records under the same limit: intact"
no_partials "$WORK/out"
stop_server "$SERVER_PID"
