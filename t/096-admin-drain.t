# Draining an agent (issue 20, sql/006_drain.sql): POST
# /admin/v1/agents/{id}/drain makes the balancer send the agent no new
# request while its tunnels stay and a stream in flight on it completes;
# /status shows it "drained", /metrics gpugate_agent_drained; an agent
# that reconnects stays drained; DELETE .../drain undrains it.  The
# "drain <name>" message reaches a second node at once (its periodic
# re-check is 30 s away).  Refusals (none, read-only, missing agent, bad
# method) and the audit rows.  GET whoami answers the credential's role.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

use GpugateAdmin qw(admin);
use GpugateTest qw(start_nginx http_request http_send http_read psql
                   wait_until env_or_skip tunnel_step1 tunnel_step2);
use GpugateAgents qw(agent_bin start_mock start_agent agent_instances
                     read_until read_rest);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir('gpugate-drain-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $run = sprintf '%x%x', $$, time;

my $root_cred = admin("droot-$run", 'admin');
my $read_cred = admin("dro-$run", 'read');

my $mock = start_mock(dir => $dir, models => 'mock-model');

sub node {
    return start_nginx(workers => 2, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
    # no periodic re-check within the test: the message alone must do
    gpugate_tunnel_zone 1m recheck=600s;
    upstream agents {
        gpugate_tunnel queue=16 queue_timeout=2s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location = /metrics {
            gpugate_metrics;
        }
        location /admin/v1/ {
            gpugate_admin;
        }
        location /v1/ {
            gpugate_openai on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
            error_page 502 503 504 @err;
        }
        location @err { gpugate_error; }
SRV
}

my $n1 = node();
my $n2 = node();

sub api {
    my ($node, $method, $path, $cred) = @_;
    my %h;
    $h{Authorization} = "Bearer $cred" if defined $cred;
    my $r = http_request($node->port, $method, "/admin/v1/$path", \%h,
                         '', 10);
    return ($r->{status}, eval { $json->decode($r->{body}) });
}

sub agent {
    my ($name, $node) = @_;
    return start_agent(dir => $dir, name => $name, port => $node->port,
                       args => [ '--runtime',
                                 'http://127.0.0.1:' . $mock->port ]);
}

# requests handed to agent NAME on a node, over its instances
sub served {
    my ($node, $name) = @_;
    my $n = 0;
    $n += $_->{requests} for agent_instances($node->port, $name);
    return $n;
}

sub drained {
    my ($node, $name) = @_;
    my @i = agent_instances($node->port, $name);
    return @i && !grep { !$_->{drained} } @i;
}

# at least N instances of NAME, none drained
sub undrained {
    my ($node, $name, $n) = @_;
    my @i = agent_instances($node->port, $name);
    return @i >= ($n || 1) && !grep { $_->{drained} } @i;
}

sub chat {
    my ($node, $stream, %h) = @_;
    return http_send($node->port, 'POST', '/v1/chat/completions',
        { 'Content-Type' => 'application/json', %h },
        '{"model":"mock-model","stream":' . ($stream ? 'true' : 'false')
        . ',"messages":[{"role":"user","content":"hi"}]}');
}

my ($na, $nb, $nc) = ("da-$run", "db-$run", "dc-$run");
my %agent = (a => agent($na, $n1), b => agent($nb, $n1), c => agent($nc, $n2));
my %id = map { $_ => psql("SELECT id FROM agents WHERE name = '$_'") }
         ($na, $nb, $nc);

ok(wait_until(20, sub {
       agent_instances($n1->port, $na) && agent_instances($n1->port, $nb)
       && agent_instances($n2->port, $nc)
   }), 'three agents connected (two on node 1, one on node 2)');
ok(!drained($n1, $na) && !drained($n1, $nb),
   '/status: "drained": false at first');

# --- whoami ---------------------------------------------------------------

my ($st, $doc) = api($n1, 'GET', 'whoami', $read_cred);
is($st, 200, 'GET whoami with a read-only credential');
is_deeply([ @$doc{qw(name role)} ], [ "dro-$run", 'read' ],
          'answers its name and role');
($st, $doc) = api($n1, 'GET', 'whoami', $root_cred);
is($doc->{role}, 'admin', 'and an admin\'s role');
($st) = api($n1, 'GET', 'whoami', 'gg-admin-nonsense');
is($st, 401, 'an unknown credential: 401');

# --- refusals -------------------------------------------------------------

for my $m ('POST', 'DELETE') {
    ($st) = api($n1, $m, "agents/$id{$na}/drain", undef);
    is($st, 401, "$m drain without a credential: 401");
    ($st) = api($n1, $m, "agents/$id{$na}/drain", $read_cred);
    is($st, 403, "$m drain with a read-only credential: 403");
    ($st, $doc) = api($n1, $m, 'agents/999999999999/drain', $root_cred);
    is($st, 404, "$m drain of a missing agent: 404");
    is($doc->{error}{type}, 'not_found_error', 'OpenAI error JSON');
}
($st) = api($n1, 'PATCH', "agents/$id{$na}/drain", $root_cred);
is($st, 405, 'PATCH drain: 405');
is(psql("SELECT count(*) FROM agents WHERE drained_at IS NOT NULL"
        . " AND name IN ('$na', '$nb')"), 0, 'nothing was drained');
ok(!drained($n1, $na), 'nor is it in the registry');

# --- a stream on A; A drained while it runs: new requests go to B ---------

($st, $doc) = api($n1, 'POST', "agents/$id{$nb}/drain", $root_cred);
is($st, 200, 'POST agents/{B}/drain: 200');
ok(defined $doc->{drained_at}, 'the answer shows drained_at');
ok(wait_until(5, sub { drained($n1, $nb) }), '/status shows B drained');

my @codes = map { http_read(chat($n1, 0), 10)->{status} } 1 .. 4;
is_deeply(\@codes, [ (200) x 4 ], 'four requests answered');
is(served($n1, $na), 4, 'all by A');
my $s = chat($n1, 1, 'X-Mock-Tokens' => 30, 'X-Mock-Token-Delay-Ms' => 100);
my $buf = read_until($s, qr/data: /);
like($buf, qr/data: /, 'a stream started (on A)');
is(served($n1, $nb), 0, 'B took no request while drained');

($st) = api($n1, 'DELETE', "agents/$id{$nb}/drain", $root_cred);
is($st, 200, 'DELETE agents/{B}/drain (undrain): 200');
($st, $doc) = api($n1, 'POST', "agents/$id{$na}/drain", $root_cred);
is($st, 200, 'POST agents/{A}/drain while its stream runs: 200');
my $since = $doc->{drained_at};
ok(wait_until(5, sub { drained($n1, $na) && !drained($n1, $nb) }),
   '/status: A drained, B not');

my $r = read_rest($s, $buf, 15);
ok($r->{done} && $r->{body} =~ /data: \[DONE\]/,
   'the stream in flight on A completed ([DONE])');
ok(drained($n1, $na), 'while A was drained');
ok(scalar agent_instances($n1->port, $na), 'A keeps its tunnels');

# both idle now: without the drain they would share the requests
my $a0 = served($n1, $na);
@codes = map { http_read(chat($n1, 0), 10)->{status} } 1 .. 6;
is_deeply(\@codes, [ (200) x 6 ], 'six new requests answered');
is(served($n1, $na), $a0, 'none of them went to the drained A');
is(served($n1, $nb), 6, 'all six went to B');

{
    my $m = http_request($n1->port, 'GET', '/metrics', {}, '')->{body};
    like($m, qr/^gpugate_agent_drained\{agent="\Q$na\E"\} 1$/m,
         '/metrics: gpugate_agent_drained 1 for A');
    like($m, qr/^gpugate_agent_drained\{agent="\Q$nb\E"\} 0$/m,
         'and 0 for B');
}

($st, $doc) = api($n1, 'POST', "agents/$id{$na}/drain", $root_cred);
is($doc->{drained_at}, $since, 'a second drain keeps the first one\'s time');
($st, $doc) = api($n1, 'GET', "agents/$id{$na}", $read_cred);
ok($doc->{live}[0]{drained}, 'GET agents/{id}: the live entry is drained');

# --- a drained agent that reconnects stays drained -------------------------

$agent{a}->stop;
ok(wait_until(10, sub { !agent_instances($n1->port, $na) }),
   'A gone');
$agent{a} = agent($na, $n1);
ok(wait_until(20, sub { agent_instances($n1->port, $na) }),
   'A reconnected (a new instance)');
ok(drained($n1, $na), 'and is drained from its handshake on');
@codes = map { http_read(chat($n1, 0), 10)->{status} } 1 .. 4;
is_deeply(\@codes, [ (200) x 4 ], 'four more requests answered');
is(served($n1, $na), 0, 'none by the reconnected A');

# --- undrain --------------------------------------------------------------

($st, $doc) = api($n1, 'DELETE', "agents/$id{$na}/drain", $root_cred);
is($st, 200, 'DELETE agents/{A}/drain: 200');
ok(!defined $doc->{drained_at}, 'drained_at is null');
ok(wait_until(5, sub { agent_instances($n1->port, $na)
                       && !drained($n1, $na) }), '/status: A undrained');
ok(wait_until(10, sub {
       http_read(chat($n1, 0), 10);
       served($n1, $na) > 0;
   }), 'A takes requests again');

is(psql("SELECT string_agg(action || ' ' || admin_name, ',' ORDER BY id)"
        . " FROM admin_audit WHERE target = 'agent $id{$na}'"),
   join(',', map { "$_ droot-$run" }
        qw(agent.drain agent.drain agent.undrain)),
   'each drain and undrain of A is audited; the refusals are not');

# --- the message reaches another node at once ------------------------------

my $t0 = time;
($st) = api($n1, 'POST', "agents/$id{$nc}/drain", $root_cred);
is($st, 200, 'drain C (on node 2) through node 1');
ok(wait_until(15, sub { drained($n2, $nc) }), 'node 2 shows C drained');
my $took = time - $t0;
ok($took < 15, 'before the 30 s re-check could have told it');
diag sprintf 'node 2 drained C %.2f s after the call', $took;
{
    my $res = http_read(chat($n2, 0), 10);
    is($res->{status}, 503, 'node 2, its only agent drained: 503');
    like($res->{body}, qr/"code":"no_capacity"/, 'no_capacity JSON');
}
($st) = api($n2, 'DELETE', "agents/$id{$nc}/drain", $root_cred);
ok(wait_until(5, sub { agent_instances($n2->port, $nc)
                       && !drained($n2, $nc) }), 'undrained on node 2');
is(http_read(chat($n2, 0), 10)->{status}, 200, 'and serves again');

# --- a handshake that straddles an undrain ---------------------------------
# A second instance of B reads "drained" at step 1; the undrain and the
# re-check its message makes come before its step 2, which then applied
# the older state to all of B's slots: B stayed drained until the
# periodic re-check (30 s by default).  Now a drain message during a
# handshake makes the worker ask again once the instance is attached.

($st) = api($n1, 'POST', "agents/$id{$nb}/drain", $root_cred);
is($st, 200, 'drain B');
ok(wait_until(10, sub { drained($n1, $nb) }), 'B drained');

my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $n1->port,
                                 Timeout => 5) or die "connect: $!\n";
my ($r1, $scram) = tunnel_step1($sock, $nb);
ok($r1->{status} == 401
   && ($r1->{headers}{'www-authenticate'} // '') =~ /sid=/,
   'a second instance of B: step 1 (the drained state is read)');

($st) = api($n1, 'DELETE', "agents/$id{$nb}/drain", $root_cred);
is($st, 200, 'undrain B while that handshake is half done');
ok(wait_until(10, sub { undrained($n1, $nb) }),
   'the message\'s re-check undrained B');

my $token = do {
    open my $fh, '<', "$dir/$nb.token" or die "$dir/$nb.token: $!\n";
    local $/;
    my $t = <$fh>;
    $t =~ s/\s+\z//;
    $t;
};
my ($r2, $proof_ok) = tunnel_step2($sock, $r1, $scram, $token,
    Upgrade => 'gpugate-tunnel/1', 'X-Gpugate-Models' => 'mock-model');
ok($r2->{status} == 101 && $proof_ok, 'its step 2 after the undrain: 101')
    or diag($r2->{status});
ok(wait_until(10, sub { undrained($n1, $nb, 2) }),
   'B and its new instance undrained: the handshake\'s older state was '
   . 'asked about again') or diag(explain [ agent_instances($n1->port,
                                                             $nb) ]);
close $sock;

# and the other way: step 1 reads "undrained", a drain comes before step 2
$sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $n1->port,
                              Timeout => 5) or die "connect: $!\n";
($r1, $scram) = tunnel_step1($sock, $nb);
is($r1->{status}, 401, 'a third instance of B: step 1');
($st) = api($n1, 'POST', "agents/$id{$nb}/drain", $root_cred);
is($st, 200, 'drain B while that handshake is half done');
ok(wait_until(10, sub { drained($n1, $nb) }),
   'the message\'s re-check drained B');
($r2, $proof_ok) = tunnel_step2($sock, $r1, $scram, $token,
    Upgrade => 'gpugate-tunnel/1', 'X-Gpugate-Models' => 'mock-model',
    'X-Gpugate-Instance' => 'fedcba9876543210');
ok($r2->{status} == 101 && $proof_ok, 'its step 2 after the drain: 101');
ok(wait_until(10, sub {
       my @i = agent_instances($n1->port, $nb);
       (grep { $_->{instance} eq 'fedcba9876543210' } @i)
           && !grep { !$_->{drained} } @i;
   }), 'B and its new instance drained: no new request goes to it')
    or diag(explain [ agent_instances($n1->port, $nb) ]);
close $sock;

$_->stop for values %agent;

done_testing();
