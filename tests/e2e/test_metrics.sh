#!/usr/bin/env bash
# serve --metrics: the exposition parses (promtool check metrics, where the
# prometheus package is installed), changes after a transfer (bytes, files,
# handshakes, refusals, the duration histogram, batches, receipts, per
# device), names refused handshakes by reason (revoked, foreign, expired,
# silent, and the server's own CRL gone stale);
# other paths get 404, other methods 405, garbage 400, an oversized request
# 431, idle connections are closed after the timeout, and none of it harms
# the server; an address that is not loopback needs --metrics-public.
source "$(dirname "$0")/lib.sh"

make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name cam-02 --role client --out "$WORK/cam2" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca" --name cam-03 --role client --out "$WORK/cam3" >/dev/null
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/cam2/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/server/crl.pem" >/dev/null
"$SXFER" ca init --ca "$WORK/ca2" --name "foreign CA" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca2" --name rogue --role client --out "$WORK/rogue" >/dev/null
# the foreign device trusts this server's CA: the server is the one to refuse
cp "$WORK/cam/ca.pem" "$WORK/rogue/ca.pem"
DATES="$E2E_DIR/pki_dates.py"
python3 "$DATES" identity "$WORK/ca" "$WORK/old" --name cam-old --role client --born-ago 10 \
	--life 5

# http.py PORT REQUEST OUT: sends REQUEST (Python escapes) and prints the
# status code of the answer (0 when the server closed without one); the
# whole answer is in OUT, its body in OUT.body.
cat >"$WORK/http.py" <<'PY'
import socket, sys
port, req, out = int(sys.argv[1]), sys.argv[2].encode().decode("unicode_escape").encode("latin-1"), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
try:
    s.sendall(req)
except OSError:
    pass
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except OSError:
    pass
open(out, "wb").write(data)
head, _, body = data.partition(b"\r\n\r\n")
open(out + ".body", "wb").write(body)
parts = head.split(b" ")
print(int(parts[1]) if data.startswith(b"HTTP/1.1 ") and len(parts) > 1 else 0)
PY
http() { python3 "$WORK/http.py" "$MPORT" "$1" "$WORK/http.out"; }

