#!/usr/bin/env bash
# The Debian package: configured with the prefix /usr in a build folder of
# its own under WORK, `cpack -G DEB` makes sxfer_<version>_<arch>.deb, whose
# dependencies come from dpkg-shlibdeps; `dpkg -i` installs it on this
# machine: /usr/bin/sxfer runs, the man pages and units are there, the sxfer
# system user and group exist (HOME=/nonexistent), /var/lib/sxfer belongs to
# them, no unit is enabled; `dpkg --remove` keeps the example configuration
# (conffiles) and `dpkg --purge` leaves no file, folder, user or group.
#
# It changes this machine while it runs, so it runs only as root with dpkg,
# never where sxfer is already installed (or its user or folders exist), one
# run at a time, and purges the package on every exit (trap).
source "$(dirname "$0")/lib.sh"
src=$(cd "$E2E_DIR/../.." && pwd)
want=$(tr -d '[:space:]' <"$src/VERSION")

skip() {
	echo "skip - $*"
	exit 77
}
[ "$(id -u)" -eq 0 ] || skip "not root: dpkg -i needs it"
for t in dpkg dpkg-deb dpkg-query dpkg-shlibdeps cpack cmake flock; do
	command -v "$t" >/dev/null || skip "no $t"
done
# One run at a time on this machine (the package and the user are global):
# an flock on dpkg's folder, which leaves no lock file behind (dpkg itself
# locks files inside it with fcntl, which this does not touch).
exec 9</var/lib/dpkg
flock -w 600 9 || skip "another test_package run holds the lock"
# pkg_state: the package's state as dpkg knows it (installed, config-files,
# half-installed...), or not-installed.
pkg_state() {
	local st
	st=$(dpkg-query -W -f='${Status}' sxfer 2>/dev/null) || st="unknown ok not-installed"
	echo "${st##* }"
}
[ "$(pkg_state)" = not-installed ] || skip "a package sxfer is known to dpkg here ($(pkg_state)): not touching it"
for p in /usr/bin/sxfer /var/lib/sxfer /etc/sxfer; do
	[ ! -e "$p" ] || skip "$p exists: sxfer is installed here otherwise"
done
getent passwd sxfer >/dev/null && skip "a user sxfer exists already"
getent group sxfer >/dev/null && skip "a group sxfer exists already"

# dpkg ACTION...: dpkg, waiting up to 120 s while another dpkg or apt holds
# its lock.
dpkg_wait() {
	local deadline=$(($(now_ms) + 120000))
	while :; do
		if DEBIAN_FRONTEND=noninteractive dpkg "$@" >"$WORK/dpkg.out" 2>&1 </dev/null; then
			return 0
		fi
		grep -qi "lock" "$WORK/dpkg.out" && [ "$(now_ms)" -lt "$deadline" ] || {
			cat "$WORK/dpkg.out" >&2
			return 1
		}
		sleep 1
	done
}
purge_pkg() {
	if [ "$(pkg_state)" != not-installed ]; then
		dpkg_wait --purge sxfer || echo "WARNING: dpkg --purge sxfer failed" >&2
	fi
}
trap 'purge_pkg; cleanup' EXIT
trap 'exit 143' TERM INT

# The package of the binary under test (SXFER_PREBUILT: nothing is
# compiled), from a build folder of its own configured with the prefix /usr.
# SX_PACKAGE_FROM_SOURCE=1 compiles a release build there instead, as a
# packager does (a minute or two on two cores).
b="$WORK/build"
t0=$(now_ms)
if [ "${SX_PACKAGE_FROM_SOURCE:-0}" = 1 ]; then
	how=(-DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF -DSXFER_WERROR=ON
		-DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON)
else
	how=(-DSXFER_PREBUILT="$SXFER")
fi
cmake -S "$src" -B "$b" -DCMAKE_INSTALL_PREFIX=/usr "${how[@]}" >"$WORK/cfg.log" 2>&1 ||
	{ cat "$WORK/cfg.log" >&2; fail "configure failed"; }
cmake --build "$b" -j2 >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; fail "build failed"; }
(cd "$b" && cpack -G DEB) >"$WORK/cpack.log" 2>&1 || { cat "$WORK/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$b"/sxfer_"$want"_*.deb 2>/dev/null | head -n1)
[ -f "$deb" ] || { cat "$WORK/cpack.log" >&2; fail "no sxfer_${want}_*.deb"; }
ok "cpack -G DEB: $(basename "$deb") in $((($(now_ms) - t0) / 1000)) s"

# Its control data: the libraries' packages found by dpkg-shlibdeps, adduser
# for the user, the maintainer scripts and the conffiles.
deps=$(dpkg-deb -f "$deb" Depends)
for d in adduser libc6 libssl3 liburing libzstd libsqlite3; do
	[[ $deps == *"$d"* ]] || fail "Depends has no $d: $deps"
done
dpkg-deb -e "$deb" "$WORK/control"
for f in postinst prerm postrm conffiles; do
	[ -f "$WORK/control/$f" ] || fail "no $f in the package"
