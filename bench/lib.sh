# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): the header every one
# prints, warming pages before each run, pinning both sides to a core, and
# the CPU of a running server from /proc. docs/PERFORMANCE.md ("Method")
# says why each is there.

# bench_header NAME ARGS...: the exact command line, the date, the commit,
# the kernel and the CPU, before any figure.
bench_header() {
	local name=$1 commit="not a git checkout" model
	shift
	printf 'command: %s' "$name"
	(($#)) && printf ' %q' "$@"
	printf '\n'
	echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	if git rev-parse --short HEAD >/dev/null 2>&1; then
		commit=$(git rev-parse --short HEAD)
		[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] &&
			commit+=" (with uncommitted changes)"
	fi
	echo "commit:  $commit"
	model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null)
	echo "kernel:  $(uname -r)"
	echo "cpu:     ${model:-unknown}, $(nproc) cores online"
}

# --- warming -----------------------------------------------------------------
# On a VM, a store into a guest page the host has not backed (yet, or any
# more: freed guest memory is handed back to the host after a while) costs
# several CPU seconds per GiB in the kernel, against about half a second for a
# page used moments before. Whichever run meets cold pages loses by 2-4x. So
# before every run: write MIB MiB into a tmpfs file and delete it, so that the
# run's own stores land on pages the host has just backed. The file is made
# in WARM_DIR (a tmpfs); where there is none, an anonymous mapping of that
# size is touched page by page and unmapped instead.
WARM_DIR=""
bench_warm_init() { # bench_warm_init DIR: DIR is used when it is a tmpfs
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		WARM_DIR=/dev/shm
	elif [ "$(stat -f -c %T "$1" 2>/dev/null)" = tmpfs ]; then
		WARM_DIR=$1
	fi
}
bench_warm() { # bench_warm MIB
	local mib=$1 f
	((mib > 0)) || return 0
	if [ -n "$WARM_DIR" ]; then
		f=$(mktemp "$WARM_DIR/sxfer-warm-XXXXXX")
		dd if=/dev/zero of="$f" bs=1M count="$mib" status=none || true
		rm -f "$f"
	else
		python3 -c 'import mmap, sys
n = int(sys.argv[1]) << 20
m = mmap.mmap(-1, n)
z = bytes(1 << 20)
for _ in range(n >> 20):
    m.write(z)
m.close()' "$mib"
	fi
}
bench_warm_how() { # one line for the header
	if (($1 <= 0)); then
		echo "off"
	elif [ -n "$WARM_DIR" ]; then
		echo "$2, before every run (a file of that size written into $WARM_DIR and deleted)"
	else
		echo "$2, before every run (an anonymous mapping of that size touched and unmapped)"
	fi
}

# --- pinning -----------------------------------------------------------------
# PIN_S and PIN_C: the prefixes that put a command on the server's and the
# client's core (empty when unpinned).
PIN_S=() PIN_C=()
bench_pin_init() { # bench_pin_init ON SERVER_CPU CLIENT_CPU
	local c
	PIN_S=() PIN_C=()
	(($1)) || return 0
	command -v taskset >/dev/null || { echo "bench: pinning needs taskset (util-linux); or --no-pin" >&2; exit 2; }
	for c in "$2" "$3"; do
		if ! [[ $c =~ ^[0-9]+$ ]] || ! taskset -c "$c" true 2>/dev/null; then
			echo "bench: cannot pin to CPU '$c' ($(nproc) online); --no-pin runs unpinned" >&2
			exit 2
		fi
	done
	# shellcheck disable=SC2034 # used by the scripts that source this
	PIN_S=(taskset -c "$2")
	# shellcheck disable=SC2034
	PIN_C=(taskset -c "$3")
}
bench_pin_how() { # bench_pin_how ON SERVER_CPU CLIENT_CPU
	if (($1)); then
		echo "server side on CPU $2, client side on CPU $3 (taskset; every thread and child" \
			"inherits it, so sxfer's worker threads share their side's one core)"
	else
		echo "off (the scheduler places both sides on any core)"
	fi
}

# --- CPU of a running server -------------------------------------------------
# "USER SYS" clock ticks of PID: utime + cutime and stime + cstime from
# /proc/PID/stat (its own threads, and the children it has waited for), plus
# the same of its live children. Fields are counted after the ") " that ends
# the command name, which may hold spaces.
bench_cpu_ticks() { # bench_cpu_ticks PID
	local pid=$1 c
	{
		sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null
		for c in $(pgrep -P "$pid" || true); do
			sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null || true
		done
	} | awk '{u += $12 + $14; s += $13 + $15} END {print u + 0, s + 0}'
}
# shellcheck disable=SC2034 # used by the scripts that source this
BENCH_TCK=$(getconf CLK_TCK)
