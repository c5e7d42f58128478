# The runner must fail a wrong expectation (and pass a right one): runs the
# fixtures in a child perl with the same runner (bundled or upstream).

use strict;
use warnings;

use FindBin;
use Test::More;

my @inc = map { "-I$_" } grep { m{t/lib/?$} } @INC;

sub run_fixture {
    my ($name) = @_;
    my $file = "$FindBin::Bin/fixtures/$name";
    my $out = `$^X @inc $file 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = run_fixture('wrong.tt');
isnt($rc, 0, 'a wrong response_body makes the file fail');
like($out, qr/not ok 2 - TEST 1: wrong body - response_body/,
     'the failing check is named');
like($out, qr/expected/, 'the expected text is shown');

($rc, $out) = run_fixture('right.tt');
is($rc, 0, 'the right expectation passes') or diag($out);
like($out, qr/^ok 2 - TEST 1: right body - response_body/m,
     'the body check ran');

my $mark = "/tmp/gpugate-init-mark.$$";
unlink $mark;
$ENV{GPUGATE_INIT_MARK} = $mark;
($rc, $out) = run_fixture('init.tt');
is($rc, 0, 'a block with --- init passes') or diag($out);
ok(-e $mark, '--- init ran its code');
unlink $mark;

done_testing();
