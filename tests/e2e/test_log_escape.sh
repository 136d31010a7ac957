#!/usr/bin/env bash
# Hostile file names through a real server: a name that would forge log
# fields, one with bytes that are not UTF-8, one with a C1 control (CSI),
# and, on the sender only (the protocol carries no control bytes in a
# path), names with a newline and with ESC. Every log line of both ends
# keeps one event= and gives the names back exactly (README "Logs"), the
# sender's --json output is valid UTF-8 JSON, and a reason the receiver
# sends back (a refused file whose name holds a quote) is escaped on the
# sender too.
source "$(dirname "$0")/lib.sh"

make_pki
start_server logs --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
send() { "$SXFER" send --id "$WORK/cam" --quiet "$@"; }

QUOTE='q" event=fake level=error x="'
NEWLINE=$'n\nts=x level=error event=fake'
BADUTF=$'bad\xff\xfe\xc0\xaf'
CSI=$'csi\xc2\x9b2J'
ESCAPE=$'esc\e[2J\x7f'
mkdir "$WORK/src" "$WORK/dir"
for n in "$QUOTE" "$NEWLINE" "$BADUTF" "$CSI"; do
	printf 'content of a hostile name\n' >"$WORK/src/$n"
done

# check_log FILE NAME...: FILE is valid UTF-8 without control bytes; each
# line that starts with ts= parses as key=value pairs with exactly one
# event, none of them fake; every NAME appears, unescaped, as a value.
check_log() {
	python3 - "$@" <<'PY'
import re, sys

path, names = sys.argv[1], [n.encode("utf-8", "surrogateescape") for n in sys.argv[2:]]
data = open(path, "rb").read()
text = data.decode("utf-8")  # raises on bytes that are not UTF-8
for ch in text:
    if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F:
        sys.exit(f"{path}: raw control character {ord(ch):#x}")
TOK = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]+)(?: |$)')
ESC = re.compile(r'\\(x[0-9a-f]{2}|.)')

def unquote(v):
    if not v.startswith('"'):
        return v.encode()
    out = bytearray()
    pos, body = 0, v[1:-1]
    for m in ESC.finditer(body):
        out += body[pos:m.start()].encode()
        e = m.group(1)
        out += bytes([int(e[1:], 16)]) if e[0] == "x" else {"n": b"\n", "r": b"\r", "t": b"\t"}.get(e, e.encode())
        pos = m.end()
    return bytes(out + body[pos:].encode())

values, lines = set(), 0
for line in text.splitlines():
    if not line.startswith("ts="):
        continue
    lines += 1
    pos, keys = 0, []
    while pos < len(line):
        m = TOK.match(line, pos)
        if m is None:
            sys.exit(f"{path}: not key=value at {pos}: {line}")
        keys.append(m.group(1))
        v = unquote(m.group(2))
        values.add(v.rsplit(b"/", 1)[-1])
        if m.group(1) == "event" and v == b"fake":
            sys.exit(f"{path}: forged event: {line}")
        pos = m.end()
    if keys.count("event") != 1 or keys.count("level") != 1 or keys.count("ts") != 1:
        sys.exit(f"{path}: fields repeated: {line}")
if lines == 0:
    sys.exit(f"{path}: no log lines")
for n in names:
    if not any(n in v for v in values):
        sys.exit(f"{path}: name {n!r} not found in any value")
PY
}

# json_check FILE EXPR: FILE is one valid UTF-8 JSON object d; EXPR holds.
json_check() {
	python3 -c 'import json, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert eval(sys.argv[2]), d' "$1" "$2"
}

# ---- stored under their exact names; the server log is not forged --------
expect_exit 0 send --json "127.0.0.1:$PORT" "$WORK/src/$QUOTE" "$WORK/src/$BADUTF" "$WORK/src/$CSI"
json_check "$WORK/last.out" 'd["result"] == "ok" and d["files_ok"] == 3' ||
	fail "--json: $(cat "$WORK/last.out")"
for n in "$QUOTE" "$BADUTF" "$CSI"; do
	cmp "$WORK/src/$n" "$WORK/out/cam-01/$n" || fail "not stored under its name: $(printf '%q' "$n")"
done
n=$(grep -c 'event=file_stored' "$WORK/logs.log" || true)
[ "$n" -eq 3 ] || { cat "$WORK/logs.log" >&2; fail "expected 3 file_stored lines, got $n"; }
check_log "$WORK/logs.log" "$QUOTE" "$BADUTF" "$CSI" ||
	{ cat -v "$WORK/logs.log" >&2; fail "server log"; }
