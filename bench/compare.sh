#!/usr/bin/env bash
# End-to-end comparison of sxfer with the usual ways to move files between
# two hosts, all over loopback from tmpfs into the same tmpfs, in one run:
#   sxfer (default, and --no-sign when the sender has it), scp, nginx HTTPS +
#   curl, rsync over ssh, tar over ssh.
# Inputs: one random file of SIZE_MIB MiB, and a folder of NFILES random files
# of FILE_KIB KiB each. Every tool runs RUNS times, interleaved (run 1 of every
# tool, then run 2, ...); every output is checked against its input. Prints
# the median time, the throughput, sxfer's speed-up over each peer, and the
# sender's and receiver's CPU seconds per GiB, beside the cost per GiB of the
# primitives (memcpy, SHA-256, AES-256-GCM, sxfer's own seal and open)
# measured in the same run by build/bench/sxfer_micro.
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
#                         [--file-kib N] [--tools LIST] [--link RATE]
#                         [--no-install]
# Environment: SIZE_MIB (1024), NFILES (2000), FILE_KIB (256), RUNS (3),
#   LINK_MIB (256), LINK_BURST (32kbit), SXFER (build/sxfer),
#   SXFER_MICRO (build/bench/sxfer_micro).
# --quick: 64 MiB, 100 files, 1 run, LINK_MIB 16: a smoke run, not a figure.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

size_mib=${SIZE_MIB:-1024}
nfiles=${NFILES:-2000}
file_kib=${FILE_KIB:-256}
runs=${RUNS:-3}
link_mib=${LINK_MIB:-256}
link_burst=${LINK_BURST:-32kbit}
link_rate=""
install=1
tools="sxfer sxfer-nosign scp https rsync tar"
while (($#)); do
	case "$1" in
	--quick) size_mib=64 nfiles=100 runs=1 link_mib=16 ;;
	--runs) runs=$2; shift ;;
	--size-mib) size_mib=$2; shift ;;
	--files) nfiles=$2; shift ;;
	--file-kib) file_kib=$2; shift ;;
	--tools) tools=$2; shift ;;
	--link) link_rate=$2; shift ;;
	--no-install) install=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
	shift
done
for v in "$size_mib" "$nfiles" "$file_kib" "$runs" "$link_mib"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: '$v' is not a positive integer" >&2; exit 2; }
done

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

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-compare-XXXXXX")
case "$W" in *[[:space:]]*) echo "compare.sh: work folder $W has a space" >&2; rm -rf "$W"; exit 2 ;; esac

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
now_ns() { date +%s%N; }
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
# CPU seconds (user + system) a process has used, with those of the children
# it has waited for: getrusage(RUSAGE_SELF) + getrusage(RUSAGE_CHILDREN) as
# /proc reports them. With its live children's when asked to (-c).
tck=$(getconf CLK_TCK)
cpu_of() {
	local with_children=0 pid t=0 c
	[ "$1" = -c ] && { with_children=1; shift; }
	pid=$1
	t=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}')
	if ((with_children)); then
		for c in $(pgrep -P "$pid" || true); do
			c=$(sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}' || true)
			t=$((t + ${c:-0}))
		done
	fi
	echo "$t"
}
ticks_to_s() { awk -v t="$1" -v k="$tck" 'BEGIN {printf "%.3f", t / k}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }

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
	${ns:+ip netns exec "$ns"} "$SX" serve --listen "$addr:0" --port-file "$W/sx.port" \
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
	${ns:+ip netns exec "$ns"} /usr/sbin/sshd -f "$d/sshd_config" -D -e 2>"$d/sshd.log" &
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
	nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" 2>"$d/stderr.log" &
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
declare -A T CPU_S CPU_R FAILED
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

run_one() { # run_one TOOL INPUT
	local tool=$1 input=$2 spid c0 c1 t0 t1 key=$1/$2 ucpu
	# Not timed: an empty destination. sxfer serve keeps its --out folder;
	# only what the sender's identity ("bench") wrote is removed.
	case "$tool" in
	sxfer*) rm -rf "$W/out/sxfer/bench" ;;
	*) rm -rf "$W/out/$tool"; mkdir -p "$W/out/$tool" ;;
	esac
	cmd_for "$tool" "$input"
	spid=$(server_pid "$tool")
	c0=$(cpu_of -c "$spid")
	t0=$(now_ns)
	if ! ${CLIENT_NS:+ip netns exec "$CLIENT_NS"} /usr/bin/time -f '%U %S' -o "$W/time.out" \
		bash -c "$CMD" >"$W/run.log" 2>&1; then
		log "$tool on $input failed: $(tail -3 "$W/run.log")"
		FAILED[$key]=1
		return 0
	fi
	t1=$(now_ns)
	case "$tool" in scp | rsync | tar) ssh_settle ;; esac
	c1=$(cpu_of -c "$spid")
	# A signed sxfer transfer stores NAME.sxsig beside each file.
	if ! diff -rq -x '*.sxsig' "$W/in/$input" "$DEST" >"$W/diff.log" 2>&1; then
		log "$tool on $input: the copy differs from the input: $(head -3 "$W/diff.log")"
		FAILED[$key]=1
		return 0
	fi
	ucpu=$(awk '{printf "%.3f", $1 + $2}' "$W/time.out")
	T[$key]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}') "
	local scpu
	scpu=$(ticks_to_s $((c1 - c0)))
	if [ "$tool" = https ]; then
		CPU_S[$key]+="$scpu " CPU_R[$key]+="$ucpu "
	else
		CPU_S[$key]+="$ucpu " CPU_R[$key]+="$scpu "
	fi
}

