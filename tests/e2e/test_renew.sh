#!/usr/bin/env bash
# sxfer renew and sxfer crl fetch against sxfer ca serve: a renewal (of a
# device or a server) keeps the name, role and subjectAltNames (with the
# same key or a new one) and the identity sends with the new certificate;
# an expired and a revoked certificate are refused; crl fetch writes a
# newer CRL, and refuses one whose crlNumber goes back, one signed by
# another CA and a stale one.
#
# The expired certificate and the stale CRL are made with python3
# cryptography, signed with the CA key (decrypted by openssl pkey): sxfer
# issues nothing that is already expired (`ca issue --days` is at least 1,
# `ca crl --days` too), and no faketime is at hand.
source "$(dirname "$0")/enroll_lib.sh"
python3 -c 'import cryptography' 2>/dev/null || { echo "skip - python3 cryptography"; exit 77; }
make_ca "$WORK/ca" "e2e CA"
FP=$(root_fp "$WORK/ca")
start_ca_serve esv "$WORK/ca"
EP=$EPORT
E="127.0.0.1:$EP"

tok=$(token cam-20 --role both --dns cam-20.example)
enroll_at "$EP" --token "$tok" --out "$WORK/dev" >/dev/null
"$SXFER" ca issue --ca "$WORK/ca" --name server.test --role server --dns localhost \
	--ip 127.0.0.1 --out "$WORK/server" >/dev/null
start_server srv --id "$WORK/server" --out "$WORK/out"
TP=$PORT
rand_file "$WORK/f.bin" 100000

# json FILE KEY: one field of a JSON object.
json() {
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(str(v).lower() if isinstance(v,bool) else v)' "$1" "$2"
}
show() { "$SXFER" id show --id "$WORK/dev" | sed -n "s/^$1: *//p"; }

# Renewal with the current key.
serial0=$(show serial)
cp "$WORK/dev/key.pem" "$WORK/key.before"
"$SXFER" renew --id "$WORK/dev" "$E" --json >"$WORK/r1.json"
[ "$(json "$WORK/r1.json" result)" = ok ] || { cat "$WORK/r1.json" >&2; fail "renew"; }
[ "$(json "$WORK/r1.json" old_serial)" = "$serial0" ] || fail "old serial"
serial1=$(show serial)
[ "$(json "$WORK/r1.json" serial)" = "$serial1" ] && [ "$serial1" != "$serial0" ] || fail "serial"
[ "$(json "$WORK/r1.json" new_key)" = false ] || fail "new_key"
[ "$(show role)" = both ] && [ "$(show SANs)" = "DNS:cam-20.example" ] || fail "role or SANs changed"
show subject | grep -q "CN=cam-20" || fail "name changed"
cmp "$WORK/dev/key.pem" "$WORK/key.before" || fail "the key changed without --new-key"
ls "$WORK/dev" | grep -q '\.old$\|\.new$' && fail "files left: $(ls "$WORK/dev")"
"$SXFER" send --id "$WORK/dev" --quiet "127.0.0.1:$TP" "$WORK/f.bin"
cmp "$WORK/f.bin" "$WORK/out/cam-20/f.bin"
has "$WORK/esv.log" "kind=renew result=issued name=\"cam-20\" serial=$serial1"
ok "renewed with the same key: serial $serial0 -> $serial1, name, role and SANs kept, send works"

# Renewal with a new key (encrypted as the old one was).
"$SXFER" renew --id "$WORK/dev" "$E" --new-key >"$WORK/r2.out"
has "$WORK/r2.out" "renewed 'cam-20' (both)"
has "$WORK/r2.out" "new key"
cmp -s "$WORK/dev/key.pem" "$WORK/key.before" && fail "--new-key kept the key"
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$WORK/dev/key.pem" || fail "the new key is not encrypted"
"$SXFER" id verify --ca "$WORK/ca" --role client "$WORK/dev" >/dev/null
rm -f "$WORK/out/cam-20/f.bin" "$WORK/out/cam-20/f.bin.sxsig"
"$SXFER" send --id "$WORK/dev" --quiet "127.0.0.1:$TP" "$WORK/f.bin"
cmp "$WORK/f.bin" "$WORK/out/cam-20/f.bin"
ok "renewed with a new key: $(tail -n1 "$WORK/r2.out"); send works"