done
grep -qx /etc/sxfer/serve.conf.example "$WORK/control/conffiles" || fail "serve.conf.example is no conffile"
ok "Depends: $deps"

dpkg_wait -i "$deb" || fail "dpkg -i failed"
mapfile -t files < <(dpkg-query -L sxfer)
expect_exit 0 /usr/bin/sxfer --version
[ "$(head -n1 "$WORK/last.out")" = "sxfer $want" ] || fail "/usr/bin/sxfer --version: $(head -n1 "$WORK/last.out")"
ok "dpkg -i; /usr/bin/sxfer --version: sxfer $want"

units=(sxfer-serve.service sxfer-ca.service sxfer-agent@.service sxfer-renew.service sxfer-renew.timer)
for u in "${units[@]}"; do
	[ -f "/usr/lib/systemd/system/$u" ] || [ -f "/lib/systemd/system/$u" ] || fail "unit $u not installed"
	if ls /etc/systemd/system/*.wants/"$u" >/dev/null 2>&1; then
		fail "unit $u is enabled"
	fi
done
pages=(sxfer sxfer-serve sxfer-send sxfer-get sxfer-ls sxfer-ca sxfer-id sxfer-enroll sxfer-renew
	sxfer-crl sxfer-sign sxfer-verify sxfer-ledger sxfer-bench sxfer-agent)
# A minimal image may tell dpkg to leave man pages out (path-exclude).
man_excluded=no
if cat /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/* 2>/dev/null | grep -q '^path-exclude.*/usr/share/man'; then
	man_excluded=yes
fi
if [ "$man_excluded" = yes ]; then
	echo "note - dpkg excludes /usr/share/man here: man pages not checked"
elif grep -q "man page" "$WORK/build.log"; then
	for p in "${pages[@]}"; do
		[ -f "/usr/share/man/man1/$p.1.gz" ] || fail "no man page $p(1)"
	done
	if command -v man >/dev/null; then
		[ "$(man -w sxfer-serve)" = /usr/share/man/man1/sxfer-serve.1.gz ] ||
			fail "man -w sxfer-serve: $(man -w sxfer-serve 2>&1)"
	fi
else
	echo "note - built without scdoc: no man pages to check"
fi
[ -f /usr/share/bash-completion/completions/sxfer ] || fail "no bash completion"
for f in serve.conf.example agent.conf.example renew.env.example ca.env.example; do
	[ -f "/etc/sxfer/$f" ] || fail "no /etc/sxfer/$f"
done
ok "units (none enabled), ${#pages[@]} man pages, completion, /etc/sxfer examples"

IFS=: read -r _ _ uid gid _ home shell < <(getent passwd sxfer) || fail "no user sxfer"
[ "$uid" -lt 1000 ] || fail "sxfer is not a system user (uid $uid)"
[ "$(getent group sxfer | cut -d: -f3)" = "$gid" ] || fail "sxfer's group is not sxfer"
[ "$home" = /nonexistent ] || fail "sxfer's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "sxfer's shell is $shell"
[ "$(stat -c '%U:%G %a' /var/lib/sxfer)" = "sxfer:sxfer 750" ] ||
	fail "/var/lib/sxfer is $(stat -c '%U:%G %a' /var/lib/sxfer)"
ok "system user and group sxfer (uid $uid, /nonexistent, nologin), /var/lib/sxfer sxfer:sxfer 0750"

# The service user runs it.
expect_exit 0 runuser -u sxfer -- /usr/bin/sxfer --version

dpkg_wait --remove sxfer || fail "dpkg --remove failed"
[ ! -e /usr/bin/sxfer ] || fail "/usr/bin/sxfer left after remove"
[ -f /etc/sxfer/serve.conf.example ] || fail "remove did not keep the conffiles"
getent passwd sxfer >/dev/null || fail "remove took the user away (only purge should)"
dpkg_wait --purge sxfer || fail "dpkg --purge failed"
left=()
for f in "${files[@]}"; do
	case $f in
	/. | /etc | /usr | /usr/bin | /usr/lib | /usr/lib/systemd | /usr/lib/systemd/system | /usr/share | \
		/usr/share/man | /usr/share/man/man1 | /usr/share/doc | /usr/share/bash-completion | \
		/usr/share/bash-completion/completions) ;;
	*) [ ! -e "$f" ] || left+=("$f") ;;
	esac
done
for f in /etc/sxfer /var/lib/sxfer; do
	[ ! -e "$f" ] || left+=("$f")
done
((${#left[@]} == 0)) || fail "left after purge: ${left[*]}"
! getent passwd sxfer >/dev/null || fail "user sxfer left after purge"
! getent group sxfer >/dev/null || fail "group sxfer left after purge"
[ "$(pkg_state)" = not-installed ] || fail "dpkg still has sxfer after purge: $(pkg_state)"
ok "remove keeps the conffiles and the user; purge leaves no file, user or group"
