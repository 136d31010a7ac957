# Helpers of the agent's end-to-end tests (test_agent*.sh): an agent started
# and stopped by its PID, the writer of tests/e2e/agent_writer.py, and the
# checks that everything arrived exactly once.

# start_agent NAME ARGS...: `sxfer agent ARGS...` in the background; its
# JSON events appended to $WORK/NAME.json, its log to $WORK/NAME.log; sets
# AGENT_PID.
start_agent() {
	local name=$1
	shift
	"$SXFER" agent "$@" >>"$WORK/$name.json" 2>>"$WORK/$name.log" &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
}

# stop_agent PID: SIGTERM; the agent must exit 0.
stop_agent() {
	local rc=0
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" || rc=$?
	[ "$rc" -eq 0 ] || fail "agent $1 exited $rc after SIGTERM"
}

# files_left DIR: the files (not hidden) still under DIR.
files_left() {
	find "$1" -type f ! -name '.*' | wc -l
}

# watch_empty DIR: true when no file is left under DIR (for wait_until).
watch_empty() {
	[ "$(files_left "$1")" -eq 0 ]
}

# check_exactly_once REF OUT SERVERLOG N: the files under OUT (the
# sender's folder on the server) are exactly those of REF, byte for byte,
# N of them; the server logged file_stored once per path, never twice; its
# ledger has one stored row per path; every .sxsig verifies.
check_exactly_once() {
	local ref=$1 out=$2 log=$3 n=$4
	(cd "$ref" && find . -type f | sort) >"$WORK/ref.list"
	(cd "$out" && find . -type f ! -name '*.sxsig' | sort) >"$WORK/out.list"
	diff "$WORK/ref.list" "$WORK/out.list" >&2 || fail "the server's files are not those written"
	[ "$(wc -l <"$WORK/ref.list")" -eq "$n" ] || fail "expected $n files"
	while read -r f; do
		cmp -s "$ref/$f" "$out/$f" || fail "$f differs on the server"
	done <"$WORK/ref.list"
	grep 'event=file_stored' "$log" | sed 's/.* path="\([^"]*\)".*/\1/' | sort >"$WORK/stored.list"
	[ "$(wc -l <"$WORK/stored.list")" -eq "$n" ] ||
		fail "$(wc -l <"$WORK/stored.list") file_stored lines, expected $n"
	[ -z "$(uniq -d "$WORK/stored.list")" ] || fail "stored twice: $(uniq -d "$WORK/stored.list")"
	"$SXFER" ledger --out "$(dirname "$out")" files --state stored --json >"$WORK/ledger.json"
	python3 - "$WORK/ledger.json" "$n" <<'PY' || fail "the ledger disagrees"
import json, sys
rows = json.load(open(sys.argv[1]))
# A file sent again and answered "already there" has a row of its own,
# noted as such: it was not stored a second time.
paths = [r["path"] for r in rows if not (r["note"] or "").startswith("already there")]
assert len(paths) == int(sys.argv[2]), f"{len(paths)} stored rows"
assert len(set(paths)) == len(paths), "a path stored twice"
PY
	(cd "$out" && find . -type f ! -name '*.sxsig' -print0 | sort -z |
		xargs -0 "$SXFER" verify --ca "$WORK/ca" --signer cam-01 >"$WORK/verify.out") ||
		fail "a .sxsig does not verify: $(grep -v ': ok' "$WORK/verify.out" | head -3)"
}

# check_receipts DIR: every receipt in DIR verifies; prints their number.
check_receipts() {
	local r n=0
	for r in "$1"/*.sxreceipt; do
		[ -e "$r" ] || continue
		"$SXFER" verify --receipt "$r" --ca "$WORK/ca" >/dev/null || fail "receipt $r"
		n=$((n + 1))
	done
	echo "$n"
}

# check_after_order ACTION N JSON...: each file the agents' events report
# ACTION (deleted, moved) for was reported stored or already there before,
# exactly N files were, each once, and none was refused.
check_after_order() {
	local action=$1 n=$2
	shift 2
	cat "$@" | python3 -c '
import json, sys
action, n = sys.argv[1], int(sys.argv[2])
covered, done = set(), []
for line in sys.stdin:
    e = json.loads(line)
    if e["event"] == "file":
        assert e["result"] in ("stored", "same"), line
        covered.add(e["path"])
    if e["event"] == "after" and e["result"] == action:
        assert e["path"] in covered, "before its receipt: " + line
        done.append(e["path"])
assert len(done) == n, f"{len(done)} files {action}, expected {n}"
assert len(set(done)) == n, "a file twice"
' "$action" "$n" || fail "--after $action: not only after a receipt, or not each once"
}
