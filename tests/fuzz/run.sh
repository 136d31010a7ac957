#!/usr/bin/env bash
# Builds the libFuzzer targets (a clang build of their own), makes their seed
# corpus, and runs each target in turn, printing what it did.
#
#   bash tests/fuzz/run.sh                 every target for 4 s (what the tests do)
#   bash tests/fuzz/run.sh --long 600      every target for 600 s
#   bash tests/fuzz/run.sh --time 30 fuzz_wire fuzz_sxsig
#
# Options: --time S | --long S  seconds per target; --build DIR (default
# build-fuzz); --no-build (the tests: ctest already built it); --corpus-only.
# The corpus grows in DIR/fuzz-corpus/<target> from run to run (seeds are in
# DIR/fuzz-seeds, remade when missing); a crash, a leak, a timeout or a broken
# property leaves its input in DIR/fuzz-artifacts/ and fails the run.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/build-fuzz
SECONDS_EACH=4
DO_BUILD=1
CORPUS_ONLY=0
TARGETS=()
while (($#)); do
	case "$1" in
	--time | --long) SECONDS_EACH=${2:?$1 needs a number of seconds}; shift 2 ;;
	--build) BUILD=$(realpath -m "${2:?--build needs a folder}"); shift 2 ;;
	--no-build) DO_BUILD=0; shift ;;
	--corpus-only) CORPUS_ONLY=1; shift ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) TARGETS+=("$1"); shift ;;
	esac
done
[[ "$SECONDS_EACH" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: bad seconds: $SECONDS_EACH" >&2; exit 2; }

if ((DO_BUILD)); then
	cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DSXFER_FUZZ=ON -DSXFER_TESTS=OFF -DSXFER_WERROR=ON \
		-DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build "$BUILD" -j2
fi
BIN=$BUILD/tests/fuzz
export SXFER=${SXFER:-$BUILD/sxfer}
export SX_FUZZ_SEEDS=${SX_FUZZ_SEEDS:-$BIN/sx_fuzz_seeds}
SEEDS=$BUILD/fuzz-seeds
if ((CORPUS_ONLY)) || [ ! -e "$SEEDS/.done" ]; then
	rm -rf "$SEEDS"
	bash "$SRC/tests/fuzz/make_corpus.sh" "$SEEDS.tmp"
	touch "$SEEDS.tmp/.done"
	rm -rf "$SEEDS"
	mv "$SEEDS.tmp" "$SEEDS"
fi
((CORPUS_ONLY)) && exit 0

if ((${#TARGETS[@]} == 0)); then
	for f in "$BIN"/fuzz_*; do
		[ -x "$f" ] && TARGETS+=("$(basename "$f")")
	done
fi
mkdir -p "$BUILD/fuzz-corpus" "$BUILD/fuzz-artifacts"
failed=0
rows=()
for t in "${TARGETS[@]}"; do
	[ -x "$BIN/$t" ] || { echo "run.sh: no target $t in $BIN" >&2; exit 2; }
	corpus=$BUILD/fuzz-corpus/$t
	log=$BUILD/fuzz-artifacts/$t.log
	mkdir -p "$corpus" "$SEEDS/$t"
	rc=0
	start=$(date +%s.%N)
	# New inputs go to the first folder; the seeds are read only.
	"$BIN/$t" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$BUILD/fuzz-artifacts/$t-" \
		"$corpus" "$SEEDS/$t" >"$log" 2>&1 </dev/null || rc=$?
	end=$(date +%s.%N)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
	if ((rc == 0)); then
		result=ok
	else
		result="FAILED (exit $rc)"
		failed=1
		echo "--- $t: last lines of $log" >&2
		tail -40 "$log" >&2
	fi
	rows+=("$(printf '%-14s %12s %6s   %s' "$t" "${execs:-?}" "$secs" "$result")")
	echo "${rows[-1]}"
done
if ((${#TARGETS[@]} > 1)); then
	printf '\n%-14s %12s %6s   %s\n' target executions secs result
	printf '%s\n' "${rows[@]}"
fi
exit $failed
