#!/usr/bin/env bash
# Key files (encryption, permissions, wrong passphrase, corrupt PEM), CSRs
# (id new, openssl-made CSRs, broken self-signatures), CLI usage and exit codes.
. "$(dirname "$0")/pki_lib.sh"
sx=$SXFER

# usage and help
expect 0 "subcommands:" "$sx" ca --help
expect 0 "usage: sxfer ca issue" "$sx" ca issue --help
expect 0 "usage: sxfer id verify" "$sx" id verify --help
expect 0 "subcommands:" "$sx" help ca
expect 2 "unknown option '--frobnicate'" "$sx" ca init --ca x --frobnicate
expect 2 "unknown subcommand 'nope'" "$sx" ca nope
expect 2 "--ca DIR is required" "$sx" ca list
expect 2 "--role must be server, client or both" "$sx" ca issue --ca c --name n --role admin --out o
expect 2 "--key-type must be" "$sx" id new --out o --name n --key-type dsa
expect 2 "--days must be" "$sx" ca init --ca c --days 0
expect 2 "needs a value" "$sx" ca init --ca

# CA init: encrypted key, layout, permissions, refuses to overwrite
"$sx" ca init --ca ca --name "Keys CA" --days 30 >/dev/null
[ "$(stat -c %a ca)" = 700 ] || fail "CA folder is not 0700"
[ "$(stat -c %a ca/ca.key.pem)" = 600 ] || fail "CA key is not 0600"
grep -q "BEGIN ENCRYPTED PRIVATE KEY" ca/ca.key.pem || fail "CA key is not encrypted"
openssl pkey -in ca/ca.key.pem -passin env:SXFER_PASSPHRASE -noout
openssl asn1parse -in ca/ca.key.pem | grep -q ":scrypt" || fail "CA key does not use scrypt"
openssl asn1parse -in ca/ca.key.pem | grep -q aes-256-cbc || fail "CA key is not AES-256-CBC"
openssl x509 -in ca/ca.pem -noout -text >ca.txt
grep -A1 "Basic Constraints: critical" ca.txt | grep -q "CA:TRUE" || fail "root lacks CA:TRUE"
grep -A1 "Key Usage: critical" ca.txt | grep -q "Certificate Sign, CRL Sign" || fail "root KU"
grep -q "Subject Key Identifier" ca.txt || fail "root lacks SKI"
expect 5 "a CA already exists here" "$sx" ca init --ca ca

# identity from ca issue: every key type, files and modes
for kt in p256 ed25519; do
	"$sx" ca issue --ca ca --name "dev-$kt" --role both --dns "dev-$kt.test" --out "id-$kt" \
		--key-type "$kt" >/dev/null
	[ "$(stat -c %a "id-$kt")" = 700 ] || fail "identity folder is not 0700"
	[ "$(stat -c %a "id-$kt/key.pem")" = 600 ] || fail "identity key is not 0600"
	for f in key.pem cert.pem ca.pem; do [ -s "id-$kt/$f" ] || fail "id-$kt/$f missing"; done
	openssl pkey -in "id-$kt/key.pem" -passin env:SXFER_ID_PASSPHRASE -noout
	expect 0 "role:        both" "$sx" id show --id "id-$kt"
done
expect 0 "key type:    Ed25519" "$sx" id show --id id-ed25519
expect 0 "SHA-256:" env -u SXFER_PASSPHRASE "$sx" id show --id id-p256
expect 5 "already exists" "$sx" ca issue --ca ca --name again --role client --out id-p256
(cd id-p256 && expect 0 "subject:     CN=dev-p256" "$sx" id show)