# A renewal with a new key cut off between its two renames: the new key
# under key.pem, the previous certificate still under cert.pem, the previous
# pair as .old (and a stray .new). The next renew puts the previous key
# back and renews.
cp "$WORK/dev/key.pem" "$WORK/key.prev"
ln "$WORK/dev/key.pem" "$WORK/dev/key.pem.old"
ln "$WORK/dev/cert.pem" "$WORK/dev/cert.pem.old"
cp "$WORK/dev/cert.pem" "$WORK/dev/cert.pem.new"
rm "$WORK/dev/key.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/dev/key.pem" 2>/dev/null
chmod 600 "$WORK/dev/key.pem"
"$SXFER" renew --id "$WORK/dev" "$E" >"$WORK/r2b.out" 2>"$WORK/r2b.err" ||
	{ cat "$WORK/r2b.err" >&2; fail "renew after a cut renewal"; }
has "$WORK/r2b.err" "event=renew_recovered"
cmp -s "$WORK/dev/key.pem" "$WORK/key.prev" || fail "the previous key did not come back"
ls "$WORK/dev" | grep -q '\.old$\|\.new$' && fail "leftovers: $(ls "$WORK/dev")"
rm -f "$WORK/out/cam-20/f.bin" "$WORK/out/cam-20/f.bin.sxsig"
"$SXFER" send --id "$WORK/dev" --quiet "127.0.0.1:$TP" "$WORK/f.bin"
ok "a renewal cut between its renames: the next renew restores the previous key and renews"

# A server's certificate renews too (sxfer serve's lifetime warning says
# "sxfer renew"): the service takes serverAuth as it takes clientAuth.
"$SXFER" renew --id "$WORK/server" "$E" >"$WORK/r3.out"
has "$WORK/r3.out" "renewed 'server.test' (server)"
"$SXFER" id verify --ca "$WORK/ca" --role server "$WORK/server" >/dev/null
"$SXFER" id show --id "$WORK/server" | grep -q "DNS:localhost, IP:127.0.0.1\|DNS:localhost,IP:127.0.0.1" ||
	fail "the server's SANs changed: $("$SXFER" id show --id "$WORK/server")"
ok "a server identity renews: $(head -n1 "$WORK/r3.out")"

