#!/usr/bin/env bash
# sxfer id verify: every policy failure has its own reason and exit code 3,
# and openssl verify agrees on good and revoked certificates.
. "$(dirname "$0")/pki_lib.sh"
sx=$SXFER
now=$(date +%s)

"$sx" ca init --ca ca --name "Test CA" >/dev/null
"$sx" ca issue --ca ca --name server.test --role server --dns server.test --ip 127.0.0.1 \
	--out srv >/dev/null
"$sx" ca issue --ca ca --name client-1 --role client --out cli >/dev/null
"$sx" ca init --ca other --name "Other CA" --key-type ed25519 >/dev/null
"$sx" ca issue --ca other --name server.test --role server --dns server.test --out osrv \
	--key-type ed25519 >/dev/null

# good certificates
expect 0 ": ok" "$sx" id verify --ca ca --role server --name server.test srv/cert.pem
expect 0 ": ok" "$sx" id verify --ca ca/ca.pem --role server --name 127.0.0.1 srv
expect 0 ": ok" "$sx" id verify --ca srv --role client cli/cert.pem
expect 0 ": ok" "$sx" id verify --ca other --role server osrv/cert.pem
openssl verify -CAfile ca/ca.pem srv/cert.pem cli/cert.pem >/dev/null
openssl verify -CAfile other/ca.pem osrv/cert.pem >/dev/null

# time validity
expect 3 "certificate has expired" "$sx" id verify --ca ca --at "@$((now + 400 * 86400))" srv
expect 3 "CN=server.test" "$sx" id verify --ca ca --at "@$((now + 400 * 86400))" srv
expect 3 "certificate is not yet valid" "$sx" id verify --ca ca --at "@$((now - 86400))" srv
# chain
expect 3 "not issued by the trusted CA" "$sx" id verify --ca ca osrv/cert.pem
write_openssl_cnf ossl.cnf
openssl req -x509 -config ossl.cnf -extensions leaf -new -newkey ec \
	-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout self.key -subj /CN=leaf.test -days 30 \
	-out self.pem 2>/dev/null
expect 3 "self-signed certificate" "$sx" id verify --ca ca self.pem
# extendedKeyUsage for the role
expect 3 "lacks extendedKeyUsage serverAuth" "$sx" id verify --ca ca --role server cli
expect 3 "lacks extendedKeyUsage clientAuth" "$sx" id verify --ca ca --role client srv
# name against the SAN (no CN fallback)
expect 3 "name 'other.test' does not match" "$sx" id verify --ca ca --name other.test srv
expect 3 "name '10.0.0.1' does not match" "$sx" id verify --ca ca --name 10.0.0.1 srv
expect 3 "name 'client-1' does not match" "$sx" id verify --ca ca --name client-1 cli

# weak key and CA:TRUE leaf: made with openssl, signed by our CA's key
openssl genrsa -out weak.key 1024 2>/dev/null
openssl req -new -key weak.key -subj /CN=leaf.test -out weak.csr
openssl x509 -req -in weak.csr -CA ca/ca.pem -CAkey ca/ca.key.pem \
	-passin env:SXFER_PASSPHRASE -set_serial 0x1001 -days 30 -extfile ossl.cnf \
	-extensions leaf -out weak.pem 2>/dev/null
expect 3 "weak key: RSA 1024 bits" "$sx" id verify --ca ca --role server weak.pem
expect 3 "weak key: RSA 1024 bits" "$sx" ca sign --ca ca --csr weak.csr --role server \
	--name leaf.test --out weak2.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout catrue.key \
	-subj /CN=leaf.test -out catrue.csr 2>/dev/null
openssl x509 -req -in catrue.csr -CA ca/ca.pem -CAkey ca/ca.key.pem \
	-passin env:SXFER_PASSPHRASE -set_serial 0x1002 -days 30 -extfile ossl.cnf \
	-extensions catrue -out catrue.pem 2>/dev/null
