#!/usr/bin/env bash
# Resume (docs/PROTOCOL.md, "Resume and re-sending"): a signed send of one
# large file and one of a tree of many files, each killed (kill -9) at
# random moments, then finished; every re-send moves at most what the
# receiver is missing plus two chunks (wire_bytes of --json), the result is
# byte-identical and verifies offline. The same with the server killed and
# restarted, its ledger agreeing with the disk after every restart.
#
# RESUME_VICTIMS (sender server) and RESUME_SOURCES (big.bin tree) choose
# the cases. Sizes: RESUME_SIZE_MIB (the large file, 64), RESUME_FILES (the tree: 400
# files, of 64 KiB and every 50th of 3 MiB), RESUME_TRIALS (sends cut twice
# each, per case, 3). The long run (docs/TESTING.md): RESUME_SIZE_MIB=1024
# RESUME_FILES=2000 RESUME_TRIALS=20 with the release build.
source "$(dirname "$0")/lib.sh"
make_pki
SIZE_MIB=${RESUME_SIZE_MIB:-64}
NFILES=${RESUME_FILES:-400}
TRIALS=${RESUME_TRIALS:-3}
CHUNK=$((1 << 20))
OUT=$WORK/out
DEV=$OUT/cam-01
SRV=""


# kill_at_random VICTIM SRC: sends SRC in the background and kills -9 VICTIM
# ("sender", or the server's PID) once the transfer has reached a random
# point: for a file, a random byte beyond what the receiver already holds
# has reached its temporary; for a folder, a random number of its files are
# stored. Prints 1 when the kill landed before the send ended, else 0.
kill_at_random() {
	python3 - "$1" "$2" "$DEV" "$SXFER" "$WORK/cam" "127.0.0.1:$PORT" <<'PY'
import os, random, signal, subprocess, sys, time
victim, src, dev, sx, ident, addr = sys.argv[1:7]
def walk(top):
    for d, _, fs in os.walk(top):
        for f in fs:
            yield d, f
def size_of(d, f):
    try:
        return os.path.getsize(os.path.join(d, f))
    except OSError:
        return 0
if os.path.isfile(src):
    size = os.path.getsize(src)
    held = sum(size_of(d, f) for d, f in walk(dev) if f.endswith(".sxheld"))
    target = random.randint(min(held + 1, size - 1), size - 1)
    def reached():
        return sum(size_of(d, f) for d, f in walk(dev) if f.endswith(".sxpart")) >= target
else:
    total = sum(len(fs) for _, _, fs in os.walk(src))
    target = random.randint(1, total - 1)
    def reached():
        top = os.path.join(dev, os.path.basename(src.rstrip("/")))
        return sum(1 for d, f in walk(top) if not f.startswith(".") and not f.endswith(".sxsig")) >= target
p = subprocess.Popen([sx, "send", "--id", ident, "--quiet", "--retry", "0", addr, src],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 120
while p.poll() is None and not reached() and time.time() < deadline:
    time.sleep(0.002)
landed = p.poll() is None
try:
    os.kill(p.pid if victim == "sender" else int(victim), signal.SIGKILL)
except ProcessLookupError:
    landed = False
p.wait()
print(1 if landed else 0)
PY
}

# held_bytes DIR: bytes of every held part under DIR.
held_bytes() {
	find "$1" -name '*.sxheld' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'
}
# missing_bytes SRC DEST: bytes of SRC's files not stored under DEST, less
# what DEST holds of them.
missing_bytes() {
	python3 - "$1" "$2" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
name = os.path.basename(src.rstrip('/'))
miss = 0
if os.path.isfile(src):
    pairs = [(src, os.path.join(dst, name))]
else:
    pairs = []
    for d, _, fs in os.walk(src):
        for f in fs:
            p = os.path.join(d, f)
            pairs.append((p, os.path.join(dst, name, os.path.relpath(p, src))))
for s, t in pairs:
    if not os.path.isfile(t) or os.path.getsize(t) != os.path.getsize(s):
        miss += os.path.getsize(s)
held = 0
for d, _, fs in os.walk(dst):
    held += sum(os.path.getsize(os.path.join(d, f)) for f in fs if f.endswith('.sxheld'))
print(max(0, miss - held))
PY
}
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# quiet_server: the server has kept or stored whatever the last connection
# left (no temporary of a file is open).
quiet_server() { partials_gone "$OUT"; }

# finish SRC JSON: a last send that must succeed and move at most the
# missing bytes plus two chunks; then the output matches and verifies.
finish() {
	local src=$1 js=$2 missing wire
	missing=$(missing_bytes "$src" "$DEV")
	"$SXFER" send --id "$WORK/cam" --quiet --json --retry 0 "127.0.0.1:$PORT" "$src" >"$js" ||
		{ cat "$js" >&2; fail "the final send of $src failed"; }
	wire=$(json_field "$js" wire_bytes)
	[ "$wire" -le $((missing + 2 * CHUNK)) ] ||
		fail "$src: $wire bytes on the wire, $missing were missing ($(cat "$js"))"
	echo "  final send: $wire bytes on the wire, $missing missing," \
		"resumed $(json_field "$js" bytes_resumed), already there $(json_field "$js" files_same)"
}
check_output() { # SRC
	local src=$1 name
	name=$(basename "$src")
	diff -r -x '*.sxsig' "$src" "$DEV/$name" >/dev/null || fail "$name differs from its source"
	if [ -f "$src" ]; then
		"$SXFER" verify --ca "$WORK/ca/ca.pem" --signer cam-01 "$DEV/$name" >"$WORK/v.out" ||
			{ cat "$WORK/v.out" >&2; fail "$name does not verify"; }
	else
		find "$DEV/$name" -type f ! -name '*.sxsig' -print0 |
			xargs -0 "$SXFER" verify --ca "$WORK/ca/ca.pem" --signer cam-01 >"$WORK/v.out" ||
			{ grep -v ': ok' "$WORK/v.out" >&2; fail "files of $name do not verify"; }
	fi
	[ -z "$(find "$DEV" -name '*.sxheld*' -o -name '*.sxpart' -o -name '*.sxmeta')" ] ||
		fail "held parts or temporaries left after $name was stored: $(find "$DEV" -name '.*')"
}

rand_file "$WORK/big.bin" $((SIZE_MIB << 20))
mkdir -p "$WORK/tree"
python3 - "$WORK/tree" "$NFILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 20:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:04d}.bin"), "wb") as f:
        f.write(os.urandom(65536 if i % 50 else 3 * 1048576 + i))
