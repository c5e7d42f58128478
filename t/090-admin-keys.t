# The admin API, its credentials and its keys routes (issue 20):
# gpugate-keys admin-create, every keys route refused without a
# credential, with an unknown or revoked one, and (for writes) with a
# read-only one; create / list (paged) / get / patch / delete with their
# audit rows; bad input answered with OpenAI error JSON and nothing
# changed; a revocation and a disable made on one gateway node refusing
# the key on another node that had it cached; names escaped in JSON.
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
                   free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $json = JSON::PP->new->utf8->canonical;

# names unique to this run, so that the file can run again on a database
my $run = sprintf '%x%x', $$, time;

# --- 1. admin-create ------------------------------------------------------

my $root_cred = admin("root-$run", 'admin');
my $read_cred = admin("ro-$run", 'read');

like($root_cred, qr/^gg-admin-[A-Za-z0-9]{40}$/,
     'admin-create prints a credential');
is(psql("SELECT role || ' ' || encode(digest, 'hex') || ' ' || prefix"
        . " FROM admins WHERE name = 'root-$run'"),
   'admin ' . sha256_hex($root_cred) . ' ' . substr($root_cred, 0, 12),
   'admin-create stores the role, the digest and the prefix only');
is(psql("SELECT count(*) FROM admins WHERE name = 'root-$run'"
        . " AND position('" . substr($root_cred, 12) . "' in"
        . " row(admins.*)::text) > 0"), 0,
   'the credential itself is stored nowhere in its row');
{
    my ($rc, undef, $err) = tool('admin-create', "x-$run", '--role', 'root');
    is($rc, 2, 'admin-create refuses an unknown role');
    ($rc, undef, $err) = tool('admin-create', "root-$run", '--role', 'read');
    isnt($rc, 0, 'admin-create refuses an existing name');
    ($rc) = tool('admin-create', 'bad name', '--role', 'read');
    is($rc, 2, 'admin-create refuses a name with a space');
}

