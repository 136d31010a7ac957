#!/usr/bin/env bash
# End-to-end comparison of sxfer with the usual ways to move files between
# two hosts, all over loopback from tmpfs into the same tmpfs:
#   sxfer (default, and --no-sign when the sender has it), scp, nginx HTTPS +
#   curl, rsync over ssh, tar over ssh.
# Inputs: one random file of SIZE_MIB MiB (big), and a folder of NFILES random
# files of FILE_KIB KiB each (tree).
#
# Method (docs/PERFORMANCE.md, "Method"): every tool runs RUNS times (7),
# interleaved (run 1 of every tool, then run 2, ...), the order of the tools
# rotated by one place each run. Before every single run, a little more
# memory than the run needs is written into tmpfs and freed (--warm), so no
# tool meets guest pages the host has not backed, which on a VM costs several
# CPU seconds per GiB. The server side of every tool runs on one core and the
# client side on another (--pin-server, --pin-client; --no-pin for neither).
# Each copy is compared with its input (not timed) and removed at once.
# Prints, per tool and input, the min and the median wall time, the rate
# from both, sxfer's speed-up over each peer from the minima and from the
# medians, and the user and system CPU of each side (per GiB), min and
# median; below, the cost per GiB of the primitives (memcpy, SHA-256,
# AES-256-GCM, sxfer's seal and open) from build/bench/sxfer_micro, run in
# the same invocation.
#
# Every peer server (sxfer serve, sshd, nginx) is started here, on 127.0.0.1
# and a free port, with throwaway keys in the work folder, and stopped by its
# PID on exit, Ctrl-C included.
#
# --link RATE (e.g. 100mbit) runs a different, optional measurement: sxfer
# and scp between two network namespaces created here, joined by a veth pair
# shaped with tc tbf to RATE, on a compressible log and on a random file of
# LINK_MIB MiB. When the sender has --compress, sxfer runs with
# --compress off and --compress auto. Needs root (ip netns); skipped with a
# message otherwise. The namespaces are removed on exit.
#
# Usage: bench/compare.sh [--quick] [--runs N] [--size-mib N] [--files N]
#                         [--file-kib N] [--tools LIST] [--warm MIB | --no-warm]
#                         [--no-pin | --pin-server CPU --pin-client CPU]
#                         [--csv FILE] [--json FILE] [--twice] [--link RATE]
#                         [--no-install]
# --tools: a subset of "sxfer sxfer-nosign scp https rsync tar", in the order
#   of the first run; speed-ups are against sxfer (signed), or the first
#   tool when sxfer is not in the list.
# --warm MIB: write and free MIB MiB before every run (default: the size of
#   that run's input + 256 MiB); --no-warm: do not.
# --no-pin: run both sides unpinned, so that each side's threads may use every
#   core (as the performance goal of signed sxfer against nginx is measured);
#   --pin-server CPU, --pin-client CPU: the cores (default 0 and 1). Pinned,
#   sxfer's worker threads (send --threads, serve's loops) share one core.
# --csv FILE: every single run, one row each (tool, input, run, position in
#   that run's order, status, wall s, user and system s of the server side and
#   of the client side); --json FILE: the same with the header's values.
#   `python3 bench/runstats.py compare FILE` prints the summary again from the CSV.
# --twice: the whole comparison twice, in two separate invocations (inputs,
#   servers and keys made anew), then both summaries side by side; with --csv
#   or --json, FILE-1 and FILE-2 (before the extension) hold the runs.
# --quick: 64 MiB, 100 files, 1 run, LINK_MIB 16: a smoke run of the script;
#   its figures are not results.
# Environment: SIZE_MIB (1024), NFILES (2000), FILE_KIB (256), RUNS (7),
#   LINK_MIB (256), LINK_BURST (32kbit), SXFER (build/sxfer),
#   SXFER_MICRO (build/bench/sxfer_micro).
set -euo pipefail
export LC_ALL=C
self=$(realpath "$0")
argv0=$0 argv=("$@")
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

usage() { sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; }

