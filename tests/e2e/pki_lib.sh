# Shared helpers for the PKI end-to-end tests (sourced, not run by ctest).
set -euo pipefail
: "${SXFER:?set SXFER to the sxfer binary}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export SXFER_PASSPHRASE=test-passphrase
# ca issue encrypts a new identity key under its own passphrase, never the
# CA key's.
export SXFER_ID_PASSPHRASE=test-id-passphrase

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect CODE PATTERN cmd...: the command exits with CODE and its stderr
# (or stdout) contains PATTERN.
expect() {
	local code=$1 pattern=$2 rc=0
	shift 2
	"$@" >out.txt 2>err.txt || rc=$?
	if [ "$rc" -ne "$code" ]; then
		cat out.txt err.txt >&2
		fail "expected exit $code, got $rc: $*"
	fi
	if ! grep -qF -- "$pattern" err.txt out.txt; then
		cat out.txt err.txt >&2
		fail "expected '$pattern' in the output of: $*"
	fi
	echo "ok: [$code] $pattern"
}

# A minimal OpenSSL config with a leaf and a CA extension section.
write_openssl_cnf() {
	cat >"$1" <<'CNF'
[req]
distinguished_name = dn
[dn]
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:leaf.test
[catrue]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign
extendedKeyUsage = serverAuth
subjectAltName = DNS:leaf.test
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
}