# scrape NAME: GET /metrics into $WORK/NAME.prom (the body), checked by
# promtool where it is installed.
scrape() {
	local code
	code=$(http 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
	[ "$code" = 200 ] || { cat "$WORK/http.out" >&2; fail "scrape $1: status $code"; }
	grep -q '^Content-Type: text/plain; version=0.0.4' "$WORK/http.out" || fail "content type"
	cp "$WORK/http.out.body" "$WORK/$1.prom"
	if command -v promtool >/dev/null; then
		promtool check metrics <"$WORK/$1.prom" >"$WORK/promtool.out" 2>&1 ||
			{ cat "$WORK/promtool.out" >&2; fail "promtool check metrics ($1)"; }
	fi
}

# val NAME SERIES: the value of the sample SERIES (name{labels}, exactly as
# exposed) in $WORK/NAME.prom; fails when it is not there.
val() {
	local v
	v=$(awk -v s="$2" '$1 == s { print $2 }' "$WORK/$1.prom")
	[ -n "$v" ] || { cat "$WORK/$1.prom" >&2; fail "$1: no sample $2"; }
	echo "$v"
}

expect_val() {
	local got
	got=$(val "$1" "$2")
	[ "$got" = "$3" ] || fail "$1: $2 is $got, expected $3"
}

command -v promtool >/dev/null ||
	echo "promtool not installed (Debian package prometheus): the expositions are not linted"

# ---- refused configurations ------------------------------------------------
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$WORK/o0" \
	--metrics 0.0.0.0:0
grep -q "not a loopback address" "$WORK/last.err" || fail "public: $(cat "$WORK/last.err")"
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$WORK/o0" \
	--metrics-per-device 3
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$WORK/o0" \
	--metrics 127.0.0.1
ok "a public metrics address needs --metrics-public; companions need --metrics"

start_server pub --id "$WORK/server" --out "$WORK/o1" --no-ledger --metrics 0.0.0.0:0 \
	--metrics-public --metrics-port-file "$WORK/pub.mport"
MPORT=$(cat "$WORK/pub.mport")
scrape pub
stop_server "$SERVER_PID"
ok "--metrics-public: 0.0.0.0 allowed"

# ---- a server, scraped before and after transfers -------------------------
start_server m --id "$WORK/server" --out "$WORK/out" --metrics 127.0.0.1:0 \
	--metrics-port-file "$WORK/m.mport" --metrics-per-device 1 --handshake-timeout 3
SRV=$SERVER_PID
MPORT=$(cat "$WORK/m.mport")
grep -q "event=metrics_listen addr=127.0.0.1:0 port=$MPORT " "$WORK/m.log" || fail "no metrics_listen"
scrape before
expect_val before sxfer_files_stored_total 0
expect_val before sxfer_received_bytes_total 0
expect_val before 'sxfer_handshakes_total{result="ok",reason="ok"}' 0
expect_val before sxfer_connections_open 0
grep -q '^sxfer_build_info{version="[0-9][^"]*"} 1$' "$WORK/before.prom" || fail "build_info"
start=$(val before sxfer_start_time_seconds)
python3 -c "import sys, time; t = float(sys.argv[1]); sys.exit(not (time.time() - 600 < t <= time.time()))" \
	"$start" || fail "start time $start"
[ "$(val before sxfer_ledger_size_bytes)" -gt 0 ] || fail "ledger size"
[ "$(val before sxfer_output_free_bytes)" -gt 0 ] || fail "free bytes"
ok "first scrape: all zero, build info, start time, ledger and disk"

rand_file "$WORK/big.bin" 3000000
rand_file "$WORK/small.bin" 1000
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/big.bin" "$WORK/small.bin"
"$SXFER" send --id "$WORK/cam3" --quiet "127.0.0.1:$PORT" "$WORK/small.bin"
# a name already stored, sent without asking first: the server refuses it
expect_exit 5 "$SXFER" send --id "$WORK/cam" --quiet --no-resume "127.0.0.1:$PORT" "$WORK/small.bin"
expect_exit 3 "$SXFER" send --id "$WORK/cam2" --quiet "127.0.0.1:$PORT" "$WORK/small.bin"
expect_exit 3 "$SXFER" send --id "$WORK/rogue" --quiet "127.0.0.1:$PORT" "$WORK/small.bin"
expect_exit 3 "$SXFER" send --id "$WORK/old" --quiet "127.0.0.1:$PORT" "$WORK/small.bin"
# a peer that connects and says nothing: its handshake times out (the
# server closes the connection)
python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
while s.recv(4096): pass' "$PORT"
scrape after
expect_val after sxfer_files_stored_total 3
[ "$(val after sxfer_received_bytes_total)" -ge 3002000 ] || fail "bytes: $(val after sxfer_received_bytes_total)"
expect_val after 'sxfer_handshakes_total{result="ok",reason="ok"}' 3
expect_val after 'sxfer_handshakes_total{result="failed",reason="revoked"}' 1
expect_val after 'sxfer_handshakes_total{result="failed",reason="unknown_ca"}' 1
expect_val after 'sxfer_files_refused_total{reason="exists"}' 1
expect_val after 'sxfer_handshakes_total{result="failed",reason="timeout"}' 1
expect_val after 'sxfer_handshakes_total{result="failed",reason="expired"}' 1
expect_val after sxfer_connections_total 7
expect_val after sxfer_file_transfer_duration_seconds_count 3
expect_val after 'sxfer_file_transfer_duration_seconds_bucket{le="+Inf"}' 3
[ "$(val after sxfer_batches_verified_total)" -ge 2 ] || fail "batches"
[ "$(val after sxfer_receipts_sent_total)" -ge 2 ] || fail "receipts"
expect_val after 'sxfer_device_stored_bytes_total{device="cam-01"}' 3001000
expect_val after 'sxfer_device_files_stored_total{device="cam-01"}' 2
expect_val after 'sxfer_device_stored_bytes_total{device="other"}' 1000
! grep -q 'device="cam-03"' "$WORK/after.prom" || fail "cam-03 shown with --metrics-per-device 1"
ok "after transfers: files, bytes, handshakes (revoked, unknown_ca, expired, timeout), exists, histogram, per device"

# ---- what is not a scrape ----------------------------------------------------
[ "$(http 'GET / HTTP/1.1\r\n\r\n')" = 404 ] || fail "/ is not 404"
[ "$(http 'GET /metrics/x HTTP/1.1\r\n\r\n')" = 404 ] || fail "/metrics/x is not 404"
[ "$(http 'POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n')" = 405 ] || fail "POST"
grep -q '^Allow: GET, HEAD' "$WORK/http.out" || fail "405 without Allow"
[ "$(http 'HEAD /metrics HTTP/1.0\r\n\r\n')" = 200 ] || fail "HEAD"
[ ! -s "$WORK/http.out.body" ] || fail "HEAD with a body"
[ "$(http 'GET /metrics?x=1 HTTP/1.1\n\n')" = 200 ] || fail "a query, bare newlines"
[ "$(http '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n')" = 400 ] || fail "TLS garbage"
[ "$(http 'GET /metrics\r\n\r\n')" = 400 ] || fail "HTTP/0.9"
big=$(python3 -c 'print("GET /metrics HTTP/1.1\\r\\nX: " + "a" * 9000 + "\\r\\n\\r\\n")')
code=$(http "$big")
[ "$code" = 431 ] || [ "$code" = 0 ] || fail "oversized request: $code"
ok "404, 405, HEAD, 400 for garbage, $code for an oversized request"

# Idle connections fill every slot: a scrape waits for the timeout (5 s),
# then is answered; the transfers go on meanwhile.
python3 - "$MPORT" "$WORK/idle.up" <<'PY' &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(6)]
for s in socks[:2]:
    s.sendall(b"GET /metr")  # a request never finished
