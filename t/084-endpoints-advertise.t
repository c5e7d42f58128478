# The agent advertises the endpoints its runtime serves (X-Gpugate-
# Endpoints, "endpoints =" in its configuration, else its runtime_type's
# set) and the balancer sends a request only to an agent that serves its
# endpoint: two agents of one model, one for chat/completions/messages and
# one for embeddings/rerank, each take only their own endpoints' requests;
# an endpoint neither serves gets the no-capacity 503 in its API's error
# shape; /status shows each agent's set; a bad set is refused by the
# agent's --check and by the gateway's handshake.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use JSON::PP qw(decode_json);

use GpugateTest qw(http_request wait_until env_or_skip make_agent make_key
                   tunnel_connect);
use GpugateScale qw(scale_node scale_mock scale_agent node_status slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $agent_bin = "$FindBin::Bin/../build/bin/gpugate-agent";
my $run = "t084-$$";
my ($key) = make_key("tenant-$run", name => 'endpoints-advertise');

my $ng = scale_node(name => $run, queue_timeout => '3s');
my $port = $ng->port;

# one agent per endpoint set, each with a runtime of its own
my %set = (
    gen   => 'chat, completions, messages',
    embed => 'embeddings,rerank',
);
my %agent_log;

for my $k (sort keys %set) {
    my $name = "$run-$k";
    my (undef, $log) = scale_agent(
        name => $name, token => make_agent($name), gateways => [$port],
        runtime => scale_mock('--ttft-ms', 0, '--token-delay-ms', 0),
        capacity => 4, extra => ['--endpoints', $set{$k}]);
    $agent_log{$k} = $log;
}

# the status entries of this file's agents, by set
sub agents {
    my $st = node_status($ng) or return {};
    my %e;
    for my $a (@{ $st->{tunnel}{agents} || [] }) {
        $e{$1} = $a if $a->{name} =~ /^\Q$run\E-(\w+)$/;
    }
    return \%e;
}

ok(wait_until(30, sub { my $e = agents(); $e->{gen} && $e->{embed} }),
   'both agents connected')
    or diag(slurp($agent_log{gen}) . slurp($agent_log{embed}));

# --- 1. /status shows what each advertises ------------------------------

my $e = agents();
is_deeply($e->{gen}{endpoints}, [qw(chat completions messages)],
          'status: the chat agent serves chat, completions, messages');
is_deeply($e->{embed}{endpoints}, [qw(embeddings rerank)],
          'status: the embedding agent serves embeddings, rerank');

like(slurp($ng->dir . '/logs/error.log'),
     qr/agent "\Q$run\E-embed" connected, .*endpoints embeddings, rerank/,
     'the gateway logs the endpoints at the handshake');

# --- 2. each request goes to an agent that serves its endpoint ----------

my %body = (
    '/v1/chat/completions' =>
        '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}',
    '/v1/completions' => '{"model":"mock-model","prompt":"hi"}',
    '/v1/messages' => '{"model":"mock-model","max_tokens":8,'
                    . '"messages":[{"role":"user","content":"hi"}]}',
    '/v1/embeddings' => '{"model":"mock-model","input":"hi"}',
    '/v1/rerank' => '{"model":"mock-model","query":"q",'
                  . '"documents":["a","b"]}',
    '/v1/score' => '{"model":"mock-model","text_1":"a","text_2":"b"}',
    '/v1/responses' => '{"model":"mock-model","input":"hi"}',
    '/v1/images/generations' => '{"model":"mock-model","prompt":"a cat"}',
    '/v1/audio/speech' => '{"model":"mock-model","input":"hi",'
                        . '"voice":"alloy"}',
);

sub call {
    my ($path) = @_;
    return http_request($port, 'POST', $path,
                        { 'Content-Type' => 'application/json',
                          'anthropic-version' => '2023-06-01',
                          Authorization => "Bearer $key" },
                        $body{$path}, 15);
}

my %before = map { $_ => $e->{$_}{requests} } keys %$e;
my @gen = ('/v1/chat/completions', '/v1/completions', '/v1/messages');
my @embed = ('/v1/embeddings', '/v1/rerank');
my %status;

for my $round (1 .. 3) {
    for my $path (@gen, @embed) {
        my $r = call($path);
        $status{$path}{ $r->{status} }++;
        diag("$path: $r->{status} $r->{body}") if $r->{status} != 200;
    }
}

is_deeply(\%status, { map { $_ => { 200 => 3 } } @gen, @embed },
          'every served endpoint answers 200, three times each');

$e = agents();
is($e->{gen}{requests} - $before{gen}, 9,
   'the chat agent took the 9 chat, completions and messages requests');
is($e->{embed}{requests} - $before{embed}, 6,
   'the embedding agent took the 6 embeddings and rerank requests');

# --- 3. an endpoint no agent serves: the no-capacity 503 -----------------

for my $path ('/v1/score', '/v1/responses', '/v1/images/generations',
              '/v1/audio/speech')
{
    my $r = call($path);
    my $j = eval { decode_json($r->{body}) } || {};
    ok($r->{status} == 503 && ($j->{error}{code} // '') eq 'no_capacity'
       && ($j->{error}{message} // '') =~ /at this endpoint/,
       "$path: served by no agent: 503 no_capacity")
        or diag("$r->{status} $r->{body}");
}

$e = agents();
is($e->{gen}{requests} + $e->{embed}{requests} - $before{gen}
   - $before{embed}, 15, 'no refused request reached an agent');

# --- 4. a bad set: the agent's --check, the gateway's handshake ----------

my $tf = $ng->dir . '/agent.token';
{
    open my $fh, '>', $tf or die;
    print $fh "t0ken\n";
    close $fh;
    chmod 0600, $tf;
}

sub check {
    my ($set) = @_;
    my $out = `$agent_bin --check --gateway http://127.0.0.1:1/gpugate/tunnel --name x --token-file $tf --endpoints '$set' 2>&1`;
    return ($? >> 8, $out);
}

for my $bad ('chat, chta', 'Chat', 'chat;rerank', '/v1/embeddings', '') {
    my ($rc, $out) = check($bad);
    ok($rc == 2 && $out =~ /--endpoints: /,
       "agent --check refuses endpoints \"$bad\"") or diag("$rc $out");
}

for my $good (' *', 'image_edits, speech, transcriptions, translations') {
    my ($rc, $out) = check($good);
    is($rc, 0, "agent --check takes endpoints \"$good\"") or diag($out);
}

{
    my $name = "$run-raw";
    my $token = make_agent($name);
    for my $bad ('chat,,rerank', 'Chat', '', 'chat rerank') {
        my ($s, $r) = tunnel_connect($port, $name, $token,
                                     'X-Gpugate-Endpoints' => $bad);
        ok(!$s && $r->{status} == 400,
           "handshake with X-Gpugate-Endpoints \"$bad\": 400")
            or diag($r->{status});
    }
    my ($s, $r) = tunnel_connect($port, $name, $token,
                                 'X-Gpugate-Endpoints' => 'video, score');
    ok($s && $r->{status} == 101,
       'an unknown name is skipped: the handshake goes through');
    ok(wait_until(10, sub {
            my $a = agents()->{raw};
            $a && "@{ $a->{endpoints} }" eq 'score';
        }), 'and that agent is listed with score alone');
    close $s if $s;
}

done_testing();
