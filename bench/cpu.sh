#!/usr/bin/env bash
# CPU seconds of both ends of one transfer at a time: `sxfer serve --once`
# and `sxfer send` each under /usr/bin/time (user, system), the sender's
# wall time, for a random file of SIZE_MIB MiB. Variants are interleaved:
# run 1 of every variant, then run 2, ...
#
# Usage: bench/cpu.sh [--runs N] [--size-mib N] [--out-dir DIR]
#                     VARIANT [VARIANT...]
# A VARIANT is "SERVE OPTIONS | SEND OPTIONS" (either side may be empty),
# for example:  bench/cpu.sh --out-dir /var/tmp '' '--no-direct |'
# --out-dir: where the receiver stores (default: the work folder, on
#   /dev/shm when it exists); the input is always read from the work folder.
# Environment: SXFER (build/sxfer).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 size_mib=1024 out_dir=""
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--out-dir) out_dir=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
(($#)) || set -- '|'
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "cpu.sh: build sxfer first (bash scripts/demo.sh)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "cpu.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-cpu-XXXXXX")
O=""
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$W"
	[ -n "$O" ] && rm -rf "$O"
	return 0
}
trap cleanup EXIT
if [ -n "$out_dir" ]; then
	O=$(mktemp -d "$out_dir/sxfer-cpu-out-XXXXXX")
else
	O=$W/out
fi
export SXFER_PASSPHRASE=bench HOME=$W/home
"$SX" ca init --ca "$W/ca" --name "bench CA" >/dev/null
"$SX" ca issue --ca "$W/ca" --name localhost --role server --dns localhost --ip 127.0.0.1 \
	--out "$W/srv" >/dev/null
"$SX" ca issue --ca "$W/ca" --name bench --role client --out "$W/cli" >/dev/null
head -c $((size_mib << 20)) /dev/urandom >"$W/in.bin"

echo "sxfer cpu: $(uname -r), $(nproc) cores; ${size_mib} MiB random file; receiver stores on" \
	"$(stat -f -c %T "$O") ($(if [ -n "$out_dir" ]; then echo "$out_dir"; else echo work folder; fi))"
printf '%-40s %4s %10s %10s %10s %10s %8s\n' variant run "recv usr" "recv sys" "send usr" \
	"send sys" "wall s"
for r in $(seq 1 "$runs"); do
	for v in "$@"; do
		read -r -a sargs <<<"${v%%|*}"
		read -r -a cargs <<<"${v#*|}"
		[[ $v == *"|"* ]] || cargs=()
		rm -rf "$O/bench" "$W/port"
		/usr/bin/time -f '%U %S' -o "$W/recv.time" "$SX" serve --once --listen 127.0.0.1:0 \
			--port-file "$W/port" --id "$W/srv" --out "$O" "${sargs[@]}" 2>"$W/serve.log" &
		SRV=$!
		for _ in $(seq 1 200); do [ -s "$W/port" ] && break; sleep 0.05; done
		/usr/bin/time -f '%U %S %e' -o "$W/send.time" "$SX" send --id "$W/cli" \
			--receipts "$W/receipts" --quiet "${cargs[@]}" "127.0.0.1:$(cat "$W/port")" "$W/in.bin"
		wait "$SRV"
		SRV=""
		cmp -s "$W/in.bin" "$O/bench/in.bin" || { echo "cpu.sh: output differs" >&2; exit 1; }
		read -r ru rs <"$W/recv.time"
		read -r su ss wall <"$W/send.time"
		printf '%-40s %4s %10s %10s %10s %10s %8s\n' "${v:-(defaults)}" "$r" "$ru" "$rs" "$su" "$ss" \
			"$wall"
	done
done