size_mib=${SIZE_MIB:-1024}
nfiles=${NFILES:-2000}
file_kib=${FILE_KIB:-256}
runs=${RUNS:-7}
link_mib=${LINK_MIB:-256}
link_burst=${LINK_BURST:-32kbit}
link_rate=""
install=1 quick=0 twice=0
warm=1 warm_mib=""
pin=1 pin_server=0 pin_client=1
csv_out="" json_out=""
tools="sxfer sxfer-nosign scp https rsync tar"
need() { [ $# -ge 2 ] || { echo "compare.sh: $1 needs a value (--help)" >&2; exit 2; }; }
while (($#)); do
	case "$1" in
	--quick) quick=1 size_mib=64 nfiles=100 runs=1 link_mib=16 ;;
	--runs) need "$@"; runs=$2; shift ;;
	--size-mib) need "$@"; size_mib=$2; shift ;;
	--files) need "$@"; nfiles=$2; shift ;;
	--file-kib) need "$@"; file_kib=$2; shift ;;
	--tools) need "$@"; tools=$2; shift ;;
	--link) need "$@"; link_rate=$2; shift ;;
	--warm) need "$@"; warm_mib=$2 warm=1; shift ;;
	--no-warm) warm=0 ;;
	--pin) pin=1 ;;
	--no-pin) pin=0 ;;
	--pin-server) need "$@"; pin_server=$2 pin=1; shift ;;
	--pin-client) need "$@"; pin_client=$2 pin=1; shift ;;
	--csv) need "$@"; csv_out=$2; shift ;;
	--json) need "$@"; json_out=$2; shift ;;
	--twice) twice=1 ;;
	--no-install) install=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
	shift