# --- 2. two gateway nodes --------------------------------------------------

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
            proxy_pass http://127.0.0.1:$port/ok;
        }
        location = /ok {
            return 200 "ok\\n";
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

# --- 3. refusals before anything is read or changed ------------------------

my ($known) = do {
    my ($st, $doc) = api($a, 'POST', 'keys', $root_cred,
                         qq({"tenant":"adm-$run","name":"first"}));
    die "setup: create answered $st\n" unless $st == 201;
    ($doc->{id});
};

my @routes = (
    [ 'GET', 'keys' ], [ 'POST', 'keys', '{"tenant":"t"}' ],
    [ 'GET', "keys/$known" ], [ 'PATCH', "keys/$known", '{"rpm":5}' ],
    [ 'DELETE', "keys/$known" ],
);

my $audit0 = audit_count();

for my $rt (@routes) {
    my ($m, $p, $body) = @$rt;

    my ($st, $doc) = api($a, $m, $p, undef, $body);
    is($st, 401, "$m $p without a credential: 401");
    is_error($doc, 'missing_api_key', "$m $p without a credential");

    ($st, $doc) = api($a, $m, $p, 'gg-admin-' . ('x' x 40), $body);
    is($st, 401, "$m $p with an unknown credential: 401");
    is_error($doc, 'invalid_api_key', "$m $p, unknown credential");

    ($st, $doc) = api($a, $m, $p, $root_cred . 'x', $body);
    is($st, 401, "$m $p with a credential one byte longer: 401");

    ($st, $doc) = api($a, $m, $p, $read_cred, $body);
    if ($m eq 'GET') {
        is($st, 200, "$m $p with a read-only credential: 200");
    } else {
        is($st, 403, "$m $p with a read-only credential: 403");
        is_error($doc, 'insufficient_permissions', "$m $p read-only");
    }
}

is(audit_count(), $audit0, 'refused calls write no audit row');
is(psql("SELECT coalesce(rpm_limit::text, 'null') || ' '"
        . " || (revoked_at IS NULL) FROM api_keys WHERE id = $known"),
   'null true', 'refused calls changed nothing');

{
    my ($st, $doc) = api($a, 'GET', 'nope', $root_cred);
    is($st, 404, 'an unknown family: 404');
    is_error($doc, 'not_found', 'unknown family');
    ($st, $doc) = api($a, 'GET', 'keys/12x', $root_cred);
    is($st, 404, 'an id that is not a number: 404');
    ($st, $doc) = api($a, 'PUT', "keys/$known", $root_cred, '{}');
    is($st, 405, 'PUT on a key: 405');
    is_error($doc, 'method_not_allowed', 'PUT');
    ($st, $doc) = api($a, 'DELETE', 'keys', $root_cred);
    is($st, 405, 'DELETE on the collection: 405');
    ($st, $doc) = api($a, 'GET', 'keys/999999999999', $root_cred);
    is($st, 404, 'GET of a missing key: 404');
    is_error($doc, 'not_found', 'missing key');
    ($st) = api($a, 'PATCH', 'keys/999999999999', $root_cred, '{"rpm":1}');
    is($st, 404, 'PATCH of a missing key: 404');
    ($st) = api($a, 'DELETE', 'keys/999999999999', $root_cred);
    is($st, 404, 'DELETE of a missing key: 404');
}

# --- 4. create, get, list --------------------------------------------------

my $evil = qq(x"y\\z</script><img src=x onerror=alert(1)>\n\x{e9}\t);
my $evil_json = JSON::PP->new->ascii->encode({ name => $evil });
$evil_json =~ s/^\{"name"://;
$evil_json =~ s/\}$//;

my ($key, $id);
{
    my ($st, $doc, $r) = api($a, 'POST', 'keys', $root_cred,
        qq({"tenant":"adm-$run","name":$evil_json,"models":["m1","m-2"],)
      . qq("rpm":100,"tpm":2000,"budget_micros":5000000,)
      . qq("budget_period":"month"}));
    is($st, 201, 'POST keys: 201') or diag $r->{body};
    ($key, $id) = ($doc->{key}, $doc->{id});
    like($key // '', qr/^sk-gg-[A-Za-z0-9]{40}$/, 'the new key is shown');
    like($id // '', qr/^\d+$/, 'with its id');
    is_deeply([ @$doc{qw(priority max_priority region)} ],
              [ undef, undef, undef ], 'no priority or pin unless given');
    is($doc->{name}, $evil, 'a name with quotes, tags and a newline'
       . ' comes back exactly (escaped JSON)');
    is_deeply([ @$doc{qw(tenant rpm tpm budget_micros budget_period)} ],
              [ "adm-$run", 100, 2000, 5000000, 'month' ],
              'with its tenant and limits');
    is_deeply($doc->{models}, [ 'm1', 'm-2' ], 'and its models');
    is($r->{headers}{'content-type'}, 'application/json',
       'answered as JSON');
    is(psql("SELECT encode(digest, 'hex') FROM api_keys WHERE id = $id"),
       sha256_hex($key), 'PostgreSQL holds the digest of the key shown');
}

is(key_status($a, $key), 200, 'the new key works on node a');
is(key_status($b, $key), 200, 'and on node b');

is(psql("SELECT admin_name || '|' || client || '|' || action || '|'"
        . " || target || '|' || (detail ->> 'rpm')"
        . " FROM admin_audit WHERE target = 'key $id'"),
   "root-$run|127.0.0.1|key.create|key $id|100",
   'the creation is audited: who, from where, what, on what');
is(psql("SELECT count(*) FROM admin_audit WHERE target = 'key $id'"
        . " AND detail::text LIKE '%" . substr($key, 6) . "%'"), 0,
   'the audit row does not hold the key');

{
    my ($st, $doc) = api($a, 'GET', "keys/$id", $read_cred);
    is($st, 200, 'GET keys/{id} with a read-only credential');
    is($doc->{id}, $id, 'the key is the one asked for');
    is($doc->{prefix}, substr($key, 0, 12), 'with its prefix');
    ok(!grep({ defined && /\Q@{[substr($key, 12)]}\E/ } values %$doc)
       && !exists $doc->{digest} && !exists $doc->{key},
       'GET shows neither the key nor its digest');
}

{
    # three more keys in a tenant of their own: pages of two
    my @ids;
    for (1 .. 3) {
        my ($st, $doc) = api($a, 'POST', 'keys', $root_cred,
                             qq({"tenant":"page-$run"}));
        push @ids, $doc->{id};
    }
    my ($st, $doc) = api($a, 'GET', "keys?tenant=page-$run&limit=2",
                         $read_cred);
    is($st, 200, 'GET keys?tenant=&limit=2');
    is_deeply([ map { $_->{id} } @{ $doc->{data} } ], [ @ids[0, 1] ],
              'the first page: the first two keys by id');
    ok($doc->{has_more}, 'has_more on the first page');
    is($doc->{last_id}, $ids[1], 'last_id names the page\'s last key');
    ($st, $doc) = api($a, 'GET',
                      "keys?tenant=page-$run&limit=2&after=$ids[1]",
                      $read_cred);
    is_deeply([ map { $_->{id} } @{ $doc->{data} } ], [ $ids[2] ],
              'the next page (after=) has the third');
    ok(!$doc->{has_more}, 'and no more');
    ($st, $doc) = api($a, 'GET', "keys?tenant=none-$run", $read_cred);
    is_deeply($doc->{data}, [], 'a tenant without keys: an empty page');
    for my $q ('limit=0', 'limit=x', 'limit=501', 'after=-1', 'bogus=1',
               'tenant=%FF')
    {
        ($st, $doc) = api($a, 'GET', "keys?$q", $read_cred);
        if ($q eq 'bogus=1') {
            is($st, 200, 'an unknown query parameter is ignored');
            next;
        }
        is($st, 400, "GET keys?$q: 400");
        is_error($doc, 'invalid_value', "keys?$q");
    }
}

# --- 5. bad input changes nothing ------------------------------------------

{
    my $a0 = audit_count();
    my $keys0 = psql("SELECT count(*) FROM api_keys");
    for my $bad ('not json', '[1,2]', '"s"', '{"tenant":1}', '{}',
                 qq({"tenant":"adm-$run","rpm":0}),
                 qq({"tenant":"adm-$run","rpm":-5}),
                 qq({"tenant":"adm-$run","rpm":"5"}),
                 qq({"tenant":"adm-$run","rpm":1.5}),
                 qq({"tenant":"adm-$run","models":["a,b"]}),
                 qq({"tenant":"adm-$run","models":[]}),
                 qq({"tenant":"adm-$run","budget_micros":5}),
                 qq({"tenant":"adm-$run","budget_period":"year"}),
                 qq({"tenant":"adm-$run","expires_at":"soon"}),
                 qq({"tenant":"adm-$run","digest":"00"}),
                 qq({"tenant":"bad name"}),
                 qq({"tenant":"adm-$run","name":"a\x00b"}),
                 qq({"tenant":"adm-$run","name":"\xff"}),
                 qq({"tenant":"adm-$run","priority":10}),
                 qq({"tenant":"adm-$run","max_priority":"1"}),
                 qq({"tenant":"adm-$run","region":"eu west"}))
    {
        my ($st, $doc) = api($a, 'POST', 'keys', $root_cred, $bad);
        (my $show = $bad) =~ s/[^ -~]/?/g;
        is($st, 400, "POST keys $show: 400");
        is_error($doc, 'invalid_value', "POST $show");
    }
    for my $bad ('{"rpm":0}', '{"disabled":"yes"}', '{"tenant":"x"}',
                 '{"models":[1]}', '{"tokens_per_day":-1}', '[]')
    {
        my ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred, $bad);
        is($st, 400, "PATCH keys/{id} $bad: 400");
        is_error($doc, 'invalid_value', "PATCH $bad");
    }
    is(audit_count(), $a0, 'refused input writes no audit row');
    is(psql("SELECT count(*) FROM api_keys"), $keys0,
       'and creates no key');
    is(psql("SELECT rpm_limit FROM api_keys WHERE id = $id"), 100,
       'and changes no limit');
}

# --- 5b. priorities and region pin (sql/009): set, read back, refused ------

{
    my ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred,
        '{"priority":0,"max_priority":9,"region":"eu-west.1_b"}');
    is($st, 200, 'PATCH priority, max_priority, region: 200');
    is_deeply([ @$doc{qw(priority max_priority region rpm)} ],
              [ 0, 9, 'eu-west.1_b', 100 ],
              'the answer shows them, the other fields stayed');
    ($st, $doc) = api($b, 'GET', "keys/$id", $read_cred);
    is_deeply([ @$doc{qw(priority max_priority region)} ],
              [ 0, 9, 'eu-west.1_b' ], 'GET reads them back');
    is(psql("SELECT priority || ' ' || max_priority || ' ' || region"
            . " FROM api_keys WHERE id = $id"), '0 9 eu-west.1_b',
       'PostgreSQL holds them');
    is(psql("SELECT action || ' ' || (detail ->> 'max_priority') || ' '"
            . " || (detail ->> 'region') FROM admin_audit"
            . " WHERE target = 'key $id' ORDER BY id DESC LIMIT 1"),
       'key.update 9 eu-west.1_b', 'the change is audited');

    my $a0 = audit_count();
    for my $bad ('{"priority":10}', '{"priority":-1}', '{"priority":"5"}',
                 '{"priority":1.5}', '{"priority":true}',
                 '{"max_priority":10}', '{"max_priority":"x"}',
                 '{"max_priority":[3]}', '{"region":""}',
                 '{"region":"eu west"}', '{"region":"a/b"}',
                 '{"region":"' . ('r' x 32) . '"}', '{"region":7}',
                 '{"region":"e\u00e9"}', '{"prio":1}')
    {
        ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred, $bad);
        is($st, 400, "PATCH keys/{id} $bad: 400");
        is_error($doc, 'invalid_value', "PATCH $bad");
    }
    is(audit_count(), $a0, 'refused priorities write no audit row');
    is(psql("SELECT priority || ' ' || max_priority || ' ' || region"
            . " FROM api_keys WHERE id = $id"), '0 9 eu-west.1_b',
       'and change nothing');

    ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred,
        '{"priority":null,"max_priority":null,"region":null}');
    is($st, 200, 'PATCH them to null: 200');
    is_deeply([ @$doc{qw(priority max_priority region)} ],
              [ undef, undef, undef ], 'null unsets each');
    ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred,
                      '{"region":"' . ('r' x 31) . '","priority":9}');
    is_deeply([ $st, @$doc{qw(priority max_priority region)} ],
              [ 200, 9, undef, 'r' x 31 ],
              'the largest values: 9 and a 31-byte region');
}

