#!/usr/bin/env bash
# sxfer get against a hostile server: a bad batch signature, content that
# does not match its signed Merkle root, a file that was not asked for, an
# unsigned session when signatures were asked for, a byte flipped on the
# wire. Each time the client exits 4, naming the cause, and leaves nothing
# under a final name and no temporary in its folder; meanwhile the server
# keeps taking files from another identity. A server certificate from
# another CA, or for another name, is refused with exit 3.
#
# The misbehaving server needs the test hooks (SXFER_TEST_HOSTILE, compiled
# into the sanitizer test build only): without them this test is skipped.
source "$(dirname "$0")/lib.sh"
if ! grep -qaF SXFER_TEST_HOSTILE "$SXFER"; then
	echo "skip: $SXFER was built without the test hooks (SXFER_SANITIZE=ON)"
	exit 77
fi

make_pki
"$SXFER" ca issue --ca "$WORK/ca" --name cam-02 --role client --out "$WORK/cam2" >/dev/null
EX=$WORK/export
mkdir -p "$EX/shared/tree/a/b" "$WORK/out"
rand_file "$EX/shared/big.bin" $((6 << 20)) # > 4 MiB: direct I/O on both sides
rand_file "$EX/shared/tree/a/one" 65536
rand_file "$EX/shared/tree/a/b/two" 65537
: >"$EX/shared/tree/a/empty.txt"
rand_file "$WORK/up.bin" $((6 << 20))

# get DIR [options...]: big.bin and the tree into DIR, bounded in time (a
# hang fails the test as exit 124).
get() {
	local dir=$1
	shift
	timeout 60 "$SXFER" get --id "$WORK/cam" --quiet --timeout 20 "$@" "127.0.0.1:$PORT" \
		shared/big.bin shared/tree "$dir"
}

# nothing_kept DIR: no file (nor .sxsig) under a final name, no temporary.
# A held part (.NAME.H.sxheld and its meta: whole leaves received before
# the failure, bound to this server's certificate, offered only to it and
# checked again by the signature over the whole file) may stay, as a
# receiving server keeps one.
nothing_kept() {
	no_partials "$1"
	local kept
	kept=$(find "$1" -mindepth 1 ! -type d ! -name '*.sxheld' ! -name '*.sxheld-meta')
	[ -z "$kept" ] || fail "left under a final name: $kept"
}

# A normal get first: the setup is sound, so each refusal below is the
# hostile server's doing.
start_server plain --id "$WORK/server" --out "$WORK/out" --export "$EX"
PLAIN=$SERVER_PID
PLAIN_PORT=$PORT
get "$WORK/ok"
cmp "$EX/shared/big.bin" "$WORK/ok/big.bin" || fail "plain get differs"
diff -r -x '*.sxsig' "$EX/shared/tree" "$WORK/ok/tree" || fail "plain get: tree differs"
ok "a well-behaved server: get of big.bin and a tree succeeds"

# Certificates: the server's from another CA; a name it does not carry.
"$SXFER" ca init --ca "$WORK/ca2" --name "other CA" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca2" --name server.test --role server \
	--dns localhost --ip 127.0.0.1 --out "$WORK/server2" >/dev/null
# It trusts our CA as well as its own; we do not trust its.
cat "$WORK/ca/ca.pem" >>"$WORK/server2/ca.pem"
start_server other --id "$WORK/server2" --out "$WORK/out2" --export "$EX"
OTHER=$SERVER_PID
mkdir "$WORK/dl-ca"
expect_exit 3 get "$WORK/dl-ca"
grep -qi "issuer\|trusted CA" "$WORK/last.err" || fail "other CA: no reason: $(cat "$WORK/last.err")"
nothing_kept "$WORK/dl-ca"
ok "server certificate from another CA: exit 3 ($(tail -n1 "$WORK/last.err"))"
stop_server "$OTHER"
PORT=$PLAIN_PORT
mkdir "$WORK/dl-name"
expect_exit 3 get "$WORK/dl-name" --server-name elsewhere.test
grep -q "elsewhere.test" "$WORK/last.err" || fail "wrong name: no reason: $(cat "$WORK/last.err")"
nothing_kept "$WORK/dl-name"
ok "server certificate for another name: exit 3 ($(tail -n1 "$WORK/last.err"))"

# A byte of the server's stream flipped: its records are CONFIRM (0),
# SESSION (1), FILE_BEGIN (2), then big.bin's DATA (4 is the second chunk).
rm -f "$WORK/mitm.port"
python3 "$E2E_DIR/mitm.py" flip 4 "$PORT" "$WORK/mitm.port" s2c &
MITM=$!
PIDS+=("$MITM")
wait_until 10 "mitm.py to listen" test -s "$WORK/mitm.port"
mkdir "$WORK/dl-mitm"
PORT=$(cat "$WORK/mitm.port")
expect_exit 4 get "$WORK/dl-mitm" --server-name localhost
PORT=$PLAIN_PORT
grep -qi "authentication\|integrity\|record" "$WORK/last.err" ||
	fail "mitm: no reason: $(cat "$WORK/last.err")"
