# The agent reads the endpoints a vLLM or SGLang runtime serves from its
# route list (GET /openapi.json, asked with the model list) and
# advertises those (X-Gpugate-Endpoints): a runtime listing only chat and
# embeddings is given only their requests; a runtime without a route list
# (404) gets its dialect's set; "endpoints =" wins, and then the route
# list is never asked for.
#
# Test::More.  Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT,
# TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use JSON::PP qw(decode_json);

use GpugateTest qw(http_request wait_until env_or_skip make_agent make_key);
use GpugateScale qw(scale_node scale_mock scale_agent node_status slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t087-$$";
my ($key) = make_key("tenant-$run", name => 'agent-openapi');

my $ng = scale_node(name => $run, queue_timeout => '3s');
my $port = $ng->port;

# sub: a route list of chat and embeddings (and routes that are not
# endpoints); none: no route list; cfg: a route list, and endpoints =
my %mock = (
    sub  => scale_mock('--dialect', 'vllm', '--openapi',
                       '/health,/v1/models,/v1/chat/completions,'
                       . '/tokenize,/v1/embeddings'),
    none => scale_mock('--dialect', 'vllm'),
    cfg  => scale_mock('--dialect', 'vllm', '--openapi',
                       '/v1/chat/completions'),
);
my %log;

for my $k (sort keys %mock) {
    my $name = "$run-$k";
    (undef, $log{$k}) = scale_agent(
        name => $name, token => make_agent($name), gateways => [$port],
        runtime => $mock{$k}, capacity => 4,
        extra => ['--runtime-type', 'vllm',
                  $k eq 'cfg' ? ('--endpoints', 'rerank, score') : ()]);
}

sub agents {
    my $st = node_status($ng) or return {};
    my %e;
    for my $a (@{ $st->{tunnel}{agents} || [] }) {
        $e{$1} = $a if $a->{name} =~ /^\Q$run\E-(\w+)$/;
    }
    return \%e;
}

ok(wait_until(30, sub { keys %{ agents() } == 3 }), 'the agents connected')
    or diag(join '', map { slurp($log{$_}) } sort keys %log);

my $e = agents();
is("@{ $e->{sub}{endpoints} || [] }", 'chat embeddings',
   'a route list: exactly its endpoints are advertised');
is("@{ $e->{none}{endpoints} || [] }",
   'chat completions embeddings messages responses rerank score '
   . 'transcriptions translations',
   'no route list (404): the vllm set');
is("@{ $e->{cfg}{endpoints} || [] }", 'rerank score',
   'endpoints = wins over the route list');

like(slurp($log{sub}), qr/serves the endpoints: chat, embeddings/,
     'the agent logs the set it read');

# the mock counts GET /openapi.json under path="other"
sub asked {
    my ($k) = @_;
    my $m = http_request($mock{$k}, 'GET', '/metrics', {}, '')->{body} // '';
    my $n = 0;
    $n += $1 while $m =~ /^gpugate_mock_requests_total\{path="other"[^}]*\} (\d+)/mg;
    return $n;
}

ok(asked('sub') >= 1 && asked('none') >= 1,
   'the route list is asked of vllm runtimes');
is(asked('cfg'), 0, 'with endpoints = it is never asked');

# completions: only the agent without a route list serves them
my %before = map { $_ => $e->{$_}{requests} } keys %$e;
my $ok = 0;
for (1 .. 4) {
    my $r = http_request($port, 'POST', '/v1/completions',
                         { 'Content-Type' => 'application/json',
                           Authorization => "Bearer $key" },
                         '{"model":"mock-model","prompt":"hi"}', 15);
    $ok++ if $r->{status} == 200;
}
$e = agents();
ok($ok == 4 && $e->{none}{requests} - $before{none} == 4
   && $e->{sub}{requests} == $before{sub}
   && $e->{cfg}{requests} == $before{cfg},
   'completions go only to the agent that serves them')
    or diag("$ok ok; requests: ",
            join ' ', map { "$_=$e->{$_}{requests}" } sort keys %$e);

my $r = http_request($port, 'POST', '/v1/images/generations',
                     { 'Content-Type' => 'application/json',
                       Authorization => "Bearer $key" },
                     '{"model":"mock-model","prompt":"a cat"}', 15);
my $j = eval { decode_json($r->{body}) } || {};
ok($r->{status} == 503 && ($j->{error}{code} // '') eq 'no_capacity',
   'an endpoint none of them serves: 503 no_capacity')
    or diag("$r->{status} $r->{body}");

done_testing();
