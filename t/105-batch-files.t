# The Batch API's files and batches routes without a runner (issue 19):
# POST /v1/files (multipart, purpose "batch", the JSONL checked line by
# line, each kind of bad line named with its number, the size bounded by
# client_max_body_size), GET /v1/files/{id} and its content; POST
# /v1/batches with its refusals, a line whose url is not the batch's
# endpoint failing the batch, GET one, GET the list paged newest first,
# cancel; only the key that made a file or batch can read it; unknown
# routes and methods; no key.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(make_key psql env_or_skip);
use GpugateBatch qw(batch_node upload api jsonl);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $run = "t105-$$";
my ($key, $kid) = make_key("tenant-$run", name => 'batch-files');
my ($other) = make_key("tenant-$run-b", name => 'batch-other');

my $ng = batch_node(name => $run, max_body => '64k', workers => 1);
my $port = $ng->port;

sub line {
    my ($id, %o) = @_;
    return { custom_id => $id, method => 'POST',
             url => '/v1/chat/completions',
             body => { model => 'mock-model',
                       messages => [{ role => 'user', content => 'hi' }] },
             %o };
}

# --- 1. upload, read back -----------------------------------------------

my $text = jsonl(map { line("req-$_") } 1 .. 3);
my ($r, $f) = upload($port, $key, $text, filename => 'in\\x.jsonl');

