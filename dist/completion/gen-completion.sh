#!/usr/bin/env bash
# gen-completion.sh SXFER TEMPLATE OUT: writes the bash completion of sxfer to
# OUT: the commands of `sxfer help`, the subcommands of those that have some
# (ca, id, crl, bench) and the long options each one's --help defines, as variables,
# followed by TEMPLATE (the completion function). Run at build time on the
# binary just built, so the lists follow the options as they change.
set -euo pipefail
sxfer=$1 template=$2 out=$3

# The options a help text defines, one a line: those of the usage lines (the
# first line and the indented lines that continue it) and those at the start
# of an option line ("  --name N, --role R   ask for..."), not the ones its
# prose mentions.
options_of() {
	awk '
	function grab(s,   t) {
		while (match(s, /--[a-z][a-z0-9-]*/)) {
			print substr(s, RSTART, RLENGTH)
			s = substr(s, RSTART + RLENGTH)
		}
	}
	NR == 1 && /^usage:/ { usage = 1; grab($0); next }
	usage && /^      +/ { grab($0); next }
	{ usage = 0 }
	/^ +--/ {
		line = $0
		sub(/^ +/, "", line)
		cut = index(line, "  ")
		if (cut > 0) line = substr(line, 1, cut - 1)
		grab(line)
	}' | sort -u
	echo --help
}

# The names listed under "HEADING:" in a help text (two-space indented words).
listed_under() {
	awk -v h="$1:" '$0 == h { on = 1; next } on && /^  [a-z]/ { print $1; next } on { on = 0 }'
}

var_name() { echo "$1" | tr -c 'a-z0-9\n' '_'; }

tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
	echo "# bash completion for sxfer: generated from sxfer's --help by"
	echo "# dist/completion/gen-completion.sh at build time; do not edit."
	cmds=$("$sxfer" help | listed_under commands | grep -vx help)
	echo "_sxfer_commands='$(echo $cmds) help'"
	for c in $cmds; do
		text=$("$sxfer" "$c" --help 2>&1) || true
		subs=$(printf '%s\n' "$text" | listed_under subcommands)
		if [ -n "$subs" ]; then
			echo "_sxfer_subs_$(var_name "$c")='$(echo $subs)'"
			for s in $subs; do
				opts=$("$sxfer" "$c" "$s" --help 2>&1 | options_of)
				echo "_sxfer_opts_$(var_name "$c")_$(var_name "$s")='$(echo $opts)'"
			done
			# A command may also run alone, with options of its own
			# (sxfer bench, and sxfer bench pipe).
			opts=$(printf '%s\n' "$text" | options_of)
			echo "_sxfer_opts_$(var_name "$c")='$(echo $opts)'"
		else
			opts=$(printf '%s\n' "$text" | options_of)
			echo "_sxfer_opts_$(var_name "$c")='$(echo $opts)'"
		fi
	done
	echo
	cat "$template"
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
