# The admin API's tenants routes (issue 20): create (409 on a taken
# name), list (paged), get, patch limits and disabled; refused without a
# credential and, for writes, with a read-only one; audit rows; a
# tenant's limit change and its disabling reaching a key cached on two
# gateway nodes; a tenant name with markup refused, never stored.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempfile);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

use GpugateAdmin qw(tool admin);
use GpugateTest qw(start_nginx http_request psql wait_until env_or_skip
                   free_port http_send http_read make_agent);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugatePrio qw(prio_node served status_agents);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $json = JSON::PP->new->utf8->canonical;

# names unique to this run, so that the file can run again on a database
my $run = sprintf '%x%x', $$, time;

my $root_cred = admin("root-$run", 'admin');
my $read_cred = admin("ro-$run", 'read');

my $zone_n = 0;

# a node: the admin API at /admin/v1/, a key-checked location at /t
sub node {
    my $http = "    gpugate_auth_zone zone=a" . $zone_n++ . ":1m ttl=60s"
             . " negative_ttl=60s stale=300s;\n"
             . "    gpugate_auth_postgres \"host=127.0.0.1 port=$pg"
             . " user=gpugate dbname=gpugate connect_timeout=5\""
             . " timeout=10s;\n"
             . "    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;\n";
    my $port = free_port();
    # /t proxies, so that auth (access phase) runs before the answer
    return start_nginx(port => $port, workers => 2, http => $http,
                       server => <<"SRV");
        location /admin/v1/ {
            gpugate_admin;
        }
        location /t {
            gpugate_auth on;
            proxy_set_header X-Lim "\$gpugate_tenant_rpm_limit";
            proxy_pass http://127.0.0.1:$port/ok;
        }
        location = /ok {
            return 200 "rpm=\$http_x_lim\\n";
        }
SRV
}

my $a = node();
my $b = node();

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

sub key_status {
    my ($node, $key) = @_;
    return http_request($node->port, 'GET', '/t',
                        { Authorization => "Bearer $key" })->{status};
}

sub audit_count {
    return psql("SELECT count(*) FROM admin_audit"
                . " WHERE admin_name IN ('root-$run', 'ro-$run')");
}

