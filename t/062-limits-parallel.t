# Requests in flight ("parallel") exact with streams: with a limit of 3,
# three held streams are admitted and every further request (stream or
# not, chat or completions) gets 429 type requests; a stream the client
# abandons gives its slot back at once, so does every answer that ends,
# and requests that fail upstream (502 through error_page, which clears
# the request's module contexts) do not leak slots.  Two workers share
# the count.
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

use GpugateTest qw(start_nginx http_request http_send http_read read_head
                   psql make_key wait_until env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $dead = free_port();
my $run = "t062-$$";

my $ng = start_nginx(workers => 2, http => <<"HTTP",
    gpugate_auth_zone zone=k$run:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_limits_zone zone=l$run:1m;
    upstream runtime { server 127.0.0.1:$mock; keepalive 16; }
    upstream dead { server 127.0.0.1:$dead; }
    gpugate_model mock-model pool=runtime;
    gpugate_model dead-model pool=dead;
HTTP
    server => <<"SRV");
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
            error_page 502 503 504 \@gpugate_error;
        }
        location \@gpugate_error { gpugate_error; }
SRV

my ($key, $id) = make_key("$run-t", name => 'parallel');
psql("UPDATE api_keys SET parallel_limit = 3 WHERE id = $id");

sub send_req {
    my (%o) = @_;
    my $path = $o{path} || '/v1/chat/completions';
    my $body = $path =~ /chat/
        ? { model => $o{model} || 'mock-model', stream => $o{stream} ? \1 : \0,
            messages => [ { role => 'user', content => 'hi there' } ] }
        : { model => $o{model} || 'mock-model', stream => $o{stream} ? \1 : \0,
            prompt => 'hi there' };
    return http_send($ng->port, 'POST', $path,
                     { Authorization => "Bearer $key",
                       'Content-Type' => 'application/json',
                       %{ $o{headers} || {} } },
                     encode_json($body));
}

# a stream that sends one token, then holds until the client leaves
sub held_stream {
    my (%o) = @_;
    my $s = send_req(stream => 1, %o,
                     headers => { 'X-Mock-Stall-After' => 1 });
    my $h = read_head($s, 10);
    return ($s, $h);
}

sub err { my $j = eval { decode_json($_[0]{body}) }; $j ? $j->{error} : {} }

# --- 1. three held streams, then every kind of request is refused --------

my @held;
for my $i (1 .. 3) {
    my ($s, $h) = held_stream(path => $i == 2 ? '/v1/completions'
                                              : '/v1/chat/completions');
    is($h->{status}, 200, "stream $i admitted and streaming");
    push @held, $s;
}

for my $case ([ 'stream chat', stream => 1 ],
              [ 'JSON chat' ],
              [ 'stream completions', stream => 1, path => '/v1/completions' ],
              [ 'JSON completions', path => '/v1/completions' ]) {
    my ($name, %o) = @$case;
    my $r = http_read(send_req(%o), 10);
    is($r->{status}, 429, "full: $name refused");
    is(err($r)->{type}, 'requests', "full: $name: type requests");
    is(err($r)->{code}, 'rate_limit_exceeded', "full: $name: code");
    ok($r->{headers}{'retry-after'}, "full: $name: Retry-After");
}

# --- 2. an abandoned stream gives its slot back ---------------------------

close(shift @held);

ok(wait_until(10, sub { http_read(send_req(), 10)->{status} == 200 }),
   'abort: a request fits again once a held stream is abandoned');

my ($s4, $h4) = held_stream();
is($h4->{status}, 200, 'abort: a new held stream takes the freed slot');
push @held, $s4;
is(http_read(send_req(), 10)->{status}, 429, 'abort: and the key is full '
   . 'again (exactly 3)');

close($_) for @held;
@held = ();

ok(wait_until(10, sub {
       my @s = map { [ held_stream() ] } 1 .. 3;
       my $ok = 3 == grep { $_->[1]{status} == 200 } @s;
       close($_->[0]) for @s;
       $ok;
   }), 'abort: all three slots are free once every stream is abandoned');

# --- 3. requests that end, and requests that fail, release their slot ----

ok(wait_until(10, sub { http_read(send_req(), 10)->{status} == 200 }),
   'end: slots free again');

my @st = map { http_read(send_req(model => 'dead-model'), 10)->{status} }
         1 .. 6;
is_deeply(\@st, [ (502) x 6 ], 'fail: six requests to a dead runtime '
          . 'answered 502 by the error page');

@st = map { http_read(send_req(stream => $_ % 2), 10)->{status} } 1 .. 6;
is_deeply(\@st, [ (200) x 6 ], 'end: six answers one after another: each '
          . 'released its slot');

my @s = map { [ held_stream() ] } 1 .. 3;
is(scalar(grep { $_->[1]{status} == 200 } @s), 3,
   'fail: no slot leaked: three held streams admitted again');
is(http_read(send_req(), 10)->{status}, 429, 'and a fourth refused');
close($_->[0]) for @s;

$ng->stop;

done_testing();
