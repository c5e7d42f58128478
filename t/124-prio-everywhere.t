# A request's priority on every pool and every endpoint (issue 19's
# left-outs).
#
# 1. The router computes it once for every routed request: a plain
#    upstream's requests get $gpugate_priority and the ledger's priority
#    column as a tunnel pool's do (the key's default, X-Gpugate-Priority
#    up to the key's maximum), and a bad X-Gpugate-Priority is a 400
#    invalid_priority on both kinds of pool, with or without priority= on
#    the model line, for JSON and multipart endpoints alike, before
#    anything reaches the runtime; the header itself is not passed on.
# 2. gpugate_model ... priority=vllm|sglang puts it in the body exactly on
#    the endpoints whose requests that runtime reads a "priority" of: vLLM
#    chat, completions, responses, embeddings, rerank and score; SGLang
#    the first four.  Every other endpoint the router routes gets nothing
#    added and keeps the client's own member as sent.  The mock logs the
#    priority members of each body it gets ("priority POST PATH
#    NAME=VALUE").

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(http_request wait_until env_or_skip make_agent make_key
                   psql free_port);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugatePrio qw(prio_node keys_tool served status_agents);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t124-$$";

# at 2 by default, may ask up to 7
my ($key, $key_id) = make_key("tenant-$run", name => 'everywhere');
keys_tool('limit', $key_id, '--priority', 2, '--max-priority', 7);

my $mock = scale_mock('--ttft-ms', 0, '--tokens', 2);
my ($mock_log) = glob(($ENV{TMPDIR} || '/tmp')
                      . "/gpugate-scale-*/mock-$mock.log");
ok($mock_log && -e $mock_log, 'the mock runtime logs') or die;

