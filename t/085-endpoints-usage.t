# Usage beyond tokens, per endpoint, in the ledger and /metrics, through
# an upstream pool and through the agent's tunnel:
#  - images: the images made (the answer's data[], or the "n" asked when
#    the answer is binary or an event stream, 0 when the runtime failed)
#    and the size asked when it is one of the known sizes (else NULL), on
#    images/generations (JSON) and images/edits (multipart); NULL on every
#    other endpoint; gpugate_endpoint_images_total by endpoint;
#  - prompt-cache tokens: OpenAI's prompt_tokens_details.cached_tokens
#    (chat, plain and streamed), input_tokens_details.cached_tokens
#    (responses, plain and streamed), Anthropic's cache_read_input_tokens
#    and cache_creation_input_tokens (messages, plain and streamed), with
#    prompt_tokens holding every prompt token, cached or not.
#
# Test::More.  Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use Test::More;

use GpugateTest qw(start_nginx http_request psql make_key wait_until
                   env_or_skip free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
my $mock_bin = "$root/build/bin/gpugate-mock-runtime";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $conninfo = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $dir = tempdir('gpugate-eu-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $gw = 'eu-' . $$ . '-' . time;
my $json = JSON::PP->new->canonical;

my $mock_port = free_port();
my $mock_pid = fork // die;
if (!$mock_pid) {
    exec $mock_bin, '--listen', "127.0.0.1:$mock_port", '--models',
         'mock-model', '--log-file', "$dir/mock.log", '--tokens', '4';
    exit 1;
}
wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mock_port") })
    or BAIL_OUT('mock runtime did not start');

my $token = make_agent('gpu-eu');
open my $tf, '>', "$dir/token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/token";

# runtimes whose images answer is not JSON: raw PNG bytes, and an event
# stream (as gpt-image's partial images come), served by nginx itself
my $png_port = free_port();
my $sse_port = free_port();
my $sse = 'data: {"type":"image_generation.completed","b64_json":"iVBO"}'
        . '\n\n';

my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=keu:1m ttl=60s;
    gpugate_auth_postgres "$conninfo";
    gpugate_usage_ledger "$conninfo" batch=1 interval=20ms gateway=$gw;
    upstream runtime { server 127.0.0.1:$mock_port; }
    upstream agents { gpugate_tunnel queue=16 queue_timeout=5s; }
    upstream png { server 127.0.0.1:$png_port; }
    upstream sse { server 127.0.0.1:$sse_port; }
    gpugate_model mock-model pool=runtime;
    gpugate_model tunnel-model pool=agents target=mock-model;
    gpugate_model png-model pool=png;
    gpugate_model sse-model pool=sse;
    server {
        listen 127.0.0.1:$png_port;
        location / { default_type image/png; return 200 "\\x89PNG-bytes"; }
    }
    server {
        listen 127.0.0.1:$sse_port;
        location / { default_type text/event-stream; return 200 '$sse'; }
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
        location = /metrics { gpugate_metrics; }
SRV

my $port = $ng->port;

my $agent_pid = fork // die;
if (!$agent_pid) {
    open STDERR, '>', "$dir/agent.log" or die;
    exec $agent_bin, '--gateway', "http://127.0.0.1:$port/gpugate/tunnel",
         '--name', 'gpu-eu', '--token-file', "$dir/token",
         '--runtime', "http://127.0.0.1:$mock_port", '--capacity', 4,
         '--spare', 1;
    exit 1;
}

END {
    kill 'TERM', $agent_pid if $agent_pid;
    kill 'TERM', $mock_pid if $mock_pid;
}

my ($key) = make_key('eu-tenant');

sub post {
    my ($path, $body, %h) = @_;
    my %all = ('Content-Type' => 'application/json',
               Authorization => "Bearer $key",
               'anthropic-version' => '2023-06-01', %h);
    return http_request($port, 'POST', $path, \%all,
                        ref $body ? $json->encode($body) : $body, 10);
}

my $B = 'gpugate-eu-b0undary';

sub upload {
    my (%f) = @_;
    my $body = '';
    for my $k (sort keys %f) {
        $body .= "--$B\r\nContent-Disposition: form-data; name=\"$k\"\r\n"
               . "\r\n$f{$k}\r\n";
    }
    $body .= "--$B\r\nContent-Disposition: form-data; name=\"image\"; "
           . "filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
           . ("\x89PNG" x 1000) . "\r\n--$B--\r\n";
    return http_request($port, 'POST', '/v1/images/edits',
                        { 'Content-Type' => "multipart/form-data; "
                                            . "boundary=$B",
                          Authorization => "Bearer $key" }, $body, 10);
}

# every request makes one row, in order: each test's expected row is
# noted, and all are read at the end with one query
my $last_id = 0;
my @expect;

sub expect { push @expect, [@_] }

sub check_rows {
    my $cols = "status || ' ' || prompt_tokens || ' ' "
             . "|| coalesce(images::text, 'N') || ' ' "
             . "|| coalesce(image_size, 'N') || ' ' "
             . "|| coalesce(cache_read_tokens::text, 'N') || ' ' "
             . "|| coalesce(cache_write_tokens::text, 'N')";
    my $where = "gateway = '$gw' AND id > $last_id";
    wait_until(20, sub {
        psql("SELECT count(*) FROM usage_events WHERE $where") >= @expect
    });
    my @rows = split /\n/, psql("SELECT $cols FROM usage_events "
                                . "WHERE $where ORDER BY id");
    is(scalar @rows, scalar @expect, 'one ledger row per request');
    for my $i (0 .. $#expect) {
        is($rows[$i] // '', $expect[$i][0], $expect[$i][1]);
    }
}

my $tries = 0;
ok(wait_until(15, sub {
       $tries++;
       post('/v1/rerank', { model => 'tunnel-model', query => 'q',
                            documents => ['a'] })->{status} == 200 }),
   'the agent is connected');
wait_until(10, sub {
    psql("SELECT count(*) FROM usage_events WHERE gateway = '$gw'") >= $tries
});
$last_id = psql("SELECT max(id) FROM usage_events WHERE gateway = '$gw'");

my %images = (images => 0, image_edits => 0);
my $msgs = [{ role => 'user', content => 'hi there' }];

for my $model ('mock-model', 'tunnel-model') {
    my $via = $model eq 'mock-model' ? 'pool' : 'tunnel';

    # --- images ----------------------------------------------------------

    for my $case ([3, '1024x1024', '1024x1024'], [2, '999x999', 'N'],
                  [1, '1024x10240', 'N'], [2, 'auto', 'auto'])
    {
        my ($n, $size, $kept) = @$case;
        my $r = post('/v1/images/generations',
                     { model => $model, prompt => 'a cat', n => $n,
                       size => $size, response_format => 'url' });
        expect("200 0 $n $kept N N",
           "$via: images/generations n=$n size=$size: $n images, size "
           . "$kept");
        $images{images} += $n;
    }

    post('/v1/images/generations', { model => $model, prompt => 'a cat' });
    expect('200 0 1 N N N', "$via: no n, no size: 1 image, size NULL");
    $images{images} += 1;

    post('/v1/images/generations', { model => $model, prompt => 'a cat',
                                     n => 2, size => '512x512' },
         'X-Mock-Fail-Status' => 500);
    expect('500 0 0 512x512 N N', "$via: the runtime failed: 0 images");

    for my $case ([{ n => 2, size => '512x512' }, '2 512x512'],
                  [{ n => 3, size => 'big' }, '3 N'],
                  [{ size => '256x256' }, '1 256x256'],
                  [{ n => 'x2', size => '256x256 ' }, '1 N'])
    {
        my ($f, $want) = @$case;
        my $r = upload(model => $model, prompt => 'a hat', %$f);
        my $m = eval { $json->decode($r->{body}) } || {};
        my ($n) = split ' ', $want;
        ok($r->{status} == 200 && @{ $m->{data} || [] } == $n,
           "$via: images/edits answers $n images");
        expect("200 0 $want N N",
           "$via: images/edits n=" . ($f->{n} // '-') . " size="
           . "'$f->{size}': $want");
        $images{image_edits} += $n;
    }

    # --- prompt cache ----------------------------------------------------

    # chat: 2 words of prompt ("hi there"), 5 more from the cache
    post('/v1/chat/completions', { model => $model, messages => $msgs },
         'X-Mock-Cache-Read' => 5);
    expect('200 7 N N 5 N', "$via: chat: cached_tokens as read");

    my $r = post('/v1/chat/completions',
                 { model => $model, messages => $msgs,
                   stream => JSON::PP::true },
                 'X-Mock-Cache-Read' => 6);
    unlike($r->{body}, qr/cached_tokens|"usage"/,
           "$via: chat stream: the usage the gateway asked for is hidden");
    expect('200 8 N N 6 N', "$via: chat stream: cached_tokens as read");

    post('/v1/chat/completions', { model => $model, messages => $msgs });
    expect('200 2 N N N N', "$via: chat without cache: NULL");

    # responses: 2 words of input
    post('/v1/responses', { model => $model, input => 'hello you' },
         'X-Mock-Cache-Read' => 7);
    expect('200 9 N N 7 N', "$via: responses: cached_tokens as read");

    post('/v1/responses', { model => $model, input => 'hello you',
                            stream => JSON::PP::true },
         'X-Mock-Cache-Read' => 8);
    expect('200 10 N N 8 N',
       "$via: responses stream: from response.completed");

    post('/v1/responses', { model => $model, input => 'hello you' });
    expect('200 2 N N 0 N', "$via: responses: a reported 0 is 0");

    # Anthropic: input_tokens excludes the cache; prompt_tokens holds all
    for my $stream (0, 1) {
        my $kind = $stream ? 'messages stream' : 'messages';
        post('/v1/messages', { model => $model, max_tokens => 16,
                               messages => $msgs,
                               ($stream ? (stream => JSON::PP::true) : ()) },
             'X-Mock-Cache-Read' => 11, 'X-Mock-Cache-Write' => 13);
        expect('200 27 N N 11 13',
           "$via: $kind: 3 input + 11 read + 13 written");
    }

    post('/v1/messages', { model => $model, max_tokens => 16,
                           messages => $msgs });
    expect('200 3 N N 0 0', "$via: messages without cache: 0 and 0");
}

# answers that do not list their images: the n asked counts
post('/v1/images/generations', { model => 'png-model', prompt => 'a',
                                 n => 4, size => '256x256' });
expect('200 0 4 256x256 N N', 'a binary answer: the 4 asked');
$images{images} += 4;

post('/v1/images/generations', { model => 'sse-model', prompt => 'a',
                                 n => 2, stream => JSON::PP::true });
expect('200 0 2 N N N', 'an event stream answer: the 2 asked');
$images{images} += 2;

# the counter by endpoint: a fixed label set, only the image endpoints
my $m = http_request($port, 'GET', '/metrics', {}, '')->{body};
for my $e (sort keys %images) {
    like($m, qr/^gpugate_endpoint_images_total\{endpoint="$e"\} $images{$e}$/m,
         "metrics: $images{$e} images on $e");
}
my @series = $m =~ /^gpugate_endpoint_images_total\{endpoint="(\w+)"\}/mg;
is("@series", 'images image_edits', 'metrics: no other endpoint has one');

check_rows();

done_testing();
