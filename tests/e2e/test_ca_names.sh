#!/usr/bin/env bash
# One name, one valid certificate (ca issue, ca sign, --replace), ca sign's
# --name and the files it leaves beside the certificate, the CSR route to a
# real transfer, the two passphrases of ca issue (and what openssl opens),
# ca show and ca token.
source "$(dirname "$0")/lib.sh"
sx=$SXFER
cd "$WORK"
make_pki # ca, server (server.test: localhost, 127.0.0.1), cam (cam-01)

# expect CODE PATTERN CMD...: exit CODE, PATTERN in its stdout or stderr.
expect() {
	local code=$1 pattern=$2
	shift 2
	expect_exit "$code" "$@"
	if ! grep -qF -- "$pattern" "$WORK/last.out" "$WORK/last.err"; then
		cat "$WORK/last.out" "$WORK/last.err" >&2
		fail "expected '$pattern' from: $*"
	fi
	ok "[$code] $pattern"
}
serial_of() { "$sx" id show --cert "$1" | awk '/^serial:/ {print $2}'; }
# list_of SERIAL: "STATUS REASON" from ca list
list_of() { "$sx" ca list --ca ca | awk -v s="$1" '$1 == s {print $4, $5}'; }
# crl_reason SERIAL: the reason code of SERIAL in ca/crl.pem
crl_reason() {
	openssl crl -in ca/crl.pem -noout -text |
		awk -v s="$1" 'toupper($0) ~ "SERIAL NUMBER: 0*" s "$" {f = 1; next}
			f && /Reason Code/ {getline; gsub(/^ +/, ""); print; exit}'
}

# ---- ca issue: a name with a valid certificate --------------------------------
old=$(serial_of cam/cert.pem)
expect 3 "name 'cam-01' already has a valid certificate (serial $old, until " \
	"$sx" ca issue --ca ca --name cam-01 --role client --out cam-again
grep -qF -- "--replace revokes it" last.err || fail "the refusal does not name --replace"
[ ! -e cam-again/key.pem ] || fail "a refused issue left a key behind"
expect 0 "revoked serial $old (superseded)" \
	"$sx" ca issue --ca ca --name cam-01 --role client --out cam-new --replace
new=$(serial_of cam-new/cert.pem)
[ "$(list_of "$old")" = "revoked superseded" ] || fail "ca list: $old is $(list_of "$old")"
[ "$(list_of "$new")" = "valid -" ] || fail "ca list: $new is $(list_of "$new")"
"$sx" ca crl --ca ca --out crl.pem >/dev/null
[ "$(crl_reason "$old")" = "Superseded" ] || fail "CRL: $old is '$(crl_reason "$old")'"
expect 3 "is revoked" "$sx" id verify --ca ca cam/cert.pem
ok "ca issue --replace revoked $old (superseded, in ca list and the CRL)"

# ---- ca sign: --name is required; ca.pem and crl.pem beside the certificate --
"$sx" id new --out dev --name dev.test >/dev/null
expect 2 "the CSR asks for 'dev.test'" \
	"$sx" ca sign --ca ca --csr dev/csr.pem --role both --out dev/cert.pem
[ ! -e dev/cert.pem ] && [ ! -e dev/ca.pem ] || fail "a refused sign wrote files"
expect 0 "issued 'dev.test' (both)" "$sx" ca sign --ca ca --csr dev/csr.pem --name dev.test \
	--role both --dns localhost --ip 127.0.0.1 --out dev/cert.pem
cmp -s dev/ca.pem ca/ca.pem || fail "ca sign did not leave the CA's ca.pem"
cmp -s dev/crl.pem ca/crl.pem || fail "ca sign did not leave the CA's crl.pem"
"$sx" id new --out dev2 --name dev.test >/dev/null
devold=$(serial_of dev/cert.pem)
expect 3 "name 'dev.test' already has a valid certificate (serial $devold" \
	"$sx" ca sign --ca ca --csr dev2/csr.pem --name dev.test --role client --out dev2/cert.pem
[ ! -e dev2/cert.pem ] && [ ! -e dev2/ca.pem ] || fail "a refused sign wrote files"
expect 0 "revoked serial $devold (superseded)" "$sx" ca sign --ca ca --csr dev2/csr.pem \
	--name dev.test --role client --out dev2/cert.pem --replace
