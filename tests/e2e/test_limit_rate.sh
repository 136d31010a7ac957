#!/usr/bin/env bash
# sxfer send --limit-rate: a token bucket where sealed records are handed to
# the socket. 100 MiB at --limit-rate 10M (10 MiB/s) takes 10 s of wall time
# within 10% (the handshake and the receipt are tolerated inside that
# margin); the file arrives whole; a slow rate does not stall; sxfer get
# --limit-rate holds the server to it by reading at the rate; a bad rate is
# a usage error.
source "$(dirname "$0")/lib.sh"
make_pki
mkdir -p "$WORK/out"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
mkdir -p "$WORK/export/shared"
head -c $((40 * 1024 * 1024)) /dev/urandom >"$WORK/export/shared/fw.bin"
start_server srv --id "$WORK/server" --out "$WORK/out" --export "$WORK/export"

# The same work without a limit: on a machine too busy to do it in well
# under a second, the upper bound grows by that time (the limit can only
# slow a send down; it must never make it faster than the rate).
slack() {
	local free=$1
	[ "$free" -le 1000 ] && echo 0 && return
	echo "(the machine is busy: the same work took $free ms unlimited)" >&2
	echo "$free"
}
cp "$WORK/big.bin" "$WORK/free.bin"
t0=$(now_ms)
expect_exit 0 "$SXFER" send --id "$WORK/cam" --quiet --compress off "127.0.0.1:$PORT" \
	"$WORK/free.bin"
extra=$(slack $(($(now_ms) - t0)))
t0=$(now_ms)
expect_exit 0 "$SXFER" send --id "$WORK/cam" --quiet --limit-rate 10M --compress off \
	"127.0.0.1:$PORT" "$WORK/big.bin"
ms=$(($(now_ms) - t0))
echo "100 MiB at --limit-rate 10M: $ms ms"
[ "$ms" -ge 9000 ] && [ "$ms" -le $((11000 + extra)) ] ||
	fail "took $ms ms, expected 10000 +- 10%"
cmp "$WORK/big.bin" "$WORK/out/cam-01/big.bin" || fail "big.bin differs"
ok "--limit-rate 10M: 100 MiB in $ms ms, byte-identical"

# A slow rate takes small records (a quarter of a second each), so the
# receiver sees no long silence: 256 KiB at 64K/s is about 4 s.
head -c $((256 * 1024)) /dev/urandom >"$WORK/small.bin"
t0=$(now_ms)
expect_exit 0 "$SXFER" send --id "$WORK/cam" --quiet --limit-rate 64K --timeout 2 \
	"127.0.0.1:$PORT" "$WORK/small.bin"
ms=$(($(now_ms) - t0))
[ "$ms" -ge 3000 ] && [ "$ms" -le 6000 ] || fail "256 KiB at 64K/s took $ms ms"
cmp "$WORK/small.bin" "$WORK/out/cam-01/small.bin" || fail "small.bin differs"
ok "--limit-rate 64K with --timeout 2: 256 KiB in $ms ms"

mkdir -p "$WORK/got" "$WORK/free"
t0=$(now_ms)
expect_exit 0 "$SXFER" get --id "$WORK/cam" --quiet "127.0.0.1:$PORT" shared/fw.bin "$WORK/free"
extra=$(slack $(($(now_ms) - t0)))
t0=$(now_ms)
expect_exit 0 "$SXFER" get --id "$WORK/cam" --quiet --limit-rate 8M "127.0.0.1:$PORT" \
	shared/fw.bin "$WORK/got"
ms=$(($(now_ms) - t0))
echo "get of 40 MiB at --limit-rate 8M: $ms ms"
[ "$ms" -ge 4500 ] && [ "$ms" -le $((5500 + extra)) ] ||
	fail "get took $ms ms, expected 5000 +- 10%"
cmp "$WORK/export/shared/fw.bin" "$WORK/got/fw.bin" || fail "fw.bin differs"
ok "get --limit-rate 8M: 40 MiB in $ms ms, byte-identical"

expect_exit 2 "$SXFER" get --id "$WORK/cam" --limit-rate 1 "127.0.0.1:$PORT" shared/fw.bin "$WORK/got"
expect_exit 2 "$SXFER" send --id "$WORK/cam" --limit-rate 100 "127.0.0.1:$PORT" "$WORK/small.bin"
expect_exit 2 "$SXFER" send --id "$WORK/cam" --limit-rate x "127.0.0.1:$PORT" "$WORK/small.bin"
ok "a bad --limit-rate: exit 2"
stop_server "$SERVER_PID"
