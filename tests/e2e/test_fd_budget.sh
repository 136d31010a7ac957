#!/usr/bin/env bash
# Descriptors on the receiver: the soft limit is raised to the hard one at
# start; one connection holds at most its share (a file's temporary is closed
# once flushed, and files waiting for their batch signature hold none), so a
# sender of thousands of files under a small limit neither fails them with
# "Too many open files" nor starves a second sender.
source "$(dirname "$0")/lib.sh"
make_pki

# fd_sampler PID OUTFILE: the most descriptors PID held, sampled every 20 ms
fd_sampler() {
	local pid=$1 out=$2 max=0 n
	while kill -0 "$pid" 2>/dev/null; do
		n=$(ls /proc/"$pid"/fd 2>/dev/null | wc -l)
		[ "$n" -gt "$max" ] && { max=$n; echo "$max" >"$out"; }
		sleep 0.02 # the sampling interval
	done
}

# The soft limit alone lowered: raised back to the hard limit at start.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -gt 200 ]; then
	rm -f "$WORK/soft.port"
	(
		ulimit -Sn 100
		exec "$SXFER" serve --listen 127.0.0.1:0 --port-file "$WORK/soft.port" \
			--id "$WORK/server" --out "$WORK/out-soft"
	) 2>"$WORK/soft.log" &
	SOFT=$!
	PIDS+=("$SOFT")
	await_port soft "$SOFT"
	grep -q "event=limits nofile=$hard " "$WORK/soft.log" ||
		{ cat "$WORK/soft.log" >&2; fail "soft limit not raised to $hard"; }
	stop_server "$SOFT"
	ok "soft descriptor limit 100 raised to the hard limit $hard at start"
fi

# A hard limit of 256, 3,000 small signed files and, at the same time, a
# second sender with one larger file.
mkdir -p "$WORK/small"
for i in $(seq 1 3000); do printf 'file %d\n' "$i" >"$WORK/small/s$i"; done
rand_file "$WORK/other.bin" $((16 << 20))
rm -f "$WORK/lim.port"
(
	ulimit -n 256
	exec "$SXFER" serve --listen 127.0.0.1:0 --port-file "$WORK/lim.port" \
		--id "$WORK/server" --out "$WORK/out"
) 2>"$WORK/lim.log" &
SRV=$!
PIDS+=("$SRV")
await_port lim "$SRV"
echo 0 >"$WORK/peak"
fd_sampler "$SRV" "$WORK/peak" &
SAMPLER=$!
PIDS+=("$SAMPLER")
"$SXFER" send --id "$WORK/cam" --quiet --batch-files 4096 "127.0.0.1:$PORT" "$WORK/small" &
A=$!
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/other.bin" ||
	fail "the second sender failed beside 3,000 files"
wait "$A" || { grep 'level=error' "$WORK/lim.log" | head -5 >&2; fail "3,000 files under a limit of 256 descriptors"; }
[ "$(ls "$WORK/out/cam-01/small" | grep -vc sxsig)" -eq 3000 ] || fail "not all 3,000 files stored"
cmp "$WORK/other.bin" "$WORK/out/cam-01/other.bin" || fail "other.bin differs"
! grep -q 'Too many open files' "$WORK/lim.log" || fail "a file was refused for want of descriptors"
ok "3,000 signed files in one batch and a second sender under a limit of 256: all stored (peak $(cat "$WORK/peak") descriptors)"

kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true

stop_server "$SRV"

# 6,000 empty files, signed, in one session (two batches), with the usual
# limits: the server's descriptors stay near its idle level plus one
# connection's share of 64 (before: two or three per file of the open batch).
mkdir -p "$WORK/empty"
(cd "$WORK/empty" && seq 1 6000 | sed 's/^/e/' | xargs touch)
start_server big --id "$WORK/server" --out "$WORK/out"
SRV=$SERVER_PID
echo 0 >"$WORK/peak"
fd_sampler "$SRV" "$WORK/peak" &
SAMPLER=$!
PIDS+=("$SAMPLER")
"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/empty" ||
	fail "6,000 empty files"
[ "$(ls "$WORK/out/cam-01/empty" | grep -vc sxsig)" -eq 6000 ] || fail "not all empty files stored"
peak=$(cat "$WORK/peak")
[ "$peak" -gt 0 ] && [ "$peak" -le 100 ] || fail "the server held $peak descriptors for one sender of empty files"
ok "6,000 empty signed files: the server peaked at $peak descriptors"
kill "$SAMPLER" 2>/dev/null || true
stop_server "$SRV"
