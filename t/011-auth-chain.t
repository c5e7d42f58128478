# API-key auth against real PostgreSQL and Redis: which layer answers,
# coalesced misses, a slow database that must not stall cached keys,
# outages, revocation, expiry, two workers and reload.
#
# Test::More rather than Test::Nginx blocks: these scenarios need several
# requests in flight at once and faults injected between requests.
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Digest::SHA qw(sha256_hex);
use File::Temp ();
use IO::Select;
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read psql redis
                   make_key wait_until env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $keys = "$FindBin::Bin/../scripts/gpugate-keys";

my $zone_n = 0;

# nginx with auth on /t; /t answers with the layer and the key id.
sub gateway {
    my (%o) = @_;
    my $ttl = $o{ttl} || '60s';
    my $pg_addr = $o{pg_port} || $pg;
    my $redis = exists $o{redis_port} ? $o{redis_port} : $rd;
    my $http = "    gpugate_auth_zone zone=k" . $zone_n++ . ":1m ttl=$ttl"
             . " negative_ttl=5s stale=300s;\n"
             . "    gpugate_auth_postgres \"host=127.0.0.1 port=$pg_addr"
             . " user=gpugate dbname=gpugate connect_timeout=5\""
             . " timeout=" . ($o{pg_timeout} || '10s') . ";\n";
    $http .= "    gpugate_auth_redis 127.0.0.1:$redis timeout=1s;\n"
        if $redis;
    my $port = free_port();
    return start_nginx(port => $port, workers => $o{workers}, http => $http,
        server => <<"SRV");
        location /t {
            gpugate_auth on;
            proxy_set_header X-Src \$gpugate_auth_source;
            proxy_set_header X-Id \$gpugate_key_id;
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location = /echo {
            return 200 "src=\$http_x_src id=\$http_x_id\\n";
        }
SRV
}

sub get {
    my ($ng, $key) = @_;
    return http_request($ng->port, 'GET', '/t',
                        { Authorization => "Bearer $key" });
}

sub src { ($_[0]{body} =~ /src=(\w+)/)[0] || "status $_[0]{status}" }

sub redis_forget { redis('DEL', 'gpugate:key:' . sha256_hex($_[0])) }

# --- 1. layers: PostgreSQL, then shm; new nginx: Redis, then shm --------

{
    my ($key, $id) = make_key('acme', name => 'layers');
    redis_forget($key);

    my $ng = gateway();
    my $r = get($ng, $key);
    is($r->{status}, 200, 'valid key accepted');
    is(src($r), 'postgres', 'first lookup answered by PostgreSQL');
    like($r->{body}, qr/id=$id\b/, '$gpugate_key_id names the key');
    ok(redis('TTL', 'gpugate:key:' . sha256_hex($key)) > 0,
       'PostgreSQL answer filled Redis with a TTL');
    is(src(get($ng, $key)), 'shm', 'second request answered by shm');
    $ng->stop;

    $ng = gateway();
    is(src(get($ng, $key)), 'redis', 'fresh nginx: answered by Redis');
    is(src(get($ng, $key)), 'shm', 'then by shm');
    $ng->stop;
}

# Holds an exclusive lock on api_keys for SECONDS in a background psql, so
# lookups that reach PostgreSQL wait (pg_sleep) while the server stays up.
sub lock_keys_table {
    my ($secs) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', $pg, '-U',
            'gpugate', '-d', 'gpugate', '-c',
            "BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE;"
          . " SELECT pg_sleep($secs); COMMIT;";
        exit 127;
    }
    wait_until(10, sub {
        psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
           . " ON c.oid = l.relation WHERE c.relname = 'api_keys'"
           . " AND l.mode = 'AccessExclusiveLock' AND l.granted") > 0
    }) or die "lock not taken\n";
    return $pid;
}

# --- 2. slow PostgreSQL: cached keys are served while a lookup waits ----

{
    my $cached = make_key('acme', name => 'cached');
    my $slow = make_key('acme', name => 'slow');
    redis_forget($slow);

    my $ng = gateway(workers => 1);
    is(get($ng, $cached)->{status}, 200, 'slow-pg: key cached first');

    my $locker = lock_keys_table(4);
    my $t0 = time;
    my $pending = http_send($ng->port, 'GET', '/t',
                            { Authorization => "Bearer $slow" });
    ok(!IO::Select->new($pending)->can_read(0.3),
       'slow-pg: uncached key waits for PostgreSQL');

    my $r = get($ng, $cached);
    is($r->{status}, 200, 'slow-pg: cached key served meanwhile');
    is(src($r), 'shm', 'slow-pg: ...from shared memory');
    ok(!IO::Select->new($pending)->can_read(0),
       'slow-pg: ...while the slow lookup is still pending');
    ok(time - $t0 < 3.5, 'slow-pg: the cached answer did not wait for the '
       . 'lock (same worker, event loop free)');

    $r = http_read($pending, 15);
    is($r->{status}, 200, 'slow-pg: slow lookup completes after the lock');
    is(src($r), 'postgres', 'slow-pg: ...from PostgreSQL');
    waitpid $locker, 0;
    $ng->stop;
}

