#!/usr/bin/env bash
# Where a signed `sxfer send` keeps its receipts and leaf cache without
# --receipts: $STATE_DIRECTORY (systemd's StateDirectory=), else
# $XDG_STATE_HOME/sxfer, else $HOME/.local/state/sxfer; a service user whose
# HOME is /nonexistent works with either of the first two, and with none of
# them the send fails before connecting (exit 2, naming what to set) and
# creates nothing in the current folder.
source "$(dirname "$0")/lib.sh"
make_pki
start_server srv --id "$WORK/server" --out "$WORK/out"
rand_file "$WORK/a.bin" 300000

# send_in DIR CMD_ENV...: a signed send of a.bin run from DIR with the
# environment given (HOME, STATE_DIRECTORY, XDG_STATE_HOME unset unless set
# there); the exit code is checked by the caller through expect_exit.
send_in() {
	local dir=$1
	shift
	mkdir -p "$dir"
	(cd "$dir" && env -u HOME -u STATE_DIRECTORY -u XDG_STATE_HOME "$@" \
		"$SXFER" send --id "$WORK/cam" --quiet "127.0.0.1:$PORT" "$WORK/a.bin")
}

# receipts_in DIR: DIR holds exactly one receipt.
receipts_in() {
	local n
	n=$(find "$1" -maxdepth 1 -name '*.sxreceipt' | wc -l)
	[ "$n" -eq 1 ] || { ls -la "$1" >&2 || true; fail "expected one receipt in $1, found $n"; }
}

# empty_dir DIR: nothing was created in DIR (the folder the send ran in).
empty_dir() {
	[ -z "$(ls -A "$1")" ] || { ls -la "$1" >&2; fail "the send created files in its current folder $1"; }
}

# 1. STATE_DIRECTORY wins over XDG_STATE_HOME and a missing HOME.
mkdir -p "$WORK/state1"
expect_exit 0 send_in "$WORK/cwd1" HOME=/nonexistent STATE_DIRECTORY="$WORK/state1" \
	XDG_STATE_HOME="$WORK/xdg-unused"
receipts_in "$WORK/state1/receipts"
[ -d "$WORK/state1/leaves" ] || fail "no leaf cache beside the receipts in STATE_DIRECTORY"
[ ! -e "$WORK/xdg-unused" ] || fail "XDG_STATE_HOME was used although STATE_DIRECTORY is set"
empty_dir "$WORK/cwd1"
ok "STATE_DIRECTORY: receipts in \$STATE_DIRECTORY/receipts, leaves beside them"

# 2. XDG_STATE_HOME: the sxfer folder under it. The file is there already
# (same content): the send still ends with a signed receipt.
expect_exit 0 send_in "$WORK/cwd2" HOME=/nonexistent XDG_STATE_HOME="$WORK/xdg"
receipts_in "$WORK/xdg/sxfer/receipts"
empty_dir "$WORK/cwd2"
ok "XDG_STATE_HOME: receipts in \$XDG_STATE_HOME/sxfer/receipts"

# 3. HOME alone: ~/.local/state/sxfer.
mkdir -p "$WORK/home3"
expect_exit 0 send_in "$WORK/cwd3" HOME="$WORK/home3"
receipts_in "$WORK/home3/.local/state/sxfer/receipts"
ok "HOME: receipts in ~/.local/state/sxfer/receipts"

# 4. None usable: HOME=/nonexistent, then HOME unset. Exit 2 before any
# connection, the message names the variables, nothing in the current folder.
before=$(log_count "$WORK/srv.log" "event=conn_open")
expect_exit 2 send_in "$WORK/cwd4" HOME=/nonexistent
for v in STATE_DIRECTORY XDG_STATE_HOME "HOME=/nonexistent" "--receipts"; do
	grep -q -- "$v" "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "the error does not name $v"; }
done
empty_dir "$WORK/cwd4"
expect_exit 2 send_in "$WORK/cwd5"
grep -q "HOME is not set" "$WORK/last.err" || { cat "$WORK/last.err" >&2; fail "no 'HOME is not set'"; }
empty_dir "$WORK/cwd5"
[ "$(log_count "$WORK/srv.log" "event=conn_open")" -eq "$before" ] ||
	fail "the send connected although it had nowhere to keep receipts"
ok "no state folder: exit 2 naming STATE_DIRECTORY, XDG_STATE_HOME and HOME, nothing created"

# 5. --receipts DIR needs none of them; --no-sign keeps no state at all.
expect_exit 0 env -u HOME -u STATE_DIRECTORY -u XDG_STATE_HOME \
	"$SXFER" send --id "$WORK/cam" --quiet --receipts "$WORK/r6" "127.0.0.1:$PORT" "$WORK/a.bin"
receipts_in "$WORK/r6"
mkdir -p "$WORK/cwd7"
expect_exit 0 env -C "$WORK/cwd7" -u STATE_DIRECTORY -u XDG_STATE_HOME HOME=/nonexistent \
	"$SXFER" send --id "$WORK/cam" --quiet --no-sign "127.0.0.1:$PORT" "$WORK/a.bin"
empty_dir "$WORK/cwd7"
ok "--receipts DIR, or --no-sign, without HOME"
stop_server "$SERVER_PID"