[ "$(list_of "$devold")" = "revoked superseded" ] || fail "ca list: $devold"
"$sx" ca crl --ca ca --out crl.pem >/dev/null
[ "$(crl_reason "$devold")" = "Superseded" ] || fail "CRL: $devold is '$(crl_reason "$devold")'"
ok "ca sign --replace revoked $devold"

# a ca.pem of another CA beside the output is refused, not overwritten
"$sx" ca init --ca other --name "other CA" >/dev/null
"$sx" id new --out dev3 --name dev3 >/dev/null
"$sx" ca sign --ca other --csr dev3/csr.pem --name dev3 --role client --out dev3/cert.pem \
	>/dev/null
expect 5 "holds another CA certificate (CN=other CA)" \
	"$sx" ca sign --ca ca --csr dev3/csr.pem --name dev3 --role client --out dev3/mine.pem
[ ! -e dev3/mine.pem ] || fail "a certificate was written beside another CA's ca.pem"
cmp -s dev3/ca.pem other/ca.pem || fail "another CA's ca.pem was overwritten"
"$sx" ca list --ca ca | grep -q " dev3$" && fail "a refused sign was recorded in the index"

# ---- the CSR route (id new + ca sign) to a real transfer -----------------------
rand_file "$WORK/f.bin" 200000
start_server srv --id "$WORK/server" --out "$WORK/in"
"$sx" send --id dev2 --quiet "127.0.0.1:$PORT" "$WORK/f.bin" || fail "send with the CSR identity"
cmp "$WORK/f.bin" "$WORK/in/dev.test/f.bin" || fail "the file did not arrive whole"
stop_server "$SERVER_PID"
ok "an identity from id new + ca sign sends to a server"

# ---- ca issue: two keys, two passphrases ---------------------------------------
expect 0 "issued 'sep'" env SXFER_ID_PASSPHRASE=device-pass \
	"$sx" ca issue --ca ca --name sep --role client --out sep
openssl pkey -in sep/key.pem -passin pass:device-pass -noout || fail "device key: own passphrase"
if openssl pkey -in sep/key.pem -passin env:SXFER_PASSPHRASE -noout 2>/dev/null; then
	fail "the device key opens with the CA's passphrase"
fi
expect 3 "sep/key.pem: wrong passphrase" "$sx" send --id sep --quiet 127.0.0.1:1 f.bin
printf 'file-pass\n' >idpass.txt
"$sx" ca issue --ca ca --name sepf --role client --out sepf --id-pass-file idpass.txt >/dev/null
openssl pkey -in sepf/key.pem -passin pass:file-pass -noout || fail "--id-pass-file not used"
expect 2 "--id-pass-file and --no-passphrase exclude each other" "$sx" ca issue --ca ca \
	--name x --role client --out x --id-pass-file idpass.txt --no-passphrase
if command -v setsid >/dev/null; then # no terminal to prompt on
	expect 2 "use --id-pass-file F or set SXFER_ID_PASSPHRASE" env -u SXFER_ID_PASSPHRASE \
		setsid -w "$sx" ca issue --ca ca --name nopass --role client --out nopass </dev/null
	[ ! -e nopass/key.pem ] || fail "a key was written without a passphrase"
	"$sx" ca list --ca ca | grep -q " nopass$" && fail "nopass was issued without its key"
	expect 2 "a passphrase is needed" env -u SXFER_PASSPHRASE setsid -w \
		"$sx" ca issue --ca ca --name plain2 --role client --out plain2 --no-passphrase \
		</dev/null
fi
expect 0 "the new key.pem is NOT encrypted" \
	"$sx" ca issue --ca ca --name plain --role client --out plain --no-passphrase
grep -q "BEGIN PRIVATE KEY" plain/key.pem || fail "--no-passphrase key is not plain PKCS#8"
expect 0 "usage: sxfer ca issue" "$sx" ca issue --help
grep -q "SXFER_ID_PASSPHRASE" last.out || fail "ca issue --help does not name SXFER_ID_PASSPHRASE"

