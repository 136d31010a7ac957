#!/usr/bin/env bash
# A fleet of devices uploading at once: SENDERS `sxfer send` processes, each
# with its own identity (cam01, cam02, ...) and its own random file of
# SIZE_MIB MiB, started together against one `sxfer serve`; the time until
# the last one exits, the aggregate MiB/s and the server's CPU seconds
# (/proc utime + stime). Each server variant (serve options) runs RUNS times,
# interleaved with the others; every server is stopped by its PID on exit.
#
# Usage: bench/fleet.sh [--runs N] [--senders N] [--size-mib N]
#                       [--send-opts "OPTS"] [SERVE_OPTS...]
# Default variants: '--threads 1' '--threads 2'. Example:
#   bench/fleet.sh --senders 8 --size-mib 128 '--threads 1' '--threads 4'
# Environment: SXFER (build/sxfer).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 senders=4 size_mib=256 send_opts="--threads 1"
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--senders) senders=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--send-opts) send_opts=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
(($#)) || set -- '--threads 1' '--threads 2'
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "fleet.sh: build sxfer first (bash scripts/demo.sh)" >&2; exit 2; }
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-fleet-XXXXXX")
SRVS=()
cleanup() {
	local p
	for p in "${SRVS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$W"
	return 0
}
trap cleanup EXIT
export SXFER_PASSPHRASE=bench HOME=$W/home
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
"$SX" ca init --ca "$W/ca" --name "bench CA" >/dev/null
"$SX" ca issue --ca "$W/ca" --name localhost --role server --dns localhost --ip 127.0.0.1 \
	--out "$W/srv" >/dev/null
for i in $(seq -w 1 "$senders"); do
	"$SX" ca issue --ca "$W/ca" --name "cam$i" --role client --out "$W/cam$i" >/dev/null
	head -c $((size_mib << 20)) /dev/urandom >"$W/in$i.bin"
done
nv=$#
for ((v = 0; v < nv; v++)); do
	read -r -a opts <<<"${*:v+1:1}"
	"$SX" serve --listen 127.0.0.1:0 --port-file "$W/port$v" --id "$W/srv" --out "$W/out$v" \
		"${opts[@]}" 2>"$W/serve$v.log" &
	SRVS+=($!)
	for _ in $(seq 1 200); do [ -s "$W/port$v" ] && break; sleep 0.05; done
done
read -r -a sopts <<<"$send_opts"
echo "sxfer fleet: $(uname -r), $(nproc) cores; $senders senders x $size_mib MiB at once;" \
	"sender options: ${send_opts:-(none)}"
printf '%-28s %4s %9s %9s %12s\n' "serve options" run "wall s" "MiB/s" "server CPU s"
for r in $(seq 1 "$runs"); do
	for ((v = 0; v < nv; v++)); do
		pid=${SRVS[$v]}
		rm -rf "$W/out$v"
		c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		t0=$(date +%s.%N)
		pids=()
		for i in $(seq -w 1 "$senders"); do
			"$SX" send --id "$W/cam$i" --receipts "$W/receipts" --quiet "${sopts[@]}" \
				"127.0.0.1:$(cat "$W/port$v")" "$W/in$i.bin" &
			pids+=($!)
		done
		failed=0
		for p in "${pids[@]}"; do wait "$p" || failed=1; done
		t1=$(date +%s.%N)
		c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		for i in $(seq -w 1 "$senders"); do
			cmp -s "$W/in$i.bin" "$W/out$v/cam$i/in$i.bin" || failed=1
		done
		((failed == 0)) || { echo "fleet.sh: a transfer failed or differs (see $W/serve$v.log)" >&2; exit 1; }
		awk -v o="${*:v+1:1}" -v r="$r" -v t0="$t0" -v t1="$t1" -v n="$senders" -v m="$size_mib" \
			-v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" \
			'BEGIN {w = t1 - t0; printf "%-28s %4s %9.3f %9.1f %12.2f\n", o, r, w, n * m / w, (c1 - c0) / hz}'
	done
done
