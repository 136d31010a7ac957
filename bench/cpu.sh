#!/usr/bin/env bash
# CPU seconds of both ends of one transfer at a time: `sxfer serve --once`
# and `sxfer send` each under /usr/bin/time (user, system, peak memory), and
# the sender's wall time. Variants are interleaved, alternating their order
# run by run (A B, then B A, ...); each output is compared with its input;
# medians per variant at the end.
#
# Usage: bench/cpu.sh [--runs N] [--size-mib N] [--input PATH] [--out-dir DIR]
#                     [--uncached] VARIANT [VARIANT...]
# A VARIANT is "[@SXFER] [get] SERVE OPTIONS | CLIENT OPTIONS": an optional
# sxfer binary to use (to compare two builds), then "get" for the other
# direction (the server sends the input from its --export with `sxfer get`;
# the receiver columns are then the client's, the sender columns the
# server's), then options for either side (both may be empty). Examples:
#   bench/cpu.sh '|' '| --no-sign'
#   bench/cpu.sh --runs 7 --warm 3072 '|' 'get |'
#   bench/cpu.sh --out-dir /var/tmp '|' '--no-direct |'
#   bench/cpu.sh --runs 10 --input /dev/shm/tree '@before/sxfer |' '@after/sxfer |'
# --input: a file or a folder to send (default: a random file of SIZE_MIB
#   MiB, 1024, made in the work folder).
# --out-dir: where the receiver stores (default: the work folder, on
#   /dev/shm when it exists); a disk shows the page cache and direct I/O.
# --warm MIB: before every run, write and free MIB MiB of tmpfs pages, so that
#   no variant is the one that meets memory the host has not backed yet
#   (on a VM that costs several CPU seconds per GiB and decides comparisons).
# --uncached: before every run, drop the input's pages from the page cache
#   (dd iflag=nocache), as for media read from a disk the first time; the
#   input should then be on a disk (--input), tmpfs cannot drop them.
# --pin: the server on core 0 and the client on core 1 (taskset), as on two
#   hosts; without it the scheduler places both.
# Environment: SXFER (build/sxfer), the binary of variants without @.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 size_mib=1024 out_dir="" input="" uncached=0 warm_mib=0 pin=0
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--input) input=$(realpath "$2"); shift 2 ;;
	--out-dir) out_dir=$2; shift 2 ;;
	--uncached) uncached=1; shift ;;
	--warm) warm_mib=$2; shift 2 ;;
	--pin) pin=1; shift ;;
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
	[ -n "$out_dir" ] && [ -n "$O" ] && rm -rf "$O"
	return 0
}
trap cleanup EXIT
[ -n "${CPU_KEEP:-}" ] && trap - EXIT
if [ -n "$out_dir" ]; then
	O=$(mktemp -d "$out_dir/sxfer-cpu-out-XXXXXX")
else
	O=$W/out
	mkdir -p "$O"
fi
export SXFER_PASSPHRASE=bench HOME=$W/home
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
"$SX" ca init --ca "$W/ca" --name "bench CA" >/dev/null
"$SX" ca issue --ca "$W/ca" --name localhost --role server --dns localhost --ip 127.0.0.1 \
	--out "$W/srv" >/dev/null
"$SX" ca issue --ca "$W/ca" --name bench --role client --out "$W/cli" >/dev/null
if [ -z "$input" ]; then
	input=$W/in.bin
	head -c $((size_mib << 20)) /dev/urandom >"$input"
fi
[ -e "$input" ] || { echo "cpu.sh: no input $input" >&2; exit 2; }
name=$(basename "$input")
PS=() PC=()
if ((pin)); then
	PS=(taskset -c 0)
	PC=(taskset -c 1)
fi
# get variants: the input under the export's shared/ (hard links where the
# file system allows, else a copy; a symlink would be refused).
mkdir -p "$W/exp/shared"
cp -al "$input" "$W/exp/shared/" 2>/dev/null || cp -a "$input" "$W/exp/shared/"