# --- primitives, in the same run ------------------------------------------------------
PRIMS=()
primitives() {
	if [ ! -x "$MICRO" ]; then
		log "$MICRO not built (needs libbenchmark-dev): no primitive costs"
		return 0
	fi
	local filter='^BM_prim_memcpy$|^BM_prim_sha256$|^BM_prim_aead/aes256gcm$|^BM_seal/aes256gcm/1048576$|^BM_open/aes256gcm/1048576$'
	"$MICRO" --benchmark_filter="$filter" --benchmark_min_time=0.2 --benchmark_format=csv \
		2>/dev/null >"$W/micro.csv" || { log "sxfer_micro failed"; return 0; }
	mapfile -t PRIMS < <(awk -F, '
		$1 == "name" { for (i = 1; i <= NF; i++) if ($i == "bytes_per_second") c = i; next }
		c && $c > 0 { n = $1; gsub(/"/, "", n); printf "%s %.3f\n", n, 1073741824 / $c }' "$W/micro.csv")
}

print_prims() {
	((${#PRIMS[@]})) || return 0
	echo
	echo "Primitives on this CPU, one core, 1 MiB buffers (sxfer_micro, this run):"
	printf '  %-32s %10s\n' primitive "s/GiB"
	local p
	for p in "${PRIMS[@]}"; do
		printf '  %-32s %10s\n' ${p}
	done
}

# The cost of storing the big input into fresh pages of the receiver's file
# system with no transfer at all (dd, 1 MiB blocks, user + system CPU): the
# part of a receiver's CPU that the page cache costs, measured each run.
STORE=()
store_cost() {
	rm -f "$W/out/store.bin"
	/usr/bin/time -f '%U %S' -o "$W/store.time" dd if="$W/in/big" of="$W/out/store.bin" bs=1M \
		status=none
	rm -f "$W/out/store.bin"
	STORE+=("$(awk -v m="$size_mib" '{printf "%.3f", ($1 + $2) * 1024 / m}' "$W/store.time")")
}

# The receiver's floor as the performance goal defines it (AES-256-GCM open +
# SHA-256 when signing + two memcpy, one core, 1 MiB), beside what sxfer's
# receiver used per GiB of the big file and the page-cache cost above.
print_floor() {
	((${#PRIMS[@]})) || return 0
	local open sha mem store
	open=$(printf '%s\n' "${PRIMS[@]}" | awk '$1 ~ /^BM_open\/aes256gcm/ {print $2}')
	sha=$(printf '%s\n' "${PRIMS[@]}" | awk '$1 == "BM_prim_sha256" {print $2}')
	mem=$(printf '%s\n' "${PRIMS[@]}" | awk '$1 == "BM_prim_memcpy" {print $2}')
	store=$(printf '%s ' "${STORE[@]}" | median)
	[ -n "$open" ] && [ -n "$sha" ] && [ -n "$mem" ] || return 0
	echo
	echo "Receiver CPU per GiB of the big file against its floor:"
	printf '  %-44s %8s\n' "floor --no-sign (open + 2 memcpy)" \
		"$(awk -v a="$open" -v m="$mem" 'BEGIN {printf "%.3f", a + 2 * m}')"
	printf '  %-44s %8s\n' "floor signed (open + SHA-256 + 2 memcpy)" \
		"$(awk -v a="$open" -v b="$sha" -v m="$mem" 'BEGIN {printf "%.3f", a + b + 2 * m}')"
	printf '  %-44s %8s\n' "storing into fresh pages (dd, no transfer)" "${store:--}"
	local tool k r fl
	for tool in sxfer sxfer-nosign; do
		k=$tool/big
		[ -n "${CPU_R[$k]:-}" ] || continue
		r=$(echo "${CPU_R[$k]}" | median | awk -v m="$size_mib" '{printf "%.3f", $1 * 1024 / m}')
		if [ "$tool" = sxfer ]; then
			fl=$(awk -v a="$open" -v b="$sha" -v m="$mem" 'BEGIN {print a + b + 2 * m}')
		else
			fl=$(awk -v a="$open" -v m="$mem" 'BEGIN {print a + 2 * m}')
		fi
		printf '  %-44s %8s  = %s x floor; %s x (floor + storing)\n' "$(label "$tool") receiver" "$r" \
			"$(awk -v r="$r" -v f="$fl" 'BEGIN {printf "%.2f", r / f}')" \
			"$(awk -v r="$r" -v f="$fl" -v s="${store:-0}" 'BEGIN {printf "%.2f", r / (f + s)}')"
	done
}

# --- the table -------------------------------------------------------------------------
print_table() { # print_table REF_TOOL INPUTS...
	local ref=$1 tool input k med mib rate ratio v s r files
	shift
	echo
	printf '%-22s %-6s %9s %9s %9s %8s %10s %10s   %s\n' tool input "median s" "MiB/s" "files/s" \
		"sxfer x" "send s/GiB" "recv s/GiB" "runs (s)"
	for input in "$@"; do
		case "$input" in
		tree) mib=$(awk -v n="$nfiles" -v k="$file_kib" 'BEGIN {print n * k / 1024}'); files=$nfiles ;;
		big) mib=$size_mib; files=1 ;;
		*) mib=$link_mib; files=1 ;;
		esac
		local refmed
		refmed=$(echo "${T[$ref/$input]:-}" | median)
		for tool in $tool_list; do
			k=$tool/$input
			v=${T[$k]:-}
			if [ -z "$v" ]; then
				printf '%-22s %-6s %9s\n' "$(label "$tool")" "$input" "${FAILED[$k]:+failed}"
				continue
			fi
			med=$(echo "$v" | median)
			rate=$(awk -v m="$mib" -v t="$med" 'BEGIN {printf "%.1f", (t > 0 ? m / t : 0)}')
			s=$(echo "${CPU_S[$k]}" | median)
			r=$(echo "${CPU_R[$k]}" | median)
			ratio="-"
			[ -n "$refmed" ] && [ "$tool" != "$ref" ] &&
				ratio=$(awk -v a="$med" -v b="$refmed" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
			printf '%-22s %-6s %9.3f %9s %9s %8s %10s %10s   %s%s\n' "$(label "$tool")" "$input" "$med" "$rate" \
				"$( [ "$files" -gt 1 ] && awk -v n="$files" -v t="$med" 'BEGIN {printf "%.0f", n / t}' || echo -)" \
				"$ratio" "$(awk -v c="$s" -v m="$mib" 'BEGIN {printf "%.3f", c * 1024 / m}')" \
				"$(awk -v c="$r" -v m="$mib" 'BEGIN {printf "%.3f", c * 1024 / m}')" "$v" \
				"${FAILED[$k]:+ (some runs failed)}"
		done
	done
	echo
	echo "sxfer x: the peer's median time / $(label "$ref")'s (above 1: sxfer is faster)."
	echo "send/recv s/GiB: user + system CPU seconds per GiB moved (getrusage of the client"
	echo "command; /proc utime + stime of the server and its reaped children)."
}
label() {
	case "$1" in
	sxfer) echo "sxfer" ;;
	sxfer-nosign) echo "sxfer --no-sign" ;;
	sxfer-compress-*) echo "sxfer --compress ${1#sxfer-compress-}" ;;
	scp) echo "scp (sftp, aes256-gcm)" ;;
	https) echo "nginx HTTPS + curl" ;;
	rsync) echo "rsync over ssh" ;;
	tar) echo "tar over ssh" ;;
	*) echo "$1" ;;
	esac
}

