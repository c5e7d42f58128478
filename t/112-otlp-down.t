# A collector that is down (nothing listens) or slow (accepts and reads,
# never answers) costs requests nothing: every one is answered, through
# the gateway and the agent, streamed or not; the gateway counts its
# spans as failed (the batches that could not go) and dropped (over its
# buffer while a POST hangs) on /metrics, and says so once in its log;
# the agent logs the spans it lost.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(http_request wait_until env_or_skip free_port);
use GpugateAgents qw(agent_bin slurp);
use GpugateTrace qw(otlp_receiver trace_node chat);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

sub counts {
    my ($n) = @_;
    my $m = http_request($n->{ngx}->port, 'GET', '/metrics')->{body} // '';
    my %c = $m =~ /^gpugate_trace_spans_total\{result="(\w+)"\} (\d+)$/mg;
    return \%c;
}

for my $case ('down', 'slow') {
    my $port;
    if ($case eq 'down') {
        $port = free_port();             # nothing listens there
    } else {
        $port = otlp_receiver(mode => 'hang')->{port};
    }
    my $url = "http://127.0.0.1:$port/v1/traces";
    my $n = trace_node(otlp => "$url sample=1 batch=2 buffer=4 "
                             . "interval=50ms timeout=30s",
                       workers => 1,
                       agent_conf => "otlp_endpoint = $url\n");

    my $ok = 0;
    for my $i (1 .. 12) {
        my $r = chat($n, $i % 2);
        $ok++ if $r->{status} == 200 && $r->{body} =~ /mock|data:/;
    }
    is($ok, 12, "$case: all 12 requests answered");

    my $c;
    if ($case eq 'down') {
        ok(wait_until(10, sub { $c = counts($n); ($c->{failed} // 0) > 0 }),
           "down: spans counted as failed ($c->{failed})");
        my $said = qr/\[warn\].*gpugate trace: collector \S+: /;
        like($n->{ngx}->log, qr/${said}cannot connect.*spans lost/,
             'down: the gateway says so');
        ok(wait_until(10, sub {
                slurp($n->{agent}->log) =~ /otlp_endpoint .* spans lost/
            }), 'down: the agent logs its lost spans');
    } else {
        ok(wait_until(10, sub { $c = counts($n); ($c->{dropped} // 0) > 0 }),
           "slow: spans over the buffer counted as dropped ($c->{dropped})");
        is($c->{exported} // 0, 0, 'slow: none counted as exported');
    }

    like(http_request($n->{ngx}->port, 'GET', '/metrics')->{body},
         qr/^gpugate_trace_batches_total\{result="error"\} \d+$/m,
         "$case: batch results on /metrics");
    $n->{agent}->stop;
    $n->{ngx}->stop;
}

# --- a collector nginx cannot use is refused at start ----------------------

my %bad = (
    'ftp://127.0.0.1:1/v1/traces'          => 'is not an http:// URL',
    'http://127.0.0.1:1 sample=1.5'        => 'invalid parameter "sample=1.5"',
    'http://127.0.0.1:1 sample=x'          => 'invalid parameter "sample=x"',
    'http://127.0.0.1:1 batch=0'           => 'invalid parameter "batch=0"',
    'http://127.0.0.1:1 batch=8 buffer=4'  => 'buffer=4 is less than batch=8',
    'http://127.0.0.1:1 colour=red'        => 'invalid parameter "colour=red"',
    "http://127.0.0.1:1;\n    gpugate_otlp http://127.0.0.1:2"
                                           => '"gpugate_otlp" directive is duplicate',
);
for my $args (sort keys %bad) {
    my $err = eval {
        GpugateTest::start_nginx(http => "    gpugate_otlp $args;\n",
                                 server => '');
        '';
    } // $@;
    like($err, qr/\Q$bad{$args}\E/, "gpugate_otlp $args: refused");
}

done_testing();
