#!/usr/bin/env bash
# A file with more bytes at the end of its reading than when it was begun is
# sent at the size it was begun with (the size FILE_BEGIN and the signature
# carry), and the sender warns once per file: a log line, a line on stderr,
# and "files_grew" in --json. /proc/self/status is the deterministic case:
# its size says 0 bytes, reading it gives more. A file that does not grow
# gives no warning.
source "$(dirname "$0")/lib.sh"
make_pki
start_server srv --id "$WORK/server" --out "$WORK/out" --overwrite
OUT=$WORK/out/cam-01
send() { "$SXFER" send --id "$WORK/cam" --quiet --receipts "$WORK/receipts" "127.0.0.1:$PORT" "$@"; }

[ "$(stat -c %s /proc/self/status)" -eq 0 ] && [ "$(head -c 1 /proc/self/status | wc -c)" -eq 1 ] ||
	fail "/proc/self/status does not read more than its size says"

send /proc/self/status --json >"$WORK/grew.json" 2>"$WORK/grew.err"
grep -q '"result":"ok"' "$WORK/grew.json" || fail "send failed: $(cat "$WORK/grew.json")"
grep -q '"files_grew":1}' "$WORK/grew.json" || fail "--json: $(cat "$WORK/grew.json")"
[ "$(grep -c 'event=file_grew' "$WORK/grew.err")" -eq 1 ] || { cat "$WORK/grew.err" >&2; fail "no single log line"; }
grep 'event=file_grew' "$WORK/grew.err" | grep -q 'path="/proc/self/status" sent=0 ' ||
	{ cat "$WORK/grew.err" >&2; fail "the log line does not name the file and the size sent"; }
[ -e "$OUT/status" ] && [ ! -s "$OUT/status" ] || fail "not stored at its announced size (0)"
"$SXFER" verify --ca "$WORK/ca" "$OUT/status" >/dev/null || fail "the stored file does not verify"
ok "a file with more bytes than announced: sent at its announced size, one warning (log, --json)"

rm -f "$OUT/status" "$OUT/status.sxsig" # else already there: nothing read
send /proc/self/status --no-sign 2>"$WORK/grew2.err" >/dev/null || fail "send failed"
grep -q 'warning: 1 file(s) grew while they were being sent' "$WORK/grew2.err" ||
	{ cat "$WORK/grew2.err" >&2; fail "no warning on stderr"; }
ok "the warning on stderr without --json"

rand_file "$WORK/steady.bin" 300000
send "$WORK/steady.bin" --json >"$WORK/steady.json" 2>"$WORK/steady.err"
grep -q '"files_grew":0}' "$WORK/steady.json" || fail "--json: $(cat "$WORK/steady.json")"
! grep -q 'file_grew\|grew while' "$WORK/steady.err" || fail "a warning for a file that did not grow"
cmp "$WORK/steady.bin" "$OUT/steady.bin"
ok "a file that does not grow: no warning"
