#!/usr/bin/env bash
# sxfer agent, case by case: --include/--exclude and hidden names; X.sxsig
# skipped when signing; --once; a restart sends nothing again (--after
# keep); a file changed after it was sent is not sent again; a file the
# server refuses stays and is reported; the state folder is locked;
# SIGTERM during a slow batch exits 0 at once and the queue stays
# consistent; the server unreachable with --once exits 6; a configuration
# file; usage errors.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_lib.sh"
make_pki
W="$WORK/watch"
mkdir -p "$W/sub" "$W/skip" "$W/.hid" "$WORK/out"
export XDG_STATE_HOME="$WORK/state"
start_server srv --id "$WORK/server" --out "$WORK/out"
base=(--id "$WORK/cam" --watch "$W")
agent_once() { "$SXFER" agent "${base[@]}" --once --json "$@" "127.0.0.1:$PORT"; }

for f in a.bin sub/b.bin skip/c.bin d.txt .e.bin .hid/f.bin a.bin.sxsig sub/g.sxsig; do
	head -c 3000 /dev/urandom >"$W/$f"
done
expect_exit 0 agent_once --include '*.bin' --include '*.sxsig' --exclude 'skip/*'
(cd "$WORK/out/cam-01" && find . -type f ! -name '*.sxsig' | sort | tr '\n' ' ') >"$WORK/got"
[ "$(cat "$WORK/got")" = "./a.bin ./sub/b.bin " ] || fail "sent: $(cat "$WORK/got")"
grep -q '"event":"skip","path":"a.bin.sxsig","result":"skipped"' "$WORK/last.out" ||
	fail "a.bin.sxsig not reported skipped: $(cat "$WORK/last.out")"
grep -q '"event":"skip","path":"sub/g.sxsig"' "$WORK/last.out" || fail "sub/g.sxsig not skipped"
[ -f "$W/a.bin" ] && [ -f "$W/sub/b.bin" ] || fail "--after keep removed a file"
ok "--include/--exclude, hidden names and .sxsig names: only a.bin and sub/b.bin sent, kept"

expect_exit 0 agent_once --include '*.bin' --exclude 'skip/*'
! grep -q '"event":"batch"' "$WORK/last.out" || fail "a restart sent again: $(cat "$WORK/last.out")"
ok "started again: nothing sent twice"

head -c 10 /dev/urandom >>"$W/a.bin"
expect_exit 0 agent_once --include '*.bin' --exclude 'skip/*'
grep -q '"event":"skip","path":"a.bin","result":"changed"' "$WORK/last.out" ||
	fail "a changed file not reported: $(cat "$WORK/last.out")"
! grep -q '"event":"batch"' "$WORK/last.out" || fail "a changed file was sent again"
ok "a file changed after it was sent: reported, not sent again"

# On the server already, with other content: refused, kept, exit 5.
mkdir -p "$WORK/w2/sub"
head -c 500 /dev/urandom >"$WORK/w2/new.bin"
head -c 3000 /dev/urandom >"$WORK/w2/sub/b.bin"
cp "$WORK/out/cam-01/sub/b.bin" "$WORK/b.bin.orig"
expect_exit 5 "$SXFER" agent --id "$WORK/cam" --watch "$WORK/w2" --name other --once --json \
	--after delete --include '*.bin' "127.0.0.1:$PORT"
grep -q '"event":"file","path":"sub/b.bin","result":"refused"' "$WORK/last.out" ||
	fail "no refusal: $(cat "$WORK/last.out")"
[ -f "$WORK/w2/sub/b.bin" ] || fail "a refused file was deleted"
[ ! -f "$WORK/w2/new.bin" ] || fail "new.bin was not sent and deleted"
cmp -s "$WORK/b.bin.orig" "$WORK/out/cam-01/sub/b.bin" || fail "the server's copy changed"
ok "a file the server refuses: reported, kept, the rest sent; --once exits 5"

# One agent per state folder.
start_agent long "${base[@]}" --include '*.bin' "127.0.0.1:$PORT"
wait_until 20 "the agent to start" grep -qs 'event=agent_start' "$WORK/long.log"
expect_exit 5 agent_once
grep -q 'another agent uses this state folder' "$WORK/last.err" || fail "$(cat "$WORK/last.err")"
stop_agent "$AGENT_PID"
ok "a second agent on the same state folder: exit 5"

