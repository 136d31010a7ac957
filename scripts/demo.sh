#!/usr/bin/env bash
# Builds sxfer and runs the demo on loopback in a temporary folder: a CA, a
# server and a device identity, `sxfer serve`, `sxfer send` of a sample file
# and of a folder (signed), a byte comparison of what arrived, and the offline
# check of the signatures and of the receipt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSXFER_TESTS=OFF -DSXFER_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target sxfer
sx=$PWD/build/sxfer
work=$(mktemp -d)
server_pid=""
cleanup() {
	[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
	[ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
export SXFER_PASSPHRASE=demo-passphrase
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
set -x
"$sx" ca init --ca "$work/ca" --name "sxfer demo CA"
"$sx" ca issue --ca "$work/ca" --name server.local --role server --dns localhost --ip 127.0.0.1 --out "$work/server"
"$sx" ca issue --ca "$work/ca" --name camera-01 --role client --out "$work/camera"
"$sx" id show --id "$work/server"
"$sx" id show --id "$work/camera"
{ set +x; } 2>/dev/null
mkdir -p "$work/media/2026-11-22"
head -c $((64 << 20)) /dev/urandom >"$work/media/clip-0001.mp4"
for i in 1 2 3; do head -c 300000 /dev/urandom >"$work/media/2026-11-22/img-$i.jpg"; done
# What the server offers for download: a firmware image every camera may fetch.
mkdir -p "$work/export/shared"
head -c $((8 << 20)) /dev/urandom >"$work/export/shared/firmware-2.1.bin"
"$sx" serve --listen 127.0.0.1:0 --port-file "$work/port" --id "$work/server" --out "$work/received" \
	--export "$work/export" \
	2>"$work/serve.log" &
server_pid=$!
# Up to 10 s for the server to listen (it writes its port once it does).
for _ in $(seq 1 200); do
	[ -s "$work/port" ] && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "demo: the server exited" >&2; exit 1; }
	sleep 0.05
done
[ -s "$work/port" ] || { cat "$work/serve.log" >&2; echo "demo: the server did not start" >&2; exit 1; }
port=$(cat "$work/port")
set -x
"$sx" send --id "$work/camera" --receipts "$work/receipts" "127.0.0.1:$port" \
	"$work/media/clip-0001.mp4" "$work/media/2026-11-22"
cmp "$work/media/clip-0001.mp4" "$work/received/camera-01/clip-0001.mp4"
diff -r -x '*.sxsig' "$work/media/2026-11-22" "$work/received/camera-01/2026-11-22"
"$sx" verify --ca "$work/ca" --signer camera-01 "$work/received/camera-01/clip-0001.mp4" \
	"$work/received/camera-01/2026-11-22/"*.jpg
"$sx" verify --receipt "$work/receipts/"*.sxreceipt --ca "$work/ca"
# The other direction: the camera lists and fetches; the server signs what it sends.
"$sx" ls --id "$work/camera" "127.0.0.1:$port" shared
"$sx" get --id "$work/camera" "127.0.0.1:$port" shared/firmware-2.1.bin "$work/downloads"
cmp "$work/export/shared/firmware-2.1.bin" "$work/downloads/firmware-2.1.bin"
"$sx" verify --ca "$work/ca" --signer server.local "$work/downloads/firmware-2.1.bin"
{ set +x; } 2>/dev/null
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
echo "--- server log"
cat "$work/serve.log"
echo "demo: both directions verified byte for byte, signatures and receipts verified"
