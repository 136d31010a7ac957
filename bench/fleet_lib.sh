# Shared by bench/fleet.sh and bench/handshakes.sh (sourced, not run): a
# work folder in /dev/shm removed on exit, a CA without passphrase and its
# CRL, identities, `sxfer serve` on a free port of 127.0.0.1 pinned to a
# core, a server's CPU and memory from /proc, page warming, medians. Every
# server started here is stopped by its PID on exit, Ctrl-C included.

SX=${SXFER:-build/sxfer}
if [ ! -x "$SX" ]; then
	echo "$ME: $SX not found; build a release first:" >&2
	echo "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF && cmake --build build -j2" >&2
	exit 2
fi
SX=$(realpath "$SX")
command -v python3 >/dev/null || { echo "$ME: python3 is needed (JSON of the bench commands)" >&2; exit 2; }

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W=$(mktemp -d "$base/sxfer-$ME-XXXXXX")
case "$W" in *[[:space:]]*) echo "$ME: work folder $W has a space" >&2; rm -rf "$W"; exit 2 ;; esac
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export HOME=$W/home SXFER_SERVE_CONFIG=$W/no-serve.conf
unset SXFER_PASSPHRASE SXFER_ID_PASSPHRASE
mkdir -p "$HOME"

log() { printf '%s\n' "$ME: $*" >&2; }
tck=$(getconf CLK_TCK)
# median and minimum of the numbers on standard input (an even count: the
# mean of the middle two)
median() {
	tr ' ' '\n' | grep . | sort -g |
		awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else if (NR) print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
minimum() { tr ' ' '\n' | grep . | sort -g | head -1; }

# PIN0/PIN1: the taskset prefix of the server and of the client ("" when
# not pinning or when taskset or a second core is missing).
set_pins() { # set_pins PIN(0|1)
	PIN0="" PIN1=""
	[ "$1" = 1 ] || return 0
	if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
		log "taskset or a second core missing: not pinning"
		return 0
	fi
	PIN0="taskset -c 0" PIN1="taskset -c 1"
}

# The file descriptors both processes may hold: the soft limit raised to
# at least NEED (within the hard limit).
raise_nofile() { # raise_nofile NEED
	local hard
	hard=$(ulimit -Hn)
	[ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -ge "$1" ] && return 0
	if [ "$hard" = unlimited ] || [ "$hard" -ge "$1" ]; then
		ulimit -n "$1"
	else
		ulimit -n "$hard"
		log "warning: file descriptors limited to $hard (ulimit -Hn); $1 wanted"
	fi
}

# A CA without passphrase, its CRL (so both servers check revocation), and
# the server's identity (localhost, 127.0.0.1, plain key: nginx reads it).
make_pki() {
	"$SX" ca init --ca "$W/ca" --name "sxfer $ME CA" --no-passphrase >/dev/null 2>&1
	"$SX" ca crl --ca "$W/ca" --out "$W/ca/crl.out.pem" >/dev/null
	"$SX" ca issue --ca "$W/ca" --name localhost --role server --dns localhost \
		--ip 127.0.0.1 --out "$W/srv" --no-passphrase >/dev/null 2>&1
}

# start_serve NAME [serve options...]: sxfer serve on 127.0.0.1:0, pinned
# with PIN0, its log in $W/NAME.log (tmpfs); sets SRV_PID and SRV_PORT.
start_serve() {
	local name=$1
	shift
	rm -f "$W/$name.port"
	$PIN0 "$SX" serve --listen 127.0.0.1:0 --port-file "$W/$name.port" --id "$W/srv" \
		"$@" 2>"$W/$name.log" &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	for _ in $(seq 1 400); do
		[ -s "$W/$name.port" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || { cat "$W/$name.log" >&2; log "sxfer serve exited"; exit 1; }
		sleep 0.05
	done
	[ -s "$W/$name.port" ] || { log "sxfer serve did not listen"; exit 1; }
	SRV_PORT=$(cat "$W/$name.port")
}

# cpu_ticks PID: "utime stime" of the process (every thread), in ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; }
ticks_s() { awk -v t="$1" -v k="$tck" 'BEGIN {printf "%.3f", t / k}'; }
# rss_kib PID [FIELD]: VmRSS (or VmHWM, ...) of the process in KiB.
rss_kib() { awk -v f="${2:-VmRSS}:" '$1 == f {print $2}' "/proc/$1/status"; }
# pss_kib PID: its proportional set size (smaps_rollup), or "-".
pss_kib() { awk '$1 == "Pss:" {print $2; f = 1} END {if (!f) print "-"}' "/proc/$1/smaps_rollup" 2>/dev/null || echo -; }
# The peak (VmHWM) starts again from the current RSS.
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# warm BYTES: this machine's hypervisor makes the first touch of a page cost
# 3.5-4 CPU-s/GiB; pages written and freed just before a run are cheap to
# take again. At most what is available, less 1 GiB.
warm() {
	local want=$1 avail
	avail=$(awk '$1 == "MemAvailable:" {print $2}' /proc/meminfo)
	avail=$((avail << 10))
	((want > avail - (1 << 30))) && want=$((avail - (1 << 30)))
	((want > 0)) || return 0
	head -c "$want" /dev/zero >"$W/warm" 2>/dev/null || true
	rm -f "$W/warm"
}

# jget FILE KEY...: values of a JSON object's keys (a.b for nested ones),
# one line, space-separated.
jget() {
	python3 - "$@" <<-'PY'
		import json, sys
		d = json.load(open(sys.argv[1]))
		out = []
		for k in sys.argv[2:]:
		    v = d
		    for p in k.split("."):
		        v = v[p]
		    out.append(str(v))
		print(" ".join(out))
	PY
}
