#!/usr/bin/env bash
# sxfer send --retry: against a port where nothing listens, N + 1 attempts
# with short waits (--retry-wait), each logged, then exit 6; --retry 0 makes
# one attempt; a bad --retry-wait is a usage error.
source "$(dirname "$0")/lib.sh"
make_pki
head -c 1000 /dev/urandom >"$WORK/a.bin"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

expect_exit 6 "$SXFER" send --id "$WORK/cam" --retry 3 --retry-wait 20:40 --json \
	"127.0.0.1:$port" "$WORK/a.bin"
grep -q '"attempts":4' "$WORK/last.out" || fail "attempts: $(cat "$WORK/last.out")"
grep -q '"exit":6' "$WORK/last.out" || fail "exit: $(cat "$WORK/last.out")"
n=$(grep -c 'event=retry' "$WORK/last.err" || true)
[ "$n" -eq 3 ] || fail "$n retry log lines, expected 3: $(cat "$WORK/last.err")"
n=$(grep -c '; attempt [0-9]* in ' "$WORK/last.err" || true)
[ "$n" -eq 3 ] || fail "$n retry messages, expected 3"
ok "--retry 3: four attempts, three waits logged, exit 6"

expect_exit 6 "$SXFER" send --id "$WORK/cam" --retry 0 --json "127.0.0.1:$port" "$WORK/a.bin"
grep -q '"attempts":1' "$WORK/last.out" || fail "attempts: $(cat "$WORK/last.out")"
! grep -q 'event=retry' "$WORK/last.err" || fail "--retry 0 retried"
ok "--retry 0: one attempt"

expect_exit 2 "$SXFER" send --id "$WORK/cam" --retry-wait 50:10 "127.0.0.1:$port" "$WORK/a.bin"
expect_exit 2 "$SXFER" send --id "$WORK/cam" --retry x "127.0.0.1:$port" "$WORK/a.bin"
ok "bad --retry and --retry-wait: exit 2"
