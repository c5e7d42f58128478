#!/usr/bin/perl
#
# Runs TAP test programs with TAP::Harness (what prove uses) and ends with
# the plain "N passed, N failed" line scripts/test.sh promises.
#
#   tap-run.pl [-I DIR]... [-v] [--lanes DIR --jobs N] [--beside TEST]...
#              TEST...
#
# With --lanes, N tests run at once, each through scripts/lane-run.sh in
# a lane of DIR (its own servers and ports: see scripts/test.sh), the
# longest first as --durations FILE ("MS NAME" lines) knows them, so that
# no long file starts last; those it does not know are taken as long.
# --record FILE writes this run's durations there in that format.
# Without --lanes, one after another in the order given.
#
# A --beside TEST runs at the same time as the others, outside any lane:
# for a test that shares nothing with them (the fuzz targets' build and
# seed runs) and would otherwise add its whole time to the suite's.
#
# A TEST ending in .t runs under perl with the -I directories; any other
# TEST is executed directly and must print TAP.  N counts test points; a
# program that dies, exits non-zero or breaks its plan without a failing
# test point counts as one failure, so nothing can fail silently.

use strict;
use warnings;

use Getopt::Long qw(:config no_ignore_case bundling);
use Cwd ();
use FindBin;
use TAP::Harness;

my (@inc, $verbose, @beside, $lanes, $durations, $record);
my $jobs = 1;

GetOptions('I=s' => \@inc, 'v|verbose' => \$verbose,
           'beside=s' => \@beside, 'lanes=s' => \$lanes,
           'jobs=i' => \$jobs, 'durations=s' => \$durations,
           'record=s' => \$record)
    or die "usage: $0 [-I DIR]... [-v] [--lanes DIR --jobs N] "
         . "[--beside TEST]... TEST...\n";

die "$0: no tests given\n" unless @ARGV;

my %beside = map { $_ => 1 } @beside;
my @seq = grep { !$beside{$_} } @ARGV;

my $lane_run = "$FindBin::Bin/lane-run.sh";

# a test's name in the durations file: its path in the tree, so that the
# file holds for any checkout
my $root = Cwd::abs_path("$FindBin::Bin/..");

sub short { my ($t) = @_; $t =~ s{^\Q$root\E/}{}; $t }

if ($lanes && $durations && open my $fh, '<', $durations) {
    my %ms;
    while (<$fh>) {
        $ms{$2} = $1 if /^(\d+)\s+(\S+)/;
    }
    my $i = 0;
    my %pos = map { $_ => $i++ } @seq;
    @seq = sort { ($ms{short($b)} // 1e9) <=> ($ms{short($a)} // 1e9)
                  || $pos{$a} <=> $pos{$b} } @seq;
}

$jobs = 1 if !$lanes || $jobs < 1;

# one after another unless there are lanes; --beside tests apart
my %rules = $jobs > 1 ? ()
          : @beside ? (rules => { par => [ @beside, { seq => \@seq } ] })
          : ();

my $harness = TAP::Harness->new({
    verbosity => $verbose ? 1 : 0,
    jobs      => $jobs + @beside,
    %rules,
    lib       => \@inc,
    color     => -t STDOUT ? 1 : 0,
    timer     => 1,
    exec      => sub {
        my (undef, $test) = @_;
        my @cmd = $test =~ /\.t\z/
                  ? ($^X, (map { "-I$_" } @inc), $test)
                  : ($test);
        return \@cmd if !$lanes || $beside{$test};
        return [$lane_run, $lanes, @cmd];
    },
});

my $agg = $harness->runtests(@beside, @seq);

if ($record && open my $out, '>', $record) {
    for my $t ($agg->descriptions) {
        my ($p) = $agg->parsers($t);
        my $ms = int(1000 * ($p->end_time - $p->start_time));
        print $out "$ms ", short($t), "\n";
    }
}

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
