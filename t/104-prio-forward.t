# A request's priority forwarded to the runtime (gpugate_model ...
# priority=vllm|sglang): the value the mock runtime gets in the body's
# "priority" per mapping (vLLM 9..0, SGLang 0..9), from the key's default
# and from X-Gpugate-Priority up to the key's maximum; on a tunnel pool
# and a plain upstream; chat, completions, responses and embeddings (every
# endpoint: t/124); jobs' lines
# sent by the batch runner (their priority as the header); a client's own
# "priority" members (duplicates, other cases) replaced by one; a model
# line without the option sends none and leaves the client's as it is;
# bad priority= values refused by nginx -t.  The mock logs the priority
# members of each body it gets ("priority POST PATH NAME=VALUE [dup]").

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(http_request wait_until env_or_skip make_agent make_key);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugatePrio qw(prio_node keys_tool status_agents);
use GpugateBatch qw(batch_node api batch_mark batch_trail);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

# --- 1. bad priority= values: nginx -t names them ------------------------

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";

sub nginx_t {
    my ($model) = @_;
    my $load = join '', map { "load_module $_;\n" }
               split ' ', $ENV{TEST_NGINX_LOAD_MODULES};
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print $fh <<"CONF";
$load
error_log $dir/logs/error.log;
pid $dir/logs/nginx.pid;
events { worker_connections 16; }
http {
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    upstream llama { server 127.0.0.1:1; }
    server {
        listen 127.0.0.1:1;
        location /v1/ {
            gpugate_openai on;
            gpugate_model $model;
            proxy_pass http://\$gpugate_pool;
        }
    }
}
CONF
    close $fh;
    my $out = `$nginx -t -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    return ($? >> 8, $out);
}

for my $bad ('VLLM', '', 'fifo', '9', 'vllm,sglang') {
    my ($rc, $out) = nginx_t("m pool=llama priority=$bad");
    ok($rc != 0 && $out =~ /invalid "priority=\Q$bad\E", expected (?#
                            )priority=vllm, priority=sglang or priority=off/,
       "priority=$bad refused at nginx -t") or diag($out);
}

for my $good ('vllm', 'sglang', 'off') {
    my ($rc, $out) = nginx_t("m pool=llama target=t price=1/2 "
                             . "priority=$good");
    is($rc, 0, "priority=$good beside pool=, target= and price= passes")
        or diag($out);
}

# --- 2. a node: tunnel pool "agents", plain upstream "direct" ------------

my $run = "t104-$$";
my ($key, $key_id) = make_key("tenant-$run", name => 'fwd');
my ($plain) = make_key("tenant-$run", name => 'fwd-plain');

# the key is at 2 by default and may ask up to 7; the other has no
# settings: 5, and 5 at most
keys_tool('limit', $key_id, '--priority', 2, '--max-priority', 7);

my $mock = scale_mock('--ttft-ms', 0, '--tokens', 2);
my ($mock_log) = glob(($ENV{TMPDIR} || '/tmp')
                      . "/gpugate-scale-*/mock-$mock.log");
ok($mock_log && -e $mock_log, 'the mock runtime logs') or die;

my $ng = prio_node(
    models => [ 'fwd-vllm target=mock-model priority=vllm',
                'fwd-sglang target=mock-model priority=sglang',
                'nofwd target=mock-model',
                'off target=mock-model priority=off' ],
    http => "    upstream direct { server 127.0.0.1:$mock; }\n",
    location => '            gpugate_model plain-sglang pool=direct '
              . "target=mock-model priority=sglang;\n"
              . '            gpugate_model plain-nofwd pool=direct '
              . "target=mock-model;\n");

my $agent = "$run-a";
my (undef, $alog) = scale_agent(name => $agent, token => make_agent($agent),
                                gateways => [$ng->port], runtime => $mock,
                                capacity => 4);
ok(wait_until(30, sub { status_agents($ng, $run)->{'-a'} }),
   'the agent is connected') or diag(slurp($alog));

my %body = (
    '/v1/chat/completions' => '"messages":[{"role":"user","content":"hi"}]',
    '/v1/completions'      => '"prompt":"hi"',
    '/v1/responses'        => '"input":"hi"',
    '/v1/embeddings'       => '"input":"hi"',
);

# send(PATH, MODEL, KEY, HEADER, EXTRA MEMBERS) -> (status, the priority
# lines the mock logged for it, body)
sub send_req {
    my ($path, $model, $k, $hdr, $extra) = @_;
    my %h = ('Content-Type' => 'application/json',
             Authorization => "Bearer $k");
    $h{'X-Gpugate-Priority'} = $hdr if defined $hdr;
    my $mark = -s $mock_log;
    my $r = http_request($ng->port, 'POST', $path, \%h,
                         qq({"model":"$model",) . ($extra // '')
                         . qq($body{$path},"max_tokens":2}), 10);
    # the mock logs a body before it answers it
    my $text = substr(slurp($mock_log), $mark);
    my @lines = $text =~ /^gpugate-mock-runtime: (priority .*)$/mg;
    return ($r->{status}, join("\n", @lines), $r->{body});
}

my $chat = '/v1/chat/completions';

# the key's default (2), asked values, above the maximum (7 given)
my @cases = (
    [ 'fwd-vllm', $key, undef, 7, 'vllm, the key\'s default 2' ],
    [ 'fwd-vllm', $key, 6, 3, 'vllm, asked 6' ],
    [ 'fwd-vllm', $key, 0, 9, 'vllm, asked 0' ],
    [ 'fwd-vllm', $key, 9, 2, 'vllm, asked 9 above the maximum 7' ],
    [ 'fwd-vllm', $plain, undef, 4, 'vllm, a key without settings: 5' ],
    [ 'fwd-sglang', $key, undef, 2, 'sglang, the key\'s default 2' ],
    [ 'fwd-sglang', $key, 7, 7, 'sglang, asked 7' ],
    [ 'fwd-sglang', $key, 8, 7, 'sglang, asked 8 above the maximum' ],
    [ 'fwd-sglang', $plain, 1, 1, 'sglang, the other key asking 1' ],
    [ 'plain-sglang', $key, undef, 2, 'plain upstream, sglang, default' ],
    [ 'plain-sglang', $key, 4, 4, 'plain upstream, sglang, asked 4' ],
);

for my $c (@cases) {
    my ($model, $k, $hdr, $want, $name) = @$c;
    my ($st, $got) = send_req($chat, $model, $k, $hdr);
    ok($st == 200 && $got eq "priority POST $chat priority=$want",
       "$name: the runtime gets priority $want") or diag("$st [$got]");
}

for my $path ('/v1/completions', '/v1/responses') {
    my ($st, $got) = send_req($path, 'fwd-vllm', $key, 5);
    ok($st == 200 && $got eq "priority POST $path priority=4",
       "$path: priority too") or diag("$st [$got]");
}

{
    # vLLM's and SGLang's embedding requests take one too (t/124: every
    # endpoint)
    my ($st, $got) = send_req('/v1/embeddings', 'fwd-vllm', $key, 5);
    ok($st == 200 && $got eq 'priority POST /v1/embeddings priority=4',
       'embeddings: priority too') or diag("$st [$got]");
}

# --- 3. the client's own priority members --------------------------------

for my $c ([ 'fwd-vllm', 'tunnel' ], [ 'plain-sglang', 'plain upstream' ]) {
    my ($model, $where) = @$c;
    my $want = $model eq 'fwd-vllm' ? 5 : 4;
    my ($st, $got) = send_req($chat, $model, $key, 4,
                              '"priority":-100,"PRIORITY":0,'
                              . '"Priority":{"x":1},"priority":0,');
    ok($st == 200 && $got eq "priority POST $chat priority=$want",
       "$where: the client's priority, its duplicates and case variants "
       . "are replaced by one") or diag("$st [$got]");

    ($st, $got) = send_req($chat, $model, $key, undef, '"pRiOrItY":9,');
    ok($st == 200 && $got eq "priority POST $chat priority="
                             . ($model eq 'fwd-vllm' ? 7 : 2),
       "$where: a client asking 9 in the body gets its key's default")
        or diag("$st [$got]");
}

{
    my ($st, $got) = send_req($chat, 'fwd-vllm', $key, undef,
                              '"metadata":{"priority":1},');
    ok($st == 200 && $got eq "priority POST $chat priority=7",
       'a nested priority member is not the request\'s')
        or diag("$st [$got]");
}

# --- 4. model lines without the option -----------------------------------

for my $model ('nofwd', 'off', 'plain-nofwd') {
    my ($st, $got) = send_req($chat, $model, $key, 9);
    ok($st == 200 && $got eq '', "$model: no priority sent")
        or diag("$st [$got]");

    ($st, $got) = send_req($chat, $model, $key, undef,
                           '"priority":3,"Priority":1,');
    ok($st == 200 && $got =~ /^priority POST \Q$chat\E /
       && $got =~ / priority=3/ && $got =~ / Priority=1/,
       "$model: the client's own members are left as they are")
        or diag("$st [$got]");
}

# --- 5. a bad header: 400 before the runtime, on both kinds of pool ------

for my $model ('fwd-vllm', 'plain-sglang') {
    for my $bad ('10', 'high') {
        my ($st, $got, $body) = send_req($chat, $model, $key, $bad);
        my $j = eval { decode_json($body) } || {};
        ok($st == 400 && ($j->{error}{code} // '') eq 'invalid_priority'
           && $got eq '',
           "$model, X-Gpugate-Priority \"$bad\": 400 invalid_priority, "
           . 'nothing sent') or diag("$st $body [$got]");
    }
}

# --- 6. jobs: the runner's lines get it as a client's requests do --------

my $bn = batch_node(name => "$run-b", workers => 1,
                    runner => 'concurrency=1 interval=100ms lease=20s',
                    model => 'mock-model pool=agents priority=vllm');
my (undef, $blog) = scale_agent(name => "$run-b", token =>
    make_agent("$run-b"), gateways => [$bn->port], runtime => $mock,
    capacity => 2);

# (job priority, what the runtime gets): the lowest, 0, without one (the
# runner sends lines that ask none at 0, docs/batch.md), 9 capped at the
# key's maximum 7
for my $c ([ 3, 6 ], [ undef, 9 ], [ 9, 2 ]) {
    my ($prio, $want) = @$c;
    my $mark = -s $mock_log;
    batch_mark($bn);
    my ($r, $j) = api($bn->port, $key, 'POST', '/v1/jobs',
                      { endpoint => '/v1/chat/completions',
                        defined $prio ? (priority => $prio) : (),
                        body => { model => 'mock-model', max_tokens => 2,
                                  priority => 0, messages => [
                                      { role => 'user', content => 'hi' }
                                  ] } });
    my $done = wait_until(30, sub {
        my (undef, $x) = api($bn->port, $key, 'GET', "/v1/jobs/$j->{id}");
        ($x->{status} // '') =~ /^(completed|failed)$/ ? $x->{status} : 0;
    });
    my $text = substr(slurp($mock_log), $mark);
    my @lines = $text =~ /^gpugate-mock-runtime: (priority .*)$/mg;
    ok($done eq 'completed'
       && "@lines" eq "priority POST /v1/chat/completions priority=$want",
       'a job ' . (defined $prio ? "of priority $prio" : 'without one')
       . ": the runtime gets $want, not the body's 0")
        or diag("$r->{status} $done [@lines] job " . ($j->{id} // "?") . "\n"
                . "--- the mock's log since the job was posted:\n$text"
                . batch_trail($bn, $key_id)
                . "--- the agent's log:\n" . slurp($blog));
}

done_testing();
