# A batch's output and error files expire
# (sql/012_batch_expiry_agent_scope.sql): POST /v1/batches takes OpenAI's
# output_expires_after {"anchor": "created_at", "seconds":
# 3600..2592000}; every other shape, anchor or value is a 400
# invalid_value naming the parameter and makes no batch; the output and
# error files of a batch that asked for it get expires_at (their
# created_at plus the seconds, listed and read like any file); past it
# they are 404 at once (get, content, delete, list) and deleted by the
# runner's next claim; a batch without it makes files without expiry;
# the migration applied twice changes nothing.  The npm "openai" SDK's
# batches.create passes the member through when the SDK is installed
# (t/108 installs it; not installed here).
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempfile);
use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(make_key make_agent psql wait_until env_or_skip
                   sdk_install);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugateBatch qw(batch_node upload api jsonl);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $root = "$FindBin::Bin/..";
plan skip_all => 'run scripts/build.sh first'
    unless -x "$root/build/bin/gpugate-agent";

my $run = "t125-$$";
my ($key, $kid) = make_key("tenant-$run", name => 'output-expiry');

my $ng = batch_node(name => $run, workers => 1,
                    runner => 'concurrency=4 interval=100ms lease=20s');
my $port = $ng->port;
my $mock = scale_mock('--ttft-ms', 0, '--tokens', 2);
my (undef, $alog) = scale_agent(name => "$run-a",
                                token => make_agent("$run-a"),
                                gateways => [$port], runtime => $mock,
                                capacity => 4);

# one line the mock answers, one for a model the gateway does not serve
# (404: the line fails and goes to the error file)
my $text = jsonl(map {
    { custom_id => "l-$_->[0]", method => 'POST',
      url => '/v1/chat/completions',
      body => { model => $_->[1], max_tokens => 2,
                messages => [{ role => 'user', content => 'hi' }] } }
} [ 1, 'mock-model' ], [ 2, 'no-such-model' ]);
my ($r, $f) = upload($port, $key, $text);
ok($f->{id}, 'the input file') or diag($r->{body});

sub batches { psql("SELECT count(*) FROM batches WHERE api_key_id = $kid") }

sub create {
    my ($oea) = @_;
    return api($port, $key, 'POST', '/v1/batches',
               { input_file_id => $f->{id},
                 endpoint => '/v1/chat/completions',
                 completion_window => '24h',
                 $oea ? @$oea : () });
}

# --- 1. shapes and bounds ------------------------------------------------

my $ok = { anchor => 'created_at', seconds => 3600 };
my @bad = (
    [ { %$ok, seconds => 3599 }, 'seconds 3599, one under' ],
    [ { %$ok, seconds => 2592001 }, 'seconds 2592001, one over' ],
    [ { %$ok, seconds => 0 }, 'seconds 0' ],
    [ { %$ok, seconds => -3600 }, 'negative seconds' ],
    [ { %$ok, seconds => 3600.5 }, 'seconds not an integer' ],
    [ { %$ok, seconds => '3600' }, 'seconds a string' ],
    [ { %$ok, seconds => undef }, 'seconds null' ],
    [ { anchor => 'created_at' }, 'no seconds' ],
    [ { %$ok, anchor => 'completed_at' }, 'another anchor' ],
    [ { %$ok, anchor => 'Created_At' }, 'the anchor in another case' ],
    [ { seconds => 3600 }, 'no anchor' ],
    [ { %$ok, extra => 1 }, 'a member OpenAI does not have' ],
    [ [ $ok ], 'an array' ],
    [ 3600, 'a number' ],
    [ 'created_at', 'a string' ],
    [ JSON::PP::true, 'true' ],
);

