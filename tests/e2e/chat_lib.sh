# Shared by the chat tests (tests/e2e/test_chat*.sh): lib.sh, client
# identities, a bounded `sxfer chat`, and transcript checks.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# chat_ids NAME...: a client identity $WORK/NAME for each NAME (CA from make_pki).
chat_ids() {
	local n
	for n in "$@"; do
		"$SXFER" ca issue --ca "$WORK/ca" --name "$n" --role client --out "$WORK/$n" >/dev/null
	done
}

# chat WHO [options...]: sxfer chat as WHO against the server on $PORT,
# bounded in time (a hang is exit 124): CHAT_DEADLINE seconds in all (60),
# CHAT_CONNECT seconds to connect and join (20).
chat() {
	local who=$1
	shift
	timeout "${CHAT_DEADLINE:-60}" "$SXFER" chat --id "$WORK/$who" \
		--timeout "${CHAT_CONNECT:-20}" "127.0.0.1:$PORT" "$@"
}

# verify_tr FILE: the transcript verifies against the CA.
verify_tr() {
	"$SXFER" verify --transcript "$1" --ca "$WORK/ca" >"$WORK/verify.out" 2>&1 ||
		{ cat "$WORK/verify.out" >&2; fail "transcript $1 does not verify"; }
}

# verify_exit CODE FILE [options]: sxfer verify --transcript FILE exits CODE
# (its output in $WORK/last.out).
verify_exit() {
	local want=$1 file=$2
	shift 2
	expect_exit "$want" "$SXFER" verify --transcript "$file" --ca "$WORK/ca" "$@"
}
