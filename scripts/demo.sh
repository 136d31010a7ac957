#!/usr/bin/env bash
# Builds sxfer and runs the demo in a temporary folder: a CA, a server and a
# device identity, shown with `sxfer id show`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target sxfer
sx=$PWD/build/sxfer
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SXFER_PASSPHRASE=demo-passphrase
set -x
"$sx" ca init --ca "$work/ca" --name "sxfer demo CA"
"$sx" ca issue --ca "$work/ca" --name server.local --role server --dns localhost --ip 127.0.0.1 --out "$work/server"
"$sx" ca issue --ca "$work/ca" --name camera-01 --role client --out "$work/camera"
"$sx" id show --id "$work/server"
"$sx" id show --id "$work/camera"
"$sx" ca list --ca "$work/ca"
