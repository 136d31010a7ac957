#!/usr/bin/env bash
# More files than the receiver holds at once (its table holds 4,160 in
# flight): receiving must resume as flushes complete, within a short idle
# timeout. Many empty files must not exhaust the sender's descriptors.
source "$(dirname "$0")/lib.sh"
make_pki
start_server srv --id "$WORK/server" --out "$WORK/out" --idle-timeout 5
mkdir -p "$WORK/many"
for i in $(seq 1 5000); do printf '%d' "$i" >"$WORK/many/f$i"; done
"$SXFER" send --id "$WORK/cam" --quiet --no-sign "127.0.0.1:$PORT" "$WORK/many"
[ "$(ls "$WORK/out/cam-01/many" | wc -l)" -eq 5000 ] || fail "not all 5,000 files stored"
ok "5,000 small files in one session (more than the receiver's table)"

mkdir -p "$WORK/empty"
for i in $(seq 1 300); do : >"$WORK/empty/e$i"; done
(ulimit -n 64 && "$SXFER" send --id "$WORK/cam" --quiet --receipts "$WORK/rc" "127.0.0.1:$PORT" "$WORK/empty")
[ "$(ls "$WORK/out/cam-01/empty" | grep -vc sxsig)" -eq 300 ] || fail "not all empty files stored"
ok "300 empty files with 64 descriptors: no descriptor leak"
stop_server "$SERVER_PID"
