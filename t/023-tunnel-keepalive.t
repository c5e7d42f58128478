# The agent's kept-alive connections to the runtime: reused across
# requests (the mock runtime counts its connections), dropped when the
# runtime closes them while idle, never reused after "Connection: close",
# and a request the runtime drops unanswered on a reused connection (its
# keep-alive limit ran out just then) is sent again on a new one.  With
# runtime_keepalive 0 every request has its own connection.  Also
# /v1/models: configured names plus what connected agents advertise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use Test::More;

use GpugateTest qw(start_nginx http_request http_send http_read
                   wait_until env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent write_token slurp
                     mock_metric adopt);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-keepalive-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# the mock runtime closes keep-alive connections idle for 300 ms
my $mock = start_mock(dir => $dir, models => 'mock-model',
                      args => [ '--keepalive-timeout-ms', 300 ]);
my $mock_port = $mock->port;
my $mock_log = $mock->log;

# A scripted runtime: answers {"conn":N,"req":K}; "X-Fake: close" answers
# with Connection: close; "X-Fake: drop-reused" closes, unanswered, any
# connection on its second request.  It listens on a port of the kernel's
# choosing before the fork, so it is up once its port is known.
my $fake_l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 64, ReuseAddr => 1)
    or die "listen: $!\n";
my $fake_port = $fake_l->sockport;
my $fake_log = "$dir/fake.log";
my $fake_pid = fork // die;
if (!$fake_pid) {
    $SIG{PIPE} = 'IGNORE';    # a client gone mid-answer must not kill us
    my $l = $fake_l;
    open my $log, '>>', $fake_log or POSIX::_exit(1);
    $log->autoflush(1);
    my $sel = IO::Select->new($l);
    my (%buf, %id, %nreq);
    my $conns = 0;
    while (1) {
        for my $s ($sel->can_read) {
            if ($s == $l) {
                my $c = $l->accept or next;
                $id{$c} = ++$conns;
                $nreq{$c} = 0;
                $buf{$c} = '';
                $sel->add($c);
                next;
            }
            my $n = sysread($s, my $chunk, 65536);
            if (!$n) {
                $sel->remove($s);
                close $s;
                next;
            }
            $buf{$s} .= $chunk;
            while ($buf{$s} =~ /\A(.*?\r\n\r\n)/s) {
                my $head = $1;
                my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
                $len //= 0;
                last if length($buf{$s}) < length($head) + $len;
                substr($buf{$s}, 0, length($head) + $len) = '';
                my $k = ++$nreq{$s};
                my ($mode) = $head =~ /^x-fake:\s*(\S+)/mi;
                $mode //= '';
                my ($close) = $head =~ /^connection:\s*(\S+)/mi;
                print $log "conn $id{$s} req $k mode $mode"
                    . ($close ? " connection $close" : '') . "\n";
                if ($mode eq 'drop-reused' && $k >= 2) {
                    $sel->remove($s);
                    close $s;
                    last;
                }
                my $body = "{\"conn\":$id{$s},\"req\":$k}";
                syswrite($s, "HTTP/1.1 200 OK\r\n"
                    . "Content-Type: application/json\r\n"
                    . 'Content-Length: ' . length($body) . "\r\n"
                    . ($mode eq 'close' ? "Connection: close\r\n" : '')
                    . "\r\n$body");
                if ($mode eq 'close') {
                    $sel->remove($s);
                    close $s;
                    last;
                }
            }
        }
    }
}
close $fake_l;
adopt($fake_pid, 'scripted runtime');

write_token($dir, $_) for qw(ka-mock ka-fake ka-off);

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
    }
    upstream elsewhere { server 127.0.0.1:1; }
    gpugate_model mock-model pool=agents;
    gpugate_model fake* pool=agents;
    gpugate_model off* pool=agents;
    gpugate_model stray* pool=elsewhere;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=30s;
        }
        location = /v1/models { gpugate_models; }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

sub agent {
    my ($name, $rport, $model, @extra) = @_;
    return start_agent(dir => $dir, name => $name, port => $port,
                       args => [ '--runtime', "http://127.0.0.1:$rport",
                                 '--models', $model, '--spare', 2,
                                 '--log-level', 'debug', @extra ]);
}

sub chat {
    my ($model, $stream, %h) = @_;
    my $body = "{\"model\":\"$model\",\"stream\":"
             . ($stream ? 'true' : 'false')
             . ',"messages":[{"role":"user","content":"hi"}]}';
    return http_read(http_send($port, 'POST', '/v1/chat/completions',
                               { 'Content-Type' => 'application/json', %h },
                               $body), 10);
}

sub mock_conns { mock_metric($mock_port, 'gpugate_mock_connections_total') }

sub model_ids {
    my $r = http_request($port, 'GET', '/v1/models', {}, '');
    return join ' ', sort $r->{body} =~ /"id":"([^"]*)"/g;
}