open(sys.argv[2], "w").close()
time.sleep(60)  # ended by the test
PY
IDLE=$!
PIDS+=("$IDLE")
wait_until 10 "the idle connections" test -e "$WORK/idle.up"
rand_file "$WORK/during.bin" 100000
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/during.bin"
t0=$(now_ms)
scrape idle
t=$(($(now_ms) - t0))
[ "$t" -lt 12000 ] || fail "scrape took $t ms behind idle connections"
expect_val idle sxfer_files_stored_total 4
kill "$IDLE"
wait "$IDLE" 2>/dev/null || true
ok "idle connections closed after the timeout; scrape answered in $t ms, transfer unharmed"

for _ in 1 2 3; do scrape again; done
grep -q '^sxfer_connections_open 0$' "$WORK/again.prom" || fail "connections open after all ended"
kill -0 "$SRV" || fail "server gone"
stop_server "$SRV"
grep -q "event=shutdown" "$WORK/m.log" || fail "no shutdown line"
ok "server stops cleanly after all of it"

# ---- a CRL that goes stale while the server runs --------------------------
cp -r "$WORK/server" "$WORK/server-st"
python3 "$DATES" crl "$WORK/ca" "$WORK/server-st/crl.pem" --number 1000 --next-in 6
start_server st --id "$WORK/server-st" --out "$WORK/out-st" --no-ledger --metrics 127.0.0.1:0 \
	--metrics-port-file "$WORK/st.mport"
MPORT=$(cat "$WORK/st.mport")
stale_logged() { grep -q 'event=crl action=stale' "$WORK/st.log"; }
wait_until 20 "the server to log its stale CRL" stale_logged
expect_exit 3 "$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/small.bin"
scrape stale
expect_val stale 'sxfer_handshakes_total{result="failed",reason="stale_crl"}' 1
expect_val stale 'sxfer_handshakes_total{result="ok",reason="ok"}' 0
! grep -q sxfer_ledger_size_bytes "$WORK/stale.prom" || fail "a ledger size without a ledger"
stop_server "$SERVER_PID"
ok "a device refused for the server's stale CRL: reason stale_crl"
