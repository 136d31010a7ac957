#!/usr/bin/env bash
# A fleet of devices uploading at once to one `sxfer serve`, driven by ONE
# load-generating process (`sxfer bench fleet`: a thread per device, its
# identity loaded once), against one stream of a comparable size.
#
# In a work folder in /dev/shm: a CA (no passphrase) and its CRL, the
# server's identity, DEVICES device identities (dev-0001, ...; issued once,
# reused by every run) and each device's own SIZE bytes (a keystream per
# device, made once). `sxfer serve` is pinned to core 0 (--threads as given),
# the generator to core 1 (--no-pin: neither). RUNS runs, each of them: the
# fleet (all devices released at one moment), then one device sending SINGLE
# bytes (default DEVICES x SIZE, at most 1 GiB) - interleaved, so that both
# see the same machine. Before each measurement the pages it will touch are
# written and freed (this machine's hypervisor makes a first touch cost
# 3.5-4 CPU-s/GiB: unwarmed runs lie); after it every stored file is
# compared with what its device sent (cmp) and removed, so that the next run
# starts equal.
#
# Prints for each run and then min/median: wall (release to the last
# finish), aggregate MiB/s, time to first data p50/p99 (device start to its
# first DATA record queued on the socket), the server's user and system CPU
# (/proc/PID/stat before and after), its peak RSS (VmHWM, reset before
# each run) and the generator's CPU (user + system, its getrusage); then
# the single stream's MiB/s and the ratio of the medians (the target: the
# fleet's aggregate at least 80% of one stream's). When the generator's CPU
# nears the wall time, its core is the bottleneck, not the server.
#
# --memory measures instead the server's memory per connected device, for
# 100 and DEVICES connections: idle (`sxfer bench handshakes --hold`: each
# connection authenticated, HELLO sent, then nothing) and receiving (the
# fleet, every device sending the same SIZE file with 1 MiB records: all
# connect at once and the server serves them in turn, so each is mid-upload
# for nearly the whole run): VmRSS (idle: held for 1 s; receiving: the
# peak, VmHWM, as each connection's receive buffers are touched one by one
# through the run) minus before, per connection, beside Pss.
#
# The server's limits are raised for the benchmark, and said so: every
# device connects from 127.0.0.1, so --max-handshakes-per-addr (default 8)
# becomes DEVICES; --max-conns (default 64) 4/3 of DEVICES plus 16 (a
# quarter of the connections may not be in their handshake); the file
# descriptors (ulimit -n) of both processes 8 per device plus 1024; and
# --handshake-timeout (default 10 s) 60 s, as one core of the generator
# makes the handshakes of every device while the first ones send.
#
# Usage: bench/fleet.sh [--devices N] [--size SIZE] [--runs N] [--threads N]
#                       [--single SIZE] [--no-single] [--no-pin] [--memory]
#                       [--fleet-opts "OPTS"] [--serve-opts "OPTS"]
# Defaults: 500 devices, 8M each, 7 runs, serve --threads 1. SIZE: 256K, 8M,
# 1G (binary). --fleet-opts: more options of `sxfer bench fleet` (--no-sign,
# --io poll, --concurrency K, ...); --serve-opts: more options of serve.
# Environment: SXFER (build/sxfer). Needs python3; memory, roughly: DEVICES x
# SIZE twice (inputs and stored copies) + SINGLE + the generator's 8 MiB per
# device at once + the server's.
set -euo pipefail
cd "$(dirname "$0")/.."
ME=fleet
devices=500 size=8M runs=7 threads=1 single="" do_single=1 pin=1 memory=0
fleet_opts="" serve_opts=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
	case "$1" in
	--devices) devices=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--single) single=$2; shift 2 ;;
	--no-single) do_single=0; shift ;;
	--no-pin) pin=0; shift ;;
	--memory) memory=1; shift ;;
	--fleet-opts) fleet_opts=$2; shift 2 ;;
	--serve-opts) serve_opts=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "fleet.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