one() { # one VARIANT RUN
	local v=$1 r=$2 sx=$SX sargs cargs ru rs rm su ss wall sm
	v="${v#"${v%%[![:space:]]*}"}"
	if [[ $v == @* ]]; then
		sx=${v%%[[:space:]|]*}
		v=${v#"$sx"}
		sx=${sx#@}
	fi
	local get=0
	v="${v#"${v%%[![:space:]]*}"}"
	if [[ $v == get || $v == "get "* || $v == "get|"* ]]; then
		get=1
		v=${v#get}
	fi
	read -r -a sargs <<<"${v%%|*}"
	cargs=()
	[[ $v == *"|"* ]] && read -r -a cargs <<<"${v#*|}"
	rm -rf "${O:?}/bench" "$W/port"
	if ((warm_mib)); then
		dd if=/dev/zero of="$W/warm" bs=1M count="$warm_mib" status=none
		rm -f "$W/warm"
	fi
	if ((uncached)); then
		find "$input" -type f -exec dd if={} iflag=nocache count=0 status=none \;
	fi
	if ((get)); then
		# The server sends: its time goes to the sender's columns.
		/usr/bin/time -f '%U %S %e %M' -o "$W/send.time" "${PS[@]}" "$sx" serve --once \
			--listen 127.0.0.1:0 --port-file "$W/port" --id "$W/srv" --out "$W/gout" \
			--export "$W/exp" "${sargs[@]}" 2>"$W/serve.log" &
		SRV=$!
		for _ in $(seq 1 200); do [ -s "$W/port" ] && break; sleep 0.05; done
		/usr/bin/time -f '%U %S %e %M' -o "$W/recv.time" "${PC[@]}" "$sx" get --id "$W/cli" \
			--quiet "${cargs[@]}" "127.0.0.1:$(cat "$W/port")" "shared/$name" "$O/bench"
		wait "$SRV"
		SRV=""
		# the client's wall time, in the column of the sender's
		local cu cs cw cm xu xs xw xm
		read -r cu cs cw cm <"$W/recv.time"
		read -r xu xs xw xm <"$W/send.time"
		echo "$cu $cs $cm" >"$W/recv.time"
		echo "$xu $xs $cw $xm" >"$W/send.time"
	else
		/usr/bin/time -f '%U %S %M' -o "$W/recv.time" "${PS[@]}" "$sx" serve --once --listen 127.0.0.1:0 \
			--port-file "$W/port" --id "$W/srv" --out "$O" "${sargs[@]}" 2>"$W/serve.log" &
		SRV=$!
		for _ in $(seq 1 200); do [ -s "$W/port" ] && break; sleep 0.05; done
		/usr/bin/time -f '%U %S %e %M' -o "$W/send.time" "${PC[@]}" "$sx" send --id "$W/cli" \
			--receipts "$W/receipts" --quiet "${cargs[@]}" "127.0.0.1:$(cat "$W/port")" "$input"
		wait "$SRV"
		SRV=""
	fi
	diff -r -x '*.sxsig' "$input" "$O/bench/$name" >/dev/null ||
		{ echo "cpu.sh: output differs from input" >&2; exit 1; }
	read -r ru rs rm <"$W/recv.time"
	read -r su ss wall sm <"$W/send.time"
	printf '%-36s %4s %9s %9s %9s %9s %8s %9s %9s\n' "$1" "$r" "$ru" "$rs" "$su" "$ss" "$wall" \
		"$((rm / 1024))" "$((sm / 1024))"
	printf '%s\t%s %s %s %s %s\n' "$1" "$ru" "$rs" "$su" "$ss" "$wall" >>"$W/all"
}

echo "sxfer cpu: $(uname -r), $(nproc) cores; input $name ($(du -sh "$input" | cut -f1));" \
	"receiver stores on $(stat -f -c %T "$O")"
printf '%-36s %4s %9s %9s %9s %9s %8s %9s %9s\n' variant run "recv usr" "recv sys" "send usr" \
	"send sys" "wall s" "recv MiB" "send MiB"
variants=("$@")
for r in $(seq 1 "$runs"); do
	if ((r % 2)); then
		for ((i = 0; i < ${#variants[@]}; i++)); do one "${variants[$i]}" "$r"; done
	else
		for ((i = ${#variants[@]} - 1; i >= 0; i--)); do one "${variants[$i]}" "$r"; done
	fi
done
echo
echo "medians per variant: recv user, sys, user+sys | send user, sys, user+sys | wall; min wall"
for v in "${variants[@]}"; do
	awk -F'\t' -v v="$v" '$1 == v {
		split($2, a, " "); n++
		ru[n] = a[1]; rs[n] = a[2]; rt[n] = a[1] + a[2]
		su[n] = a[3]; ss[n] = a[4]; st[n] = a[3] + a[4]; w[n] = a[5]
		if (n == 1 || a[5] < wmin) wmin = a[5]
	}
	function med(x,   i, j, t, b) {
		for (i = 1; i <= n; i++) b[i] = x[i]
		for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j > 0 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
		return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
	}
	END { printf "  %-36s %5.2f %5.2f %5.2f | %5.2f %5.2f %5.2f | %5.2f; %5.2f (n=%d)\n", v,
		med(ru), med(rs), med(rt), med(su), med(ss), med(st), med(w), wmin, n }' "$W/all"
done
