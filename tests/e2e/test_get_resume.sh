#!/usr/bin/env bash
# sxfer get resumes as sxfer send does (docs/PROTOCOL.md, "Resume and
# re-sending"; the server asks, the client offers):
#   - a 64 MiB get cut at about half by a proxy keeps a held part; the next
#     get moves only the rest (get --json bytes_resumed), and the file, its
#     .sxsig and the server's receipt are those of an uninterrupted get;
#   - a folder whose files are mostly there already: only the new ones move;
#   - a file already there and identical: "already there", not "exists"
#     (also without its .sxsig); other content: exit 5, or --overwrite;
#   - a get killed (kill -9) at a random moment, then run again;
#   - a get to standard output is not asked about and stores nothing.
source "$(dirname "$0")/lib.sh"

make_pki
EX=$WORK/export
mkdir -p "$EX/shared/tree/sub"
rand_file "$EX/shared/big.bin" $((64 << 20))
for i in 1 2 3 4 5 6; do
	rand_file "$EX/shared/tree/f$i" $((1 << 20))
done
rand_file "$EX/shared/tree/sub/g" 70000

start_server srv --id "$WORK/server" --out "$WORK/out" --export "$EX"
SRV_PORT=$PORT
# get PORT ARGS...: a bounded get with --json (its summary in $WORK/last.out
# when run under expect_exit).
get() {
	local port=$1
	shift
	timeout 120 "$SXFER" get --id "$WORK/cam" --quiet --timeout 20 --json "127.0.0.1:$port" "$@"
}
# json KEY: a number from the last --json summary.
json() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$WORK/last.out" "$1"
}

# 1. Cut at ~32 MiB of the server's bytes, then again: only the rest moves.
rm -f "$WORK/proxy.port"
python3 "$E2E_DIR/cutproxy.py" cut:s2c $((32 << 20)) "$SRV_PORT" "$WORK/proxy.port" 1 \
	>"$WORK/proxy.out" &
PROXY=$!
PIDS+=("$PROXY")
wait_until 10 "cutproxy.py to listen" test -s "$WORK/proxy.port"
PPORT=$(cat "$WORK/proxy.port")
D=$WORK/dl
mkdir "$D"
got=0
get "$PPORT" shared/big.bin "$D" >"$WORK/last.out" 2>"$WORK/last.err" || got=$?
[ "$got" -ne 0 ] || fail "the cut get succeeded"
kill -0 "$PROXY" || fail "cutproxy.py exited: $(cat "$WORK/proxy.out")"
[ ! -e "$D/big.bin" ] || fail "a cut get left big.bin under its final name"
held=$(find "$D" -name '.big.bin.*.sxheld')
[ -n "$held" ] || fail "no held part after the cut: $(ls -A "$D")"
hb=$(stat -c %s "$held")
[ "$hb" -ge $((8 << 20)) ] && [ "$hb" -lt $((64 << 20)) ] || fail "held part of $hb bytes"
no_partials "$D"
ok "a get cut at ~32 MiB (exit $got) keeps a held part of $hb bytes"

expect_exit 0 get "$PPORT" shared/big.bin "$D"
[ "$(json files_resumed)" -eq 1 ] || fail "files_resumed: $(cat "$WORK/last.out")"
[ "$(json bytes_resumed)" -eq "$hb" ] || fail "bytes_resumed: $(cat "$WORK/last.out")"
[ "$(json bytes)" -eq $(((64 << 20) - hb)) ] || fail "bytes: $(cat "$WORK/last.out")"
cmp "$EX/shared/big.bin" "$D/big.bin" || fail "the resumed file differs"
[ -z "$(find "$D" -name '*.sxheld*')" ] || fail "the held part stayed: $(ls -A "$D")"
no_partials "$D"
"$SXFER" verify --ca "$WORK/ca" --signer server.test "$D/big.bin" >"$WORK/v.out" ||
	fail "the resumed file does not verify: $(cat "$WORK/v.out")"
grep -q 'event=resume .*path="big.bin" from='"$hb" "$WORK/srv.log" ||
	fail "the server logged no resume from $hb"
wait_until 10 "the receipt of the resumed get" \
	grep -q 'event=receipt peer="cam-01".*files=1 .*verified=yes' "$WORK/srv.log"
ok "the second get resumed from byte $hb: byte-identical, verifies, receipt verified"
kill "$PROXY"
wait "$PROXY" 2>/dev/null || true