done
for v in "$devices" "$runs" "$threads"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "fleet.sh: '$v' is not a positive integer" >&2; exit 2; }
done
bytes_of() { # 8M -> 8388608 (K, M, G: binary)
	local n=${1%[KkMmGg]} u=${1: -1}
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "fleet.sh: '$1' is not a size such as 8M" >&2; exit 2; }
	case "$u" in
	K | k) echo $((n << 10)) ;; M | m) echo $((n << 20)) ;; G | g) echo $((n << 30)) ;;
	*) echo "$n" ;;
	esac
}
size_b=$(bytes_of "$size")
total_b=$((devices * size_b))
if [ -n "$single" ]; then single_b=$(bytes_of "$single"); else
	single_b=$((total_b < (1 << 30) ? total_b : (1 << 30)))
fi

source bench/fleet_lib.sh
read -r -a fopts <<<"$fleet_opts"
read -r -a sopts <<<"$serve_opts"
set_pins "$pin"
max_conns=$((devices * 4 / 3 + 16))
((max_conns > 4096)) && max_conns=4096
hs_addr=$((devices > 4096 ? 4096 : devices))
raise_nofile $((devices * 8 + 1024))
make_pki
# The devices' identities, issued once by the CA (no scrypt per device),
# and each device's data (--memory: one file that every device sends).
if ((memory)); then
	log "issuing $devices identities"
	"$SX" bench fleet --prepare --ca "$W/ca" --ids "$W/ids" --devices 1 --size "$size" \
		--data "$W/mem" >/dev/null
	"$SX" bench fleet --prepare --ca "$W/ca" --ids "$W/ids" --devices "$devices" \
		--input "$W/mem/dev-0001.bin" >/dev/null
else
	log "issuing $devices identities and making their data ($devices x $size)"
	"$SX" bench fleet --prepare --ca "$W/ca" --ids "$W/ids" --devices "$devices" \
		--size "$size" --data "$W/data" >/dev/null
fi

start_serve serve --out "$W/out" --threads "$threads" --max-conns "$max_conns" \
	--max-handshakes-per-addr "$hs_addr" --handshake-timeout 60 "${sopts[@]}"
echo "sxfer $ME: $(uname -r), $(nproc) cores; $("$SX" --version 2>/dev/null | head -1)"
pinned0=${PIN0:+ (pinned: core 0)}
echo "server: sxfer serve --threads $threads --max-conns $max_conns" \
	"--max-handshakes-per-addr $hs_addr --handshake-timeout 60 ${serve_opts}${pinned0};" \
	"ledger as by default; ulimit -n $(ulimit -n)"
echo "  (raised for the benchmark: every device connects from 127.0.0.1, and one core" \
	"handshakes for all of them; the defaults are --max-conns 64," \
	"--max-handshakes-per-addr 8, --handshake-timeout 10)"
echo "generator: sxfer bench fleet --devices $devices --size $size ${fleet_opts}${PIN1:+ (pinned: core 1)}"

# fleet_run OUTJSON DEVICES SIZE DATA [options]: one measurement; sets
# CPU_U, CPU_S (server seconds), PEAK (server VmHWM, KiB) and RC.
fleet_run() {
	local out=$1 n=$2 sz=$3 data=$4 c0 c1
	shift 4
	reset_peak "$SRV_PID"
	read -r -a c0 <<<"$(cpu_ticks "$SRV_PID")"
	RC=0
	$PIN1 "$SX" bench fleet --ids "$W/ids" --devices "$n" --size "$sz" --data "$data" --json \
		"${fopts[@]}" "$@" "127.0.0.1:$SRV_PORT" >"$out" 2>"$out.err" || RC=$?
	read -r -a c1 <<<"$(cpu_ticks "$SRV_PID")"
	CPU_U=$(ticks_s $((c1[0] - c0[0])))
	CPU_S=$(ticks_s $((c1[1] - c0[1])))
	PEAK=$(rss_kib "$SRV_PID" VmHWM)
}

# The server's errors, counted by cause, and its last lines.
serve_errors() {
	grep 'level=error' "$W/serve.log" | grep -oE 'cause="[^"]*"' | sort | uniq -c >&2 || true
	tail -n 5 "$W/serve.log" >&2
}

