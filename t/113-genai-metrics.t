# The GenAI histograms on /metrics beside gpugate's families, in
# OpenTelemetry's names and bucket boundaries: gen_ai_client_token_usage
# by token type and model (counts and sums agree with gpugate's token
# counters), gen_ai_server_time_to_first_token_seconds and
# gen_ai_server_time_per_output_token_seconds of successful streams (a
# runtime slower than the lowest buckets lands above them); a model a
# client makes up is never a series of its own (refused requests count
# as "_refused", as on gpugate's families); promtool accepts the page.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use Test::More;

use GpugateTest qw(http_request wait_until env_or_skip);
use GpugateAgents qw(agent_bin);
use GpugateTrace qw(trace_node chat);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $n = trace_node(workers => 2);
my $port = $n->{ngx}->port;

sub page { http_request($port, 'GET', '/metrics')->{body} // '' }

# 3 streams: 120 ms to the first token, 5 tokens 60 ms apart; 2 plain
for my $i (1 .. 5) {
    my $stream = $i <= 3;
    my $r = chat($n, $stream, 'X-Mock-TTFT-Ms' => 120,
                 'X-Mock-Token-Delay-Ms' => 60, 'X-Mock-Tokens' => 5);
    is($r->{status}, 200, "request $i answered");
}

my $evil = 'made-up-' . int(rand 1e9);
{
    my $r = http_request($port, 'POST', '/v1/chat/completions',
                         { 'Content-Type' => 'application/json',
                           Authorization => "Bearer $n->{key}" },
                         qq({"model":"$evil","messages":)
                         . '[{"role":"user","content":"hi"}]}');
    is($r->{status}, 404, 'a model nobody serves: 404');
}

my $m;
ok(wait_until(10, sub {
        $m = page();
        $m =~ /^gen_ai_client_token_usage_count\{gen_ai_token_type="output",
               gen_ai_request_model="mock-model"\}[ ]5$/mx;
    }), 'gen_ai_client_token_usage: 5 requests of mock-model')
    or diag($m);

for my $f (qw(gen_ai_client_token_usage
              gen_ai_server_time_to_first_token_seconds
              gen_ai_server_time_per_output_token_seconds)) {
    like($m, qr/^# TYPE $f histogram$/m, "$f is a histogram");
}

# the conventions' boundaries, in order, then +Inf
my %le = (
    gen_ai_client_token_usage => [qw(1 4 16 64 256 1024 4096 16384 65536
        262144 1048576 4194304 16777216 67108864)],
    gen_ai_server_time_to_first_token_seconds => [qw(0.001 0.005 0.01 0.02
        0.04 0.06 0.08 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10)],
    gen_ai_server_time_per_output_token_seconds => [qw(0.01 0.025 0.05
        0.075 0.1 0.15 0.2 0.3 0.4 0.5 0.75 1 2.5)],
);
for my $f (sort keys %le) {
    my @got = $m =~ /^${f}_bucket\{(?:gen_ai_token_type="input",)?
                     gen_ai_request_model="mock-model",le="([^"]+)"\}/mgx;
    is_deeply(\@got, [ @{ $le{$f} }, '+Inf' ], "$f: the buckets");
}

sub value {
    my ($series) = @_;
    my ($v) = $m =~ /^\Q$series\E ([\d.]+)$/m;
    return $v;
}

my ($prompt) = 0;
$prompt += $_ for $m =~ /^gpugate_prompt_tokens_total\{model="mock-model",
                          [^}]*\}[ ](\d+)$/mgx;
my ($completion) = 0;
$completion += $_ for $m =~ /^gpugate_completion_tokens_total\{
                              model="mock-model",[^}]*\}[ ](\d+)$/mgx;
my $mm = 'gen_ai_request_model="mock-model"';
is(value("gen_ai_client_token_usage_sum{gen_ai_token_type=\"input\",$mm}"),
   $prompt, "input tokens: the sum is gpugate's prompt count ($prompt)");
is(value("gen_ai_client_token_usage_sum{gen_ai_token_type=\"output\",$mm}"),
   $completion, "output tokens: the sum is gpugate's completion count "
   . "($completion)");
is(value("gen_ai_client_token_usage_bucket{gen_ai_token_type=\"output\","
         . "$mm,le=\"4\"}"), 0, '5 tokens each: none at or below 4');
is(value("gen_ai_client_token_usage_bucket{gen_ai_token_type=\"output\","
         . "$mm,le=\"16\"}"), 5, 'all 5 at or below 16');

my $ttft = 'gen_ai_server_time_to_first_token_seconds';
is(value("${ttft}_count{$mm}"), 3, 'time to first token: the 3 streams');
is(value("${ttft}_bucket{$mm,le=\"0.1\"}"), 0,
   'none under the 120 ms the runtime took');
ok(value("${ttft}_sum{$mm}") >= 0.36, 'the sum is at least 3 x 120 ms');

my $tpot = 'gen_ai_server_time_per_output_token_seconds';
is(value("${tpot}_count{$mm}"), 3, 'time per output token: the 3 streams');
is(value("${tpot}_bucket{$mm,le=\"0.05\"}"), 0,
   'none under the 60 ms between tokens');

unlike($m, qr/\Q$evil\E/, "the made-up model makes no series");
my %models = map { $_ => 1 } $m =~ /gen_ai_request_model="([^"]*)"/g;
is_deeply([ sort keys %models ], [ 'mock-model' ],
          'the only model label is the one served');

SKIP: {
    skip 'promtool not installed', 1
        unless system('command -v promtool >/dev/null 2>&1') == 0;
    my $dir = tempdir(CLEANUP => 1);
    open my $f, '>', "$dir/m.txt" or die;
    print $f $m;
    close $f;
    my $out = `promtool check metrics < $dir/m.txt 2>&1`;
    is($?, 0, 'promtool check metrics: accepted') or diag($out);
}

done_testing();
