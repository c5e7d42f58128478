# The runner must fail wrong expectations (and pass right ones): runs the
# fixtures (*.tt, which prove -r leaves alone) in a child perl with the
# same runner as this file (the bundled t/lib one or upstream's).

use strict;
use warnings;

use FindBin;
use Test::More;

# pass our t/lib (if it is on @INC) to the child
my @inc = map { "-I$_" } grep { !ref && m{t/lib/?\z} } @INC;

# the child's own servroot, so that its nginx never meets ours
$ENV{TEST_NGINX_SERVROOT} = "$FindBin::Bin/servroot-fixtures";
delete $ENV{TEST_NGINX_NO_CLEAN};

sub run_fixture {
    my ($name) = @_;
    my $out = `$^X @inc $FindBin::Bin/fixtures/$name 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = run_fixture('wrong.tt');
isnt($rc, 0, 'wrong.tt: a wrong response_body makes the file fail');
like($out, qr/^not ok 2 - \S+wrong\.tt TEST 1: wrong body - response_body - response is expected/m,
     'wrong.tt: the failing check is named with its block')
    or diag($out);
like($out, qr/got: "actual\\x\{0a\}"|got: 'actual\n'/, 'wrong.tt: what came is shown');
like($out, qr/expected: "expected\\x\{0a\}"|expected: 'expected\n'/,
     'wrong.tt: what was expected is shown');
like($out, qr/^not ok 3 - .*pattern "never-logged-marker" should match a line in error\.log/m,
     'wrong.tt: a missing error_log line fails');
note($out);

($rc, $out) = run_fixture('right.tt');
is($rc, 0, 'right.tt: the right expectations pass') or diag($out);
like($out, qr/^ok 2 - .*TEST 1: right body - response_body/m,
     'right.tt: the body check ran');
like($out, qr/^ok 3 - .*"never-logged-marker" does not match/m,
     'right.tt: the no_error_log check ran');

($rc, $out) = run_fixture('bad-config.tt');
isnt($rc, 0, 'bad-config.tt: nginx refusing the config fails the file');
like($out, qr/unknown directive "gpugate_no_such_directive"/,
     "bad-config.tt: nginx's complaint is shown") or diag($out);

($rc, $out) = run_fixture('unset-env.tt');
isnt($rc, 0, 'unset-env.tt: an unset $TEST_NGINX_* stops the file');
like($out, qr/TEST_NGINX_GPUGATE_SURELY_UNSET/, 'unset-env.tt: it is named')
    or diag($out);

($rc, $out) = run_fixture('cut-chunked.tt');
# (as upstream, this failure sets Test::Builder's no_ending, so the exit
# status stays 0 and only the TAP says "not ok": prove still fails the file)
like($out, qr/^not ok \d+ - .*no last chunk found/m,
     'cut-chunked.tt: a cut chunked body fails, with the reason')
    or diag($out);

done_testing();

# the children stopped their nginx at exit; their server root can go
END { system('rm', '-rf', "$FindBin::Bin/servroot-fixtures") }