# check_and_clear DEVICES DATA: every stored file is what its device sent;
# then the stored files go.
check_and_clear() {
	local n=$1 data=$2 i name bad=0
	for ((i = 1; i <= n; i++)); do
		printf -v name 'dev-%04d' "$i"
		cmp -s "$data/$name.bin" "$W/out/$name/$name.bin" || { bad=$((bad + 1)); log "$name: stored copy differs or is missing"; }
	done
	rm -rf "$W"/out/dev-*
	((bad == 0)) || { serve_errors; log "$bad stored file(s) differ"; exit 1; }
}

# mem_row STATE N BEFORE AT PSS: one line of the memory table.
mem_row() {
	printf '  %-10s %6s %12s %12s %12s %14s\n' "$1" "$2" "$3" "$4" "$5" \
		"$(awk -v a="$3" -v b="$4" -v n="$2" 'BEGIN {printf "%.3f", (b - a) / 1024 / n}')"
}

# mem_idle N: N connections authenticated (HELLO sent) and silent.
mem_idle() {
	local n=$1 pid before held pss
	sleep 1
	before=$(rss_kib "$SRV_PID")
	$PIN1 "$SX" bench handshakes --id "$W/ids/dev-0001" --alpn sxfer/1 --count "$n" \
		--concurrency 16 --hold "127.0.0.1:$SRV_PORT" >"$W/hold.out" 2>"$W/hold.err" &
	pid=$!
	for _ in $(seq 1 600); do grep -q '^held' "$W/hold.out" && break; sleep 0.1; done
	grep -q '^held' "$W/hold.out" || { cat "$W/hold.err" >&2; log "idle connections not held"; exit 1; }
	sleep 1
	held=$(rss_kib "$SRV_PID")
	pss=$(pss_kib "$SRV_PID")
	kill "$pid"
	wait "$pid" || true
	mem_row idle "$n" "$before" "$held" "$pss"
}

# mem_recv N: N devices sending SIZE each at once. The server serves them
# in turn, so every one is connected and mid-upload for nearly the whole
# run (its total time close to the wall time). A connection's receive
# buffers are touched one by one as its writes overlap, so its RSS grows
# through the run: the figure is the peak (VmHWM, reset before), with the
# Pss of the sample (every 0.2 s) that saw the highest RSS.
mem_recv() {
	local n=$1 pid before peak pss=- top=0 v
	sleep 1
	warm $((n * size_b + n * (14 << 20) + (256 << 20)))
	before=$(rss_kib "$SRV_PID")
	reset_peak "$SRV_PID"
	$PIN1 "$SX" bench fleet --ids "$W/ids" --devices "$n" --input "$W/mem/dev-0001.bin" \
		--json "${fopts[@]}" "127.0.0.1:$SRV_PORT" >"$W/recv.json" 2>"$W/recv.err" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		v=$(rss_kib "$SRV_PID")
		((v > top)) && { top=$v; pss=$(pss_kib "$SRV_PID"); }
		sleep 0.2
	done
	wait "$pid" || { cat "$W/recv.json" "$W/recv.err" >&2; log "receiving fleet of $n failed"; exit 1; }
	peak=$(rss_kib "$SRV_PID" VmHWM)
	mem_row receiving "$n" "$before" "$peak" "$pss"
	echo "             (wall $(jget "$W/recv.json" wall_s) s, total per device p50" \
		"$(jget "$W/recv.json" total_s.p50) s; highest RSS sampled $top KiB)"
	rm -rf "$W"/out/dev-*
}

memory_mode() {
	local n
	echo
	echo "server memory per connection: MiB per conn = (RSS at - RSS before) / N; KiB;"
	echo "at: idle, held connections after 1 s; receiving, the peak (VmHWM)"
	printf '  %-10s %6s %12s %12s %12s %14s\n' state N before at Pss "MiB per conn"
	for n in 100 "$devices"; do
		((n <= devices)) || continue
		mem_idle "$n"
		mem_recv "$n"
		[ "$n" != "$devices" ] || break
	done
}

if ((memory)); then
	memory_mode
	exit 0
fi

if ((do_single)); then
	log "making the single stream's data ($((single_b >> 20)) MiB)"
	"$SX" bench fleet --prepare --ids "$W/ids" --devices 1 --size "$single_b" \
		--data "$W/data1" >/dev/null
fi

