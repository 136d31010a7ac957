#!/usr/bin/env bash
# The cost of finishing an interrupted transfer: a file (1 GiB by default)
# sent whole, against the same file cut at 90 % and then resumed. Each run
# starts a fresh server; a cut run sends through tests/e2e/cutproxy.py,
# which resets the connection once 90 % of the file has crossed it, waits
# until the server holds the part, and then times a second `sxfer send`
# straight to the server (the resume: QUERY, OFFER, the prefix root from
# the sender's leaf cache or its file, the last 10 %). Within a run the two
# swap places from one run to the next (whole first, then resume first).
# Before each timed command, a little more memory than it needs is written
# into tmpfs and freed (--warm); the server runs on one core and the sender
# on another (--no-pin for neither); each copy is compared with the input
# (not timed) and removed at once (docs/PERFORMANCE.md, "Method").
# Prints each run (with the MiB the resume read to compare the held prefix,
# -1 for a build without "bytes_compared"), then min and median of both and
# the ratio of medians.
#
# Usage: bench/resume.sh [--runs N] [--size-mib N] [--cut PERCENT]
#                        [--warm MIB | --no-warm]
#                        [--no-pin | --pin-server CPU --pin-client CPU]
#                        [-- SEND OPTIONS...]
# --runs: 7 by default. --warm: the file's size + 256 MiB by default.
# Environment: SXFER (build/sxfer).
set -euo pipefail
export LC_ALL=C
argv0=$0 argv=("$@")
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
runs=7 size_mib=1024 cut=90 warm=1 warm_mib="" pin=1 pin_server=0 pin_client=1
need() { [ $# -ge 2 ] || { echo "resume.sh: $1 needs a value (--help)" >&2; exit 2; }; }
while (($#)); do
	case "$1" in
	--runs) need "$@"; runs=$2; shift 2 ;;
	--size-mib) need "$@"; size_mib=$2; shift 2 ;;
	--cut) need "$@"; cut=$2; shift 2 ;;
	--warm) need "$@"; warm_mib=$2 warm=1; shift 2 ;;
	--no-warm) warm=0; shift ;;
	--pin) pin=1; shift ;;
	--no-pin) pin=0; shift ;;
	--pin-server) need "$@"; pin_server=$2 pin=1; shift 2 ;;
	--pin-client) need "$@"; pin_client=$2 pin=1; shift 2 ;;
	--) shift; break ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "resume.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
for v in "$runs" "$size_mib" "$cut" ${warm_mib:+"$warm_mib"}; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "resume.sh: '$v' is not a positive integer" >&2; exit 2; }
done
warm_run=0
((warm)) && warm_run=${warm_mib:-$((size_mib + 256))}
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "resume.sh: build sxfer first (bash scripts/demo.sh)" >&2; exit 2; }
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-resume-XXXXXX")
bench_warm_init "$W"
SRV="" PRX=""
cleanup() {
	[ -n "$PRX" ] && kill "$PRX" 2>/dev/null && wait "$PRX" 2>/dev/null
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$W"
	return 0
}
trap cleanup EXIT
bench_pin_init "$pin" "$pin_server" "$pin_client"
export SXFER_PASSPHRASE=bench HOME=$W/home
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
"$SX" ca init --ca "$W/ca" --name "bench CA" >/dev/null
"$SX" ca issue --ca "$W/ca" --name localhost --role server --dns localhost --ip 127.0.0.1 \
	--out "$W/srv" >/dev/null
"$SX" ca issue --ca "$W/ca" --name bench --role client --out "$W/cli" >/dev/null
head -c $((size_mib << 20)) /dev/urandom >"$W/in.bin"
# The sender caches no leaves of a file changed less than 2 s before it is
# opened (docs/ARCHITECTURE.md, "The leaf cache"): a source that has settled.
sleep 2
size=$((size_mib << 20))

