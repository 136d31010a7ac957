#!/usr/bin/env bash
# sxfer sign / sxfer verify through the real binary (docs/SIGNATURES.md):
# every tamper case refused with its own reason and exit code, 1,000 files
# under one signature, revocation, another CA, --signer.
. "$(dirname "$0")/lib.sh"
sx=$SXFER
make_pki
cd "$WORK"

# check CODE PATTERN cmd...: exit code and a pattern in stdout/stderr
check() {
	local want=$1 pattern=$2
	shift 2
	expect_exit "$want" "$@"
	grep -qF -- "$pattern" "$WORK/last.out" "$WORK/last.err" || {
		cat "$WORK/last.out" "$WORK/last.err" >&2
		fail "expected '$pattern' from: $*"
	}
	ok "[$want] $pattern"
}

# usage
check 0 "usage: sxfer sign" "$sx" sign --help
check 0 "usage: sxfer verify" "$sx" verify --help
check 2 "--id IDDIR is required" "$sx" sign x
check 2 "--ca CA is required" "$sx" verify x
check 2 "give at least one file" "$sx" verify --ca ca
check 2 "--chunk must be" "$sx" sign --id cam --chunk 0 x

# a batch: small files, one spanning several chunks, an empty one
mkdir b
printf 'alpha\n' >b/a.txt
printf 'bravo\n' >b/b.txt
rand_file b/big.bin 300000
: >b/empty
check 0 "signed 4 file(s) as cam-01 under one batch signature" \
	"$sx" sign --id cam --chunk 64K b/a.txt b/b.txt b/big.bin b/empty
grep -q "^-----BEGIN SXFER SIGNATURE-----$" b/a.txt.sxsig || fail "no armor"
grep -q "^chunk-size: 65536$" b/big.bin.sxsig || fail "chunk size not recorded"
check 0 "b/a.txt: ok (signer cam-01, signed 20" \
	"$sx" verify --ca ca b/a.txt b/b.txt b/big.bin b/empty
grep -c ": ok (" last.out | grep -qx 4 || fail "expected 4 ok lines"
check 0 "b/big.bin: ok" "$sx" verify --ca ca/ca.pem --signer cam-01 b/big.bin
check 0 "b/a.txt: ok" "$sx" verify --ca cam b/a.txt  # identity folder holding ca.pem

fresh() { # a pristine copy of the batch in t/
	rm -rf t && cp -a b t
}

# one byte of a file
fresh
flip_byte t/big.bin 100000
check 4 "t/big.bin: FAILED (file content does not match its signed root)" \
	"$sx" verify --ca ca t/big.bin
# a truncated file
fresh
truncate -s 200000 t/big.bin
check 4 "t/big.bin: FAILED (size differs: file has 200000 bytes, signed 300000)" \
	"$sx" verify --ca ca t/big.bin
# the root in the .sxsig (content and proof no longer agree with it)
fresh
sed -i -E 's/^(file-root: )./\1f/; s/^(file-root: )ff/\1ee/' t/a.txt.sxsig
check 4 "t/a.txt: FAILED (file content does not match its signed root)" \
	"$sx" verify --ca ca t/a.txt
# ...and the same with the content made to fit the new root is impossible;
# a root change that keeps the file's true root shows up in the proof:
fresh
node=$(sed -n 's/^proof: \([0-9a-f]*\).*/\1/p' t/a.txt.sxsig)
first=${node:0:1}
[ "$first" = 0 ] && repl=1 || repl=0
sed -i "s/^proof: $first/proof: $repl/" t/a.txt.sxsig
check 4 "t/a.txt: FAILED (inclusion proof does not lead to the batch root)" \
	"$sx" verify --ca ca t/a.txt
# the batch root
fresh
sed -i -E 's/^(batch-root: )0/\11/; t; s/^(batch-root: )./\10/' t/b.txt.sxsig
check 4 "t/b.txt: FAILED (inclusion proof does not lead to the batch root)" \
	"$sx" verify --ca ca t/b.txt
