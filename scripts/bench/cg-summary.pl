#!/usr/bin/perl
#
# cg-summary.pl CALLGRIND_OUT N [TOP]: from one callgrind profile taken
# over N requests, prints instructions per request, the calls per request
# to the allocator and the top functions by exclusive instructions, as one
# JSON line (the profile group's record).

use strict;
use warnings;
use JSON::PP;

my ($file, $n, $top) = @ARGV;
$top ||= 12;
open my $fh, '<', $file or die "$file: $!";

my (%name, %self, %calls, $fn, $cfn, $total);
my %alloc = map { $_ => 1 } qw(malloc calloc realloc free);

# callgrind compresses names: "fn=(7) name" the first time, "fn=(7)" after
my $resolve = sub {
    my ($s) = @_;
    if ($s =~ /^\((\d+)\)\s+(.*)$/) { $name{$1} = $2; return $2 }
    if ($s =~ /^\((\d+)\)$/) { return $name{$1} // "?" }
    return $s;
};

my $in_call = 0;
while (<$fh>) {
    chomp;
    if (/^fn=(.*)/)  { $fn = $resolve->($1); $in_call = 0; next }
    if (/^cfn=(.*)/) { $cfn = $resolve->($1); next }
    if (/^calls=(\d+)/) { $calls{$cfn} += $1; $in_call = 1; next }
    if (/^summary:\s+(\d+)/) { $total = $1; next }
    if (/^(?:\+|-)?\d+\s+(\d+)/ || /^\*\s+(\d+)/) {
        # a cost line: after calls= it is the call's inclusive cost
        $self{$fn} += $1 unless $in_call;
        $in_call = 0;
    }
}

$total //= 0;
$total = 0;
$total += $_ for values %self;

my @fns = sort { $self{$b} <=> $self{$a} } keys %self;
my %out = (
    requests => $n + 0,
    instructions_per_request => sprintf("%.0f", $total / $n) + 0,
    allocs_per_request => {
        map { $_ => sprintf("%.2f", ($calls{$_} // 0) / $n) + 0 }
            keys %alloc },
    top => [ map { { fn => $_,
                     pct => sprintf("%.1f", 100 * $self{$_} / ($total || 1)) + 0,
                     per_request => sprintf("%.0f", $self{$_} / $n) + 0 } }
             @fns[0 .. ($#fns < $top - 1 ? $#fns : $top - 1)] ],
);
print JSON::PP->new->canonical->encode(\%out), "\n";
