#!/usr/bin/env bash
# Server handshakes per CPU-second: `sxfer serve` against nginx, both
# TLS 1.3 asking for a client certificate, driven by one client of our own
# (`sxfer bench handshakes`: full handshakes, no session resumption, each
# connection closed once its handshake is done).
#
# In a work folder in /dev/shm: a CA (no passphrase) and its CRL, one server
# identity (P-256, localhost and 127.0.0.1) used by both servers, one client
# identity (P-256) from the same CA. sxfer serve (--threads 1) and nginx
# (worker_processes 1; ssl_protocols TLSv1.3; ssl_verify_client on with the
# CA; ssl_crl with its CRL, as sxfer checks revocation too; no session cache
# or tickets) are each pinned to core 0, the client to core 1 (--no-pin:
# nothing pinned). RUNS runs, interleaved (sxfer, nginx, sxfer, ...), each
# of COUNT handshakes, CONC at once. The server's CPU is read from
# /proc/PID/stat before and after (nginx: its worker process). The client
# offers X25519 only (--groups), so both servers use it; the group, cipher
# and server signature they chose are printed.
#
# sxfer serve logs each connection as failed (the client sends no HELLO):
# its log goes to a file in /dev/shm (about two lines per handshake; serve
# has no quieter setting). Its --max-handshakes-per-addr is raised above
# CONC (default 8: every connection comes from 127.0.0.1), and so is
# --max-conns. nginx logs nothing below warnings.
#
# Usage: bench/handshakes.sh [--runs N] [--count N] [--concurrency K]
#                            [--no-pin] [--no-install] [--groups LIST]
# Defaults: 7 runs of 2000 handshakes, 16 at once. nginx comes from the
# Debian package nginx-light (scripts/deps.sh bench installs it; skipped with
# --no-install). Environment: SXFER (build/sxfer).
set -euo pipefail
cd "$(dirname "$0")/.."
ME=handshakes
runs=7 count=2000 conc=16 pin=1 install=1 groups=X25519
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--count) count=$2; shift 2 ;;
	--concurrency) conc=$2; shift 2 ;;
	--groups) groups=$2; shift 2 ;;
	--no-pin) pin=0; shift ;;
	--no-install) install=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "handshakes.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
done
for v in "$runs" "$count" "$conc"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "handshakes.sh: '$v' is not a positive integer" >&2; exit 2; }
done
if ! command -v nginx >/dev/null; then
	((install)) && bash scripts/deps.sh bench
	command -v nginx >/dev/null || { echo "handshakes.sh: nginx is not installed (nginx-light)" >&2; exit 2; }
fi

source bench/fleet_lib.sh
set_pins "$pin"
raise_nofile $((conc * 4 + 1024))
make_pki
"$SX" ca issue --ca "$W/ca" --name hs-client --role client --out "$W/cli" --no-passphrase \
	>/dev/null 2>&1

start_serve serve --out "$W/out" --no-ledger --threads 1 --max-conns $((conc * 2 + 64)) \
	--max-handshakes-per-addr $((conc + 8))
SX_PID=$SRV_PID SX_PORT=$SRV_PORT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
NGX_PORT=$(free_port)
d=$W/nginx
mkdir -p "$d/tmp"
user=""
[ "$(id -u)" -eq 0 ] && user="user root;" # our work folder is private
cat >"$d/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $((conc * 2 + 64)); }
http {
	access_log off;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	server {
		listen 127.0.0.1:$NGX_PORT ssl;
		ssl_protocols TLSv1.3;
		ssl_certificate $W/srv/cert.pem;
		ssl_certificate_key $W/srv/key.pem;
		ssl_client_certificate $W/ca/ca.pem;
		ssl_verify_client on;
		ssl_crl $W/ca/crl.pem;
		ssl_session_cache off;
		ssl_session_tickets off;
		ssl_ecdh_curve X25519:prime256v1;
		location / { return 204; }
	}
}
EOF
$PIN0 nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" 2>"$d/stderr.log" &
NGX_MASTER=$!
PIDS+=("$NGX_MASTER")
NGX_PID=""
for _ in $(seq 1 200); do
	NGX_PID=$(pgrep -P "$NGX_MASTER" | head -1 || true)
	[ -n "$NGX_PID" ] && ss -Hltn "src 127.0.0.1:$NGX_PORT" | grep -q . && break
	sleep 0.05
