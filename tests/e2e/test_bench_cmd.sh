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

# sxfer bench pipe: each side, 1 and 2 threads, signed and unsigned, a
# min and a median line each; the floor of each side.
expect_exit 0 "$sx" bench pipe --size 8M --runs 1 --threads 1,2 --warm 16
out="$WORK/last.out"
grep -q "^sxfer bench pipe: 8.0 MiB in 8 records of 1.0 MiB" "$out" || fail "no pipe header"
for side in receive send; do
	for sign in signed unsigned; do
		for t in 1 2; do
			for st in min median; do
				grep -qE "^  $side +$t $sign +$st +([0-9.]+ +){7}[0-9.]+ +[0-9.]+$" "$out" || {
					cat "$out" >&2
					fail "no $st line for $side, $t thread(s), $sign"
				}
			done
		done
	done
	grep -qE "^  $side +floor signed +[0-9.]+ +[0-9.]+$" "$out" || fail "no floor for $side"
done
check_tmp_empty "pipe table run"
ok "pipe: a line per side, threads, signing and statistic; the floors"

expect_exit 0 "$sx" bench pipe --size 3M --chunk 64K --runs 2 --threads 2 --side recv --sign \
	--io poll --warm 0 --json
python3 - "$WORK/last.out" <<'PY' || fail "bad pipe JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "ok", d
assert d["bytes"] == 3 << 20 and d["records"] == 48 and d["chunk"] == d["leaf"] == 65536, d
assert d["io"] == "poll" and d["runs"] == 2 and d["file_checked"] is True, d
assert list(d["floor"]) == ["recv"], d["floor"]
assert set(d["floor"]["recv"]) == {"copy", "aead", "sha256", "io", "unsigned", "signed"}
c = d["configs"]
assert [(x["side"], x["threads"], x["signed"]) for x in c] == [("recv", 2, True)], c
assert c[0]["speedup"] is None, c  # no one-thread run to compare with
for k in ("wall_s", "gib_per_s", "mib_per_s", "user_s_per_gib", "sys_s_per_gib",
          "cpu_s_per_gib", "floor_s_per_gib", "cpu_over_floor"):
    assert c[0][k]["min"] >= 0 and c[0][k]["median"] >= 0, (k, c[0][k])
assert 0 < c[0]["wall_s"]["min"] <= c[0]["wall_s"]["median"], c[0]["wall_s"]
PY
check_tmp_empty "pipe json run"
ok "pipe --json: one object, the configurations asked for"

# Leaves that are not records, a folder and /dev/null as the receiver's output
mkdir -p "$WORK/pipe-out"
expect_exit 0 "$sx" bench pipe --size 1M --chunk 16K --leaf 4K --runs 1 --threads 1-2 \
	--out "$WORK/pipe-out" --warm 0 --suite chacha20poly1305
grep -q "leaves are not records here" "$WORK/last.out" || fail "no note on leaves"
[ -z "$(ls -A "$WORK/pipe-out")" ] || fail "pipe left its output in --out"
expect_exit 0 "$sx" bench pipe --size 1M --runs 1 --threads 1 --side recv --out /dev/null \
	--warm 0 --no-sign --json
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["file_checked"] is False, d' \
	<"$WORK/last.out" || fail "--out /dev/null JSON"
check_tmp_empty "pipe out runs"
ok "pipe: --leaf apart from --chunk, --out folder and /dev/null"

expect_exit 2 "$sx" bench pipe --side nope
expect_exit 2 "$sx" bench pipe --threads 0
expect_exit 2 "$sx" bench pipe --threads 1,9
expect_exit 2 "$sx" bench pipe --chunk 1K
expect_exit 2 "$sx" bench pipe --runs 0
: >"$WORK/user-file"
expect_exit 2 "$sx" bench pipe --size 1M --out "$WORK/user-file"
grep -qF "exists and is no folder or device" "$WORK/last.err" || fail "no reason for --out FILE"
expect_exit 2 "$sx" bench pipe extra
check_tmp_empty "pipe usage errors"
ok "pipe: usage errors exit 2"

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
