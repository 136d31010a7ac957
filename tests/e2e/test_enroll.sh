#!/usr/bin/env bash
# sxfer ca serve and sxfer enroll: a token becomes an identity that sends
# (and signs) to a server of the same CA; each refusal with its reason and
# exit code: a token used twice, an expired one, a request for other claims
# than the token's, a service of another CA (refused before the token is
# sent: the token still works afterwards), an identity already in the
# folder, the transfer and enrollment services mixed up; the bound on
# connections; a clean stop.
source "$(dirname "$0")/enroll_lib.sh"
make_ca "$WORK/ca" "e2e CA"
FP=$(root_fp "$WORK/ca")
start_ca_serve esv "$WORK/ca"
ESV=$EPID
EP=$EPORT
has "$WORK/esv.log" "fingerprint=$FP"

# A token, an enrollment, a signed transfer, an offline verification.
tok=$(token cam-02)
enroll_at "$EP" --token "$tok" --out "$WORK/dev" >"$WORK/enroll.out"
has "$WORK/enroll.out" "enrolled 'cam-02' (client)"
has "$WORK/enroll.out" "issued by the root $FP"
for f in key.pem cert.pem ca.pem crl.pem; do [ -s "$WORK/dev/$f" ] || fail "no $f"; done
[ "$(stat -c %a "$WORK/dev")" = 700 ] || fail "the identity folder is not 0700"
[ "$(stat -c %a "$WORK/dev/key.pem")" = 600 ] || fail "key.pem is not 0600"
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$WORK/dev/key.pem" || fail "key.pem is not encrypted"
cmp "$WORK/dev/ca.pem" "$WORK/ca/ca.pem" || fail "ca.pem is not the root"
"$SXFER" id verify --ca "$WORK/ca" --role client "$WORK/dev" >/dev/null
has "$WORK/esv.log" 'kind=enroll result=issued name="cam-02" serial='
ok "token -> enroll: an identity cam-02 with key, certificate, root and CRL"

"$SXFER" ca issue --ca "$WORK/ca" --name server.test --role server --dns localhost \
	--ip 127.0.0.1 --out "$WORK/server" >/dev/null
start_server srv --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
TP=$PORT
rand_file "$WORK/f.bin" 300000
"$SXFER" send --id "$WORK/dev" --quiet "127.0.0.1:$TP" "$WORK/f.bin"
cmp "$WORK/f.bin" "$WORK/out/cam-02/f.bin"
(cd "$WORK/out" && "$SXFER" verify --ca "$WORK/ca" --signer cam-02 cam-02/f.bin) \
	>"$WORK/verify.out"
has "$WORK/verify.out" "cam-02/f.bin: ok (signer cam-02"
ok "the enrolled identity sends to sxfer serve; the .sxsig verifies offline"

# The same token again: refused by the CA, the folder not left behind.
expect_exit 3 enroll_at "$EP" --token "$tok" --out "$WORK/dev-again"
has "$WORK/last.err" "enrollment service: token already used"
[ ! -e "$WORK/dev-again" ] || fail "a failed enrollment left its folder"
ok "a token used twice: $(tail -n1 "$WORK/last.err")"

# The token from a file and from standard input; --json.
token cam-03 >"$WORK/tok3"
enroll_at "$EP" --token-file "$WORK/tok3" --out "$WORK/dev3" --json >"$WORK/j3"
python3 - "$WORK/j3" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["result"] == "ok" and j["exit"] == 0 and j["name"] == "cam-03", j
assert j["role"] == "client" and len(j["serial"]) > 0 and j["crl_written"] is True, j
PY
token cam-04 | enroll_at "$EP" --token-file - --out "$WORK/dev4" --no-passphrase >/dev/null \
	2>"$WORK/dev4.err"
grep -q "BEGIN PRIVATE KEY" "$WORK/dev4/key.pem" || fail "--no-passphrase: key.pem is encrypted"
has "$WORK/dev4.err" "NOT encrypted"
ok "tokens from a file and standard input; --json; --no-passphrase"

# An identity already in the folder: refused before anything is sent.
tok=$(token cam-05)
expect_exit 5 enroll_at "$EP" --token "$tok" --out "$WORK/dev"
has "$WORK/last.err" "already exists; refusing to overwrite an identity"
enroll_at "$EP" --token "$tok" --out "$WORK/dev5" >/dev/null
ok "an existing identity refused (the token was not spent)"

# An expired token.
tok=$(token cam-06 --ttl 1s)
sleep 2 # what is tested: the token's one second of life is over
expect_exit 3 enroll_at "$EP" --token "$tok" --out "$WORK/dev6"
has "$WORK/last.err" "token expired"
ok "an expired token: $(tail -n1 "$WORK/last.err")"

