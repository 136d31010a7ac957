#!/usr/bin/perl
# Every read through a bounded cursor moves it, so the order of two reads is
# the order of the fields. A bitwise `|` (or `|=`) between two reads leaves
# that order to the compiler (C11 6.5p3: the operands of `|` are unsequenced);
# `||` sequences them (C11 6.5.14). Fails naming each file and line where a
# cursor read is an operand of `|` or `|=`. Usage: sequenced_reads.pl FILE...
use strict;
use warnings;

my $call = qr/\b(?:sx_)?cur_\w+\s*(\((?:[^()]++|(?-1))*\))/;
my $bad = 0;
for my $file (@ARGV) {
	open(my $fh, '<', $file) or die "$file: $!\n";
	local $/;
	my $src = <$fh>;
	close($fh);
	# Comments and strings cannot hold a read; blank them, keeping lines.
	$src =~ s{/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"}{ my $m = $&; $m =~ s/[^\n]/ /g; $m }gse;
	while ($src =~ /$call\s*\|(?![|=])|(?<![|])\|(?![|])=?\s*$call/g) {
		my $line = 1 + (substr($src, 0, $-[0]) =~ tr/\n//);
		print "$file:$line: a cursor read is an operand of '|': make each read its own step (||)\n";
		$bad = 1;
	}
}
exit $bad;
