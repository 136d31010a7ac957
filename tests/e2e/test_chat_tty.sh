#!/usr/bin/env bash
# sxfer chat at a terminal (a pseudo-terminal driven by a script): the
# prompt, a line typed with a correction, /who, a message from another
# member drawn above the line being typed, /quit; the terminal restored.
source "$(dirname "$0")/chat_lib.sh"

make_pki
chat_ids alice bob
start_server tty --id "$WORK/server" --out "$WORK/out" --chat --chat-dir "$WORK/hub"

# bob waits in the room for one message, then says one line.
chat_bob() {
	(
		sleep_until_alice() { grep -q 'hello tty' "$WORK/bob.out" 2>/dev/null; }
		wait_until 30 "alice's line at bob" sleep_until_alice
		echo "hi alice"
	) | timeout 60 "$SXFER" chat --id "$WORK/bob" --room ops --wait 3 \
		--transcript "$WORK/bob.jsonl" "127.0.0.1:$PORT" >"$WORK/bob.out" 2>"$WORK/bob.err"
}
chat_bob &
bpid=$!
joined() { [ "$(log_count "$WORK/tty.log" 'chat_open.*bob')" -ge 1 ]; }
wait_until 20 "bob in the room" joined

python3 - "$SXFER" "$WORK" "$PORT" <<'PYEOF' || fail "the terminal session: $(tail -c 2000 "$WORK/tty.out" 2>/dev/null)"
import os, pty, select, sys, time
sxfer, work, port = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execv(sxfer, [sxfer, "chat", "--id", work + "/alice", "--room", "ops",
                     "--transcript", work + "/alice.jsonl", "127.0.0.1:" + port])
out = b""
def until(what, secs=30):
    global out
    end = time.time() + secs
    while what not in out:
        if time.time() > end:
            open(work + "/tty.out", "wb").write(out)
            sys.exit("timed out waiting for %r" % what)
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
until(b"#ops> ")
os.write(fd, b"hello ttx\x7fy\r")        # a typo corrected with backspace
until(b"alice: hello tty")
until(b"bob: hi alice")                   # drawn while the prompt is shown
os.write(fd, b"/who\r")
until(b"* here:")
os.write(fd, b"/quit\r")
_, status = os.waitpid(pid, 0)
open(work + "/tty.out", "wb").write(out)
if os.WEXITSTATUS(status) != 0:
    sys.exit("exit %d" % os.WEXITSTATUS(status))
PYEOF
wait "$bpid" || { cat "$WORK/bob.err" >&2; fail "bob failed"; }
grep -q '#ops alice: hello tty$' "$WORK/bob.out" || fail "bob did not get the corrected line"
grep -q 'hello tty' "$WORK/alice.jsonl" || fail "alice's transcript lacks her line"
grep -q 'hi alice' "$WORK/alice.jsonl" || fail "alice's transcript lacks bob's line"
for t in alice bob; do
	"$SXFER" verify --transcript "$WORK/$t.jsonl" --ca "$WORK/ca" >/dev/null ||
		fail "$t's transcript does not verify"
done
ok "a terminal session: prompt, editing, a message drawn above the prompt, /who, /quit"