# --- 6. patch, disable, delete: every node follows -------------------------

{
    my ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred,
        '{"rpm":7,"tpm":null,"models":null,"tokens_per_day":9000,'
      . '"name":"renamed"}');
    is($st, 200, 'PATCH keys/{id}: 200');
    is_deeply([ @$doc{qw(rpm tpm models tokens_per_day name)} ],
              [ 7, undef, undef, 9000, 'renamed' ],
              'the fields given changed, null removed a limit');
    is($doc->{budget_micros}, 5000000, 'the fields not given stayed');
    is(psql("SELECT action || ' ' || (detail ->> 'rpm')"
            . " FROM admin_audit WHERE target = 'key $id'"
            . " ORDER BY id DESC LIMIT 1"),
       'key.update 7', 'the update is audited');
}

# both nodes hold the key in shared memory now
is(key_status($a, $key), 200, 'node a has the key cached');
is(key_status($b, $key), 200, 'node b has the key cached');

{
    my ($st, $doc) = api($a, 'PATCH', "keys/$id", $root_cred,
                         '{"disabled":true}');
    is($st, 200, 'PATCH disabled:true');
    ok(defined $doc->{revoked_at}, 'the key shows as revoked');
    ok(wait_until(10, sub { key_status($b, $key) == 401 }),
       'node b refuses the disabled key');
    is(key_status($a, $key), 401, 'node a too');

    ($st, $doc) = api($b, 'PATCH', "keys/$id", $root_cred,
                      '{"disabled":false}');
    is($st, 200, 'PATCH disabled:false through node b');
    ok(!defined $doc->{revoked_at}, 'the key is valid again');
    ok(wait_until(5, sub { key_status($a, $key) == 200 }),
       'node a, which had cached the refusal, accepts it again');
    is(key_status($b, $key), 200, 'node b too');
}