# the signature (a different valid base64 value)
fresh
sed -i -E 's/^(signature: )(....)/\1AAAA/' t/b.txt.sxsig
grep -q "^signature: AAAA" t/b.txt.sxsig || fail "signature not replaced"
check 4 "t/b.txt: FAILED (batch signature does not verify)" "$sx" verify --ca ca t/b.txt
# the signed time (covered by the signature)
fresh
sed -i -E 's/^(signed-time: )20/\121/' t/b.txt.sxsig
check 4 "t/b.txt: FAILED (batch signature does not verify)" "$sx" verify --ca ca t/b.txt
# a file swapped with another file of the same batch: b's content under a's name
fresh
mv t/b.txt t/a.txt
check 4 "t/a.txt: FAILED (file content does not match its signed root)" \
	"$sx" verify --ca ca t/a.txt
check 5 "t/b.txt: FAILED (t/b.txt:" "$sx" verify --ca ca t/b.txt
# the .sxsig of another file
fresh
cp t/b.txt.sxsig t/a.txt.sxsig
check 4 "t/a.txt: FAILED (the .sxsig is for 'b.txt')" "$sx" verify --ca ca t/a.txt
# missing and malformed .sxsig
fresh
rm t/a.txt.sxsig
check 5 "t/a.txt: FAILED (t/a.txt.sxsig:" "$sx" verify --ca ca t/a.txt
fresh
sed -i '/^leaf-index:/d' t/a.txt.sxsig
check 4 "missing field 'leaf-index'" "$sx" verify --ca ca t/a.txt
fresh
head -c 500 b/a.txt.sxsig >t/a.txt.sxsig
check 4 "t/a.txt: FAILED (t/a.txt.sxsig:" "$sx" verify --ca ca t/a.txt
# the text ends right after the chain, LF only (docs/SIGNATURES.md section 5)
fresh
printf 'extra\n' >>t/a.txt.sxsig
check 4 "t/a.txt: FAILED (t/a.txt.sxsig: text after the signer's certificate chain)" \
	"$sx" verify --ca ca t/a.txt
fresh
sed -i '/^-----BEGIN CERTIFICATE-----$/s/$/\r/' t/a.txt.sxsig
check 4 "t/a.txt: FAILED (t/a.txt.sxsig: the signer's certificate chain: a CR" \
	"$sx" verify --ca ca t/a.txt
fresh
sed -i 's/$/\r/' t/a.txt.sxsig
check 4 "t/a.txt: FAILED (t/a.txt.sxsig: not a .sxsig: its first line holds a CR" \
	"$sx" verify --ca ca t/a.txt
# one bad file among good ones: one FAILED line, the others ok, exit 4
fresh
printf 'x' >>t/b.txt
check 4 "t/a.txt: ok" "$sx" verify --ca ca t/a.txt t/b.txt t/empty
grep -q "^t/b.txt: FAILED (size differs" last.out || fail "b.txt should fail"
grep -q "^t/empty: ok" last.out || fail "empty should verify"

# certificates: a chain from another CA, --signer, revoked signer
"$sx" ca init --ca other-ca --name "Other CA" >/dev/null
"$sx" ca issue --ca other-ca --name cam-01 --role client --out other-cam >/dev/null
printf 'forged\n' >forged.txt
"$sx" sign --id other-cam forged.txt >/dev/null
check 3 "forged.txt: FAILED (signer certificate: CN=cam-01: " "$sx" verify --ca ca forged.txt
check 0 "forged.txt: ok" "$sx" verify --ca other-ca forged.txt
check 3 "FAILED (signed by 'cam-01', expected 'cam-02')" \
	"$sx" verify --ca ca --signer cam-02 b/a.txt
