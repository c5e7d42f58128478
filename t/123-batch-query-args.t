# Query arguments of the Batch API's and the admin API's lists (review of
# session 8): a NUL byte (%00) anywhere in one of them is a 400
# invalid_value, on every list route and argument, instead of reaching
# PostgreSQL as \u0000 (jsonb refuses it: the function failed, the client
# got a 503 "may or may not be made" and the operator an error line); a
# value that is not UTF-8 is a 400 too, and nothing more: the handler
# went on to run the function after sending that 400 (an error line, and
# a connection left open until the client gave up).  The same lists
# without arguments still answer 200.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateAdmin qw(admin);
use GpugateTest qw(make_key env_or_skip free_port);
use GpugateBatch qw(batch_node api);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $run = "t123-$$";
my ($key) = make_key("tenant-$run", name => 'lists');
my $port = free_port();
my $ng = batch_node(name => $run, port => $port, admin => 1);
my $cred = admin("root-$run", 'admin');

# [ credential, path, its arguments ]
my @lists = (
    [ $key, '/v1/files', qw(after purpose order limit) ],
    [ $key, '/v1/batches', qw(after limit) ],
    [ $cred, '/admin/v1/batches', qw(tenant after limit) ],
    [ $cred, '/admin/v1/keys', qw(tenant limit) ],
);

$ng->mark;

for my $l (@lists) {
    my ($c, $path, @args) = @$l;

    my ($r) = api($port, $c, 'GET', $path);
    is($r->{status}, 200, "$path: 200 without arguments")
        or diag($r->{body});

    for my $arg (@args) {
        for my $v ('%00', 'a%00', '%00b', 'file-%001', '%C3', 'a%FFb') {
            ($r, my $e) = api($port, $c, 'GET', "$path?$arg=$v");
            ok($r->{status} == 400
               && ($e->{error}{code} // '') eq 'invalid_value'
               && ($e->{error}{message} // '') =~ /UTF-8 or holds a NUL/,
               "$path?$arg=$v: 400 invalid_value")
                or diag("$r->{status} $r->{body}");
        }
    }
}

my @bad = grep { /\[(?:error|crit|alert)\]/ } split /\n/, $ng->log;
is_deeply(\@bad, [],
       'no error line for any of them');

done_testing();
