#!/usr/bin/env bash
# The systemd units as installed (dist/systemd): `systemd-analyze verify`
# passes on each, their ExecStart is the installed binary, and the
# system-call filter of sxfer-serve.service and sxfer-agent@.service keeps
# io_uring working: the real `sxfer serve` and `sxfer send` run under that
# filter (python3-seccomp, every other call failing with EPERM as the unit
# says) and move a file with --io uring, and the same run without the
# io_uring calls fails, so the filter is really in force.
#
# Where systemd is the init system the units could be started for real; the
# test does not need it (systemd-analyze reads unit files, the filter is
# applied by this test as systemd would). Skipped (77) without
# systemd-analyze, cmake or the build folder's install rules.
source "$(dirname "$0")/lib.sh"
build=${SX_BUILD_DIR:-$(dirname "$SXFER")}
if ! command -v systemd-analyze >/dev/null || ! command -v cmake >/dev/null ||
	[ ! -f "$build/cmake_install.cmake" ]; then
	echo "skip - needs systemd-analyze, cmake and the build folder's install rules"
	exit 77
fi

# Installed into a folder of its own: DESTDIR under WORK, the build's prefix.
root="$WORK/root"
DESTDIR="$root" cmake --install "$build" >"$WORK/install.log" 2>&1 ||
	{ cat "$WORK/install.log" >&2; fail "cmake --install failed"; }
unitdir=$(find "$root" -path '*/systemd/system' -type d | head -n1)
[ -n "$unitdir" ] || fail "no systemd/system folder installed under $root"
bin=$(find "$root" -path '*/bin/sxfer' -type f | head -n1)
[ -x "$bin" ] || fail "no bin/sxfer installed under $root"
binpath=${bin#"$root"} # where the units expect it
units=(sxfer-serve.service sxfer-ca.service sxfer-agent@.service sxfer-renew.service
	sxfer-renew.timer)

# systemd-analyze verify checks that each command exists, and, for the
# man: links of Documentation=, that man finds the page: the copies verified
# name the binary under DESTDIR, and MANPATH is the installed man folder.
mkdir -p "$WORK/units"
for u in "${units[@]}"; do
	[ -f "$unitdir/$u" ] || fail "$u is not installed"
	if [[ $u == *.service ]]; then
		grep -q "^ExecStart=$binpath " "$unitdir/$u" ||
			fail "$u: ExecStart is not the installed binary $binpath"
	fi
	sed "s|$binpath|$bin|g" "$unitdir/$u" >"$WORK/units/$u"
done
man_ok=no
if command -v man >/dev/null && [ -d "$root${binpath%/bin/sxfer}/share/man/man1" ]; then
	man_ok=yes
fi
for u in "${units[@]}"; do
	rc=0
	MANPATH="$root${binpath%/bin/sxfer}/share/man" systemd-analyze verify --man="$man_ok" \
		"$WORK/units/$u" >"$WORK/verify.out" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ] || [ -s "$WORK/verify.out" ]; then
		cat "$WORK/verify.out" >&2
		fail "systemd-analyze verify $u: exit $rc"
	fi
done
ok "systemd-analyze verify: ${units[*]} (man pages checked: $man_ok)"

# Each hardening choice the docs explain is in the serve unit.
for want in "User=sxfer" "StateDirectory=sxfer" "ConfigurationDirectory=sxfer" \
	"LoadCredential=passphrase:" "ExecReload=/bin/kill -HUP \$MAINPID" "NoNewPrivileges=yes" \
	"ProtectSystem=strict" "ReadWritePaths=" "PrivateTmp=yes" "CapabilityBoundingSet=" \
	"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" "SystemCallFilter=@system-service" \
	"LimitNOFILE=" "Restart=on-failure"; do
	grep -q "^$want" "$unitdir/sxfer-serve.service" || fail "sxfer-serve.service has no $want"
done
grep -q -- '--pass-file ${CREDENTIALS_DIRECTORY}/passphrase' "$unitdir/sxfer-serve.service" ||
	fail "sxfer-serve.service does not read the passphrase from its credential"
grep -q "^Persistent=true" "$unitdir/sxfer-renew.timer" || fail "the timer is not Persistent"
grep -q "^RandomizedDelaySec=" "$unitdir/sxfer-renew.timer" || fail "the timer has no random delay"
ok "sxfer-serve.service carries each documented setting"

# io_uring under the units' filter.
py=/usr/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import seccomp' 2>/dev/null; then
	echo "skip - the system-call filter: no python3-seccomp for $py"
	exit 0
fi
# The leak checker of a sanitizer build stops the world with ptrace, which no
# service filter allows; the filter is what is tested here.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
# filtered UNIT [--drop CALL]... -- COMMAND...: in the foreground only (in
# the background the server's PID must be its own: see below).
filtered() {
	local unit=$1
	shift
	"$py" "$E2E_DIR/unit_seccomp.py" "$unitdir/$unit" "$@"
}
make_pki
rand_file "$WORK/clip.bin" 3000000
rm -f "$WORK/srv.port"
# The helper execs the server: $! is the server's PID.
"$py" "$E2E_DIR/unit_seccomp.py" "$unitdir/sxfer-serve.service" -- "$SXFER" serve --listen 127.0.0.1:0 --port-file "$WORK/srv.port" \
	--id "$WORK/server" --out "$WORK/out" --io uring 2>"$WORK/srv.log" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
await_port srv "$SERVER_PID"
grep -q "event=listen .*io=io_uring" "$WORK/srv.log" ||
	{ cat "$WORK/srv.log" >&2; fail "serve under the unit's filter does not listen on io_uring"; }
expect_exit 0 filtered sxfer-agent@.service -- "$SXFER" send --id "$WORK/cam" --quiet --io uring \
	--receipts "$WORK/receipts" "127.0.0.1:$PORT" "$WORK/clip.bin"
cmp -s "$WORK/clip.bin" "$WORK/out/cam-01/clip.bin" || fail "the file sent under the filter differs"
[ "$(log_count "$WORK/srv.log" "event=file_stored")" -eq 1 ] || fail "no file_stored line"
ok "serve and send under the units' SystemCallFilter: a transfer on io_uring"

# The same without io_uring's calls: --io uring cannot start.
expect_exit 1 filtered sxfer-agent@.service --drop io_uring_setup --drop io_uring_enter \
	--drop io_uring_register -- "$SXFER" send --id "$WORK/cam" --quiet --io uring \
	--receipts "$WORK/receipts" "127.0.0.1:$PORT" "$WORK/clip.bin"
grep -q "io_uring" "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "no io_uring error"; }
ok "without io_uring_setup/enter/register in the filter, --io uring fails (the filter is in force)"
stop_server "$SERVER_PID"
