# Multipart uploads: /v1/audio/transcriptions, /v1/audio/translations and
# /v1/images/edits, through an upstream pool and through the agent's
# tunnel.  The model field is read as the upload streams in, wherever it
# lies (before or after the file); a model the key may not use is refused
# before any runtime sees the upload; a model known to the runtime by
# another name (target=) is replaced in the body, the file's bytes
# untouched; bodies that are not multipart, have no model or two, or are
# cut are refused naming the fault; client_max_body_size applies.  A
# 10 MB upload does not grow the nginx worker's or the agent's memory by
# its size.
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
my $dir = tempdir('gpugate-mp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $gw = 'mp-' . $$ . '-' . time;

my $mock_port = free_port();
my $mock_pid = fork // die;
if (!$mock_pid) {
    exec $mock_bin, '--listen', "127.0.0.1:$mock_port", '--models',
         'mock-model', '--log-file', "$dir/mock.log", '--tokens', '3';
    exit 1;
}
wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$mock_port") })
    or BAIL_OUT('mock runtime did not start');

my $token = make_agent('gpu-mp');
open my $tf, '>', "$dir/token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/token";

my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=kmp:1m ttl=60s;
    gpugate_auth_postgres "$conninfo";
    gpugate_usage_ledger "$conninfo" batch=1 interval=100ms gateway=$gw;
    upstream runtime { server 127.0.0.1:$mock_port; keepalive 4; }
    upstream agents { gpugate_tunnel queue=16 queue_timeout=5s; }
    gpugate_model mock-model pool=runtime;
    gpugate_model tunnel-model pool=agents target=mock-model;
    gpugate_model other-model pool=runtime;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            client_max_body_size 12m;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
            error_page 413 @err;
        }
        location @err { gpugate_error; }
SRV

my $port = $ng->port;

my $agent_pid = fork // die;
if (!$agent_pid) {
    open STDERR, '>', "$dir/agent.log" or die;
    exec $agent_bin, '--gateway', "http://127.0.0.1:$port/gpugate/tunnel",
         '--name', 'gpu-mp', '--token-file', "$dir/token",
         '--runtime', "http://127.0.0.1:$mock_port", '--capacity', 8,
         '--spare', 2;
    exit 1;
}

END {
    kill 'TERM', $agent_pid if $agent_pid;
    kill 'TERM', $mock_pid if $mock_pid;
}

my ($key) = make_key('mp-tenant');
my ($narrow) = make_key('mp-tenant', models => ['other-model']);
my $json = JSON::PP->new;

my $B = 'gpugate-test-b0undary';

sub field { "--$B\r\nContent-Disposition: form-data; name=\"$_[0]\"\r\n\r\n$_[1]\r\n" }

sub file_part {
    my ($name, $data) = @_;
    return "--$B\r\nContent-Disposition: form-data; name=\"$name\"; "
         . "filename=\"f.bin\"\r\nContent-Type: application/octet-stream"
         . "\r\n\r\n$data\r\n";
}

sub upload {
    my ($path, $body, %h) = @_;
    my %all = ('Content-Type' => "multipart/form-data; boundary=$B",
               Authorization => "Bearer $key", %h);
    return http_request($port, 'POST', $path, \%all, $body, 30);
}

sub decode { my $v = eval { $json->decode($_[0]) }; $v || {} }

sub row {
    my ($endpoint, $model) = @_;
    my $r = '';
    wait_until(10, sub {
        $r = psql("SELECT prompt_tokens || ' ' || completion_tokens "
                  . "FROM usage_events WHERE gateway = '$gw' AND "
                  . "endpoint = '$endpoint' AND model = '$model' AND "
                  . "status = 200 ORDER BY id DESC LIMIT 1");
        return $r ne '';
    });
    return $r;
}

# the peak RSS (VmHWM) of the nginx worker and of the agent, in kB: a
# buffer freed at the end of the request still shows in it
sub rss {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/status" or return 0;
    my ($kb) = map { /^VmHWM:\s+(\d+)/ ? $1 : () } <$f>;
    return $kb || 0;
}

# the worker: the master's only child (the test's nginx runs one)
my $master = $ng->pid;
my ($worker) = grep { /^\d+$/ } map { chomp; $_ } `pgrep -P $master`;
$worker ||= $master;
ok(rss($worker) > 0 && rss($agent_pid) > 0, 'the peak RSS can be read');

my $audio = join '', map { chr(($_ * 7) % 256) } 0 .. 64_000 - 1;  # 2 s

ok(wait_until(15, sub {
       upload('/v1/audio/transcriptions',
              field('model', 'tunnel-model') . file_part('file', 'x')
              . "--$B--\r\n")->{status} == 200 }),
   'the agent is connected');

