# Usage and time to first token, read by the response filter as the answer
# passes, as log variables: non-streaming JSON, streams with usage,
# streams without (the gateway asks the runtime for usage all the same:
# see 007-include-usage.t), and a stream the client cut.
#
# Test::More: the values are only complete in the log phase, so the test
# reads the access log.  Needs: TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_MOCK_PORT (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Select;
use Test::More;

use GpugateTest qw(start_nginx http_request http_send wait_until
                   env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_MOCK_PORT));

my $mock = $ENV{TEST_NGINX_MOCK_PORT};

my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    upstream pool_a { server 127.0.0.1:$mock; keepalive 4; }
    gpugate_model mock-model pool=pool_a;
    log_format usage '\$request_uri \$status model=\$gpugate_model '
                     'stream=\$gpugate_stream p=\$gpugate_prompt_tokens '
                     'c=\$gpugate_completion_tokens '
                     'ttft=\$gpugate_ttft_ms partial=\$gpugate_usage_partial';
HTTP
        access_log logs/usage.log usage;
        location /v1/ {
            gpugate_openai on;
            proxy_pass http://$gpugate_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
SRV

my $n = 0;

# posts BODY with HEADERS to /v1/chat/completions?tag, returns the log
# line of that request
sub usage_line {
    my ($body, $headers, $abort_events) = @_;
    my $tag = 'r' . ++$n;
    if ($abort_events) {
        # read until that many events arrived (the mock then stalls), then
        # leave: no race with how the bytes are split into packets
        my $s = http_send($ng->port, 'POST', "/v1/chat/completions?$tag",
                          $headers, $body);
        my $got = '';
        wait_until(10, sub {
            if (IO::Select->new($s)->can_read(0.05)) {
                sysread($s, my $buf, 65536) or return 1;
                $got .= $buf;
            }
            my $events = () = $got =~ /data: /g;
            return $events >= $abort_events;
        });
        close $s;
    } else {
        http_request($ng->port, 'POST', "/v1/chat/completions?$tag",
                     $headers, $body);
    }
    my $line;
    wait_until(10, sub {
        open my $fh, '<', $ng->dir . '/logs/usage.log' or return 0;
        ($line) = grep { /\?$tag / } <$fh>;
        return defined $line;
    });
    return $line // '';
}

my $chat = '{"model":"mock-model","max_tokens":4,'
         . '"messages":[{"role":"user","content":"Say hello"}]}';

like(usage_line($chat),
     qr/ 200 model=mock-model stream=0 p=2 c=4 ttft=- partial=0$/,
     'non-streaming: usage from the JSON answer');

my $stream = '{"model":"mock-model","stream":true,'
           . '"stream_options":{"include_usage":true},"max_tokens":3,'
           . '"messages":[{"role":"user","content":"Say hello"}]}';

my $line = usage_line($stream, { 'X-Mock-TTFT-Ms' => 200 });
like($line, qr/ 200 model=mock-model stream=1 p=2 c=3 ttft=(\d+) partial=0$/,
     'stream with include_usage: usage from the usage chunk');
my ($ttft) = $line =~ /ttft=(\d+)/;
ok(defined $ttft && $ttft >= 200 && $ttft < 5000,
   "TTFT covers the runtime's 200 ms before the first token ($ttft)");

my $plain = '{"model":"mock-model","stream":true,"max_tokens":5,'
          . '"messages":[{"role":"user","content":"Say hello"}]}';

like(usage_line($plain), qr/ stream=1 p=2 c=5 ttft=\d+ partial=0$/,
     'stream without include_usage: the counts the gateway asked for');

like(usage_line($plain, { 'X-Mock-Stall-After' => 2 }, 3),
     qr/ stream=1 p=- c=2 ttft=\d+ partial=1$/,
     'client gone mid-stream: the tokens seen so far, marked partial');

like(usage_line('{"model":'), qr/ 400 model=- /,
     'a refused body has no usage');

$ng->stop;

done_testing();
