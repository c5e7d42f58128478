# Cache signals: each agent reads its runtime's KV-cache use and prefix
# hit rate in the runtime's dialect (the mock's prefix cache model speaks
# vLLM's and SGLang's gauges and counters), reports them in X-Gpugate-Load
# (kv_pct, hit_pct), and /status and /metrics show them; a runtime that
# exports none shows null.  The balancer passes over a prefix holder whose
# KV cache is fuller than kv_max.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use Test::More;

use GpugateTest qw(start_nginx http_request wait_until env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent mock_served
                     agent_instances wait_parked);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-cache-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# a: vLLM with a cache reported 95% full; b: SGLang, the cache's own
# fill; c: TGI, no cache figure
my %margs = (
    a => [ '--dialect', 'vllm', '--prefix-cache', 1000, '--kv-usage-pct', 95,
           '--prefill-us-per-byte', 0 ],
    b => [ '--dialect', 'sglang', '--prefix-cache', 20,
           '--prefill-us-per-byte', 0 ],
    c => [ '--dialect', 'tgi' ],
);
my %type = (a => 'vllm', b => 'sglang', c => 'tgi');
my %mock = map { $_ => start_mock(dir => $dir, name => $_,
                                  args => [ '--quiet', @{ $margs{$_} } ],
                                  models => 'mock-model') } qw(a b c);

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
        gpugate_prefix_affinity block=16 depth=4 margin=8 kv_max=90;
    }
    gpugate_model mock-model pool=agents;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location = /metrics { gpugate_metrics; }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;
my %agent;

sub agent {
    my ($m) = @_;
    $agent{$m} = start_agent(dir => $dir, name => "cache-$m", port => $port,
                             args => [ '--runtime',
                                       'http://127.0.0.1:' . $mock{$m}->port,
                                       '--models', 'mock-model',
                                       '--runtime-type', $type{$m},
                                       '--load-interval', 1, '--spare', 2 ]);
}

agent($_) for qw(a b);
ok(wait_parked($port, 'cache-a', 2) && wait_parked($port, 'cache-b', 2),
   'two agents parked');

my $sys = 'You are the support assistant of ACME; answer in one line.';

sub body {
    my ($sys, $user) = @_;
    my $m = defined $sys ? qq({"role":"system","content":"$sys"},) : '';
    return qq({"model":"mock-model","messages":[$m)
         . qq({"role":"user","content":"$user"}]});
}

sub chat {
    my ($sys, $user) = @_;
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json' },
                        body($sys, $user));
}

sub served { my %s = map { $_ => mock_served($mock{$_}->port) } qw(a b); \%s }

sub where {
    my ($code) = @_;
    my @at;
    for my $c (@$code) {
        my $before = served();
        my $r = $c->();
        my $after = served();
        push @at, $r->{status} != 200 ? "status $r->{status}"
                : (grep { $after->{$_} > $before->{$_} } qw(a b))[0] // '?';
    }
    return @at;
}

sub inst { (agent_instances($port, "cache-$_[0]"))[0] || {} }

# --- the figures reach the gateway ----------------------------------------

ok(wait_until(15, sub { (inst('a')->{kv_pct} // -1) == 95 }),
   'vllm: kv_cache_usage_perc 0.95 shown as kv_pct 95 in /status')
    or diag explain inst('a');

# b's cache fills and hits as the same prefix comes twice (the tie-break
# alternates short prompts, so each agent gets one of a pair)
chat($sys, "warm $_") for 1 .. 4;
ok(wait_until(15, sub {
    my $b = inst('b');
    defined $b->{kv_pct} && $b->{kv_pct} >= 1 && ($b->{hit_pct} // 0) >= 1 }),
   'sglang: token_usage and cache_hit_rate shown as kv_pct and hit_pct')
    or diag explain inst('b');
# a's counters: the same prompt twice, straight to its runtime
for (1 .. 2) {
    http_request($mock{a}->port, 'POST', '/v1/chat/completions',
                 { 'Content-Type' => 'application/json' }, body($sys, 'direct'));
}
ok(wait_until(15, sub { (inst('a')->{hit_pct} // 0) >= 1 }),
   'vllm: the hit rate of its counters shown')
    or diag explain inst('a');

{
    my $r = http_request($port, 'GET', '/metrics', {}, '');
    like($r->{body}, qr/^gpugate_agent_kv_cache_usage_ratio\{agent="cache-a"\} 0\.95$/m,
         '/metrics: the KV use of agent a');
    like($r->{body}, qr/^gpugate_agent_prefix_cache_hit_ratio\{agent="cache-b"\} 0\.\d+$/m,
         '/metrics: the hit ratio of agent b');
    like($r->{body}, qr/^gpugate_affinity_choices_total\{pool="agents",result="hit"\} \d+$/m,
         '/metrics: the pool\'s affinity choices');
}

# --- a holder whose KV cache is fuller than kv_max is passed over ---------

{
    # steer the tie-break to a: the short prompt before went to b
    for (1 .. 4) {
        my ($at) = where([ sub { chat(undef, 'hi') } ]);
        last if $at eq 'b';
    }
    my $other = 'You translate into French, nothing else, whatever is asked.';
    my @r = where([ map { my $i = $_; sub { chat($other, "q $i") } } 1 .. 5 ]);
    is($r[0], 'a', 'a new prefix: the least recently chosen agent (a)')
        or diag "@r";
    is_deeply([ @r[1 .. 4] ], [ ('b') x 4 ],
              '... then b: a holds it but its KV cache is 95% full (kv_max=90)')
        or diag "@r";
}

# --- a runtime without cache figures: null --------------------------------

agent('c');
ok(wait_parked($port, 'cache-c', 1), 'a TGI agent parked');
ok(wait_until(5, sub { inst('c')->{queue} == 0 && exists inst('c')->{kv_pct} }),
   'its status entry is there');
ok(!defined inst('c')->{kv_pct} && !defined inst('c')->{hit_pct},
   'no cache figure from TGI: kv_pct and hit_pct null');

unlike($ngx->log, qr/\[alert\]|exited on signal/, 'no alert or crash');

done_testing();
