# Runtime load through the real agent: each agent reads its runtime's
# metrics in that runtime's dialect (the mock speaks llama.cpp's, SGLang's
# and TGI's gauges), reports the waiting count as X-Gpugate-Load, and nginx
# sends equal-load traffic to the agent whose runtime has the shorter
# queue.  A runtime that does not export the gauge is logged once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);

use GpugateTest qw(start_nginx http_request wait_until env_or_skip
                   free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
my $mock_bin = "$root/build/bin/gpugate-mock-runtime";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @kids;

sub slurp { open my $f, '<', $_[0] or return ''; local $/; <$f> }

# name => [dialect flags]
my %mocks = (
    busy  => [ '--dialect', 'llamacpp', '--waiting', 5 ],
    free  => [ '--dialect', 'sglang', '--waiting', 0 ],
    plain => [],
);
my %mport;

for my $m (sort keys %mocks) {
    $mport{$m} = free_port();
    my $pid = fork // die;
    if (!$pid) {
        exec $mock_bin, '--listen', "127.0.0.1:$mport{$m}", '--models',
             'mock-model', '--quiet', '--log-file', "$dir/mock-$m.log",
             @{ $mocks{$m} };
        exit 1;
    }
    push @kids, $pid;
}

for my $m (sort keys %mocks) {
    wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mport{$m}") })
        or BAIL_OUT("mock $m did not start");
}

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
    }
    gpugate_model mock-model pool=agents;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s;
        }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

sub start_agent {
    my ($name, $mock, $type) = @_;
    my $token = make_agent($name);
    open my $tf, '>', "$dir/$name.token" or die;
    print $tf "$token\n";
    close $tf;
    chmod 0600, "$dir/$name.token";
    my $log = "$dir/$name.log";
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', $log or die;
        exec $agent_bin, '--gateway', "http://127.0.0.1:$port/gpugate/tunnel",
             '--name', $name, '--token-file', "$dir/$name.token",
             '--runtime', "http://127.0.0.1:$mport{$mock}",
             '--models', 'mock-model', '--spare', 1,
             '--runtime-type', $type, '--load-interval', 1,
             '--log-level', 'debug';
        exit 1;
    }
    push @kids, $pid;
    return $log;
}

sub served {
    my $r = http_request($mport{$_[0]}, 'GET', '/metrics', {}, '');
    my ($n) = $r->{body} =~ m{^gpugate_mock_requests_total\{path="/v1/chat/completions",status="200"\} (\d+)$}m;
    return $n // 0;
}

sub chat {
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json' },
                        '{"model":"mock-model","messages":'
                        . '[{"role":"user","content":"hi"}]}');
}

my $busy_log = start_agent('load-busy', 'busy', 'llamacpp');
my $free_log = start_agent('load-free', 'free', 'sglang');

ok(wait_until(10, sub { slurp($busy_log) =~ /runtime load: 0 running, 5 waiting/
                        && slurp($free_log) =~ /runtime load: 0 running, 0 waiting/ }),
   'each agent read its runtime\'s dialect')
    or diag slurp($busy_log), slurp($free_log);

# the figures reach nginx with the next ping answers (every second)
sleep 2.5;

my $ok = 0;
$ok += chat()->{status} == 200 for 1 .. 10;
is($ok, 10, '10 sequential requests answered');
is(served('free'), 10, 'all went to the agent whose runtime has no queue');
is(served('busy'), 0, 'none to the one with 5 waiting');

# a runtime that does not speak the configured dialect

my $plain_log = start_agent('load-plain', 'plain', 'tgi');
ok(wait_until(5, sub { slurp($plain_log) =~ /cannot read its load \(tgi \/metrics\): no waiting-requests gauge/ }),
   'a runtime without the gauge: logged');
sleep 1.5;
my @warn = slurp($plain_log) =~ /cannot read its load/g;
is(scalar @warn, 1, '... once, not on every probe');

unlike($ngx->log, qr/signal \d+|\[alert\]|invalid X-Gpugate-Load/,
       'no crash, no rejected load header');

kill 'TERM', @kids;
waitpid $_, 0 for @kids;

done_testing();
