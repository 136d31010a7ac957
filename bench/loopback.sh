#!/usr/bin/env bash
# Loopback throughput of sxfer: a random file from tmpfs to tmpfs, for each
# suite and each I/O backend, RUNS times each, interleaved; prints the median.
# Usage: bench/loopback.sh [SIZE_MIB=1024] [RUNS=3] [CHUNK=1M] [SUITES...]
# SIGN=both (default) measures signed (the default) and --no-sign; SIGN=on or
# SIGN=off measures one. IOS="uring poll" (default) chooses the backends.
# COMPRESS="off auto" also interleaves those --compress modes (default: none,
# the sender's default).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}
chunk=${3:-1M}
shift $(($# < 3 ? $# : 3))
suites=("$@")
((${#suites[@]})) || suites=(aes256gcm aes256ctr-hmac chacha20poly1305)
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "build sxfer first (bash scripts/demo.sh or cmake --build build)" >&2; exit 2; }
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-bench-XXXXXX")
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
export SXFER_PASSPHRASE=bench
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
"$SX" ca init --ca "$W/ca" --name "bench CA" >/dev/null
"$SX" ca issue --ca "$W/ca" --name localhost --role server --dns localhost --ip 127.0.0.1 --out "$W/srv" >/dev/null
"$SX" ca issue --ca "$W/ca" --name bench --role client --out "$W/cli" >/dev/null
head -c $((size_mib << 20)) /dev/urandom >"$W/in.bin"

case "${SIGN:-both}" in
both) modes=(signed unsigned) ;;
on) modes=(signed) ;;
off) modes=(unsigned) ;;
*) echo "SIGN: both, on or off" >&2; exit 2 ;;
esac
read -r -a ios <<<"${IOS:-uring poll}"
read -r -a zmodes <<<"${COMPRESS:--}"
declare -A times
for io in "${ios[@]}"; do
	"$SX" serve --listen 127.0.0.1:0 --port-file "$W/port" --id "$W/srv" --out "$W/out" \
		--io "$io" 2>"$W/serve-$io.log" &
	SRV=$!
	for _ in $(seq 1 100); do [ -s "$W/port" ] && break; sleep 0.05; done
	port=$(cat "$W/port")
	for r in $(seq 1 "$runs"); do
		for suite in "${suites[@]}"; do
			for mode in "${modes[@]}"; do
				for z in "${zmodes[@]}"; do
					rm -f "$W/out/bench/in.bin" "$W/out/bench/in.bin.sxsig"
					extra=(--receipts "$W/receipts")
					[ "$mode" = unsigned ] && extra=(--no-sign)
					[ "$z" = - ] || extra+=(--compress "$z")
					t=$("$SX" send --id "$W/cli" --io "$io" --suite "$suite" \
						--chunk "$chunk" "${extra[@]}" --json "127.0.0.1:$port" \
						"$W/in.bin" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
					times["$io/$suite/$mode/$z"]+="$t "
				done
			done
		done
	done
	kill "$SRV"
	wait "$SRV" 2>/dev/null || true
	SRV=""
	rm -f "$W/port"
done
printf '%-8s %-18s %-9s %-8s %10s %12s   %s\n' backend suite mode compress "median s" "MiB/s" \
	"runs (s)"
for io in "${ios[@]}"; do
	for suite in "${suites[@]}"; do
		for mode in "${modes[@]}"; do
			for z in "${zmodes[@]}"; do
				v=${times["$io/$suite/$mode/$z"]}
				med=$(echo "$v" | tr ' ' '\n' | grep . | sort -n |
					awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
				printf '%-8s %-18s %-9s %-8s %10.3f %12.1f   %s\n' "$io" "$suite" "$mode" \
					"$z" "$med" "$(echo "$size_mib / $med" | bc -l)" "$v"
			done
		done
	done
done