# Pages a run touches: the stored copies, the generator's slots (8 records
# per device), the server's receive buffers (4 per connection), and a margin.
warm_fleet=$((total_b + devices * (9 << 20) + devices * (5 << 20) + (256 << 20)))
warm_single=$((single_b + (64 << 20) + (256 << 20)))
printf '\n%-7s %4s %8s %9s %10s %10s %9s %9s %10s %9s\n' what run "wall s" "MiB/s" "first p50" \
	"first p99" "srv usr" "srv sys" "srv peak" "gen CPU"
printf '%-7s %4s %8s %9s %10s %10s %9s %9s %10s %9s\n' "" "" "" "" ms ms s s MiB s
F_WALL="" F_RATE="" F_P50="" F_P99="" F_U="" F_S="" F_PEAK="" F_GEN="" S_RATE="" S_U="" S_S=""
# row WHAT RUN JSON: one line of the table; sets WALL RATE P50 P99 GEN.
row() {
	read -r WALL RATE P50 P99 GEN <<<"$(jget "$3" wall_s mib_per_s first_data_ms.p50 \
		first_data_ms.p99 cpu_user_s cpu_sys_s | awk '{print $1, $2, $3, $4, $5 + $6}')"
	printf '%-7s %4s %8.3f %9.1f %10.1f %10.1f %9s %9s %10.1f %9.2f\n' "$1" "$2" "$WALL" "$RATE" \
		"$P50" "$P99" "$CPU_U" "$CPU_S" "$(awk -v k="$PEAK" 'BEGIN {print k / 1024}')" "$GEN"
}
for r in $(seq 1 "$runs"); do
	warm "$warm_fleet"
	fleet_run "$W/fleet.$r.json" "$devices" "$size" "$W/data"
	if ((RC != 0)); then
		cat "$W/fleet.$r.json" "$W/fleet.$r.json.err" >&2
		serve_errors
		log "run $r: the fleet failed (exit $RC)"
		exit 1
	fi
	check_and_clear "$devices" "$W/data"
	row fleet "$r" "$W/fleet.$r.json"
	F_WALL+="$WALL " F_RATE+="$RATE " F_P50+="$P50 " F_P99+="$P99 " F_U+="$CPU_U " F_S+="$CPU_S "
	F_PEAK+="$(awk -v k="$PEAK" 'BEGIN {print k / 1024}') " F_GEN+="$GEN "
	((do_single)) || continue
	warm "$warm_single"
	fleet_run "$W/single.$r.json" 1 "$single_b" "$W/data1"
	((RC == 0)) || { cat "$W/single.$r.json.err" >&2; log "run $r: the single stream failed"; exit 1; }
	check_and_clear 1 "$W/data1"
	row single "$r" "$W/single.$r.json"
	S_RATE+="$RATE " S_U+="$CPU_U " S_S+="$CPU_S "
done

# summary LABEL FORMAT VALUES: one line of min and median.
summary() {
	printf "  %-22s $2 $2\n" "$1" "$(echo "$3" | minimum)" "$(echo "$3" | median)"
}
echo
echo "fleet: $devices devices x $size ($((total_b >> 20)) MiB), $runs runs:"
printf '  %-22s %10s %10s\n' "" min median
summary "wall s" %10.3f "$F_WALL"
summary "aggregate MiB/s" %10.1f "$F_RATE"
summary "first data p50 ms" %10.1f "$F_P50"
summary "first data p99 ms" %10.1f "$F_P99"
summary "server user s" %10.2f "$F_U"
summary "server system s" %10.2f "$F_S"
summary "server peak RSS MiB" %10.1f "$F_PEAK"
summary "generator CPU s" %10.2f "$F_GEN"
if ((do_single)); then
	fr=$(echo "$F_RATE" | median)
	sr=$(echo "$S_RATE" | median)
	echo "single stream: one device, $((single_b >> 20)) MiB, $runs runs:"
	summary "MiB/s" %10.1f "$S_RATE"
	summary "server user s" %10.2f "$S_U"
	summary "server system s" %10.2f "$S_S"
	echo "ratio of the medians, fleet aggregate / single stream: $(awk -v a="$fr" -v b="$sr" \
		'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}') (target: at least 0.80)"
fi
echo "every stored file was compared with what its device sent (cmp), then removed"
