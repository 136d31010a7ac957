#!/usr/bin/env bash
# send --dest SUBDIR: files and folders land under OUT/NAME/SUBDIR/, the
# folders on the way created; a SUBDIR that could leave the sender's folder
# ('..', an absolute path, an empty part) is refused by the sender (exit 2),
# and, sent all the same (the test hook dest), by the receiver: nothing
# lands outside OUT/NAME/.
source "$(dirname "$0")/lib.sh"
make_pki
mkdir -p "$WORK/tree/sub"
rand_file "$WORK/a.bin" 30000
rand_file "$WORK/tree/sub/b.bin" 40000

for d in ../x /etc a/../../b a//b ./a ""; do
	expect_exit 2 "$SXFER" send --id "$WORK/cam" --quiet --dest "$d" 127.0.0.1:1 "$WORK/a.bin"
	grep -qF -- "--dest '$d'" "$WORK/last.err" || fail "--dest '$d': $(cat "$WORK/last.err")"
done
ok "--dest ../x, /etc, a/../../b, a//b, ./a and '' refused: $(head -n1 "$WORK/last.err")"

start_server srv --id "$WORK/server" --out "$WORK/out"
"$SXFER" send --id "$WORK/cam" --quiet --dest "site 1/2026-03" "127.0.0.1:$PORT" \
	"$WORK/a.bin" "$WORK/tree" || fail "send --dest"
echo stream | "$SXFER" send --id "$WORK/cam" --quiet --dest live --name now.txt \
	"127.0.0.1:$PORT" - || fail "send --dest of a stream"
D="$WORK/out/cam-01/site 1/2026-03"
cmp "$WORK/a.bin" "$D/a.bin"
cmp "$WORK/tree/sub/b.bin" "$D/tree/sub/b.bin"
[ -s "$D/a.bin.sxsig" ] || fail "no .sxsig beside the file"
[ "$(cat "$WORK/out/cam-01/live/now.txt")" = stream ] || fail "the stream is not under live/"
"$SXFER" verify --ca "$WORK/ca" "$D/a.bin" >/dev/null || fail "a file sent with --dest does not verify"
ok "files, a folder and a stream land under OUT/cam-01/SUBDIR/, signed"

# The receiver's own check, for a sender that does not check (the test
# hook dest, compiled into the sanitizer test build only).
if grep -qaF SXFER_TEST_HOSTILE "$SXFER"; then
	for d in ../x /etc a/../../b; do
		rc=0
		SXFER_TEST_HOSTILE=dest "$SXFER" send --id "$WORK/cam" --quiet --retry 0 \
			--no-sign --dest "$d" "127.0.0.1:$PORT" "$WORK/a.bin" 2>"$WORK/h.err" || rc=$?
		[ "$rc" -eq 5 ] || fail "--dest '$d' past the sender: exit $rc: $(cat "$WORK/h.err")"
		grep -q "receiver refused a file: refused path '${d//./\\.}/a.bin'" "$WORK/h.err" ||
			fail "--dest '$d': $(cat "$WORK/h.err")"
	done
	n=$(grep -c 'event=file_refused.*reason="refused path' "$WORK/srv.log")
	[ "$n" -eq 3 ] || fail "the receiver refused $n of the 3 paths"
	[ ! -e "$WORK/x" ] && [ ! -e "$WORK/out/x" ] && [ ! -e "$WORK/b" ] && [ ! -e "$WORK/out/b" ] ||
		fail "a file landed outside OUT/cam-01"
	[ "$(find "$WORK/out" -name a.bin | wc -l)" -eq 1 ] || fail "a.bin was stored again"
	ok "the receiver refuses them too (FILE_ERR, exit 5): $(tail -n1 "$WORK/h.err")"
else
	echo "skip: the receiver's check needs the test hooks (SXFER_SANITIZE=ON)"
fi
no_partials "$WORK/out"
stop_server "$SERVER_PID"
