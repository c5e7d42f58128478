# Limits across two gateway nodes sharing Redis (gpugate_limits_redis):
# one key's requests per minute counted once for both nodes, a key used
# up on one node refused on the other (whose first request already meets
# the gateway's count), requests in flight summed over the nodes; then
# Redis stopped mid-test: each node enforces its share of the limit
# (logged once, counted, no crash, no 429 storm), and Redis back makes
# the limits the gateway's again.  Redis commands stay one EVAL a sync,
# not one a request.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_MOCK_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp ();
use JSON::PP qw(decode_json encode_json);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read read_head
                   psql make_key wait_until env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $run = "t065-$$";
my $admin = 'admin-key-0123456789abcdef';

# a private Redis: it is stopped mid-test
my $rport = free_port();
my $rdir = File::Temp::tempdir(CLEANUP => 1);

sub redis_start {
    system('redis-server', '--bind', '127.0.0.1', '--port', $rport,
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--dir', $rdir, '--pidfile', "$rdir/redis.pid",
           '--logfile', "$rdir/redis.log") == 0 or die "redis-server\n";
    wait_until(10, sub {
        `redis-cli -h 127.0.0.1 -p $rport ping 2>/dev/null` =~ /PONG/
    }) or die "private Redis did not start\n";
}

sub redis_stop {
    system("redis-cli -h 127.0.0.1 -p $rport shutdown nosave"
           . " >/dev/null 2>&1");
    wait_until(10, sub {
        `redis-cli -h 127.0.0.1 -p $rport ping 2>&1` !~ /PONG/
    });
}

END { local $?; redis_stop() if $rport }

redis_start();

my $n = 0;

sub node {
    my $id = "$run-" . $n++;
    return start_nginx(workers => 2, http => <<"HTTP",
    gpugate_auth_zone zone=k$id:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_limits_zone zone=l$id:1m;
    gpugate_limits_redis 127.0.0.1:$rport nodes=2 sync=100ms timeout=200ms;
    upstream runtime { server 127.0.0.1:$mock; keepalive 16; }
    gpugate_model mock-model pool=runtime;
HTTP
        server => <<"SRV");
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
        location = /metrics { gpugate_metrics admin_key=$admin; }
        location = /status { gpugate_status admin_key=$admin; }
SRV
}

my @ng = (node(), node());

sub send_req {
    my ($ng, $key, %o) = @_;
    return http_send($ng->port, 'POST', '/v1/chat/completions',
                     { Authorization => "Bearer $key",
                       'Content-Type' => 'application/json',
                       %{ $o{headers} || {} } },
                     encode_json({ model => 'mock-model', max_tokens => 4,
                                   stream => $o{stream} ? \1 : \0,
                                   messages => [ { role => 'user',
                                                   content => 'hi' } ] }));
}

sub call { http_read(send_req(@_), 10) }

sub status {
    decode_json(http_request($_[0]->port, 'GET', '/status',
                             { Authorization => "Bearer $admin" })->{body});
}

# --- 1. one key's rpm counted once for both nodes ------------------------

{
    my ($key) = make_key("$run-rpm", name => 'rpm', rpm => 10);
    my $t0 = time;
    my @ok = (0, 0);
    # paced (not an assertion): the traffic spans several syncs, so both
    # nodes' leases are renewed while it runs
    for my $i (0 .. 39) {
        $ok[$i % 2]++ if call($ng[$i % 2], $key)->{status} == 200;
        sleep 0.05;
    }
    my $elapsed = time - $t0;
    my $total = $ok[0] + $ok[1];
    my $bound = 10 + int($elapsed * 10 / 60);
    ok($total <= $bound, sprintf('rpm: %d + %d admitted by the two nodes, '
       . 'within 10/min + %.1f s of refill (%d)', @ok, $elapsed, $bound));
    ok($total >= 8, "rpm: and at least 8 of the 10 used (no 429 storm)");
    ok($ok[0] >= 3 && $ok[1] >= 3, 'rpm: both nodes admitted some');
}

# --- 2. used up on one node, refused on the other ------------------------

