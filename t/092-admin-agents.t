# The admin API's agents routes (issue 20): create (the token shown
# once, a SCRAM verifier stored; a real gpugate-agent connects with it),
# list (paged) and get with the live state of this node's tunnel
# registry, revoke (the agent's tunnels closed at once); refused without
# a credential and, for writes, with a read-only one; audit rows; bad
# names (markup included) refused.  Drain: t/096-admin-drain.t.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir tempfile);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

use GpugateAdmin qw(tool admin);
use GpugateTest qw(start_nginx http_request psql wait_until env_or_skip
                   free_port);
use GpugateAgents qw(agent_bin start_mock start_agent agent_instances);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir('gpugate-admin-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# names unique to this run, so that the file can run again on a database
my $run = sprintf '%x%x', $$, time;

my $root_cred = admin("root-$run", 'admin');
my $read_cred = admin("ro-$run", 'read');

my $mock = start_mock(dir => $dir, models => 'mock-model');

my $a = start_nginx(workers => 2, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
    upstream agents {
        gpugate_tunnel queue=16 queue_timeout=5s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /admin/v1/ {
            gpugate_admin;
        }
SRV

# api(NODE, METHOD, PATH, CRED, BODY): (status, decoded JSON or undef, raw)
sub api {
    my ($node, $method, $path, $cred, $body) = @_;
    my %h;
    $h{Authorization} = "Bearer $cred" if defined $cred;
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $r = http_request($node->port, $method, "/admin/v1/$path", \%h,
                         $body, 10);
    my $doc = eval { $json->decode($r->{body}) };
    return ($r->{status}, $doc, $r);
}

sub audit {
    my ($target) = @_;
    return psql("SELECT string_agg(action || ' ' || admin_name, ','"
                . " ORDER BY id) FROM admin_audit WHERE target = '$target'");
}

my $name = "gpu-$run";
my ($st, $doc);

# --- create -----------------------------------------------------------------

($st, $doc) = api($a, 'POST', 'agents', $read_cred, qq({"name":"$name"}));
is($st, 403, 'POST agents with a read-only credential: 403');
($st, $doc) = api($a, 'POST', 'agents', undef, qq({"name":"$name"}));
is($st, 401, 'POST agents without a credential: 401');
is(psql("SELECT count(*) FROM agents WHERE name = '$name'"), 0,
   'neither made an agent');

psql("INSERT INTO tenants (name) VALUES ('at-$run')");
($st, $doc) = api($a, 'POST', 'agents', $root_cred,
    qq({"name":"$name","tenant":"at-$run","region":"eu-1",)
  . qq("models":["mock-model"]}));
is($st, 201, 'POST agents: 201');
my ($id, $token) = @$doc{qw(id token)};
like($token // '', qr/^gga-[A-Za-z0-9]{48}$/, 'the token is shown');
is_deeply([ @$doc{qw(name tenant region)} ], [ $name, "at-$run", 'eu-1' ],
          'with the agent\'s name, tenant and region');
is_deeply($doc->{models}, [ 'mock-model' ], 'and its models');
{
    my $t = substr($token, 4);
    unlike(psql("SELECT row(agents.*)::text FROM agents WHERE id = $id"),
           qr/\Q$t\E/, 'PostgreSQL does not hold the token');
}
is(psql("SELECT scram_iterations || ' ' || length(scram_salt)"
        . " FROM agents WHERE id = $id"), '4096 16',
   'but a SCRAM verifier (4096 iterations, 16-byte salt)');
is(audit("agent $id"), "agent.create root-$run",
   'the creation is audited');
is(psql("SELECT count(*) FROM admin_audit WHERE target = 'agent $id'"
        . " AND detail::text LIKE '%" . substr($token, 4) . "%'"), 0,
   'the audit row does not hold the token');

($st, $doc) = api($a, 'POST', 'agents', $root_cred, qq({"name":"$name"}));
is($st, 409, 'POST agents with a taken name: 409');
is($doc->{error}{code}, 'conflict', 'code conflict');

for my $bad ('{"name":"<img src=x onerror=alert(1)>"}', '{"name":""}',
             '{}', '{"name":7}', qq({"name":"b-$run","tenant":"no-$run"}),
             qq({"name":"b-$run","region":"a b"}),
             qq({"name":"b-$run","models":["a,b"]}),
             qq({"name":"b-$run","token":"x"}))
{
    ($st, $doc) = api($a, 'POST', 'agents', $root_cred, $bad);
    is($st, 400, "POST agents $bad: 400");
    is($doc->{error}{type}, 'invalid_request_error', 'OpenAI error JSON');
}
is(psql("SELECT count(*) FROM agents WHERE name LIKE '%<%'"
        . " OR name = 'b-$run'"), 0, 'no bad agent was stored');

# --- the token works; the live state follows -------------------------------

($st, $doc) = api($a, 'GET', "agents/$id", $read_cred);
is($st, 200, 'GET agents/{id} with a read-only credential');
is($doc->{connected}, JSON::PP::false, 'not connected yet');
is_deeply($doc->{live}, [], 'no live entry');

{
    open my $tf, '>', "$dir/$name.token" or die;
    print $tf "$token\n";
    close $tf;
    chmod 0600, "$dir/$name.token";
}
my $agent = start_agent(dir => $dir, name => $name, port => $a->port,
                        args => [ '--runtime',
                                  'http://127.0.0.1:' . $mock->port ]);

ok(wait_until(20, sub {
       my (undef, $d) = api($a, 'GET', "agents/$id", $read_cred);
       $d && $d->{connected};
   }), 'the agent made with the API connects: GET shows it connected');
($st, $doc) = api($a, 'GET', "agents/$id", $read_cred);
is($doc->{live}[0]{name}, $name, 'with its live tunnel status entry');
ok(grep({ $_ eq 'mock-model' } @{ $doc->{live}[0]{models} || [] }),
   'which names the models it serves');

{
    my @ids;
    my $after = psql("SELECT coalesce(max(id), 0) FROM agents");
    for (1 .. 2) {
        ($st, $doc) = api($a, 'POST', 'agents', $root_cred,
                          qq({"name":"p$_-$run"}));
        push @ids, $doc->{id};
    }
    ($st, $doc) = api($a, 'GET', "agents?limit=1&after=" . ($id - 1),
                      $read_cred);
    is($st, 200, 'GET agents?limit=1');
    is($doc->{data}[0]{id}, $id, 'the first page');
    ok($doc->{data}[0]{connected}, 'shows the agent connected');
    ok($doc->{has_more}, 'has_more');
    ($st, $doc) = api($a, 'GET', "agents?limit=5&after=$after",
                      $read_cred);
    is_deeply([ map { $_->{id} } @{ $doc->{data} } ], \@ids,
              'a page after an id');
    is_deeply([ map { $_->{connected} ? 1 : 0 } @{ $doc->{data} } ],
              [ 0, 0 ], 'agents that never connected show so');
    ($st) = api($a, 'GET', 'agents?after=x', $read_cred);
    is($st, 400, 'after=x: 400');
}

# --- revoke ---------------------------------------------------------------

($st) = api($a, 'DELETE', "agents/$id", $read_cred);
is($st, 403, 'DELETE agents/{id} with a read-only credential: 403');
($st) = api($a, 'DELETE', "agents/$id", undef);
is($st, 401, 'DELETE agents/{id} without a credential: 401');
ok(scalar agent_instances($a->port, $name), 'the agent is still there');

my $t0 = time;
($st, $doc) = api($a, 'DELETE', "agents/$id", $root_cred);
is($st, 200, 'DELETE agents/{id}: 200');
ok(defined $doc->{revoked_at}, 'the agent shows revoked');
ok(wait_until(10, sub { !agent_instances($a->port, $name) }),
   'its tunnels are closed');
my $took = time - $t0;
ok($took < 10, 'within 10 s') or diag "took ${took}s";
($st, $doc) = api($a, 'GET', "agents/$id", $read_cred);
is($doc->{connected}, JSON::PP::false, 'GET shows it disconnected');
is(audit("agent $id"), "agent.create root-$run,agent.revoke root-$run",
   'the revocation is audited');
($st) = api($a, 'DELETE', 'agents/999999999999', $root_cred);
is($st, 404, 'DELETE of a missing agent: 404');
($st) = api($a, 'PATCH', "agents/$id", $root_cred, '{}');
is($st, 405, 'PATCH agents/{id}: 405');

$agent->stop;

done_testing();