is(model_ids(), 'mock-model', '/v1/models: configured names only, no agent');

# --- reuse ------------------------------------------------------------------

my $mock_agent = agent('ka-mock', $mock_port, 'mock-model');
my $mock_agent_log = $mock_agent->log;
ok(wait_until(10, sub { chat('mock-model', 0)->{status} == 200 }),
   'agent up, first request answered')
    or diag $mock_agent->text;

{
    my $want = http_request($mock_port, 'POST', '/v1/chat/completions',
        { 'Content-Type' => 'application/json' },
        '{"model":"mock-model","stream":true,'
        . '"messages":[{"role":"user","content":"hi"}]}');
    my $before = mock_conns();
    my ($ok, $same) = (0, 0);
    for my $i (1 .. 20) {
        my $r = chat('mock-model', $i % 2);
        $ok++ if $r->{status} == 200;
        $same++ if $i % 2 && $r->{body} eq $want->{body};
    }
    my $after = mock_conns();
    is($ok, 20, 'reuse: 20 requests in a row answered');
    is($same, 10, 'reuse: streams byte-identical to a direct request');
    # the metrics requests themselves are one connection each
    cmp_ok($after - $before - 1, '<=', 1,
           'reuse: 20 requests took at most one new runtime connection');
}

# --- the runtime closes an idle kept-alive connection -----------------------

{
    my $before = mock_conns();
    ok(wait_until(10, sub { slurp($mock_log)
                            =~ /keep-alive connection idle 300 ms: closed/ }),
       'runtime closed the idle connection');
    ok(wait_until(2, sub { slurp($mock_agent_log)
                           =~ /runtime closed an idle kept-alive/ }),
       'agent saw it close while pooled');
    is(chat('mock-model', 0)->{status}, 200,
       'next request answered on a new connection');
    is(mock_conns() - $before - 1, 1, '... exactly one new connection');
    unlike(slurp($mock_agent_log), qr/sending the request again/,
           'no retry was needed');
}

# --- Connection: close, and a reused connection dropped unanswered ----------

my $fake_agent = agent('ka-fake', $fake_port, 'fake-model');
my $fake_agent_log = $fake_agent->log;
ok(wait_until(10, sub { chat('fake-model', 0)->{status} == 200 }),
   'second agent up');
is(model_ids(), 'fake-model mock-model',
   '/v1/models: a connected agent\'s model, routed by a prefix, listed');

{
    my $r1 = chat('fake-model', 0, 'X-Fake' => 'close');
    my $r2 = chat('fake-model', 0);
    is($r1->{status}, 200, 'Connection: close answer passed on');
    my ($c1) = $r1->{body} =~ /"conn":(\d+)/;
    my ($c2, $k2) = $r2->{body} =~ /"conn":(\d+),"req":(\d+)/;
    isnt($c2, $c1, 'a connection the runtime closed is not reused');
    is($k2, 1, '... the next request opened a new one');

    my $r3 = chat('fake-model', 0, 'X-Fake' => 'drop-reused');
    my $r4 = chat('fake-model', 0, 'X-Fake' => 'drop-reused');
    is($r3->{status}, 200, 'first request on a connection answered');
    is($r4->{status}, 200, 'request dropped on a reused connection: 200');
    like($r4->{body}, qr/"req":1\}/, '... answered on a new connection');
    like(slurp($fake_agent_log), qr/sending the request again/,
         '... the agent logged the resend');
    like(slurp($fake_log), qr/^conn \d+ req 2 mode drop-reused$/m,
         'the runtime did see the dropped request');
    unlike(slurp($fake_log), qr/connection close/i,
           'the agent sent no Connection: close');
}

# --- runtime_keepalive 0 ----------------------------------------------------

my $off_agent = agent('ka-off', $fake_port,
                      'off-model,stray-model,fake-model',
                      '--runtime-keepalive', 0);
ok(wait_until(10, sub { chat('off-model', 0)->{status} == 200 }),
   'agent with runtime_keepalive 0 up');
is(model_ids(), 'fake-model mock-model off-model',
   '/v1/models: each model once; one routed to a non-tunnel pool is not');
{
    my @k = map { (chat('off-model', 0)->{body} =~ /"req":(\d+)/)[0] } 1 .. 3;
    is("@k", '1 1 1', 'runtime_keepalive 0: a connection per request');
    like(slurp($fake_log), qr/connection close$/m,
         '... each sent with Connection: close');
}

$fake_agent->stop;
ok(wait_until(5, sub { model_ids() eq 'fake-model mock-model off-model' }),
   '/v1/models: still listed while another agent has it');
$off_agent->stop;
ok(wait_until(5, sub { model_ids() eq 'mock-model' }),
   '/v1/models: gone with the last agent advertising it');

unlike($ngx->log, qr/signal \d+|\[alert\]/, 'no worker crashed');

done_testing();
