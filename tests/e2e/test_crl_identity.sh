#!/usr/bin/env bash
# The CRL of an identity folder is used by default on both ends and by
# verify: a revoked server is refused by the sender whose identity folder
# holds the CRL, and so is the revoked receiver's receipt.
source "$(dirname "$0")/lib.sh"
make_pki
rand_file "$WORK/f.bin" 100000

# A receipt from the server while its certificate is good.
start_server srv --id "$WORK/server" --out "$WORK/out"
"$SXFER" send --id "$WORK/cam" --quiet --receipts "$WORK/rcpt" "127.0.0.1:$PORT" "$WORK/f.bin"
receipt=$(ls "$WORK/rcpt"/*.sxreceipt | head -n1)
"$SXFER" verify --receipt "$receipt" --ca "$WORK/cam" >/dev/null || fail "receipt before revocation"

# Revoke the server's certificate; publish the CRL into the sender's
# identity folder only (the running server keeps its own).
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/server/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/cam/crl.pem" >/dev/null
rand_file "$WORK/g.bin" 1000
expect_exit 3 "$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/g.bin"
grep -qi "revoked" "$WORK/last.err" || fail "no revocation named: $(cat "$WORK/last.err")"
[ ! -e "$WORK/out/cam-01/g.bin" ] || fail "sent to a revoked server"
ok "send to a revoked server refused: $(tail -n1 "$WORK/last.err")"

# The revoked receiver's receipt, and its certificate, with the identity
# folder as the trust.
expect_exit 3 "$SXFER" verify --receipt "$receipt" --ca "$WORK/cam"
grep -qi "revoked" "$WORK/last.err" "$WORK/last.out" || fail "receipt: $(cat "$WORK/last.err")"
ok "receipt of a revoked receiver refused: $(cat "$WORK/last.out" "$WORK/last.err" | tail -n1)"
expect_exit 3 "$SXFER" id verify --ca "$WORK/cam" "$WORK/server"
grep -qi "revoked" "$WORK/last.err" || fail "id verify: $(cat "$WORK/last.err")"
ok "id verify uses the folder's CRL"
stop_server "$SERVER_PID"

# The server side: the CRL in its identity folder refuses a revoked sender.
"$SXFER" ca issue --ca "$WORK/ca" --name server2 --role server --dns localhost \
	--ip 127.0.0.1 --out "$WORK/server2" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca" --name mallory --role client --out "$WORK/mallory" >/dev/null
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/mallory/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/server2/crl.pem" >/dev/null
start_server srv2 --id "$WORK/server2" --out "$WORK/out2"
expect_exit 3 "$SXFER" send --id "$WORK/mallory" --quiet "127.0.0.1:$PORT" "$WORK/g.bin"
grep -qi "revoked" "$WORK/last.err" || fail "revoked sender: $(cat "$WORK/last.err")"
ok "revoked sender refused by the server's identity CRL"
stop_server "$SERVER_PID"
