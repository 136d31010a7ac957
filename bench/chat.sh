#!/usr/bin/env bash
# Signed chat through `sxfer serve --chat`: how long MESSAGES lines take
# from one author's pipe to the recipient, end to end.
#
# In a work folder in /dev/shm: a CA and three identities (no passphrase),
# one server (--chat, its rate limit raised so that nothing is refused),
# bob waiting for MESSAGES messages (--count), then alice sending MESSAGES
# lines from a pipe. Timed: from alice's start until bob has verified,
# kept and printed the last one. Each message is signed by alice, checked
# by the server, flushed to the server's transcript (fdatasync), relayed,
# checked by bob and flushed to bob's transcript; alice waits for each
# message's ACCEPTED before the next (one message in flight), so the figure
# is a round trip plus three flushes per message, not a throughput of many
# authors. Both transcripts are verified afterwards (not timed). RUNS runs;
# min and median.
#
# Usage: bench/chat.sh [--runs N] [--messages N] [--io auto|uring|poll] [--dir DIR]
# Defaults: 7 runs of 1000 messages in /dev/shm (--dir: a folder on the disk
# the transcripts would be on, where the flushes cost what they cost there).
# Environment: SXFER (build/sxfer).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
SXFER=${SXFER:-$SRC/build/sxfer}
RUNS=7
N=1000
IO=auto
BASE=/dev/shm
while (($#)); do
	case "$1" in
	--runs) RUNS=${2:?}; shift 2 ;;
	--messages) N=${2:?}; shift 2 ;;
	--io) IO=${2:?}; shift 2 ;;
	--dir) BASE=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "chat.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$SXFER" ] || { echo "chat.sh: $SXFER: build it first (cmake --build build)" >&2; exit 2; }
W=$(mktemp -d "$BASE/sxfer-chat-bench-XXXXXX")
SERVER_PID=
cleanup() {
	[ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; }
	rm -rf "$W"
}
trap cleanup EXIT
export HOME=$W/home SXFER_SERVE_CONFIG=$W/no-such.conf
unset STATE_DIRECTORY XDG_STATE_HOME
mkdir -p "$HOME"
"$SXFER" ca init --ca "$W/ca" --name "chat bench CA" --no-passphrase >/dev/null 2>&1
for n in alice bob; do
	"$SXFER" ca issue --ca "$W/ca" --name "$n" --role client --no-passphrase --out "$W/$n" \
		>/dev/null 2>&1
done
"$SXFER" ca issue --ca "$W/ca" --name server.test --role server --dns localhost \
	--ip 127.0.0.1 --no-passphrase --out "$W/server" >/dev/null 2>&1

echo "# bench/chat.sh --runs $RUNS --messages $N --io $IO --dir $BASE"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo -)" \
	"$(uname -r) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
times=()
for r in $(seq 1 "$RUNS"); do
	rm -rf "$W/hub" "$W"/*.jsonl "$W/port"
	"$SXFER" serve --listen 127.0.0.1:0 --port-file "$W/port" --id "$W/server" --out "$W/out" \
		--io "$IO" --chat --chat-dir "$W/hub" --chat-rate 100000 2>"$W/serve.log" &
	SERVER_PID=$!
	until [ -s "$W/port" ]; do sleep 0.02; done
	P=$(cat "$W/port")
	"$SXFER" chat --id "$W/bob" "127.0.0.1:$P" --io "$IO" --to alice --count "$N" \
		--transcript "$W/bob.jsonl" </dev/null >/dev/null 2>"$W/bob.err" &
	bob=$!
	until grep -q chat_open "$W/serve.log" 2>/dev/null; do sleep 0.02; done
	t0=$(date +%s%N)
	seq 1 "$N" | sed 's/^/message number /' | "$SXFER" chat --id "$W/alice" "127.0.0.1:$P" \
		--io "$IO" --to bob --transcript "$W/alice.jsonl" >/dev/null 2>"$W/alice.err"
	wait "$bob"
	t1=$(date +%s%N)
	kill "$SERVER_PID"
	wait "$SERVER_PID" || true
	SERVER_PID=
	for t in alice bob; do
		"$SXFER" verify --transcript "$W/$t.jsonl" --ca "$W/ca" >/dev/null ||
			{ echo "chat.sh: $t's transcript does not verify" >&2; exit 1; }
	done
	ms=$(((t1 - t0) / 1000000))
	times+=("$ms")
	echo "run $r: $N messages in $ms ms ($((N * 1000 / (ms > 0 ? ms : 1))) messages/s)"
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$N" '{t[NR]=$1} END {
	m = NR % 2 ? t[(NR+1)/2] : (t[NR/2] + t[NR/2+1]) / 2
	printf "min %d ms (%.0f messages/s), median %d ms (%.0f messages/s), %.2f ms per message (median)\n",
		t[1], n*1000/t[1], m, n*1000/m, m/n }'