done
for v in "$size_mib" "$nfiles" "$file_kib" "$runs" "$link_mib" ${warm_mib:+"$warm_mib"}; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: '$v' is not a positive integer" >&2; exit 2; }
done
# FILE-N.EXT for invocation N of --twice (FILE-N without an extension)
nth_name() { # nth_name FILE N
	local f=$1 base ext
	base=${f##*/}
	if [[ $base == ?*.* ]]; then
		ext=${f##*.}
		echo "${f%.*}-$2.$ext"
	else
		echo "$f-$2"
	fi
}

# --- --twice: this script twice, then both summaries side by side ----------------
if ((twice)); then
	inner=()
	for a in "${argv[@]}"; do [ "$a" = --twice ] || inner+=("$a"); done
	td=$(mktemp -d "${TMPDIR:-/tmp}/sxfer-compare-twice-XXXXXX")
	trap 'rm -rf "$td"' EXIT
	for i in 1 2; do
		echo "=== invocation $i of 2 ==="
		COMPARE_INVOCATION=$i COMPARE_RUNS_COPY=$td/$i.csv "$self" "${inner[@]}"
		echo
	done
	echo "=== both invocations ==="
	bench_header "$argv0" "${argv[@]}"
	ref=sxfer
	[[ " $tools " == *" sxfer "* ]] || ref=${tools%% *}
	python3 bench/runstats.py twice --ref "$ref" "$td/1.csv" "$td/2.csv"
	exit 0
fi
if [ -n "${COMPARE_INVOCATION:-}" ]; then
	[ -n "$csv_out" ] && csv_out=$(nth_name "$csv_out" "$COMPARE_INVOCATION")
	[ -n "$json_out" ] && json_out=$(nth_name "$json_out" "$COMPARE_INVOCATION")
fi

SX=${SXFER:-build/sxfer}
MICRO=${SXFER_MICRO:-build/bench/sxfer_micro}
if [ ! -x "$SX" ]; then
	echo "compare.sh: $SX not found; build a release first:" >&2
	echo "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF && cmake --build build -j2" >&2
	exit 2
fi
SX=$(realpath "$SX")
# The peers come from Debian packages (skipped when already installed).
((install)) && bash scripts/deps.sh bench
command -v /usr/bin/time >/dev/null || { echo "compare.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
bench_pin_init "$pin" "$pin_server" "$pin_client"

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-compare-XXXXXX")
case "$W" in *[[:space:]]*) echo "compare.sh: work folder $W has a space" >&2; rm -rf "$W"; exit 2 ;; esac
bench_warm_init "$W"

# --- cleanup: every server by its PID, the namespaces, the work folder -----
PIDS=()
NETNS=()
made_run_sshd=0
cleanup() {
	local p n
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	for n in "${NETNS[@]}"; do
		ip netns delete "$n" 2>/dev/null || true
	done
	((made_run_sshd)) && rmdir /run/sshd 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '%s\n' "compare.sh: $*" >&2; }
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_port [NETNS] ADDR PORT: until something listens there (10 s at most).
wait_port() {
	local ns=$1 addr=$2 port=$3
	for _ in $(seq 1 200); do
		if [ -n "$ns" ]; then
			ip netns exec "$ns" ss -Hltn "src $addr:$port" | grep -q . && return 0
		else
			ss -Hltn "src $addr:$port" | grep -q . && return 0
		fi
		sleep 0.05
	done
	return 1
}

# --- inputs ------------------------------------------------------------------
mkdir -p "$W/in" "$W/out"
make_inputs() {
	log "inputs: ${size_mib} MiB random file, ${nfiles} files of ${file_kib} KiB"
	head -c $((size_mib << 20)) /dev/urandom >"$W/in/big"
	mkdir -p "$W/in/tree"
	head -c $((nfiles * file_kib << 10)) /dev/urandom |
		split -b "$((file_kib << 10))" -d -a 5 - "$W/in/tree/f"
}

# --- sxfer -------------------------------------------------------------------
# Unencrypted identity keys, as the ssh keys are: the timed command should
# not include unlocking a key (its KDF is deliberately slow).
sx_pki() {
	export SXFER_PASSPHRASE=bench
	export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
	{
		"$SX" ca init --ca "$W/pki/ca" --name "bench CA" &&
			"$SX" ca issue --ca "$W/pki/ca" --name localhost --role server --dns localhost \
				--ip 127.0.0.1 --no-passphrase --out "$W/pki/srv" &&
			"$SX" ca issue --ca "$W/pki/ca" --name bench --role client --no-passphrase \
				--out "$W/pki/cli"
	} >"$W/pki.log" 2>&1 || { log "sxfer ca failed:"; cat "$W/pki.log" >&2; exit 1; }
}
SX_PID="" SX_PORT=""
sx_start() { # sx_start [NETNS ADDR]
	local ns=${1:-} addr=${2:-127.0.0.1}
	rm -f "$W/sx.port"
	mkdir -p "$W/out/sxfer"
	${ns:+ip netns exec "$ns"} "${PIN_S[@]}" "$SX" serve --listen "$addr:0" --port-file "$W/sx.port" \
		--id "$W/pki/srv" --out "$W/out/sxfer" 2>"$W/sx-serve.log" &
	SX_PID=$!
	PIDS+=("$SX_PID")
	for _ in $(seq 1 200); do [ -s "$W/sx.port" ] && break; sleep 0.05; done
	[ -s "$W/sx.port" ] || { log "sxfer serve did not start:"; cat "$W/sx-serve.log" >&2; exit 1; }
	SX_PORT=$(cat "$W/sx.port")
}
# Whether `sxfer send` has option $1 (this tree may predate it). The help is
# read whole first: grep -q stopping early would fail the pipe under pipefail.
has_send_opt() {
	local help
	help=$("$SX" send --help 2>&1 || true)
	grep -q -- "$1" <<<"$help"
}

# --- sshd (scp, rsync, tar) ----------------------------------------------------
SSH_PID="" SSH_PORT=""
SSH_OPTS=()
ssh_start() { # ssh_start [NETNS ADDR]
	local ns=${1:-} addr=${2:-127.0.0.1} d=$W/ssh
	mkdir -p "$d"
	ssh-keygen -q -t ed25519 -N '' -C sxfer-bench-host -f "$d/host" </dev/null
	ssh-keygen -q -t ed25519 -N '' -C sxfer-bench-client -f "$d/client" </dev/null
	cp "$d/client.pub" "$d/authorized_keys"
	SSH_PORT=$(free_port)
	cat >"$d/sshd_config" <<-EOF
		Port $SSH_PORT
		ListenAddress $addr
		HostKey $d/host
		AuthorizedKeysFile $d/authorized_keys
		PidFile $d/sshd.pid
		UsePAM no
		StrictModes no
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		Subsystem sftp internal-sftp
		LogLevel ERROR
	EOF
	# As root, sshd wants its privilege-separation folder.
	if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
		mkdir -m 755 /run/sshd && made_run_sshd=1
	fi
	${ns:+ip netns exec "$ns"} "${PIN_S[@]}" /usr/sbin/sshd -f "$d/sshd_config" -D -e 2>"$d/sshd.log" &
	SSH_PID=$!
	PIDS+=("$SSH_PID")
	wait_port "$ns" "$addr" "$SSH_PORT" || { log "sshd did not start:"; cat "$d/sshd.log" >&2; exit 1; }
	# The cipher closest to sxfer's default suite; no user ssh_config.
	SSH_OPTS=(-F /dev/null -i "$d/client" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
		-o BatchMode=yes -o LogLevel=ERROR -c aes256-gcm@openssh.com)
	SSH_HOST=$(id -un)@$addr
}
# The session processes of sshd are its children; once the client has gone,
# wait (2 s at most) until sshd has reaped them, so their CPU time is counted.
ssh_settle() {
	for _ in $(seq 1 40); do
		pgrep -P "$SSH_PID" >/dev/null || return 0
		sleep 0.05
	done
}

# --- nginx HTTPS (curl) ----------------------------------------------------------
NGX_PID="" NGX_PORT=""
ngx_start() {
	local d=$W/nginx user=""
	mkdir -p "$d/tmp"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
		-keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
	NGX_PORT=$(free_port)
	# The work folder is private to us; a root master's workers would run as
	# nobody and could not read it.
	[ "$(id -u)" -eq 0 ] && user="user root;"
	cat >"$d/nginx.conf" <<-EOF
		$user
		daemon off;
		worker_processes 1;
		pid $d/nginx.pid;
		error_log $d/error.log warn;
		events { worker_connections 64; }
		http {
			access_log off;
			client_body_temp_path $d/tmp/body;
			proxy_temp_path $d/tmp/proxy;
			fastcgi_temp_path $d/tmp/fastcgi;
			uwsgi_temp_path $d/tmp/uwsgi;
			scgi_temp_path $d/tmp/scgi;
			sendfile on;
			tcp_nopush on;
			keepalive_requests 100000;
			default_type application/octet-stream;
			server {
				listen 127.0.0.1:$NGX_PORT ssl;
				ssl_protocols TLSv1.3;
				ssl_certificate $d/cert.pem;
				ssl_certificate_key $d/key.pem;
				root $W/in;
			}
		}
	EOF
	"${PIN_S[@]}" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" 2>"$d/stderr.log" &
	NGX_PID=$!
	PIDS+=("$NGX_PID")
	wait_port "" 127.0.0.1 "$NGX_PORT" || { log "nginx did not start:"; cat "$d/error.log" "$d/stderr.log" >&2; exit 1; }
	# One curl for the whole folder: a config file with a url and an output
	# per file, so one TLS connection is reused as a browser would.
	local f
	: >"$d/tree.curl"
	for f in "$W"/in/tree/*; do
		f=${f##*/}
		printf 'url = "https://127.0.0.1:%s/tree/%s"\noutput = "%s/out/https/tree/%s"\n' \
			"$NGX_PORT" "$f" "$W" "$f" >>"$d/tree.curl"
	done
}

# --- one timed run ---------------------------------------------------------------
CMD="" DEST="" CLIENT_NS="" SX_ADDR=""
# Sets CMD, the command line of TOOL moving INPUT (big or tree; log or rand
# with --link) into $W/out/<tool>, and DEST, the path the copy lands at.
cmd_for() {
	local tool=$1 input=$2 src=$W/in/$2 o=$W/out/$1
	local ssh="ssh ${SSH_OPTS[*]} -p $SSH_PORT"
	local sxsrv=${SX_ADDR:-127.0.0.1}
	case "$tool" in
	sxfer | sxfer-*)
		local extra=""
		case "$tool" in
		sxfer-nosign) extra="--no-sign" ;;
		sxfer-compress-*) extra="--compress ${tool#sxfer-compress-}" ;;
		esac
		o=$W/out/sxfer
		CMD="$SX send --id $W/pki/cli --server-name localhost --quiet --receipts $W/receipts $extra $sxsrv:$SX_PORT $src"
		DEST=$o/bench/$input ;;
	scp)
		CMD="scp -q -r ${SSH_OPTS[*]} -P $SSH_PORT $src $SSH_HOST:$o/"
		DEST=$o/$input ;;
	rsync)
		CMD="rsync -a -e '$ssh' $src $SSH_HOST:$o/"
		DEST=$o/$input ;;
	tar)
		# Both the tar that reads and the ssh are the client side; the tar
		# that writes is spawned by sshd: the server side.
		CMD="tar -C $W/in -cf - $input | $ssh $SSH_HOST 'tar -C $o -xf -'"
		DEST=$o/$input ;;
	https)
		if [ "$input" = tree ]; then
			CMD="curl -sS --fail --tlsv1.3 -k --create-dirs -K $W/nginx/tree.curl"
		else
			CMD="curl -sS --fail --tlsv1.3 -k -o $o/$input https://127.0.0.1:$NGX_PORT/$input"
		fi
		DEST=$o/$input ;;
	esac
}