nothing_kept "$WORK/dl-mitm"
kill "$MITM"
wait "$MITM" 2>/dev/null || true
ok "a byte flipped on the wire: exit 4 ($(tail -n1 "$WORK/last.err"))"

# Each hostile mode, with the reason the client must give; meanwhile
# another identity sends to the same server.
declare -A why=(
	[badsig]="signature does not verify"
	[badroot]="Merkle root does not match"
	[wrongname]="evil-big.bin.*not asked for"
	[unsigned]="unsigned although signatures were asked for"
	[probe]="secret.bin.*not asked for"
)
for mode in badsig badroot wrongname unsigned probe; do
	export SXFER_TEST_HOSTILE=$mode
	start_server "$mode" --id "$WORK/server" --out "$WORK/out-$mode" --export "$EX"
	unset SXFER_TEST_HOSTILE
	SRV=$SERVER_PID
	"$SXFER" send --id "$WORK/cam2" --quiet --timeout 20 \
		"127.0.0.1:$PORT" "$WORK/up.bin" 2>"$WORK/send-$mode.err" &
	SEND=$!
	for io in uring poll; do # the client's store writes differ by backend
		mkdir "$WORK/dl-$mode-$io"
		expect_exit 4 get "$WORK/dl-$mode-$io" --io "$io"
		grep -q "${why[$mode]}" "$WORK/last.err" ||
			fail "$mode ($io): expected '${why[$mode]}' in: $(cat "$WORK/last.err")"
		nothing_kept "$WORK/dl-$mode-$io"
		# nor a folder the failed session made
		left=$(find "$WORK/dl-$mode-$io" -mindepth 1 ! -name '*.sxheld' ! -name '*.sxheld-meta')
		[ -z "$left" ] || fail "$mode ($io): left $left"
	done
	# --overwrite: the files already there stay as they were.
	K=$WORK/keep-$mode
	mkdir -p "$K/tree/a"
	echo local >"$K/big.bin" && echo local >"$K/tree/a/one"
	expect_exit 4 get "$K" --overwrite
	grep -q "${why[$mode]}" "$WORK/last.err" || fail "$mode --overwrite: $(cat "$WORK/last.err")"
	for f in big.bin tree/a/one; do
		[ "$(cat "$K/$f")" = local ] || fail "$mode --overwrite: $f was replaced"
	done
	no_partials "$K"
	[ "$(find "$K" -mindepth 1 ! -type d ! -name '*.sxheld*' | wc -l)" -eq 2 ] ||
		fail "$mode --overwrite: left: $(find "$K" -mindepth 1 ! -type d)"
	# Standard output: nothing written, the private folder removed. (A
	# get to standard output is asked nothing: there is no probe to make.)
	mkdir "$WORK/tmp-$mode"
	got=0
	TMPDIR=$WORK/tmp-$mode timeout 60 "$SXFER" get --id "$WORK/cam" --quiet --timeout 20 \
		"127.0.0.1:$PORT" shared/big.bin - >"$WORK/stdout-$mode" 2>"$WORK/last.err" || got=$?
	if [ "$mode" = probe ]; then
		[ "$got" -eq 0 ] && cmp -s "$WORK/stdout-$mode" "$EX/shared/big.bin" ||
			fail "probe to standard output: exit $got: $(cat "$WORK/last.err")"
	else
		[ "$got" -eq 4 ] && grep -q "${why[$mode]}" "$WORK/last.err" ||
			fail "$mode to standard output: exit $got: $(cat "$WORK/last.err")"
		[ ! -s "$WORK/stdout-$mode" ] || fail "$mode: bytes written to standard output"
	fi
	[ -z "$(ls -A "$WORK/tmp-$mode")" ] || fail "$mode: left in TMPDIR: $(ls -A "$WORK/tmp-$mode")"
	wait "$SEND" || fail "$mode: a send by cam-02 failed beside it: $(cat "$WORK/send-$mode.err")"
	cmp "$WORK/up.bin" "$WORK/out-$mode/cam-02/up.bin" || fail "$mode: cam-02's file differs"
	stop_server "$SRV"
	ok "hostile $mode: exit 4 ($(tail -n1 "$WORK/last.err")); nothing kept (uring, poll," \
		"--overwrite, standard output); cam-02 sent beside it"
done
stop_server "$PLAIN"
