# Admin credentials scoped to one tenant (issue 19, sql/011_tenant_admins.sql):
# gpugate-keys admin-create --tenant; an operator, tenant A's admin (admin
# and read roles) and tenant B's admin on one gateway node.  A sees only
# A's keys, tenants, usage and batches (a "tenant" argument naming B is
# 404); B's key by id is 404 on get, patch, delete and rotate (B's key
# unchanged); A's agents (agents.tenant_id, sql/012) are listed, read and
# drained by A, another's are 404; creating a tenant or an agent and
# raising a cap (tenant limits, budget, max_priority, disabled, region; a
# key's priority above the tenant's ceiling, a pin other than the
# tenant's, a key of another tenant) are 403; the operator sees both
# tenants; the
# audit rows name the tenant admin, refusals write none; a revoked tenant
# admin is refused by its next request.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP ();
use Test::More;

use GpugateAdmin qw(tool admin);
use GpugateTest qw(make_key psql env_or_skip start_nginx http_request
                   free_port);
use GpugateBatch qw(batch_node api);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $run = sprintf 't118-%x', $$;
my ($ta, $tb) = ("$run-a", "$run-b");

# --- 1. credentials ----------------------------------------------------------

my ($ka, $ka_id) = make_key($ta, name => 'a1');
my ($ka2, $ka2_id) = make_key($ta, name => 'a2');
my ($kb, $kb_id) = make_key($tb, name => 'b1');
my ($ida, $idb) = map { psql("SELECT id FROM tenants WHERE name = '$_'") }
                  $ta, $tb;

my $op = admin("op-$run", 'admin');

sub tenant_admin {
    my ($name, $role, $tenant) = @_;
    my ($rc, $out, $err) = tool('admin-create', $name, '--role', $role,
                                '--tenant', $tenant);
    $rc == 0 or die "admin-create --tenant failed ($rc): $err\n";
    like($out, qr/^admin: \Q$name\E \(\Q$role\E, tenant \Q$tenant\E\)$/m,
         "admin-create --tenant $tenant ($role)");
    return ($out =~ /^credential: (\S+)/m)[0];
}

my $adm_a = tenant_admin("ta-$run", 'admin', $ta);
my $ro_a = tenant_admin("ra-$run", 'read', $ta);
my $adm_b = tenant_admin("tb-$run", 'admin', $tb);
is(psql("SELECT tenant_id FROM admins WHERE name = 'ta-$run'"), $ida,
   'admins.tenant_id is the tenant');
{
    my ($rc, undef, $err) = tool('admin-create', "x-$run", '--role',
                                 'admin', '--tenant', "$run-none");
    is($rc, 2, 'admin-create --tenant refuses a tenant that does not exist');
    like($err, qr/no such tenant/, '... and says so');
    is(psql("SELECT count(*) FROM tenants WHERE name = '$run-none'"), 0,
       '... creating none');
    ($rc) = tool('admin-create', "x-$run", '--role', 'admin', '--tenant');
    is($rc, 2, 'admin-create --tenant without a name: usage');
}

# --- 2. the node, jobs of both tenants ---------------------------------------

my $ng = batch_node(name => $run, admin => 1);
my $port = $ng->port;

# call(CRED, METHOD, PATH, BODY): (status, decoded) of the admin API
sub call {
    my ($cred, $method, $path, $body) = @_;
    my ($r, $doc) = api($port, $cred, $method, "/admin/v1/$path", $body);
    return ($r->{status}, $doc);
}

my %job;
for ([a => $ka], [b => $kb]) {
    my ($r, $j) = api($port, $_->[1], 'POST', '/v1/jobs',
        { endpoint => '/v1/chat/completions',
          body => { model => 'mock-model',
                    messages => [{ role => 'user', content => 'hi' }] } });
    is($r->{status}, 200, "a job of tenant $_->[0]") or diag($r->{body});
    $job{ $_->[0] } = $j->{id} // '';
}

my ($s, $d) = call($adm_a, 'GET', 'whoami');
is_deeply([ $s, @$d{qw(name role tenant)} ], [ 200, "ta-$run", 'admin', $ta ],
          'whoami names the tenant');
($s, $d) = call($op, 'GET', 'whoami');
ok($s == 200 && exists $d->{tenant} && !defined $d->{tenant},
   "whoami: an operator's tenant is null");

