# Every JSON inference endpoint beyond chat, completions and embeddings,
# through an upstream pool and through the agent's tunnel:
# /v1/messages (Anthropic), /v1/responses, /v1/rerank, /v1/score,
# /v1/images/generations and /v1/audio/speech.  Each answers in its API's
# shape, its usage lands in the ledger (endpoint, model, counts, stream),
# and each refuses with chat's checks: a model the key may not use (403),
# an unknown model (404), a body without the endpoint's own member (400
# naming it), another method (405); on /v1/messages in Anthropic's error
# shape, also the refusals of auth.  Anthropic's stream and the responses
# stream are counted from their own events.
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

use GpugateTest qw(start_nginx http_request http_read psql make_key
                   wait_until env_or_skip free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
my $mock_bin = "$root/build/bin/gpugate-mock-runtime";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $conninfo = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $dir = tempdir('gpugate-ep-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $gw = 'ep-' . $$ . '-' . time;
my $json = JSON::PP->new->canonical;

my $mock_port = free_port();
my $mock_pid = fork // die;
if (!$mock_pid) {
    exec $mock_bin, '--listen', "127.0.0.1:$mock_port", '--models',
         'mock-model', '--log-file', "$dir/mock.log", '--ttft-ms', '0',
         '--token-delay-ms', '0', '--tokens', '4';
    exit 1;
}
wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mock_port") })
    or BAIL_OUT('mock runtime did not start');

my $token = make_agent('gpu-ep');
open my $tf, '>', "$dir/token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/token";

# "mock-model" goes to an upstream pool, "tunnel-model" to the agent,
# which asks the same mock for "mock-model"
my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=kep:1m ttl=60s;
    gpugate_auth_postgres "$conninfo";
    gpugate_usage_ledger "$conninfo" batch=1 interval=100ms gateway=$gw;
    upstream runtime { server 127.0.0.1:$mock_port; keepalive 4; }
    upstream agents { gpugate_tunnel queue=16 queue_timeout=5s; }
    gpugate_model mock-model pool=runtime;
    gpugate_model tunnel-model pool=agents target=mock-model;
    gpugate_model other-model pool=runtime;
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
         '--name', 'gpu-ep', '--token-file', "$dir/token",
         '--runtime', "http://127.0.0.1:$mock_port", '--capacity', 8,
         '--spare', 2;
    exit 1;
}

END {
    kill 'TERM', $agent_pid if $agent_pid;
    kill 'TERM', $mock_pid if $mock_pid;
}

my ($key) = make_key('ep-tenant');

sub post {
    my ($path, $body, %h) = @_;
    my %all = ('Content-Type' => 'application/json',
               Authorization => "Bearer $key",
               'anthropic-version' => '2023-06-01', %h);
    delete $all{$_} for grep { !defined $all{$_} } keys %all;
    return http_request($port, 'POST', $path, \%all,
                        ref $body ? $json->encode($body) : $body, 10);
}

sub decode { my $v = eval { $json->decode($_[0]) }; $v }

# the ledger row of the last 200 of (endpoint, model)
sub row {
    my ($endpoint, $model) = @_;
    my $where = "gateway = '$gw' AND endpoint = '$endpoint' "
              . "AND model = '$model' AND status = 200";
    my $r = '';
    wait_until(10, sub {
        $r = psql("SELECT prompt_tokens || ' ' || completion_tokens || ' ' "
                  . "|| stream || ' ' || partial FROM usage_events "
                  . "WHERE $where ORDER BY id DESC LIMIT 1");
        return $r ne '';
    });
    return $r;
}

ok(wait_until(15, sub {
       post('/v1/rerank', { model => 'tunnel-model', query => 'q',
                            documents => ['a'] })->{status} == 200 }),
   'the agent is connected');

# the mock counts the words of every string in the endpoint's member:
# "user" and "hi there" are 3; 4 tokens out (--tokens 4)
my $msgs = [{ role => 'user', content => 'hi there' }];

for my $model ('mock-model', 'tunnel-model') {
    my $via = $model eq 'mock-model' ? 'pool' : 'tunnel';

    # --- Anthropic messages --------------------------------------------

    my $r = post('/v1/messages', { model => $model, max_tokens => 16,
                                   messages => $msgs });
    my $m = decode($r->{body}) || {};
    ok($r->{status} == 200 && ($m->{type} // '') eq 'message'
       && ($m->{content}[0]{type} // '') eq 'text'
       && $m->{usage}{input_tokens} == 3 && $m->{usage}{output_tokens} == 4,
       "$via: /v1/messages answers an Anthropic message")
        or diag $r->{status}, ' ', $r->{body};
    is(row('/v1/messages', $model), '3 4 false false',
       "$via: its usage in the ledger");

    $r = post('/v1/messages', { model => $model, max_tokens => 16,
                                stream => JSON::PP::true,
                                messages => $msgs });
    my @events = $r->{body} =~ /^event: (\S+)\ndata: /mg;
    ok($r->{status} == 200
       && ($r->{headers}{'content-type'} // '') =~ m{^text/event-stream}
       && "@events" eq 'message_start content_block_start ping '
                     . 'content_block_delta content_block_delta '
                     . 'content_block_delta content_block_delta '
                     . 'content_block_stop message_delta message_stop',
       "$via: the Anthropic stream passes with its event: lines")
        or diag $r->{body};
    is(row('/v1/messages', $model), '3 4 true false',
       "$via: Anthropic stream: input from message_start, output from "
       . "message_delta, complete at message_stop");

    $r = post('/v1/messages', { model => $model, max_tokens => 16,
                                messages => $msgs },
              'anthropic-version' => undef);
    like($r->{body}, qr/anthropic-version: header is required/,
         "$via: without anthropic-version the runtime refuses "
         . "(the header is what the runtime sees)");

    # --- responses -----------------------------------------------------

    $r = post('/v1/responses', { model => $model, input => 'hello you' });
    $m = decode($r->{body}) || {};
    ok($r->{status} == 200 && ($m->{object} // '') eq 'response'
       && ($m->{output}[0]{content}[0]{type} // '') eq 'output_text',
       "$via: /v1/responses answers a response");
    is(row('/v1/responses', $model), '2 4 false false',
       "$via: its usage in the ledger");

    $r = post('/v1/responses', { model => $model, input => 'hello you',
                                 stream => JSON::PP::true });
    @events = $r->{body} =~ /^event: (\S+)\ndata: /mg;
    ok($r->{status} == 200 && @events == 9
       && $events[0] eq 'response.created'
       && $events[-1] eq 'response.completed'
       && (grep { $_ eq 'response.output_text.delta' } @events) == 4,
       "$via: the responses stream passes its typed events")
        or diag $r->{body};
    is(row('/v1/responses', $model), '2 4 true false',
       "$via: responses stream: usage from response.completed");

    # --- rerank, score ------------------------------------------------

    $r = post('/v1/rerank', { model => $model, query => 'best fruit',
                              documents => ['apple pie', 'a car'] });
    $m = decode($r->{body}) || {};
    ok($r->{status} == 200 && @{ $m->{results} || [] } == 2,
       "$via: /v1/rerank ranks each document");
    is(row('/v1/rerank', $model), '6 0 false false',
       "$via: rerank's total_tokens counted as input");

    $r = post('/v1/score', { model => $model, text_1 => 'a b',
                             text_2 => ['c', 'd e'] });
    $m = decode($r->{body}) || {};
    ok($r->{status} == 200 && @{ $m->{data} || [] } == 2,
       "$via: /v1/score scores each pair");
    is(row('/v1/score', $model), '5 0 false false',
       "$via: score's prompt_tokens counted");

    # --- images --------------------------------------------------------

    $r = post('/v1/images/generations', { model => $model,
                                          prompt => 'a cat', n => 3 });
    $m = decode($r->{body}) || {};
    ok($r->{status} == 200 && @{ $m->{data} || [] } == 3
       && $m->{data}[0]{b64_json},
       "$via: /v1/images/generations answers the images");
    is(row('/v1/images/generations', $model), '0 3 false false',
       "$via: no usage from the runtime: 3 images counted");

    # --- speech ----------------------------------------------------------

    # 7 characters: an escape, a 2-byte and a 4-byte UTF-8 character
    my $speech = '{"model":"' . $model . '","voice":"alloy",'
               . "\"input\":\"h\\u00e9llo \xf0\x9f\x98\x80\"}";
    $r = post('/v1/audio/speech', $speech);
    my $direct = http_request($mock_port, 'POST', '/v1/audio/speech',
                              { 'Content-Type' => 'application/json' },
                              '{"model":"mock-model","voice":"alloy",'
                              . "\"input\":\"h\\u00e9llo \xf0\x9f\x98\x80\"}");
    ok($r->{status} == 200
       && ($r->{headers}{'content-type'} // '') eq 'audio/mpeg'
       && length($r->{body}) > 1000 && $r->{body} eq $direct->{body},
       "$via: /v1/audio/speech passes the audio byte for byte")
        or diag $r->{status}, ' ', length $r->{body};
    is(row('/v1/audio/speech', $model), '7 0 false false',
       "$via: speech counted in characters of input");
}

# --- refusals: every endpoint, in its API's error shape --------------------

my ($narrow) = make_key('ep-tenant', models => ['other-model']);

my %bodies = (
    '/v1/messages'           => { max_tokens => 4, messages => $msgs },
    '/v1/responses'          => { input => 'x' },
    '/v1/rerank'             => { query => 'q', documents => ['a'] },
    '/v1/score'              => { text_1 => 'a', text_2 => 'b' },
    '/v1/images/generations' => { prompt => 'a cat' },
    '/v1/audio/speech'       => { input => 'x', voice => 'alloy' },
);
my %need = ('/v1/messages' => 'messages', '/v1/responses' => 'input',
            '/v1/rerank' => 'query', '/v1/score' => 'text_1',
            '/v1/images/generations' => 'prompt',
            '/v1/audio/speech' => 'input');

# status, error type, and whether the param is named, in either shape
sub refusal {
    my ($path, $r) = @_;
    my $e = decode($r->{body}) || {};
    if ($path eq '/v1/messages') {
        return undef unless ($e->{type} // '') eq 'error';
        return [$r->{status}, $e->{error}{type} // '',
                $e->{error}{message} // ''];
    }
    return [$r->{status}, $e->{error}{type} // '',
            ($e->{error}{param} // '') . ': ' . ($e->{error}{message} // '')];
}

for my $path (sort keys %bodies) {
    my $anthropic = $path eq '/v1/messages';
    my $b = $bodies{$path};

    my $e = refusal($path, post($path, { %$b, model => 'mock-model' },
                                Authorization => "Bearer $narrow"));
    ok($e && $e->[0] == 403
       && $e->[1] eq 'permission_error'
       && $e->[2] =~ /mock-model/,
       "$path: a model the key may not use: 403") or diag explain $e;

    $e = refusal($path, post($path, { %$b, model => 'nope-model' }));
    ok($e && $e->[0] == 404
       && $e->[1] eq ($anthropic ? 'not_found_error'
                                 : 'invalid_request_error')
       && $e->[2] =~ /nope-model/,
       "$path: an unknown model: 404") or diag explain $e;

    my %short = %$b;
    delete $short{$need{$path}};
    $e = refusal($path, post($path, { %short, model => 'mock-model' }));
    ok($e && $e->[0] == 400 && $e->[1] eq 'invalid_request_error'
       && $e->[2] =~ /^\Q$need{$path}\E: /,
       "$path: no '$need{$path}': 400 naming it") or diag explain $e;

    my $r = http_request($port, 'GET', $path,
                         { Authorization => "Bearer $key" });
    $e = refusal($path, $r);
    ok($e && $e->[0] == 405 && ($r->{headers}{allow} // '') eq 'POST',
       "$path: GET refused with 405") or diag explain $e;
}

{
    my $r = http_request($port, 'POST', '/v1/messages',
                         { 'Content-Type' => 'application/json',
                           'x-api-key' => 'sk-gg-wrong' },
                         $json->encode({ model => 'mock-model',
                                         messages => $msgs }));
    my $e = decode($r->{body}) || {};
    ok($r->{status} == 401 && ($e->{type} // '') eq 'error'
       && ($e->{error}{type} // '') eq 'authentication_error',
       '/v1/messages: a bad x-api-key is refused in Anthropic\'s shape');

    $r = post('/v1/messages', { model => 'mock-model', max_tokens => 4,
                                messages => $msgs },
              Authorization => undef, 'x-api-key' => $key);
    is($r->{status}, 200, '/v1/messages: x-api-key authenticates');

    $r = post('/v1/rerank', '{"model":"mock-model","query":');
    $e = decode($r->{body}) || {};
    ok($r->{status} == 400 && $e->{error} && !exists $e->{type},
       'OpenAI paths keep OpenAI\'s error shape');
}

# --- metrics: the endpoint label --------------------------------------------

{
    my $page = http_request($port, 'GET', '/metrics')->{body};
    my %n = map { /^(\S+) (\d+)$/ ? ($1 => $2) : () } split /\n/, $page;

    # per endpoint above: 2 pool + 2 tunnel answers of 200, more for
    # messages (x-api-key) and rerank (the connection wait)
    ok(($n{'gpugate_endpoint_requests_total{endpoint="responses",code="2xx"}'} // 0) == 4
       && ($n{'gpugate_endpoint_requests_total{endpoint="speech",code="2xx"}'} // 0) == 2
       && ($n{'gpugate_endpoint_requests_total{endpoint="messages",code="4xx"}'} // 0) >= 6
       && ($n{'gpugate_endpoint_prompt_tokens_total{endpoint="speech"}'} // 0) == 14
       && ($n{'gpugate_endpoint_completion_tokens_total{endpoint="images"}'} // 0) == 6
       && ($n{'gpugate_endpoint_prompt_tokens_total{endpoint="messages"}'} // 0) >= 12,
       '/metrics counts requests and usage by endpoint')
        or diag join "\n", grep { /gpugate_endpoint_/ } split /\n/, $page;
}

unlike($ng->log, qr/exited on signal|\[(alert|crit|emerg)\]/,
       'no worker crashed, nothing alarming logged');

done_testing();