# A request for other claims than the token's: name, role, names.
tok=$(token cam-07 --dns cam-07.example)
expect_exit 3 enroll_at "$EP" --token "$tok" --out "$WORK/dev7" --name cam-99
has "$WORK/last.err" "asks for name 'cam-99'; the token is for 'cam-07'"
expect_exit 3 enroll_at "$EP" --token "$tok" --out "$WORK/dev7" --role server
has "$WORK/last.err" "asks for role 'server'"
expect_exit 3 enroll_at "$EP" --token "$tok" --out "$WORK/dev7" --dns evil.example
has "$WORK/last.err" "subjectAltName"
enroll_at "$EP" --token "$tok" --out "$WORK/dev7" >"$WORK/enroll7.out"
has "$WORK/enroll7.out" "enrolled 'cam-07' (client; DNS:cam-07.example)"
ok "requests for another name, role or subjectAltName refused; the token's own claims issued"

# A service of another CA: the pinned root is not in its chain, so the
# handshake fails before the token is sent; the token still works.
make_ca "$WORK/ca2" "other CA"
start_ca_serve esv2 "$WORK/ca2"
tok=$(token cam-08)
expect_exit 3 enroll_at "$EPORT" --token "$tok" --out "$WORK/dev8"
has "$WORK/last.err" "enrollment server's certificate does not chain to the pinned root $FP"
[ "$(log_count "$WORK/esv2.log" 'event=enroll_request')" -eq 0 ] || fail "a request reached ca2"
[ ! -e "$WORK/dev8" ] || fail "a refused enrollment left its folder"
enroll_at "$EP" --token "$tok" --out "$WORK/dev8" >/dev/null
ok "a service of another CA refused before the token was sent; the token then worked"

# The service's identity must be a server certificate of its own CA.
expect_exit 3 "$SXFER" ca serve --ca "$WORK/ca" --id "$WORK/ca2.esrv" --listen 127.0.0.1:0
has "$WORK/last.err" "the identity is not a valid server certificate of this CA"
expect_exit 3 "$SXFER" ca serve --ca "$WORK/ca" --id "$WORK/dev" --listen 127.0.0.1:0
has "$WORK/last.err" "serverAuth"
"$SXFER" ca issue --ca "$WORK/ca" --name enroll-old.test --role server --dns localhost \
	--out "$WORK/esrv-old" >/dev/null
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/esrv-old/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-esrv-old.pem" >/dev/null
expect_exit 3 timeout 10 "$SXFER" ca serve --ca "$WORK/ca" --id "$WORK/esrv-old" \
	--listen 127.0.0.1:0
has "$WORK/last.err" "revoked"
ok "ca serve refuses an identity of another CA, a client certificate and a revoked one, at start"

# A token of another CA is not sent to a service pinned to ours (port 1:
# nothing was even connected to).
tok2=$("$SXFER" ca token --ca "$WORK/ca2" --name cam-09 2>/dev/null)
expect_exit 3 enroll_at 1 --token "$tok2" --out "$WORK/dev9"
has "$WORK/last.err" "not by the pinned root $FP; it was not sent"
expect_exit 2 enroll_at "$EP" --token "not-a-token" --out "$WORK/dev9"
expect_exit 2 "$SXFER" enroll --ca-fingerprint abc --token "$tok2" "127.0.0.1:$EP" --out "$WORK/dev9"
ok "a token of another CA, no token, a bad fingerprint: refused locally"

# The two services mixed up: each side names the other.
expect_exit 3 "$SXFER" send --id "$WORK/dev" --quiet "127.0.0.1:$EP" "$WORK/f.bin"
has "$WORK/last.err" "server does not speak sxfer/1 (file transfer: sxfer serve)"
has "$WORK/esv.log" "client does not offer ALPN sxfer-enroll/1"
tok=$(token cam-10)
expect_exit 3 enroll_at "$TP" --token "$tok" --out "$WORK/dev10"
has "$WORK/last.err" "server does not speak sxfer-enroll/1 (enrollment: sxfer ca serve)"
has "$WORK/srv.log" "client does not offer ALPN sxfer/1"
enroll_at "$EP" --token "$tok" --out "$WORK/dev10" >/dev/null
ok "a transfer client at the enrollment service, an enrollment client at sxfer serve: refused"
stop_server "$SRV"

# At most --max-conns connections: one more is closed at once.
start_ca_serve esv3 "$WORK/ca" --max-conns 1 --handshake-timeout 30
exec 7<>"/dev/tcp/127.0.0.1/$EPORT"
busy_logged() { grep -q 'event=enroll_busy' "$WORK/esv3.log"; }
t0=$(now_ms)
expect_exit 6 "$SXFER" crl fetch --id "$WORK/dev" "127.0.0.1:$EPORT"
[ $(($(now_ms) - t0)) -lt 10000 ] || fail "the connection beyond the bound was not closed at once"
wait_until 10 "the service to log the connection it closed" busy_logged
exec 7>&-
fetched() { "$SXFER" crl fetch --id "$WORK/dev" "127.0.0.1:$EPORT" >/dev/null 2>&1; }
wait_until 20 "the held connection to end" fetched
ok "--max-conns 1: a second connection closed at once, served once the first ended"
stop_server "$EPID"

stop_server "$ESV"
has "$WORK/esv.log" "event=ca_serve_stop"
ok "SIGTERM stops the service (exit 0)"