# the console's /status and /metrics ask whoami through auth_request: they
# show every tenant's agents, so an operator's only
{
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $cport = free_port();
    my $cn = start_nginx(port => $cport, http => <<"HTTP", server => <<"SRV");
    gpugate_auth_zone zone=t118_$$:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate
                           dbname=gpugate connect_timeout=5" timeout=10s;
HTTP
        location /admin/v1/ {
            gpugate_admin;
        }
        location = /console/status {
            auth_request /admin/v1/whoami;
            proxy_pass http://127.0.0.1:$cport/ok;
        }
        location = /ok {
            return 200 "ok\n";
        }
SRV
    my %want = (operator => [ $op, 200 ], "A's admin" => [ $adm_a, 403 ],
                "A's read admin" => [ $ro_a, 403 ], nobody => [ 'x', 401 ]);
    for my $who (sort keys %want) {
        my $r = http_request($cport, 'GET', '/console/status',
                             { Authorization => "Bearer $want{$who}[0]" });
        is($r->{status}, $want{$who}[1],
           "the console's status for $who: $want{$who}[1]");
    }
    my ($r, $me) = api($cport, $adm_a, 'GET', '/admin/v1/whoami');
    is($r->{status}, 200, "... while A's own whoami answers");
}

# --- 3. keys -----------------------------------------------------------------

sub ids { [ sort { $a <=> $b } map { $_->{id} } @{ $_[0]{data} || [] } ] }

for my $cred ([admin => $adm_a], [read => $ro_a]) {
    ($s, $d) = call($cred->[1], 'GET', 'keys?limit=500');
    is_deeply([ $s, ids($d) ], [ 200, [ $ka_id, $ka2_id ] ],
              "keys: tenant A's $cred->[0] admin lists A's keys only");
}
($s, $d) = call($adm_a, 'GET', "keys?tenant=$tb");
is($s, 404, 'keys?tenant=B: 404 for A');
($s, $d) = call($adm_a, 'GET', "keys?tenant=$run-none");
is($s, 404, 'keys?tenant=(none): the same 404');
($s, $d) = call($op, 'GET', "keys?tenant=$tb");
is_deeply([ $s, ids($d) ], [ 200, [ $kb_id ] ], 'the operator sees B');

my $b_before = psql("SELECT row(k.*)::text FROM api_keys k"
                    . " WHERE id = $kb_id");
my @b_routes = ([GET => "keys/$kb_id"],
                [PATCH => "keys/$kb_id", { name => 'x' }],
                [DELETE => "keys/$kb_id"],
                [POST => "keys/$kb_id/rotate", { grace_seconds => 0 }]);
for my $rt (@b_routes) {
    ($s, $d) = call($adm_a, @$rt);
    is_deeply([ $s, $d->{error}{message} ], [ 404, "no such key: $kb_id" ],
              "$rt->[0] $rt->[1] of B's key: 404 for A, as no such key");
}
($s) = call($ro_a, 'GET', "keys/$kb_id");
is($s, 404, "GET of B's key: 404 for A's read admin");
is(psql("SELECT row(k.*)::text FROM api_keys k WHERE id = $kb_id"),
   $b_before, "B's key unchanged");
is(psql("SELECT count(*) FROM api_keys WHERE tenant_id = $idb"), 1,
   'no key made for B');
($s, $d) = call($adm_b, 'GET', "keys/$kb_id");
is_deeply([ $s, $d->{tenant} ], [ 200, $tb ], "B's admin reads B's key");

($s, $d) = call($adm_a, 'GET', "keys/$ka_id");
is_deeply([ $s, $d->{tenant} ], [ 200, $ta ], "A reads A's key");
($s) = call($ro_a, 'PATCH', "keys/$ka_id", { name => 'x' });
is($s, 403, "A's read admin may not patch");

# caps: the operator pins A to eu and caps it at 3
($s) = call($op, 'PATCH', "tenants/$ida",
            { max_priority => 3, region => 'eu' });
