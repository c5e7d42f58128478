#!/usr/bin/perl
#
# Runs TAP test programs with TAP::Harness (what prove uses) and ends with
# the plain "N passed, N failed" line scripts/test.sh promises.
#
#   tap-run.pl [-I DIR]... [-v] [--beside TEST]... TEST...
#
# A --beside TEST runs at the same time as the others, which run one
# after another as before: for a test that shares nothing with them (the
# fuzz targets' build and seed runs) and would otherwise add its whole
# time to the suite's.
#
# A TEST ending in .t runs under perl with the -I directories; any other
# TEST is executed directly and must print TAP.  N counts test points; a
# program that dies, exits non-zero or breaks its plan without a failing
# test point counts as one failure, so nothing can fail silently.

use strict;
use warnings;

use Getopt::Long qw(:config no_ignore_case bundling);
use TAP::Harness;

my (@inc, $verbose, @beside);

GetOptions('I=s' => \@inc, 'v|verbose' => \$verbose,
           'beside=s' => \@beside)
    or die "usage: $0 [-I DIR]... [-v] [--beside TEST]... TEST...\n";

die "$0: no tests given\n" unless @ARGV;

my %beside = map { $_ => 1 } @beside;
my @seq = grep { !$beside{$_} } @ARGV;

my $harness = TAP::Harness->new({
    verbosity => $verbose ? 1 : 0,
    (@beside ? (jobs  => 2,
                rules => { par => [ @beside, { seq => \@seq } ] })
             : ()),
    lib       => \@inc,
    color     => -t STDOUT ? 1 : 0,
    exec      => sub {
        my (undef, $test) = @_;
        return undef if $test =~ /\.t\z/;      # default: perl + lib
        return [$test];
    },
});

my $agg = $harness->runtests(@beside, @seq);

my ($passed, $failed) = (0, 0);

for my $parser (map { $agg->parsers($_) } $agg->descriptions) {
    my $bad = scalar $parser->failed;

    $passed += scalar $parser->passed;

    if ($bad == 0
        && ($parser->exit || $parser->wait || $parser->has_problems))
    {
        $bad = 1;
    }

    $failed += $bad;
}

print "$passed passed, $failed failed\n";

exit($failed ? 1 : 0);