# --- 3. concurrent misses for one key share one lookup ------------------

{
    my $key = make_key('acme', name => 'herd');
    redis_forget($key);

    my $ng = gateway(workers => 1);
    $ng->mark;
    my $locker = lock_keys_table(2);
    my @socks = map {
        http_send($ng->port, 'GET', '/t', { Authorization => "Bearer $key" })
    } 1 .. 5;
    my @st = map { http_read($_, 15)->{status} } @socks;
    waitpid $locker, 0;
    is_deeply(\@st, [200, 200, 200, 200, 200], 'herd: all five accepted');
    my $lookups = () = $ng->log =~ /gpugate auth: looking up key/g;
    is($lookups, 1, 'herd: one lookup served five concurrent misses');
    $ng->stop;
}

# --- 4. Redis down: PostgreSQL answers ----------------------------------

{
    my $key = make_key('acme', name => 'noredis');
    my $dead = free_port();
    my $ng = gateway(redis_port => $dead);
    my $r = get($ng, $key);
    is($r->{status}, 200, 'redis down: valid key still accepted');
    is(src($r), 'postgres', 'redis down: ...by PostgreSQL');
    like($ng->log, qr/gpugate redis: command connection to 127\.0\.0\.1:$dead failed/,
         'redis down: logged with the address');
    $ng->stop;
}

# --- 4b. Redis stops under a running gateway, then comes back -----------

{
    # a private Redis: the shared one must stay up for the other tests
    my $rport = free_port();
    my $rdir = File::Temp::tempdir(CLEANUP => 1);
    my $start_redis = sub {
        system('redis-server', '--bind', '127.0.0.1', '--port', $rport,
               '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
               '--dir', $rdir, '--pidfile', "$rdir/redis.pid",
               '--logfile', "$rdir/redis.log") == 0 or die "redis-server\n";
        wait_until(10, sub {
            `redis-cli -h 127.0.0.1 -p $rport ping 2>/dev/null` =~ /PONG/
        }) or die "private Redis did not start\n";
    };
    $start_redis->();

    my $cached = make_key('acme', name => 'redis-stop-cached');
    my $fresh = make_key('acme', name => 'redis-stop-fresh');
    my $ng = gateway(redis_port => $rport);
    ok($ng->wait_log(qr/gpugate redis: command connection up/, 10),
       'redis stop: gateway connected to its Redis');
    is(src(get($ng, $cached)), 'postgres', 'redis stop: key cached');

    system("redis-cli -h 127.0.0.1 -p $rport shutdown nosave"
           . " >/dev/null 2>&1");
    ok($ng->wait_log(qr/gpugate redis: command connection to .* failed/,
                     10), 'redis stop: the gateway noticed');

    my $r = get($ng, $cached);
    is($r->{status}, 200, 'redis stop: cached key still accepted');
    is(src($r), 'shm', 'redis stop: ...from shm');
    $r = get($ng, $fresh);
    is($r->{status}, 200, 'redis stop: new key accepted');
    is(src($r), 'postgres', 'redis stop: ...from PostgreSQL');

    $ng->mark;
    $start_redis->();
    ok($ng->wait_log(qr/gpugate redis: command connection up/, 20),
       'redis stop: the gateway reconnects when Redis is back');
    my $later = make_key('acme', name => 'redis-stop-later');
    is(src(get($ng, $later)), 'postgres', 'redis back: miss fills Redis');
    ok(wait_until(5, sub {
        redis_at($rport, 'EXISTS', 'gpugate:key:' . sha256_hex($later))
            eq '1'
    }), 'redis back: the entry is in Redis again');
    $ng->stop;
    system("redis-cli -h 127.0.0.1 -p $rport shutdown nosave"
           . " >/dev/null 2>&1");
}

sub redis_at {
    my ($port, @args) = @_;
    my $out = `redis-cli -h 127.0.0.1 -p $port @args 2>/dev/null`;
    $out =~ s/\s+\z//;
    return $out;
}

# --- 5. PostgreSQL down: Redis-cached keys work, unknown keys get 503 ---

{
    my $known = make_key('acme', name => 'inredis');
    my $ng = gateway();
    is(get($ng, $known)->{status}, 200, 'pg down: key seen once (fills Redis)');
    $ng->stop;

    my $unknown = make_key('acme', name => 'notcached');
    redis_forget($unknown);
    $ng = gateway(pg_port => free_port());
    my $r = get($ng, $known);
    is($r->{status}, 200, 'pg down: Redis-cached key accepted');
    is(src($r), 'redis', 'pg down: ...from Redis');
    $r = get($ng, $unknown);
    is($r->{status}, 503, 'pg down: unverifiable key gets 503, not 401');
    like($r->{body}, qr/"code":"auth_unavailable"/, 'pg down: OpenAI JSON');
    is($r->{headers}{'retry-after'}, '1', 'pg down: Retry-After');
    $ng->stop;
}

