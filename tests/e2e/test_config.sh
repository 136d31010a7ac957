#!/usr/bin/env bash
# sxfer serve's configuration file (docs/OPERATIONS.md, "Configuration"):
# `key = value` lines with the long options' names, comments, quotes and
# booleans; the command line overrides the file; an unknown key, a
# malformed line or a bad value is an error naming the file and the line
# (exit 2); the default file is read only when it exists, and --no-config
# or --config none ignore it; SIGHUP logs what changed, what needs a
# restart, and refuses a file that no longer parses (the settings in use
# stay).
source "$(dirname "$0")/lib.sh"
make_pki
rand_file "$WORK/f.bin" 20000
CONF=$WORK/serve.conf

# bad_conf TEXT WANT: a server with this file exits 2, saying WANT.
bad_conf() {
	printf '%s\n' "$1" >"$CONF"
	expect_exit 2 "$SXFER" serve --config "$CONF" --listen 127.0.0.1:0
	grep -qF -- "$2" "$WORK/last.err" || fail "expected '$2', got: $(cat "$WORK/last.err")"
	ok "$(head -n1 "$WORK/last.err")"
}
bad_conf $'# the server\nid = x\n\nmax-con = 3' "serve.conf:4: unknown key 'max-con'"
bad_conf $'max-conns = 8\nmax-conns = -3' "serve.conf:2: max-conns: '-3' is not a number from 1 to 4096"
bad_conf 'once = yes' "serve.conf:1: once: 'yes' is not true or false"
bad_conf 'listen 127.0.0.1:7000' "serve.conf:1: expected 'key = value'"
bad_conf 'out = "unclosed' "serve.conf:1: out: the quote is not closed"
bad_conf 'config = other.conf' "serve.conf:1: 'config' cannot be set in a configuration file"
bad_conf 'max-file-size = 10Q' "serve.conf:1: max-file-size: '10Q' is not a size"
bad_conf 'device.cam-01.quota-totl = 1G' "serve.conf:1: device 'cam-01.quota-totl=1G': unknown limit 'quota-totl'"
bad_conf 'crl =' "serve.conf:1: crl needs a value"
expect_exit 2 "$SXFER" serve --config "$WORK/missing.conf" --listen 127.0.0.1:0
grep -q "missing.conf" "$WORK/last.err" || fail "a missing --config: $(cat "$WORK/last.err")"
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --max-conns 0
grep -qF -- "--max-conns: '0' is not a number from 1 to 4096" "$WORK/last.err" ||
	fail "a bad flag: $(cat "$WORK/last.err")"
ok "a bad flag on the command line is named as a flag"

# Precedence: the file gives id, out, max-conns and a per-device limit;
# the command line overrides max-conns and that limit. Comments, blanks,
# quotes (a '#' inside) and a boolean.
mkdir -p "$WORK/out #1"
cat >"$CONF" <<EOF
# sxfer serve, for the test
id = $WORK/server
out = "$WORK/out #1"   # quoted: the '#' is part of the name
max-conns = 5
no-ledger = true
require-signed = false

max-file-size = 1K
device.cam-01.max-file-size = 2K
EOF
start_server a --config "$CONF" --max-conns 7 --device cam-01.max-file-size=1M
grep -q "event=config path=\"$CONF\" options=6" "$WORK/a.log" || fail "no config line: $(head -n3 "$WORK/a.log")"
grep -q 'event=listen .*out=".*/out #1" max_conns=7 ' "$WORK/a.log" ||
	fail "the file's out or the flag's max-conns not used: $(grep event=listen "$WORK/a.log")"
[ ! -e "$WORK/out #1.ledger.sqlite" ] || fail "no-ledger = true was not taken"
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin" ||
	fail "the command line's --device did not override the file's"
cmp "$WORK/f.bin" "$WORK/out #1/cam-01/f.bin"
ok "the command line overrides the file (max-conns 7, cam-01's max-file-size 1M)"

# SIGHUP: a change of a limit is applied and logged, a change of the output
# folder is logged as needing a restart, and a file that no longer parses
# is refused whole.
sed -i 's/^max-conns = 5/max-conns = 9/; s/^device.cam-01.max-file-size = 2K/quota-per-day = 10G/' "$CONF"
sed -i "s|^out = .*|out = $WORK/elsewhere|" "$CONF"
kill -HUP "$SERVER_PID"
reloaded() { grep -q 'event=config_reload path=' "$WORK/a.log"; }
wait_until 10 "the reload" reloaded
grep -q 'event=config_reload path=.* changed="quota-per-day (not set) -> 10G"' "$WORK/a.log" ||
	fail "what changed: $(grep config_reload "$WORK/a.log")"
grep -q 'event=config_reload key="out" reason="needs a restart"' "$WORK/a.log" ||
	fail "out not said to need a restart: $(grep config_reload "$WORK/a.log")"
grep -q 'event=config_reload key="max-conns"' "$WORK/a.log" &&
	fail "max-conns is overridden by the command line: it did not change"
ok "SIGHUP: $(grep 'changed=' "$WORK/a.log" | tail -n1 | sed 's/.*event=//')"
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin" ||
	fail "cam-01's override (from the command line) was lost in the reload"
echo "max-file-size = lots" >>"$CONF"
kill -HUP "$SERVER_PID"
refused() { grep -q 'event=config_reload reason=.*max-file-size' "$WORK/a.log"; }
wait_until 10 "the broken file to be refused" refused
grep -q "serve.conf:$(wc -l <"$CONF"): max-file-size: 'lots' is not a size.*kept=\"the settings in use\"" "$WORK/a.log" ||
	fail "the refusal: $(grep config_reload "$WORK/a.log" | tail -n1)"
kill -0 "$SERVER_PID" || fail "the server stopped on a broken configuration"
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/f.bin" ||
	fail "the server stopped serving after a broken configuration"
ok "a configuration that no longer parses is refused whole, the server goes on"
stop_server "$SERVER_PID"

# The default file: read when it exists ($SXFER_SERVE_CONFIG stands for
# /etc/sxfer/serve.conf), not when it does not, never with --no-config or
# --config none.
export SXFER_SERVE_CONFIG=$WORK/default.conf
start_server b --id "$WORK/server" --out "$WORK/out-b"
grep -q 'event=config ' "$WORK/b.log" && fail "a configuration read though none exists"
stop_server "$SERVER_PID"
printf 'max-conns = 3\nmax-conns-per-devic = 1\n' >"$SXFER_SERVE_CONFIG"
expect_exit 2 "$SXFER" serve --listen 127.0.0.1:0 --id "$WORK/server" --out "$WORK/out-b"
grep -q "default.conf:2: unknown key 'max-conns-per-devic'" "$WORK/last.err" ||
	fail "the default file was not read: $(cat "$WORK/last.err")"
start_server c --id "$WORK/server" --out "$WORK/out-b" --no-config
start_server d --id "$WORK/server" --out "$WORK/out-d" --config none
sed -i 's/devic /device /' "$SXFER_SERVE_CONFIG"
start_server e --id "$WORK/server" --out "$WORK/out-e"
grep -q 'event=listen .* max_conns=3 ' "$WORK/e.log" || fail "the default file's max-conns not used"
ok "the default file is read when it exists, and only then; --no-config and --config none ignore it"
