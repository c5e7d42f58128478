# The limits apply to every routed endpoint through the same admission as
# chat: one key's requests per minute are spent by /v1/messages,
# /v1/responses, /v1/rerank, /v1/audio/speech and a multipart upload
# alike (x-ratelimit-remaining-requests counting down across them), and
# once spent each is refused with 429 in its API's shape: Anthropic's
# rate_limit_error on /v1/messages, OpenAI's elsewhere, an upload too.
#
# Test::More.  Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT,
# TEST_NGINX_MOCK_PORT (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP;
use Test::More;

use GpugateTest qw(start_nginx http_request make_key wait_until
                   env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $run = "t083-$$";

my $ng = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=k$run:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_limits_zone zone=l$run:1m;
    upstream runtime { server 127.0.0.1:$mock; keepalive 4; }
    gpugate_model mock-model pool=runtime;
HTTP
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my ($key) = make_key("$run-rpm", name => 'rpm', rpm => 5);
my $B = 'b0undary-083';
my $upload = "--$B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
           . "mock-model\r\n--$B\r\nContent-Disposition: form-data; "
           . "name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--$B--\r\n";

my @calls = (
    ['/v1/messages', 'application/json',
     encode_json({ model => 'mock-model', max_tokens => 8,
                   messages => [{ role => 'user', content => 'hi' }] })],
    ['/v1/responses', 'application/json',
     encode_json({ model => 'mock-model', input => 'hi' })],
    ['/v1/rerank', 'application/json',
     encode_json({ model => 'mock-model', query => 'q',
                   documents => ['a'] })],
    ['/v1/audio/speech', 'application/json',
     encode_json({ model => 'mock-model', input => 'hi', voice => 'v' })],
    ['/v1/audio/transcriptions', "multipart/form-data; boundary=$B",
     $upload],
);

sub call {
    my ($c) = @_;
    return http_request($ng->port, 'POST', $c->[0],
                        { 'Content-Type' => $c->[1],
                          Authorization => "Bearer $key",
                          'anthropic-version' => '2023-06-01' }, $c->[2]);
}

# the first lookup of the key goes to PostgreSQL; then five requests, one
# per endpoint, spend the minute's five
my @rem;
for my $c (@calls) {
    my $r = call($c);
    is($r->{status}, 200, "$c->[0]: admitted") or diag $r->{body};
    push @rem, $r->{headers}{'x-ratelimit-remaining-requests'} // 'none';
}
is("@rem", '4 3 2 1 0',
   'every endpoint spends the same key\'s requests per minute');

for my $c (@calls) {
    my $r = call($c);
    my $e = eval { decode_json($r->{body}) } || {};
    if ($c->[0] eq '/v1/messages') {
        ok($r->{status} == 429 && ($e->{type} // '') eq 'error'
           && ($e->{error}{type} // '') eq 'rate_limit_error'
           && $r->{headers}{'retry-after'},
           "$c->[0]: 429 in Anthropic's shape, with Retry-After");
    } else {
        ok($r->{status} == 429
           && ($e->{error}{type} // '') =~ /rate_limit|requests/
           && $r->{headers}{'retry-after'},
           "$c->[0]: 429 in OpenAI's shape, with Retry-After")
            or diag $r->{status}, ' ', $r->{body};
    }
}

unlike($ng->log, qr/exited on signal|\[(alert|crit|emerg)\]/,
       'no worker crashed, nothing alarming logged');

done_testing();
