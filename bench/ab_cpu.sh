#!/usr/bin/env bash
# CPU of both ends for two sxfer builds, interleaved (A B, then B A, ...):
# one `serve --once` and one `send` per run, each under /usr/bin/time.
# Usage: bench/ab_cpu.sh RUNS INPUT SXFER_A SXFER_B [send options...]
# INPUT is a file or a folder. Prints one line per run:
#   TAG recv USER SYS MAXRSS_KIB | send USER SYS WALL MAXRSS_KIB
# and the medians per build at the end.
set -euo pipefail
runs=$1 in=$2 A=$3 B=$4
shift 4
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-abcpu-XXXXXX")
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
export SXFER_PASSPHRASE=bench HOME=$W/home
"$A" ca init --ca "$W/ca" --name "bench CA" >/dev/null
"$A" ca issue --ca "$W/ca" --name localhost --role server --dns localhost --ip 127.0.0.1 \
	--out "$W/srv" >/dev/null
"$A" ca issue --ca "$W/ca" --name bench --role client --out "$W/cli" >/dev/null
one() {
	local sx=$1 tag=$2
	shift 2
	rm -rf "$W/out" "$W/port"
	/usr/bin/time -f 'recv %U %S %M' -o "$W/rt" "$sx" serve --once --listen 127.0.0.1:0 \
		--port-file "$W/port" --id "$W/srv" --out "$W/out" 2>/dev/null &
	SRV=$!
	for _ in $(seq 1 100); do [ -s "$W/port" ] && break; sleep 0.05; done
	/usr/bin/time -f 'send %U %S %e %M' -o "$W/st" "$sx" send --id "$W/cli" \
		--receipts "$W/rc" "$@" --quiet "127.0.0.1:$(cat "$W/port")" "$in"
	wait "$SRV"
	SRV=""
	echo "$tag $(cat "$W/rt") | $(cat "$W/st")" | tee -a "$W/all"
}
for r in $(seq 1 "$runs"); do
	if ((r % 2)); then
		one "$A" A "$@"
		one "$B" B "$@"
	else
		one "$B" B "$@"
		one "$A" A "$@"
	fi
done
echo "medians:   recv user  sys  u+s | send user  sys  u+s | wall"
for t in A B; do
	awk -v t="$t" '$1 == t {
		n++; ru[n] = $3; rs[n] = $4; rt[n] = $3 + $4
		su[n] = $8; ss[n] = $9; st[n] = $8 + $9; w[n] = $10
	}
	function med(a,   i, j, x, b) {
		for (i = 1; i <= n; i++) b[i] = a[i]
		for (i = 2; i <= n; i++) { x = b[i]; for (j = i - 1; j > 0 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
		return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
	}
	END { printf "%s (n=%d)    %5.2f %5.2f %5.2f |      %5.2f %5.2f %5.2f | %5.2f\n", t, n,
		med(ru), med(rs), med(rt), med(su), med(ss), med(st), med(w) }' "$W/all"
done
