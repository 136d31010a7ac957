#!/usr/bin/env bash
# sxfer ca issue beside a running sxfer ca serve: the new identity key's
# passphrase is asked before the CA's lock is taken, so an operator who has
# not typed it yet does not hold up the service (every enrollment would wait
# for the lock meanwhile). The passphrase comes from a FIFO that is written
# only after an enrollment went through.
source "$(dirname "$0")/enroll_lib.sh"
make_ca "$WORK/ca" "e2e CA"
FP=$(root_fp "$WORK/ca")
start_ca_serve esv "$WORK/ca"
EP=$EPORT
tok=$(token cam-30)

mkfifo "$WORK/idpass"
(env -u SXFER_ID_PASSPHRASE "$SXFER" ca issue --ca "$WORK/ca" --name cam-31 --role client \
	--id-pass-file "$WORK/idpass" --out "$WORK/cam31" >"$WORK/issue.out" 2>"$WORK/issue.err") &
ISSUE=$!
PIDS+=("$ISSUE")
sleep 1 # ca issue is now waiting for its passphrase

got=0
enroll_at "$EP" --token "$tok" --out "$WORK/dev30" --no-passphrase --timeout 5 \
	>"$WORK/enroll.out" 2>"$WORK/enroll.err" || got=$?
timeout 20 bash -c 'echo id-passphrase-31 >"$1"' _ "$WORK/idpass" ||
	fail "ca issue did not read its passphrase"
wait "$ISSUE" || { cat "$WORK/issue.err" >&2; fail "ca issue failed"; }
if [ "$got" -ne 0 ]; then
	cat "$WORK/enroll.err" >&2
	fail "the enrollment waited for ca issue's passphrase (exit $got)"
fi
has "$WORK/enroll.out" "enrolled 'cam-30'"
SXFER_PASSPHRASE=id-passphrase-31 "$SXFER" id verify --ca "$WORK/ca" --role client \
	"$WORK/cam31" >/dev/null
ok "ca issue waiting for its passphrase does not hold up ca serve"