my $hop = free_port();
my $ng = prio_node(
    ledger => 1,
    models => [ 't-vllm target=mock-model priority=vllm',
                't-none target=mock-model' ],
    # plain upstream "direct" through a hop that logs what it is given
    http => <<"HTTP",
    log_format hop '\$http_x_seq \$http_x_gpugate_priority';
    server {
        listen 127.0.0.1:$hop;
        access_log logs/hop.log hop;
        location / { proxy_pass http://127.0.0.1:$mock; }
    }
    upstream direct { server 127.0.0.1:$hop; }
HTTP
    location => join('', map { "            gpugate_model $_;\n" }
                     'p-vllm pool=direct target=mock-model priority=vllm',
                     'p-sglang pool=direct target=mock-model '
                     . 'priority=sglang',
                     'p-none pool=direct target=mock-model'));

my (undef, $alog) = scale_agent(name => "$run-a",
                                token => make_agent("$run-a"),
                                gateways => [$ng->port], runtime => $mock,
                                capacity => 4);
ok(wait_until(30, sub { status_agents($ng, $run)->{'-a'} }),
   'the agent is connected') or diag(slurp($alog));

my $B = 'gpugate-t124-boundary';

sub field { "--$B\r\nContent-Disposition: form-data; name=\"$_[0]\"\r\n"
            . "\r\n$_[1]\r\n" }

# each endpoint the router routes: its body (without the model), or a
# multipart upload
my %body = (
    '/v1/chat/completions' =>
        '"messages":[{"role":"user","content":"hi"}],"max_tokens":2',
    '/v1/completions'        => '"prompt":"hi","max_tokens":2',
    '/v1/responses'          => '"input":"hi","max_output_tokens":2',
    '/v1/embeddings'         => '"input":["hi"]',
    '/v1/rerank'             => '"query":"q","documents":["a","b"]',
    '/v1/score'              => '"text_1":"a","text_2":"b"',
    '/v1/messages'           =>
        '"messages":[{"role":"user","content":"hi"}],"max_tokens":2',
    '/v1/images/generations' => '"prompt":"a cat","n":1',
    '/v1/audio/speech'       => '"input":"hi","voice":"alloy"',
);
my @uploads = ('/v1/audio/transcriptions', '/v1/audio/translations',
               '/v1/images/edits');
my @json = sort keys %body;

# send(PATH, MODEL, HEADER, SEQ, EXTRA MEMBERS) -> (status, the priority
# lines the mock logged for it, body)
sub send_req {
    my ($path, $model, $hdr, $seq, $extra) = @_;
    my %h = (Authorization => "Bearer $key", 'X-Seq' => $seq);
    $h{'X-Gpugate-Priority'} = $hdr if defined $hdr;
    $h{'anthropic-version'} = '2023-06-01' if $path eq '/v1/messages';
    my $body;
    if ($body{$path}) {
        $h{'Content-Type'} = 'application/json';
        $body = qq({"model":"$model",) . ($extra // '') . "$body{$path}}";
    } else {
        $h{'Content-Type'} = "multipart/form-data; boundary=$B";
        $body = field('model', $model)
              . "--$B\r\nContent-Disposition: form-data; name=\"file\"; "
              . "filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
              . "RIFF0000WAVE\r\n"
              . ($path =~ /edits/ ? field('prompt', 'a hat') : '')
              . "--$B--\r\n";
    }
    my $mark = -s $mock_log;
    my $r = http_request($ng->port, 'POST', $path, \%h, $body, 10);
    # the mock logs a body before it answers it
    my $text = substr(slurp($mock_log), $mark);
    my @lines = $text =~ /^gpugate-mock-runtime: (priority .*)$/mg;
    return ($r->{status}, join("\n", @lines), $r->{body});
}

# --- 1. one priority, whatever the pool -----------------------------------

# (model, header, the priority the request has): the key's default, an
# asked one, one above the maximum; on a tunnel pool and plain upstreams,
# with and without priority= on the line
my @cases;
for my $model ('t-vllm', 't-none', 'p-vllm', 'p-sglang', 'p-none') {
    push @cases, [ $model, undef, 2 ], [ $model, 6, 6 ], [ $model, 9, 7 ];
}

my $n = 0;
for my $c (@cases) {
    my ($model, $hdr, $want) = @$c;
    my $seq = "s1-" . $n++;
    my ($st) = send_req('/v1/chat/completions', $model, $hdr, $seq);
    is($st, 200, "$model, " . ($hdr // 'no header') . ': served')
        or next;
}

ok(wait_until(10, sub { @{ served($ng) } >= @cases }),
   'every request is in the access log');
my %logged = map { $_->[0] => $_->[2] } @{ served($ng) };
$n = 0;
for my $c (@cases) {
    my ($model, $hdr, $want) = @$c;
    my $seq = "s1-" . $n++;
    is($logged{$seq} // '(none)', $want,
       "$model, " . ($hdr // 'no header') . ": \$gpugate_priority $want");
}

# the gateway's header is not passed to a plain upstream (as to an agent)
my @hop;
wait_until(10, sub {
    @hop = grep { /^s1-/ } split /\n/, slurp($ng->dir . '/logs/hop.log');
    @hop == 9 });
ok(@hop == 9 && !grep({ !/^\S+ -$/ } @hop),
   'a plain upstream gets no X-Gpugate-Priority') or diag(join "\n", @hop);

# the ledger: every row of these requests has its priority, by pool kind
my $rows = "SELECT model, count(*) FILTER (WHERE priority IS NULL),"
         . " string_agg(priority::text, ',' ORDER BY priority)"
         . " FROM usage_events WHERE api_key_id = $key_id"
         . " GROUP BY model ORDER BY model";
my $want = join "\n", map { "$_|0|2,6,7" }
                      sort qw(t-vllm t-none p-vllm p-sglang p-none);
ok(wait_until(15, sub { psql($rows) eq $want }),
   'the ledger stores the priority on plain upstreams as on the tunnel')
    or diag(psql($rows));

# a bad header: 400 before the runtime on every pool, model line and
# kind of body (it used to pass on a plain upstream's line without
# priority=, and on the endpoints that did not forward it)
my @bad = ([ 't-none', '/v1/chat/completions' ],
           [ 'p-none', '/v1/chat/completions' ],
           [ 'p-vllm', '/v1/messages' ],
           [ 'p-sglang', '/v1/rerank' ],
           [ 'p-none', '/v1/audio/transcriptions' ],
           [ 't-vllm', '/v1/images/edits' ]);
for my $c (@bad) {
    my ($model, $path) = @$c;
    for my $hdr ('10', 'high', '-1', '') {
        my $mark = -s $mock_log;
        my ($st, undef, $body) = send_req($path, $model, $hdr, 'bad');
        my $j = eval { decode_json($body) } || {};
        my $reached = substr(slurp($mock_log), $mark) =~ /\S/;
        # Anthropic's error shape on /v1/messages has no code
        my $code = $path eq '/v1/messages'
                   && ($j->{error}{message} // '') =~ /^X-Gpugate-Priority /
                   ? 'invalid_priority' : $j->{error}{code} // '';
        ok($st == 400 && $code eq 'invalid_priority' && !$reached,
           "$model $path, X-Gpugate-Priority \"$hdr\": 400 "
           . 'invalid_priority, nothing sent') or diag("$st $body");
    }
}

# --- 2. forwarded exactly where the runtime reads it ----------------------

# vLLM's and SGLang's request classes: which endpoints have "priority"
my %takes = (
    'p-vllm'   => { map { $_ => 1 } qw(/v1/chat/completions
                        /v1/completions /v1/responses /v1/embeddings
                        /v1/rerank /v1/score) },
    'p-sglang' => { map { $_ => 1 } qw(/v1/chat/completions
                        /v1/completions /v1/responses /v1/embeddings) },
    'p-none'   => {},
);

# asked 6: vLLM gets 3, SGLang 6; the client's own "Priority":1 is
# replaced where the gateway writes one, left as sent elsewhere
for my $model (sort keys %takes) {
    for my $path (@json) {
        my ($st, $got) = send_req($path, $model, 6, 'fwd', '"Priority":1,');
        my $v = $model eq 'p-vllm' ? 3 : 6;
        my $exp = $takes{$model}{$path} ? "priority POST $path priority=$v"
                                        : "priority POST $path Priority=1";
        ok($st == 200 && $got eq $exp,
           "$model $path: " . ($takes{$model}{$path}
                               ? "the runtime gets priority $v"
                               : 'nothing added, the client\'s kept'))
            or diag("$st [$got]");
    }
    for my $path (@uploads) {
        my ($st, $got) = send_req($path, $model, 6, 'fwd');
        ok($st == 200 && $got eq '', "$model $path: an upload, nothing added")
            or diag("$st [$got]");
    }
}

# the tunnel pool forwards on the same endpoints
for my $path ('/v1/embeddings', '/v1/score', '/v1/messages') {
    my ($st, $got) = send_req($path, 't-vllm', undef, 'fwd');
    my $exp = $path eq '/v1/messages' ? '' : "priority POST $path priority=7";
    ok($st == 200 && $got eq $exp,
       "tunnel pool, $path: " . ($exp ? 'priority 7 (default 2)' : 'none'))
        or diag("$st [$got]");
}

done_testing();
