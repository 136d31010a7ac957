# --compress on, auto and a level: a compressible log and a random file arrive
# byte-identical and verify against their .sxsig (the Merkle roots are over the
# uncompressed bytes); the JSON summary shows fewer bytes on the wire for the
# log and about the same for the random file with auto; a stream from
# standard input with --compress auto.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

make_pki
start_server srv --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
OUT=$WORK/out/cam-01
send() { "$SXFER" send --id "$WORK/cam" --json "127.0.0.1:$PORT" "$@"; }
# json_num FILE KEY
json_num() { grep -o "\"$2\":[0-9]*" "$1" | head -n 1 | cut -d: -f2; }

# A 20 MiB log: repetitive lines with varying numbers, as a service writes.
(awk 'BEGIN { srand(7); for (i = 0; i < 250000; i++)
	printf "2026-11-22T03:%02d:%02d.%06d host-%02d sxfer[%d]: event=chunk conn=%d file_id=%d bytes=%d status=%s\n",
		(i / 60000) % 60, (i / 1000) % 60, i % 1000000, i % 17, 1000 + i % 7, i % 64,
		int(i / 100), int(rand() * 1048576), (i % 97 ? "ok" : "retry") }' || true) |
	head -c $((20 << 20)) >"$WORK/app.log"
[ "$(stat -c %s "$WORK/app.log")" -eq $((20 << 20)) ] || fail "log generator made too little"
rand_file "$WORK/media.bin" $((8 << 20))

check() { # check MODE NAME SRC
	local mode=$1 name=$2 src=$3
	mkdir -p "$WORK/src-$mode"
	cp "$src" "$WORK/src-$mode/$name"
	send --compress "$mode" "$WORK/src-$mode/$name" >"$WORK/$mode-$name.json" ||
		{ cat "$WORK/$mode-$name.json" >&2; fail "--compress $mode $name failed"; }
	cmp "$src" "$OUT/$name" || fail "--compress $mode: $name differs"
	(cd "$OUT" && "$SXFER" verify --ca "$WORK/ca" --signer cam-01 "$name") >"$WORK/verify.out" ||
		{ cat "$WORK/verify.out" >&2; fail "--compress $mode: $name does not verify"; }
	rm -f "$OUT/$name" "$OUT/$name.sxsig"
}

for mode in on auto 5; do
	check "$mode" app.log "$WORK/app.log"
	wire=$(json_num "$WORK/$mode-app.log.json" compressed_bytes)
	bytes=$(json_num "$WORK/$mode-app.log.json" bytes)
	[ "$bytes" -eq $((20 << 20)) ] || fail "--compress $mode: bytes $bytes"
	[ "$wire" -lt $((bytes / 2)) ] || fail "--compress $mode: log not compressed ($wire of $bytes)"
	ok "--compress $mode: 20 MiB log byte-identical, verifies, $wire bytes on the wire"

	check "$mode" media.bin "$WORK/media.bin"
	wire=$(json_num "$WORK/$mode-media.bin.json" compressed_bytes)
	[ "$wire" -eq $((8 << 20)) ] || fail "--compress $mode: random file grew or shrank on the wire ($wire)"
	ok "--compress $mode: random file byte-identical, verifies, sent as it is"
done

# auto tries the random file's first record only (then every 64th).
n=$(json_num "$WORK/auto-media.bin.json" compressed_records)
[ "$n" -eq 0 ] || fail "auto compressed $n records of a random file"

# off: nothing compressed, the wire carries the file bytes.
check off app.log "$WORK/app.log"
[ "$(json_num "$WORK/off-app.log.json" compressed_bytes)" -eq $((20 << 20)) ] || fail "off compressed"
ok "--compress off: sent as it is"

# A stream from standard input, in small records, with auto.
cat "$WORK/app.log" "$WORK/media.bin" "$WORK/app.log" |
	send --compress auto --chunk 256K --name mixed.stream - >"$WORK/stream.json" ||
	{ cat "$WORK/stream.json" >&2; fail "stream failed"; }
cat "$WORK/app.log" "$WORK/media.bin" "$WORK/app.log" | cmp - "$OUT/mixed.stream" || fail "stream differs"
(cd "$OUT" && "$SXFER" verify --ca "$WORK/ca" --signer cam-01 mixed.stream) >/dev/null ||
	fail "stream does not verify"
wire=$(json_num "$WORK/stream.json" compressed_bytes)
[ "$wire" -lt $((30 << 20)) ] || fail "stream with auto not compressed ($wire)"
ok "--compress auto: a stream from standard input ($wire bytes on the wire for 48 MiB)"

# Usage errors.
expect_exit 2 "$SXFER" send --id "$WORK/cam" --compress 20 "127.0.0.1:$PORT" "$WORK/app.log"
expect_exit 2 "$SXFER" send --id "$WORK/cam" --compress fast "127.0.0.1:$PORT" "$WORK/app.log"
ok "--compress: bad values refused"

no_partials "$WORK/out"
stop_server "$SRV"
