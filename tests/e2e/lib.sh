# Shared helpers for the end-to-end tests: a temporary folder that is removed
# on exit, a CA with server and device identities, and servers started on an
# ephemeral loopback port and stopped by their PID.
set -euo pipefail

: "${SXFER:?SXFER must name the sxfer binary}"
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sxfer-e2e-XXXXXX")
PIDS=()
export SXFER_PASSPHRASE=e2e-test-passphrase
# ca issue encrypts a new identity key under SXFER_ID_PASSPHRASE (never the
# CA key's); the identities here are then opened with SXFER_PASSPHRASE.
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE
# Receipts and anything else a command keeps under $HOME stay in WORK.
export HOME="$WORK/home"
mkdir -p "$HOME"
# A server reads no configuration file of this machine (/etc/sxfer/serve.conf
# when it exists): the default path is one that does not exist.
export SXFER_SERVE_CONFIG="$WORK/no-such-serve.conf"

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ok() {
	echo "ok - $*"
}

# expect_exit CODE CMD...: runs CMD, checks its exit code, keeps its stderr
# in $WORK/last.err.
expect_exit() {
	local want=$1 got=0
	shift
	"$@" >"$WORK/last.out" 2>"$WORK/last.err" || got=$?
	if [ "$got" -ne "$want" ]; then
		echo "--- stderr of: $*" >&2
		cat "$WORK/last.err" >&2
		fail "expected exit $want, got $got: $*"
	fi
}

# make_pki: $WORK/ca, $WORK/server (localhost, 127.0.0.1), $WORK/cam (client).
make_pki() {
	"$SXFER" ca init --ca "$WORK/ca" --name "e2e CA" >/dev/null
	"$SXFER" ca issue --ca "$WORK/ca" --name server.test --role server \
		--dns localhost --ip 127.0.0.1 --out "$WORK/server" >/dev/null
	"$SXFER" ca issue --ca "$WORK/ca" --name cam-01 --role client --out "$WORK/cam" >/dev/null
}

# start_server NAME [serve options...]: starts `sxfer serve` in the
# background on 127.0.0.1:0; sets PORT and SERVER_PID; log in $WORK/NAME.log.
start_server() {
	local name=$1
	shift
	rm -f "$WORK/$name.port"
	"$SXFER" serve --listen 127.0.0.1:0 --port-file "$WORK/$name.port" "$@" \
		2>"$WORK/$name.log" &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	await_port "$name" "$SERVER_PID"
}

# now_ms: milliseconds of the wall clock.
now_ms() {
	local t=${EPOCHREALTIME//[.,]/}
	echo $((t / 1000))
}

# wait_until SECONDS WHAT CMD...: runs CMD until it succeeds; fails the test
# with "timed out after SECONDS s waiting for WHAT" at the deadline. For a
# condition with pipes or several steps, pass a small function.
wait_until() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$(($(now_ms) + secs * 1000))
	until "$@"; do
		[ "$(now_ms)" -lt "$deadline" ] || fail "timed out after $secs s waiting for $what"
		sleep 0.02 # the polling interval
	done
}

# await_port NAME PID: waits until the server PID, started with --port-file
# $WORK/NAME.port and its log in $WORK/NAME.log, listens; sets PORT. Fails at
# once, with the log, if the server exits first.
await_port() {
	local name=$1 pid=$2
	port_written() {
		[ -s "$WORK/$name.port" ] && return 0
		kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; fail "server $name exited"; }
		return 1
	}
	local deadline=$(($(now_ms) + 20000))
	until port_written; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			tail -n 20 "$WORK/$name.log" >&2
			fail "timed out after 20 s waiting for server $name to listen"
		fi
		sleep 0.02
	done
	PORT=$(cat "$WORK/$name.port")
}

# log_count FILE PATTERN: how many lines of FILE match PATTERN (0 if none).
log_count() {
	local n
	n=$(grep -c -- "$2" "$1" 2>/dev/null) || true
	echo "${n:-0}"
}

# stop_server PID: SIGTERM, then waits; the server must exit 0.
stop_server() {
	local pid=$1 rc=0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || fail "server $pid exited $rc after SIGTERM"
}

# no_partials DIR: no temporary is left anywhere under DIR.
no_partials() {
	if ! partials_gone "$1"; then
		find "$1" -name '*.sxpart' >&2
		fail "temporaries left under $1"
	fi
}

# partials_gone DIR: true when no temporary is under DIR (a condition for
# wait_until).
partials_gone() {
	! find "$1" -name '*.sxpart' | grep -q .
}

# flip_byte PATH OFFSET: inverts one byte in place, so the file always
# changes (writing a fixed byte over random data leaves it as it was once in
# 256 runs).
flip_byte() {
	python3 -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

# rand_file PATH SIZE_BYTES
rand_file() {
	head -c "$2" /dev/urandom >"$1"
}
