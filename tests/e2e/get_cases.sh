# sxfer get and ls end to end with one I/O backend ($IO: uring or poll) on
# both sides. Sourced by test_get_uring.sh and test_get_poll.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${IO:?}"

make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name cam-02 --role client --out "$WORK/cam2" >/dev/null
EX=$WORK/export
mkdir -p "$EX/cam-01/config/sub" "$EX/shared/tree/a/b" "$EX/shared/tree/empty" "$EX/cam-02"
rand_file "$EX/shared/big.bin" $((256 << 20))
printf 'interval=5\n' >"$EX/cam-01/config/cam.conf"
rand_file "$EX/cam-01/config/sub/model.bin" $((3 << 20))
rand_file "$EX/shared/tree/a/one" 65536
rand_file "$EX/shared/tree/a/b/two" 65537
: >"$EX/shared/tree/a/empty.txt"
chmod 0640 "$EX/shared/tree/a/one"
touch -d '2020-01-02 03:04:05.123456789' "$EX/shared/tree/a/b/two"
echo "not for cam-01" >"$EX/cam-02/secret"
ln -s ../cam-02/secret "$EX/shared/escape"
ln -s ../cam-02 "$EX/shared/escape-dir"
mkdir -p "$WORK/outside" && echo outside >"$WORK/outside/x"
ln -s "$WORK/outside" "$EX/cam-01/abs-link"

start_server srv --id "$WORK/server" --out "$WORK/out" --export "$EX" --io "$IO" --threads 2
SRV=$SERVER_PID
# The client opens what arrives on two workers besides its loop, every DATA
# record (the test hook SXFER_TEST_RXPOOL=all), in order: the files and
# their verification are those of one thread.
get() {
	SXFER_TEST_RXPOOL=all "$SXFER" get --id "$WORK/cam" --io "$IO" --quiet --open-threads 3 \
		"127.0.0.1:$PORT" "$@"
}
D=$WORK/dl

# A 256 MiB file and a tree, byte-identical, with modes and mtimes.
get shared/big.bin shared/tree "$D"
cmp "$EX/shared/big.bin" "$D/big.bin" || fail "256 MiB file differs"
diff -r -x '*.sxsig' "$EX/shared/tree" "$D/tree" || fail "tree differs"
for f in a/one a/b/two a/empty.txt; do
	a=$(stat -c '%a %s %Y' "$EX/shared/tree/$f")
	b=$(stat -c '%a %s %Y' "$D/tree/$f")
	[ "$a" = "$b" ] || fail "metadata of $f: '$a' on the server, '$b' here"
done
[ -d "$D/tree/empty" ] || fail "empty folder missing"
no_partials "$D"
ok "$IO: 256 MiB file and a tree byte-identical, modes and mtimes kept"

# Every file verifies offline against the server's signature.
mapfile -t files < <(find "$D" -type f ! -name '*.sxsig' | sort)
[ "${#files[@]}" -eq 4 ] || fail "expected 4 files, got ${#files[@]}"
"$SXFER" verify --ca "$WORK/ca" --signer server.test "${files[@]}" >"$WORK/v.out" ||
	fail "offline verification failed: $(cat "$WORK/v.out")"
expect_exit 3 "$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$D/big.bin"
ok "$IO: every downloaded file verifies offline with --signer server.test"

# The server logged each client's receipt, verified.
wait_until 10 "the receipt in the server log" grep -q 'event=receipt peer="cam-01".*verified=yes' "$WORK/srv.log"
grep -q 'event=get .*peer="cam-01".*files=4 .*result=ok' "$WORK/srv.log" || fail "no get line"
ok "$IO: the server verified and logged the client's signed receipt"

# Its own folder, with a trailing slash; standard output.
get cam-01/config/ "$D"
cmp "$EX/cam-01/config/sub/model.bin" "$D/config/sub/model.bin" || fail "own folder differs"
get shared/big.bin - | cmp - "$EX/shared/big.bin" || fail "standard output differs"
expect_exit 2 get shared/tree -
ok "$IO: own folder (trailing slash); one file to standard output; a folder refused there"

