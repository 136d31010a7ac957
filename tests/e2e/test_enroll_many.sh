#!/usr/bin/env bash
# sxfer ca serve under load and under attack: 100 enrollments at once (every
# one issued, all serials distinct, the CA's index holding each once), and
# the limit of failed token attempts per address (refused without the CA
# being asked, the good token then not spent; usable again after the
# window).
source "$(dirname "$0")/enroll_lib.sh"
N=${ENROLL_MANY:-100}
make_ca "$WORK/ca" "e2e CA"
FP=$(root_fp "$WORK/ca")
start_ca_serve esv "$WORK/ca" --max-conns 128
EP=$EPORT

for i in $(seq 1 "$N"); do
	token "dev-$i" >"$WORK/tok.$i"
done
pids=()
for i in $(seq 1 "$N"); do
	enroll_at "$EP" --token-file "$WORK/tok.$i" --out "$WORK/dev-$i" --no-passphrase --json \
		>"$WORK/j.$i" 2>"$WORK/e.$i" &
	pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || { failed=$((failed + 1)); cat "$WORK/e.$((i + 1))" >&2; }
done
[ "$failed" -eq 0 ] || fail "$failed of $N enrollments failed"
python3 - "$WORK" "$N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
serials = set()
for i in range(1, n + 1):
    j = json.load(open(f"{work}/j.{i}"))
    assert j["result"] == "ok" and j["name"] == f"dev-{i}", j
    serials.add(j["serial"])
assert len(serials) == n, f"{len(serials)} distinct serials for {n} enrollments"
PY
"$SXFER" ca list --ca "$WORK/ca" >"$WORK/list"
[ "$(grep -c ' dev-[0-9]*$' "$WORK/list")" -eq "$N" ] || { cat "$WORK/list" >&2; fail "ca list"; }
[ "$(awk '/ dev-[0-9]+$/ { print $1 }' "$WORK/list" | sort -u | wc -l)" -eq "$N" ] ||
	fail "ca list: serials repeated"
for i in 1 "$N"; do
	serial=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$WORK/j.$i")
	grep -q "^$serial .* dev-$i\$" "$WORK/list" || fail "ca list lacks dev-$i ($serial)"
done
[ "$(log_count "$WORK/esv.log" 'kind=enroll result=issued')" -eq "$N" ] || fail "log lines"
ok "$N enrollments at once: all issued, $N distinct serials, ca list holds each once"
stop_server "$EPID"

# Three failed attempts within the window: the fourth, even with a good
# token, is refused without the CA being asked, and that token stays
# unspent; after the window it works.
start_ca_serve esv2 "$WORK/ca" --max-failures 3 --failure-window 4
good=$(token limited-1)
for i in 1 2 3; do
	bad=$(token "limited-x$i")
	expect_exit 3 enroll_at "$EPORT" --token "$bad" --name "someone-else" --out "$WORK/x$i"
done
expect_exit 3 enroll_at "$EPORT" --token "$good" --out "$WORK/limited"
has "$WORK/last.err" "too many failed enrollment attempts from 127.0.0.1; retry in"
has "$WORK/esv2.log" "result=limited"
sleep 4 # what is tested: the window of --failure-window 4 passes
enroll_at "$EPORT" --token "$good" --out "$WORK/limited" >/dev/null
ok "3 failed attempts: the next refused ($(tail -n1 "$WORK/last.err" | sed 's/.*: //')); after the window the token works"
stop_server "$EPID"
