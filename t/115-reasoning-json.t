# The reasoning split in JSON chat answers (gpugate_reasoning split): the
# inline <think>...</think> at the start of message.content moves to
# message.reasoning_content, the rest of the answer byte for byte as the
# runtime sent it; answers without the tag, and pools with the split off,
# pass byte-identical.  Escaped tags (\u003c, <\/), configured tags,
# several choices, unclosed reasoning; reasoning tokens reported by the
# runtime or estimated, in $gpugate_reasoning_tokens and /metrics;
# configuration mistakes refused.
#
# The mock answers with inline reasoning on X-Mock-Think; answers of other
# shapes come from a location of the test's nginx that returns the JSON
# the client put in X-Answer.  Needs: TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_MOCK_PORT, TEST_NGINX_BINARY (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

use GpugateTest qw(start_nginx http_request wait_until env_or_skip
                   free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_MOCK_PORT));

my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $echo = free_port();

my $ng = start_nginx(http => <<"HTTP", server => <<"SRV");
    upstream think { server 127.0.0.1:$mock; keepalive 4; }
    upstream plain { server 127.0.0.1:$mock; keepalive 4; }
    upstream echo  { server 127.0.0.1:$echo; }
    gpugate_model mock-model pool=think;
    gpugate_model plain-model pool=plain target=mock-model;
    gpugate_model echo-model pool=echo;
    gpugate_reasoning split pool=think;
    gpugate_reasoning split pool=echo;
    gpugate_reasoning off;
    log_format reasoning '\$request_uri \$status r=\$gpugate_reasoning_tokens';

    # a runtime answering what the client put in X-Answer
    server {
        listen 127.0.0.1:$echo;
        default_type application/json;
        location / { return 200 \$http_x_answer; }
    }
HTTP
        access_log logs/reasoning.log reasoning;
        location /v1/ {
            gpugate_openai on;
            proxy_pass http://\$gpugate_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /tags/v1/ {
            gpugate_openai on;
            gpugate_reasoning split open=[[ close=]];
            proxy_pass http://echo/v1/;
        }
        location /metrics { gpugate_metrics; }
SRV

my $n = 0;

# post(PREFIX, MODEL, HEADERS): a chat answer through the gateway, with
# the access log line of that request
sub post {
    my ($prefix, $model, $headers) = @_;
    my $tag = 'r' . ++$n;
    my $body = qq({"model":"$model","messages":)
             . qq([{"role":"user","content":"Say hello"}]});
    my $r = http_request($ng->port, 'POST',
                         "$prefix/v1/chat/completions?$tag", $headers, $body);
    my $line;
    wait_until(10, sub {
        open my $fh, '<', $ng->dir . '/logs/reasoning.log' or return 0;
        ($line) = grep { /\?$tag / } <$fh>;
        return defined $line;
    });
    $r->{log} = $line // '';
    return $r;
}

# the same request straight to the mock
sub direct {
    my ($headers) = @_;
    my $body = '{"model":"mock-model","messages":'
             . '[{"role":"user","content":"Say hello"}]}';
    return http_request($mock, 'POST', '/v1/chat/completions', $headers,
                        $body)->{body};
}

# what the split makes of a raw answer: the content member replaced
sub split_json {
    my ($json, $reason, $content) = @_;
    $json =~ s/"content":"((?:[^"\\]|\\.)*)"/
        qq("reasoning_content":"$reason","content":"$content")/e;
    return $json;
}

my $think = { 'X-Mock-Think' => 3 };

# the mock's inline reasoning, split

my $raw = direct($think);
like($raw, qr/"content":"<think> the user wants<\/think>\\n\\n \w/,
     'the mock thinks inline');

my $r = post('', 'mock-model', $think);
is($r->{status}, 200, 'split: 200');
my $j = decode_json($r->{body});
is($j->{choices}[0]{message}{reasoning_content}, ' the user wants',
   '...message.reasoning_content');
like($j->{choices}[0]{message}{content}, qr/\A\w+ \w/,
     '...message.content the answer, whitespace after the tag dropped');
my ($answer) = $raw =~ /<\/think>\\n\\n (.*?)"/;
is($r->{body}, split_json($raw, ' the user wants', $answer),
   '...every other byte as the runtime sent it');
ok(!exists $r->{headers}{'content-length'}
   || $r->{headers}{'content-length'} == length $r->{body},
   '...a Content-Length that fits');
like($r->{log}, qr/ 200 r=4$/,
     '...reasoning tokens estimated (a quarter of 15 bytes, rounded up)');

$r = post('', 'mock-model', { %$think, 'X-Mock-Think-Report' => 1 });
like($r->{log}, qr/ 200 r=3$/, 'reported reasoning_tokens are taken');

# no reasoning, or the split off: byte-identical

$r = post('', 'mock-model');
is($r->{body}, direct(), 'no tag: the answer byte-identical');
like($r->{log}, qr/ 200 r=-$/, '...no reasoning tokens');

$r = post('', 'plain-model', $think);
my $want = direct($think);
$want =~ s/"model":"mock-model"/"model":"mock-model"/;
is($r->{body}, $want, 'a pool with the split off: byte-identical');

