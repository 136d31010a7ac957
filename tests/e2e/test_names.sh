#!/usr/bin/env bash
# Names the receiver would refuse, through a real server: the sender skips
# them while it walks the tree (a warning each, counted in --json), sends
# everything else, and exits 5; signed or not, no other file is lost. A
# name too long for its NAME.sxsig is skipped when signing. A folder that
# holds X and X.sxsig (signed earlier with `sxfer sign`): signed, X.sxsig is
# skipped (the receiver keeps the signature of X under that name) and no
# stray X.sxsig.sxsig appears; --no-sign forwards it unchanged.
source "$(dirname "$0")/lib.sh"

make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name author --role client --out "$WORK/author" >/dev/null
start_server names --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
OUT=$WORK/out/cam-01
send() { "$SXFER" send --id "$WORK/cam" --quiet --receipts "$WORK/receipts" "$@"; }

# json_check FILE EXPR: FILE is one JSON object d; EXPR holds.
json_check() {
	python3 -c 'import json, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert eval(sys.argv[2]), d' "$1" "$2"
}

# five_and_bad DIR: five good files, one named with a newline, and a
# folder whose name holds a tab (skipped as a whole, with its content).
five_and_bad() {
	mkdir -p "$1" "$1/"$'sub\tdir'
	for i in 1 2 3 4 5; do printf 'file %s\n' "$i" >"$1/good$i.txt"; done
	printf 'refused\n' >"$1/"$'bad\nname'
	printf 'inside\n' >"$1/"$'sub\tdir/inner.txt'
}

# ---- one bad name no longer costs the session ------------------------------
five_and_bad "$WORK/signed"
expect_exit 5 send --json "127.0.0.1:$PORT" "$WORK/signed"
json_check "$WORK/last.out" \
	'd["exit"] == 5 and d["files_ok"] == 5 and d["files_skipped"] == 2 and d["files_failed"] == 0 and d["receipts"] == 1' ||
	fail "--json: $(cat "$WORK/last.out")"
[ "$(grep -c 'event=skip' "$WORK/last.err")" -eq 2 ] || { cat -v "$WORK/last.err" >&2; fail "expected 2 skip warnings"; }
grep -qF 'path="'"$WORK"'/signed/bad\nname"' "$WORK/last.err" || { cat -v "$WORK/last.err" >&2; fail "bad name not named"; }
grep -qF 'control character' "$WORK/last.err" || fail "no reason given"
for i in 1 2 3 4 5; do
	cmp "$WORK/signed/good$i.txt" "$OUT/signed/good$i.txt" || fail "good$i.txt not stored"
	[ -f "$OUT/signed/good$i.txt.sxsig" ] || fail "good$i.txt has no .sxsig"
done
"$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$OUT"/signed/good*.txt >/dev/null ||
	fail "stored files do not verify"
[ "$(find "$OUT/signed" -mindepth 1 | wc -l)" -eq 10 ] || { find "$OUT/signed" >&2; fail "more than the five files and their signatures"; }
ok "signed: a bad name and a bad folder are skipped with a warning; the five are stored, exit 5"

five_and_bad "$WORK/plain"
expect_exit 5 send --json --no-sign "127.0.0.1:$PORT" "$WORK/plain"
json_check "$WORK/last.out" 'd["files_ok"] == 5 and d["files_skipped"] == 2 and d["files_failed"] == 0' ||
	fail "--json: $(cat "$WORK/last.out")"
[ "$(find "$OUT/plain" -mindepth 1 | wc -l)" -eq 5 ] || { find "$OUT/plain" >&2; fail "not exactly the five files"; }
grep -q 'event=file_refused' "$WORK/names.log" && fail "the receiver refused a file: the sender sent a bad name"
ok "--no-sign: the same five stored, nothing refused by the receiver, exit 5"

