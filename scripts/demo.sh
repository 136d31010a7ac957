#!/usr/bin/env bash
# Builds sxfer and runs the demo on loopback in a temporary folder: a CA, a
# server identity, a device enrolled through `sxfer ca serve` with a one-time
# token, `sxfer serve`, `sxfer send` of a sample file
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
ca_pid=""
cleanup() {
	for pid in $server_pid $ca_pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
# await PID PORTFILE LOG: up to 10 s for a server to listen (it writes its
# port once it does).
await() {
	for _ in $(seq 1 200); do
		[ -s "$2" ] && return 0
		kill -0 "$1" 2>/dev/null || { cat "$3" >&2; echo "demo: a server exited" >&2; exit 1; }
		sleep 0.05
	done
	cat "$3" >&2
	echo "demo: a server did not start" >&2
	exit 1
}
trap cleanup EXIT
export SXFER_PASSPHRASE=demo-passphrase
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
set -x
"$sx" ca init --ca "$work/ca" --name "sxfer demo CA"
"$sx" ca issue --ca "$work/ca" --name server.local --role server --dns localhost --ip 127.0.0.1 --out "$work/server"
"$sx" id show --id "$work/server"
{ set +x; } 2>/dev/null
# The camera enrolls: the CA's enrollment service, a one-time token, and the
# camera's own key, made where it lives; the root is pinned by fingerprint.
"$sx" ca serve --ca "$work/ca" --listen 127.0.0.1:0 --port-file "$work/ca-port" --id "$work/server" \
	2>"$work/ca-serve.log" &
ca_pid=$!
await "$ca_pid" "$work/ca-port" "$work/ca-serve.log"
fp=$("$sx" ca show --ca "$work/ca" | sed -n 's/^ *SHA-256: *//p')
set -x
"$sx" ca token --ca "$work/ca" --name camera-01 >"$work/camera.token"
"$sx" enroll --ca-fingerprint "$fp" --token-file "$work/camera.token" --server-name localhost \
	"127.0.0.1:$(cat "$work/ca-port")" --out "$work/camera"
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
await "$server_pid" "$work/port" "$work/serve.log"
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
kill -TERM "$server_pid" "$ca_pid"
wait "$server_pid"
wait "$ca_pid"
server_pid="" ca_pid=""
echo "--- enrollment service log"
cat "$work/ca-serve.log"
echo "--- server log"
cat "$work/serve.log"
echo "demo: both directions verified byte for byte, signatures and receipts verified"