is($s, 200, 'the operator caps tenant A');
for my $c ([{ priority => 4 }, 'priority'],
           [{ max_priority => 9 }, 'max_priority'],
           [{ region => 'us' }, 'region']) {
    for my $rt (['PATCH', "keys/$ka_id"], ['POST', 'keys']) {
        ($s, $d) = call($adm_a, @$rt, $c->[0]);
        is_deeply([ $s, $d->{error}{code} ],
                  [ 403, 'insufficient_permissions' ],
                  "$rt->[0] $rt->[1]: a key's $c->[1] beyond A's caps: 403");
    }
}
($s, $d) = call($adm_a, 'PATCH', "keys/$ka_id",
                { name => 'renamed', priority => 3, max_priority => 2,
                  region => 'eu' });
is_deeply([ $s, @$d{qw(name priority max_priority region)} ],
          [ 200, 'renamed', 3, 2, 'eu' ], 'within the caps: 200');

for my $t ($tb, "$run-c") {
    ($s, $d) = call($adm_a, 'POST', 'keys', { tenant => $t });
    is($s, 403, "POST keys for tenant $t: 403 for A");
}
is(psql("SELECT count(*) FROM tenants WHERE name = '$run-c'"), 0,
   'no tenant made');
($s, $d) = call($adm_a, 'POST', 'keys', { name => 'a3' });
is_deeply([ $s, $d->{tenant} ], [ 201, $ta ],
          'POST keys without a tenant: a key of A');
my $ka3_id = $d->{id};
($s, $d) = call($adm_a, 'POST', 'keys', { name => 'a4', tenant => $ta });
is_deeply([ $s, $d->{tenant} ], [ 201, $ta ], 'POST keys with A: 201');
my $ka4_id = $d->{id};

($s, $d) = call($adm_a, 'POST', "keys/$ka3_id/rotate",
                { grace_seconds => 0 });
is_deeply([ $s, $d->{replaces} ], [ 201, $ka3_id ], "A rotates A's key");
($s, $d) = call($adm_a, 'DELETE', "keys/$ka4_id");
ok($s == 200 && defined $d->{revoked_at}, "A revokes A's key");

# --- 4. tenants, agents ------------------------------------------------------

($s, $d) = call($adm_a, 'GET', 'tenants');
is_deeply([ $s, ids($d), $d->{has_more} ? 1 : 0 ], [ 200, [ $ida ], 0 ],
          'tenants: A lists A only');
($s, $d) = call($adm_a, 'GET', "tenants?after=$ida");
is_deeply([ $s, ids($d) ], [ 200, [] ], 'tenants?after=A: empty');
($s) = call($adm_a, 'GET', 'tenants?limit=0');
is($s, 400, 'tenants?limit=0: 400 as before');
($s, $d) = call($op, 'GET', 'tenants?limit=500');
my %seen = map { $_ => 1 } @{ ids($d) };
ok($seen{$ida} && $seen{$idb}, 'the operator lists both tenants');
($s) = call($adm_a, 'GET', "tenants/$ida");
is($s, 200, 'A reads A');
for my $rt (['GET', "tenants/$idb"], ['PATCH', "tenants/$idb", {}]) {
    ($s, $d) = call($adm_a, @$rt);
    is_deeply([ $s, $d->{error}{message} ], [ 404, "no such tenant: $idb" ],
              "$rt->[0] tenant B: 404 for A");
}
($s) = call($adm_a, 'POST', 'tenants', { name => "$run-c" });
is($s, 403, 'POST tenants: 403 for A');
my $a_before = psql("SELECT row(t.*)::text FROM tenants t WHERE id = $ida");
for my $f ([rpm => 1000], [tpm => 1000], [parallel => 10],
           [tokens_per_day => 100000], [budget_micros => 99000000],
           [budget_period => 'month'], [max_priority => 9],
           [region => undef], [disabled => JSON::PP::false()],
           [priority => 4]) {
    ($s, $d) = call($adm_a, 'PATCH', "tenants/$ida", { @$f });
    is_deeply([ $s, $d->{error}{code} ], [ 403, 'insufficient_permissions' ],
              "PATCH own tenant's $f->[0]: 403");
}
is(psql("SELECT row(t.*)::text FROM tenants t WHERE id = $ida"), $a_before,
   'tenant A unchanged');
($s, $d) = call($adm_a, 'PATCH', "tenants/$ida", { priority => 2 });
is_deeply([ $s, $d->{priority} ], [ 200, 2 ],
          "PATCH own tenant's priority within its ceiling: 200");

