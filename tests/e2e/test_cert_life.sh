#!/usr/bin/env bash
# Lifetime warnings (docs/REVOCATION.md): serve, send and get log a warning
# when their own certificate has less than a third of its lifetime left.
# The aged certificates (issued 25 days ago for 30 days) are made by
# pki_dates.py with the CA's key: sxfer issues from now on only.
source "$(dirname "$0")/lib.sh"
python3 -c 'import cryptography' 2>/dev/null || {
	echo "python3-cryptography is missing"
	exit 77
}
make_pki
DATES="$E2E_DIR/pki_dates.py"
python3 "$DATES" identity "$WORK/ca" "$WORK/old-srv" --name old-server --role server \
	--born-ago 25 --life 30
python3 "$DATES" identity "$WORK/ca" "$WORK/old-cam" --name old-cam --role client \
	--born-ago 25 --life 30
rand_file "$WORK/f.bin" 1000

# warned FILE NAME: FILE holds the warning for NAME, with its hint.
warned() {
	grep -q "level=warn event=cert name=\"$2\" left=\"[0-9]* days left ([0-9]*% of 30 days)\".*hint=\"sxfer renew\"" "$1" ||
		fail "no lifetime warning for $2 in $1: $(cat "$1")"
}

start_server srv --id "$WORK/old-srv" --out "$WORK/out"
warned "$WORK/srv.log" old-server
ok "serve warns at start: $(grep 'event=cert' "$WORK/srv.log")"

"$SXFER" send --id "$WORK/old-cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin" 2>"$WORK/send.err" ||
	fail "send: $(cat "$WORK/send.err")"
warned "$WORK/send.err" old-cam
ok "send warns"
"$SXFER" get --id "$WORK/old-cam" --quiet "127.0.0.1:$PORT" uploads/f.bin "$WORK/got" \
	2>"$WORK/get.err" || fail "get: $(cat "$WORK/get.err")"
warned "$WORK/get.err" old-cam
cmp "$WORK/f.bin" "$WORK/got/f.bin"
ok "get warns"

# A young certificate: no warning.
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin" 2>"$WORK/young.err"
! grep -q "event=cert" "$WORK/young.err" || fail "a young certificate warned: $(cat "$WORK/young.err")"
ok "no warning for a certificate with most of its life left"
stop_server "$SERVER_PID"