for my $model ('mock-model', 'tunnel-model') {
    my $via = $model eq 'mock-model' ? 'pool' : 'tunnel';

    for my $path ('/v1/audio/transcriptions', '/v1/audio/translations') {
        # the model after the file: read once the file has passed
        my $r = upload($path, file_part('file', $audio)
                              . field('response_format', 'json')
                              . field('model', $model) . "--$B--\r\n");
        my $j = decode($r->{body});
        ok($r->{status} == 200 && ($j->{text} // '') =~ /\S/
           && $j->{usage}{seconds} == 3,
           "$via: $path: text for the upload, model after the file")
            or diag $r->{status}, ' ', $r->{body};
        is(row($path, $model), '3 0', "$via: $path: seconds in the ledger");
    }

    my $r = upload('/v1/images/edits',
                   field('model', $model) . file_part('image', "\x89PNG")
                   . field('prompt', 'a hat') . "--$B--\r\n");
    ok($r->{status} == 200 && @{ decode($r->{body})->{data} || [] } == 1,
       "$via: /v1/images/edits answers an image");
    is(row('/v1/images/edits', $model), '0 1', "$via: one image counted");
}

# --- refusals ---------------------------------------------------------------

for my $path ('/v1/audio/transcriptions', '/v1/audio/translations',
              '/v1/images/edits') {
    my $r = upload($path, file_part('file', $audio)
                          . field('model', 'mock-model') . "--$B--\r\n",
                   Authorization => "Bearer $narrow");
    my $e = decode($r->{body})->{error} || {};
    ok($r->{status} == 403 && ($e->{code} // '') eq 'model_not_allowed',
       "$path: a model the key may not use: 403");

    $r = upload($path, field('model', 'nope') . "--$B--\r\n");
    is($r->{status}, 404, "$path: an unknown model: 404");

    for my $c ([file_part('file', 'x') . "--$B--\r\n", 'model',
                'no model field'],
               [field('model', 'mock-model') . field('model', 'mock-model')
                . "--$B--\r\n", 'model', 'two model fields'],
               [file_part('model', 'mock-model') . "--$B--\r\n", 'model',
                'a model file'],
               [field('model', 'mock-model') . file_part('file', 'x'),
                undef, 'a body cut before its closing delimiter']) {
        my ($body, $param, $what) = @$c;
        $r = upload($path, $body);
        $e = decode($r->{body})->{error} || {};
        ok($r->{status} == 400 && ($e->{param} // '') eq ($param // '')
           && $e->{message}, "$path: $what: 400");
    }

    $r = upload($path, '{"model":"mock-model"}',
                'Content-Type' => 'application/json');
    $e = decode($r->{body})->{error} || {};
    ok($r->{status} == 400 && ($e->{code} // '') eq 'invalid_content_type',
       "$path: a JSON body: 400");
}

{
    my $r = upload('/v1/audio/transcriptions',
                   field('model', 'mock-model')
                   . file_part('file', 'x' x (13 * 1024 * 1024))
                   . "--$B--\r\n");
    my $e = decode($r->{body})->{error} || {};
    ok($r->{status} == 413 && $e->{message},
       'over client_max_body_size: 413 in OpenAI\'s JSON');
}

# --- a 10 MB upload: memory does not grow by its size --------------------

{
    my $big = join '', map { chr(($_ * 13) % 256) x 1024 } 0 .. 10 * 1024 - 1;
    my $want = int(length($big) / 32000) + 1;

    for my $model ('mock-model', 'tunnel-model') {
        my $via = $model eq 'mock-model' ? 'pool' : 'tunnel';
        my ($w0, $a0) = (rss($worker), rss($agent_pid));
        my $body = field('model', $model) . file_part('file', $big)
                 . "--$B--\r\n";
        my $r = upload('/v1/audio/transcriptions', $body);
        my ($w1, $a1) = (rss($worker), rss($agent_pid));
        ok($r->{status} == 200
           && decode($r->{body})->{usage}{seconds} >= $want,
           "$via: a 10 MB upload is transcribed")
            or diag $r->{status}, ' ', substr($r->{body}, 0, 300);
        cmp_ok($w1 - $w0, '<', 4096,
               "$via: the nginx worker's peak RSS grew by less than 4 MB "
               . "(from $w0 kB to $w1 kB)");
        cmp_ok($a1 - $a0, '<', 4096,
               "$via: the agent's peak RSS grew by less than 4 MB "
               . "(from $a0 kB to $a1 kB)") if $via eq 'tunnel';
    }
}

unlike($ng->log, qr/exited on signal|\[(alert|crit|emerg)\]/,
       'no worker crashed, nothing alarming logged');

done_testing();