# The CA key in the clear, for python3 cryptography.
openssl pkey -in "$WORK/ca/ca.key.pem" -passin env:SXFER_PASSPHRASE -out "$WORK/ca.plain.pem"
python3 - "$WORK" <<'PY'
import datetime, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
work = sys.argv[1]
ca_key = serialization.load_pem_private_key(open(f"{work}/ca.plain.pem", "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(f"{work}/ca/ca.pem", "rb").read())
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old-01")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 30 * day).not_valid_after(now - day)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
d = f"{work}/expired"
os.makedirs(d, mode=0o700)
fd = os.open(f"{d}/key.pem", os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()))
os.close(fd)
open(f"{d}/cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(f"{d}/ca.pem", "wb").write(ca.public_bytes(serialization.Encoding.PEM))
stale = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
         .last_update(now - 10 * day).next_update(now - day)
         .add_extension(x509.CRLNumber(1000), critical=False)
         .sign(ca_key, hashes.SHA256()))
open(f"{work}/stale.crl.pem", "wb").write(stale.public_bytes(serialization.Encoding.PEM))
PY
rm -f "$WORK/ca.plain.pem"

# An expired certificate: TLS goes through (the service takes any client),
# the renewal does not.
expect_exit 3 "$SXFER" renew --id "$WORK/expired" "$E"
has "$WORK/last.err" "renewal needs a valid certificate of this CA"
has "$WORK/last.err" "expired"
has "$WORK/esv.log" 'kind=renew result=refused name="old-01"'
ok "an expired certificate is not renewed: $(tail -n1 "$WORK/last.err")"

# crl fetch from a CA that has made no CRL: the device is told so.
mv "$WORK/ca/crl.pem" "$WORK/ca.crl.aside"
expect_exit 5 "$SXFER" crl fetch --id "$WORK/dev" "$E"
has "$WORK/last.err" "enrollment service: the CA has made no CRL yet"
mv "$WORK/ca.crl.aside" "$WORK/ca/crl.pem"
ok "crl fetch from a CA without a CRL: $(tail -n1 "$WORK/last.err")"

# crl fetch: a newer CRL replaces crl.pem; the same one leaves it.
n0=$(openssl crl -in "$WORK/dev/crl.pem" -noout -crlnumber | sed 's/.*=//')
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-a.pem" >/dev/null
"$SXFER" crl fetch --id "$WORK/dev" "$E" --json >"$WORK/c1.json"
[ "$(json "$WORK/c1.json" crl_written)" = true ] || { cat "$WORK/c1.json" >&2; fail "crl fetch"; }
cmp "$WORK/dev/crl.pem" "$WORK/crl-a.pem" || fail "crl.pem is not the CA's new CRL"
want=$((n0 + 1)) # openssl prints 0x01
[ "$want" -eq "$(json "$WORK/c1.json" crl_number)" ] || fail "crl number: want $want"
"$SXFER" crl fetch --id "$WORK/dev" "$E" >"$WORK/c2.out"
has "$WORK/c2.out" "unchanged"
ok "crl fetch: crl.pem replaced by the CA's newer CRL; the same one again leaves it"

# A CRL going back (the service's crl.pem replaced by an older one), one of
# another CA, a stale one: refused, crl.pem as it was.
cp "$WORK/ca/crl.pem" "$WORK/crl-older.pem"
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-b.pem" >/dev/null
"$SXFER" crl fetch --id "$WORK/dev" "$E" >/dev/null
cp "$WORK/crl-older.pem" "$WORK/ca/crl.pem"
expect_exit 3 "$SXFER" crl fetch --id "$WORK/dev" "$E"
has "$WORK/last.err" "is older than"
cmp "$WORK/dev/crl.pem" "$WORK/crl-b.pem" || fail "an older CRL was written"
make_ca "$WORK/ca2" "other CA"
cp "$WORK/ca2.crl0.pem" "$WORK/ca/crl.pem"
expect_exit 3 "$SXFER" crl fetch --id "$WORK/dev" "$E"
has "$WORK/last.err" "the CRL the service sent"
cmp "$WORK/dev/crl.pem" "$WORK/crl-b.pem" || fail "a CRL of another CA was written"
cp "$WORK/stale.crl.pem" "$WORK/ca/crl.pem"
expect_exit 3 "$SXFER" crl fetch --id "$WORK/dev" "$E"
has "$WORK/last.err" "stale"
cmp "$WORK/dev/crl.pem" "$WORK/crl-b.pem" || fail "a stale CRL was written"
"$SXFER" ca crl --ca "$WORK/ca" --out "$WORK/crl-c.pem" >/dev/null
ok "crl fetch refuses a CRL going back, one of another CA and a stale one"

# A revoked certificate: the CA's index refuses it.
cp "$WORK/dev/cert.pem" "$WORK/cert.before"
"$SXFER" ca revoke --ca "$WORK/ca" --cert "$WORK/dev/cert.pem" >/dev/null
expect_exit 3 "$SXFER" renew --id "$WORK/dev" "$E"
has "$WORK/last.err" "revoked"
cmp "$WORK/dev/cert.pem" "$WORK/cert.before" || fail "a refused renewal changed cert.pem"
ls "$WORK/dev" | grep -q '\.old$\|\.new$' && fail "files left: $(ls "$WORK/dev")"
ok "a revoked certificate is not renewed: $(tail -n1 "$WORK/last.err")"
stop_server "$EPID"
