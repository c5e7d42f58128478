# The rest of the Batch API's files and the admin API's batch routes
# (issue 19, sql/010_batch_files.sql): GET /v1/files (OpenAI's list:
# order, limit, the after cursor, purpose) and its refusals (bad limit,
# order, cursor, another key's cursor); DELETE /v1/files/{id} of an input
# file an unfinished batch uses (the batch is untouched) and of an output
# file, then 404 on every route; another key sees, reads and deletes
# nothing of these files; expires_after on upload (expires_at in the
# object, each bad form refused), an expired file hidden at once (404,
# not listed, no new batch on it) and deleted by the runner's next claim
# (a runner without any agent: housekeeping needs no capacity); GET
# a job's priority and region bounded as X-Gpugate-Priority and -Region
# (0-9; 1-31 characters), which the runner sends them as; GET
# /admin/v1/batches (newest first, paged, by tenant name or id) and
# /admin/v1/batches/{id} (a batch, a job) with their refusals; the
# official openai npm SDK's files.list and files.delete when installed.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP qw(decode_json);
use Test::More;

use GpugateAdmin qw(admin);
use GpugateTest qw(make_key psql wait_until env_or_skip free_port
                   sdk_install);
use GpugateBatch qw(batch_node upload api jsonl);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $root = "$FindBin::Bin/..";
my $run = "t114-$$";
my ($key, $kid) = make_key("tenant-$run", name => 'files');
my ($other) = make_key("tenant-$run-b", name => 'other');
my $tid = psql("SELECT tenant_id FROM api_keys WHERE id = $kid");
my $port = free_port();

# a runner and no agent: it runs no line, but claims for housekeeping
my $ng = batch_node(name => $run, port => $port, admin => 1,
                    runner => 'concurrency=2 interval=100ms');

sub line {
    my ($i) = @_;
    return { custom_id => "r-$i", method => 'POST',
             url => '/v1/chat/completions',
             body => { model => 'mock-model', max_tokens => $i,
                       messages => [{ role => 'user', content => 'hi' }] } };
}

my $text = jsonl(map { line($_) } 1 .. 3);

# --- 1. uploads, expires_after ---------------------------------------------

my ($r, $f1) = upload($port, $key, $text, filename => 'one.jsonl');
is($r->{status}, 200, 'upload without expires_after') or diag($r->{body});
ok(exists $f1->{expires_at} && !defined $f1->{expires_at},
   'its expires_at is null');
($r, my $f2) = upload($port, $key, $text, filename => 'two.jsonl',
    fields => [ 'expires_after[anchor]' => 'created_at',
                'expires_after[seconds]' => 3600 ]);