# pass file, no-passphrase
env -u SXFER_PASSPHRASE printf 'file-pass\n' >pass.txt
env -u SXFER_PASSPHRASE "$sx" id new --out dev --name dev.test --pass-file pass.txt >/dev/null
openssl pkey -in dev/key.pem -passin pass:file-pass -noout
openssl req -in dev/csr.pem -verify -noout 2>&1 | grep -q "verify OK" || fail "CSR does not verify"
expect 0 "NOT encrypted" "$sx" id new --out plain --name plain.test --no-passphrase
grep -q "BEGIN PRIVATE KEY" plain/key.pem || fail "--no-passphrase key is not plain PKCS#8"
[ "$(stat -c %a plain/key.pem)" = 600 ] || fail "plain key is not 0600"
expect 2 "empty passphrase" env SXFER_PASSPHRASE= "$sx" id new --out e --name e
expect 2 "a passphrase is needed" env -u SXFER_PASSPHRASE "$sx" id new --out t --name t

# key loading failures (through the CA key)
cp -a ca ca-perm && chmod 640 ca-perm/ca.key.pem
expect 5 "ca-perm/ca.key.pem: permissions 0640 are too open" \
	"$sx" ca issue --ca ca-perm --name x --role client --out x1
expect 3 "ca/ca.key.pem: wrong passphrase" \
	env SXFER_PASSPHRASE=not-it "$sx" ca issue --ca ca --name x --role client --out x2
cp -a ca ca-bad && echo "this is not a key" >ca-bad/ca.key.pem
expect 5 "ca-bad/ca.key.pem: not a PEM private key" \
	"$sx" ca issue --ca ca-bad --name x --role client --out x3
cp -a ca ca-trunc && head -c 200 ca/ca.key.pem >ca-trunc/ca.key.pem
expect 5 "ca-trunc/ca.key.pem: not a PEM private key" \
	"$sx" ca issue --ca ca-trunc --name x --role client --out x4

# ca sign: our CSR, an openssl CSR, a CSR asking for CA:TRUE, a broken CSR
expect 0 "issued 'dev.test' (server)" "$sx" ca sign --ca ca --csr dev/csr.pem --role server \
	--name dev.test --out dev/cert.pem
expect 0 ": ok" "$sx" id verify --ca ca --role server --name dev.test dev/cert.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout x.key -subj /CN=x \
	-addext "basicConstraints=critical,CA:TRUE" -addext "subjectAltName=DNS:evil.test" \
	-out x.csr 2>/dev/null
expect 2 "the CSR asks for 'x'" "$sx" ca sign --ca ca --csr x.csr --role client --out x.pem
expect 0 "issued 'x' (client)" "$sx" ca sign --ca ca --csr x.csr --role client --name x \
	--out x.pem
openssl x509 -in x.pem -noout -text >x.txt
grep -q "CA:FALSE" x.txt || fail "a CSR made a CA certificate"
! grep -q "evil.test" x.txt || fail "a CSR extension was copied"
! grep -q "TLS Web Server" x.txt || fail "a CSR widened the role"
expect 3 "lacks extendedKeyUsage serverAuth" "$sx" id verify --ca ca --role server x.pem
expect 0 "issued 'renamed' (server)" "$sx" ca sign --ca ca --csr x.csr --role server \
	--name renamed --dns a.test --ip 10.1.2.3 --out x2.pem
expect 0 ": ok" "$sx" id verify --ca ca --role server --name 10.1.2.3 x2.pem
openssl req -in x.csr -outform DER -out x.der
python3 - <<'PY'
data = bytearray(open("x.der", "rb").read())
data[-3] ^= 0x01  # inside the signature value
open("bad.der", "wb").write(bytes(data))
PY
openssl req -inform DER -in bad.der -out bad.csr
expect 3 "bad.csr: the CSR's self-signature does not verify" \
	"$sx" ca sign --ca ca --csr bad.csr --role client --name x --out bad.pem
[ ! -e bad.pem ] || fail "a certificate was written for a broken CSR"
expect 5 "not a PEM certificate request" "$sx" ca sign --ca ca --csr pass.txt --role client \
	--name p --out p.pem
echo "all key and CSR tests passed"