my $before = batches();
for my $c (@bad) {
    my ($v, $what) = @$c;
    my ($r, $j) = create([ output_expires_after => $v ]);
    ok($r->{status} == 400 && ($j->{error}{code} // '') eq 'invalid_value'
       && ($j->{error}{param} // '') eq 'output_expires_after'
       && ($j->{error}{message} // '') =~ /3600 to 2592000/,
       "output_expires_after, $what: 400 invalid_value naming it")
        or diag($r->{body});
}
is(batches(), $before, 'none of them made a batch');

# the bounds themselves, null and absent are taken
my %made;
for my $c ([ 3600, [ output_expires_after => $ok ] ],
           [ 2592000, [ output_expires_after => { seconds => 2592000,
                                                  anchor => 'created_at' } ] ],
           [ 'null', [ output_expires_after => undef ] ],
           [ 'absent', undef ]) {
    my ($what, $oea) = @$c;
    my ($r, $j) = create($oea);
    my $stored = $j->{id} ? psql("SELECT coalesce(output_expires_after::text,"
                                 . " 'none') FROM batches"
                                 . " WHERE id = '$j->{id}'") : '';
    my $want = $what =~ /^\d+$/ ? $what : 'none';
    ok($r->{status} == 200 && $stored eq $want,
       "output_expires_after $what: taken, stored as $want")
        or diag("$r->{body} [$stored]");
    $made{$what} = $j->{id};
}

# --- 2. the files of a batch that asked for it ---------------------------

sub done {
    my ($id) = @_;
    my $b;
    wait_until(30, sub {
        (undef, $b) = api($port, $key, 'GET', "/v1/batches/$id");
        ($b->{status} // '') eq 'completed' });
    return $b;
}

my $b = done($made{3600});
ok($b->{output_file_id} && $b->{error_file_id},
   'the batch completed with an output and an error file')
    or diag(explain($b) . slurp($alog));

my %file;
for my $which ('output', 'error') {
    my $id = $b->{"${which}_file_id"};
    my ($r, $g) = api($port, $key, 'GET', "/v1/files/$id");
    $file{$which} = $g;
    ok($r->{status} == 200 && defined $g->{expires_at}
       && $g->{expires_at} - $g->{created_at} == 3600,
       "the $which file expires 3600 s after it was made")
        or diag($r->{body});
}

{
    my ($r, $l) = api($port, $key, 'GET',
                      '/v1/files?purpose=batch_output&limit=100');
    my %ex = map { $_->{id} => $_->{expires_at} } @{ $l->{data} || [] };
    ok(($ex{ $file{output}{id} } // 0) == $file{output}{expires_at}
       && ($ex{ $file{error}{id} } // 0) == $file{error}{expires_at},
       'the list shows both with their expires_at') or diag($r->{body});
}

{
    my $nb = done($made{absent});
    my ($r, $g) = api($port, $key, 'GET', "/v1/files/$nb->{output_file_id}");
    ok($r->{status} == 200 && $g->{id} && !defined $g->{expires_at},
       'a batch without output_expires_after: its output file does not '
       . 'expire') or diag($r->{body});
}

# --- 3. past expires_at: 404 at once, deleted by the next claim ----------

my $ids = "'$file{output}{id}', '$file{error}{id}'";

# another session holds both rows FOR KEY SHARE: the claim's FOR UPDATE
# SKIP LOCKED passes them over (so they stay while the routes are asked),
# an UPDATE of expires_at does not wait for it
my $lock;
{
    local $ENV{PGAPPNAME} = "$run-lock";
    open $lock, '|-', 'psql', '-X', '-q', '-o', '/dev/null', '-h',
         '127.0.0.1', '-p', $ENV{TEST_NGINX_PG_PORT}, '-U', 'gpugate',
         '-d', 'gpugate' or die "psql: $!";
}
$lock->autoflush(1);
print $lock "BEGIN; SELECT id FROM batch_files WHERE id IN ($ids)"
          . " FOR KEY SHARE;\n";
ok(wait_until(10, sub {
       psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a"
            . " USING (pid) WHERE a.application_name = '$run-lock'"
            . " AND l.relation = 'batch_files'::regclass") > 0 }),
   'both files held by another session');

psql("UPDATE batch_files SET expires_at = now() - interval '1 second'"
     . " WHERE id IN ($ids)");

for my $which ('output', 'error') {
    my $id = $file{$which}{id};
    for my $c ([ 'GET', "/v1/files/$id" ],
               [ 'GET', "/v1/files/$id/content" ],
               [ 'DELETE', "/v1/files/$id" ]) {
        my ($r, $j) = api($port, $key, @$c);
        my $kept = psql("SELECT count(*) FROM batch_files"
                        . " WHERE id = '$id'");
        ok($r->{status} == 404
           && ($j->{error}{code} // '') eq 'file_not_found' && $kept == 1,
           "expired $which file, its row still there: $c->[0] "
           . ($c->[1] =~ /content$/ ? 'content' : 'the file') . ' is 404')
            or diag("$r->{body} [$kept]");
    }
}

{
    my ($r, $l) = api($port, $key, 'GET',
                      '/v1/files?purpose=batch_output&limit=100');
    ok($r->{status} == 200
       && !grep({ $_->{id} eq $file{output}{id}
                  || $_->{id} eq $file{error}{id} } @{ $l->{data} || [] }),
       'neither is listed') or diag($r->{body});
}

close $lock;
ok(wait_until(10, sub {
       psql("SELECT count(*) FROM batch_files WHERE id IN ($ids)") == 0 }),
   'once let go, the runner\'s claim deleted both rows');

{
    my ($r, $j) = api($port, $key, 'GET', "/v1/batches/$made{3600}");
    is($j->{output_file_id} // '', $file{output}{id},
       'the batch still names its output file, as OpenAI\'s does');
}

# --- 4. sql/012 applied again: nothing changes ---------------------------

{
    local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    is(system("psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg -U gpugate"
              . " -d gpugate -f $root/sql/012_batch_expiry_agent_scope.sql"
              . " >/dev/null"), 0, 'sql/012 applies again');
    my ($r, $j) = create([ output_expires_after => { %$ok, seconds => 1 } ]);
    is($r->{status}, 400, '... and still refuses seconds 1');
    ($r, $j) = create([ output_expires_after => $ok ]);
    is($j->{id} ? psql("SELECT output_expires_after FROM batches"
                       . " WHERE id = '$j->{id}'") : $r->{body}, 3600,
       '... and stores 3600');
}

# --- 5. the npm SDK, when installed --------------------------------------

SKIP: {
    my ($npm, $have_sdk) = system('command -v node >/dev/null 2>&1'
                                  . ' && command -v npm >/dev/null 2>&1')
                           == 0 ? sdk_install() : ('', 0);
    skip 'npm could not install the openai SDK', 1 unless $have_sdk;
    my ($fh, $js) = tempfile(SUFFIX => '.mjs', UNLINK => 1);
    print $fh <<'JS';
import { createRequire } from 'node:module';
import path from 'node:path';
const require = createRequire(path.join(process.env.GG_NPM_DIR, 'x.js'));
const OpenAI = require('openai').default ?? require('openai');
const [base, key, file] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key,
                            maxRetries: 0 });
const b = await openai.batches.create({
    input_file_id: file, endpoint: '/v1/chat/completions',
    completion_window: '24h',
    output_expires_after: { anchor: 'created_at', seconds: 7200 } });
console.log(b.id);
JS
    close $fh;
    local $ENV{GG_NPM_DIR} = $npm;
    my $out = `node '$js' 'http://127.0.0.1:$port' '$key' '$f->{id}' 2>&1`;
    my ($id) = $out =~ /^(batch_\w+)$/m;
    is($id ? psql("SELECT output_expires_after FROM batches"
                  . " WHERE id = '$id'") : $out, 7200,
       'the SDK\'s batches.create passes output_expires_after through');
}

done_testing();
