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
use Test::More;

use GpugateTest qw(start_nginx http_request wait_until env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent write_token slurp
                     agent_instances mock_served);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# name => [dialect flags]; "plain" logs every request (its probes are
# counted below), the others only errors
my %mocks = (
    busy  => [ '--quiet', '--dialect', 'llamacpp', '--waiting', 5 ],
    free  => [ '--quiet', '--dialect', 'sglang', '--waiting', 0 ],
    plain => [],
);
my (%mock, %mport);

for my $m (sort keys %mocks) {
    $mock{$m} = start_mock(dir => $dir, name => $m, models => 'mock-model',
                           args => $mocks{$m});
    $mport{$m} = $mock{$m}->port;
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
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

sub agent {
    my ($name, $mock, $type) = @_;
    return start_agent(dir => $dir, name => $name, port => $port,
                       args => [ '--runtime', "http://127.0.0.1:$mport{$mock}",
                                 '--models', 'mock-model', '--spare', 1,
                                 '--runtime-type', $type,
                                 '--load-interval', 1,
                                 '--log-level', 'debug' ])->log;
}

sub served { mock_served($mport{$_[0]}) }

# the gateway knows both agents' queues: busy's 5, free's 0 with a tunnel
# parked (the figures come with the ping answers, every second)
sub loads_known {
    my ($b) = agent_instances($port, 'load-busy');
    my ($f) = agent_instances($port, 'load-free');
    return $b && $f && $b->{queue} == 5 && $f->{queue} == 0
        && $f->{workers}[0]{idle} >= 1;
}

sub chat {
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json' },
                        '{"model":"mock-model","messages":'
                        . '[{"role":"user","content":"hi"}]}');
}

my $busy_log = agent('load-busy', 'busy', 'llamacpp');
my $free_log = agent('load-free', 'free', 'sglang');

ok(wait_until(10, sub { slurp($busy_log) =~ /runtime "default" load: 0 running, 5 waiting/
                        && slurp($free_log) =~ /runtime "default" load: 0 running, 0 waiting/ }),
   'each agent read its runtime\'s dialect')
    or diag slurp($busy_log), slurp($free_log);

# the figures reach nginx with the next ping answers (every second)
wait_until(15, \&loads_known)
    or diag explain [ agent_instances($port, 'load-busy') ];

my $ok = 0;
$ok += chat()->{status} == 200 for 1 .. 10;
is($ok, 10, '10 sequential requests answered');
is(served('free'), 10, 'all went to the agent whose runtime has no queue');
is(served('busy'), 0, 'none to the one with 5 waiting');

# the preferred agent's runtime dies: that agent withdraws, the other serves

{
    $mock{free}->stop('KILL');
    ok(wait_until(5, sub { slurp($free_log) =~ /stopped listening .*no capacity offered/ }),
       'runtime killed: its agent withdraws')
        or diag slurp($free_log);
    # ... and the gateway holds none of its tunnels idle any more
    wait_until(10, sub {
        !grep { $_->{workers}[0]{idle} } agent_instances($port, 'load-free')
    });
    my $before = served('busy');
    my $ok = 0;
    $ok += chat()->{status} == 200 for 1 .. 6;
    is($ok, 6, 'no 502: every request answered');
    is(served('busy') - $before, 6, '... by the other agent');

    $mock{free}->restart;
    ok(wait_until(5, sub { slurp($free_log) =~ /listens again: offering capacity/ }),
       'runtime back: the agent offers capacity again');
    ok(wait_until(5, sub {
        my $n = () = $ngx->log =~ /agent "load-free" connected/g;
        $n >= 2 }), '... and reconnects');
    wait_until(15, \&loads_known)
        or diag explain [ agent_instances($port, 'load-free') ];
    $before = served('free');
    chat() for 1 .. 4;
    is(served('free') - $before, 4, '... and serves (the shorter queue) again');
}

# a runtime that does not speak the configured dialect

my $plain_log = agent('load-plain', 'plain', 'tgi');
ok(wait_until(5, sub { slurp($plain_log) =~ /cannot read its load \(tgi \/metrics\): no waiting-requests gauge/ }),
   'a runtime without the gauge: logged');
# two more probes (the runtime logs each GET /metrics) after the warning
{
    my $probes = sub { scalar(() = $mock{plain}->text =~ m{GET /metrics}g) };
    my $seen = $probes->();
    wait_until(15, sub { $probes->() >= $seen + 2 })
        or diag 'the agent probed its runtime no more';
}
my @warn = slurp($plain_log) =~ /cannot read its load/g;
is(scalar @warn, 1, '... once, not on every probe');

# --- SIGHUP --------------------------------------------------------------

{
    write_token($dir, 'load-hup');

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

    my $hup = start_agent(dir => $dir, name => 'load-hup',
                          argv => [ '--config', $conf, '--log-level', 'info' ]);
    my ($log, $pid) = ($hup->log, $hup->pid);
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

done_testing();