# SIGTERM in the middle of a slow batch: exit 0 within a second; then
# everything arrives once.
mkdir -p "$WORK/w3" "$WORK/ref3"
for i in 1 2 3 4; do head -c $((400 * 1024)) /dev/urandom >"$WORK/ref3/s$i.bin"; done
cp "$WORK/ref3/"* "$WORK/w3/"
start_agent slow --id "$WORK/cam" --watch "$WORK/w3" --after delete --limit-rate 200K \
	--batch-wait 0 "127.0.0.1:$PORT"
wait_until 20 "the slow batch" grep -qs 'event=agent_send' "$WORK/slow.log"
sleep 0.5
t0=$(now_ms)
stop_agent "$AGENT_PID"
[ $(($(now_ms) - t0)) -lt 2000 ] || fail "SIGTERM took $(($(now_ms) - t0)) ms"
[ "$(files_left "$WORK/w3")" -eq 4 ] || fail "files deleted by an abandoned batch"
expect_exit 0 "$SXFER" agent --id "$WORK/cam" --watch "$WORK/w3" --after delete --once \
	"127.0.0.1:$PORT"
watch_empty "$WORK/w3" || fail "files left after the second run"
for i in 1 2 3 4; do cmp -s "$WORK/ref3/s$i.bin" "$WORK/out/cam-01/s$i.bin" || fail "s$i.bin"; done
ok "SIGTERM during a batch: exit 0 at once, the queue consistent, everything sent by the next run"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
head -c 100 /dev/urandom >"$WORK/w3/late.bin"
expect_exit 6 "$SXFER" agent --id "$WORK/cam" --watch "$WORK/w3" --once "127.0.0.1:$port"
[ -f "$WORK/w3/late.bin" ] || fail "late.bin gone"
ok "--once with nothing listening: exit 6, the file kept"

# A configuration file (as sxfer-agent@NAME.service reads one): the
# server, the folder and the rules from it, the command line overriding.
mkdir -p "$WORK/w4/keep" && head -c 700 /dev/urandom >"$WORK/w4/keep/one.bin"
head -c 700 /dev/urandom >"$WORK/w4/two.bin"
cat >"$WORK/agent.conf" <<CONF
# the agent of a test camera
id = $WORK/cam
watch = $WORK/w4
server = 127.0.0.1:$PORT
dest = from-conf
after = delete
exclude = keep/*
batch-wait = 0.1
CONF
expect_exit 0 "$SXFER" agent --config "$WORK/agent.conf" --once --after keep
[ -f "$WORK/out/cam-01/from-conf/two.bin" ] || fail "--config: two.bin not under --dest"
[ ! -e "$WORK/out/cam-01/from-conf/keep" ] || fail "--config: exclude ignored"
[ -f "$WORK/w4/two.bin" ] || fail "--after keep on the command line did not override the file"
echo "batch-files = many" >>"$WORK/agent.conf"
expect_exit 2 "$SXFER" agent --config "$WORK/agent.conf" --once
grep -q 'agent.conf:9: batch-files' "$WORK/last.err" || fail "$(cat "$WORK/last.err")"
echo "no-such-key = 1" >"$WORK/bad.conf"
expect_exit 2 "$SXFER" agent --config "$WORK/bad.conf" --once
grep -q "bad.conf:1: unknown key 'no-such-key'" "$WORK/last.err" || fail "$(cat "$WORK/last.err")"
ok "--config: keys from the file, --dest, the command line wins, errors name file and line"

expect_exit 2 "$SXFER" agent --id "$WORK/cam" "127.0.0.1:$PORT"
expect_exit 2 "$SXFER" agent "${base[@]}" --after trash "127.0.0.1:$PORT"
expect_exit 2 "$SXFER" agent "${base[@]}" --batch-wait x "127.0.0.1:$PORT"
expect_exit 2 "$SXFER" agent "${base[@]}" --limit-rate 10 "127.0.0.1:$PORT"
expect_exit 2 "$SXFER" agent "${base[@]}" --after "move:$W/sent" --once "127.0.0.1:$PORT"
grep -q 'inside the watched folder' "$WORK/last.err" || fail "$(cat "$WORK/last.err")"
ok "usage errors: exit 2 (no --watch, bad --after, --batch-wait, --limit-rate, move inside)"
stop_server "$SERVER_PID"