done
[ -n "$NGX_PID" ] || { cat "$d/error.log" "$d/stderr.log" >&2; log "nginx did not start"; exit 1; }

echo "sxfer $ME: $(uname -r), $(nproc) cores; $("$SX" --version 2>/dev/null | head -1);" \
	"$(nginx -v 2>&1 | sed 's/^nginx version: //'); $(openssl version)"
echo "$count handshakes a run, $conc at once, $runs runs; servers ${PIN0:+pinned to core 0, }client${PIN1:+ on core 1}; groups offered: $groups"
echo "sxfer serve --threads 1 --max-handshakes-per-addr $((conc + 8)) (raised: default 8);" \
	"nginx worker_processes 1, ssl_verify_client on, ssl_crl"
printf '\n%-6s %4s %10s %12s %9s %9s %14s\n' server run "hs/s wall" "client p50ms" "srv usr" \
	"srv sys" "hs/server CPU-s"

declare -A RATE PER_CPU PARAMS
for r in $(seq 1 "$runs"); do
	for srv in sxfer nginx; do
		if [ "$srv" = sxfer ]; then
			pid=$SX_PID port=$SX_PORT alpn=(--alpn sxfer/1)
		else
			pid=$NGX_PID port=$NGX_PORT alpn=()
		fi
		read -r -a c0 <<<"$(cpu_ticks "$pid")"
		rc=0
		$PIN1 "$SX" bench handshakes --id "$W/cli" --count "$count" --concurrency "$conc" \
			--groups "$groups" "${alpn[@]}" --json "127.0.0.1:$port" >"$W/hs.json" \
			2>"$W/hs.err" || rc=$?
		sleep 0.2 # the server's last closes
		read -r -a c1 <<<"$(cpu_ticks "$pid")"
		if ((rc != 0)); then
			cat "$W/hs.json" "$W/hs.err" >&2
			log "$srv run $r: handshakes failed (exit $rc)"
			exit 1
		fi
		read -r ok per_s p50 ver group cipher sig <<<"$(jget "$W/hs.json" ok per_s latency_ms.p50 \
			version group cipher server_sigalg)"
		u=$(ticks_s $((c1[0] - c0[0])))
		s=$(ticks_s $((c1[1] - c0[1])))
		per=$(awk -v n="$ok" -v u="$u" -v s="$s" 'BEGIN {printf "%.1f", (u + s > 0 ? n / (u + s) : 0)}')
		printf '%-6s %4s %10.1f %12.3f %9s %9s %14s\n' "$srv" "$r" "$per_s" "$p50" "$u" "$s" "$per"
		RATE[$srv]+="$per_s " PER_CPU[$srv]+="$per "
		PARAMS[$srv]="$ver $cipher, group $group, server signature $sig"
	done
done

echo
printf '%-6s %16s %16s %14s %14s\n' server "hs/CPU-s min" "hs/CPU-s median" "hs/s min" "hs/s median"
for srv in sxfer nginx; do
	printf '%-6s %16.1f %16.1f %14.1f %14.1f\n' "$srv" "$(echo "${PER_CPU[$srv]}" | minimum)" \
		"$(echo "${PER_CPU[$srv]}" | median)" "$(echo "${RATE[$srv]}" | minimum)" \
		"$(echo "${RATE[$srv]}" | median)"
done
echo "negotiated: sxfer: ${PARAMS[sxfer]}; nginx: ${PARAMS[nginx]}"
a=$(echo "${PER_CPU[sxfer]}" | median) b=$(echo "${PER_CPU[nginx]}" | median)
echo "ratio of the medians, sxfer / nginx handshakes per server CPU-second:" \
	"$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
echo "(sxfer also checks the client certificate against its own policy: role, CRL," \
	"key strength; its log: about two lines per handshake, to /dev/shm)"
