# The official client libraries, unmodified (npm "openai" and
# "@anthropic-ai/sdk", pinned versions), against the gateway through an
# upstream pool and through the agent's tunnel: responses.create (plain
# and stream), images.generate, audio.transcriptions.create with a file,
# audio.speech.create, Anthropic messages.create and messages.stream, and
# an Anthropic refusal the SDK reads as its own error type.
#
# Runs when node and npm are present; the packages are installed once
# into build/npm (GPUGATE_NPM_DIR elsewhere) and the test is skipped when
# the registry cannot be reached.
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

use GpugateTest qw(start_nginx http_request make_key wait_until sdk_install
                   env_or_skip free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
my $mock_bin = "$root/build/bin/gpugate-mock-runtime";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

for my $tool (qw(node npm)) {
    plan skip_all => "$tool is not installed"
        unless system("command -v $tool >/dev/null 2>&1") == 0;
}

my ($npm, $have_sdk) = sdk_install();

plan skip_all => "npm could not install the SDKs (see $npm/npm-install.log)"
    unless $have_sdk;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-sdk-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my $mock_port = free_port();
my $mock_pid = fork // die;
if (!$mock_pid) {
    exec $mock_bin, '--listen', "127.0.0.1:$mock_port", '--models',
         'mock-model', '--log-file', "$dir/mock.log", '--tokens', '3';
    exit 1;
}
wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mock_port") })
    or BAIL_OUT('mock runtime did not start');

my $token = make_agent('gpu-sdk');
open my $tf, '>', "$dir/token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/token";

my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=ksdk:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
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
            client_max_body_size 20m;
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
         '--name', 'gpu-sdk', '--token-file', "$dir/token",
         '--runtime', "http://127.0.0.1:$mock_port", '--capacity', 8,
         '--spare', 2;
    exit 1;
}

END {
    kill 'TERM', $agent_pid if $agent_pid;
    kill 'TERM', $mock_pid if $mock_pid;
}

my ($key) = make_key('sdk-tenant');

ok(wait_until(15, sub {
       http_request($port, 'POST', '/v1/rerank',
                    { Authorization => "Bearer $key",
                      'Content-Type' => 'application/json' },
                    '{"model":"tunnel-model","query":"q"}')->{status}
       == 200 }), 'the agent is connected');

for my $model ('mock-model', 'tunnel-model') {
    my $via = $model eq 'mock-model' ? 'pool' : 'tunnel';

    local $ENV{GG_NPM_DIR} = $npm;
    my @lines = `node '$FindBin::Bin/support/sdk-check.mjs' 'http://127.0.0.1:$port' '$key' '$model' 2>&1`;
    my %r = map { my $j = eval { decode_json($_) }; $j ? ($j->{name} => $j) : () }
            @lines;
    diag @lines unless keys %r == 8;

    my $ok = sub {
        my ($name, $test, $what) = @_;
        my $r = $r{$name} || { detail => 'no result' };
        ok($r->{ok} && $test->($r->{detail} || {}), "$via: $name: $what")
            or diag explain $r;
    };

    $ok->('responses.create', sub {
        $_[0]{text} =~ /\S/ && $_[0]{usage}{output_tokens} == 3 },
        'output_text and usage');
    $ok->('responses.create stream', sub {
        $_[0]{types}[0] eq 'response.created'
        && $_[0]{types}[-1] eq 'response.completed'
        && $_[0]{usage}{output_tokens} == 3 },
        'typed events, usage at response.completed');
    $ok->('images.generate', sub { $_[0]{n} == 2 && $_[0]{b64} },
        'two images');
    $ok->('audio.transcriptions.create', sub { $_[0]{text} =~ /\S/ },
        'a file upload transcribed');
    $ok->('audio.speech.create', sub {
        $_[0]{bytes} == 11 * 256 && $_[0]{type} eq 'audio/mpeg' },
        'the audio bytes');
    $ok->('messages.create', sub {
        $_[0]{type} eq 'message' && $_[0]{usage}{output_tokens} == 3 },
        'a message with usage');
    $ok->('messages.stream', sub {
        $_[0]{text} =~ /\S/ && $_[0]{usage}{output_tokens} == 3
        && $_[0]{stop} eq 'end_turn' },
        'the streamed text and final usage');
    $ok->('messages.create refused', sub {
        $_[0]{status} == 404 && $_[0]{type} eq 'not_found_error' },
        'an unknown model is the SDK\'s NotFoundError');
}

unlike($ng->log, qr/exited on signal|\[(alert|crit|emerg)\]/,
       'no worker crashed, nothing alarming logged');

done_testing();