is($r->{status}, 200, 'POST /v1/files: 200') or diag($r->{body});
like($f->{id} // '', qr/^file-[0-9a-f]{32}$/, 'the file has an id');
is_deeply([ @$f{qw(object purpose bytes filename status)} ],
          [ 'file', 'batch', length $text, 'in\\x.jsonl', 'processed' ],
          'its object: file, batch, bytes, the name (JSON-escaped)')
    or diag($r->{body});
is(psql("SELECT lines || ' ' || api_key_id FROM batch_files"
        . " WHERE id = '$f->{id}'"), "3 $kid",
   'PostgreSQL keeps its 3 lines for the key that sent it');

($r, my $g) = api($port, $key, 'GET', "/v1/files/$f->{id}");
is($g->{id} // '', $f->{id}, 'GET /v1/files/{id}');
($r) = api($port, $key, 'GET', "/v1/files/$f->{id}/content");
is($r->{body}, $text, 'GET /v1/files/{id}/content: the bytes sent');

for my $path ("/v1/files/$f->{id}", "/v1/files/$f->{id}/content") {
    ($r, $g) = api($port, $other, 'GET', $path);
    is("$r->{status} " . ($g->{error}{code} // ''), '404 file_not_found',
       "another key: $path is not found");
}

# --- 2. bad uploads: each names its line ---------------------------------

my @bad = (
    [ "not json\n", qr/^line 1: not a JSON object/, 'not JSON' ],
    [ jsonl(line('a'), line('b', method => 'GET')),
      qr/^line 2: "method" must be "POST"/, 'method GET' ],
    [ jsonl(line('a'), line('a')), qr/^line 2: "custom_id" is not unique/,
      'a custom_id twice' ],
    [ jsonl(line('a', url => '/v1/files')), qr/^line 1: "url" must be/,
      'a url the router does not serve' ],
    [ jsonl(line('a', custom_id => 7)), qr/^line 1: "custom_id" must be/,
      'custom_id not a string' ],
    [ jsonl(line('a', body => [1])), qr/^line 1: "body" must be/,
      'body not an object' ],
    [ "\n" . jsonl(line('a', body => { model => 'm', stream => \1 })),
      qr/^line 2: "stream": true/, 'a stream, after a blank line' ],
    [ "\n\n", qr/^the file has no request/, 'an empty file' ],
    [ "{\"custom_id\":\"a\xff\"}\n", qr/^the file is not UTF-8/,
      'bytes that are not UTF-8' ],
);

for my $b (@bad) {
    ($r, my $e) = upload($port, $key, $b->[0]);
    ok($r->{status} == 400 && ($e->{error}{code} // '') eq 'invalid_file'
       && ($e->{error}{message} // '') =~ $b->[1],
       "refused: $b->[2]") or diag("$r->{status} $r->{body}");
}

($r, my $e) = upload($port, $key, $text, purpose => 'fine-tune');
like($e->{error}{message} // '', qr/purpose must be "batch"/,
     'purpose other than batch: 400');
($r, $e) = upload($port, $key, $text, purpose => undef);
like($e->{error}{message} // '', qr/needs a "purpose" and a "file"/,
     'no purpose field: 400');
($r, $e) = api($port, $key, 'POST', '/v1/files', { purpose => 'batch' });
like($e->{error}{message} // '', qr/multipart/, 'a JSON body: 400');

# larger than client_max_body_size (64k here): 413 in OpenAI's shape
($r, $e) = upload($port, $key, jsonl(map { line("big-$_") } 1 .. 800));
is("$r->{status} " . ($e->{error}{type} // ''),
   '413 invalid_request_error', 'beyond client_max_body_size: 413 JSON');

is(psql("SELECT count(*) FROM batch_files WHERE api_key_id = $kid"), 1,
   'no refused upload was stored');

# --- 3. batches ----------------------------------------------------------

my %create = (input_file_id => $f->{id}, endpoint => '/v1/chat/completions',
              completion_window => '24h', metadata => { n => 'x' });

for my $c ([ { endpoint => '/v1/files' }, 400, 'invalid_value',
             'a bad endpoint' ],
           [ { completion_window => '48h' }, 400, 'invalid_value',
             'a window other than 24h' ],
           [ { input_file_id => 'file-nope' }, 404, 'file_not_found',
             'an unknown file' ],
           [ { metadata => [1] }, 400, 'invalid_value', 'bad metadata' ])
{
    ($r, $e) = api($port, $key, 'POST', '/v1/batches',
                   { %create, %{ $c->[0] } });
    is("$r->{status} " . ($e->{error}{code} // ''), "$c->[1] $c->[2]",
       "POST /v1/batches refuses $c->[3]");
}

($r, $e) = api($port, $other, 'POST', '/v1/batches', \%create);
is($r->{status}, 404, "another key cannot start a batch on this file");

my @made;
for my $i (1 .. 3) {
    ($r, my $b) = api($port, $key, 'POST', '/v1/batches', \%create);
    is("$r->{status} " . ($b->{status} // ''), '200 in_progress',
       "batch $i created in_progress") or diag($r->{body});
    push @made, $b;
}
my $b = $made[0];
like($b->{id} // '', qr/^batch_[0-9a-f]{32}$/, 'a batch id');
is_deeply([ $b->{object}, $b->{endpoint}, $b->{input_file_id},
            $b->{completion_window}, $b->{request_counts}, $b->{metadata} ],
          [ 'batch', '/v1/chat/completions', $f->{id}, '24h',
            { total => 3, completed => 0, failed => 0 }, { n => 'x' } ],
          'its object: endpoint, file, window, request_counts, metadata');
ok($b->{expires_at} - $b->{created_at} == 86400,
   'it expires 24 h after it was made');

($r, my $got) = api($port, $key, 'GET', "/v1/batches/$b->{id}");
is($got->{id} // '', $b->{id}, 'GET /v1/batches/{id}');
($r, $got) = api($port, $other, 'GET', "/v1/batches/$b->{id}");
is("$r->{status} " . ($got->{error}{code} // ''), '404 batch_not_found',
   'another key cannot read it');

# the list: newest first, paged by after/limit
($r, my $l) = api($port, $key, 'GET', '/v1/batches?limit=2');
is_deeply([ map { $_->{id} } @{ $l->{data} || [] } ],
          [ $made[2]{id}, $made[1]{id} ], 'page 1: the 2 newest');
ok($l->{has_more} && $l->{last_id} eq $made[1]{id}, 'has_more, last_id');
($r, $l) = api($port, $key, 'GET', "/v1/batches?limit=2&after=$l->{last_id}");
is_deeply([ map { $_->{id} } @{ $l->{data} || [] } ], [ $made[0]{id} ],
          'page 2: the oldest, no more');
ok(!$l->{has_more}, 'has_more false at the end');
($r, $l) = api($port, $other, 'GET', '/v1/batches');
is_deeply($l->{data}, [], "another key's list is empty");
($r, $e) = api($port, $key, 'GET', '/v1/batches?limit=1000');
is($r->{status}, 400, 'limit above 100: 400');

# a line whose url is not the endpoint: the batch fails, naming it
my ($r2, $f2) = upload($port, $key, jsonl(line('a'),
                       line('b', url => '/v1/embeddings')));
($r, $e) = api($port, $key, 'POST', '/v1/batches',
               { %create, input_file_id => $f2->{id} });
is($e->{status} // '', 'failed', 'a mixed file: the batch fails');
is_deeply([ @{ $e->{errors}{data}[0] || {} }{qw(code line)} ],
          [ 'invalid_url', 2 ], 'its error names line 2');

# cancel: nothing runs here, so it ends cancelled with every line in the
# error file
($r, my $c) = api($port, $key, 'POST', "/v1/batches/$b->{id}/cancel");
is($c->{status} // '', 'cancelled', 'cancel with nothing in flight');
ok($c->{error_file_id} && !$c->{output_file_id},
   'an error file, no output file');
($r) = api($port, $key, 'GET', "/v1/files/$c->{error_file_id}/content");
my @err = map { JSON::PP::decode_json($_) } split /\n/, $r->{body};
is_deeply([ map { "$_->{custom_id} $_->{error}{code}" } @err ],
          [ map { "req-$_ batch_cancelled" } 1 .. 3 ],
          'the error file: each line, cancelled, in order');
($r, $e) = api($port, $key, 'POST', "/v1/batches/$b->{id}/cancel");
is($e->{status} // '', 'cancelled', 'cancelling again answers the batch');
($r, $e) = api($port, $other, 'POST', "/v1/batches/$made[1]{id}/cancel");
is($r->{status}, 404, 'another key cannot cancel');

# --- 4. routes, methods, no key -----------------------------------------

for my $t ([ 'PUT', '/v1/files', 405 ], [ 'DELETE', "/v1/batches/x", 405 ],
           [ 'GET', '/v1/batches/x/undo', 404 ],
           [ 'GET', '/v1/files/a%2fb', 404 ], [ 'PUT', '/v1/jobs', 405 ])
{
    ($r, $e) = api($port, $key, $t->[0], $t->[1]);
    ok($r->{status} == $t->[2] && $e->{error}{message},
       "$t->[0] $t->[1]: $t->[2] with an error body")
        or diag("$r->{status} $r->{body}");
}

($r, $e) = api($port, undef, 'GET', '/v1/batches');
is($r->{status}, 401, 'no key: 401');

# no line of this file is left for the runners of later tests
for my $m (@made[1, 2]) {
    ($r, $e) = api($port, $key, 'POST', "/v1/batches/$m->{id}/cancel");
    is($e->{status} // '', 'cancelled', 'cancelled at the end');
}

unlike($ng->log, qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');

done_testing();
