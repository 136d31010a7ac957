#!/usr/bin/env bash
# --log-format json: every log line of the server and of the sender is one
# valid UTF-8 JSON object with ts, level and event once each, the same keys
# as the logfmt line of the same event, and hostile file names (a quote that
# would forge fields, bytes that are not UTF-8, a C1 control, a newline,
# ESC) given back as values: exactly, or with U+FFFD for each byte that is
# not UTF-8. SXFER_LOG_FORMAT does the same; a bad format is exit 2.
source "$(dirname "$0")/lib.sh"

make_pki
QUOTE='q" event=fake level=error x="'
BADUTF=$'bad\xff\xfe\xc0\xaf'
CSI=$'csi\xc2\x9b2J'
NEWLINE=$'n\nts=x level=error event=fake'
ESCAPE=$'esc\e[2J\x7f'
mkdir "$WORK/src" "$WORK/dir"
for n in "$QUOTE" "$BADUTF" "$CSI"; do
	printf 'content of a hostile name\n' >"$WORK/src/$n"
done
mkfifo "$WORK/dir/$NEWLINE" "$WORK/dir/$ESCAPE"
printf 'plain\n' >"$WORK/dir/plain.txt"

expect_exit 2 "$SXFER" --log-format xml send --id "$WORK/cam" 127.0.0.1:1 "$WORK/dir"
grep -q "logfmt or json" "$WORK/last.err" || fail "bad format: $(cat "$WORK/last.err")"
expect_exit 2 "$SXFER" send --id "$WORK/cam" 127.0.0.1:1 "$WORK/dir" --log-format
SXFER_LOG_FORMAT=yaml expect_exit 2 "$SXFER" ls --id "$WORK/cam" 127.0.0.1:1
grep -q "SXFER_LOG_FORMAT 'yaml'" "$WORK/last.err" || fail "env: $(cat "$WORK/last.err")"
ok "a format not logfmt or json: exit 2"

# Two servers, one per format, get the same sessions.
start_server json --log-format json --id "$WORK/server" --out "$WORK/out-json"
PJSON=$PORT
PJSON_PID=$SERVER_PID
start_server fmt --id "$WORK/server" --out "$WORK/out-fmt"
PFMT=$PORT
PFMT_PID=$SERVER_PID
for p in "$PJSON" "$PFMT"; do
	"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$p" "$WORK/src/$QUOTE" "$WORK/src/$BADUTF" \
		"$WORK/src/$CSI"
	# refused: the same names with other content, sent without asking first
	for n in "$QUOTE" "$BADUTF" "$CSI"; do printf 'more' >>"$WORK/src/$n"; done
	expect_exit 5 "$SXFER" send --id "$WORK/cam" --quiet --no-resume "127.0.0.1:$p" \
		"$WORK/src/$QUOTE" "$WORK/src/$BADUTF" "$WORK/src/$CSI"
	for n in "$QUOTE" "$BADUTF" "$CSI"; do printf 'content of a hostile name\n' >"$WORK/src/$n"; done
done
stop_server "$PJSON_PID"
stop_server "$PFMT_PID"
# The sender's own lines: the FIFOs it skips (to a third server).
start_server sink --id "$WORK/server" --out "$WORK/out-sink" --no-ledger
expect_exit 5 "$SXFER" send --log-format=json --id "$WORK/cam" "127.0.0.1:$PORT" "$WORK/dir"
cp "$WORK/last.err" "$WORK/send-json.err"
SXFER_LOG_FORMAT=json expect_exit 5 "$SXFER" send --id "$WORK/cam" "127.0.0.1:$PORT" "$WORK/dir"
cp "$WORK/last.err" "$WORK/send-env.err"
expect_exit 5 "$SXFER" send --id "$WORK/cam" "127.0.0.1:$PORT" "$WORK/dir"
cp "$WORK/last.err" "$WORK/send-fmt.err"
stop_server "$SERVER_PID"

# check.py JSONLOG FMTLOG [NAME...]: JSONLOG's log lines are JSON objects
# with unique keys, one event each and none fake; the (event, keys) of its
# lines are those of FMTLOG's logfmt lines; every NAME is a value, with
# U+FFFD for its bytes that are not UTF-8.
cat >"$WORK/check.py" <<'PY'
import json, re, sys

jpath, fpath, names = sys.argv[1], sys.argv[2], sys.argv[3:]
def pairs(kv):
    keys = [k for k, _ in kv]
    if len(keys) != len(set(keys)):
        sys.exit(f"{jpath}: a key repeated: {keys}")
    return dict(kv)
shapes, values, n = set(), set(), 0
for line in open(jpath, "rb").read().decode("utf-8").splitlines():
    if line.startswith("sxfer:") or line.startswith("sent "):
        continue  # the command's closing report, not a log line
    d = json.loads(line, object_pairs_hook=pairs)
    n += 1
    for k in ("ts", "level", "event"):
        if not isinstance(d.get(k), str):
            sys.exit(f"{jpath}: no {k}: {line}")
    if d["event"] == "fake" or d["level"] not in ("debug", "info", "warn", "error"):
        sys.exit(f"{jpath}: forged: {line}")
    shapes.add((d["event"], tuple(d)))
    values |= {v for v in d.values() if isinstance(v, str)}
if n == 0:
    sys.exit(f"{jpath}: no log lines")
TOK = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]+)(?: |$)')
fshapes = set()
for line in open(fpath, "rb").read().decode("utf-8").splitlines():
    if line.startswith("ts="):
        kv = TOK.findall(line)
        fshapes.add((dict(kv)["event"], tuple(k for k, _ in kv)))
if shapes != fshapes:
    sys.exit(f"keys differ:\njson only {sorted(shapes - fshapes)}\nlogfmt only {sorted(fshapes - shapes)}")
for name in names:
    want = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if not any(want in v for v in values):
        sys.exit(f"{jpath}: name {want!r} not in any value")
print(f"{n} lines, {len(shapes)} kinds")
PY
check() { python3 "$WORK/check.py" "$@" || { cat -v "$1" >&2; fail "$1"; }; }

s=$(check "$WORK/json.log" "$WORK/fmt.log" "$QUOTE" "$BADUTF" "$CSI")
python3 - "$WORK/json.log" <<'PY' || fail "file_stored values"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.startswith("{")]
stored = [d for d in lines if d["event"] == "file_stored"]
assert len(stored) == 3, stored
assert {d["path"] for d in stored} == {'q" event=fake level=error x="', "bad\ufffd\ufffd\ufffd\ufffd", "csi\u009b2J"}, stored
assert all(isinstance(d["size"], int) and d["size"] == 26 for d in stored), stored
assert all(isinstance(d["peer"], str) and d["signed"] == "yes" for d in stored), stored
refused = [d for d in lines if d["event"] == "file_refused"]
assert len(refused) == 3 and all(d["class"] == 5 for d in refused), refused
PY
ok "server: $s; the same keys as logfmt; hostile names exact, U+FFFD for bad bytes"

s=$(check "$WORK/send-json.err" "$WORK/send-fmt.err" "$NEWLINE" "$ESCAPE")
check "$WORK/send-env.err" "$WORK/send-fmt.err" "$NEWLINE" "$ESCAPE" >/dev/null
ok "sender (--log-format=json and SXFER_LOG_FORMAT): $s; a newline and ESC in names given back"
