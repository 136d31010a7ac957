#!/usr/bin/env bash
# Revocation on a running server (docs/REVOCATION.md): a CRL put in place
# (renamed into the watched path) refuses a revoked device within seconds,
# without a restart, while another device keeps uploading, and the revoked
# device's session opened before the revocation finishes; an older CRL, or
# one with the same number and other content, is refused and the revoked
# device stays refused; SIGHUP reads the CRL again; a CRL that goes stale
# while the server runs refuses every device with that reason (told in an
# ERROR after the handshake: nothing it sends is stored); a stale CRL at
# start is a start-up error.
source "$(dirname "$0")/lib.sh"
python3 -c 'import cryptography' 2>/dev/null || {
	echo "python3-cryptography is missing"
	exit 77
}
make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name cam-02 --role client --out "$WORK/cam2" >/dev/null
DATES="$E2E_DIR/pki_dates.py"
crl_number() { # FILE: its crlNumber, in decimal
	local n
	n=$(openssl crl -in "$1" -noout -crlnumber | cut -d= -f2)
	echo $((16#${n#0x}))
}
# put_crl FILE: the server's CRL replaced atomically (written beside it,
# then renamed over it).
put_crl() {
	cp "$1" "$WORK/server/.crl.new"
	mv "$WORK/server/.crl.new" "$WORK/server/crl.pem"
}
rand_file "$WORK/b.bin" 5000

# A CRL made before the revocation (not installed): an older one, later.
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-old.pem" >/dev/null

# The server starts with no CRL: its identity folder's crl.pem is watched
# until one appears.
[ ! -e "$WORK/server/crl.pem" ] || fail "the identity folder already has a CRL"
start_server srv --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
"$SXFER" send --id "$WORK/cam2" --quiet "127.0.0.1:$PORT" "$WORK/b.bin" || fail "cam-02 before"

# cam-01 uploads a file after another until told to stop; one line per
# attempt in a.log: ok|fail N time_ms.
mkdir -p "$WORK/a"
a_loop() {
	local i=0 rc
	while [ ! -e "$WORK/a.stop" ]; do
		i=$((i + 1))
		rand_file "$WORK/a/f$i.bin" 20000
		rc=0
		"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/a/f$i.bin" \
			2>>"$WORK/a.err" || rc=$?
		if [ "$rc" -eq 0 ]; then
			echo "ok $i $(now_ms)" >>"$WORK/a.log"
		else
			echo "fail $i $(now_ms) $rc" >>"$WORK/a.log"
		fi
	done
}
a_loop &
A_PID=$!
PIDS+=("$A_PID")
a_oks() { log_count "$WORK/a.log" '^ok'; }
a_going() { [ "$(a_oks)" -ge 2 ]; }
wait_until 30 "cam-01's first uploads" a_going

# cam-02 opens a stream before its revocation: a connection already
# authenticated is not dropped, and the session finishes.
mkfifo "$WORK/b.pipe"
"$SXFER" send --id "$WORK/cam2" --quiet --name live.bin "127.0.0.1:$PORT" - \
	<"$WORK/b.pipe" 2>"$WORK/live.err" &
LIVE_PID=$!
PIDS+=("$LIVE_PID")
exec 6>"$WORK/b.pipe"
head -c 100000 /dev/urandom >&6
live_in() { [ "$(log_count "$WORK/srv.log" 'event=handshake.*peer="cam-02"')" -ge 2 ]; }
wait_until 10 "cam-02's stream to be connected" live_in

# Revoke cam-02; the new CRL lands in the identity folder.
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/cam2/cert.pem" >/dev/null
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-rev.pem" >/dev/null
N_REV=$(crl_number "$WORK/crl-rev.pem")
put_crl "$WORK/crl-rev.pem"
T_REV=$(now_ms)
b_refused() { # cam-02's new connection: exit 3, the reason names the revocation
	local rc=0
	"$SXFER" send --id "$WORK/cam2" --quiet "127.0.0.1:$PORT" "$WORK/b.bin" \
		>/dev/null 2>"$WORK/b.err" || rc=$?
	[ "$rc" -eq 3 ] && grep -qi "revoked" "$WORK/b.err"
}
wait_until 5 "cam-02 to be refused after its revocation" b_refused
ok "cam-02 refused $(($(now_ms) - T_REV)) ms after the CRL landed: $(tail -n1 "$WORK/b.err")"
grep -q "event=crl action=reloaded path=.* number=$N_REV revoked=1 trigger=file" "$WORK/srv.log" ||
	fail "no reload in the server log"
grep -q 'event=conn_error.*revoked' "$WORK/srv.log" || fail "the refusal is not in the log"
kill -0 "$SRV" || fail "the server stopped"
ok "the server logged the reload: $(grep 'action=reloaded' "$WORK/srv.log" | tail -n1)"
head -c 1000 /dev/urandom >&6
exec 6>&-
wait "$LIVE_PID" || fail "cam-02's stream opened before the revocation failed: $(cat "$WORK/live.err")"
[ -s "$WORK/out/cam-02/live.bin" ] || fail "cam-02's stream was not stored"
ok "cam-02's session opened before the revocation finished ($(stat -c %s "$WORK/out/cam-02/live.bin") bytes)"

# An older CRL (a lower crlNumber, without the revocation) is refused.
put_crl "$WORK/crl-old.pem"
older_refused() { grep -q 'event=crl action=refused.*lower than the highest' "$WORK/srv.log"; }
wait_until 5 "the older CRL to be refused" older_refused
b_refused || fail "cam-02 accepted after an older CRL was put in place"
ok "an older CRL is refused, cam-02 stays refused: $(grep 'lower than' "$WORK/srv.log" | tail -n1)"

# The same crlNumber with other content (no revocation) is refused too.
python3 "$DATES" crl "$WORK/ca" "$WORK/crl-same.pem" --number "$N_REV" --next-in 86400
put_crl "$WORK/crl-same.pem"
same_refused() { grep -q 'event=crl action=refused.*same as the last one' "$WORK/srv.log"; }
wait_until 5 "the CRL of the same number to be refused" same_refused
b_refused || fail "cam-02 accepted after a CRL of the same number"
ok "a CRL with the current number and other content is refused"

# SIGHUP reads the file again (the one in use: unchanged).
put_crl "$WORK/crl-rev.pem"
kill -HUP "$SRV"
hup_read() { grep -q 'event=crl action=unchanged.*trigger=sighup' "$WORK/srv.log"; }
wait_until 5 "the CRL to be read again on SIGHUP" hup_read
kill -0 "$SRV" || fail "the server stopped on SIGHUP"
ok "SIGHUP reads the CRL again"

# cam-01 went on uploading throughout.
touch "$WORK/a.stop"
wait "$A_PID" || true
[ "$(log_count "$WORK/a.log" '^fail')" -eq 0 ] || {
	cat "$WORK/a.log" "$WORK/a.err" >&2
	fail "cam-01 had a failed upload"
}
after=$(awk -v t="$T_REV" '$1 == "ok" && $3 > t' "$WORK/a.log" | wc -l)
[ "$after" -ge 3 ] || fail "cam-01 uploaded only $after files after the revocation"
for f in "$WORK"/a/f*.bin; do
	cmp -s "$f" "$WORK/out/cam-01/$(basename "$f")" || fail "$f was not stored"
done
ok "cam-01 uploaded $(a_oks) files, $after of them after the revocation, none failed"

# A CRL that goes stale while the server runs: current for a few seconds,
# then every new device is refused, told why; what it sends is not stored.
python3 "$DATES" crl "$WORK/ca" "$WORK/crl-short.pem" --number $((N_REV + 100)) --next-in 8 \
	--revoke "$WORK/cam2/cert.pem"
put_crl "$WORK/crl-short.pem"
short_in() { grep -q "action=reloaded.*number=$((N_REV + 100))" "$WORK/srv.log"; }
wait_until 5 "the short-lived CRL to be used" short_in
rand_file "$WORK/a/late.bin" 3000000
rand_file "$WORK/c.bin" 1000
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/c.bin" ||
	fail "cam-01 refused while the CRL is current"
stale_logged() { grep -q 'event=crl action=stale' "$WORK/srv.log"; }
wait_until 15 "the server to log its stale CRL" stale_logged
expect_exit 3 "$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/a/late.bin"
grep -q "server refused: the server's revocation list is stale (nextUpdate" "$WORK/last.err" ||
	fail "send: $(cat "$WORK/last.err")"
[ ! -e "$WORK/out/cam-01/late.bin" ] || fail "a file of a refused device was stored"
no_partials "$WORK/out"
ok "stale CRL: send refused, nothing stored: $(tail -n1 "$WORK/last.err")"
expect_exit 3 "$SXFER" get --id "$WORK/cam" --quiet "127.0.0.1:$PORT" uploads/f1.bin "$WORK/got"
grep -q "revocation list is stale" "$WORK/last.err" || fail "get: $(cat "$WORK/last.err")"
ok "stale CRL: get refused: $(tail -n1 "$WORK/last.err")"
expect_exit 3 "$SXFER" send --id "$WORK/cam2" --quiet "127.0.0.1:$PORT" "$WORK/b.bin"
grep -qi "revoked" "$WORK/last.err" || fail "cam-02 under a stale CRL: $(cat "$WORK/last.err")"
ok "stale CRL: the device it lists is still refused as revoked"
grep -q 'event=crl action=stale.*effect="every new device is refused"' "$WORK/srv.log" ||
	fail "the stale line lacks its effect"
stop_server "$SRV"

# A stale CRL at start: the server does not start, and says which file,
# its nextUpdate and what to do.
expect_exit 3 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$WORK/out" \
	--crl "$WORK/crl-short.pem"
grep -q "crl-short.pem: CRL issued by .* is stale (nextUpdate .*sxfer ca crl" "$WORK/last.err" ||
	fail "stale at start: $(cat "$WORK/last.err")"
ok "a stale CRL at start: $(tail -n1 "$WORK/last.err")"