# a swapped chain in the .sxsig: the other CA's cam-01 certificate
fresh
sed -i '/^-----BEGIN CERTIFICATE-----$/,$d' t/a.txt.sxsig
cat other-cam/cert.pem >>t/a.txt.sxsig
check 3 "signer certificate:" "$sx" verify --ca ca t/a.txt
# a server certificate cannot sign files (no clientAuth)
check 3 "this identity cannot sign files" "$sx" sign --id server b/a.txt
# revocation
"$sx" ca issue --ca ca --name cam-lost --role client --out lost >/dev/null
printf 'lost\n' >lost.txt
"$sx" sign --id lost lost.txt >/dev/null
"$sx" ca crl --ca ca --out crl0.pem >/dev/null
check 0 "lost.txt: ok (signer cam-lost" "$sx" verify --ca ca --crl crl0.pem lost.txt
"$sx" ca revoke --ca ca --cert lost/cert.pem --reason keyCompromise >/dev/null
"$sx" ca crl --ca ca --out crl.pem >/dev/null
check 3 "lost.txt: FAILED (signer certificate: CN=cam-lost: certificate is revoked" \
	"$sx" verify --ca ca --crl crl.pem lost.txt
check 0 "b/a.txt: ok" "$sx" verify --ca ca --crl crl.pem b/a.txt
# a CRL file holds one CRL: a newer one appended to an older one is not
# silently ignored (it would let the revoked signer pass)
cat crl0.pem crl.pem >crl-both.pem
check 5 "crl-both.pem: text after the CRL (one CRL per file)" \
	"$sx" verify --ca ca --crl crl-both.pem lost.txt
{ cat crl.pem; printf 'trailing\n'; } >crl-text.pem
check 5 "crl-text.pem: text after the CRL" "$sx" verify --ca ca --crl crl-text.pem lost.txt
{ cat crl.pem; printf '\n'; } >crl-nl.pem
check 3 "certificate is revoked" "$sx" verify --ca ca --crl crl-nl.pem lost.txt

# 1,000 small files: one `sxfer sign`, one signature, one batch root
mkdir many
for i in $(seq 1 1000); do printf 'file %d\n' "$i" >"many/f$i.txt"; done
"$sx" sign --id cam --chunk 4K many/*.txt >/dev/null
[ "$(ls many/*.sxsig | wc -l)" -eq 1000 ] || fail "expected 1000 .sxsig files"
sigs=$(grep -h '^signature: ' many/*.sxsig | sort -u | wc -l)
roots=$(grep -h '^batch-root: ' many/*.sxsig | sort -u | wc -l)
[ "$sigs" -eq 1 ] || fail "expected one distinct signature, got $sigs"
[ "$roots" -eq 1 ] || fail "expected one batch root, got $roots"
grep -h '^batch-files: ' many/*.sxsig | sort -u | grep -qx 'batch-files: 1000' || fail "batch size"
ok "1000 files carry exactly one signature"
"$sx" verify --ca ca --signer cam-01 many/*.txt >many.out || fail "1000 files should verify"
[ "$(grep -c ': ok (signer cam-01' many.out)" -eq 1000 ] || fail "expected 1000 ok lines"
ok "1000 files verify"

# receipts: usage and a missing or malformed receipt (signed receipts are
# produced by the transfer; their checks are in tests/unit/test_manifest.c)
check 2 "--signer and --stream-prefix apply to .sxsig files" "$sx" verify --receipt r --ca ca --signer x
check 2 "--signer and --stream-prefix apply to .sxsig files" \
	"$sx" verify --receipt r --ca ca --stream-prefix
check 5 "nothing.rcpt: FAILED" "$sx" verify --receipt nothing.rcpt --ca ca
cp b/a.txt.sxsig bogus.rcpt
check 4 "bogus.rcpt: FAILED (not a receipt" "$sx" verify --receipt bogus.rcpt --ca ca
echo "all sign/verify tests passed"