# an OpenAI error body with this code
sub is_error {
    my ($doc, $code, $what) = @_;
    ok(ref $doc eq 'HASH' && ref $doc->{error} eq 'HASH'
       && ($doc->{error}{code} // '') eq $code
       && defined $doc->{error}{message} && exists $doc->{error}{type},
       "$what: OpenAI error JSON, code $code")
        or diag explain $doc;
}

# /t through a node: (status, the tenant's rpm limit the gateway has)
sub key_rpm {
    my ($node, $key) = @_;
    my $r = http_request($node->port, 'GET', '/t',
                         { Authorization => "Bearer $key" });
    my ($rpm) = $r->{body} =~ /^rpm=(.*)$/m;
    return $r->{status} == 200 ? "200 " . ($rpm // '?') : $r->{status};
}

sub audit {
    my ($target) = @_;
    return psql("SELECT string_agg(action || ' ' || admin_name || ' '"
                . " || client, ',' ORDER BY id) FROM admin_audit"
                . " WHERE target = '$target'");
}

# --- refusals -------------------------------------------------------------

my ($tid, $st, $doc);
($st, $doc) = api($a, 'POST', 'tenants', $root_cred,
                  qq({"name":"ten-$run","rpm":50,"budget_micros":2000000,)
                . qq("budget_period":"day"}));
is($st, 201, 'POST tenants: 201');
$tid = $doc->{id};
is_deeply([ @$doc{qw(name rpm tpm budget_micros budget_period disabled)} ],
          [ "ten-$run", 50, undef, 2000000, 'day', JSON::PP::false ],
          'the tenant as created');
is(audit("tenant $tid"), "tenant.create root-$run 127.0.0.1",
   'the creation is audited');

for my $rt ([ 'GET', 'tenants' ], [ 'POST', 'tenants', '{"name":"z"}' ],
            [ 'GET', "tenants/$tid" ], [ 'PATCH', "tenants/$tid",
                                         '{"rpm":1}' ])
{
    my ($m, $p, $body) = @$rt;
    ($st, $doc) = api($a, $m, $p, undef, $body);
    is($st, 401, "$m $p without a credential: 401");
    ($st, $doc) = api($a, $m, $p, 'gg-admin-nope', $body);
    is($st, 401, "$m $p with an unknown credential: 401");
    ($st, $doc) = api($a, $m, $p, $read_cred, $body);
    is($st, $m eq 'GET' ? 200 : 403,
       "$m $p with a read-only credential: " . ($m eq 'GET' ? 200 : 403));
}
is(audit("tenant $tid"), "tenant.create root-$run 127.0.0.1",
   'refused calls are not audited');
is(psql("SELECT rpm_limit FROM tenants WHERE id = $tid"), 50,
   'and change nothing');
is(psql("SELECT count(*) FROM tenants WHERE name = 'z'"), 0,
   'and create nothing');

# --- bad input ------------------------------------------------------------

($st, $doc) = api($a, 'POST', 'tenants', $root_cred,
                  qq({"name":"ten-$run"}));
is($st, 409, 'POST tenants with a taken name: 409');
is($doc->{error}{code}, 'conflict', 'code conflict');

for my $bad ('{"name":"<img src=x onerror=alert(1)>"}', '{"name":""}',
             '{"name":5}', '{}', qq({"name":"b-$run","rpm":0}),
             qq({"name":"b-$run","budget_micros":5}),
             qq({"name":"b-$run","disabled":true}), 'nope')
{
    ($st, $doc) = api($a, 'POST', 'tenants', $root_cred, $bad);
    is($st, 400, "POST tenants $bad: 400");
    is($doc->{error}{type}, 'invalid_request_error', 'OpenAI error JSON');
}
is(psql("SELECT count(*) FROM tenants WHERE name LIKE '%<%'"
        . " OR name = 'b-$run'"), 0, 'no bad tenant was stored');
for my $bad ('{"rpm":-1}', '{"disabled":1}', '{"name":"x"}',
             '{"budget_period":"week"}')
{
    ($st, $doc) = api($a, 'PATCH', "tenants/$tid", $root_cred, $bad);
    is($st, 400, "PATCH tenants/{id} $bad: 400");
}
($st) = api($a, 'GET', 'tenants/999999999999', $read_cred);
is($st, 404, 'GET of a missing tenant: 404');
($st) = api($a, 'PATCH', 'tenants/999999999999', $root_cred, '{"rpm":1}');
is($st, 404, 'PATCH of a missing tenant: 404');
($st) = api($a, 'DELETE', "tenants/$tid", $root_cred);
is($st, 405, 'DELETE tenants/{id}: 405 (tenants are disabled, not deleted)');

# --- get, list ------------------------------------------------------------

($st, $doc) = api($b, 'GET', "tenants/$tid", $read_cred);
is($st, 200, 'GET tenants/{id}');
is($doc->{name}, "ten-$run", 'the tenant asked for');

{
    my @ids = ($tid);
    for (1 .. 2) {
        ($st, $doc) = api($a, 'POST', 'tenants', $root_cred,
                          qq({"name":"ten$_-$run"}));
        push @ids, $doc->{id};
    }
    my $after = $tid - 1;
    ($st, $doc) = api($a, 'GET', "tenants?limit=2&after=$after",
                      $read_cred);
    is_deeply([ map { $_->{id} } @{ $doc->{data} } ], [ @ids[0, 1] ],
              'a page of two tenants by id');
    ok($doc->{has_more}, 'has_more');
    ($st, $doc) = api($a, 'GET', "tenants?limit=2&after=$doc->{last_id}",
                      $read_cred);
    is($doc->{data}[0]{id}, $ids[2], 'the next page starts after last_id');
    ($st) = api($a, 'GET', 'tenants?limit=9999', $read_cred);
    is($st, 400, 'limit=9999: 400');
}

# --- a change reaches a key cached on both nodes ---------------------------

my ($key) = do {
    ($st, $doc) = api($a, 'POST', 'keys', $root_cred,
                      qq({"tenant":"ten-$run"}));
    ($doc->{key});
};
is(key_rpm($a, $key), '200 50', 'node a serves the key, tenant rpm 50');
is(key_rpm($b, $key), '200 50', 'node b too');

($st, $doc) = api($a, 'PATCH', "tenants/$tid", $root_cred, '{"rpm":70}');
is($st, 200, 'PATCH tenants/{id} rpm 70');
is($doc->{rpm}, 70, 'answered with the new limit');
is($doc->{budget_micros}, 2000000, 'the other limits stay');
ok(wait_until(5, sub { key_rpm($b, $key) eq '200 70' }),
   'node b applies the tenant\'s new limit');
is(key_rpm($a, $key), '200 70', 'node a too');

($st, $doc) = api($b, 'PATCH', "tenants/$tid", $root_cred,
                  '{"disabled":true}');
is($st, 200, 'PATCH disabled:true through node b');
ok($doc->{disabled}, 'the tenant shows disabled');
ok(wait_until(5, sub { key_rpm($a, $key) eq '401' }),
   'node a refuses the disabled tenant\'s key');
is(key_rpm($b, $key), '401', 'node b too');

($st, $doc) = api($a, 'PATCH', "tenants/$tid", $root_cred,
                  '{"disabled":false,"rpm":null}');
is($st, 200, 'PATCH disabled:false, rpm removed');
ok(wait_until(5, sub { key_rpm($b, $key) =~ /^200 0?$/ }),
   'node b accepts the key again, without a tenant rpm')
    or diag key_rpm($b, $key);

is(audit("tenant $tid"),
   join(',', "tenant.create root-$run 127.0.0.1",
        map { "tenant.update root-$run 127.0.0.1" } 1 .. 3),
   'every change audited, in order');

# --- priorities and region pin (sql/009): set, refused, a gateway applies --

my ($ptid) = do {
    ($st, $doc) = api($a, 'POST', 'tenants', $root_cred,
                      qq({"name":"pr-$run","priority":7,"region":"x"}));
    is_deeply([ $st, @$doc{qw(priority max_priority region)} ],
              [ 201, 7, undef, 'x' ], 'POST tenants with a priority, a pin');
    ($doc->{id});
};
for my $bad (qq({"name":"pb-$run","priority":-2}),
             qq({"name":"pb-$run","region":"a:b"}))
{
    ($st, $doc) = api($a, 'POST', 'tenants', $root_cred, $bad);
    is($st, 400, "POST tenants $bad: 400");
}
is(psql("SELECT count(*) FROM tenants WHERE name = 'pb-$run'"), 0,
   'no tenant made by a refused create');
for my $bad ('{"priority":10}', '{"max_priority":-1}', '{"priority":"3"}',
             '{"max_priority":2.5}', '{"region":"a b"}', '{"region":""}',
             '{"region":false}', '{"region":"' . ('r' x 32) . '"}')
{
    ($st, $doc) = api($a, 'PATCH', "tenants/$ptid", $root_cred, $bad);
    is($st, 400, "PATCH tenants/{id} $bad: 400");
    is($doc->{error}{code}, 'invalid_value', 'OpenAI error JSON');
}
is(audit("tenant $ptid"), "tenant.create root-$run 127.0.0.1",
   'refused priorities are not audited');

($st, $doc) = api($a, 'PATCH', "tenants/$ptid", $root_cred,
                  '{"priority":4,"max_priority":6,"region":"eu-1"}');
is($st, 200, 'PATCH tenants/{id} priority, max_priority, region: 200');
is_deeply([ @$doc{qw(priority max_priority region)} ], [ 4, 6, 'eu-1' ],
          'answered with them');
($st, $doc) = api($b, 'GET', "tenants/$ptid", $read_cred);
is_deeply([ @$doc{qw(priority max_priority region)} ], [ 4, 6, 'eu-1' ],
          'GET reads them back');
($st, $doc) = api($a, 'PATCH', "tenants/$ptid", $root_cred,
                  '{"region":null}');
is_deeply([ $st, @$doc{qw(priority max_priority region)} ],
          [ 200, 4, 6, undef ], 'region null unsets the pin only');
is(psql("SELECT string_agg(coalesce(detail ->> 'max_priority', '-')"
        . " || '/' || coalesce(detail ->> 'region', '-'), ',' ORDER BY id)"
        . " FROM admin_audit WHERE target = 'tenant $ptid'"
        . " AND action = 'tenant.update'"), '6/eu-1,-/-',
   'both changes audited with their fields');

# a gateway with a tunnel: the priority a request waits at is in its
# access log; the key and the tenant are changed through node a
{
    my $g = prio_node();
    my $agent = "t091-$$-a";
    my $mock = scale_mock('--ttft-ms', 0, '--tokens', 1);
    my (undef, $alog) = scale_agent(name => $agent,
                                    token => make_agent($agent),
                                    gateways => [ $g->port ],
                                    runtime => $mock);
    ok(wait_until(30, sub { status_agents($g, "t091-$$")->{'-a'} }),
       'an agent is connected to the gateway') or diag(slurp($alog));

    ($st, $doc) = api($a, 'POST', 'keys', $root_cred,
                      qq({"tenant":"pr-$run"}));
    my ($pk, $pkid) = @$doc{qw(key id)};
    my $n = 0;

    # prio(ASK): the priority a request asking ASK (undef: nothing) got
    my $prio = sub {
        my ($ask) = @_;
        my $seq = 'p' . $n++;
        my %h = ('X-Seq' => $seq, 'Content-Type' => 'application/json',
                 Authorization => "Bearer $pk");
        $h{'X-Gpugate-Priority'} = $ask if defined $ask;
        my $r = http_read(http_send($g->port, 'POST',
                                    '/v1/chat/completions', \%h,
                                    '{"model":"mock-model","max_tokens":1,'
                                    . '"messages":[{"role":"user",'
                                    . '"content":"hi"}]}'), 10);
        return "status $r->{status}" unless $r->{status} == 200;
        my $p;
        wait_until(5, sub {
            ($p) = map { $_->[2] } grep { $_->[0] eq $seq } @{ served($g) };
            defined $p;
        });
        return $p // 'not logged';
    };

    is($prio->(undef), 4, 'the tenant\'s default priority applies');
    is($prio->(9), 6, 'asking 9: the tenant\'s maximum, 6');

    ($st) = api($a, 'PATCH', "keys/$pkid", $root_cred,
                '{"priority":1,"max_priority":3}');
    is($st, 200, 'PATCH the key: priority 1, max_priority 3');
    ok(wait_until(10, sub { $prio->(9) eq '3' }),
       'the gateway that had the key cached caps at the key\'s 3');
    is($prio->(undef), 1, 'and the key\'s default wins over the tenant\'s');

    ($st) = api($a, 'PATCH', "tenants/$ptid", $root_cred,
                '{"max_priority":2}');
    is($st, 200, 'PATCH the tenant: max_priority 2');
    ok(wait_until(10, sub { $prio->(9) eq '2' }),
       'the gateway applies the lower maximum, the tenant\'s 2');
}

done_testing();