start_server() {
	rm -rf "$W/out" "$W/out.ledger.sqlite"* "$W/port"
	"${PIN_S[@]}" "$SX" serve --listen 127.0.0.1:0 --port-file "$W/port" --id "$W/srv" \
		--out "$W/out" 2>"$W/serve.log" &
	SRV=$!
	for _ in $(seq 1 200); do [ -s "$W/port" ] && break; sleep 0.05; done
}
stop_server() {
	kill "$SRV" 2>/dev/null || true
	wait "$SRV" || true
	SRV=""
}
timed_send() { # PORT [SEND OPTIONS...]: prints the wall seconds
	local port=$1 t0 t1
	shift
	bench_warm "$warm_run"
	t0=$EPOCHREALTIME
	"${PIN_C[@]}" "$SX" send --id "$W/cli" --receipts "$W/receipts" --quiet --retry 0 "$@" \
		"127.0.0.1:$port" "$W/in.bin" >"$W/send.json"
	t1=$EPOCHREALTIME
	# Not timed; the copy goes at once, not to hold memory in the next run.
	cmp -s "$W/in.bin" "$W/out/bench/in.bin" || { echo "resume.sh: output differs" >&2; exit 1; }
	rm -rf "$W/out/bench"
	echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}

# Not in a $( ): the servers must be started by this shell, for cleanup.
run_whole() { # sets WHOLE, the wall seconds
	start_server
	WHOLE=$(timed_send "$(cat "$W/port")" "$@")
	stop_server
}
run_resume() { # the cut send (not timed), then the resume: sets RES, HELD and CMP
	start_server
	rm -f "$W/pport"
	python3 tests/e2e/cutproxy.py cut $((size * cut / 100)) "$(cat "$W/port")" "$W/pport" 1 \
		>/dev/null &
	PRX=$!
	for _ in $(seq 1 200); do [ -s "$W/pport" ] && break; sleep 0.05; done
	"${PIN_C[@]}" "$SX" send --id "$W/cli" --receipts "$W/receipts" --quiet --retry 0 "$@" \
		"127.0.0.1:$(cat "$W/pport")" "$W/in.bin" 2>/dev/null && {
		echo "resume.sh: the cut send succeeded" >&2
		exit 1
	}
	kill "$PRX" 2>/dev/null || true
	wait "$PRX" 2>/dev/null || true
	PRX=""
	for _ in $(seq 1 400); do
		ls "$W"/out/bench/.*.sxheld-meta >/dev/null 2>&1 && break
		sleep 0.05
	done
	RES=$(timed_send "$(cat "$W/port")" --json "$@")
	stop_server
	read -r HELD CMP <<<"$(python3 -c 'import json,sys; j = json.load(open(sys.argv[1]))
print(j["bytes_resumed"] >> 20, j.get("bytes_compared", -1 << 20) >> 20)' "$W/send.json")"
}

bench_header "$argv0" "${argv[@]}"
echo "sxfer:   $(realpath "$SX") ($("$SX" --version 2>/dev/null | head -1))"
echo "inputs:  one random file of $size_mib MiB, cut at $cut %; send options: ${*:-none}"
echo "runs:    $runs, each a whole send and a cut one resumed, their order swapped each run"
echo "pinning: $(bench_pin_how "$pin" "$pin_server" "$pin_client")"
echo "warming: $(bench_warm_how "$warm_run" "$warm_run MiB")"
echo
printf '%4s %10s %10s %14s %14s\n' run "whole s" "resume s" "resumed MiB" "read MiB"
for r in $(seq 1 "$runs"); do
	if ((r % 2)); then
		run_whole "$@"
		run_resume "$@"
	else
		run_resume "$@"
		run_whole "$@"
	fi
	printf '%4s %10s %10s %14s %14s\n' "$r" "$WHOLE" "$RES" "$HELD" "$CMP"
	printf '%s %s\n' "$WHOLE" "$RES" >>"$W/all"
done
awk '{ w[NR] = $1; r[NR] = $2 }
function med(x, n,   i, j, t, b) {
	for (i = 1; i <= n; i++) b[i] = x[i]
	for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j > 0 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
	return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
}
function mn(x, n,   i, m) { m = x[1]; for (i = 2; i <= n; i++) if (x[i] < m) m = x[i]; return m }
END {
	printf "\nwhole:  min %.3f s, median %.3f s (n=%d)\n", mn(w, NR), med(w, NR), NR
	printf "resume: min %.3f s, median %.3f s\n", mn(r, NR), med(r, NR)
	printf "resume / whole (medians): %.1f %%\n", 100 * med(r, NR) / med(w, NR)
}' "$W/all"
