#!/usr/bin/env bash
# The enrollment service under a burst of devices: N tokens made with
# `sxfer ca token`, then N `sxfer enroll` (each: a P-256 key made on the
# "device", a TLS 1.3 handshake pinning the root, the CSR, the CA's issue
# under its lock with the index and the token record written and flushed),
# C at a time, against one `sxfer ca serve`. Each run uses a fresh CA. Prints
# per run the seconds of the token phase and of the enroll phase, the
# enrollments per second, and the service's user and system CPU; then min
# and median of the enroll phase over the runs.
#
# Usage: bench/enroll.sh [--runs R] [--devices N] [--concurrency C]
# Environment: SXFER (build/sxfer).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=7 n=100 conc=16
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--devices) n=$2; shift 2 ;;
	--concurrency) conc=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "enroll.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "enroll.sh: build sxfer first (bash scripts/demo.sh)" >&2; exit 2; }
SX=$(realpath "$SX")
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-enroll-XXXXXX")
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
export SXFER_PASSPHRASE=bench-passphrase SXFER_ID_PASSPHRASE=bench-passphrase
tick=$(getconf CLK_TCK)
now() { date +%s.%N; }
cpu_of() { awk -v t="$tick" '{ printf "%.2f %.2f", $14 / t, $15 / t }' "/proc/$1/stat"; }

results=()
for r in $(seq 1 "$runs"); do
	rm -rf "$W/run" && mkdir -p "$W/run"
	"$SX" ca init --ca "$W/run/ca" --name "bench CA" >/dev/null
	"$SX" ca issue --ca "$W/run/ca" --name localhost --role server --dns localhost \
		--ip 127.0.0.1 --out "$W/run/svc" >/dev/null
	fp=$("$SX" ca show --ca "$W/run/ca" | sed -n 's/^ *SHA-256: *//p')
	"$SX" ca serve --ca "$W/run/ca" --listen 127.0.0.1:0 --port-file "$W/run/port" \
		--id "$W/run/svc" --max-conns 128 --max-failures 32 2>"$W/run/serve.log" &
	SRV=$!
	for _ in $(seq 1 200); do [ -s "$W/run/port" ] && break; sleep 0.05; done
	port=$(cat "$W/run/port")
	t0=$(now)
	for i in $(seq 1 "$n"); do
		"$SX" ca token --ca "$W/run/ca" --name "dev-$i" >"$W/run/tok.$i" 2>/dev/null
	done
	t1=$(now)
	seq 1 "$n" | xargs -P "$conc" -I{} "$SX" enroll --ca-fingerprint "$fp" \
		--token-file "$W/run/tok.{}" --server-name localhost "127.0.0.1:$port" \
		--out "$W/run/dev-{}" --no-passphrase --timeout 120 >/dev/null 2>"$W/run/enroll.err" ||
		{ cat "$W/run/enroll.err" >&2; echo "enroll.sh: an enrollment failed" >&2; exit 1; }
	t2=$(now)
	cpu=$(cpu_of "$SRV")
	kill "$SRV" && wait "$SRV" 2>/dev/null || true
	SRV=""
	issued=$(grep -c 'result=issued' "$W/run/serve.log")
	[ "$issued" -eq "$n" ] || { echo "enroll.sh: $issued issued, not $n" >&2; exit 1; }
	line=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$n" -v cpu="$cpu" 'BEGIN {
		split(cpu, u, " ")
		printf "tokens %.2f s  enroll %.2f s  %.1f/s  service user %.2f s sys %.2f s",
			b - a, c - b, n / (c - b), u[1], u[2] }')
	echo "run $r: $line"
	results+=("$(awk -v b="$t1" -v c="$t2" 'BEGIN { printf "%.3f", c - b }')")
done
printf '%s\n' "${results[@]}" | sort -n | awk -v n="$n" -v c="$conc" '
	{ v[NR] = $1 }
	END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	      printf "%d enrollments, %d at a time: enroll phase min %.2f s, median %.2f s (%.1f/s at the median)\n",
		n, c, v[1], m, n / m }'
