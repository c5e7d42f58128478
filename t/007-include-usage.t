# Streams whose client did not ask for usage: the gateway asks the runtime
# for it (stream_options.include_usage in the body the runtime receives),
# records the counts, and strips the usage-only chunk and every
# "usage": null from the stream, so the client gets byte for byte what the
# runtime sends without include_usage.  Clients that asked get the stream
# as it is; "gpugate_stream_usage off" leaves body and stream alone.
#
# Each answer through the gateway is compared with the same request sent
# straight to the mock (deterministic: same request, same bytes).  The
# body the runtime received comes back in X-Runtime-Body from a plain
# nginx proxy in front of the mock.
#
# Test::More: the token counts are only complete in the log phase, so the
# test reads the access log.  Needs: TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_MOCK_PORT (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Select;
use Test::More;

use GpugateTest qw(start_nginx http_request http_send wait_until
                   env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_MOCK_PORT));

my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $cap = free_port();

my $ng = start_nginx(http => <<"HTTP", server => <<"SRV");
    upstream mock { server 127.0.0.1:$mock; keepalive 4; }
    gpugate_model mock-model;
    gpugate_model other-model;
    gpugate_model alias-model target=mock-model;
    log_format usage '\$request_uri \$status p=\$gpugate_prompt_tokens '
                     'c=\$gpugate_completion_tokens '
                     'ttft=\$gpugate_ttft_ms partial=\$gpugate_usage_partial';

    # the runtime, seen through a proxy that reports the body it got
    server {
        listen 127.0.0.1:$cap;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            add_header X-Runtime-Body \$request_body always;
        }
    }
