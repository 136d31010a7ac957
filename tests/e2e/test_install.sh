#!/usr/bin/env bash
# What `cmake --install` puts under a prefix besides the binary (dist/): the
# man pages (one per command, when scdoc is installed), the bash completion,
# the systemd units, the example configuration and the documents; and that
# they agree with the binary: each command's page documents exactly the
# options its --help lists, the completion offers them, and the example
# configuration uses only option names (docs/OPERATIONS.md, "Install").
source "$(dirname "$0")/lib.sh"
src=$(cd "$E2E_DIR/../.." && pwd)
build=${SX_BUILD_DIR:-$(dirname "$SXFER")}
if ! command -v cmake >/dev/null || [ ! -f "$build/cmake_install.cmake" ]; then
	echo "skip - install: no cmake, or no build folder with install rules at $build"
	exit 77
fi
p="$WORK/prefix"
cmake --install "$build" --prefix "$p" >"$WORK/install.log" 2>&1 ||
	{ cat "$WORK/install.log" >&2; fail "cmake --install failed"; }
# Nothing outside the prefix: every installed path is under it.
if grep -E '^-- (Installing|Up-to-date): ' "$WORK/install.log" | grep -v -- " $p/"; then
	fail "installed outside the prefix"
fi

for f in bin/sxfer share/bash-completion/completions/sxfer share/doc/sxfer/README.md \
	lib/systemd/system/sxfer-serve.service lib/systemd/system/sxfer-ca.service \
	lib/systemd/system/sxfer-agent@.service lib/systemd/system/sxfer-renew.service \
	lib/systemd/system/sxfer-renew.timer etc/sxfer/serve.conf.example \
	etc/sxfer/agent.conf.example etc/sxfer/renew.env.example etc/sxfer/ca.env.example; do
	[ -f "$p/$f" ] || fail "not installed: $f"
done
ok "cmake --install --prefix: binary, completion, units, examples, docs"

# The commands of the binary, and each one's options (its subcommands' too).
mapfile -t cmds < <("$SXFER" help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' |
	grep -vx help)
[ "${#cmds[@]}" -ge 13 ] || fail "sxfer help lists ${#cmds[@]} commands"
# help_text CMD: the help of CMD and of each of its subcommands.
help_text() {
	local c=$1 s
	"$SXFER" "$c" --help 2>&1 || true
	for s in $("$SXFER" "$c" --help 2>&1 | awk '/^subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'); do
		"$SXFER" "$c" "$s" --help 2>&1 || true
	done
}
# has_opt FILE OPTION: FILE names OPTION (not only a longer one it begins).
has_opt() {
	grep -qE -- "(^|[^a-z0-9-])$2([^a-z0-9-]|\$)" "$1"
}
# The completion's lists, as the shell that loads it sees them.
# shellcheck disable=SC1091
source "$p/share/bash-completion/completions/sxfer"
# comp_opts CMD: the options the completion offers for CMD and its subcommands.
comp_opts() {
	local v
	for v in $(compgen -v "_sxfer_opts_$1"); do
		[[ $v == "_sxfer_opts_$1" || $v == "_sxfer_opts_$1"_* ]] && echo "${!v}"
	done | tr ' ' '\n' | grep -v -- '^--help$' | sort -u
}

# Man pages: one source per page in dist/man, built when scdoc is there.
man_built=no
[ -f "$p/share/man/man1/sxfer.1.gz" ] && man_built=yes
if [ "$man_built" = no ] && grep -q "^SCDOC:FILEPATH=/" "$build/CMakeCache.txt"; then
	fail "scdoc is there, yet no man pages were installed"