# --- optional: a shaped link between two namespaces ---------------------------------------
link_mode() {
	local a=sxb-a-$$ b=sxb-b-$$ tool input r
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
	tool_list="sxfer"
	if has_send_opt --compress; then
		tool_list="sxfer-compress-off sxfer-compress-auto"
	else
		log "this sxfer has no --compress yet: sxfer runs with its defaults"
	fi
	tool_list+=" scp"
	CLIENT_NS=$a
	for r in $(seq 1 "$runs"); do
		for input in log rand; do
			for tool in $tool_list; do
				log "run $r/$runs: $tool $input"
				run_one "$tool" "$input"
			done
		done
	done
	echo
	echo "sxfer compare --link: $(uname -r), $(nproc) cores; ${link_mib} MiB log, ${link_mib} MiB random (rand); runs: $runs"
	print_table "${tool_list%% *}" log rand
	echo
	echo "Link: tc tbf rate $link_rate burst $link_burst latency 50ms between two network namespaces."
}

# --- main --------------------------------------------------------------------------------
if [ -n "$link_rate" ]; then
	[ "$(id -u)" -eq 0 ] || { log "--link needs root (ip netns); skipped"; exit 0; }
	link_mode
	exit 0
fi

make_inputs
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
case " $tool_list" in *" sxfer"*) sx_pki; sx_start ;; esac
case " $tool_list" in *" scp "* | *" rsync "* | *" tar "*) ssh_start ;; esac
case " $tool_list" in *" https "*) ngx_start ;; esac

log "primitives (sxfer_micro)"
primitives
for r in $(seq 1 "$runs"); do
	store_cost
	for input in big tree; do
		for tool in $tool_list; do
			log "run $r/$runs: $tool $input"
			run_one "$tool" "$input"
		done
	done
done

echo
echo "sxfer compare: $(uname -r), $(nproc) cores; ${size_mib} MiB file (big), ${nfiles} x ${file_kib} KiB files (tree); runs: $runs"
print_table "${tool_list%% *}" big tree
print_prims
print_floor
