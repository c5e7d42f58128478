# Agent choice beyond load: an agent whose requests fail (its runtime
# answers 500) is cooled down after failures= in a row, each of its
# failed requests retried on the other agent (proxy_next_upstream: the
# tunnel never hands a retry to an agent it already tried), takes nothing
# while cooled, then one request on trial (a failure cools it again);
# the TTFT moving average steers requests away from a slow agent; /status
# and /metrics show the averages, the cooldown and the weights.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use JSON::PP qw(decode_json);

use GpugateTest qw(http_send http_read http_request wait_until env_or_skip
                   make_agent make_key);
use GpugateScale qw(scale_mock scale_agent slurp node_metrics ADMIN);
use GpugatePrio qw(prio_node served status_agents);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t102-$$";
my ($key) = make_key("tenant-$run", name => 'score');

# Two pools, each with the weights of what it shows.  "agents" (the
# cooldown): error_weight=0, so the cooldown alone keeps the failing agent
# out, and a TTFT step no answer reaches, so that the two agents tie and
# take turns however slowly a loaded machine answers (a 100 ms step let a
# slow first 500 move the failing agent behind the other one).  "ttft"
# (the TTFT average, listed first: /status scores agents by the first
# pool's weights): a 300 ms step, which the 1000 ms agent's average passes
# after three requests (the averages start at 0 and move 1/8 of the way
# to each sample) and the other's stays far below however loaded.
my $ng = prio_node(
    tunnel => 'failures=3 cooldown=5s ttft_step=60s error_weight=0',
    models => ['mock-model'],
    http => "    upstream ttft {\n"
          . "        gpugate_tunnel queue=64 ttft_step=300ms "
          . "error_weight=0;\n    }\n",
    location => "            gpugate_model ttft-model pool=ttft;\n"
              . "            proxy_next_upstream error timeout http_500 "
              . "non_idempotent;\n"
              . "            proxy_next_upstream_tries 2;\n");

my %mock = (
    bad  => scale_mock('--fail-status', 500),
    good => scale_mock(),
    slow => scale_mock('--models', 'ttft-model', '--ttft-ms', 1000),
    fast => scale_mock('--models', 'ttft-model'),
);
my %log;
for my $k (sort keys %mock) {
    my $name = "$run-$k";
    (undef, $log{$k}) = scale_agent(
        name => $name, token => make_agent($name), gateways => [$ng->port],
        runtime => $mock{$k}, capacity => 4);
}

ok(wait_until(30, sub { keys %{ status_agents($ng, "$run-") } == 4 }),
   'four agents connected') or diag(join '', map { slurp($_) } values %log);

sub agents { status_agents($ng, "$run-") }

sub chat {
    my ($model, $n) = @_;
    my $ok = 0;
    for (1 .. $n) {
        my $r = http_read(http_send($ng->port, 'POST',
                          '/v1/chat/completions',
                          { 'Content-Type' => 'application/json',
                            Authorization => "Bearer $key" },
                          '{"model":"' . $model . '","max_tokens":2,'
                          . '"messages":[{"role":"user","content":"hi"}]}'),
                          15);
        $ok++ if $r->{status} == 200;
    }
    return $ok;
}

# --- 1. failures in a row: retried on the other, then cooled down ----------

# until it is cooled: the two agents take turns while they tie, but a
# turn can be lost (no idle tunnel of that agent in the worker at that
# moment, e.g. one out for a ping), so six requests need not hold three
my ($sent, $ok) = (0, 0);
until ((agents()->{bad}{cooldowns} // 0) >= 1 || $sent >= 20) {
    $ok += chat('mock-model', 1);
    $sent++;
}
is($ok, $sent, "$sent requests answered 200 until the failing agent was "
               . 'cooled: each failure retried on the other agent');

my $a = agents();
is($a->{bad}{requests}, 3, 'the failing agent took 3 requests, then no more');
ok($a->{bad}{cooldown_left_ms} > 0 && $a->{bad}{cooldowns} == 1,
   "it is cooled down ($a->{bad}{cooldown_left_ms} ms left, once)")
    or diag(explain $a->{bad});
ok($a->{bad}{error_ratio} > 0.25 && $a->{good}{error_ratio} == 0,
   "its error average is $a->{bad}{error_ratio}, the other's 0");
like(node_metrics($ng),
     qr/^gpugate_tunnel_agent_cooled\{agent="\Q$run\E-bad",region=""\} 1$/m,
     '/metrics: gpugate_tunnel_agent_cooled 1');
like(slurp($ng->dir . '/logs/error.log'),
     qr/agent "\Q$run\E-bad" failed 3 requests in a row, cooled down for 5000 ms/,
     'the cooldown is logged');

is(chat('mock-model', 4), 4, 'four more while it is cooled: all 200');
is(agents()->{bad}{requests}, 3, 'none went to the cooled agent');

# --- 2. after the cooldown: one request on trial --------------------------

ok(wait_until(30, sub { agents()->{bad}{on_trial} }),
   'the cooldown ends: the agent is on trial');
is(chat('mock-model', 1), 1, 'the next request: 200 (retried)');
$a = agents();
is($a->{bad}{requests}, 4, 'the agent on trial took that one request');
ok($a->{bad}{cooldowns} == 2 && $a->{bad}{cooldown_left_ms} > 0,
   'its failure on trial cooled it down again');

# --- 3. the TTFT average steers --------------------------------------------

is(chat('ttft-model', 10), 10, 'ten requests for the model of two agents, '
                               . 'one with a 1000 ms TTFT: all 200');
$a = agents();
ok($a->{slow}{ttft_ms} >= 300 && $a->{fast}{ttft_ms} < 300,
   "TTFT averages: slow $a->{slow}{ttft_ms} ms, fast $a->{fast}{ttft_ms} ms");
ok($a->{slow}{requests} <= 4 && $a->{fast}{requests} >= 6,
   "the slow agent took $a->{slow}{requests}, the fast one "
   . "$a->{fast}{requests}");
ok($a->{slow}{score} >= $a->{fast}{score} + 1000,
   "its score weighs its TTFT: $a->{slow}{score} vs $a->{fast}{score}");

my $st = decode_json(http_request($ng->port, 'GET', '/status',
                     { Authorization => 'Bearer ' . ADMIN }, undef, 5)
                     ->{body});
my %pool = map { $_->{upstream} => $_ } @{ $st->{tunnel}{pools} };
my @w = qw(ttft_step_ms error_weight failures cooldown_ms aging_ms);
is_deeply([ @{ $pool{agents} || {} }{@w} ], [60000, 0, 3, 5000, 1000],
          '/status shows the cooldown pool\'s weights');
is_deeply([ @{ $pool{ttft} || {} }{@w} ], [300, 0, 3, 10000, 1000],
          '/status shows the TTFT pool\'s weights');
my ($slow_s) = node_metrics($ng) =~ /^gpugate_tunnel_agent_ttft_seconds(?#
    )\{agent="\Q$run\E-slow",region=""\} (\d+\.\d{3})$/m;
ok(defined $slow_s && $slow_s >= 0.3,
   '/metrics: the slow agent\'s TTFT average, ' . ($slow_s // 'none'));

done_testing();