# ---- a name too long for its NAME.sxsig ------------------------------------
mkdir "$WORK/long"
L250=$(printf 'n%.0s' $(seq 1 250))
L249=${L250:1}
printf 'a\n' >"$WORK/long/$L250"
printf 'b\n' >"$WORK/long/$L249"
expect_exit 5 send --json "127.0.0.1:$PORT" "$WORK/long"
json_check "$WORK/last.out" 'd["files_ok"] == 1 and d["files_skipped"] == 1' || fail "--json: $(cat "$WORK/last.out")"
grep -qF 'at most 249 bytes' "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "no reason for the long name"; }
[ -f "$OUT/long/$L249" ] && [ -f "$OUT/long/$L249.sxsig" ] || fail "249-byte name not stored with its .sxsig"
[ ! -e "$OUT/long/$L250" ] || fail "250-byte name stored without room for its .sxsig"
mv "$WORK/long" "$WORK/long2"
expect_exit 0 send --no-sign "127.0.0.1:$PORT" "$WORK/long2"
[ -f "$OUT/long2/$L250" ] || fail "unsigned, a 250-byte name is fine"
ok "signed, a name of 250 bytes (no room for NAME.sxsig) is skipped; unsigned it is sent"

expect_exit 2 send "127.0.0.1:$PORT" "$WORK/long2/$L250"
grep -qF 'cannot be sent' "$WORK/last.err" || fail "no reason for the refused argument"
L242=$(printf 's%.0s' $(seq 1 242))
echo stream | expect_exit 2 send --name "$L242" "127.0.0.1:$PORT" -
grep -qF 'NAME.partial.sxsig' "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "--name: no reason"; }
echo stream | expect_exit 0 send --name "${L242:1}" "127.0.0.1:$PORT" -
[ -f "$OUT/${L242:1}.sxsig" ] || fail "241-byte stream name not stored signed"
ok "named on the command line (a file, --name of a stream): refused as a usage error (2)"

# ---- X beside X.sxsig, signed earlier --------------------------------------
mkdir "$WORK/fwd"
rand_file "$WORK/fwd/X" 100000
printf 'alone\n' >"$WORK/fwd/Y"
"$SXFER" sign --id "$WORK/author" "$WORK/fwd/X" >/dev/null
mv "$WORK/fwd/Y" "$WORK/fwd/Y.sxsig" # a .sxsig whose file is not sent: plain data
cp -a "$WORK/fwd" "$WORK/fwd2"
expect_exit 5 send --json "127.0.0.1:$PORT" "$WORK/fwd"
json_check "$WORK/last.out" 'd["files_ok"] == 2 and d["files_skipped"] == 1 and d["files_failed"] == 0' ||
	fail "--json: $(cat "$WORK/last.out")"
grep -qF "path=\"$WORK/fwd/X.sxsig\"" "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "no warning for X.sxsig"; }
cmp "$WORK/fwd/X" "$OUT/fwd/X" || fail "X not stored"
"$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$OUT/fwd/X" >/dev/null || fail "X.sxsig on the receiver is not the transfer's"
cmp "$WORK/fwd/Y.sxsig" "$OUT/fwd/Y.sxsig" || fail "Y.sxsig (no Y sent) not stored as data"
[ ! -e "$OUT/fwd/X.sxsig.sxsig" ] || fail "stray X.sxsig.sxsig"
grep -q 'event=file_refused' "$WORK/names.log" && fail "the receiver refused a file"
ok "signed: X.sxsig beside X is skipped with a warning, X carries the transfer's signature"

expect_exit 0 send --no-sign "127.0.0.1:$PORT" "$WORK/fwd2"
cmp "$WORK/fwd2/X.sxsig" "$OUT/fwd2/X.sxsig" || fail "X.sxsig not forwarded unchanged"
"$SXFER" verify --ca "$WORK/ca" --signer author "$OUT/fwd2/X" >/dev/null || fail "forwarded signature does not verify"
ok "--no-sign: X.sxsig travels as data and still verifies with its first signer"

no_partials "$WORK/out"
stop_server "$SRV"