is($r->{status}, 200, 'upload with expires_after') or diag($r->{body});
is(($f2->{expires_at} // 0) - ($f2->{created_at} // 0), 3600,
   'expires_at is created_at + seconds');
($r, my $f3) = upload($port, $key, $text, filename => 'three.jsonl',
    fields => [ 'expires_after[anchor]' => 'created_at',
                'expires_after[seconds]' => 2592000 ]);
is(($f3->{expires_at} // 0) - ($f3->{created_at} // 0), 2592000,
   'the longest expires_after (30 days)');
($r, my $fo) = upload($port, $other, $text, filename => 'theirs.jsonl');
is($r->{status}, 200, "another key's file");

for my $bad ([ 3599, 'created_at' ], [ 2592001, 'created_at' ],
             [ 'abc', 'created_at' ], [ '', 'created_at' ],
             [ '-3600', 'created_at' ], [ 3600, 'updated_at' ],
             [ undef, 'created_at' ], [ 3600, undef ])
{
    my ($s, $a) = @$bad;
    my @fields = ((defined $a ? ('expires_after[anchor]' => $a) : ()),
                  (defined $s ? ('expires_after[seconds]' => $s) : ()));
    ($r, my $e) = upload($port, $key, $text, fields => \@fields);
    my $what = join ' ', map { $_ // '(none)' } $a, $s;
    ok($r->{status} == 400 && ($e->{error}{param} // '') eq 'expires_after'
       && $e->{error}{message} =~ /^expires_after\[(anchor|seconds)\]/,
       "expires_after $what: 400 naming the field")
        or diag("$r->{status} $r->{body}");
}
is(psql("SELECT count(*) FROM batch_files WHERE api_key_id = $kid"), 3,
   'a refused upload stores nothing');

# --- 2. GET /v1/files -------------------------------------------------------

sub ids { [ map { $_->{id} } @{ $_[0]{data} || [] } ] }

my @mine = map { $_->{id} } $f1, $f2, $f3;
($r, my $l) = api($port, $key, 'GET', '/v1/files');
is($r->{status}, 200, 'list: 200');
is($l->{object}, 'list', 'list: object "list"');
is_deeply(ids($l), [ reverse @mine ], 'newest first, only this key\'s');
ok(!$l->{has_more}, 'has_more false')
    and is($l->{first_id}, $f3->{id}, 'first_id')
    and is($l->{last_id}, $f1->{id}, 'last_id');
is_deeply([ map { $_->{object} } @{ $l->{data} } ], [ ('file') x 3 ],
          'each a file object');
is($l->{data}[1]{expires_at}, $f2->{expires_at}, 'with its expires_at');

(undef, $l) = api($port, $key, 'GET', '/v1/files?order=asc');
is_deeply(ids($l), \@mine, 'order=asc: oldest first');
(undef, $l) = api($port, $key, 'GET', '/v1/files?limit=2');
is_deeply(ids($l), [ @mine[2, 1] ], 'limit=2: the newest two')
    and ok($l->{has_more}, 'has_more true');
(undef, $l) = api($port, $key, 'GET', "/v1/files?limit=2&after=$l->{last_id}");
is_deeply(ids($l), [ $mine[0] ], 'after=last_id: the rest')
    and ok(!$l->{has_more}, 'has_more false on the last page');
(undef, $l) = api($port, $key, 'GET',
                  "/v1/files?order=asc&limit=1&after=$mine[0]");
is_deeply(ids($l), [ $mine[1] ], 'order=asc&after=: the next one up');
(undef, $l) = api($port, $key, 'GET', '/v1/files?purpose=batch&limit=10000');
is_deeply(ids($l), [ reverse @mine ], 'purpose=batch, limit=10000');
(undef, $l) = api($port, $key, 'GET', '/v1/files?purpose=batch_output');
is_deeply(ids($l), [], 'purpose=batch_output: none yet');
(undef, $l) = api($port, $other, 'GET', '/v1/files');
is_deeply(ids($l), [ $fo->{id} ], 'another key lists only its own');

for my $q ('limit=0', 'limit=10001', 'limit=-1', 'limit=abc', 'limit=1.5',
           'limit=', 'order=up', 'order=ASC', 'after=file-nosuch',
           "after=$fo->{id}")
{
    ($r, my $e) = api($port, $key, 'GET', "/v1/files?$q");
    my ($p) = $q =~ /^(\w+)/;
    ok($r->{status} == 400 && ($e->{error}{param} // '') eq $p
       && ($e->{error}{code} // '') eq 'invalid_value',
       "?$q: 400 invalid_value, param $p") or diag("$r->{status} $r->{body}");
}

# --- 3. DELETE /v1/files/{id} -----------------------------------------------

# an unfinished batch on f1: no agent, so its lines stay pending
($r, my $b) = api($port, $key, 'POST', '/v1/batches',
                  { input_file_id => $f1->{id}, completion_window => '24h',
                    endpoint => '/v1/chat/completions' });
is($b->{status} // '', 'in_progress', 'a batch on the first file');

($r, my $e) = api($port, $other, 'DELETE', "/v1/files/$f1->{id}");
is($r->{status}, 404, "another key's DELETE: 404");
($r, $e) = api($port, $other, 'GET', "/v1/files/$f1->{id}");
is($r->{status}, 404, "another key's GET: 404");
($r, $e) = api($port, $key, 'DELETE', "/v1/files/$fo->{id}");
is($r->{status}, 404, "DELETE of another key's file: 404");
($r) = api($port, $other, 'GET', "/v1/files/$fo->{id}");
is($r->{status}, 200, 'which is still there');

($r, $e) = api($port, $key, 'DELETE', "/v1/files/$f1->{id}");
is($r->{status}, 200, 'DELETE of the input file of an unfinished batch');
is_deeply($e, { id => $f1->{id}, object => 'file', deleted => JSON::PP::true },
          'OpenAI\'s deletion object');
for my $t ([ 'GET', "/v1/files/$f1->{id}" ],
           [ 'GET', "/v1/files/$f1->{id}/content" ],
           [ 'DELETE', "/v1/files/$f1->{id}" ],
           [ 'DELETE', '/v1/files/file-nosuch' ])
{
    ($r, $e) = api($port, $key, @$t);
    ok($r->{status} == 404 && ($e->{error}{code} // '') eq 'file_not_found',
       "then $t->[0] $t->[1]: 404 file_not_found")
        or diag("$r->{status} $r->{body}");
}
(undef, $l) = api($port, $key, 'GET', '/v1/files');
is_deeply(ids($l), [ @mine[2, 1] ], 'and it is no longer listed');
(undef, my $bb) = api($port, $key, 'GET', "/v1/batches/$b->{id}");
ok(($bb->{status} // '') eq 'in_progress'
   && $bb->{input_file_id} eq $f1->{id}
   && $bb->{request_counts}{total} == 3,
   'the batch is untouched: in progress, its 3 lines, the same input id');

# cancelled: its error file (the 3 lines) is a batch_output file
($r, $bb) = api($port, $key, 'POST', "/v1/batches/$b->{id}/cancel");
is($bb->{status} // '', 'cancelled', 'the batch cancelled');
my $ef = $bb->{error_file_id} // '';
(undef, $l) = api($port, $key, 'GET', '/v1/files?purpose=batch_output');
is_deeply(ids($l), [ $ef ], 'purpose=batch_output: its error file');
($r, $e) = api($port, $other, 'DELETE', "/v1/files/$ef");
is($r->{status}, 404, "another key cannot delete the error file");
($r, $e) = api($port, $key, 'DELETE', "/v1/files/$ef");
ok($r->{status} == 200 && $e->{deleted}, 'the owner deletes the error file');
($r) = api($port, $key, 'GET', "/v1/files/$ef/content");
is($r->{status}, 404, 'its content: 404');

# --- 4. expiry --------------------------------------------------------------

# f2 expires now (an hour is too long for a test: its expires_at moves)
psql("UPDATE batch_files SET expires_at = now() - interval '1 second'"
     . " WHERE id = '$f2->{id}'");
for my $t ([ 'GET', "/v1/files/$f2->{id}" ],
           [ 'GET', "/v1/files/$f2->{id}/content" ],
           [ 'DELETE', "/v1/files/$f2->{id}" ])
{
    ($r) = api($port, $key, @$t);
    is($r->{status}, 404, "expired: $t->[0] $t->[1] 404");
}
($r, $e) = api($port, $key, 'GET', "/v1/files?after=$f2->{id}");
is($r->{status}, 400, 'expired: not a cursor');
(undef, $l) = api($port, $key, 'GET', '/v1/files');
is_deeply(ids($l), [ $mine[2] ], 'expired: not listed');
($r, $e) = api($port, $key, 'POST', '/v1/batches',
               { input_file_id => $f2->{id}, completion_window => '24h',
                 endpoint => '/v1/chat/completions' });
is($r->{status}, 404, 'expired: no batch on it');
ok(wait_until(20, sub {
    psql("SELECT count(*) FROM batch_files WHERE id = '$f2->{id}'") == 0 }),
   "the runner's claim deleted the expired row");
is(psql("SELECT count(*) FROM batch_files WHERE id = '$f3->{id}'"), 1,
   'a file not yet expired stays');

# --- 5. a job's priority and region: what the balancer takes ---------------

# (another key's: the admin listings below count this key's)
for my $c ([ { priority => 10 }, 'priority' ],
           [ { priority => -1 }, 'priority' ],
           [ { priority => 1.5 }, 'priority' ],
           [ { region => 'r' x 32 }, 'region' ])
{
    ($r, $e) = api($port, $other, 'POST', '/v1/jobs',
        { endpoint => '/v1/chat/completions', %{ $c->[0] },
          body => { model => 'mock-model', messages => [] } });
    ok($r->{status} == 400 && ($e->{error}{param} // '') eq $c->[1],
       "a job with $c->[1] " . (values %{ $c->[0] })[0] . ': 400')
        or diag("$r->{status} $r->{body}");
}
for my $c ({ priority => 0 }, { priority => 9, region => 'r' x 31 }) {
    ($r, $e) = api($port, $other, 'POST', '/v1/jobs',
        { endpoint => '/v1/chat/completions', %$c,
          body => { model => 'mock-model', messages => [] } });
    is($r->{status}, 200, 'a job with priority ' . $c->{priority});
    api($port, $other, 'DELETE', "/v1/jobs/$e->{id}");
}

# --- 6. the admin API's batches ---------------------------------------------

my $cred = admin("root-$run", 'admin');
my $ro = admin("ro-$run", 'read');

sub adm {
    my ($c, $method, $path) = @_;
    return api($port, $c, $method, "/admin/v1/$path");
}

# a job of this tenant, a batch of the other tenant, a batch of this one
($r, my $job) = api($port, $key, 'POST', '/v1/jobs',
    { endpoint => '/v1/chat/completions', priority => 3, region => 'eu',
      body => { model => 'mock-model', messages => [] } });
is($r->{status}, 200, 'a job') or diag($r->{body});
($r, my $ob) = api($port, $other, 'POST', '/v1/batches',
                   { input_file_id => $fo->{id}, completion_window => '24h',
                     endpoint => '/v1/chat/completions' });
($r, my $nb) = api($port, $key, 'POST', '/v1/batches',
                   { input_file_id => $f3->{id}, completion_window => '24h',
                     endpoint => '/v1/chat/completions' });

($r, $l) = adm($ro, 'GET', "batches?tenant=tenant-$run");
is($r->{status}, 200, 'a read credential lists batches');
is_deeply(ids($l), [ $nb->{id}, $job->{id}, $b->{id} ],
          "tenant=NAME: its batches and jobs, newest first");
is_deeply([ map { "$_->{kind} $_->{tenant} $_->{api_key_id}" }
            @{ $l->{data} } ],
          [ "batch tenant-$run $kid", "job tenant-$run $kid",
            "batch tenant-$run $kid" ], 'with kind, tenant and key');
(undef, $l) = adm($cred, 'GET', "batches?tenant=$tid");
is_deeply(ids($l), [ $nb->{id}, $job->{id}, $b->{id} ], 'tenant=ID');
(undef, $l) = adm($cred, 'GET', "batches?tenant=tenant-$run&limit=2");
is_deeply(ids($l), [ $nb->{id}, $job->{id} ], 'limit=2')
    and ok($l->{has_more}, 'has_more')
    and is($l->{last_id}, $job->{id}, 'last_id');
(undef, $l) = adm($cred, 'GET',
                  "batches?tenant=tenant-$run&limit=2&after=$l->{last_id}");
is_deeply(ids($l), [ $b->{id} ], 'after=last_id: the next page')
    and ok(!$l->{has_more}, 'the last');
(undef, $l) = adm($cred, 'GET', 'batches?limit=3');
is_deeply(ids($l), [ $nb->{id}, $ob->{id}, $job->{id} ],
          'no tenant: every tenant\'s, newest first');

($r, $e) = adm($cred, 'GET', "batches/$job->{id}");
ok($r->{status} == 200 && $e->{kind} eq 'job' && $e->{priority} == 3
   && $e->{region} eq 'eu' && $e->{job}{status} eq 'queued'
   && $e->{tenant} eq "tenant-$run",
   'GET batches/{job id}: the job with its state') or diag($r->{body});
($r, $e) = adm($ro, 'GET', "batches/$ob->{id}");
ok($r->{status} == 200 && $e->{object} eq 'batch'
   && $e->{tenant} eq "tenant-$run-b" && $e->{request_counts}{total} == 3,
   "GET batches/{id}: another tenant's batch") or diag($r->{body});

for my $t ([ $cred, 'GET', 'batches/batch_nosuch', 404 ],
           [ $cred, 'GET', 'batches/123', 404 ],
           [ $cred, 'GET', 'batches?tenant=no-such-tenant', 404 ],
           [ $cred, 'GET', 'batches?limit=0', 400 ],
           [ $cred, 'GET', 'batches?limit=501', 400 ],
           [ $cred, 'GET', 'batches?limit=x', 400 ],
           [ $cred, 'GET', 'batches?after=batch_nosuch', 400 ],
           [ $cred, 'GET', 'batches?from=1', 400 ],
           [ $cred, 'POST', 'batches', 405 ],
           [ $cred, 'DELETE', "batches/$b->{id}", 405 ],
           [ $cred, 'GET', "keys/$b->{id}", 404 ],
           [ undef, 'GET', 'batches', 401 ],
           [ 'gg-admin-nosuch', 'GET', "batches/$b->{id}", 401 ])
{
    my ($c, $m, $p, $want) = @$t;
    ($r, $e) = adm($c, $m, $p);
    ok($r->{status} == $want && $e->{error}{message},
       "$m $p" . ($c ? '' : ' (no credential)') . ": $want")
        or diag("$r->{status} $r->{body}");
}

# no line of this file is left for the runners of later tests
for my $id ($ob->{id}, $nb->{id}) {
    my $k = $id eq $ob->{id} ? $other : $key;
    api($port, $k, 'POST', "/v1/batches/$id/cancel");
}
api($port, $key, 'DELETE', "/v1/jobs/$job->{id}");
is(psql("SELECT count(*) FROM batch_lines l JOIN batches b"
        . " ON b.id = l.batch_id WHERE b.tenant_id = $tid"
        . " AND l.status = 'pending'"), 0, 'nothing left pending');

# --- 7. the official SDK: files.list, files.delete --------------------------

SKIP: {
    my ($npm, $have_sdk) = system('command -v node >/dev/null 2>&1'
                                  . ' && command -v npm >/dev/null 2>&1')
                           == 0 ? sdk_install() : ('', 0);
    skip 'npm could not install the openai SDK', 3 unless $have_sdk;
    local $ENV{GG_NPM_DIR} = $npm;
    my $cmd = "node $FindBin::Bin/support/files-sdk.mjs"
            . " http://127.0.0.1:$port $key 2>&1";
    my @out = map { decode_json($_) } grep { /^\{/ } split /\n/, `$cmd`;
    my %got = map { $_->{name} => $_ } @out;
    ok($got{'files.list'}{ok}
       && grep({ $_ eq $f3->{id} } @{ $got{'files.list'}{detail}{ids} }),
       'SDK files.list: through its pages') or diag(explain(\@out));
    ok($got{'files.delete'}{ok}
       && $got{'files.delete'}{detail}{deleted}
       && $got{'files.delete'}{detail}{id} eq $got{'files.create'}{detail},
       'SDK files.delete') or diag(explain(\@out));
    ok($got{'files.retrieve deleted'}{ok}
       && $got{'files.retrieve deleted'}{detail} == 404,
       'SDK: the deleted file is NotFound') or diag(explain(\@out));
}

unlike($ng->log, qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');

done_testing();
