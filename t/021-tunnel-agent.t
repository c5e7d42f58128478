# The real gpugate-agent through the tunnel: exact bytes streaming and not,
# four nginx workers each serving (32 concurrent streams), client abort
# reaching the runtime, the agent killed mid-stream, nginx reload with
# streams in flight, and the agent's SIGTERM drain.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Select;
use Test::More;
use Time::HiRes qw(time);

use GpugateTest qw(start_nginx http_request http_send http_read psql
                   wait_until env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent write_token slurp
                     mock_metric read_until read_rest);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-agent-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# a private mock runtime, so that its log belongs to this test
my $mock = start_mock(dir => $dir, models => 'mock-model',
                      args => [ '--ttft-ms', '0', '--token-delay-ms', '0' ]);
my $mock_port = $mock->port;
my $mock_log = $mock->log;

write_token($dir, 'gpu-a');

my $ngx = start_nginx(workers => 4, listen => 'reuseport',
                      http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    log_format tun '\$pid \$status \$upstream_addr';
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location /v1/ {
            access_log logs/tun.log tun;
            gpugate_openai on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

sub agent {
    return start_agent(dir => $dir, name => 'gpu-a', port => $port,
                       args => [ '--runtime', "http://127.0.0.1:$mock_port",
                                 '--capacity', 64, '--spare', 3,
                                 '--log-level', 'debug' ]);
}

sub chat {
    my ($stream, %h) = @_;
    my $body = '{"model":"mock-model","stream":' . ($stream ? 'true' : 'false')
             . ',"messages":[{"role":"user","content":"hi"}]}';
    return http_send($port, 'POST', '/v1/chat/completions',
                     { 'Content-Type' => 'application/json', %h }, $body);
}

sub direct {
    my ($stream, %h) = @_;
    my $body = '{"model":"mock-model","stream":' . ($stream ? 'true' : 'false')
             . ',"messages":[{"role":"user","content":"hi"}]}';
    return http_request($mock_port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json', %h }, $body);
}

my $agent = agent();

ok(wait_until(10, sub { http_read(chat(0), 5)->{status} == 200 }),
   'agent connected, first request through the tunnel')
    or diag $agent->text;

# --- exact bytes --------------------------------------------------------

for my $stream (0, 1) {
    my $want = direct($stream);
    my $got = http_read(chat($stream), 10);
    is($got->{status}, 200, "stream=$stream: 200");
    is($got->{body}, $want->{body}, "stream=$stream: same bytes as direct");
}

{
    my $got = http_read(chat(1, 'X-Mock-Write-Mode' => 'byte'), 10);
    is($got->{body}, direct(1)->{body},
       'runtime writing one byte at a time: same bytes');
}

# --- four workers, 32 concurrent streams ----------------------------------

{
    my @s = map { chat(1, 'X-Mock-Tokens' => 20,
                      'X-Mock-Token-Delay-Ms' => 20) } 1 .. 32;
    my $okn = 0;
    for (@s) {
        my $r = http_read($_, 20);
        $okn++ if $r->{status} == 200 && $r->{body} =~ /data: \[DONE\]\n\n\z/;
    }
    is($okn, 32, '32 concurrent streams complete');
    close $_ for @s;

    # logged when nginx frees the request, after its lingering close
    my %pids;
    wait_until(10, sub {
        %pids = ();
        for (split /\n/, slurp($ngx->dir . '/logs/tun.log')) {
            my ($pid, $status, $up) = split ' ';
            $pids{$pid}++ if $status == 200 && $up eq 'gpu-a';
        }
        keys %pids == 4;
    });
    is(scalar keys %pids, 4, 'every worker served through the tunnel');
}

# --- client abort reaches the runtime --------------------------------------

{
    my $s = chat(1, 'X-Mock-Tokens' => 1000, 'X-Mock-Token-Delay-Ms' => 20);
    my $buf = read_until($s, qr/data: /);
    like($buf, qr/data: /, 'stream started');
    my $t0 = time;
    close $s;
    ok(wait_until(1, sub { slurp($mock_log) =~ /client disconnected mid-stream/ }),
       'client abort: runtime logs the disconnect within 1 s');
    diag sprintf 'disconnect seen after %.0f ms', (time - $t0) * 1000;
}

# --- agent killed mid-stream ----------------------------------------------

{
    my $s = chat(1, 'X-Mock-Tokens' => 1000, 'X-Mock-Token-Delay-Ms' => 20);
    # killed once the stream is under way: its first event arrived
    my $buf = read_until($s, qr/data: /);
    $agent->stop('KILL');
    my $r = read_rest($s, $buf, 5);
    ok($r->{done}, 'agent SIGKILL: client connection ends');
    unlike($r->{body}, qr/\[DONE\]/, '... without [DONE]');

    my $res = http_read(chat(0), 10);
    is($res->{status}, 503, 'no agent: 503');
    like($res->{body}, qr/"code":"no_capacity"/, '... no_capacity JSON');

    $agent = agent();
    ok(wait_until(10, sub { http_read(chat(0), 5)->{status} == 200 }),
       'agent restarted: requests succeed again');
    unlike($ngx->log, qr/signal \d+|\[alert\]/, 'no worker crashed');
}

# --- reload with streams in flight -----------------------------------------

{
    my @s = map { chat(1, 'X-Mock-Tokens' => 40,
                      'X-Mock-Token-Delay-Ms' => 25) } 1 .. 4;
    # the reload finds the four streams at the runtime, not on their way
    wait_until(10, sub {
        (mock_metric($mock_port, 'gpugate_mock_requests_in_flight') // 0)
            >= 4 });
    $ngx->reload;
    my $okn = 0;
    for (@s) {
        my $r = http_read($_, 20);
        $okn++ if $r->{status} == 200 && $r->{body} =~ /data: \[DONE\]\n\n\z/;
    }
    is($okn, 4, 'reload: in-flight streams complete');
    ok(wait_until(10, sub { http_read(chat(0), 5)->{status} == 200 }),
       'reload: agent reconnected to the new workers');
    like($agent->text, qr/reloaded \(generation \d+\)/,
         'agent saw the new generation');
}

# --- SIGTERM drain ---------------------------------------------------------

{
    my $s = chat(1, 'X-Mock-Tokens' => 40, 'X-Mock-Token-Delay-Ms' => 25);
    # the SIGTERM finds the stream in flight: its first event arrived
    my $buf = read_until($s, qr/data: /);
    $agent->signal('TERM');
    my $r = read_rest($s, $buf, 10);
    like($r->{body}, qr/data: \[DONE\]\n\n\z/,
         'drain: in-flight stream ends');
    my $st = $agent->wait_exit(5);
    ok(defined $st, 'drain: agent exits');
    is(($st // -1) >> 8, 0, 'drain: exit code 0');
    like($agent->text, qr/draining/, 'drain: logged');
}

$mock->stop;

done_testing();
