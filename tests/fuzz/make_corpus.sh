#!/usr/bin/env bash
# Makes the seed corpus of every fuzz target from real outputs, into
# OUT/<target>/: the binary formats from sx_fuzz_seeds (the encoders, the
# record layer with the fixed key, an in-memory handshake), and the text
# formats from the sxfer binary: certificates, CRLs and CSRs from `sxfer ca`
# and `sxfer id`, .sxsig files from `sxfer sign` and from a real transfer
# over loopback, the receipts of that transfer, the CA's index.
# Usage: SXFER=... SX_FUZZ_SEEDS=... make_corpus.sh OUT
set -euo pipefail
: "${SXFER:?SXFER must name the sxfer binary}"
: "${SX_FUZZ_SEEDS:?SX_FUZZ_SEEDS must name the sx_fuzz_seeds binary}"
OUT=${1:?usage: make_corpus.sh OUT}
W=$(mktemp -d "${TMPDIR:-/tmp}/sxfer-corpus-XXXXXX")
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT
export SXFER_PASSPHRASE=fuzz-corpus-passphrase HOME="$W/home"
export SXFER_ID_PASSPHRASE=$SXFER_PASSPHRASE # ca issue: the new keys' passphrase
mkdir -p "$OUT" "$HOME"
# The fuzz build's binaries are instrumented: no leak report from a CLI run.
export ASAN_OPTIONS=detect_leaks=0

"$SX_FUZZ_SEEDS" "$OUT"

# keep TARGET NAME FILE: one seed.
keep() {
	mkdir -p "$OUT/$1"
	cp "$3" "$OUT/$1/$2"
}

# A CA, identities of each key type, a CSR signed by the CA, a revocation.
x() { "$SXFER" "$@" >/dev/null; }
x ca init --ca "$W/ca" --name "fuzz corpus CA"
x ca issue --ca "$W/ca" --name server.test --role server --dns localhost --ip 127.0.0.1 \
	--out "$W/server"
x ca issue --ca "$W/ca" --name cam-01 --role client --out "$W/cam"
x ca issue --ca "$W/ca" --name cam-ed --role both --key-type ed25519 --out "$W/cam-ed"
x ca issue --ca "$W/ca" --name cam-rsa --role client --key-type rsa3072 --out "$W/cam-rsa"
x id new --out "$W/dev" --name dev-02
x id new --out "$W/dev-ed" --name dev-ed --key-type ed25519
x ca sign --ca "$W/ca" --csr "$W/dev/csr.pem" --name dev-02 --role client \
	--out "$W/dev/cert.pem"
x ca revoke --ca "$W/ca" --cert "$W/cam-rsa/cert.pem" --reason keyCompromise
x ca crl --ca "$W/ca" --out "$W/crl.pem"

keep fuzz_cert ca.pem "$W/ca/ca.pem"
keep fuzz_cert server.pem "$W/server/cert.pem"
keep fuzz_cert ed25519.pem "$W/cam-ed/cert.pem"
keep fuzz_cert rsa.pem "$W/cam-rsa/cert.pem"
keep fuzz_cert signed-csr.pem "$W/dev/cert.pem"
keep fuzz_cert crl.pem "$W/crl.pem"
cat "$W/cam/cert.pem" "$W/ca/ca.pem" >"$W/chain.pem"
keep fuzz_cert chain.pem "$W/chain.pem"
keep fuzz_csr p256.pem "$W/dev/csr.pem"
"$SXFER" ca token --ca "$W/ca" --name cam-01 --dns cam-01.test --ip 10.0.0.7 >"$W/token.txt" 2>/dev/null
keep fuzz_token client.txt "$W/token.txt"
"$SXFER" ca token --ca "$W/ca" --name srv --role server --ip ::1 --replace >"$W/token2.txt" 2>/dev/null
keep fuzz_token server.txt "$W/token2.txt"
keep fuzz_csr ed25519.pem "$W/dev-ed/csr.pem"
keep fuzz_cadb index.txt "$W/ca/index.txt"

# Offline signatures, one batch per key type.
mkdir -p "$W/files"
printf 'hello\n' >"$W/files/small.txt"
head -c 300000 /dev/urandom >"$W/files/multi-leaf.bin"
: >"$W/files/empty"
for id in cam cam-ed cam-rsa; do
	mkdir -p "$W/sign-$id"
	cp "$W/files/"* "$W/sign-$id/"
	x sign --id "$W/$id" --chunk 64K "$W/sign-$id/"*
	for f in "$W/sign-$id/"*.sxsig; do
		keep fuzz_sxsig "$id-$(basename "$f")" "$f"
	done
done

# A real transfer over loopback: the receiver's .sxsig files, the sender's
# receipts (one batch of several files, and a stream).
"$SXFER" serve --listen 127.0.0.1:0 --port-file "$W/port" --id "$W/server" --out "$W/recv" \
	2>"$W/serve.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do
	[ -s "$W/port" ] && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$W/serve.log" >&2; exit 1; }
	sleep 0.05
done
[ -s "$W/port" ] || { echo "make_corpus: the server did not start" >&2; exit 1; }
PORT=$(cat "$W/port")
mkdir -p "$W/media/sub"
printf 'frame\n' >"$W/media/a.txt"
head -c 70000 /dev/urandom >"$W/media/sub/b.bin"
"$SXFER" send --id "$W/cam" --quiet --receipts "$W/receipts" --chunk 4K "127.0.0.1:$PORT" \
	"$W/media" >/dev/null
head -c 200000 /dev/urandom | "$SXFER" send --id "$W/cam-ed" --quiet --receipts "$W/receipts" \
	--chunk 4K --checkpoint 4 --name live.raw "127.0.0.1:$PORT" - >/dev/null
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
n=0
while IFS= read -r f; do
	n=$((n + 1))
	keep fuzz_sxsig "transfer-$n.sxsig" "$f"
done < <(find "$W/recv" -name '*.sxsig' | sort)
n=0
for f in "$W/receipts"/*.sxreceipt; do
	n=$((n + 1))
	keep fuzz_receipt "receipt-$n.sxreceipt" "$f"
done
[ "$n" -gt 0 ] || { echo "make_corpus: the transfer left no receipt" >&2; exit 1; }
echo "make_corpus: $(find "$OUT" -type f | wc -l) seeds in $OUT"