# openssl opens the CA key (root cost) and a device key; scrypt p 8 and 1
openssl pkey -in ca/ca.key.pem -passin env:SXFER_PASSPHRASE -noout || fail "openssl: CA key"
openssl pkey -in cam/key.pem -passin env:SXFER_ID_PASSPHRASE -noout || fail "openssl: device key"
scrypt_p() { # N, r, p: the three INTEGERs after the scrypt OID
	openssl asn1parse -in "$1" | awk '/:scrypt/ {s = 1; next}
		s && /INTEGER/ {sub(/.*:/, ""); v = v (v ? " " : "") $0; if (++n == 3) {print v; exit}}'
}
[ "$(scrypt_p ca/ca.key.pem)" = "4000 08 08" ] || fail "CA key scrypt: $(scrypt_p ca/ca.key.pem)"
[ "$(scrypt_p cam/key.pem)" = "4000 08 01" ] || fail "device key scrypt: $(scrypt_p cam/key.pem)"
ok "ca issue: separate passphrases, --no-passphrase, openssl opens both key kinds"

# ---- ca show and ca init print the root's fingerprint ---------------------------
fp=$("$sx" id show --cert ca/ca.pem | awk '/^SHA-256:/ {print $2}')
expect 0 "SHA-256:     $fp" env -u SXFER_PASSPHRASE "$sx" ca show --ca ca
grep -q "^subject:     CN=e2e CA$" last.out || fail "ca show: subject"
grep -q "^key type:    EC prime256v1" last.out || fail "ca show: key type"
grep -q "^valid:       .* to " last.out || fail "ca show: validity"
grep -q "^lifetime:    36[45][0-9] days left (99% of 3650 days)$" last.out ||
	fail "ca show: lifetime: $(grep lifetime last.out)"
"$sx" ca init --ca third --name "third CA" --no-passphrase >init.txt 2>/dev/null
grep -q "^SHA-256:     $("$sx" id show --cert third/ca.pem | awk '/^SHA-256:/ {print $2}')$" \
	init.txt || fail "ca init does not print the root's fingerprint"
expect 5 "not a CA folder" "$sx" ca show --ca nowhere
"$sx" id show --id cam-new >show.txt
grep -q "^lifetime:    39[67] days left (99% of 397 days)$" show.txt ||
	fail "id show: lifetime: $(grep lifetime show.txt)"
ok "ca show and ca init print the fingerprint of id show; id show the lifetime left"

# ---- ca token ------------------------------------------------------------------
env -u SXFER_PASSPHRASE "$sx" ca token --ca ca --name cam-09 --dns cam-09.test --ttl 2h \
	--replace >tok.txt 2>tok.err || fail "ca token (no CA key needed)"
[ "$(wc -l <tok.txt)" -eq 1 ] || fail "ca token printed more than one line"
grep -q '^sxt1\.[A-Za-z0-9_-]*$' tok.txt || fail "not a token: $(cat tok.txt)"
grep -q "one-time token for 'cam-09' (client; DNS:cam-09.test; replaces" tok.err ||
	fail "ca token summary: $(cat tok.err)"
h=$(tr -d '\n' <tok.txt | sha256sum | cut -d' ' -f1)
grep -q "^unused	$h	[0-9]*	0	-	client	replace	DNS:cam-09.test	cam-09$" ca/tokens.txt ||
	fail "the token is not recorded: $(cat ca/tokens.txt)"
if grep -qF "$(cut -c6-40 tok.txt)" ca/tokens.txt; then
	fail "tokens.txt holds the token's text"
fi
[ "$(stat -c %a ca/tokens.txt)" = 600 ] || fail "tokens.txt is not 0600"
expect 2 "--ttl must be a duration" "$sx" ca token --ca ca --name x --ttl 31d
expect 2 "--ttl must be a duration" "$sx" ca token --ca ca --name x --ttl 10
expect 2 "--role must be" "$sx" ca token --ca ca --name x --role admin
expect 2 "--name NAME is required" "$sx" ca token --ca ca
expect 5 "not a CA folder" "$sx" ca token --ca nowhere --name x
ok "ca token prints one sxt1. line and records its hash"
echo "all CA name, passphrase and token tests passed"