# --- 6. PostgreSQL goes away: stale shm entries are served --------------

{
    my $key = make_key('acme', name => 'stale');
    my $unknown = make_key('acme', name => 'stale-unknown');
    my $ng = gateway(ttl => '1s', redis_port => 0, pg_timeout => '2s');
    is(src(get($ng, $key)), 'postgres', 'stale: cached with ttl=1s');

    # refuse new connections and drop the gateway's: PostgreSQL is "down"
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS false", 'postgres');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
       . " WHERE datname = 'gpugate' AND pid <> pg_backend_pid()",
         'postgres');
    # the entry is now past its ttl: a clock, not a state to poll for
    sleep 1.2;

    my $r = get($ng, $key);
    is($r->{status}, 200, 'stale: key accepted while PostgreSQL is down');
    is(src($r), 'stale', 'stale: ...from the stale shm entry');
    like($ng->log, qr/answered from a stale cache entry/, 'stale: logged');
    is(get($ng, $unknown)->{status}, 503, 'stale: unknown key gets 503');

    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS true", 'postgres');
    ok(wait_until(15, sub { src(get($ng, $key)) eq 'postgres' }),
       'stale: PostgreSQL answers again after it comes back');
    $ng->stop;
}

# --- 7. revocation: published at once, TTL-bounded when the publish is lost

{
    my ($key, $id) = make_key('acme', name => 'revoke');
    my $ng = gateway(workers => 2);
    get($ng, $key);
    is(src(get($ng, $key)), 'shm', 'revoke: key cached in shm');

    $ENV{GPUGATE_PG_DSN} =
        "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    system("$keys --redis 127.0.0.1:$rd revoke $id >/dev/null") == 0
        or die "gpugate-keys revoke failed\n";

    ok(wait_until(5, sub { get($ng, $key)->{status} == 401 }),
       'revoke: published invalidation drops the cached key');
    my @st = map { get($ng, $key)->{status} } 1 .. 10;
    is_deeply(\@st, [(401) x 10], 'revoke: refused by every worker');
    like(get($ng, $key)->{body}, qr/has been revoked/, 'revoke: says why');
    $ng->stop;

    my ($key2, $id2) = make_key('acme', name => 'revoke-lost');
    $ng = gateway(ttl => '2s');
    is(get($ng, $key2)->{status}, 200, 'lost publish: key cached (ttl 2s)');
    psql("UPDATE api_keys SET revoked_at = now() WHERE id = $id2");
    redis_forget($key2);                   # no PUBLISH: the message is lost
    # the 2 s TTL, not a message, ends it: a wait far under the 60 s
    # default proves it (no timing bound: a loaded machine delays)
    ok(wait_until(10, sub { get($ng, $key2)->{status} == 401 }),
       'lost publish: refused once the shm TTL runs out');
    $ng->stop;
}

# --- 8. expiry is enforced even from cache -------------------------------

{
    # nginx first: its start took over 2 s at load 16, and a key made
    # before it had expired by the first request
    my $ng = gateway();
    my $key = make_key('acme', name => 'expiring',
                       expires => "now() + interval '3 seconds'");
    is(get($ng, $key)->{status}, 200, 'expiry: accepted before expiry');
    ok(wait_until(15, sub { get($ng, $key)->{status} == 401 }),
       'expiry: refused after it expires');
    like(get($ng, $key)->{body}, qr/has expired/, 'expiry: says why');
    $ng->stop;
}

# --- 9. two workers share one cache, which survives a reload -------------

{
    my $key = make_key('acme', name => 'workers');
    redis_forget($key);
    my $ng = gateway(workers => 2);
    my %src;
    $src{ src(get($ng, $key)) }++ for 1 .. 20;
    is($src{postgres}, 1, 'workers: one PostgreSQL lookup for 20 requests');
    is($src{shm}, 19, 'workers: the rest from the shared cache');

    $ng->mark;
    $ng->reload;
    ok($ng->wait_log(qr/gracefully shutting down|exiting/, 10),
       'reload: old workers leave');
    is(src(get($ng, $key)), 'shm', 'reload: cache survives a reload');
    ok(wait_until(10, sub { $ng->log =~ /worker process \d+ exited/ }),
       'reload: old workers exited');
    unlike($ng->log, qr/open socket .* left|\[alert\]|\[crit\]/,
           'reload: no leaked sockets or alerts');
    $ng->stop;
}

END {
    # never leave the shared database refusing connections
    eval { psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS true",
                'postgres') };
}

done_testing();
