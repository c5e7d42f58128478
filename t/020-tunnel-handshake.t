# The tunnel's nginx side against a scripted agent: the SCRAM-SHA-256
# handshake (good, bad and unknown credentials, replay, revocation,
# garbage, slow-loris, oversized headers), requests sent down a parked
# connection, pings, and a dead connection found by its missing pong.
#
# The scripted agent is Perl (t/support/GpugateTest.pm) so that each step
# can be broken on purpose; t/021-tunnel-agent.t uses the real agent.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(decode_base64);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read psql
                   wait_until env_or_skip free_port make_agent
                   tunnel_connect tunnel_step1 tunnel_step2 read_head);
use GpugateAgents qw(agent_instances);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $token = make_agent('t-agent-1');
my $other = make_agent('t-agent-2');

my $ngx = start_nginx(main => $ENV{GPUGATE_TEST_CORE}
                      ? "working_directory /tmp/cores; worker_rlimit_core 1g;"
                      : '', http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    log_format tun '\$status \$upstream_addr \$upstream_status';
    upstream agents {
        gpugate_tunnel queue=8 queue_timeout=1500ms;
    }
HTTP
        client_header_timeout 2s;
        large_client_header_buffers 2 1k;
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s ping_timeout=1s step_timeout=2s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /v1/ {
            access_log logs/tun.log tun;
            gpugate_openai on;
            gpugate_model mock-model pool=agents;
            gpugate_model other-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
        location /retry/v1/ {
            access_log logs/tun.log tun;
            gpugate_openai on;
            gpugate_model retry-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;
my $chat = '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}';

sub connect_raw {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or die "connect: $!";
    return $s;
}

sub closed_within {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + $secs;
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 4096);
        return 1 if !$n;
    }
    return 0;
}

# --- handshake -----------------------------------------------------------

{
    my $s = connect_raw();
    my ($r1, $st) = tunnel_step1($s, 't-agent-1');
    is($r1->{status}, 401, 'step 1: 401 challenge');
    like($r1->{headers}{'www-authenticate'},
         qr/^SCRAM-SHA-256 sid=[0-9a-f]{32}, data=[A-Za-z0-9+\/=]+$/,
         'step 1: sid and server-first');
    like($r1->{body}, qr/"code":"scram_continue"/, 'step 1: JSON body');

    my ($r2, $ok) = tunnel_step2($s, $r1, $st, $token,
        Upgrade => 'gpugate-tunnel/1', 'X-Gpugate-Models' => 'mock-model');
    is($r2->{status}, 101, 'good token: 101');
    ok($ok, 'server signature verifies (the gateway holds the verifier)');
    like($r2->{headers}{'x-gpugate-worker'},
         qr/^slot=0, pid=\d+, workers=1, generation=\d+, heartbeat=333$/,
         'worker header (heartbeat: ping_timeout / 3)');
    is(lc $r2->{headers}{upgrade}, 'gpugate-tunnel/1', 'upgrade header');

    # parked: nginx pings it within ping=1s
    my $ping = read_head($s, 3);
    like($ping->{raw}, qr{^GET /gpugate/ping HTTP/1\.1\r\n}, 'idle ping');
    print $s "HTTP/1.1 204 No Content\r\n\r\n";

    # a client request goes down the tunnel
    my $c = http_send($port, 'POST', '/v1/chat/completions',
                      { 'Content-Type' => 'application/json' }, $chat);
    my $req = read_head($s, 5);
    while ($req->{raw} =~ m{^GET /gpugate/ping}) {
        print $s "HTTP/1.1 204 No Content\r\n\r\n";
        $req = read_head($s, 5);
    }
    like($req->{raw}, qr{^POST /v1/chat/completions HTTP/1\.1\r\n},
         'request sent down the tunnel');
    is($req->{body}, $chat, 'body intact');
    my $answer = '{"id":"x","object":"chat.completion","choices":[],'
               . '"usage":{"prompt_tokens":3,"completion_tokens":4}}';
    print $s "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           . "Content-Length: " . length($answer) . "\r\n\r\n$answer";
    my $res = http_read($c, 5);
    is($res->{status}, 200, 'client gets the answer');
    is($res->{body}, $answer, 'answer intact');

    # kept for the next request: the same connection carries it
    $c = http_send($port, 'POST', '/v1/chat/completions',
                   { 'Content-Type' => 'application/json' }, $chat);
    $req = read_head($s, 5);
    while ($req->{raw} =~ m{^GET /gpugate/ping}) {
        print $s "HTTP/1.1 204 No Content\r\n\r\n";
        $req = read_head($s, 5);
    }
    like($req->{raw}, qr{^POST /v1/chat/completions}, 'connection reused');
    print $s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    is(http_read($c, 5)->{body}, 'ok', 'second answer');

    ok(wait_until(3, sub {
        (my $l = `cat ${\ $ngx->dir}/logs/tun.log`) =~ /^200 t-agent-1 200$/m
    }), '$upstream_addr names the agent');

    # a model the agent does not advertise: 503 at once, JSON
    $res = http_request($port, 'POST', '/v1/chat/completions',
        { 'Content-Type' => 'application/json' },
        '{"model":"other-model","messages":[{"role":"user","content":"x"}]}');
    is($res->{status}, 503, 'model no agent serves: 503');
    like($res->{body}, qr/"code":"no_capacity"/, '... no_capacity JSON');
    is($res->{headers}{'retry-after'}, '1', '... with Retry-After');

    # a dead agent: no pong, nginx closes within ping + ping_timeout
    ok(closed_within($s, 4), 'unanswered ping: connection closed');
    like($ngx->log, qr/did not answer a ping/, '... and logged');
}

# --- refusals ------------------------------------------------------------

{
    my ($s, $r) = tunnel_connect($port, 't-agent-1', 'gga-wrong-token');
    ok(!$s, 'bad token refused');
    is($r->{status}, 401, 'bad token: 401');
    like($r->{body}, qr/"code":"invalid_credentials"/, 'bad token: JSON');
    like($ngx->log, qr/agent "t-agent-1" refused: /, 'bad token: logged');

    ($s, $r) = tunnel_connect($port, 'nobody-here', $token);
    is($r->{status}, 401, 'unknown agent: 401');
    like($r->{body}, qr/"code":"invalid_credentials"/,
         'unknown agent: same answer as a bad token');

    # the fake salt is stable, so probing names learns nothing
    my @salts;
    for (1 .. 2) {
        my $c = connect_raw();
        my ($r1) = tunnel_step1($c, 'nobody-here');
        my ($d) = $r1->{headers}{'www-authenticate'} =~ /data=(\S+)/;
        push @salts, decode_base64($d) =~ /,s=([^,]+),i=4096$/ ? $1 : '';
    }
    ok($salts[0] && $salts[0] eq $salts[1], 'unknown agent: stable salt');

    # replay: step 2 with a sid from another connection
    my $a = connect_raw();
    my ($r1, $st) = tunnel_step1($a, 't-agent-2');
    my $b = connect_raw();
    my ($r2) = tunnel_step2($b, $r1, $st, $other,
                            Upgrade => 'gpugate-tunnel/1');
    is($r2->{status}, 401, 'sid used on another connection: 401');
    like($r2->{body}, qr/"code":"invalid_sid"/, '... invalid_sid');
    ($r2) = tunnel_step2($a, $r1, $st, $other,
                         Upgrade => 'gpugate-tunnel/1');
    is($r2->{status}, 101, 'the owner still completes it');
    close $a;

    # replay of a completed exchange on a new connection
    my $c = connect_raw();
    my ($r3) = tunnel_step1($c, 't-agent-2');
    ($r2) = tunnel_step2($c, $r1, $st, $other, Upgrade => 'gpugate-tunnel/1');
    is($r2->{status}, 401, 'replayed step 2: 401');

    # missing Upgrade
    $c = connect_raw();
    ($r1, $st) = tunnel_step1($c, 't-agent-2');
    ($r2) = tunnel_step2($c, $r1, $st, $other);
    is($r2->{status}, 426, 'no Upgrade: 426');

    # bad capacity header
    $c = connect_raw();
    ($r1, $st) = tunnel_step1($c, 't-agent-2');
    ($r2) = tunnel_step2($c, $r1, $st, $other,
        Upgrade => 'gpugate-tunnel/1', 'X-Gpugate-Capacity' => '0');
    is($r2->{status}, 400, 'capacity 0: 400');

    # malformed Authorization
    $c = connect_raw();
    print $c "GET /gpugate/tunnel HTTP/1.1\r\nHost: x\r\n"
           . "Authorization: SCRAM-SHA-256 data=!!!\r\n\r\n";
    $r = read_head($c);
    is($r->{status}, 400, 'malformed Authorization: 400');

    # no credentials at all
    $r = http_request($port, 'GET', '/gpugate/tunnel');
    is($r->{status}, 401, 'no Authorization: 401');
    is($r->{headers}{'www-authenticate'}, 'SCRAM-SHA-256',
       '... naming the scheme');

    # revoked agents are refused like unknown ones
    psql("UPDATE agents SET revoked_at = now() WHERE name = 't-agent-2'");
    ($s, $r) = tunnel_connect($port, 't-agent-2', $other);
    is($r->{status}, 401, 'revoked agent: 401');

    # garbage bytes
    $c = connect_raw();
    print $c "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    $r = read_head($c);
    is($r->{status}, 400, 'garbage: 400 from nginx');

    # slow-loris: a head that never ends is cut at client_header_timeout
    $c = connect_raw();
    print $c "GET /gpugate/tunnel HTTP/1.1\r\nHost: x\r\n";
    my $t0 = time;
    ok(closed_within($c, 5), 'slow-loris: connection closed');
    cmp_ok(time - $t0, '<', 4, '... by client_header_timeout');

    # oversized headers
    $c = connect_raw();
    print $c "GET /gpugate/tunnel HTTP/1.1\r\nHost: x\r\nAuthorization: "
           . "SCRAM-SHA-256 data=" . ('A' x 4000) . "\r\n\r\n";
    $r = read_head($c);
    ok($r->{status} == 400 || $r->{status} == 494, 'oversized header: 4xx')
        or diag "status $r->{status}";

    # nothing parked was lost on the way: the worker lives
    $r = http_request($port, 'GET', '/gpugate/tunnel');
    is($r->{status}, 401, 'worker still serves');
    unlike($ngx->log, qr/\[(alert|emerg)\]|signal \d+/, 'no alerts, no crash');
}

# --- queueing ------------------------------------------------------------

{
    my $t = make_agent('t-agent-3');
    my ($s) = tunnel_connect($port, 't-agent-3', $t,
                             'X-Gpugate-Models' => 'mock-model',
                             'X-Gpugate-Capacity' => 2);
    ok($s, 'agent 3 connected');

    # first request takes the only connection; the second waits
    my $c1 = http_send($port, 'POST', '/v1/chat/completions',
                       { 'Content-Type' => 'application/json' }, $chat);
    my $req = read_head($s, 5);
    like($req->{raw}, qr{^POST}, 'first request on the connection');
    my $waits = sub { scalar(() = $ngx->log =~ /request waits/g) };
    my $waited = $waits->();
    my $c2 = http_send($port, 'POST', '/v1/chat/completions',
                       { 'Content-Type' => 'application/json' }, $chat);
    wait_until(10, sub { $waits->() > $waited })
        or diag 'the second request was not seen waiting';

    # a second connection of the same agent serves the waiting request
    my ($s2) = tunnel_connect($port, 't-agent-3', $t,
                              'X-Gpugate-Models' => 'mock-model',
                              'X-Gpugate-Capacity' => 2);
    my $req2 = read_head($s2, 5);
    like($req2->{raw}, qr{^POST}, 'queued request went to the new one');
    print $s2 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc2";
    print $s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc1";
    is(http_read($c1, 5)->{body}, 'c1', 'first answered');
    is(http_read($c2, 5)->{body}, 'c2', 'queued one answered');

    # no free connection for queue_timeout: 503 no_capacity
    my @busy = map {
        http_send($port, 'POST', '/v1/chat/completions',
                  { 'Content-Type' => 'application/json' }, $chat)
    } 1 .. 3;
    read_head($s, 5);
    read_head($s2, 5);
    my $r = http_read($busy[2], 5);
    is($r->{status}, 503, 'queue timeout: 503');
    like($r->{body}, qr/"no_capacity"/, '... no_capacity');
    close $s;
    close $s2;
    is(http_read($busy[0], 5)->{status}, 502, 'agent gone mid-request: 502');
    http_read($busy[1], 5);
}

# --- reported load breaks ties ------------------------------------------------

{
    my $t4 = make_agent('t-agent-4');
    my $t5 = make_agent('t-agent-5');
    my @h = ('X-Gpugate-Models' => 'other-model', 'X-Gpugate-Capacity' => 4);
    my $other_chat = '{"model":"other-model","messages":'
                   . '[{"role":"user","content":"hi"}]}';

    my ($bad, $r) = tunnel_connect($port, 't-agent-4', $t4, @h,
                                   'X-Gpugate-Load' => 'queue=-1');
    is($r->{status}, 400, 'X-Gpugate-Load malformed: 400');

    my ($s4) = tunnel_connect($port, 't-agent-4', $t4, @h,
                              'X-Gpugate-Load' => 'queue=5, gpu_free_mb=9000');
    my ($s5) = tunnel_connect($port, 't-agent-5', $t5, @h,
                              'X-Gpugate-Load' => 'queue=0');
    ok($s4 && $s5, 'two agents with reported load connected');

    my $c = http_send($port, 'POST', '/v1/chat/completions',
                      { 'Content-Type' => 'application/json' }, $other_chat);
    my @got = IO::Select->new($s4, $s5)->can_read(5);
    ok(@got == 1 && $got[0] == $s5,
       'equal in-flight: the shorter runtime queue is chosen');
    read_head($s5, 5);
    print $s5 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    is(http_read($c, 5)->{status}, 200, '... and answers');

    # ping answers carry fresh figures: equal queues, more GPU memory wins
    my %load = ($s4 => 'queue=0, gpu_free_mb=8000',
                $s5 => 'queue=0, gpu_free_mb=1000, future_key=1');
    for my $s ($s4, $s5) {
        my $ping = read_head($s, 5);
        like($ping->{raw}, qr{^GET /gpugate/ping}, 'idle connection pinged');
        print $s "HTTP/1.1 204 No Content\r\nX-Gpugate-Load: $load{$s}\r\n\r\n";
    }
    # both answers read: the new figures shown, the tunnels parked again
    wait_until(10, sub {
        my ($a4) = agent_instances($port, 't-agent-4');
        my ($a5) = agent_instances($port, 't-agent-5');
        $a4 && $a5 && $a4->{gpu_free_mb} == 8000 && $a4->{queue} == 0
            && $a5->{gpu_free_mb} == 1000 && $a4->{workers}[0]{idle}
            && $a5->{workers}[0]{idle}
    }) or diag 'the ping answers\' figures were not seen';

    $c = http_send($port, 'POST', '/v1/chat/completions',
                   { 'Content-Type' => 'application/json' }, $other_chat);
    @got = IO::Select->new($s4, $s5)->can_read(5);
    ok(@got == 1 && $got[0] == $s4,
       'equal queues: more free GPU memory is chosen');
    read_head($s4, 5);
    print $s4 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    is(http_read($c, 5)->{status}, 200, '... and answers');
    close $s4;
    close $s5;
}

# --- a request no agent answered is retried on another ---------------------

{
    my $t6 = make_agent('t-agent-6');
    my $t7 = make_agent('t-agent-7');
    my @h = ('X-Gpugate-Models' => 'retry-model', 'X-Gpugate-Capacity' => 4);
    my $retry_chat = '{"model":"retry-model","messages":'
                   . '[{"role":"user","content":"hi"}]}';

    # the shorter queue makes agent 6 the first choice
    my ($s6) = tunnel_connect($port, 't-agent-6', $t6, @h,
                              'X-Gpugate-Load' => 'queue=0');
    my ($s7) = tunnel_connect($port, 't-agent-7', $t7, @h,
                              'X-Gpugate-Load' => 'queue=3');
    ok($s6 && $s7, 'two agents for the retry connected');

    my $c = http_send($port, 'POST', '/retry/v1/chat/completions',
                      { 'Content-Type' => 'application/json' }, $retry_chat);
    my $req6 = read_head($s6, 5);
    like($req6->{raw}, qr{^POST /retry/v1/chat/completions},
         'the request reached agent 6 first');
    close $s6;                      # gone before answering a byte

    my $req7 = read_head($s7, 5);
    like($req7->{raw}, qr{^POST /retry/v1/chat/completions},
         '... and was sent again to agent 7');
    is($req7->{body}, $retry_chat, '... with the same body');
    print $s7 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    my $r = http_read($c, 5);
    is($r->{status}, 200, 'the client got agent 7\'s answer');
    is($r->{body}, 'ok', '... and only that');
    close $c;

    ok(wait_until(5, sub {
        `cat ${\ $ngx->dir}/logs/tun.log` =~ /^200 t-agent-6, t-agent-7 502, 200$/m
    }), 'access log: both agents tried, in order');

    # an answer already begun is not retried: the client sees the cut
    $c = http_send($port, 'POST', '/retry/v1/chat/completions',
                   { 'Content-Type' => 'application/json' }, $retry_chat);
    read_head($s7, 5);
    print $s7 "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart";
    close $s7;
    $r = http_read($c, 5);
    is($r->{status}, 200, 'an answer cut after its head keeps its status');
    isnt($r->{body}, 'partpartpa', '... is not completed by a retry');
}

unless (Test::More->builder->is_passing) {
    diag(join "", grep { /gpugate tunnel|\[(warn|error|alert|crit)\]/ }
                  split /^/m, `cat ${\ $ngx->dir}/logs/error.log`);
}

done_testing();
