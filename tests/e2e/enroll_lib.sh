# Shared helpers of the enrollment tests (test_enroll*.sh, sourced): a CA
# with the enrollment service's identity, the service started on an
# ephemeral loopback port and stopped by its PID, tokens.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# root_fp CADIR: the root's SHA-256 fingerprint, as `ca show` prints it.
root_fp() {
	"$SXFER" ca show --ca "$1" | sed -n 's/^SHA-256: *//p'
}

# make_ca DIR NAME: a CA with its first CRL and the service's identity in
# DIR.esrv (a server certificate for localhost and 127.0.0.1).
make_ca() {
	"$SXFER" ca init --ca "$1" --name "$2" >/dev/null
	"$SXFER" ca issue --ca "$1" --name "enroll.$(basename "$1").test" --role server \
		--dns localhost --ip 127.0.0.1 --out "$1.esrv" >/dev/null
	"$SXFER" ca crl --ca "$1" --out "$1.crl0.pem" >/dev/null
}

# start_ca_serve NAME CADIR [ca serve options...]: starts `sxfer ca serve`
# with the identity CADIR.esrv on 127.0.0.1:0; sets EPORT and EPID; its log
# is $WORK/NAME.log.
start_ca_serve() {
	local name=$1 ca=$2
	shift 2
	rm -f "$WORK/$name.port"
	"$SXFER" ca serve --ca "$ca" --id "$ca.esrv" --listen 127.0.0.1:0 \
		--port-file "$WORK/$name.port" "$@" 2>"$WORK/$name.log" &
	EPID=$!
	PIDS+=("$EPID")
	await_port "$name" "$EPID"
	EPORT=$PORT
}

# token NAME [ca token options...]: a one-time token of $WORK/ca.
token() {
	local name=$1
	shift
	"$SXFER" ca token --ca "$WORK/ca" --name "$name" "$@" 2>/dev/null
}

# enroll_at PORT [enroll options...]: sxfer enroll pinning $FP.
enroll_at() {
	local port=$1
	shift
	"$SXFER" enroll --ca-fingerprint "$FP" "$@" "127.0.0.1:$port"
}

# has FILE PATTERN: FILE contains the fixed string PATTERN, else the test
# fails showing FILE.
has() {
	grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "'$2' not in $1"; }
}
