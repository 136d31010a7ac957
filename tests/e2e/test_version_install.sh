#!/usr/bin/env bash
# `sxfer --version` names the version of the VERSION file and the OpenSSL and
# liburing it runs with; `cmake --install` of the build that made this binary
# puts bin/sxfer under the prefix, and the installed binary runs.
source "$(dirname "$0")/lib.sh"
root=$(cd "$E2E_DIR/../.." && pwd)
want=$(tr -d '[:space:]' <"$root/VERSION")

expect_exit 0 "$SXFER" --version
mapfile -t lines <"$WORK/last.out"
[ "${#lines[@]}" -eq 3 ] || { cat "$WORK/last.out" >&2; fail "--version: expected 3 lines"; }
[ "${lines[0]}" = "sxfer $want" ] || fail "--version: '${lines[0]}', not 'sxfer $want'"
[[ "${lines[1]}" =~ ^OpenSSL\ 3\.[0-9]+\.[0-9]+ ]] || fail "--version: no OpenSSL 3 version: '${lines[1]}'"
[[ "${lines[2]}" =~ ^liburing\ [0-9]+\.[0-9]+ ]] || fail "--version: no liburing version: '${lines[2]}'"
expect_exit 0 "$SXFER" help
grep -q -- "--version" "$WORK/last.out" || fail "the overview does not mention --version"
ok "sxfer --version: ${lines[*]}"

# The install rules of the build folder that holds this binary (ctest sets
# SX_BUILD_DIR; run by hand, the binary's own folder is tried).
build=${SX_BUILD_DIR:-$(dirname "$SXFER")}
if ! command -v cmake >/dev/null || [ ! -f "$build/cmake_install.cmake" ]; then
	echo "skip - install: no cmake, or no build folder with install rules at $build"
	exit 77
fi
cmake --install "$build" --prefix "$WORK/prefix" >"$WORK/install.log" 2>&1 ||
	{ cat "$WORK/install.log" >&2; fail "cmake --install failed"; }
[ -x "$WORK/prefix/bin/sxfer" ] || { cat "$WORK/install.log" >&2; fail "no bin/sxfer under the prefix"; }
expect_exit 0 "$WORK/prefix/bin/sxfer" --version
[ "$(head -n1 "$WORK/last.out")" = "sxfer $want" ] || fail "installed binary: $(head -n1 "$WORK/last.out")"
ok "cmake --install --prefix: bin/sxfer installed and runs"
