# Runtime load through the real agent: each agent reads its runtime's
# metrics in that runtime's dialect (the mock speaks llama.cpp's, SGLang's
# and TGI's gauges), reports the waiting count as X-Gpugate-Load, and nginx
# sends equal-load traffic to the agent whose runtime has the shorter
# queue.  A runtime that does not export the gauge is logged once.  A
# runtime that stops listening takes its agent out of the pool (no 502s:
# the other agent serves) until it listens again.  And
# SIGHUP: the agent reads its configuration again without dropping
# anything, refuses a bad one, and says which changes need a restart.

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
my (%mport, %mpid);

sub start_mock {
    my ($m) = @_;
    my $pid = fork // die;
    if (!$pid) {
        exec $mock_bin, '--listen', "127.0.0.1:$mport{$m}", '--models',
             'mock-model', '--quiet', '--log-file', "$dir/mock-$m.log",
             @{ $mocks{$m} };
        exit 1;
    }
    $mpid{$m} = $pid;
    push @kids, $pid;
}

for my $m (sort keys %mocks) {
    $mport{$m} = free_port();
    start_mock($m);
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

ok(wait_until(10, sub { slurp($busy_log) =~ /runtime "default" load: 0 running, 5 waiting/
                        && slurp($free_log) =~ /runtime "default" load: 0 running, 0 waiting/ }),
   'each agent read its runtime\'s dialect')
    or diag slurp($busy_log), slurp($free_log);

# the figures reach nginx with the next ping answers (every second)
sleep 2.5;

my $ok = 0;
$ok += chat()->{status} == 200 for 1 .. 10;
is($ok, 10, '10 sequential requests answered');
is(served('free'), 10, 'all went to the agent whose runtime has no queue');
is(served('busy'), 0, 'none to the one with 5 waiting');

# the preferred agent's runtime dies: that agent withdraws, the other serves

{
    kill 'KILL', $mpid{free};
    waitpid $mpid{free}, 0;
    ok(wait_until(5, sub { slurp($free_log) =~ /stopped listening .*no capacity offered/ }),
       'runtime killed: its agent withdraws')
        or diag slurp($free_log);
    sleep 0.3;
    my $before = served('busy');
    my $ok = 0;
    $ok += chat()->{status} == 200 for 1 .. 6;
    is($ok, 6, 'no 502: every request answered');
    is(served('busy') - $before, 6, '... by the other agent');

    start_mock('free');
    ok(wait_until(5, sub { slurp($free_log) =~ /listens again: offering capacity/ }),
       'runtime back: the agent offers capacity again');
    ok(wait_until(5, sub {
        my $n = () = $ngx->log =~ /agent "load-free" connected/g;
        $n >= 2 }), '... and reconnects');
    sleep 2.5;
    $before = served('free');
    chat() for 1 .. 4;
    is(served('free') - $before, 4, '... and serves (the shorter queue) again');
}

# a runtime that does not speak the configured dialect

my $plain_log = start_agent('load-plain', 'plain', 'tgi');
ok(wait_until(5, sub { slurp($plain_log) =~ /cannot read its load \(tgi \/metrics\): no waiting-requests gauge/ }),
   'a runtime without the gauge: logged');
sleep 1.5;
my @warn = slurp($plain_log) =~ /cannot read its load/g;
is(scalar @warn, 1, '... once, not on every probe');

# --- SIGHUP --------------------------------------------------------------

{
    my $token = make_agent('load-hup');
    open my $tf, '>', "$dir/load-hup.token" or die;
    print $tf "$token\n";
    close $tf;
    chmod 0600, "$dir/load-hup.token";

    my $conf = "$dir/hup.conf";
    my $write = sub {
        open my $f, '>', $conf or die;
        print $f "gateway = http://127.0.0.1:$port/gpugate/tunnel\n"
               . "name = load-hup\ntoken_file = $dir/load-hup.token\n"
               . "runtime = http://127.0.0.1:$mport{free}\n"
               . "models = mock-model\nspare = 1\n$_[0]";
        close $f;
    };
    $write->("capacity = 4\n");

    my $log = "$dir/load-hup.log";
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', $log or die;
        exec $agent_bin, '--config', $conf, '--log-level', 'info';
        exit 1;
    }
    push @kids, $pid;
    ok(wait_until(10, sub { $ngx->log =~ /agent "load-hup" connected/ }),
       'agent from a file up')
        or diag slurp($log);

    $write->("capacity = 7\nruntime_type = sglang\n");
    kill 'HUP', $pid;
    ok(wait_until(5, sub { slurp($log) =~ /SIGHUP: runtime "default": capacity 7, models "mock-model", runtime_type sglang/ }),
       'SIGHUP: new capacity and runtime_type applied');
    ok(kill(0, $pid), '... and the agent lives on');

    $write->("capacity = many\n");
    kill 'HUP', $pid;
    ok(wait_until(5, sub { slurp($log) =~ /SIGHUP: .*capacity.*; the running configuration is kept/ }),
       'SIGHUP with a bad file: refused, old configuration kept');

    $write->("capacity = 7\n");
    open my $f, '>>', $conf or die;
    print $f "name = someone-else\n";
    close $f;
    kill 'HUP', $pid;
    ok(wait_until(5, sub { slurp($log) =~ /SIGHUP: "name" changed; it applies after a restart/ }),
       'SIGHUP: a changed name needs a restart, and says so');

    is(chat()->{status}, 200, 'requests still served after three SIGHUPs');
    ok(kill(0, $pid), 'agent still running');
}

unlike($ngx->log, qr/signal \d+|\[alert\]|invalid X-Gpugate-Load/,
       'no crash, no rejected load header');

kill 'TERM', @kids;
waitpid $_, 0 for @kids;

done_testing();
