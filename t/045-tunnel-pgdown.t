# Agents through a PostgreSQL outage (issue 25, item 1): nginx keeps the
# verifiers of agents it saw lately in the tunnel zone, so after a reload
# during the outage a known agent handshakes again within seconds and its
# model is served; for the auth cache's ttl + stale only.  Revocation
# still wins when PostgreSQL told it: an agent revoked before the outage
# stays out.  A message published during the outage (anyone with Redis
# can publish) closes an agent's tunnels but cannot lock it out.  An
# unknown name gets 503 (never 401: it cannot be checked).
#
# PostgreSQL goes down as in t/030: the database refuses new connections
# and the gateway's sessions are ended.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(time);

use GpugateTest qw(start_nginx http_request http_send http_read psql redis
                   wait_until env_or_skip tunnel_connect);
use GpugateAgents qw(agent_bin start_mock start_agent write_token);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $root = "$FindBin::Bin/..";
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $dir = tempdir('gpugate-pgdown-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub pg_down {
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS false", 'postgres');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
       . " WHERE datname = 'gpugate' AND pid <> pg_backend_pid()",
         'postgres');
}

sub pg_up {
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS true", 'postgres');
}

# whatever happens, the database is usable again for the next test file
END {
    local $?;
    eval { pg_up() };
}

my $mock_port = start_mock(dir => $dir,
                           models => 'pgd-a-model,pgd-b-model,pgd-c-model',
                           args => [ '--ttft-ms', '0',
                                     '--token-delay-ms', '0' ])->port;

my %token = map { $_ => write_token($dir, $_) } qw(pgd-a pgd-b pgd-c);

# ttl + stale: a verifier serves for 1s + 10s after PostgreSQL last
# confirmed it (the re-check confirms every second)
my $ngx = start_nginx(workers => 2, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=pgdown:1m ttl=1s stale=10s;
    gpugate_auth_postgres "$dsn connect_timeout=2" timeout=1s;
    gpugate_auth_redis 127.0.0.1:$rd;
    gpugate_tunnel_zone 1m recheck=1s;
    upstream agents {
        gpugate_tunnel queue=16 queue_timeout=1s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s;
        }
        location /v1/ {
            gpugate_openai on;
            gpugate_model pgd-a-model pool=agents;
            gpugate_model pgd-b-model pool=agents;
            gpugate_model pgd-c-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

sub agent {
    my ($name) = @_;
    return start_agent(dir => $dir, name => $name, port => $port,
                       args => [ '--runtime', "http://127.0.0.1:$mock_port",
                                 '--models', "$name-model", '--spare', 2,
                                 '--log-level', 'debug' ])->pid;
}

sub chat {
    my ($model) = @_;
    return http_read(http_send($port, 'POST', '/v1/chat/completions',
        { 'Content-Type' => 'application/json' },
        "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\","
        . "\"content\":\"hi\"}]}"), 10)->{status};
}

sub workers {
    my $master = $ngx->pid or return ();
    return sort split ' ', `pgrep -P $master`;
}

# a reload, and the old workers gone: the tunnels are the new workers'
sub reload_and_wait {
    my @old = workers();
    $ngx->reload;
    return wait_until(20, sub { !grep { kill 0, $_ } @old });
}

my %pid = map { $_ => agent($_) } qw(pgd-a pgd-b pgd-c);

for my $name (qw(pgd-a pgd-b pgd-c)) {
    ok(wait_until(15, sub { chat("$name-model") == 200 }),
       "$name connected and served");
}

# revoked before the outage, through the key tool (PostgreSQL and Redis);
# the agent is frozen so that it cannot dial again before the outage (its
# handshake would have told the gateway): the message alone must do
kill 'STOP', $pid{'pgd-b'};
my $out = `'$root/scripts/gpugate-keys' --dsn '$dsn' --redis 127.0.0.1:$rd agent-revoke pgd-b 2>&1`;
is($?, 0, 'pgd-b revoked') or diag $out;
ok(wait_until(10, sub { chat('pgd-b-model') == 503 }),
   '... its model is no longer served');
# the message made every worker ask PostgreSQL about pgd-b at once, so
# its cached verifier is gone before the outage, whether or not the agent
# dialed again in between
ok($ngx->wait_log(qr/re-check: agent id \d+ is revoked or gone/, 10),
   '... and PostgreSQL, asked at once, dropped its cached verifier');

pg_down();
my $t_down = time;
$ngx->mark;
kill 'CONT', $pid{'pgd-b'};

# a message published during the outage closes the tunnels, and the
# agent comes back from its cached verifier: Redis cannot lock it out
redis('PUBLISH', 'gpugate:invalidate', 'agent pgd-c');
ok($ngx->wait_log(qr/invalidation "agent pgd-c" closed [1-9]\d* tunnel/,
                  10), 'pgd-c: a published message closes its tunnels');

ok(reload_and_wait(), 'reload during the outage: old workers gone');

ok(wait_until(15, sub { chat('pgd-a-model') == 200 }),
   'pgd-a is back on the new workers while PostgreSQL is down');
my $back = time - $t_down;
my @st = map { chat('pgd-a-model') } 1 .. 10;
is("@st", join(' ', (200) x 10), '... and its requests are served');
like($ngx->log, qr/agent "pgd-a" checked against its cached verifier/,
     '... through its cached verifier (logged)');
diag(sprintf 'pgd-a served again %.1fs after PostgreSQL went down', $back);

ok(wait_until(15, sub { chat('pgd-c-model') == 200 }),
   'pgd-c (only a message) is back from its cached verifier too');
is(chat('pgd-b-model'), 503, 'pgd-b (revoked before the outage) stays out');
like($ngx->log, qr/PostgreSQL unavailable \([^)]*\), agent handshake refused|verifier lookup for "pgd-b" failed/,
     '... its handshakes are refused');

my ($s, $r) = tunnel_connect($port, 'pgd-a', $token{'pgd-a'});
is($r->{status}, 101, 'a scripted handshake of pgd-a: 101');
close $s if $s;
($s, $r) = tunnel_connect($port, 'pgd-a', 'gga-wrong-token');
is($r->{status}, 401, '... with a wrong token: 401, the cache checks it');
($s, $r) = tunnel_connect($port, 'pgd-nobody', 'gga-x');
is($r->{status}, 503, 'an unknown agent during the outage: 503');
like($r->{body}, qr/"code":"verifier_unavailable"/, '... not 401');

# the cached verifier serves for ttl + stale only
ok(wait_until(25, sub {
    my ($s2, $r2) = tunnel_connect($port, 'pgd-a', $token{'pgd-a'});
    close $s2 if $s2;
    $r2->{status} == 503;
}), 'past ttl + stale, pgd-a is refused too');
cmp_ok(time - $t_down, '>=', 10, '... not before the grace ran out');

pg_up();
ok(wait_until(15, sub {
    my ($s2, $r2) = tunnel_connect($port, 'pgd-a', $token{'pgd-a'});
    close $s2 if $s2;
    $r2->{status} == 101;
}), 'PostgreSQL back: pgd-a handshakes again');

unlike($ngx->log, qr/\[(alert|emerg)\]|exited on signal/,
       'no alerts, no crash');

done_testing();
