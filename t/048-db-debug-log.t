# Debug log lines at the state changes of the PostgreSQL pool and the
# Redis connections (error_log ... debug; Debian's nginx is built
# --with-debug): a Redis command queued and answered, a PostgreSQL query
# with no connection up declined or queued for one, and every connection
# closed by the worker's exit.  Skipped when nginx has no debug log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(start_nginx http_request make_key wait_until env_or_skip
                   free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
plan skip_all => "$bin has no debug log"
    unless `$bin -V 2>&1` =~ /--with-debug/;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $dead = free_port();

sub gateway {
    my ($pg_port, $redis) = @_;
    my $http = "    gpugate_auth_zone zone=dbg$pg_port:1m ttl=60s;\n"
             . "    gpugate_auth_postgres \"host=127.0.0.1 port=$pg_port"
             . " user=gpugate dbname=gpugate connect_timeout=5\""
             . " timeout=5s;\n";
    $http .= "    gpugate_auth_redis 127.0.0.1:$redis timeout=1s;\n"
        if $redis;
    my $port = free_port();
    return start_nginx(port => $port, http => $http, server => <<"SRV");
        location /t {
            gpugate_auth on;
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location = /echo {
            return 200 "ok\\n";
        }
SRV
}

sub read_log {
    my ($ng) = @_;
    open my $fh, '<', $ng->dir . '/logs/error.log' or return '';
    local $/;
    return scalar <$fh>;
}

# PostgreSQL and Redis up: a key looked up through both

{
    my $ng = gateway($pg, $rd);
    my $key = make_key('t-debug');
    my $r;
    ok(wait_until(10, sub {
           $r = http_request($ng->port, 'GET', '/t',
                             { Authorization => "Bearer $key" });
           $r->{status} == 200
       }), 'key granted');
    is($r->{body}, "ok\n", 'through the auth phase');

    my $log = read_log($ng);
    like($log, qr/gpugate redis: command queued, (sending|sent once connected)/,
         'Redis: a command queued');
    like($log, qr/gpugate redis: reply to a command, type \d+/,
         'Redis: its reply');

    $ng->stop;
    $log = read_log($ng);
    like($log, qr/gpugate pg: connection \d+ down: worker exiting/,
         'PostgreSQL: connections closed by the worker exit');
    like($log, qr/gpugate redis: command connection down: worker exiting/,
         'Redis: command connection closed by the worker exit');
    like($log, qr/gpugate redis: subscriber connection down: worker exiting/,
         'Redis: subscriber connection closed by the worker exit');
}

# PostgreSQL unreachable: each query is declined or waits for a connection

{
    my $ng = gateway($dead, 0);
    my $st = http_request($ng->port, 'GET', '/t',
                          { Authorization => 'Bearer sk-gg-'
                                           . ('a' x 40) })->{status};
    ok($st >= 500, "unknown key with PostgreSQL down: $st");
    ok(wait_until(10, sub {
           read_log($ng) =~ /gpugate pg: (query declined: no connection up|query waits for a connection)/
       }), 'PostgreSQL: a query with no connection up');
    $ng->stop;
}

done_testing();
