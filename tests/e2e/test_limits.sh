#!/usr/bin/env bash
# Per-device limits (docs/OPERATIONS.md, "Limits"): each limit refuses a
# device with a reason it can read (exit 5) while another device uploads
# without a failure: one connection too many of an identity (after its
# handshake), a file over max-file-size, a file that would pass the quota
# per day, and one that would pass the quota in all (counted at start from
# what the identity's folder holds); a stream passing max-file-size;
# per-name overrides lift a default. A
# SIGHUP while a transfer runs reloads a quota and the CRL: the transfer
# completes, the new quota applies to the next file. A full server answers
# "server busy" (exit 6) instead of leaving a device waiting.
source "$(dirname "$0")/lib.sh"
make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name cam-02 --role client --out "$WORK/cam2" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca" --name cam-03 --role client --out "$WORK/cam3" >/dev/null
mkdir -p "$WORK/out/cam-03" "$WORK/up"
rand_file "$WORK/out/cam-03/old.bin" $((3 << 20)) # counted at start
rand_file "$WORK/up/big.bin" $((2 << 20))
rand_file "$WORK/up/small.bin" 1000
CONF=$WORK/serve.conf
cat >"$CONF" <<EOF
id = $WORK/server
out = $WORK/out
# every device
max-file-size = 1M
quota-per-day = 3M
max-conns-per-device = 1
# cam-02 may send larger files, as much as it likes, on a few connections
device.cam-02.max-file-size = 8M
device.cam-02.quota-per-day = none
device.cam-02.max-conns-per-device = 4
device.cam-03.quota-total = 3M
EOF
start_server srv --config "$CONF"
SRV=$SERVER_PID
grep -q 'event=quota_count .*trigger=start folders=1 bytes=3145728' "$WORK/srv.log" ||
	fail "the stored bytes were not counted at start: $(grep quota_count "$WORK/srv.log")"

# cam-02 uploads a 2 MiB file (over the default max-file-size, within its
# own) after another until told to stop: none may fail.
mkdir -p "$WORK/b"
b_loop() {
	local i=0 rc
	while [ ! -e "$WORK/b.stop" ]; do
		i=$((i + 1))
		cp "$WORK/up/big.bin" "$WORK/b/f$i.bin"
		rc=0
		"$SXFER" send --id "$WORK/cam2" --quiet "127.0.0.1:$PORT" "$WORK/b/f$i.bin" \
			2>>"$WORK/b.err" || rc=$?
		echo "$([ "$rc" -eq 0 ] && echo ok || echo "fail $rc") $i" >>"$WORK/b.log"
	done
}
b_loop &
B_PID=$!
PIDS+=("$B_PID")
b_going() { [ "$(log_count "$WORK/b.log" '^ok')" -ge 1 ]; }
wait_until 20 "cam-02's first upload" b_going

# expect_refused CODE WANT CMD...: CMD exits CODE and says WANT.
expect_refused() {
	local code=$1 want=$2
	shift 2
	expect_exit "$code" "$@"
	grep -qF -- "$want" "$WORK/last.err" || fail "expected '$want', got: $(cat "$WORK/last.err")"
	ok "refused: $(grep -F -- "$want" "$WORK/last.err" | tail -n1)"
}

# One connection too many of cam-01: refused after its handshake, told why.
mkfifo "$WORK/a.pipe"
"$SXFER" send --id "$WORK/cam" --quiet --name live.bin "127.0.0.1:$PORT" - \
	<"$WORK/a.pipe" 2>"$WORK/live.err" &
LIVE=$!
PIDS+=("$LIVE")
exec 6>"$WORK/a.pipe"
head -c 100000 /dev/urandom >&6
live_in() { [ "$(log_count "$WORK/srv.log" 'event=handshake.*peer="cam-01"')" -ge 1 ]; }
wait_until 10 "cam-01's stream to be connected" live_in
expect_refused 5 "too many connections for cam-01 (at most 1 at once)" \
	"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/up/small.bin"
exec 6>&-
wait "$LIVE" || fail "cam-01's stream failed: $(cat "$WORK/live.err")"
[ -s "$WORK/out/cam-01/live.bin" ] || fail "cam-01's stream was not stored"

# A file over max-file-size: refused at its FILE_BEGIN.
expect_refused 5 "file too large: 'big.bin' is 2 MiB, at most 1 MiB for cam-01" \
	"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/up/big.bin"
[ ! -e "$WORK/out/cam-01/big.bin" ] || fail "a file over max-file-size was stored"

# A stream is refused once it passes max-file-size (what follows is
# dropped, nothing of it is kept).
head -c $((3 << 19)) /dev/urandom >"$WORK/up/over.bin"
expect_refused 5 "file too large: stream 'over.bin' reached" \
	"$SXFER" send --id "$WORK/cam" --quiet --name over.bin "127.0.0.1:$PORT" - <"$WORK/up/over.bin"
[ ! -e "$WORK/out/cam-01/over.bin" ] || fail "a stream over max-file-size was stored"

# The quota per day counts what was received: 100,000 bytes of the first
# stream, 1.5 MiB of the second; then a file of 900 KiB fits, a second
# would pass 3 MiB.
for i in 1 2; do rand_file "$WORK/up/q$i.bin" $((900 << 10)); done
expect_refused 5 "quota exceeded: 3 MiB per day (UTC) for cam-01, 2.5 MiB used; 'q2.bin' needs 900 KiB" \
	"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK"/up/q{1,2}.bin