# agents are scoped as keys are (sql/012): A's own by agents.tenant_id
($s, $d) = call($op, 'POST', 'agents', { name => "$run-gpu" });
is($s, 201, 'the operator creates an agent of no tenant');
my $ag = $d->{id};
($s, $d) = call($op, 'POST', 'agents', { name => "$run-gpu-a",
                                         tenant => $ta });
is($s, 201, 'and one of tenant A');
my $ag_a = $d->{id};
($s, $d) = call($adm_a, 'GET', 'agents');
is_deeply([ $s, ids($d) ], [ 200, [ $ag_a ] ], 'agents: A lists its own');
($s, $d) = call($adm_a, 'GET', "agents/$ag_a");
is_deeply([ $s, $d->{tenant} ], [ 200, $ta ], 'A reads its own agent');
($s, $d) = call($adm_b, 'GET', "agents/$ag_a");
is_deeply([ $s, $d->{error}{message} ], [ 404, "no such agent: $ag_a" ],
          "B: A's agent is 404");
for my $rt (['GET', "agents/$ag"], ['DELETE', "agents/$ag"],
            ['POST', "agents/$ag/drain"], ['DELETE', "agents/$ag/drain"]) {
    ($s, $d) = call($adm_a, @$rt);
    is_deeply([ $s, $d->{error}{message} ], [ 404, "no such agent: $ag" ],
              "$rt->[0] $rt->[1] (no tenant's): 404 for A");
}
($s, $d) = call($adm_a, 'POST', 'agents', { name => "$run-gpu2",
                                            tenant => $ta });
is_deeply([ $s, $d->{error}{code} ], [ 403, 'insufficient_permissions' ],
          'POST agents: 403 for A (an agent serves every tenant)');
($s) = call($ro_a, 'POST', "agents/$ag_a/drain");
is($s, 403, "A's read credential may not drain A's agent");
is(psql("SELECT count(*) FROM agents WHERE name LIKE '$run-%'"
        . " AND revoked_at IS NULL AND drained_at IS NULL"), 2,
   'agents untouched');
($s, $d) = call($adm_a, 'POST', "agents/$ag_a/drain");
ok($s == 200 && $d->{drained_at}, "A drains its own agent");
($s, $d) = call($adm_a, 'DELETE', "agents/$ag_a/drain");
ok($s == 200 && !$d->{drained_at}, '... and undrains it');

# --- 5. usage, batches -------------------------------------------------------

psql("INSERT INTO usage_events (request_id, gateway, api_key_id, tenant_id,"
     . " model, prompt_tokens, completion_tokens, status) VALUES"
     . " ('$run-1', '$run', $ka_id, $ida, 'm', 10, 1, 200),"
     . " ('$run-2', '$run', $kb_id, $idb, 'm', 20, 2, 200),"
     . " ('$run-3', '$run', $kb_id, $idb, 'm', 30, 3, 200)");
my $from = psql("SELECT to_char(now() - interval '1 hour',"
                . " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') ");
# the tenant ids of a usage answer (the ledger's rows without a tenant,
# refusals of other test files of this lane, left out)
sub tenants_of {
    my ($doc) = @_;
    return [ sort grep { defined } map { $_->{tenant} }
             @{ $doc->{data} || [] } ];
}
($s, $d) = call($adm_a, 'GET', "usage?from=$from&group=tenant");
is_deeply([ $s, tenants_of($d), $d->{data}[0]{prompt_tokens} ],
          [ 200, [ $ida ], 10 ], 'usage: A sees A only');
($s, $d) = call($adm_a, 'GET', "usage?from=$from&group=key");
is_deeply([ $s, [ map { $_->{key} } @{ $d->{data} } ] ],
          [ 200, [ $ka_id ] ], 'usage by key: A only');
($s) = call($adm_a, 'GET', "usage?from=$from&tenant=$tb");
is($s, 404, 'usage?tenant=B: 404 for A');
($s, $d) = call($op, 'GET', "usage?from=$from&group=tenant&limit=1000");
%seen = map { $_ => 1 } @{ tenants_of($d) };
ok($seen{$ida} && $seen{$idb}, 'the operator sees both in usage');

sub batch_ids { [ map { $_->{id} } @{ $_[0]{data} || [] } ] }
($s, $d) = call($ro_a, 'GET', 'batches');
is_deeply([ $s, batch_ids($d) ], [ 200, [ $job{a} ] ],
          'batches: A sees its job only');
