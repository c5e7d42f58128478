# gpugate_limits_stream_cut: a stream that runs past its reservation
# (no max_tokens, a small configured estimate) and crosses the key's
# tokens per day is ended with a final SSE error event (insufficient_quota,
# as OpenAI's SDKs raise it), the runtime stops generating, and the usage
# recorded is what the client got.  Off (the default), the same stream
# runs to its end and the next request pays for the overrun.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_MOCK_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP qw(decode_json encode_json);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request psql make_key wait_until
                   env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $run = "t064-$$";
my $off = free_port();

my $ng = start_nginx(workers => 1, http => <<"HTTP",
    gpugate_auth_zone zone=k$run:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_usage_ledger "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2" gateway=$run batch=10 interval=100ms;
    gpugate_limits_zone zone=l$run:1m;
    gpugate_limits_estimate max_tokens=4;
    upstream runtime { server 127.0.0.1:$mock; keepalive 16; }
    gpugate_model mock-model pool=runtime;
    server {
        listen 127.0.0.1:$off;
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            gpugate_accounting on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
    }
HTTP
    server => <<"SRV");
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            gpugate_limits_stream_cut on;
            gpugate_accounting on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
SRV

sub stream {
    my ($key, %o) = @_;
    my $path = $o{path} || '/v1/chat/completions';
    my $body = $path =~ /chat/
        ? { model => 'mock-model', stream => \1,
            messages => [ { role => 'user', content => 'hello world' } ] }
        : { model => 'mock-model', stream => \1, prompt => 'hello world' };
    $body->{stream} = \0 if $o{json};
    return http_request($o{off} ? $off : $ng->port, 'POST', $path,
                        { Authorization => "Bearer $key",
                          'Content-Type' => 'application/json',
                          'X-Mock-Tokens' => 200,
                          'X-Mock-Token-Delay-Ms' => 2 },
                        encode_json($body), 30);
}

sub events {
    my ($body) = @_;
    my @data = $body =~ /^data: (.*)$/mg;
    return @data;
}

sub new_key {
    my ($name, $tpd) = @_;
    my ($key, $id) = make_key("$run-$name", name => $name);
    psql("UPDATE api_keys SET tpd_limit = $tpd WHERE id = $id");
    return ($key, $id);
}

# --- 1. cut on: chat and completions streams end with the error event ----

for my $path ('/v1/chat/completions', '/v1/completions') {
    my ($key, $id) = new_key($path =~ /chat/ ? 'chat' : 'compl', 60);
    my $r = stream($key, path => $path);
    is($r->{status}, 200, "cut $path: the stream began");
    ok($r->{done}, "cut $path: and ended");
    my @ev = events($r->{body});
    my $last = eval { decode_json($ev[-1]) } || {};
    is($last->{error}{code}, 'insufficient_quota',
       "cut $path: the last event is an insufficient_quota error");
    ok(!grep({ $_ eq '[DONE]' } @ev), "cut $path: no [DONE]");
    my $tokens = grep { /"(content|text)":"[^"]/ } @ev;
    ok($tokens >= 20 && $tokens < 60, "cut $path: $tokens tokens reached "
       . 'the client (of 200), up to the day\'s 60 with the prompt');

    my $row = wait_until(10, sub {
        psql("SELECT completion_tokens || ' ' || partial FROM usage_events"
           . " WHERE api_key_id = $id")
    });
    my ($c, $partial) = split ' ', $row || '';
    ok(defined $c && abs($c - $tokens) <= 1, "cut $path: the ledger has "
       . "the tokens the client got ($c)");
    is($partial, 'true', "cut $path: recorded as partial");

    my $next = stream($key, path => $path, json => 1);
    is($next->{status}, 429, "cut $path: the day is used up");
    is((eval { decode_json($next->{body}) } || {})->{error}{code},
       'insufficient_quota', "cut $path: insufficient_quota");
}

# --- 2. a JSON answer is never cut; cut off: the stream runs to its end --

{
    my ($key) = new_key('json', 60);
    my $r = stream($key, json => 1);
    is($r->{status}, 200, 'json: answered');
    is((eval { decode_json($r->{body}) } || {})->{usage}{completion_tokens},
       200, 'json: whole (200 tokens), not cut');
}

{
    my ($key) = new_key('off', 60);
    my $r = stream($key, off => 1);
    my @ev = events($r->{body});
    is($ev[-1], '[DONE]', 'off: the stream reached [DONE]');
    my $tokens = grep { /"content":"[^"]/ } @ev;
    is($tokens, 200, 'off: all 200 tokens');
    is(stream($key, off => 1)->{status}, 429,
       'off: the next request is refused (the overrun counted)');
}

$ng->stop;

done_testing();