{
    my ($key) = make_key("$run-one", name => 'one', rpm => 4);
    my $ok = 0;
    # paced (not an assertion): a sync between requests lets node 1 use
    # more than its first share; the bounds below hold either way
    for (1 .. 8) {
        $ok++ if call($ng[0], $key)->{status} == 200;
        sleep 0.3;
    }
    ok($ok >= 2 && $ok <= 4, "one: node 1 admitted $ok of the 4");
    my $r = call($ng[1], $key);
    is($r->{status}, 429, 'one: node 2\'s first request of the key is '
       . 'refused: it met the gateway\'s count');
    is((eval { decode_json($r->{body}) } || {})->{error}{type}, 'requests',
       'one: type requests');
}

# --- 3. requests in flight summed over the nodes -------------------------

{
    my ($key, $id) = make_key("$run-par", name => 'par');
    psql("UPDATE api_keys SET parallel_limit = 2 WHERE id = $id");

    my @held;
    for my $ng (@ng) {
        my $s = send_req($ng, $key, stream => 1,
                         headers => { 'X-Mock-Stall-After' => 1 });
        my $h = read_head($s, 10);
        is($h->{status}, 200, 'parallel: one held stream on node ' . @held);
        push @held, $s;
    }

    ok(wait_until(5, sub {
           call($ng[0], $key)->{status} == 429
           && call($ng[1], $key)->{status} == 429
       }), 'parallel: a third request is refused on both nodes');

    close(shift @held);
    ok(wait_until(5, sub { call($ng[0], $key)->{status} == 200 }),
       'parallel: admitted again once a stream ends');
    close($_) for @held;
}

# --- 4. Redis commands: one a sync, not one a request ---------------------

{
    my $s = status($ng[0]);
    my $per = $s->{limits}{redis}{commands} / ($s->{limits}{admitted} || 1);
    ok($s->{limits}{redis}{syncs} > 0, 'redis: syncs answered');
    diag(sprintf('Redis commands per admitted request on node 1: %.2f '
         . '(%d EVALs, %d requests, mostly idle syncs)',
         $per, $s->{limits}{redis}{commands}, $s->{limits}{admitted}));
}

# --- 5. Redis stopped: each node enforces its share ----------------------

{
    my ($key) = make_key("$run-down", name => 'down', rpm => 20);
    $_->mark for @ng;
    redis_stop();

    ok($ng[0]->wait_log(qr/Redis does not answer/, 10),
       'down: the fallback is logged');

    my $ok = 0;
    $ok += call($ng[0], $key)->{status} == 200 for 1 .. 15;
    is($ok, 10, 'down: node 1 admits exactly its share (20 / 2 nodes)');

    my $ok2 = 0;
    $ok2 += call($ng[1], $key)->{status} == 200 for 1 .. 12;
    is($ok2, 10, 'down: node 2 its own share');

    my $e0 = status($ng[0])->{limits}{redis}{errors};
    ok(wait_until(10, sub {
           status($ng[0])->{limits}{redis}{errors} >= $e0 + 6
       }), 'down: more syncs failed since');
    my @lines = $ng[0]->log =~ /Redis does not answer/g;
    is(scalar(@lines), 1, 'down: logged once, however many syncs fail');
    my $m = http_request($ng[0]->port, 'GET', '/metrics',
                         { Authorization => "Bearer $admin" })->{body};
    like($m, qr/^gpugate_limits_redis_down 1$/m, 'down: the gauge says so');
    like($m, qr/^gpugate_limits_redis_fallbacks_total 1$/m,
         'down: counted once');

    redis_start();
    ok($ng[0]->wait_log(qr/Redis answers again/, 10),
       'back: logged when Redis answers');
    ok(wait_until(5, sub { !status($ng[0])->{limits}{redis}{down} }),
       'back: status says up');
    my ($key2) = make_key("$run-back", name => 'back', rpm => 20);
    is(call($ng[1], $key2)->{status}, 200, 'back: requests admitted');
}

$_->stop for @ng;

done_testing();