HTTP
        access_log logs/usage.log usage;
        location /v1/ {
            gpugate_openai on;
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /seen/v1/ {
            gpugate_openai on;
            proxy_pass http://127.0.0.1:$cap/v1/;
            proxy_http_version 1.1;
        }
        location /off/v1/ {
            gpugate_openai on;
            gpugate_stream_usage off;
            proxy_pass http://127.0.0.1:$cap/v1/;
            proxy_http_version 1.1;
        }
SRV

my $n = 0;

# post(PREFIX, PATH, BODY, HEADERS) through the gateway: the response and
# the access log line of that request
sub post {
    my ($prefix, $path, $body, $headers) = @_;
    my $tag = 'r' . ++$n;
    my $r = http_request($ng->port, 'POST', "$prefix$path?$tag",
                         $headers, $body);
    my $line;
    wait_until(10, sub {
        open my $fh, '<', $ng->dir . '/logs/usage.log' or return 0;
        ($line) = grep { /\?$tag / } <$fh>;
        return defined $line;
    });
    $r->{log} = $line // '';
    return $r;
}

sub count { my ($text, $re) = @_; return scalar(() = $text =~ /$re/g) }

# the same request straight to the mock
sub direct {
    my ($path, $body, $headers) = @_;
    return http_request($mock, 'POST', $path, $headers, $body)->{body};
}

my $msgs = '"messages":[{"role":"user","content":"Say hello"}]';
my $plain = qq({"model":"mock-model","stream":true,"max_tokens":5,$msgs});
my $asked = qq({"model":"mock-model","stream":true,)
          . qq("stream_options":{"include_usage":true},"max_tokens":5,$msgs});

my $want = direct('/v1/chat/completions', $plain);
my $want_usage = direct('/v1/chat/completions', $asked);

like($want, qr/\Adata: .*data: \[DONE\]\n\n\z/s, 'the mock streams');
unlike($want, qr/usage/, '...without usage when not asked');
is(count($want_usage, qr/"choices":\[\],"usage":\{/), 1,
   '...and with one usage chunk when asked');

# a client that did not ask

my $r = post('', '/v1/chat/completions', $plain);
is($r->{status}, 200, 'stream without include_usage: 200');
is($r->{body}, $want, '...the bytes the runtime sends without usage');
unlike($r->{body}, qr/usage/, '...no usage chunk, no "usage":null');
like($r->{log}, qr/ 200 p=2 c=5 ttft=\d+ partial=0$/,
     '...and the log has the counts of the chunk it did not see');

$r = post('/seen', '/v1/chat/completions', $plain);
is($r->{headers}{'x-runtime-body'},
   qq({"model":"mock-model","stream":true,"max_tokens":5,$msgs,)
   . qq("stream_options":{"include_usage":true}}),
   'the runtime was asked for usage');
is($r->{body}, $want, '...and the client still got the plain stream');

# a client that asked: the stream as the runtime sends it

$r = post('/seen', '/v1/chat/completions', $asked);
is($r->{headers}{'x-runtime-body'}, $asked, 'include_usage: body untouched');
is($r->{body}, $want_usage, '...the stream untouched');
is(count($r->{body}, qr/"usage":\{/), 1, '...one usage chunk');
is(count($r->{body}, qr/"usage":null/), 7, '..."usage":null on the others');
like($r->{log}, qr/ 200 p=2 c=5 ttft=\d+ partial=0$/, '...counts logged');

# how the runtime writes does not matter

$r = post('', '/v1/chat/completions', $plain,
          { 'X-Mock-Write-Mode' => 'byte', 'X-Mock-Byte-Delay-Us' => 20 });
is($r->{body}, $want, 'runtime writing byte by byte: the same bytes');
like($r->{log}, qr/ p=2 c=5 ttft=\d+ partial=0$/, '...the same counts');

my $long = qq({"model":"mock-model","stream":true,"max_tokens":40,$msgs});
my $want_long = direct('/v1/chat/completions', $long,
                       { 'X-Mock-Tokens' => 40 });

$r = post('', '/v1/chat/completions', $long,
          { 'X-Mock-Tokens' => 40, 'X-Mock-Write-Mode' => 'bulk' });
is($r->{body}, $want_long,
   'runtime writing 44 events in one write: the same bytes');
like($r->{log}, qr/ p=2 c=40 ttft=\d+ partial=0$/, '...the counts');

$r = post('', '/v1/chat/completions', $long,
          { 'X-Mock-Tokens' => 40, 'X-Mock-Token-Delay-Ms' => 1 });
is($r->{body}, $want_long, 'events a millisecond apart: the same bytes');

# the other ways a client may not ask

my $false = qq({"model":"mock-model","stream":true,)
          . qq("stream_options":{"include_usage":false},"max_tokens":5,$msgs});
$r = post('/seen', '/v1/chat/completions', $false);
is($r->{headers}{'x-runtime-body'},
   qq({"model":"mock-model","stream":true,)
   . qq("stream_options":{"include_usage":true},"max_tokens":5,$msgs}),
   'include_usage false: sent as true');
is($r->{body}, $want, '...the client gets the plain stream');

my $other = qq({"model":"mock-model","stream":true,)
          . qq("stream_options":{"x":1},"max_tokens":5,$msgs});
$r = post('/seen', '/v1/chat/completions', $other);
is($r->{headers}{'x-runtime-body'},
   qq({"model":"mock-model","stream":true,)
   . qq("stream_options":{"include_usage":true,"x":1},"max_tokens":5,$msgs}),
   'other stream_options members are kept');
is($r->{body}, $want, '...the client gets the plain stream');

my $alias = qq({"model":"alias-model","stream":true,"max_tokens":5,$msgs});
$r = post('/seen', '/v1/chat/completions', $alias);
is($r->{headers}{'x-runtime-body'},
   qq({"model":"mock-model","stream":true,"max_tokens":5,$msgs,)
   . qq("stream_options":{"include_usage":true}}),
   'an alias and include_usage in one rewrite');
is($r->{body}, $want, '...the plain stream');

my $cmpl = '{"model":"other-model","stream":true,"max_tokens":4,'
         . '"prompt":"Once upon a time"}';
$r = post('/seen', '/v1/completions', $cmpl);
is($r->{body}, direct('/v1/completions', $cmpl),
   'completions: the plain stream');
like($r->{headers}{'x-runtime-body'}, qr/"include_usage":true\}\}\z/,
     '...asked for usage');
like($r->{log}, qr/ p=4 c=4 ttft=\d+ partial=0$/, '...counts logged');

# not streams

my $json = qq({"model":"mock-model","max_tokens":3,$msgs});
$r = post('/seen', '/v1/chat/completions', $json);
is($r->{headers}{'x-runtime-body'}, $json, 'non-streaming: body untouched');
is($r->{body}, direct('/v1/chat/completions', $json),
   '...the answer untouched');
like($r->{log}, qr/ p=2 c=3 ttft=- partial=0$/, '...usage from the JSON');

my $emb = '{"model":"other-model","input":"hello"}';
$r = post('/seen', '/v1/embeddings', $emb);
is($r->{headers}{'x-runtime-body'}, $emb, 'embeddings: body untouched');
is($r->{body}, direct('/v1/embeddings', $emb), '...the answer untouched');

# switched off

$r = post('/off', '/v1/chat/completions', $plain);
is($r->{headers}{'x-runtime-body'}, $plain,
   'gpugate_stream_usage off: body untouched');
is($r->{body}, $want, '...the stream untouched');
like($r->{log}, qr/ p=- c=5 ttft=\d+ partial=0$/,
     '...token events counted, prompt unknown');

$r = post('/off', '/v1/chat/completions', $asked);
is($r->{body}, $want_usage, '...and a client that asked gets its usage');

# every complete event reaches the client at once: the runtime sends the
# role event and two tokens, then holds the stream open

{
    my $s = http_send($ng->port, 'POST', '/v1/chat/completions?stall',
                      { 'X-Mock-Stall-After' => 2 }, $plain);
    my $got = '';
    my $three = wait_until(10, sub {
        if (IO::Select->new($s)->can_read(0.05)) {
            sysread($s, my $buf, 65536) or return 1;
            $got .= $buf;
        }
        my $events = () = $got =~ /data: /g;
        return $events >= 3;
    });
    close $s;
    my $body = $got =~ s/\A.*?\r\n\r\n//sr;
    # the events may come in one chunk or several: compare the payload
    if ($got =~ /^transfer-encoding:\s*chunked/mi) {
        my ($rest, $data) = ($body, '');
        while ($rest =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $data .= substr($rest, 0, $n, '');
            $rest =~ s/\A\r\n//;
        }
        $body = $data;
    }
    my $events = () = $body =~ /data: \{/g;
    ok($three && $events == 3, 'a stalled stream: its 3 events arrived');
    unlike($body, qr/usage/, '...stripped');
    my ($first3) = $want =~ /\A((?:data: [^\n]*\n\n){3})/;
    like($body, qr/\Q$first3\E/, '...the same bytes as without usage');
}

# a runtime that stops mid-stream: the events before the cut, unchanged

my $cut = direct('/v1/chat/completions', $plain,
                 { 'X-Mock-Drop-After' => 2 });
$r = post('', '/v1/chat/completions', $plain, { 'X-Mock-Drop-After' => 2 });
is($r->{body}, $cut, 'a stream cut after 2 tokens: the same bytes');
like($r->{log}, qr/ p=- c=2 ttft=\d+ partial=1$/,
     '...the tokens seen, marked partial');

$ng->stop;

done_testing();
