#!/usr/bin/env bash
# sxfer send --limit-rate: a token bucket where sealed records are handed to
# the socket. 100 MiB at --limit-rate 10M (10 MiB/s) takes 10 s of wall time
# within 10% (the handshake and the receipt are tolerated inside that
# margin); the file arrives whole; a bad rate is a usage error.
source "$(dirname "$0")/lib.sh"
make_pki
mkdir -p "$WORK/out"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
start_server srv --id "$WORK/server" --out "$WORK/out"

t0=$(now_ms)
expect_exit 0 "$SXFER" send --id "$WORK/cam" --quiet --limit-rate 10M --compress off \
	"127.0.0.1:$PORT" "$WORK/big.bin"
t1=$(now_ms)
ms=$((t1 - t0))
echo "100 MiB at --limit-rate 10M: $ms ms"
[ "$ms" -ge 9000 ] && [ "$ms" -le 11000 ] || fail "took $ms ms, expected 10000 +- 10%"
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

expect_exit 2 "$SXFER" send --id "$WORK/cam" --limit-rate 100 "127.0.0.1:$PORT" "$WORK/small.bin"
expect_exit 2 "$SXFER" send --id "$WORK/cam" --limit-rate x "127.0.0.1:$PORT" "$WORK/small.bin"
ok "a bad --limit-rate: exit 2"
stop_server "$SERVER_PID"