{
    my $t0 = time;
    my ($st, $doc) = api($a, 'DELETE', "keys/$id", $root_cred);
    is($st, 200, 'DELETE keys/{id}: 200');
    ok(defined $doc->{revoked_at}, 'the answer shows it revoked');
    ok(wait_until(10, sub { key_status($b, $key) == 401 }),
       'node b refuses the revoked key');
    my $took = time - $t0;
    # pushed to node b, not expired there: its cache TTL is 60 s
    ok($took < 10, 'within 10 s of the call')
        or diag "took ${took}s";
    is(key_status($a, $key), 401, 'node a refuses it');
    is(psql("SELECT action FROM admin_audit WHERE target = 'key $id'"
            . " ORDER BY id DESC LIMIT 1"), 'key.revoke',
       'the revocation is audited');
    ($st) = api($a, 'DELETE', "keys/$id", $root_cred);
    is($st, 200, 'a second DELETE is harmless');
}

# --- 7. rotate: a new key, the old one valid for a grace -----------------

{
    my ($st, $doc) = api($a, 'POST', 'keys', $root_cred,
                         qq({"tenant":"adm-$run","name":"rot","rpm":9,)
                       . '"priority":2,"max_priority":4,"region":"eu-x"}');
    my ($k1, $id1) = @$doc{qw(key id)};
    is_deeply([ $st, @$doc{qw(priority max_priority region)} ],
              [ 201, 2, 4, 'eu-x' ],
              'POST keys with priority, max_priority and region');
    is(key_status($a, $k1), 200, 'a key to rotate, cached on node a');
    is(key_status($b, $k1), 200, 'and on node b');

    ($st) = api($a, 'POST', "keys/$id1/rotate", $read_cred, '{}');
    is($st, 403, 'rotate with a read-only credential: 403');
    ($st) = api($a, 'POST', "keys/$id1/rotate", undef, '{}');
    is($st, 401, 'rotate without a credential: 401');
    for my $bad ('{"grace_seconds":-1}', '{"grace_seconds":"5"}',
                 '{"grace_seconds":2592001}', '{"grace":5}')
    {
        ($st, $doc) = api($a, 'POST', "keys/$id1/rotate", $root_cred, $bad);
        is($st, 400, "rotate $bad: 400");
    }
    ($st) = api($a, 'POST', 'keys/999999999999/rotate', $root_cred, '{}');
    is($st, 404, 'rotate of a missing key: 404');
    ($st) = api($a, 'GET', "keys/$id1/rotate", $root_cred);
    is($st, 405, 'GET keys/{id}/rotate: 405');
    ($st) = api($a, 'POST', "keys/$id1/rotat", $root_cred, '{}');
    is($st, 404, 'an unknown action: 404');
    ($st) = api($a, 'POST', "keys/$id1/", $root_cred, '{}');
    is($st, 404, 'an empty action: 404');
    is(psql("SELECT count(*) FROM api_keys WHERE name = 'rot'"
            . " AND tenant_id = (SELECT id FROM tenants"
            . " WHERE name = 'adm-$run')"), 1,
       'no refused rotation made a key');

    # the grace runs from the rotation: the checks before the old key's
    # (after node a has had the invalidation) took 2 s at load 16
    ($st, $doc) = api($b, 'POST', "keys/$id1/rotate", $root_cred,
                      '{"grace_seconds":6}');
    is($st, 201, 'rotate with a 6 s grace: 201');
    my ($k2, $id2) = @$doc{qw(key id)};
    like($k2 // '', qr/^sk-gg-[A-Za-z0-9]{40}$/, 'the new key is shown');
    isnt($k2, $k1, 'it is a new key');
    is_deeply([ @$doc{qw(replaces name rpm)} ], [ $id1, 'rot', 9 ],
              'it replaces the old one, with its name and limits');
    is_deeply([ @$doc{qw(priority max_priority region)} ], [ 2, 4, 'eu-x' ],
              'and its priorities and region pin')
        or diag explain $doc;
    is(psql("SELECT priority || ' ' || max_priority || ' ' || region"
            . " FROM api_keys WHERE id = $id2"), '2 4 eu-x',
       'PostgreSQL holds them for the new key');
    is(key_status($a, $k2), 200, 'the new key works on node a');
    is(key_status($b, $k2), 200, 'and on node b');
    is(key_status($a, $k1), 200, 'the old one still works in the grace');
    ok(wait_until(20, sub { key_status($a, $k1) == 401
                            && key_status($b, $k1) == 401 }),
       'the old key is refused on both nodes once the grace is over');
    is(psql("SELECT action || ' ' || (detail ->> 'new_id') || ' '"
            . " || (detail ->> 'grace_seconds') FROM admin_audit"
            . " WHERE target = 'key $id1' AND action = 'key.rotate'"),
       "key.rotate $id2 6",
       'the rotation is audited');

    ($st, $doc) = api($a, 'POST', "keys/$id2/rotate", $root_cred,
                      '{"grace_seconds":0}');
    is($st, 201, 'rotate with no grace');
    my $k3 = $doc->{key};
    ok(wait_until(5, sub { key_status($b, $k2) == 401 }),
       'the replaced key is refused at once on node b');
    is(key_status($a, $k2), 401, 'and on node a');
    is(key_status($b, $k3), 200, 'the new one works');
    ($st, $doc) = api($a, 'POST', "keys/$id2/rotate", $root_cred, '{}');
    is($st, 400, 'a revoked key cannot be rotated');
    is_error($doc, 'invalid_value', 'rotate revoked');
}

# --- 8. a revoked admin is refused at once ---------------------------------

{
    my $cred = admin("gone-$run", 'admin');
    my ($st) = api($a, 'GET', 'keys?limit=1', $cred);
    is($st, 200, 'a new admin reads');
    psql("UPDATE admins SET revoked_at = now() WHERE name = 'gone-$run'");
    ($st) = api($a, 'GET', 'keys?limit=1', $cred);
    is($st, 401, 'revoked, it is refused by the next request');
    ($st) = api($b, 'POST', 'keys', $cred, qq({"tenant":"adm-$run"}));
    is($st, 401, 'on every node');
}

# nginx's own debug lines list request headers: error_log at debug is
# not for production; every other line must be free of credentials
{
    my $logs = join '', grep { !/\[debug\]/ } split /^/, $a->log . $b->log;
    my ($r1, $r2) = (substr($root_cred, 12), substr($read_cred, 12));
    unlike($logs, qr/\Q$r1\E|\Q$r2\E/, 'no credential in the error logs');
}

# --- 9. configuration mistakes ---------------------------------------------

{
    my $ng = eval {
        start_nginx(http => '',
                    server => "location /admin/ { gpugate_admin; }\n")
    };
    my $want = '"gpugate_admin" keeps its data in PostgreSQL: '
             . '"gpugate_auth_postgres" is required';
    like($@, qr/\Q$want\E/,
         'gpugate_admin without gpugate_auth_postgres: refused');
    $ng = eval {
        start_nginx(http => "    gpugate_auth_postgres \"host=127.0.0.1"
                          . " port=$pg user=gpugate dbname=gpugate\";\n",
                    server => "location /admin/ { gpugate_admin;"
                            . " gpugate_admin; }\n")
    };
    like($@, qr/"gpugate_admin" directive is duplicate/,
         'gpugate_admin twice in a location: refused');
}

done_testing();
