#!/usr/bin/env bash
# Builds sxfer with ASan + UBSan and runs every unit, end-to-end and style
# test, then builds the libFuzzer targets with clang and runs each briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
# The optimised build first: -O2 warnings (-Werror) that a debug build misses
# would break the demo command.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF -DSXFER_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target sxfer
cmake -S . -B build-test -DSXFER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DSXFER_WERROR=ON >/dev/null
cmake --build build-test -j"$(nproc)"
(cd build-test && ctest --output-on-failure -j2 "$@")
# The fuzz targets: a clang build of their own (libFuzzer), each target run
# for a few seconds so that none rots (tests/fuzz/run.sh --long for more).
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSXFER_FUZZ=ON -DSXFER_TESTS=OFF -DSXFER_WERROR=ON \
	-DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc)"
cd build-fuzz
ctest --output-on-failure -j2 "$@"
