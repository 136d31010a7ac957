#!/usr/bin/env bash
# CPU seconds of both ends of one transfer at a time: `sxfer serve --once`
# and `sxfer send` each under /usr/bin/time (user and system CPU, peak
# memory), and the client command's wall time. Every variant runs RUNS times
# (7), interleaved, the order of the variants rotated by one place each run
# (A B, then B A, ...). Before every run, a little more memory than the run
# needs is written into tmpfs and freed (--warm), and the server runs on one
# core, the client on another (--no-pin for neither); each output is compared
# with its input (not timed) and removed at once. At the end: min and median
# per variant of the wall time and of the user and system CPU of each side
# (docs/PERFORMANCE.md, "Method").
#
# Usage: bench/cpu.sh [--runs N] [--size-mib N] [--input PATH] [--out-dir DIR]
#                     [--uncached] [--warm MIB | --no-warm]
#                     [--no-pin | --pin-server CPU --pin-client CPU]
#                     [--csv FILE] [--json FILE] [--quick] VARIANT [VARIANT...]
# A VARIANT is "[@SXFER] [get] SERVE OPTIONS | CLIENT OPTIONS": an optional
# sxfer binary to use (to compare two builds), then "get" for the other
# direction (the server sends the input from its --export with `sxfer get`;
# the receiver columns are then the client's, the sender columns the
# server's), then options for either side (both may be empty). Examples:
#   bench/cpu.sh '|' '| --no-sign'
#   bench/cpu.sh --runs 9 '|' 'get |'
#   bench/cpu.sh --out-dir /var/tmp '|' '--no-direct |'
#   bench/cpu.sh --runs 10 --input /dev/shm/tree '@before/sxfer |' '@after/sxfer |'
# --input: a file or a folder to send (default: a random file of SIZE_MIB
#   MiB, 1024, made in the work folder).
# --out-dir: where the receiver stores (default: the work folder, on
#   /dev/shm when it exists); a disk shows the page cache and direct I/O.
# --warm MIB: before every run, write and free MIB MiB of tmpfs pages, so that
#   no variant is the one that meets memory the host has not backed yet (on a
#   VM that costs several CPU seconds per GiB and decides comparisons).
#   Default: the input's size + 256 MiB; --no-warm: do not.
# --uncached: before every run, drop the input's pages from the page cache
#   (dd iflag=nocache), as for media read from a disk the first time; the
#   input should then be on a disk (--input), tmpfs cannot drop them.
# --no-pin: the scheduler places both sides. By default the server is on
#   core 0 and the client on core 1 (taskset; --pin-server, --pin-client), as
#   on two hosts; their worker threads (--threads) then share that one core.
# --csv FILE: every run, one row each; --json FILE: the same with the header.
# --quick: 64 MiB, 1 run: a smoke run of the script, not a figure.
# Environment: SXFER (build/sxfer), the binary of variants without @.
set -euo pipefail
export LC_ALL=C
argv0=$0 argv=("$@")
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
runs=7 size_mib=1024 out_dir="" input="" uncached=0 warm=1 warm_mib="" quick=0
pin=1 pin_server=0 pin_client=1 csv_out="" json_out=""
need() { [ $# -ge 2 ] || { echo "cpu.sh: $1 needs a value (--help)" >&2; exit 2; }; }
# Options may come before or after the variants: an argument with a "|" or
# a space in it is a variant, and so is one that does not start with "-".
variants=()
while (($#)); do
	case "$1" in
	*"|"* | *[[:space:]]*) variants+=("$1"); shift ;;
	--runs) need "$@"; runs=$2; shift 2 ;;
	--size-mib) need "$@"; size_mib=$2; shift 2 ;;
	--input) need "$@"; input=$(realpath "$2"); shift 2 ;;
	--out-dir) need "$@"; out_dir=$2; shift 2 ;;
	--uncached) uncached=1; shift ;;
	--warm) need "$@"; warm_mib=$2 warm=1; shift 2 ;;
	--no-warm) warm=0; shift ;;
	--pin) pin=1; shift ;;
	--no-pin) pin=0; shift ;;
	--pin-server) need "$@"; pin_server=$2 pin=1; shift 2 ;;
	--pin-client) need "$@"; pin_client=$2 pin=1; shift 2 ;;
	--csv) need "$@"; csv_out=$2; shift 2 ;;
	--json) need "$@"; json_out=$2; shift 2 ;;
	--quick) quick=1 size_mib=64 runs=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; variants+=("$@"); break ;;
	-*) echo "cpu.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	*) variants+=("$1"); shift ;;
	esac