# No overwrite without --overwrite; nothing changed; then --overwrite.
echo "local" >"$WORK/keep" && mkdir -p "$WORK/d2" && cp "$WORK/keep" "$WORK/d2/cam.conf"
expect_exit 5 get cam-01/config/cam.conf "$WORK/d2"
grep -q "exists" "$WORK/last.err" || fail "no 'exists' in: $(cat "$WORK/last.err")"
cmp "$WORK/keep" "$WORK/d2/cam.conf" || fail "an existing file was replaced"
get --overwrite cam-01/config/cam.conf "$WORK/d2"
cmp "$EX/cam-01/config/cam.conf" "$WORK/d2/cam.conf" || fail "--overwrite did not replace"
ok "$IO: an existing file is kept (exit 5) unless --overwrite"

# Refused: another identity's folder, traversal, symlinks out, absolute
# paths; a missing path names itself.
for p in cam-02/secret ../export/cam-02/secret /etc/passwd shared/escape shared/escape-dir/secret \
	cam-01/abs-link/x out other; do
	expect_exit 3 get "$p" "$WORK/refused"
	grep -q "not allowed" "$WORK/last.err" || fail "$p: no 'not allowed' in: $(cat "$WORK/last.err")"
done
[ -z "$(ls -A "$WORK/refused" 2>/dev/null)" ] || fail "something arrived for a refused path"
expect_exit 5 get shared/no-such-file "$WORK/refused"
grep -q "shared/no-such-file" "$WORK/last.err" || fail "the missing path is not named"
ok "$IO: other identity, traversal, absolute path and symlinks refused (exit 3); missing path (exit 5)"

# ls: the top, a folder (with the .sxsig flag of what was uploaded), JSON.
ls_() { "$SXFER" ls --id "$WORK/cam" --io "$IO" "127.0.0.1:$PORT" "$@"; }
ls_ >"$WORK/ls.top"
grep -q ' cam-01/$' "$WORK/ls.top" && grep -q ' shared/$' "$WORK/ls.top" && grep -q ' uploads/$' "$WORK/ls.top" ||
	fail "top listing: $(cat "$WORK/ls.top")"
grep -q cam-02 "$WORK/ls.top" && fail "another identity's folder is listed"
ls_ shared >"$WORK/ls.shared"
grep -q " 268435456 .* shared/big.bin$" "$WORK/ls.shared" || fail "shared listing: $(cat "$WORK/ls.shared")"
grep -q "escape" "$WORK/ls.shared" && fail "a symlink is listed"
"$SXFER" send --id "$WORK/cam" --io "$IO" --quiet "127.0.0.1:$PORT" "$EX/cam-01/config/cam.conf"
ls_ --json uploads >"$WORK/ls.json"
python3 - "$WORK/ls.json" <<'PY' || fail "uploads listing: $(cat "$WORK/ls.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "ok", d
e = [x for x in d["entries"] if x["path"] == "uploads/cam.conf"]
assert len(e) == 1 and e[0]["sxsig"] is True and e[0]["size"] == 11 and e[0]["type"] == "file", d
assert not any(x["path"].endswith(".sxsig") for x in d["entries"]), d
PY
expect_exit 3 ls_ cam-02
expect_exit 5 ls_ shared/nothing
ok "$IO: ls of the top, a folder, uploads (with the .sxsig flag, JSON); refusals"

# What was uploaded comes back, under the client's signature no more: the
# server signs what it sends.
get uploads/cam.conf "$WORK/back"
"$SXFER" verify --ca "$WORK/ca" --signer server.test "$WORK/back/cam.conf" >/dev/null || fail "uploads/ get does not verify"
ok "$IO: uploads/ comes back, signed by the server"

# Unsigned on request.
get --no-sign shared/tree/a/one "$WORK/plain"
[ -f "$WORK/plain/one" ] && [ ! -e "$WORK/plain/one.sxsig" ] || fail "--no-sign"
ok "$IO: --no-sign gets plain files"

stop_server "$SRV"
ok "$IO: server stopped cleanly"