# 2. A folder already there but for two new files: only those move.
expect_exit 0 get "$SRV_PORT" shared/tree "$D"
[ "$(json files_same)" -eq 0 ] || fail "first tree get: $(cat "$WORK/last.out")"
rand_file "$EX/shared/tree/new1" 300000
rand_file "$EX/shared/tree/sub/new2" 200000
expect_exit 0 get "$SRV_PORT" shared/tree "$D"
[ "$(json files_same)" -eq 7 ] || fail "files_same: $(cat "$WORK/last.out")"
[ "$(json files_ok)" -eq 9 ] || fail "files_ok: $(cat "$WORK/last.out")"
[ "$(json bytes)" -eq 500000 ] || fail "bytes: $(cat "$WORK/last.out")"
diff -r -x '*.sxsig' "$EX/shared/tree" "$D/tree" || fail "the tree differs"
mapfile -t files < <(find "$D/tree" -type f ! -name '*.sxsig' | sort)
"$SXFER" verify --ca "$WORK/ca" --signer server.test "${files[@]}" >"$WORK/v.out" ||
	fail "the tree does not verify: $(cat "$WORK/v.out")"
ok "a folder with 7 of 9 files there: 2 moved (500000 bytes), 7 already there, all verify"

# 3. A file already there and identical: already there, with or without its
# .sxsig (written again when missing); other content of that size (no
# .sxsig): exit 5, unless --overwrite.
expect_exit 0 get "$SRV_PORT" shared/big.bin "$D"
[ "$(json files_same)" -eq 1 ] && [ "$(json bytes)" -eq 0 ] ||
	fail "identical: $(cat "$WORK/last.out")"
rm "$D/big.bin.sxsig"
expect_exit 0 get "$SRV_PORT" shared/big.bin "$D"
[ "$(json files_same)" -eq 1 ] || fail "identical without .sxsig: $(cat "$WORK/last.out")"
"$SXFER" verify --ca "$WORK/ca" --signer server.test "$D/big.bin" >"$WORK/v.out" ||
	fail "no valid .sxsig written again: $(cat "$WORK/v.out")"
# (a .sxsig beside a file stands for its content, as on a server: the
# changed file goes without it)
flip_byte "$D/tree/f1" 1000
rm "$D/tree/f1.sxsig"
cp "$D/tree/f1" "$WORK/f1.other"
expect_exit 5 get "$SRV_PORT" shared/tree/f1 "$D/tree"
grep -q "exists with other content" "$WORK/last.err" || fail "other content: $(cat "$WORK/last.err")"
cmp "$WORK/f1.other" "$D/tree/f1" || fail "other content was replaced without --overwrite"
expect_exit 0 get "$SRV_PORT" --overwrite shared/tree/f1 "$D/tree"
cmp "$EX/shared/tree/f1" "$D/tree/f1" || fail "--overwrite did not replace"
ok "identical file: already there (with and without .sxsig); other content: exit 5, --overwrite replaces"

# 4. kill -9 of the client at a random moment, then again.
K=$WORK/dl-kill
mkdir "$K"
"$SXFER" get --id "$WORK/cam" --quiet --timeout 20 "127.0.0.1:$SRV_PORT" shared/big.bin "$K" \
	2>"$WORK/kill.err" &
GET=$!
some_bytes() {
	local p
	p=$(find "$K" -name '.big.bin.*.sxpart' -size +2048k | head -n1)
	[ -n "$p" ] || ! kill -0 "$GET" 2>/dev/null
}
wait_until 60 "the get to receive some bytes" some_bytes
sleep "0.$((RANDOM % 300))"
kill -9 "$GET" 2>/dev/null || true
wait "$GET" 2>/dev/null || true
expect_exit 0 get "$SRV_PORT" shared/big.bin "$K"
cmp "$EX/shared/big.bin" "$K/big.bin" || fail "after kill -9: the file differs"
"$SXFER" verify --ca "$WORK/ca" --signer server.test "$K/big.bin" >"$WORK/v.out" ||
	fail "after kill -9: does not verify: $(cat "$WORK/v.out")"
no_partials "$K"
[ -z "$(find "$K" -name '*.sxheld*' -o -name '*.sxmeta')" ] || fail "left: $(ls -A "$K")"
ok "a get killed with -9, then again: resumed $(json bytes_resumed) bytes ($(json files_same) already there), identical, verifies"

# 5. Standard output: never asked about; nothing stored.
mkdir "$WORK/tmp"
TMPDIR=$WORK/tmp timeout 60 "$SXFER" get --id "$WORK/cam" --quiet "127.0.0.1:$SRV_PORT" \
	shared/big.bin - | cmp - "$EX/shared/big.bin" || fail "standard output differs"
[ -z "$(ls -A "$WORK/tmp")" ] || fail "left in TMPDIR: $(ls -A "$WORK/tmp")"
ok "a get to standard output: whole, nothing kept"
stop_server "$SERVER_PID"
