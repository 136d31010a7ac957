#!/usr/bin/env bash
# What `sxfer serve` refuses at start (with the reason and exit code, before
# it listens), port ranges on both ends, SIGHUP, and the modes of what it
# stores.
source "$(dirname "$0")/lib.sh"
umask 022 # the stored modes below depend on it
make_pki
rand_file "$WORK/f.bin" 1000

# Ports outside 1-65535 are usage errors: 70000 used to listen on 4464.
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:70000 --id "$WORK/server" --out "$WORK/o"
grep -q "70000" "$WORK/last.err" || fail "port: $(cat "$WORK/last.err")"
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:-1 --id "$WORK/server" --out "$WORK/o"
expect_exit 2 "$SXFER" send --id "$WORK/cam" 127.0.0.1:70000 "$WORK/f.bin"
expect_exit 2 "$SXFER" send --id "$WORK/cam" 127.0.0.1:0 "$WORK/f.bin"
expect_exit 2 "$SXFER" send --id "$WORK/cam" 127.0.0.1:7x "$WORK/f.bin"
[ ! -e "$WORK/o" ] || fail "a refused serve created its output folder"
ok "ports outside 1-65535 are usage errors on both ends"

# serve_refused CODE PATTERN [serve options]: refused at start, before it
# listens (no port file).
serve_refused() {
	local code=$1 pattern=$2
	shift 2
	rm -f "$WORK/r.port"
	expect_exit "$code" "$SXFER" serve --listen 127.0.0.1:0 --port-file "$WORK/r.port" "$@"
	grep -q -- "$pattern" "$WORK/last.err" || fail "expected '$pattern': $(cat "$WORK/last.err")"
	[ ! -e "$WORK/r.port" ] || fail "listened before refusing: $*"
	ok "refused at start (exit $code): $(tail -n1 "$WORK/last.err")"
}

# An output folder that cannot be created or written.
: >"$WORK/plainfile"
serve_refused 5 "plainfile" --id "$WORK/server" --out "$WORK/plainfile/sub"
if [ "$(id -u)" != 0 ]; then
	mkdir -m 0555 "$WORK/ro"
	serve_refused 5 "cannot be written" --id "$WORK/server" --out "$WORK/ro"
fi

# An identity without the server role.
serve_refused 3 "serverAuth" --id "$WORK/cam" --out "$WORK/o"

# A stale CRL: in the identity folder, or given with --crl.
python3 "$E2E_DIR/../unit/chan_certs.py" "$WORK/py"
serve_refused 3 "crl.pem: CRL issued by .* is stale (nextUpdate .*sxfer ca crl" \
	--id "$WORK/py/server_stale_crl" --out "$WORK/o"
serve_refused 3 "stale" --id "$WORK/py/server" --crl "$WORK/py/server_stale_crl/crl.pem" --out "$WORK/o"

# A second server on the same output folder: its start-up would remove the
# first one's temporaries.
start_server one --id "$WORK/server" --out "$WORK/out"
ONE=$SERVER_PID
serve_refused 5 "another sxfer serve" --id "$WORK/server" --out "$WORK/out"

# SIGHUP reads the CRL again (test_crl_reload.sh); the server goes on
# serving.
kill -HUP "$ONE"
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin" ||
	fail "the server did not survive SIGHUP"
kill -0 "$ONE" || fail "the server died of SIGHUP"
"$SXFER" serve --help >"$WORK/help.txt"
grep -q "SIGHUP: read the CRL again" "$WORK/help.txt" || fail "serve --help does not say so"
ok "SIGHUP does not stop the server"

# Modes: the sender's bits less the server's umask (022 here); the output
# and per-sender folders 0750.
mkdir -p "$WORK/tree/open"
chmod 0777 "$WORK/tree/open"
rand_file "$WORK/tree/open/rw.bin" 100
chmod 0666 "$WORK/tree/open/rw.bin"
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/tree" || fail "tree not sent"
stop_server "$ONE"
mode() { stat -c %a "$1"; }
[ "$(mode "$WORK/out/cam-01/tree/open/rw.bin")" = 644 ] ||
	fail "0666 file stored $(mode "$WORK/out/cam-01/tree/open/rw.bin")"
[ "$(mode "$WORK/out/cam-01/tree/open")" = 755 ] ||
	fail "0777 folder stored $(mode "$WORK/out/cam-01/tree/open")"
[ "$(mode "$WORK/out")" = 750 ] || fail "output folder $(mode "$WORK/out")"
[ "$(mode "$WORK/out/cam-01")" = 750 ] || fail "per-sender folder $(mode "$WORK/out/cam-01")"
ok "stored modes masked with the umask; output folders 0750"