cmp "$WORK/up/q1.bin" "$WORK/out/cam-01/q1.bin"
[ ! -e "$WORK/out/cam-01/q2.bin" ] || fail "a file over the quota was stored"

# The quota in all: cam-03's folder held 3 MiB at start.
expect_refused 5 "quota exceeded: 3 MiB in all for cam-03, 3 MiB used; 'small.bin' needs 1000 B" \
	"$SXFER" send --id "$WORK/cam3" --quiet "127.0.0.1:$PORT" "$WORK/up/small.bin"

touch "$WORK/b.stop"
wait "$B_PID" || true
[ "$(log_count "$WORK/b.log" '^fail')" -eq 0 ] || {
	cat "$WORK/b.log" "$WORK/b.err" >&2
	fail "cam-02 had a failed upload"
}
ok "cam-02 uploaded $(log_count "$WORK/b.log" '^ok') files of 2 MiB meanwhile (its own limits), none failed"
no_partials "$WORK/out"

# SIGHUP while cam-02 streams: a quota for cam-02 and a new CRL. The stream
# completes; cam-02's next file is refused by the new quota.
mkfifo "$WORK/b.pipe"
"$SXFER" send --id "$WORK/cam2" --quiet --name running.bin "127.0.0.1:$PORT" - \
	<"$WORK/b.pipe" 2>"$WORK/running.err" &
RUN=$!
PIDS+=("$RUN")
exec 7>"$WORK/b.pipe"
head -c $((1 << 20)) /dev/urandom >&7
running() { [ "$(log_count "$WORK/srv.log" 'event=handshake.*peer="cam-02"')" -gt "$(log_count "$WORK/b.log" '^ok')" ]; }
wait_until 10 "cam-02's stream to be connected" running
sed -i 's/^device.cam-02.quota-per-day = none/device.cam-02.quota-per-day = 1M/' "$CONF"
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl.new" >/dev/null
mv "$WORK/crl.new" "$WORK/server/crl.pem"
kill -HUP "$SRV"
reloaded() {
	grep -q 'event=config_reload .*changed="device.cam-02.quota-per-day none -> 1M"' "$WORK/srv.log" &&
		grep -q 'event=crl action=reloaded' "$WORK/srv.log"
}
wait_until 10 "the quota and the CRL to be reloaded" reloaded
head -c $((1 << 20)) /dev/urandom >&7
exec 7>&-
wait "$RUN" || fail "the stream running through the reload failed: $(cat "$WORK/running.err")"
[ "$(stat -c %s "$WORK/out/cam-02/running.bin")" -eq $((2 << 20)) ] || fail "running.bin is not whole"
ok "a transfer running through SIGHUP (a new quota, a new CRL) completes"
expect_refused 5 "quota exceeded: 1 MiB per day (UTC) for cam-02" \
	"$SXFER" send --id "$WORK/cam2" --quiet "127.0.0.1:$PORT" "$WORK/up/small.bin"
kill -0 "$SRV" || fail "the server stopped"
stop_server "$SRV"

# A full server: one connection at most; the next device is told, after at
# most about 2 s, that the server is busy (class 6: --retry tries again).
start_server busy --id "$WORK/server" --out "$WORK/out-busy" --max-conns 1 --threads 2
mkfifo "$WORK/c.pipe"
"$SXFER" send --id "$WORK/cam2" --quiet --name hold.bin "127.0.0.1:$PORT" - \
	<"$WORK/c.pipe" 2>"$WORK/hold.err" &
HOLD=$!
PIDS+=("$HOLD")
exec 8>"$WORK/c.pipe"
head -c 1000 /dev/urandom >&8
held() { grep -q 'event=handshake.*peer="cam-02"' "$WORK/busy.log"; }
wait_until 10 "the connection that fills the server" held
t0=$(now_ms)
expect_refused 6 "server busy: all 1 connection in use, try again later" \
	"$SXFER" send --id "$WORK/cam" --quiet --retry 0 "127.0.0.1:$PORT" "$WORK/up/small.bin"
waited=$(($(now_ms) - t0))
[ "$waited" -lt 6000 ] || fail "told it was busy after $waited ms"
ok "a full server answers 'server busy' after $waited ms"
# With --retry, a device gets in once the connection ahead of it ends (it
# must not hold the pipe that keeps that one open).
"$SXFER" send --id "$WORK/cam" --quiet --retry 5 --retry-wait 500:1000 "127.0.0.1:$PORT" \
	"$WORK/up/small.bin" 2>"$WORK/retry.err" 8>&- &
RETRY=$!
PIDS+=("$RETRY")
sleep 1 # part of the test: the device is waiting or retrying meanwhile
exec 8>&-
wait "$HOLD" || fail "the connection that filled the server failed"
wait "$RETRY" || fail "the device retrying after 'server busy' failed: $(cat "$WORK/retry.err")"
cmp "$WORK/up/small.bin" "$WORK/out-busy/cam-01/small.bin"
ok "a device retrying after 'server busy' is served once a slot frees"
stop_server "$SERVER_PID"