PY

# trial VICTIM SRC N: SRC is sent afresh, under a new name (hard links:
# SRC-N, the same bytes; the receiver keeps what earlier trials stored) and
# the send is cut twice by kill -9 of VICTIM (sender, or server: then
# restarted and its ledger checked) at random points, the second beyond
# what the first left; the part held never shrinks; then a last send must
# move only what is missing, and the result must match and verify.
LANDED=0
trial() {
	local victim=$1 src="$2-$3" prev=0 held k
	cp -al "$2" "$src"
	for k in 1 2; do
		if [ "$victim" = sender ]; then
			LANDED=$((LANDED + $(kill_at_random sender "$src")))
		else
			LANDED=$((LANDED + $(kill_at_random "$SRV" "$src")))
			wait "$SRV" 2>/dev/null || true
			cp "$WORK/srv.log" "$WORK/srv.prev.log"
			start_server srv --id "$WORK/server" --out "$OUT"
			SRV=$SERVER_PID
			"$SXFER" ledger check --ledger "$WORK/out.ledger.sqlite" --out "$OUT" >"$WORK/check.txt" ||
				fail "ledger check after a kill -9 of the server: $(cat "$WORK/check.txt")"
		fi
		wait_until 30 "the server to keep what it received" quiet_server
		held=$(held_bytes "$DEV")
		if [ -f "$src" ] && [ ! -e "$DEV/$(basename "$src")" ]; then
			[ "$held" -ge "$prev" ] || fail "the held part shrank from $prev to $held bytes"
			prev=$held
		fi
	done
	finish "$src" "$WORK/final.json"
	check_output "$src"
}

start_server srv --id "$WORK/server" --out "$OUT"
SRV=$SERVER_PID
for victim in ${RESUME_VICTIMS:-sender server}; do
	for src in ${RESUME_SOURCES:-big.bin tree}; do
		src=$WORK/$src LANDED=0
		for i in $(seq 1 "$TRIALS"); do trial "$victim" "$src" "$victim$i"; done
		ok "$(basename "$src"): $TRIALS sends each cut twice by kill -9 of the $victim ($LANDED cuts landed before the end); every re-send moved only what was missing, identical, verified"
	done
done
stop_server "$SRV"
"$SXFER" ledger check --ledger "$WORK/out.ledger.sqlite" --out "$OUT" >"$WORK/check.txt" ||
	fail "ledger check at the end: $(cat "$WORK/check.txt")"
ok "the ledger agrees with the disk"