for my $t ($tb, $idb) {
    ($s) = call($adm_a, 'GET', "batches?tenant=$t");
    is($s, 404, "batches?tenant=$t (B): 404 for A");
}
($s, $d) = call($adm_a, 'GET', "batches?tenant=$ida");
is_deeply([ $s, batch_ids($d) ], [ 200, [ $job{a} ] ],
          'batches?tenant=(A id): 200');
($s, $d) = call($adm_a, 'GET', "batches?after=$job{b}");
is($s, 400, "batches?after=(B's job): 400 for A, as for an id that "
            . 'does not exist');
($s, $d) = call($adm_a, 'GET', "batches?after=$job{a}");
is_deeply([ $s, batch_ids($d) ], [ 200, [] ],
          "batches?after=(A's job): 200, nothing older");
($s, $d) = call($adm_a, 'GET', "batches/$job{b}");
is_deeply([ $s, $d->{error}{message} ],
          [ 404, "no such batch or job: $job{b}" ], "B's job: 404 for A");
($s, $d) = call($adm_a, 'GET', "batches/$job{a}");
is_deeply([ $s, $d->{tenant} ], [ 200, $ta ], "A reads A's job");
($s, $d) = call($op, 'GET', "batches/$job{b}");
is($s, 200, "the operator reads B's job");
($s, $d) = call($adm_b, 'GET', 'batches');
is_deeply([ $s, batch_ids($d) ], [ 200, [ $job{b} ] ], 'B sees its job');

# --- 6. 011 applied again alone; what the gateway may call -------------------

{
    local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    is(system("psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg -U gpugate"
              . " -d gpugate -f $FindBin::Bin/../sql/011_tenant_admins.sql"
              . " >/dev/null"), 0, 'sql/011 applies again');
    # and the later files after it, as the suite applies them (012
    # replaces 011's agents wrappers)
    for my $f (grep { /\/01[2-9]_/ } glob "$FindBin::Bin/../sql/0*.sql") {
        system("psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg"
               . " -U gpugate -d gpugate -f $f >/dev/null") == 0
            or die "$f failed\n";
    }
}
($s) = call($adm_a, 'GET', "keys/$kb_id");
is($s, 404, "... and B's key is still 404 for A");
($s) = call($op, 'GET', "keys/$kb_id");
is($s, 200, '... and 200 for the operator');
is(psql("SELECT string_agg(p.proname || ' '"
        . " || has_function_privilege('gpugate_gateway', p.oid, 'EXECUTE'),"
        . " ',' ORDER BY p.proname) FROM pg_proc p"
        . " WHERE p.proname ~ '^gpugate_admin_.*_unscoped\$'"
        . " AND has_function_privilege('gpugate_gateway', p.oid,"
        . " 'EXECUTE')"), '',
   'the gateway may call no unscoped function');
is(psql("SELECT count(*) FROM pg_proc p WHERE p.proname ~"
        . " '^gpugate_admin_.*_unscoped\$'"), 19, 'the 19 routes have one');

# --- 7. audit, revocation ----------------------------------------------------

is(psql("SELECT string_agg(action || ' ' || target, ',' ORDER BY id)"
        . " FROM admin_audit WHERE admin_name = 'ta-$run'"),
   "key.update key $ka_id,key.create key $ka3_id,key.create key $ka4_id,"
   . "key.rotate key $ka3_id,key.revoke key $ka4_id,"
   . "tenant.update tenant $ida,agent.drain agent $ag_a,"
   . "agent.undrain agent $ag_a",
   'audit rows name the tenant admin; refusals wrote none');
is(psql("SELECT count(*) FROM admin_audit WHERE admin_name IN"
        . " ('ra-$run', 'tb-$run')"), 0, 'no audit row of the readers');

psql("UPDATE admins SET revoked_at = now() WHERE name = 'ta-$run'");
($s, $d) = call($adm_a, 'GET', 'keys');
is_deeply([ $s, $d->{error}{code} ], [ 401, 'invalid_api_key' ],
          'a revoked tenant admin: 401 at once');
($s) = call($ro_a, 'GET', 'keys');
is($s, 200, "A's other credential still works");

done_testing();