done
((${#variants[@]})) || variants=('|')
for v in "$runs" "$size_mib" ${warm_mib:+"$warm_mib"}; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "cpu.sh: '$v' is not a positive integer" >&2; exit 2; }
done
SX=${SXFER:-build/sxfer}
[ -x "$SX" ] || { echo "cpu.sh: build sxfer first (bash scripts/demo.sh)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "cpu.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
bench_pin_init "$pin" "$pin_server" "$pin_client"
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-cpu-XXXXXX")
bench_warm_init "$W"
O=""
SRV=""
# shellcheck disable=SC2317 # run by the EXIT trap
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
in_mib=$(du -sm --apparent-size "$input" | cut -f1)
warm_run=0
((warm)) && warm_run=${warm_mib:-$((in_mib + 256))}
# get variants: the input under the export's shared/ (hard links where the
# file system allows, else a copy; a symlink would be refused).
mkdir -p "$W/exp/shared"
cp -al "$input" "$W/exp/shared/" 2>/dev/null || cp -a "$input" "$W/exp/shared/"
RUNS_CSV=$W/runs.csv
echo "variant,input,mib,run,position,status,wall_s,recv_user_s,recv_sys_s,send_user_s,send_sys_s,recv_max_kib,send_max_kib,server_side" >"$RUNS_CSV"

wait_port_file() {
	for _ in $(seq 1 200); do [ -s "$W/port" ] && return 0; sleep 0.05; done
	echo "cpu.sh: the server did not start: $(tail -3 "$W/serve.log")" >&2
	exit 1
}

one() { # one VARIANT RUN POSITION
	local v=$1 r=$2 pos=$3 sx=$SX sargs cargs t0 t1 wall status=ok
	local su ss sm cu cs cm ru rs rm xu xs xm side=receiver
	v="${v#"${v%%[![:space:]]*}"}"
	if [[ $v == @* ]]; then
		sx=${v%%[[:space:]|]*}
		v=${v#"$sx"}
		sx=${sx#@}
	fi
	local get=0
	v="${v#"${v%%[![:space:]]*}"}"
	if [[ $v == get || $v == "get "* || $v == "get|"* ]]; then
		get=1 side=sender
		v=${v#get}
	fi
	read -r -a sargs <<<"${v%%|*}"
	cargs=()
	[[ $v == *"|"* ]] && read -r -a cargs <<<"${v#*|}"
	rm -rf "${O:?}/bench" "$W/gout" "$W/port"
	if ((uncached)); then
		find "$input" -type f -exec dd if={} iflag=nocache count=0 status=none \;
	fi
	if ((get)); then
		# The server sends from its --export; the client receives.
		/usr/bin/time -f '%U %S %M' -o "$W/srv.time" "${PIN_S[@]}" "$sx" serve --once \
			--listen 127.0.0.1:0 --port-file "$W/port" --id "$W/srv" --out "$W/gout" \
			--export "$W/exp" "${sargs[@]}" 2>"$W/serve.log" &
		SRV=$!
		wait_port_file
		bench_warm "$warm_run"
		t0=$EPOCHREALTIME
		/usr/bin/time -f '%U %S %M' -o "$W/cli.time" "${PIN_C[@]}" "$sx" get --id "$W/cli" \
			--quiet "${cargs[@]}" "127.0.0.1:$(cat "$W/port")" "shared/$name" "$O/bench" ||
			status=failed
	else
		/usr/bin/time -f '%U %S %M' -o "$W/srv.time" "${PIN_S[@]}" "$sx" serve --once \
			--listen 127.0.0.1:0 --port-file "$W/port" --id "$W/srv" --out "$O" "${sargs[@]}" \
			2>"$W/serve.log" &
		SRV=$!
		wait_port_file
		bench_warm "$warm_run"
		t0=$EPOCHREALTIME
		/usr/bin/time -f '%U %S %M' -o "$W/cli.time" "${PIN_C[@]}" "$sx" send --id "$W/cli" \
			--receipts "$W/receipts" --quiet "${cargs[@]}" "127.0.0.1:$(cat "$W/port")" "$input" ||
			status=failed
	fi
	t1=$EPOCHREALTIME
	# A client that failed may leave `serve --once` waiting for a transfer.
	[ "$status" = ok ] || kill "$SRV" 2>/dev/null || true
	wait "$SRV" || status=failed
	SRV=""
	# Not timed; and the copy goes at once, not to hold memory in the next run.
	if [ "$status" = ok ] && ! diff -rq -x '*.sxsig' "$input" "$O/bench/$name" >/dev/null; then
		status=differs
	fi
	rm -rf "${O:?}/bench" "$W/gout"
	[ "$status" = ok ] || { echo "cpu.sh: $1, run $r: $status ($(tail -2 "$W/serve.log"))" >&2; exit 1; }
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
	read -r su ss sm <"$W/srv.time"
	read -r cu cs cm <"$W/cli.time"
	if ((get)); then
		ru=$cu rs=$cs rm=$cm xu=$su xs=$ss xm=$sm
	else
		ru=$su rs=$ss rm=$sm xu=$cu xs=$cs xm=$cm
	fi
	printf '%-36s %4s %9s %9s %9s %9s %8s %9s %9s\n' "$1" "$r" "$ru" "$rs" "$xu" "$xs" "$wall" \
		"$((rm / 1024))" "$((xm / 1024))"
	printf '"%s",%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "${1//\"/\"\"}" "$name" "$in_mib" "$r" \
		"$pos" "$status" "$wall" "$ru" "$rs" "$xu" "$xs" "$rm" "$xm" "$side" >>"$RUNS_CSV"
}

w="off"
((warm)) && w=$(bench_warm_how 1 "$warm_run MiB")
{
	bench_header "$argv0" "${argv[@]}"
	echo "sxfer:   $(realpath "$SX") ($("$SX" --version 2>/dev/null | head -1))"
	echo "inputs:  $name ($in_mib MiB$([ -d "$input" ] && echo ", $(find "$input" -type f | wc -l) files"));" \
		"the receiver stores on $(stat -f -c %T "$O")"
	echo "runs:    $runs per variant, interleaved, the order of the variants rotated each run"
	echo "pinning: $(bench_pin_how "$pin" "$pin_server" "$pin_client")"
	echo "warming: $w"
	if ((quick)); then echo "--quick: a smoke run of the script; its figures are not results"; fi
} | tee "$W/header.txt"
echo
printf '%-36s %4s %9s %9s %9s %9s %8s %9s %9s\n' variant run "recv usr" "recv sys" "send usr" \
	"send sys" "wall s" "recv MiB" "send MiB"
n=${#variants[@]}
for r in $(seq 1 "$runs"); do
	for ((p = 0; p < n; p++)); do
		one "${variants[$(((p + r - 1) % n))]}" "$r" "$((p + 1))"
	done
done
python3 bench/runstats.py cpu "$RUNS_CSV"
[ -n "$csv_out" ] && cp "$RUNS_CSV" "$csv_out" && echo "cpu.sh: every run: $csv_out" >&2
if [ -n "$json_out" ]; then
	sed -n 's/^\([a-z-]*\): *\(.*\)$/\1\t\2/p' "$W/header.txt" >"$W/meta.tsv"
	python3 bench/runstats.py json "$RUNS_CSV" "$W/meta.tsv" "$json_out"
	echo "cpu.sh: every run: $json_out" >&2
fi
exit 0