$r = post('', 'plain-model', { %$think, 'X-Mock-Think-Report' => 1 });
like($r->{log}, qr/ 200 r=-$/, '...and nothing counted there');

# unclosed: all reasoning

$r = post('', 'mock-model', { 'X-Mock-Think' => 20, 'X-Mock-Tokens' => 6 });
$j = decode_json($r->{body});
is($j->{choices}[0]{message}{reasoning_content},
   ' the user wants an answer',
   'cut before the closing tag: all reasoning');
is($j->{choices}[0]{message}{content}, '', '...an empty content');

# answers of other shapes

sub echo_answer {
    my ($content, $prefix) = @_;
    my $json = qq({"id":"x","object":"chat.completion","choices":[)
             . qq({"index":0,"message":{"role":"assistant",)
             . qq("content":"$content"},"finish_reason":"stop"}]});
    return (post($prefix // '', 'echo-model', { 'X-Answer' => $json }),
            $json);
}

my @cases = (
    [ 'escaped tags', '\u003cthink\u003eR \u003c\/think\u003e\u003cb\u003e',
      'R ', '\u003cb\u003e' ],
    [ 'upper-case escapes', '\u003Cthink\u003ER\u003C/think\u003E X', 'R',
      'X' ],
    [ 'leading whitespace, escaped', ' \n\t<think>\"a\"\n</think>\n b',
      '\"a\"\n', 'b' ],
    [ 'false closing tags', '<think>a </thin <<\/think-x </think>y',
      'a </thin <<\/think-x ', 'y' ],
    [ 'non-ASCII kept raw', '<think>\u00e9 caf\u00c3</think>\u20ac',
      '\u00e9 caf\u00c3', '\u20ac' ],
    [ 'empty reasoning', '<think></think>Hi', '', 'Hi' ],
);

for my $c (@cases) {
    my ($name, $content, $reason, $final) = @$c;
    my ($res, $json) = echo_answer($content);
    is($res->{body}, split_json($json, $reason, $final), $name);
}

for my $content ('Hi <think>x</think>', '<thinking>x</thinking>', '<thin',
                 '  ', '</think>x', '\u003cthinkX')
{
    my ($res, $json) = echo_answer($content);
    is($res->{body}, $json, "no reasoning: \"$content\" untouched");
}

my ($res, $json) = echo_answer('[[a]] b', '/tags');
is($res->{body}, split_json($json, 'a', 'b'), 'configured tags');
($res, $json) = echo_answer('<think>a</think>b', '/tags');
is($res->{body}, $json, '...and the default ones are content there');

# several choices, each split on its own

$json = '{"choices":[{"index":0,"message":{"content":"<think>a</think>b"}},'
      . '{"index":1,"message":{"content":"plain"}},'
      . '{"index":2,"message":{"content":null,"tool_calls":[]}},'
      . '{"index":3,"message":{"content":"<think>c"}}]}';
$res = post('', 'echo-model', { 'X-Answer' => $json });
($want = $json)
    =~ s/"content":"<think>a<\/think>b"/"reasoning_content":"a","content":"b"/;
$want =~ s/"content":"<think>c"/"reasoning_content":"c","content":""/;
is($res->{body}, $want, 'four choices: two split, the others untouched');

# /metrics

my $m = http_request($ng->port, 'GET', '/metrics')->{body};
like($m, qr/^gpugate_reasoning_tokens_total\{source="reported"\} 3$/m,
     '/metrics: reported reasoning tokens');
like($m, qr/^gpugate_reasoning_tokens_total\{source="estimated"\} [1-9]\d*$/m,
     '...and estimated ones');

# configuration mistakes

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";
my $load = join '', map { "load_module $_;\n" }
    split ' ', $ENV{TEST_NGINX_LOAD_MODULES};
my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';

for my $bad (
    [ 'gpugate_reasoning maybe;', qr/invalid value "maybe", expected split/ ],
    [ 'gpugate_reasoning split open=;', qr/tags must be 1 to 32 bytes/ ],
    [ 'gpugate_reasoning split close=' . ('x' x 33) . ';',
      qr/tags must be 1 to 32 bytes/ ],
    [ 'gpugate_reasoning split "open=<a b>";',
      qr/printable ASCII without spaces/ ],
    [ 'gpugate_reasoning split pool=;', qr/has an empty pool=/ ],
    [ 'gpugate_reasoning split x=1;', qr/invalid parameter "x=1"/ ],
    [ 'gpugate_reasoning split pool=a; gpugate_reasoning off pool=a;',
      qr/is duplicate for this pool/ ],
    [ 'gpugate_reasoning split; gpugate_reasoning off;',
      qr/is duplicate without pool=/ ])
{
    open my $fh, '>', "$dir/nginx.conf" or die;
    print $fh "${load}error_log $dir/logs/error.log;\n"
            . "events { worker_connections 16; }\nhttp { $bad->[0] }\n";
    close $fh;
    my $out = `$bin -t -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    ok($? != 0 && $out =~ $bad->[1], "refused: $bad->[0]");
}

$ng->stop;

done_testing();