fi
problems=()
for c in "${cmds[@]}"; do
	scd="$src/dist/man/sxfer-$c.1.scd"
	[ -f "$scd" ] || { problems+=("no page source dist/man/sxfer-$c.1.scd"); continue; }
	if [ "$man_built" = yes ]; then
		[ -f "$p/share/man/man1/sxfer-$c.1.gz" ] || problems+=("sxfer-$c.1.gz not installed")
	fi
	help_text "$c" >"$WORK/help.$c"
	mapfile -t opts < <(comp_opts "$c")
	[ "${#opts[@]}" -gt 0 ] || [ "$c" = ledger ] || problems+=("no options in the completion for $c")
	for o in "${opts[@]}"; do
		# in the help (the completion invents nothing)...
		has_opt "$WORK/help.$c" "$o" || problems+=("completion of $c offers $o, not in its --help")
		# ...and in the page, as a bold option.
		grep -q -- "\*$o\*" "$scd" || problems+=("sxfer-$c(1) does not document $o")
	done
	# Every option the page documents exists.
	for o in $(grep -o -- '\*--[a-z][a-z0-9-]*\*' "$scd" | tr -d '*' | sort -u); do
		has_opt "$WORK/help.$c" "$o" || problems+=("sxfer-$c(1) documents $o, which $c does not have")
	done
done
for scd in "$src"/dist/man/sxfer-*.1.scd; do
	c=$(basename "$scd" .1.scd)
	c=${c#sxfer-}
	printf '%s\n' "${cmds[@]}" | grep -qx "$c" || echo "note - sxfer-$c(1): no command $c in this binary yet"
done
if ((${#problems[@]})); then
	printf '  %s\n' "${problems[@]}" >&2
	fail "man pages and completion do not match the binary's --help"
fi
ok "man pages (installed: $man_built) and completion match the --help of ${#cmds[@]} commands"

# The completion at work.
complete_words() { # WORD...: what the completion offers for the last word
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	_sxfer 2>/dev/null
	echo "${COMPREPLY[*]}"
}
[ "$(complete_words sxfer se)" = "serve send" ] || fail "sxfer se<TAB>: $(complete_words sxfer se)"
[ "$(complete_words sxfer serve --lis)" = "--listen" ] || fail "serve --lis<TAB>"
[ "$(complete_words sxfer ca is)" = "issue" ] || fail "ca is<TAB>"
[ "$(complete_words sxfer ca issue --id)" = "--id-pass-file" ] || fail "ca issue --id<TAB>"
[ "$(complete_words sxfer send --io '')" = "auto uring poll" ] || fail "send --io <TAB>"
[ "$(complete_words sxfer crl f)" = "fetch" ] || fail "crl f<TAB>"
[ "$(complete_words sxfer --ver)" = "--version" ] || fail "--ver<TAB>"
ok "bash completion: commands, subcommands, options, values"

# The example configuration: `key = value` lines (or such lines commented
# out) whose keys are the long options of serve, or of the agent; the keys
# being added with the service work are accepted by name until they land.
serve_new="metrics log-format max-conns-per-device max-file-size quota-per-day quota-total"
agent_keys="id watch server after include exclude limit-rate"
conf_keys() { sed -nE 's/^#? ?([a-z][a-z0-9-]*) = .*/\1/p' "$1" | sort -u; }
"$SXFER" serve --help >"$WORK/serve.help"
n=0
for k in $(conf_keys "$p/etc/sxfer/serve.conf.example"); do
	n=$((n + 1))
	has_opt "$WORK/serve.help" "--$k" || [[ " $serve_new " == *" $k "* ]] ||
		fail "serve.conf.example: '$k' is no option of serve"
done
[ "$n" -ge 20 ] || fail "serve.conf.example names only $n options"
"$SXFER" agent --help >"$WORK/agent.help" 2>&1 || true
for k in $(conf_keys "$p/etc/sxfer/agent.conf.example"); do
	has_opt "$WORK/agent.help" "--$k" || [[ " $agent_keys " == *" $k "* ]] ||
		fail "agent.conf.example: '$k' is no option of the agent"
done
for k in listen id out; do
	grep -q "^$k = " "$p/etc/sxfer/serve.conf.example" || fail "serve.conf.example does not set $k"
done
ok "example configuration: $n serve keys, the agent's keys"
