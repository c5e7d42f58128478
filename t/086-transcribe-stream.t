# Streamed transcriptions: /v1/audio/transcriptions with the form field
# stream=true answers OpenAI's SSE events (transcript.text.delta per
# word, then transcript.text.done with the usage), through an upstream
# pool and through the agent's tunnel.  The stream reaches the client
# unbuffered and whole, and its usage lands in the ledger: input tokens
# as prompt, output tokens as completion, stream true, complete, with a
# time to first token; stream=false (or no field) still answers JSON.
#
# Test::More.  Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use Test::More;

use GpugateTest qw(start_nginx http_request psql make_key wait_until
                   env_or_skip free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
my $mock_bin = "$root/build/bin/gpugate-mock-runtime";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $conninfo = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $dir = tempdir('gpugate-ts-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $gw = 'ts-' . $$ . '-' . time;
my $json = JSON::PP->new;

my $mock_port = free_port();
my $mock_pid = fork // die;
if (!$mock_pid) {
    exec $mock_bin, '--listen', "127.0.0.1:$mock_port", '--models',
         'mock-model', '--log-file', "$dir/mock.log", '--tokens', '5';
    exit 1;
}
wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mock_port") })
    or BAIL_OUT('mock runtime did not start');

my $token = make_agent('gpu-ts');
open my $tf, '>', "$dir/token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/token";

my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=kts:1m ttl=60s;
    gpugate_auth_postgres "$conninfo";
    gpugate_usage_ledger "$conninfo" batch=1 interval=20ms gateway=$gw;
    upstream runtime { server 127.0.0.1:$mock_port; keepalive 4; }
    upstream agents { gpugate_tunnel queue=16 queue_timeout=5s; }
    gpugate_model mock-model pool=runtime;
    gpugate_model tunnel-model pool=agents target=mock-model;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            client_max_body_size 2m;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ng->port;

my $agent_pid = fork // die;
if (!$agent_pid) {
    open STDERR, '>', "$dir/agent.log" or die;
    exec $agent_bin, '--gateway', "http://127.0.0.1:$port/gpugate/tunnel",
         '--name', 'gpu-ts', '--token-file', "$dir/token",
         '--runtime', "http://127.0.0.1:$mock_port", '--capacity', 4,
         '--spare', 1;
    exit 1;
}

END {
    kill 'TERM', $agent_pid if $agent_pid;
    kill 'TERM', $mock_pid if $mock_pid;
}

my ($key) = make_key('ts-tenant');

my $B = 'gpugate-ts-b0undary';

# audio of $size bytes; the mock counts one input token per 32,000 bytes
sub upload {
    my ($model, $size, %f) = @_;
    my $body = "--$B\r\nContent-Disposition: form-data; name=\"file\"; "
             . "filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
             . ('A' x $size) . "\r\n";
    for my $k ('model', sort keys %f) {
        $body .= "--$B\r\nContent-Disposition: form-data; name=\"$k\"\r\n"
               . "\r\n" . ($k eq 'model' ? $model : $f{$k}) . "\r\n";
    }
    $body .= "--$B--\r\n";
    return http_request($port, 'POST', '/v1/audio/transcriptions',
                        { 'Content-Type' => "multipart/form-data; "
                                            . "boundary=$B",
                          Authorization => "Bearer $key" }, $body, 10);
}

my $last_id = 0;

sub row {
    my $r = '';
    wait_until(10, sub {
        $r = psql("SELECT id || ' ' || status || ' ' || prompt_tokens "
                  . "|| ' ' || completion_tokens || ' ' || stream || ' ' "
                  . "|| partial || ' ' || (ttft_ms IS NOT NULL) "
                  . "FROM usage_events WHERE gateway = '$gw' "
                  . "AND id > $last_id ORDER BY id LIMIT 1");
        return $r ne '';
    });
    my ($id, @rest) = split ' ', $r;
    $last_id = $id if $id;
    return "@rest";
}

my $tries = 0;
ok(wait_until(15, sub {
       $tries++;
       upload('tunnel-model', 10)->{status} == 200 }),
   'the agent is connected');
wait_until(10, sub {
    psql("SELECT count(*) FROM usage_events WHERE gateway = '$gw'") >= $tries
});
$last_id = psql("SELECT max(id) FROM usage_events WHERE gateway = '$gw'");

for my $model ('mock-model', 'tunnel-model') {
    my $via = $model eq 'mock-model' ? 'pool' : 'tunnel';

    for my $size (10, 100_000) {
        my $in = int($size / 32000) + 1;
        my $r = upload($model, $size, stream => 'true');
        my @data = map { eval { $json->decode($_) } || {} }
                   $r->{body} =~ /^data: (.*)$/mg;
        my @types = map { $_->{type} // '?' } @data;
        my $text = join '', map { $_->{delta} // '' } @data[0 .. $#data - 1];

        ok($r->{status} == 200
           && ($r->{headers}{'content-type'} // '') =~ m{^text/event-stream}
           && ($r->{headers}{'x-accel-buffering'} // '') eq 'no',
           "$via, $size bytes: an event stream, passed unbuffered")
            or diag $r->{status}, ' ', $r->{body};
        is("@types", join(' ', ('transcript.text.delta') x 5,
                          'transcript.text.done'),
           "$via, $size bytes: five deltas, then done");
        ok(@data && $data[-1]{text} eq $text
           && $data[-1]{usage}{input_tokens} == $in
           && $data[-1]{usage}{output_tokens} == 5,
           "$via, $size bytes: done has the whole text and the usage");
        is(row(), "200 $in 5 true false true",
           "$via, $size bytes: the ledger: $in in, 5 out, a complete "
           . "stream with a first token");
    }

    for my $f ([stream => 'false'], []) {
        my $r = upload($model, 100_000, @$f);
        my $m = eval { $json->decode($r->{body}) } || {};
        ok($r->{status} == 200 && defined $m->{text}
           && ($m->{usage}{type} // '') eq 'duration',
           "$via, stream=" . ($f->[1] // 'absent') . ': a JSON answer');
        is(row(), '200 4 0 false false false',
           "$via, stream=" . ($f->[1] // 'absent') . ': seconds as input');
    }
}

done_testing();
