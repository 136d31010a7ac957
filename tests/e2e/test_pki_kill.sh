#!/usr/bin/env bash
# The CA folder stays consistent when `sxfer ca issue` is killed at a random
# moment, and concurrent issues do not lose each other's index entries.
. "$(dirname "$0")/pki_lib.sh"
sx=$SXFER

"$sx" ca init --ca ca --name "Kill CA" >/dev/null

check_consistent() {
	"$sx" ca list --ca ca >list.txt || fail "ca list failed after a kill"
	local serials
	serials=$(awk -F'\t' '!/^#/ && NF {print $2}' ca/index.txt)
	for s in $serials; do
		[ -s "ca/certs/$s.pem" ] || fail "index entry $s has no certificate file"
		openssl x509 -in "ca/certs/$s.pem" -noout -serial | grep -qi "=0*$s\$" ||
			fail "ca/certs/$s.pem holds another serial"
	done
	[ -z "$(printf '%s\n' $serials | sort | uniq -d)" ] || fail "duplicate serials in the index"
}

for i in $(seq 1 10); do
	"$sx" ca issue --ca ca --name "k$i" --role client --out "k$i" >/dev/null 2>&1 &
	pid=$!
	# Part of the test: the kill lands at a random moment of the issue.
	sleep "0.$(printf '%03d' $((RANDOM % 200)))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	check_consistent
	"$sx" ca issue --ca ca --name "after$i" --role server --dns "after$i.test" \
		--out "after$i" >/dev/null || fail "issue after a kill failed"
	"$sx" id verify --ca ca --role server --name "after$i.test" "after$i" >/dev/null ||
		fail "certificate issued after a kill does not verify"
	check_consistent
done
echo "ok: 10 killed issues left the CA consistent"

# concurrent issues: all entries are kept
before=$(grep -vc '^#' ca/index.txt)
pids=()
for i in 1 2 3 4 5 6; do
	"$sx" ca issue --ca ca --name "c$i" --role client --out "c$i" >/dev/null &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent issue failed"; done
after=$(grep -vc '^#' ca/index.txt)
[ "$after" -eq $((before + 6)) ] || fail "concurrent issues lost entries ($before -> $after)"
check_consistent
for i in 1 2 3 4 5 6; do grep -q "	c$i\$" ca/index.txt || fail "c$i missing from the index"; done
echo "ok: 6 concurrent issues all recorded"
echo "all kill tests passed"
