#!/usr/bin/env bash
# Handshake refusals through the real binaries (exit code 3 with the reason),
# and a TLS client no one here wrote: openssl s_client.
source "$(dirname "$0")/lib.sh"
make_pki
rand_file "$WORK/f.bin" 100000

# Extra identities from our own CA: a revoked client, a client carrying
# serverAuth only; and a second CA with its own client.
"$SXFER" ca issue --ca "$WORK/ca" --name mallory --role client --out "$WORK/revoked" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca" --name bob --role server --dns bob.test --out "$WORK/wrongeku" >/dev/null
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/revoked/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl.pem" >/dev/null
"$SXFER" ca init --ca "$WORK/ca2" --name "other CA" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca2" --name eve --role client --out "$WORK/eve" >/dev/null
cp "$WORK/ca/ca.pem" "$WORK/eve/ca.pem" # eve trusts our server, our server does not trust eve

start_server srv --id "$WORK/server" --out "$WORK/out" --crl "$WORK/crl.pem"
SRV=$SERVER_PID
send_as() { # identity [options...]
	local id=$1
	shift
	"$SXFER" send --id "$WORK/$id" --quiet "$@" "127.0.0.1:$PORT" "$WORK/f.bin"
}

send_as cam
cmp "$WORK/f.bin" "$WORK/out/cam-01/f.bin"
ok "good client accepted"

expect_exit 3 send_as revoked
grep -qi "revoked" "$WORK/last.err" || fail "revoked: reason not given: $(cat "$WORK/last.err")"
ok "revoked client refused: $(tail -n1 "$WORK/last.err")"

expect_exit 3 send_as wrongeku
grep -qi "clientAuth\|extendedKeyUsage\|unsupported certificate" "$WORK/last.err" ||
	fail "wrong EKU: reason not given: $(cat "$WORK/last.err")"
grep -q "clientAuth" "$WORK/srv.log" || fail "server log lacks the EKU reason"
ok "client with the wrong EKU refused: $(tail -n1 "$WORK/last.err")"

expect_exit 3 send_as eve
grep -qi "unknown ca\|issuer\|trusted" "$WORK/last.err" || fail "other CA: $(cat "$WORK/last.err")"
ok "client from another CA refused: $(tail -n1 "$WORK/last.err")"

expect_exit 3 send_as cam --server-name other.example
grep -q "other.example" "$WORK/last.err" || fail "name mismatch: $(cat "$WORK/last.err")"
ok "server-name mismatch refused: $(tail -n1 "$WORK/last.err")"

# The client does not trust a server from another CA.
cp -r "$WORK/cam" "$WORK/cam-ca2"
cp "$WORK/ca2/ca.pem" "$WORK/cam-ca2/ca.pem"
expect_exit 3 send_as cam-ca2
ok "server from another CA refused by the client: $(tail -n1 "$WORK/last.err")"

# Each refusal is in the server's log with its cause.
grep -q 'revoked' "$WORK/srv.log" || fail "server log lacks the revocation"
[ -z "$(ls "$WORK/out" | grep -v cam-01)" ] || fail "refused peers got a folder"

# s_client OUT UNTIL [options...]: openssl s_client to the server, its output
# in OUT. Its stdin (on EOF it quits) is held open until OUT holds UNTIL or,
# with UNTIL empty, until the server ends the connection and s_client exits.
s_client() {
	local out=$1 until=$2 pid
	shift 2
	rm -f "$WORK/s_client.in"
	mkfifo "$WORK/s_client.in"
	openssl s_client -connect "127.0.0.1:$PORT" "$@" <"$WORK/s_client.in" >"$out" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	exec 5>"$WORK/s_client.in"
	s_client_done() {
		! kill -0 "$pid" 2>/dev/null || { [ -n "$until" ] && grep -q -- "$until" "$out"; }
	}
	wait_until 20 "openssl s_client: ${until:-the end of the connection}" s_client_done
	exec 5>&-
	wait "$pid" || true
}

# openssl s_client: with our client certificate the TLS 1.3 handshake
# completes with ALPN sxfer/1 (the server then waits for a HELLO, so the
# client is let go once it has printed the session); without one it is
# refused.
s_client "$WORK/s1.out" "Verify return code" -alpn sxfer/1 \
	-cert "$WORK/cam/cert.pem" -key "$WORK/cam/key.pem" -pass env:SXFER_PASSPHRASE \
	-CAfile "$WORK/ca/ca.pem" -verify_return_error -servername localhost
out=$(cat "$WORK/s1.out")
echo "$out" | grep -q "New, TLSv1.3" || { echo "$out" >&2; fail "s_client: no TLS 1.3"; }
echo "$out" | grep -q "ALPN protocol: sxfer/1" || { echo "$out" >&2; fail "s_client: no ALPN"; }
echo "$out" | grep -q "Verify return code: 0" || { echo "$out" >&2; fail "s_client: verify"; }
ok "openssl s_client completes the handshake with a client certificate"

s_client "$WORK/s2.out" "" -alpn sxfer/1 -CAfile "$WORK/ca/ca.pem"
out=$(cat "$WORK/s2.out")
echo "$out" | grep -qi "alert\|error" || { echo "$out" >&2; fail "s_client without cert not refused"; }
no_cert_logged() { grep -qi 'no certificate' "$WORK/srv.log"; }
wait_until 10 "the server to log 'no certificate'" no_cert_logged
ok "openssl s_client without a client certificate refused"

s_client "$WORK/s3.out" "" -alpn http/1.1 \
	-cert "$WORK/cam/cert.pem" -key "$WORK/cam/key.pem" -pass env:SXFER_PASSPHRASE
out=$(cat "$WORK/s3.out")
echo "$out" | grep -qi "no application protocol\|alert" || { echo "$out" >&2; fail "wrong ALPN accepted"; }
ok "openssl s_client with ALPN http/1.1 refused"
stop_server "$SRV"

# An expired server certificate (made with python3-cryptography: neither
# sxfer nor openssl 3.0's x509 command back-dates a certificate): the server
# refuses to start with it (the client's own refusal of an expired server
# is unit.test_channel's test_expired_server).
python3 "$E2E_DIR/../unit/chan_certs.py" "$WORK/py"
expect_exit 3 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/py/server_expired" --out "$WORK/out2"
grep -qi "cannot serve.*expired" "$WORK/last.err" || fail "expired: $(cat "$WORK/last.err")"
ok "expired server certificate refused at start: $(tail -n1 "$WORK/last.err")"