expect 3 "leaf certificate claims CA:TRUE" "$sx" id verify --ca ca --role server catrue.pem
expect 3 "leaf certificate claims CA:TRUE" "$sx" id verify --ca ca ca/ca.pem

# revocation
serial=$("$sx" id show --id cli | awk '/^serial:/ {print $2}')
"$sx" ca crl --ca ca --out crl0.pem >/dev/null
expect 0 ": ok" "$sx" id verify --ca ca --crl crl0.pem --role client cli
openssl verify -crl_check -CAfile ca/ca.pem -CRLfile crl0.pem cli/cert.pem >/dev/null
expect 0 "revoked serial $serial" "$sx" ca revoke --ca ca --cert cli/cert.pem \
	--reason keyCompromise
expect 1 "already revoked" "$sx" ca revoke --ca ca --serial "$serial"
expect 2 "not in the index" "$sx" ca revoke --ca ca --serial 0xABCDEF
"$sx" ca crl --ca ca --out crl1.pem >/dev/null
expect 3 "certificate is revoked (serial $serial, reason keyCompromise" \
	"$sx" id verify --ca ca --crl crl1.pem cli
if openssl verify -crl_check -CAfile ca/ca.pem -CRLfile crl1.pem cli/cert.pem >/dev/null 2>&1; then
	fail "openssl verify accepted a revoked certificate"
fi
expect 0 ": ok" "$sx" id verify --ca ca --crl crl1.pem --role server srv
openssl verify -crl_check -CAfile ca/ca.pem -CRLfile crl1.pem srv/cert.pem >/dev/null
expect 0 "revoked" "$sx" ca list --ca ca
grep -q "$serial" out.txt || fail "ca list does not show $serial"
# crlNumber increases
n0=$(openssl crl -in crl0.pem -noout -crlnumber | cut -d= -f2)
n1=$(openssl crl -in crl1.pem -noout -crlnumber | cut -d= -f2)
[ "$((n1))" -gt "$((n0))" ] || fail "crlNumber did not increase ($n0 -> $n1)"
# stale CRL, and a CRL of another CA
"$sx" ca crl --ca ca --days 1 --out crl-short.pem >/dev/null
expect 3 "is stale (nextUpdate" "$sx" id verify --ca ca --crl crl-short.pem \
	--at "@$((now + 2 * 86400))" srv
"$sx" ca crl --ca other --out other-crl.pem >/dev/null
expect 3 "CRL is not issued by" "$sx" id verify --ca ca --crl other-crl.pem srv

# a root made by openssl is a trust anchor for id verify, but not a CA folder
mkdir ossl
openssl req -x509 -config ossl.cnf -extensions root -new -newkey ec \
	-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ossl/root.key -subj "/CN=openssl root" \
	-days 30 -out ossl/ca.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ol.key \
	-subj /CN=leaf.test -out ol.csr 2>/dev/null
openssl x509 -req -in ol.csr -CA ossl/ca.pem -CAkey ossl/root.key -set_serial 0x77 -days 30 \
	-extfile ossl.cnf -extensions leaf -out ol.pem 2>/dev/null
expect 0 ": ok" "$sx" id verify --ca ossl/ca.pem --role server --name leaf.test ol.pem
expect 0 ": ok" "$sx" id verify --ca ossl --role client ol.pem
expect 5 "not a CA folder" "$sx" ca issue --ca ossl --name x --role client --out ox
expect 5 "not a CA folder" "$sx" ca list --ca ossl

# usage
expect 2 "give exactly one certificate" "$sx" id verify --ca ca
expect 2 "--role must be server or client" "$sx" id verify --ca ca --role both srv
expect 2 "unknown option" "$sx" id verify --bogus --ca ca srv
expect 5 "nosuch.pem" "$sx" id verify --ca ca nosuch.pem
echo "all verify tests passed"