grep -qF 'path="q\" event=fake level=error x=\""' "$WORK/logs.log" || fail "quote not escaped"
grep -qF 'path="bad\xff\xfe\xc0\xaf"' "$WORK/logs.log" || fail "bytes not escaped as \\xHH"
grep -qF 'path="csi\xc2\x9b2J"' "$WORK/logs.log" || fail "C1 control not escaped"
ok "hostile names stored; one event= per server log line, names given back exactly"

# ---- names the sender skips are logged escaped -----------------------------
mkfifo "$WORK/dir/$NEWLINE" "$WORK/dir/$ESCAPE"
printf 'plain\n' >"$WORK/dir/plain.txt"
expect_exit 5 send "127.0.0.1:$PORT" "$WORK/dir"
n=$(grep -c 'event=skip' "$WORK/last.err" || true)
[ "$n" -eq 2 ] || { cat -v "$WORK/last.err" >&2; fail "expected 2 skip lines, got $n"; }
check_log "$WORK/last.err" "$NEWLINE" "$ESCAPE" || { cat -v "$WORK/last.err" >&2; fail "sender log"; }
grep -qF 'dir/n\nts=x level=error event=fake"' "$WORK/last.err" || fail "newline not escaped"
grep -qF 'dir/esc\x1b[2J\x7f"' "$WORK/last.err" || fail "ESC not escaped"
ok "skipped FIFOs with a newline and ESC in their names: one log line each"

expect_exit 2 send --json "127.0.0.1:$PORT" "$WORK/src/$NEWLINE"
json_check "$WORK/last.out" 'd["result"] == "error"' || fail "--json: $(cat "$WORK/last.out")"
[ "$(wc -l <"$WORK/last.err")" -eq 1 ] || { cat -v "$WORK/last.err" >&2; fail "report split over lines"; }
ok "a newline in a name the protocol refuses: --json still valid"

# ---- refused by the receiver: its reason is escaped on both ends ----------
# (other content under the names stored above: the same would be already there)
for f in "$QUOTE" "$BADUTF" "$CSI"; do printf 'more' >>"$WORK/src/$f"; done
expect_exit 5 send --json "127.0.0.1:$PORT" "$WORK/src/$QUOTE"
json_check "$WORK/last.out" 'd["result"] == "error" and "q\" event=fake" in d["message"]' ||
	fail "--json of a refused file: $(cat "$WORK/last.out")"
check_log "$WORK/last.err" "$QUOTE" || { cat -v "$WORK/last.err" >&2; fail "sender log"; }
grep -q 'event=file_refused' "$WORK/last.err" || fail "no file_refused line on the sender"
ok "refused quote name: sender's log and --json escaped: $(tail -n1 "$WORK/last.err")"

expect_exit 5 send --json "127.0.0.1:$PORT" "$WORK/src/$BADUTF"
json_check "$WORK/last.out" '"bad\ufffd\ufffd\ufffd\ufffd" in d["message"]' ||
	fail "--json of a name that is not UTF-8: $(cat -v "$WORK/last.out")"
check_log "$WORK/last.err" "$BADUTF" || { cat -v "$WORK/last.err" >&2; fail "sender log"; }
ok "refused non-UTF-8 name: --json is valid UTF-8 with U+FFFD"

expect_exit 5 send "127.0.0.1:$PORT" "$WORK/src/$CSI"
check_log "$WORK/last.err" "$CSI" || { cat -v "$WORK/last.err" >&2; fail "sender stderr"; }
tail -n1 "$WORK/last.err" | grep -qF "sxfer: receiver refused a file: 'csi\xc2\x9b2J'" ||
	fail "report: $(tail -n1 "$WORK/last.err" | cat -v)"
ok "refused C1 name: nothing raw reaches the terminal: $(tail -n1 "$WORK/last.err")"

check_log "$WORK/logs.log" "$QUOTE" "$BADUTF" "$CSI" || { cat -v "$WORK/logs.log" >&2; fail "server log"; }
n=$(grep -c 'event=file_refused' "$WORK/logs.log" || true)
[ "$n" -eq 3 ] || fail "expected 3 file_refused lines on the server, got $n"
stop_server "$SRV"
ok "server log after the refusals: still one event= per line"
