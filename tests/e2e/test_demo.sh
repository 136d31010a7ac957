#!/usr/bin/env bash
# The README's first command (the demo) must keep working: run it as a user
# would and check its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! bash "$root/scripts/demo.sh" </dev/null >"$log" 2>&1; then
	tail -40 "$log" >&2
	echo "FAIL: scripts/demo.sh failed" >&2
	exit 1
fi
tail -n1 "$log" | grep -q '^demo: both directions verified byte for byte, signatures and receipts verified$' || {
	tail -20 "$log" >&2
	echo "FAIL: the demo did not finish" >&2
	exit 1
}
echo "ok - scripts/demo.sh runs and verifies its transfer"
