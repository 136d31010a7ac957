#!/usr/bin/env bash
# sxfer bench: the table, the JSON object, usage errors, and the temporary
# folder (CA, keys, input, received copy) gone afterwards. Small sizes: this
# checks the command, not the machine.
. "$(dirname "$0")/lib.sh"
sx=$SXFER

# The command's temporary folder goes into a folder of our own, checked empty.
export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"
check_tmp_empty() {
	if [ -n "$(ls -A "$TMPDIR")" ]; then
		ls -laR "$TMPDIR" >&2
		fail "temporary folder left behind: $*"
	fi
}

expect_exit 0 "$sx" bench --help
grep -q "^usage: sxfer bench" "$WORK/last.out" || fail "no usage"
ok "--help"

expect_exit 0 "$sx" bench --size 8M --seconds 0.05
out="$WORK/last.out"
for s in aes-256-gcm aes-256-ctr-hmac-sha256 chacha20-poly1305; do
	for op in seal open; do
		grep -qE "^  $op $s +[0-9.]+ +[0-9.]+$" "$out" || {
			cat "$out" >&2
			fail "no $op line for $s"
		}
	done
	grep -qE "^  transfer +$s +signed +[0-9.]+ +[0-9.]+ +1 +1$" "$out" ||
		fail "no signed transfer line for $s"
	grep -qE "^  transfer +$s +no-sign +[0-9.]+ +[0-9.]+ +0 +0$" "$out" ||
		fail "no unsigned transfer line for $s"
done
grep -qE "^  sha256-leaf +[0-9.]+ +[0-9.]+$" "$out" || fail "no SHA-256 line"
grep -qE "^  memcpy +[0-9.]+ +[0-9.]+$" "$out" || fail "no memcpy line"
grep -qF "temporary folder in $TMPDIR (" "$out" || fail "TMPDIR not used or fs not named"
check_tmp_empty "table run"
ok "table: seal/open per suite, SHA-256, memcpy, six transfers"

expect_exit 0 "$sx" bench --size 4M --seconds 0.02 --suite chacha20poly1305 --io poll --json
python3 - "$WORK/last.out" <<'PY' || fail "bad JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "ok", d
for k in ("buffer_bytes", "seconds_per_primitive", "primitives", "transfer"):
    assert k in d, k
names = [(p["name"], p["suite"]) for p in d["primitives"]]
assert names == [("seal", "chacha20-poly1305"), ("open", "chacha20-poly1305"),
                 ("sha256-leaf", None), ("memcpy", None)], names
for p in d["primitives"]:
    assert p["mib_per_s"] > 0 and p["s_per_gib"] > 0, p
t = d["transfer"]
for k in ("bytes", "fs", "tmpfs", "io", "runs"):
    assert k in t, k
assert t["bytes"] == 4 << 20 and t["io"] == "poll", t
assert [(r["suite"], r["signed"]) for r in t["runs"]] == [
    ("chacha20-poly1305", True), ("chacha20-poly1305", False)], t["runs"]
assert t["runs"][0]["receipts"] == 1 and t["runs"][1]["receipts"] == 0, t["runs"]
PY
python3 -c 'import json,sys; json.load(sys.stdin)' <"$WORK/last.out" || fail "not JSON"
check_tmp_empty "json run"
ok "--json: one object with primitives and transfer"

expect_exit 0 "$sx" bench --seconds 0.01 --no-transfer --json
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["transfer"] is None' \
	<"$WORK/last.out" || fail "--no-transfer JSON"
ok "--no-transfer"

expect_exit 2 "$sx" bench --suite nope
grep -qF "unknown suite 'nope'" "$WORK/last.err" || fail "no reason for --suite nope"
expect_exit 2 "$sx" bench --seconds 0
expect_exit 2 "$sx" bench --seconds 1x
expect_exit 2 "$sx" bench --size 0
expect_exit 2 "$sx" bench --io nope
expect_exit 2 "$sx" bench extra
ok "usage errors exit 2"

# Ctrl-C once the temporary folder exists: exit 1, the folder removed
"$sx" bench --size 64M --seconds 0.01 >"$WORK/int.out" 2>"$WORK/int.err" &
pid=$!
bench_tmp_made() { compgen -G "$TMPDIR/sxfer-bench-*/out" >/dev/null; }
wait_until 20 "the bench's temporary folder" bench_tmp_made
kill -INT "$pid"
got=0
wait "$pid" || got=$?
[ "$got" -eq 1 ] || { cat "$WORK/int.err" >&2; fail "interrupted bench: exit $got, not 1"; }
grep -qF "sxfer: interrupted" "$WORK/int.err" || fail "no 'interrupted' message"
check_tmp_empty "interrupted run"
ok "SIGINT: exit 1, temporary folder removed"

# a failure still removes the folder: TMPDIR that cannot hold a folder
expect_exit 5 env TMPDIR="$WORK/missing" "$sx" bench --size 1M --seconds 0.01
ok "no temporary folder: exit 5"
check_tmp_empty "end"
ok "temporary folder removed"