# Which side of each tool is a server we started, and whether that server is
# the sender (nginx) or the receiver (everything else).
server_pid() {
	case "$1" in
	sxfer*) echo "$SX_PID" ;;
	https) echo "$NGX_PID" ;;
	*) echo "$SSH_PID" ;;
	esac
}
server_side() { [ "$1" = https ] && echo sender || echo receiver; }

# An empty destination for TOOL. sxfer serve keeps its --out folder; only
# what the sender's identity ("bench") wrote is removed.
out_clear() {
	case "$1" in
	sxfer*) rm -rf "$W/out/sxfer/bench" ;;
	*) rm -rf "$W/out/$1"; mkdir -p "$W/out/$1" ;;
	esac
}

# MiB and file count of an input, and the MiB to warm before a run on it.
input_mib() {
	case "$1" in
	tree) echo $((nfiles * file_kib / 1024)) ;;
	big) echo "$size_mib" ;;
	*) echo "$link_mib" ;;
	esac
}
input_files() { [ "$1" = tree ] && echo "$nfiles" || echo 1; }
warm_for() {
	((warm)) || { echo 0; return; }
	if [ -n "$warm_mib" ]; then echo "$warm_mib"; else echo $(($(input_mib "$1") + 256)); fi
}

RUNS_CSV=""
run_one() { # run_one TOOL INPUT RUN POSITION
	local tool=$1 input=$2 run=$3 pos=$4 spid su0 ss0 su1 ss1 t0 t1 status=ok
	local wall="" su="" ss="" cu="" cs=""
	cmd_for "$tool" "$input"
	spid=$(server_pid "$tool")
	out_clear "$tool"
	bench_warm "$(warm_for "$input")"
	read -r su0 ss0 <<<"$(bench_cpu_ticks "$spid")"
	t0=$EPOCHREALTIME
	if ${CLIENT_NS:+ip netns exec "$CLIENT_NS"} "${PIN_C[@]}" \
		/usr/bin/time -f '%U %S' -o "$W/time.out" bash -c "$CMD" >"$W/run.log" 2>&1; then
		t1=$EPOCHREALTIME
		case "$tool" in scp | rsync | tar) ssh_settle ;; esac
		read -r su1 ss1 <<<"$(bench_cpu_ticks "$spid")"
		# Not timed. A signed sxfer transfer stores NAME.sxsig beside each file.
		if diff -rq -x '*.sxsig' "$W/in/$input" "$DEST" >"$W/diff.log" 2>&1; then
			wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
			read -r cu cs <"$W/time.out"
			su=$(awk -v t=$((su1 - su0)) -v k="$BENCH_TCK" 'BEGIN {printf "%.2f", t / k}')
			ss=$(awk -v t=$((ss1 - ss0)) -v k="$BENCH_TCK" 'BEGIN {printf "%.2f", t / k}')
		else
			log "$tool on $input: the copy differs from the input: $(head -3 "$W/diff.log")"
			status=differs
		fi
	else
		log "$tool on $input failed: $(tail -3 "$W/run.log")"
		status=failed
	fi
	# The copy goes at once: it would hold memory through the next runs.
	out_clear "$tool"
	printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$tool" "$input" "$(input_mib "$input")" \
		"$(input_files "$input")" "$run" "$pos" "$status" "$wall" "$su" "$ss" "$cu" "$cs" \
		"$(server_side "$tool")" >>"$RUNS_CSV"
	if [ "$status" = ok ]; then log "  $tool $input: ${wall} s"; fi
}

