#!/usr/bin/env bash
# Loopback throughput of sxfer: a random file from tmpfs to tmpfs, for each
# suite and each I/O backend, RUNS times each, interleaved: in every run each
# combination once, their order rotated by one place from one run to the
# next. Before every transfer, a little more memory than it needs is written
# into tmpfs and freed (WARM); the servers run on one core and the senders
# on another (PIN); each copy is compared with its input (not timed) and
# removed at once (docs/PERFORMANCE.md, "Method"). The time is the sender's
# own (`send --json` seconds: from connecting to the last receipt). Prints
# min and median and the MiB/s from both.
# Usage: bench/loopback.sh [SIZE_MIB=1024] [RUNS=7] [CHUNK=1M] [SUITES...]
# SIGN=both (default) measures signed (the default) and --no-sign; SIGN=on or
# SIGN=off measures one. IOS="uring poll" (default) chooses the backends.
# COMPRESS="off auto" also interleaves those --compress modes (default: none,
# the sender's default).
# WARM=MIB to write and free before every transfer (default SIZE_MIB + 256;
# 0: none). PIN="SERVER_CPU,CLIENT_CPU" (default "0,1"); PIN=off: unpinned.
set -euo pipefail
export LC_ALL=C
argv0=$0 argv=("$@")
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
size_mib=${1:-1024}
runs=${2:-7}
chunk=${3:-1M}
shift $(($# < 3 ? $# : 3))
suites=("$@")
((${#suites[@]})) || suites=(aes256gcm aes256ctr-hmac chacha20poly1305)
for v in "$size_mib" "$runs"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "loopback.sh: '$v' is not a positive integer" >&2; exit 2; }
done
warm_mib=${WARM:-$((size_mib + 256))}
[[ $warm_mib =~ ^[0-9]+$ ]] || { echo "loopback.sh: WARM: a number of MiB" >&2; exit 2; }
pin_spec=${PIN:-0,1}
case "$pin_spec" in
off) pin=0 pin_server=0 pin_client=1 ;;
*,*) pin=1 pin_server=${pin_spec%%,*} pin_client=${pin_spec#*,} ;;
*) echo "loopback.sh: PIN: SERVER_CPU,CLIENT_CPU or off" >&2; exit 2 ;;
esac
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "build sxfer first (bash scripts/demo.sh or cmake --build build)" >&2; exit 2; }
bench_pin_init "$pin" "$pin_server" "$pin_client"
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-bench-XXXXXX")
bench_warm_init "$W"
SRVS=()
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local p
	for p in "${SRVS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SRVS[@]}"; do wait "$p" 2>/dev/null || true; done
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

# One server per backend, all started first, so that the backends can be
# interleaved like everything else.
declare -A port
for io in "${ios[@]}"; do
	mkdir -p "$W/out-$io"
	"${PIN_S[@]}" "$SX" serve --listen 127.0.0.1:0 --port-file "$W/port-$io" --id "$W/srv" \
		--out "$W/out-$io" --io "$io" 2>"$W/serve-$io.log" &
	SRVS+=($!)
	for _ in $(seq 1 200); do [ -s "$W/port-$io" ] && break; sleep 0.05; done
	[ -s "$W/port-$io" ] || { echo "loopback.sh: serve --io $io did not start" >&2; cat "$W/serve-$io.log" >&2; exit 1; }
	port[$io]=$(cat "$W/port-$io")
done
combos=()
for io in "${ios[@]}"; do
	for suite in "${suites[@]}"; do
		for mode in "${modes[@]}"; do
			for z in "${zmodes[@]}"; do combos+=("$io/$suite/$mode/$z"); done
		done
	done
done

{
	bench_header "$argv0" "${argv[@]}"
	echo "sxfer:   $(realpath "$SX") ($("$SX" --version 2>/dev/null | head -1))"
	echo "inputs:  one random file of $size_mib MiB, records of $chunk, tmpfs to tmpfs"
	echo "runs:    $runs per combination, interleaved, the order rotated each run"
	echo "pinning: $(bench_pin_how "$pin" "$pin_server" "$pin_client")"
	echo "warming: $(bench_warm_how "$warm_mib" "$warm_mib MiB")"
}
declare -A times
n=${#combos[@]}
for r in $(seq 1 "$runs"); do
	for ((p = 0; p < n; p++)); do
		IFS=/ read -r io suite mode z <<<"${combos[$(((p + r - 1) % n))]}"
		out=$W/out-$io/bench
		extra=(--receipts "$W/receipts")
		[ "$mode" = unsigned ] && extra=(--no-sign)
		[ "$z" = - ] || extra+=(--compress "$z")
		bench_warm "$warm_mib"
		t=$("${PIN_C[@]}" "$SX" send --id "$W/cli" --io "$io" --suite "$suite" \
			--chunk "$chunk" "${extra[@]}" --json "127.0.0.1:${port[$io]}" \
			"$W/in.bin" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
		# Not timed; the copy goes at once, not to hold memory in the next run.
		cmp -s "$W/in.bin" "$out/in.bin" || { echo "loopback.sh: $io $suite $mode: the copy differs" >&2; exit 1; }
		rm -f "$out/in.bin" "$out/in.bin.sxsig"
		times["$io/$suite/$mode/$z"]+="$t "
	done
done
echo
printf '%-8s %-18s %-9s %-8s %8s %8s %9s %9s   %s\n' backend suite mode compress "min s" \
	"median s" "MiB/s@min" "MiB/s@med" "runs (s, in run order)"
for c in "${combos[@]}"; do
	IFS=/ read -r io suite mode z <<<"$c"
	v=${times[$c]}
	read -r lo med <<<"$(echo "$v" | tr ' ' '\n' | grep . | sort -g |
		awk '{a[NR] = $1} END {print a[1], (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}')"
	printf '%-8s %-18s %-9s %-8s %8.3f %8.3f %9.1f %9.1f   %s\n' "$io" "$suite" "$mode" "$z" \
		"$lo" "$med" "$(awk -v m="$size_mib" -v t="$lo" 'BEGIN {print m / t}')" \
		"$(awk -v m="$size_mib" -v t="$med" 'BEGIN {print m / t}')" "$v"
done
