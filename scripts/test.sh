#!/usr/bin/env bash
# Builds sxfer with ASan + UBSan and runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
# The optimised build first: -O2 warnings (-Werror) that a debug build misses
# would break the demo command.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target sxfer
cmake -S . -B build-test -DSXFER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
ctest --output-on-failure -j2 "$@"
