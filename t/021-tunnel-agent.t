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
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read psql
                   wait_until env_or_skip free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
my $mock_bin = "$root/build/bin/gpugate-mock-runtime";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-agent-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# a private mock runtime, so that its log belongs to this test
my $mock_port = free_port();
my $mock_log = "$dir/mock.log";
my $mock_pid = fork // die;
if (!$mock_pid) {
    exec $mock_bin, '--listen', "127.0.0.1:$mock_port", '--models',
         'mock-model', '--log-file', $mock_log, '--ttft-ms', '0',
         '--token-delay-ms', '0';
    exit 1;
}
wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mock_port") })
    or BAIL_OUT('mock runtime did not start');

my $token = make_agent('gpu-a');
open my $tf, '>', "$dir/token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/token";

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
my $n_agent = 0;

sub start_agent {
    my (@extra) = @_;
    my $log = "$dir/agent" . $n_agent++ . ".log";
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', $log or die;
        exec $agent_bin, '--gateway', "http://127.0.0.1:$port/gpugate/tunnel",
             '--name', 'gpu-a', '--token-file', "$dir/token",
             '--runtime', "http://127.0.0.1:$mock_port", '--capacity', 64,
             '--spare', 3, '--log-level', 'debug', @extra;
        exit 1;
    }
    return ($pid, $log);
}

sub slurp { open my $f, '<', $_[0] or return ''; local $/; <$f> }

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

my ($agent, $agent_log) = start_agent();

ok(wait_until(10, sub { http_read(chat(0), 5)->{status} == 200 }),
   'agent connected, first request through the tunnel')
    or diag slurp($agent_log);

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
    my $sel = IO::Select->new($s);
    # the head and the first event may arrive in separate reads
    my $buf = '';
    my $deadline = time + 10;
    while ($buf !~ /data: / && time < $deadline) {
        last unless $sel->can_read($deadline - time);
        last unless sysread($s, $buf, 4096, length $buf);
    }
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
    my $sel = IO::Select->new($s);
    $sel->can_read(5);
    sysread($s, my $buf, 4096);
    kill 'KILL', $agent;
    waitpid $agent, 0;
    my $r = http_read($s, 5);
    ok($r->{done}, 'agent SIGKILL: client connection ends');
    unlike($buf . $r->{body}, qr/\[DONE\]/, '... without [DONE]');

    my $res = http_read(chat(0), 10);
    is($res->{status}, 503, 'no agent: 503');
    like($res->{body}, qr/"code":"no_capacity"/, '... no_capacity JSON');

    ($agent, $agent_log) = start_agent();
    ok(wait_until(10, sub { http_read(chat(0), 5)->{status} == 200 }),
       'agent restarted: requests succeed again');
    unlike($ngx->log, qr/signal \d+|\[alert\]/, 'no worker crashed');
}

# --- reload with streams in flight -----------------------------------------

{
    my @s = map { chat(1, 'X-Mock-Tokens' => 40,
                      'X-Mock-Token-Delay-Ms' => 25) } 1 .. 4;
    sleep 0.2;
    $ngx->reload;
    my $okn = 0;
    for (@s) {
        my $r = http_read($_, 20);
        $okn++ if $r->{status} == 200 && $r->{body} =~ /data: \[DONE\]\n\n\z/;
    }
    is($okn, 4, 'reload: in-flight streams complete');
    ok(wait_until(10, sub { http_read(chat(0), 5)->{status} == 200 }),
       'reload: agent reconnected to the new workers');
    like(slurp($agent_log), qr/reloaded \(generation \d+\)/,
         'agent saw the new generation');
}

# --- SIGTERM drain ---------------------------------------------------------

{
    my $s = chat(1, 'X-Mock-Tokens' => 40, 'X-Mock-Token-Delay-Ms' => 25);
    my $sel = IO::Select->new($s);
    $sel->can_read(5);
    kill 'TERM', $agent;
    my $r = http_read($s, 10);
    like($r->{body}, qr/data: \[DONE\]\n\n\z/, 'drain: in-flight stream ends');
    my $t0 = time;
    my $gone = wait_until(5, sub { waitpid($agent, WNOHANG) == $agent });
    ok($gone, 'drain: agent exits');
    is($? >> 8, 0, 'drain: exit code 0');
    like(slurp($agent_log), qr/draining/, 'drain: logged');
}

kill 'TERM', $mock_pid;
waitpid $mock_pid, 0;

done_testing();