# run_all INPUTS...: RUNS rounds; in round r, for each input, every tool once,
# the tool list rotated by r - 1 places.
run_all() {
	local -a tl
	local r input p n tool
	read -r -a tl <<<"$tool_list"
	n=${#tl[@]}
	for r in $(seq 1 "$runs"); do
		[ "${1:-}" = big ] && store_cost
		for input in "$@"; do
			for ((p = 0; p < n; p++)); do
				tool=${tl[$(((p + r - 1) % n))]}
				log "run $r/$runs, $((p + 1)) of $n: $tool $input"
				run_one "$tool" "$input" "$r" "$((p + 1))"
			done
		done
	done
}

# --- primitives, in the same invocation -----------------------------------------------
primitives() {
	: >"$W/prims.txt"
	if [ ! -x "$MICRO" ]; then
		log "$MICRO not built (needs libbenchmark-dev): no primitive costs"
		return 0
	fi
	local filter='^BM_prim_memcpy$|^BM_prim_sha256$|^BM_prim_aead/aes256gcm$|^BM_seal/aes256gcm/1048576$|^BM_open/aes256gcm/1048576$'
	"$MICRO" --benchmark_filter="$filter" --benchmark_min_time=0.2 --benchmark_format=csv \
		2>/dev/null >"$W/micro.csv" || { log "sxfer_micro failed"; return 0; }
	awk -F, '
		$1 == "name" { for (i = 1; i <= NF; i++) if ($i == "bytes_per_second") c = i; next }
		c && $c > 0 { n = $1; gsub(/"/, "", n); printf "%s %.3f\n", n, 1073741824 / $c }' \
		"$W/micro.csv" >"$W/prims.txt"
}

# The cost of storing the big input into warmed pages of the receiver's file
# system with no transfer at all (dd, 1 MiB blocks, user + system CPU per
# GiB): the part of a receiver's CPU that the page cache costs, each round.
store_cost() {
	rm -f "$W/out/store.bin"
	bench_warm "$(warm_for big)"
	/usr/bin/time -f '%U %S' -o "$W/store.time" dd if="$W/in/big" of="$W/out/store.bin" bs=1M \
		status=none
	rm -f "$W/out/store.bin"
	awk -v m="$size_mib" '{printf "%.3f\n", ($1 + $2) * 1024 / m}' "$W/store.time" >>"$W/store.txt"
}

# --- the header, and what is kept -------------------------------------------------------
header() { # header INPUTS-TEXT
	local w="off"
	((warm)) && w=$(bench_warm_how 1 "${warm_mib:-the size of the input + 256} MiB")
	{
		bench_header "$argv0" "${argv[@]}"
		echo "sxfer:   $SX ($("$SX" --version 2>/dev/null | head -1))"
		echo "peers:   $(ssh -V 2>&1 | cut -d, -f1); $(nginx -v 2>&1 | sed 's/^nginx version: //');" \
			"$(curl --version 2>/dev/null | awk 'NR == 1 {print $1, $2}');" \
			"$(rsync --version 2>/dev/null | awk 'NR == 1 {print $1, $3}')"
		echo "inputs:  $1"
		echo "runs:    $runs per tool and input, interleaved, the order of the tools rotated each run"
		echo "tools:   $tool_list(order of run 1)"
		echo "pinning: $(bench_pin_how "$pin" "$pin_server" "$pin_client")"
		echo "warming: $w"
		if ((quick)); then echo "--quick: a smoke run of the script; its figures are not results"; fi
	} | tee "$W/header.txt"
}
keep_runs() {
	[ -n "${COMPARE_RUNS_COPY:-}" ] && cp "$RUNS_CSV" "$COMPARE_RUNS_COPY"
	[ -n "$csv_out" ] && cp "$RUNS_CSV" "$csv_out" && log "every run: $csv_out"
	if [ -n "$json_out" ]; then
		sed -n 's/^\([a-z-]*\): *\(.*\)$/\1\t\2/p' "$W/header.txt" >"$W/meta.tsv"
		python3 bench/runstats.py json "$RUNS_CSV" "$W/meta.tsv" "$json_out"
		log "every run: $json_out"
	fi
	return 0
}
RUNS_CSV=$W/runs.csv
echo "tool,input,mib,files,run,position,status,wall_s,server_user_s,server_sys_s,client_user_s,client_sys_s,server_side" >"$RUNS_CSV"

# --- optional: a shaped link between two namespaces ---------------------------------------
link_mode() {
	local a=sxb-a-$$ b=sxb-b-$$
	if ! ip netns add "$a" 2>"$W/netns.log"; then
		log "--link: cannot create a network namespace ($(cat "$W/netns.log")); skipped"
		exit 0
	fi
	NETNS+=("$a")
	ip netns add "$b"
	NETNS+=("$b")
	# A private /30 that exists only between these two namespaces.
	ip -n "$a" link add veth0 type veth peer name veth0 netns "$b"
	ip -n "$a" addr add 10.254.254.1/30 dev veth0
	ip -n "$b" addr add 10.254.254.2/30 dev veth0
	ip -n "$a" link set veth0 up
	ip -n "$b" link set veth0 up
	ip -n "$a" link set lo up
	ip -n "$b" link set lo up
	for n in "$a" "$b"; do
		tc -n "$n" qdisc add dev veth0 root tbf rate "$link_rate" burst "$link_burst" latency 50ms
	done
	log "link: $a <-> $b, tbf rate $link_rate burst $link_burst latency 50ms"

	log "inputs: ${link_mib} MiB compressible log, ${link_mib} MiB random file"
	# Log lines with changing numbers (not one block repeated), the kind of
	# file --compress auto is for.
	awk -v lim=$((link_mib << 20)) 'BEGIN {
		srand(1); split("chunk_sent file_ok handshake ack io_wait", ev, " ")
		while (n < lim) {
			l = sprintf("2024-05-01T12:%02d:%02d.%03dZ level=info event=%s conn=%d seq=%d bytes=%d peer=\"cam-%02d\"\n",
				int(i / 60000) % 60, int(i / 1000) % 60, i % 1000, ev[1 + int(rand() * 5)],
				int(rand() * 64), i, int(rand() * 1048577), int(rand() * 32))
			printf "%s", l; n += length(l); i++
		}
	}' >"$W/in/log"
	# Cut to size after the fact: awk | head -c can end awk with SIGPIPE,
	# which pipefail turns into the script's exit.
	truncate -s $((link_mib << 20)) "$W/in/log"
	head -c $((link_mib << 20)) /dev/urandom >"$W/in/rand"

	sx_pki
	sx_start "$b" 10.254.254.2
	SX_ADDR=10.254.254.2
	ssh_start "$b" 10.254.254.2
	tool_list="sxfer "
	if has_send_opt --compress; then
		tool_list="sxfer-compress-off sxfer-compress-auto "
	else
		log "this sxfer has no --compress yet: sxfer runs with its defaults"
	fi
	tool_list+="scp "
	CLIENT_NS=$a
	header "${link_mib} MiB compressible log (log), ${link_mib} MiB random file (rand);" \
		"link: tc tbf rate $link_rate burst $link_burst latency 50ms between two network namespaces"
	run_all log rand
	keep_runs
	python3 bench/runstats.py compare "$RUNS_CSV" --ref "${tool_list%% *}"
}

# --- main --------------------------------------------------------------------------------
if [ -n "$link_rate" ]; then
	[ "$(id -u)" -eq 0 ] || { log "--link needs root (ip netns); skipped"; exit 0; }
	link_mode
	exit 0
fi

tool_list=""
for tool in $tools; do
	case "$tool" in
	sxfer-nosign)
		if ! has_send_opt --no-sign; then
			log "this sxfer has no --no-sign yet: that row is skipped"
			continue
		fi ;;
	sxfer | scp | https | rsync | tar) ;;
	*) log "unknown tool $tool (sxfer sxfer-nosign scp https rsync tar)"; exit 2 ;;
	esac
	tool_list+="$tool "
done
[ -n "$tool_list" ] || { log "no tool to run"; exit 2; }
ref=sxfer
[[ " $tool_list" == *" sxfer "* ]] || ref=${tool_list%% *}
make_inputs
case " $tool_list" in *" sxfer"*) sx_pki; sx_start ;; esac
case " $tool_list" in *" scp "* | *" rsync "* | *" tar "*) ssh_start ;; esac
case " $tool_list" in *" https "*) ngx_start ;; esac

header "${size_mib} MiB random file (big), ${nfiles} random files of ${file_kib} KiB (tree)"
log "primitives (sxfer_micro)"
primitives
: >"$W/store.txt"
run_all big tree
keep_runs
python3 bench/runstats.py compare "$RUNS_CSV" --ref "$ref" --prims "$W/prims.txt" --store "$W/store.txt"
