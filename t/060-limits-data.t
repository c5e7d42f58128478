# Limits and budgets, the data path (issue 16): sql/003_limits.sql on an
# existing database, the key tool's limit flags and their refusals, every
# limit of a key and of its tenant reaching the variables through each
# layer (PostgreSQL, Redis, shm), an older Redis entry refetched, "limit"
# on a key and on a tenant reaching running gateways through the
# invalidation channel, and "usage" against ledger rows.
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

use GpugateTest qw(start_nginx http_request psql redis wait_until
                   env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";

# names unique to this run, so that the file can run again on a database
my $run = sprintf '%x%x', $$, time;

# the Redis the tool invalidates through
our $tool_redis = "127.0.0.1:$rd";

# tool(ARGS): runs scripts/gpugate-keys; returns (exit status, stdout,
# stderr)
sub tool {
    my (undef, $out) = tempfile(UNLINK => 1);
    my (undef, $err) = tempfile(UNLINK => 1);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec "$root/scripts/gpugate-keys", '--dsn', $dsn,
             '--redis', $tool_redis, '--timeout', 5, @_;
        exit 127;
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    local $/;
    open my $o, '<', $out or die;
    open my $e, '<', $err or die;
    return ($rc, scalar(<$o>) // '', scalar(<$e>) // '');
}

# create(TENANT, FLAGS...): a key made by the tool; returns (key, id)
sub create {
    my ($tenant, @flags) = @_;
    my ($rc, $out, $err) = tool('create', '--tenant', $tenant, @flags);
    $rc == 0 or die "create failed ($rc): $err\n";
    my ($id) = $out =~ /^id: (\d+)/m;
    my ($key) = $out =~ /^key: (\S+)/m;
    return ($key, $id);
}

# --- 1. migration 003 on a database that has 001's schema and rows -------

sub apply_sql {
    my ($db, $file) = @_;
    local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    my $cmd = "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg -U gpugate"
            . " -d $db -f $root/sql/$file 2>&1";
    my $out = `$cmd`;
    return ($? == 0, $out);
}

# psql_err(SQL, DB): the error text of a statement expected to fail
sub psql_err {
    my ($sql, $db) = @_;
    my $cmd = "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg -U gpugate"
            . " -d $db -c \"$sql\" 2>&1";
    my $out = `$cmd`;
    return $? == 0 ? '' : $out;
}

{
    my $db = "gg_mig_$run";
    psql("CREATE DATABASE $db");

    ok((apply_sql($db, '001_schema.sql'))[0], 'migration: 001 applied');
    psql("INSERT INTO tenants (name) VALUES ('old');"
       . "INSERT INTO api_keys (tenant_id, digest, prefix, rpm_limit)"
       . " SELECT id, decode(repeat('ab', 32), 'hex'), 'sk-gg-oldkey', 5"
       . " FROM tenants;"
       . "INSERT INTO usage_events (request_id, api_key_id, status,"
       . " prompt_tokens) VALUES ('r1', 1, 200, 7)", $db);

    for my $pass (1, 2) {
        my ($ok, $out) = apply_sql($db, '003_limits.sql');
        ok($ok, "migration: 003 applied on a database with rows ($pass)")
            or diag $out;
    }
    ok((apply_sql($db, '001_schema.sql'))[0]
       && (apply_sql($db, '002_gateway_role.sql'))[0]
       && (apply_sql($db, '003_limits.sql'))[0],
       'migration: every file applies again in order (idempotent)');

    is(psql("SELECT rpm_limit, coalesce(parallel_limit, 0),"
          . " coalesce(tpd_limit, 0), budget_micros IS NULL,"
          . " budget_period IS NULL FROM api_keys", $db),
       '5|0|0|t|t', 'migration: the old key keeps its rpm, new limits NULL');
    is(psql("SELECT rpm_limit IS NULL AND budget_micros IS NULL FROM tenants",
            $db), 't', 'migration: tenants gained limits, NULL (none)');
    is(psql("SELECT prompt_tokens, cost_micros FROM usage_events", $db),
       '7|0', 'migration: ledger rows kept, cost_micros 0');
    is(psql("SELECT count(*) FROM schema_migrations"
          . " WHERE version = '003_limits'", $db), 1,
       'migration: recorded once');

    # the CHECKs: positive limits, a known period, budget and period both
    for my $bad (
        [ 'api_keys SET parallel_limit = 0', 'parallel_limit' ],
        [ 'api_keys SET tpd_limit = -1', 'tpd_limit' ],
        [ 'api_keys SET budget_micros = 0, budget_period = \'day\'',
          'budget_micros' ],
        [ 'api_keys SET budget_micros = 5', 'budget_needs_period' ],
        [ 'api_keys SET budget_period = \'day\'', 'budget_needs_period' ],
        [ 'api_keys SET budget_micros = 5, budget_period = \'week\'',
          'budget_period' ],
        [ 'tenants SET rpm_limit = 0', 'rpm_limit' ],
        [ 'tenants SET tpm_limit = -3', 'tpm_limit' ],
        [ 'tenants SET budget_micros = 9', 'budget_needs_period' ],
        [ 'tenants SET budget_period = \'year\', budget_micros = 1',
          'budget_period' ],
    ) {
        like(psql_err("UPDATE $bad->[0]", $db),
             qr/violates check constraint "[a-z_]*\Q$bad->[1]\E/,
             "migration: CHECK refuses UPDATE $bad->[0]");
    }

    psql("DROP DATABASE $db");
}

# the gateway's role can write the new ledger column (sql/002's grants)
is(psql("SET ROLE gpugate_gateway;"
      . " INSERT INTO usage_events (request_id, gateway, status,"
      . " cost_micros) VALUES ('grant-$run', 't060', 200, 42)"
      . " ON CONFLICT (gateway, request_id) DO NOTHING;"
      . " RESET ROLE;"
      . " SELECT cost_micros FROM usage_events"
      . " WHERE request_id = 'grant-$run'"), 42,
   'grants: gpugate_gateway inserts cost_micros');

# --- 2. the tool: limit flags stored, bad values refused ----------------

my $tenant = "lim$run";
my $other = "oth$run";

{
    my ($rc, $out, $err) = tool('tenant-create', $tenant, '--rpm', 600,
        '--tpm', 50000, '--parallel', 20, '--tokens-per-day', 2000000,
        '--budget', '1000.000001/day');
    is($rc, 0, 'tenant-create with limits') or diag $err;
    is(psql("SELECT rpm_limit, tpm_limit, parallel_limit, tpd_limit,"
          . " budget_micros, budget_period FROM tenants"
          . " WHERE name = '$tenant'"),
       '600|50000|20|2000000|1000000001|day',
       'tenant-create: every limit stored (budget in micros)');

    ($rc, $out, $err) = tool('tenant-create', $tenant, '--rpm', 1);
    isnt($rc, 0, 'tenant-create: limits for an existing tenant refused');
    like($err, qr/exists; change its limits with 'limit --tenant/,
         'tenant-create: ...saying what to use');
    is((tool('tenant-create', $other))[0], 0,
       'tenant-create without limits');
}

my ($key, $id) = create($tenant, '--rpm', 60, '--tpm', 1000,
                        '--parallel', 4, '--tokens-per-day', 100000,
                        '--budget', '12.50/month');
is(psql("SELECT rpm_limit, tpm_limit, parallel_limit, tpd_limit,"
      . " budget_micros, budget_period FROM api_keys WHERE id = $id"),
   '60|1000|4|100000|12500000|month', 'create: every limit stored');

{
    my $keys_before = psql("SELECT count(*) FROM api_keys");
    my @bad = (
        [ [ '--rpm', 0 ], qr/invalid --rpm '0': a whole number from 1/ ],
        [ [ '--rpm', 'abc' ], qr/invalid --rpm 'abc'/ ],
        [ [ '--rpm', '-5' ], qr/invalid --rpm '-5'/ ],
        [ [ '--tpm', '1.5' ], qr/invalid --tpm '1.5'/ ],
        [ [ '--parallel', '10000000000' ],
          qr/invalid --parallel '10000000000': .* to 999999999$/m ],
        [ [ '--tokens-per-day', '1e6' ], qr/invalid --tokens-per-day '1e6'/ ],
        [ [ '--budget', '12.50' ],
          qr{invalid --budget '12.50': AMOUNT/day or AMOUNT/month} ],
        [ [ '--budget', '12.50/week' ], qr{invalid --budget '12.50/week'} ],
        [ [ '--budget', '1.1234567/day' ],
          qr{invalid --budget '1.1234567/day'.*at most 6 decimals} ],
        [ [ '--budget', '-1/day' ], qr{invalid --budget '-1/day'} ],
        [ [ '--budget', '0.000000/month' ],
          qr{invalid --budget '0.000000/month': the amount must be above 0} ],
        [ [ '--rpm', 'none' ], qr/--rpm none: leave the flag out/ ],
        [ [ '--tpm' ], qr/--tpm needs a value/ ],
    );
    for my $b (@bad) {
        my ($rc, $out, $err) = tool('create', '--tenant', $tenant,
                                    @{ $b->[0] });
        is($rc, 2, "create @{ $b->[0] }: refused with status 2");
        like($err, $b->[1], "create @{ $b->[0] }: clear message");
        unlike($out, qr/^key:/m, "create @{ $b->[0] }: no key shown");
    }
    is(psql("SELECT count(*) FROM api_keys"), $keys_before,
       'create: no key stored for a refused value');

    my $limits_before = psql("SELECT rpm_limit, budget_micros FROM api_keys"
                           . " WHERE id = $id");
    for my $b (
        [ [ $id, '--rpm', '0' ], qr/invalid --rpm '0'.*or none/ ],
        [ [ $id, '--budget', 'lots' ], qr/invalid --budget 'lots'/ ],
        [ [ $id ], qr/nothing to change/ ],
        [ [ $id, '--colour', 'red' ], qr/unknown argument --colour/ ],
        [ [ 'sk-gg-nope' ], qr/give a key id or its 12-character prefix/ ],
        [ [ '999999999', '--rpm', 5 ], qr/no such key: 999999999/ ],
        [ [ '--tenant', "nobody$run", '--rpm', 5 ],
          qr/no such tenant: nobody$run/ ],
        [ [ '--tenant', 'bad name', '--rpm', 5 ], qr/invalid tenant/ ],
    ) {
        my ($rc, $out, $err) = tool('limit', @{ $b->[0] });
        is($rc, 2, "limit @{ $b->[0] }: refused with status 2");
        like($err, $b->[1], "limit @{ $b->[0] }: clear message");
    }
    is(psql("SELECT rpm_limit, budget_micros FROM api_keys WHERE id = $id"),
       $limits_before, 'limit: nothing changed by a refused command');
}

# show and list print the new limits
{
    my ($rc, $out) = tool('show', $id);
    is($rc, 0, 'show: a key');
    like($out, qr/^parallel\s+\|\s*4$/m, 'show: parallel');
    like($out, qr/^tokens_per_day\s+\|\s*100000$/m, 'show: tokens per day');
    like($out, qr{^budget\s+\|\s*12\.500000/month$}m, 'show: budget');
    like($out, qr{^tenant_budget\s+\|\s*1000\.000001/day$}m,
         'show: the tenant\'s budget');
    like($out, qr/^tenant_rpm\s+\|\s*600$/m, 'show: the tenant\'s rpm');
    ($rc, $out) = tool('list', '--tenant', $tenant);
    like($out, qr{\|\s*60\s*\|\s*1000\s*\|\s*4\s*\|\s*100000\s*\|
                  \s*12\.500000/month\s*\|}x,
         'list: the key\'s limits in its row');
    is((tool('show', '999999999'))[0], 2, 'show: no such key');
}

# --- 3. every limit through every layer ----------------------------------

my $zone_n = 0;

# nginx with auth on /t; the response carries every limit variable
sub gateway {
    my (%o) = @_;
    my $http = "    gpugate_auth_zone zone=l" . $zone_n++ . ":1m ttl=60s"
             . " negative_ttl=5s stale=300s;\n"
             . "    gpugate_auth_postgres \"host=127.0.0.1 port=$pg"
             . " user=gpugate dbname=gpugate connect_timeout=5\""
             . " timeout=10s;\n"
             . "    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;\n";
    my $port = free_port();
    my $vars = join ' ', map { "$_=\$gpugate_$_" } qw(
        auth_source rpm_limit tpm_limit parallel_limit tpd_limit budget
        budget_period tenant_rpm_limit tenant_tpm_limit
        tenant_parallel_limit tenant_tpd_limit tenant_budget
        tenant_budget_period);
    return start_nginx(port => $port, workers => $o{workers},
                       http => $http, server => <<"SRV");
        location /t {
            gpugate_auth on;
            proxy_set_header X-Lim "$vars";
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location = /echo {
            return 200 "\$http_x_lim\\n";
        }
SRV
}

# lim(NGINX, KEY): the variables as a hash (auth_source included)
sub lim {
    my ($ng, $key) = @_;
    my $r = http_request($ng->port, 'GET', '/t',
                         { Authorization => "Bearer $key" });
    return { status => $r->{status} } unless $r->{status} == 200;
    return { map { split /=/, $_, 2 } split ' ', $r->{body} };
}

my %want = (
    rpm_limit => 60, tpm_limit => 1000, parallel_limit => 4,
    tpd_limit => 100000, budget => '12.500000', budget_period => 'month',
    tenant_rpm_limit => 600, tenant_tpm_limit => 50000,
    tenant_parallel_limit => 20, tenant_tpd_limit => 2000000,
    tenant_budget => '1000.000001', tenant_budget_period => 'day',
);

sub limits_only {
    my %h = %{ $_[0] };
    delete $h{auth_source};
    return \%h;
}

{
    redis('DEL', 'gpugate:key:' . sha256_hex($key));
    my $ng = gateway();
    for my $layer (qw(postgres shm)) {
        my $l = lim($ng, $key);
        is($l->{auth_source}, $layer, "layers: answered by $layer");
        is_deeply(limits_only($l), \%want,
                  "layers: every limit of key and tenant from $layer");
    }
    $ng->stop;

    my $copy = redis('GET', 'gpugate:key:' . sha256_hex($key));
    like($copy, qr/"v":4\b/, 'layers: the Redis copy is version 4');
    like($copy, qr/"t_budget":1000000001\b/,
         'layers: ...and holds the limits');

    $ng = gateway();
    for my $layer (qw(redis shm)) {
        my $l = lim($ng, $key);
        is($l->{auth_source}, $layer, "layers: fresh nginx, $layer");
        is_deeply(limits_only($l), \%want,
                  "layers: every limit of key and tenant from $layer");
    }
    $ng->stop;

    # no limits at all: zeros and empty periods
    my ($free) = create($other);
    $ng = gateway();
    my %zero = map { $_ => ($_ =~ /period/ ? '' : 0) } keys %want;
    for my $layer (qw(postgres shm)) {
        my $l = lim($ng, $free);
        is_deeply(limits_only($l), \%zero, "layers: no limits, $layer");
    }
    $ng->stop;
}

# --- 4. an older Redis entry (v2, written by a gateway not yet upgraded) -

{
    my $hex = sha256_hex($key);
    my $v2 = '{"v":2,"t":' . int(time) . ',"refusal":0,"id":' . $id
           . ',"tenant_id":1,"rpm":0,"tpm":0,"expires":0,"name":"old",'
           . '"prefix":"' . substr($key, 0, 12) . '","tenant":"' . $tenant
           . '","models":"*"}';
    redis('SET', "gpugate:key:$hex", $v2, 'EX', 60);
    my $ng = gateway();
    my $l = lim($ng, $key);
    is($l->{auth_source}, 'postgres',
       'old entry: not used, PostgreSQL asked instead');
    is_deeply(limits_only($l), \%want,
              'old entry: the limits are PostgreSQL\'s, not "none"');
    like(redis('GET', "gpugate:key:$hex"), qr/"v":4\b/,
         'old entry: replaced by a version 4 copy');
    unlike($ng->log, qr/malformed Redis entry/,
           'old entry: not logged as malformed');

    # within version 3, a missing limit reads as 0
    my ($k3, $id3) = create($other);
    redis('SET', 'gpugate:key:' . sha256_hex($k3),
          '{"v":3,"t":' . int(time) . ',"refusal":0,"id":' . $id3
          . ',"tenant_id":1,"rpm":9,"name":"","prefix":"'
          . substr($k3, 0, 12) . '","tenant":"' . $other
          . '","models":"*"}', 'EX', 60);
    $l = lim($ng, $k3);
    is($l->{auth_source}, 'redis', 'v3 entry without some limits: used');
    is("$l->{rpm_limit} $l->{tpm_limit} $l->{tenant_budget}"
       . " [$l->{tenant_budget_period}]", '9 0 0 []',
       'v3 entry: missing limits read as 0');
    $ng->stop;
}

# --- 5. "limit" reaches running gateways (shm entries included) ----------

# poll(SECONDS, NGINXES, KEY, FIELD, VALUE): until every gateway shows it;
# returns the seconds it took, or undef
sub poll {
    my ($secs, $ngs, $k, $field, $value) = @_;
    my $t0 = time;
    wait_until($secs, sub {
        !grep { (lim($_, $k)->{$field} // '') ne $value } @$ngs
    }) or return undef;
    return time - $t0;
}

{
    # two gateways (two workers each) share Redis, like two nodes
    my @ngs = (gateway(workers => 2), gateway(workers => 2));
    my ($k2) = create($tenant, '--rpm', 30);
    my ($ko) = create($other, '--rpm', 33);
    for my $ng (@ngs) {
        for my $k ($key, $k2, $ko) {
            lim($ng, $k);
            is(lim($ng, $k)->{auth_source}, 'shm', 'limit: key cached in shm')
        }
        ok($ng->wait_log(qr/subscriber connection up/, 10),
           'limit: gateway subscribed');
    }

    # one key: its own limits
    my ($rc, $out, $err) = tool('limit', $id, '--rpm', 7, '--budget',
                                'none', '--tokens-per-day', 'none');
    is($rc, 0, 'limit KEY: done') or diag $err;
    like($out, qr/limits of $id changed/, 'limit KEY: says so');
    my $took = poll(5, \@ngs, $key, 'rpm_limit', 7);
    ok(defined $took, 'limit KEY: the new rpm on both gateways');
    diag sprintf 'limit KEY: seen on both gateways %.3f s after the tool',
                 $took // -1;
    my $l = lim($ngs[1], $key);
    is("$l->{budget} [$l->{budget_period}] $l->{tpd_limit}"
       . " $l->{parallel_limit}", '0 [] 0 4',
       'limit KEY: none removed the budget and daily tokens, parallel kept');
    is(psql("SELECT rpm_limit, budget_micros IS NULL, budget_period IS NULL,"
          . " tpd_limit IS NULL, parallel_limit FROM api_keys"
          . " WHERE id = $id"), '7|t|t|t|4', 'limit KEY: stored');

    # by prefix, a budget per day
    ($rc) = tool('limit', substr($key, 0, 12), '--budget', '0.5/day');
    is($rc, 0, 'limit PREFIX: done');
    ok(defined poll(5, \@ngs, $key, 'budget', '0.500000'),
       'limit PREFIX: the budget reached both gateways');
    is(lim($ngs[0], $key)->{budget_period}, 'day', 'limit PREFIX: period');

    # a tenant: every key of it, on every gateway; other tenants untouched
    for my $ng (@ngs) {
        lim($ng, $_) for $key, $k2, $ko;
    }
    ($rc, $out, $err) = tool('limit', '--tenant', $tenant, '--rpm', 5,
                             '--budget', '2/month', '--parallel', 'none');
    is($rc, 0, 'limit --tenant: done') or diag $err;
    $took = poll(5, \@ngs, $key, 'tenant_rpm_limit', 5);
    ok(defined $took, 'limit --tenant: first key, both gateways');
    diag sprintf 'limit --tenant: seen on both gateways %.3f s after the tool',
                 $took // -1;
    ok(defined poll(5, \@ngs, $k2, 'tenant_rpm_limit', 5),
       'limit --tenant: second key, both gateways');
    for my $ng (@ngs) {
        $l = lim($ng, $k2);
        is("$l->{tenant_budget}/$l->{tenant_budget_period}"
           . " $l->{tenant_parallel_limit} $l->{tenant_tpm_limit}"
           . " $l->{rpm_limit}",
           '2.000000/month 0 50000 30',
           'limit --tenant: budget, none and untouched limits');
        like($ng->log, qr/invalidation "tenant \d+" expired [1-9]/,
             'limit --tenant: the tenant message expired entries');
        $l = lim($ng, $ko);
        is($l->{auth_source}, 'shm',
           'limit --tenant: another tenant\'s key stays cached');
    }
    like(redis('GET', 'gpugate:key:' . sha256_hex($k2)),
         qr/"t_rpm":5\b/, 'limit --tenant: Redis holds the new limits');
    $_->stop for @ngs;
}

# Redis unreachable: the change is made, the tool says the gateways get it
# within their ttl and exits 3
{
    local $tool_redis = '127.0.0.1:' . free_port();
    for my $target ([ '--tenant', $other ], [ $id ]) {
        my ($rc, $out, $err) = tool('limit', @$target, '--tpm', 777);
        is($rc, 3, "limit @$target, Redis down: exit status 3");
        like($err, qr/changed in PostgreSQL, but the Redis invalidation/,
             "limit @$target, Redis down: says what happened");
        like($err, qr/apply the change within their cache ttl/,
             "limit @$target, Redis down: ...and when gateways get it");
    }
    is(psql("SELECT t.tpm_limit, k.tpm_limit FROM tenants t, api_keys k"
          . " WHERE t.name = '$other' AND k.id = $id"), '777|777',
       'limit, Redis down: both changes stored');
}

# --- 6. usage from the ledger --------------------------------------------

{
    my ($ku, $idu) = create($tenant, '--rpm', 60, '--tpm', 1000,
                            '--tokens-per-day', 5000, '--budget',
                            '10/month', '--parallel', 3);
    my $tid = psql("SELECT id FROM tenants WHERE name = '$tenant'");
    # does "2 minutes ago" fall on today (UTC)?  Not just after midnight.
    my $today2 = psql("SELECT now() - interval '2 minutes'"
                    . " >= date_trunc('day', now() AT TIME ZONE 'UTC')"
                    . " AT TIME ZONE 'UTC'") eq 't';
    my $month2 = psql("SELECT now() - interval '2 minutes'"
                    . " >= date_trunc('month', now() AT TIME ZONE 'UTC')"
                    . " AT TIME ZONE 'UTC'") eq 't';
    my $n = 0;
    my $row = sub {
        my ($when, $status, $p, $c, $cost) = @_;
        $n++;
        return "('u$run-$n', 't060', $idu, $tid, $status, $p, $c, $cost,"
             . " $when)";
    };
    psql("INSERT INTO usage_events (request_id, gateway, api_key_id,"
       . " tenant_id, status, prompt_tokens, completion_tokens, cost_micros,"
       . " created_at) VALUES "
       . join(',',
              $row->('now()', 200, 100, 50, 250000),
              $row->('now()', 200, 10, 5, 250000),
              $row->("now() - interval '10 seconds'", 200, 20, 15, 500000),
              $row->('now()', 429, 0, 0, 0),
              $row->("now() - interval '2 minutes'", 200, 1000, 0, 1000000),
              $row->("now() - interval '2 days'", 200, 7000, 0, 0),
              $row->("date_trunc('month', now() AT TIME ZONE 'UTC')"
                     . " AT TIME ZONE 'UTC' - interval '1 hour'",
                     200, 1, 1, 9000000)));

    my $tok_day = 200 + ($today2 ? 1000 : 0);
    my $spend = 1000000 + ($month2 ? 1000000 : 0);

    my ($rc, $out, $err) = tool('usage', $idu, '--json');
    is($rc, 0, 'usage --json: done') or diag $err;
    my $j = eval { JSON::PP::decode_json($out) } || {};
    is_deeply($j->{requests_60s}, { used => 3, limit => 60,
                                    remaining => 57 },
              'usage: requests in 60 s (429 not counted), limit, remaining');
    is_deeply($j->{tokens_60s}, { used => 200, limit => 1000,
                                  remaining => 800 },
              'usage: tokens in 60 s');
    is_deeply($j->{tokens_today}, { used => $tok_day, limit => 5000,
                                    remaining => 5000 - $tok_day },
              'usage: tokens today (UTC)');
    is_deeply($j->{spend_micros}, { used => $spend, limit => 10000000,
                                    remaining => 10000000 - $spend },
              'usage: spend this month (the budget\'s period)');
    is($j->{budget_period}, 'month', 'usage: the period');
    is_deeply($j->{parallel}, { limit => 3 }, 'usage: in-flight limit');
    is("$j->{key_id} $j->{tenant}", "$idu $tenant", 'usage: the key named');

    ($rc, $out) = tool('usage', substr($ku, 0, 12));
    is($rc, 0, 'usage PREFIX: text');
    like($out, qr/^requests \(60 s\)\s+3\s+60\s+57$/m, 'usage: text requests');
    like($out, qr/^tokens today \(UTC\)\s+$tok_day\s+5000\s+/m,
         'usage: text tokens today');
    like($out, qr/^spend \(month\)\s+\d+\.\d{6}\s+10\.000000\s+\d+\.\d{6}$/m,
         'usage: text spend in currency units');

    # the tenant: its own limits (budget per day, none for parallel)
    ($rc, $out, $err) = tool('usage', '--tenant', $tenant, '--json');
    is($rc, 0, 'usage --tenant: done') or diag $err;
    $j = eval { JSON::PP::decode_json($out) } || {};
    is($j->{tenant}, $tenant, 'usage --tenant: named');
    is($j->{requests_60s}{limit}, 5, 'usage --tenant: the tenant\'s rpm');
    is($j->{requests_60s}{used}, 3, 'usage --tenant: its keys\' requests');
    is($j->{budget_period}, 'month', 'usage --tenant: its budget period');
    is($j->{spend_micros}{limit}, 2000000, 'usage --tenant: its budget');
    is($j->{spend_micros}{remaining}, ($spend >= 2000000 ? 0
                                       : 2000000 - $spend),
       'usage --tenant: remaining never below 0');
    is_deeply($j->{parallel}, { limit => undef },
              'usage --tenant: no in-flight limit: null');

    # gpugate-usage sums the cost too, in currency units
    my $usage = "$root/scripts/gpugate-usage";
    my $ucmd = "$usage --dsn '$dsn' --by key --tenant $tenant"
             . " --from '1 hour' --format json";
    my $uj = `$ucmd`;
    my $urows = eval { JSON::PP->new->utf8->decode($uj) } || [];
    my ($urow) = grep { $_->{key} eq substr($ku, 0, 12) . "\x{2026}" }
                 @$urows;
    ok($urow && $urow->{cost} == 2 && $urow->{requests} == 5,
       'gpugate-usage: the cost column (429 and older rows aside)')
        or diag $uj;

    ($rc, undef, $err) = tool('usage', '--tenant', "nobody$run");
    is($rc, 2, 'usage: unknown tenant refused');
    like($err, qr/no such tenant: nobody$run/, 'usage: ...clearly');
    ($rc, undef, $err) = tool('usage', '12', '--tenant', $tenant);
    is($rc, 2, 'usage: a key and a tenant at once refused');
}

done_testing();
