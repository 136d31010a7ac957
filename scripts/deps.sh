#!/usr/bin/env bash
# Installs the Debian packages sxfer needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt-get runs only when
# something is missing. Usage: scripts/deps.sh [build|test|bench]
set -euo pipefail
what=${1:-build}
# scdoc: the man pages (built when it is there; the build skips them without it).
pkgs=(build-essential cmake pkg-config libssl-dev openssl liburing-dev libzstd-dev
      libsqlite3-dev scdoc)
case "$what" in
# adduser, dpkg-dev: the .deb of tests/e2e/test_package.sh (its maintainer scripts,
# dpkg-shlibdeps); systemd: systemd-analyze for test_units.sh (it does not
# become the init system); python3-seccomp: the units' system-call filter tried
# on the real binary.
test) pkgs+=(libcmocka-dev python3 python3-cryptography procps iproute2 clang-format e2fsprogs
      clang libclang-rt-14-dev adduser dpkg-dev systemd python3-seccomp
      prometheus) ;; # prometheus: promtool (test_metrics.sh)
bench) pkgs+=(libcmocka-dev libbenchmark-dev g++ python3 openssh-server openssh-client
             nginx-light curl rsync iproute2 procps time bc) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq </dev/null
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
