# Limits on one node: requests per minute exact (two workers share the
# count), 50 concurrent slow requests against a tokens-per-minute limit
# admitted within the limit (tokens are reserved at admission, so
# concurrency cannot overrun it) and refunded when the answers end, a
# request too large for the limit refused at once, a tenant's limit
# applying over its keys' (the stricter wins), OpenAI's 429 JSON and
# x-ratelimit-* headers present and decreasing, and a Retry-After within
# a second of when the request really fits again.
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

use GpugateTest qw(start_nginx http_request http_send http_read psql
                   make_key wait_until env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $run = "t061-$$";

my $ng = start_nginx(workers => 2, http => <<"HTTP",
    gpugate_auth_zone zone=k$run:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_limits_zone zone=l$run:1m;
    upstream runtime { server 127.0.0.1:$mock; keepalive 16; }
    gpugate_model mock-model pool=runtime;
HTTP
    server => <<"SRV");
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
SRV

my %bodies = (
    '/v1/chat/completions' => {
        model => 'mock-model', max_tokens => 16,
        messages => [ { role => 'user', content => 'hello world' } ] },
    '/v1/completions' => {
        model => 'mock-model', max_tokens => 16, prompt => 'hello world' },
    '/v1/embeddings' => { model => 'mock-model', input => 'hello world' },
);

sub req {
    my ($key, $path, %o) = @_;
    my $body = { %{ $bodies{$path || '/v1/chat/completions'} },
                 %{ $o{body} || {} } };
    return http_send($ng->port, 'POST', $path || '/v1/chat/completions',
                     { Authorization => "Bearer $key",
                       'Content-Type' => 'application/json',
                       %{ $o{headers} || {} } },
                     encode_json($body));
}

sub call { http_read(req(@_), 20) }

sub err { my $j = eval { decode_json($_[0]{body}) }; $j ? $j->{error} : {} }

# --- 1. requests per minute: exact, on every endpoint, both workers -------

{
    my ($key) = make_key("$run-rpm", name => 'rpm', rpm => 6);
    my @paths = ('/v1/chat/completions', '/v1/completions', '/v1/embeddings');
    my (@st, @rem);

    for my $i (0 .. 5) {
        my $r = call($key, $paths[$i % 3]);
        push @st, $r->{status};
        push @rem, $r->{headers}{'x-ratelimit-remaining-requests'};
        is($r->{headers}{'x-ratelimit-limit-requests'}, 6,
           "rpm: answer $i says the limit");
        like($r->{headers}{'x-ratelimit-reset-requests'} || '',
             qr/^(\d+m)?\d+(\.\d+)?s$|^\d+ms$/,
             "rpm: answer $i has a reset in OpenAI's format");
    }

    is_deeply(\@st, [ (200) x 6 ], 'rpm: six requests on three endpoints '
              . 'admitted');
    is_deeply(\@rem, [5, 4, 3, 2, 1, 0], 'rpm: remaining-requests counts '
              . 'down 5..0 (both workers share the count)');

    for my $path (@paths) {
        my $r = call($key, $path);
        is($r->{status}, 429, "rpm: the 7th request refused on $path");
        is(err($r)->{type}, 'requests', "rpm: $path: type requests");
        is(err($r)->{code}, 'rate_limit_exceeded',
           "rpm: $path: code rate_limit_exceeded");
        my $ra = $r->{headers}{'retry-after'} || 0;
        ok($ra >= 9 && $ra <= 10, "rpm: $path: Retry-After $ra is when one "
           . 'request drains (10 s for 6/min)');
        is($r->{headers}{'x-ratelimit-remaining-requests'}, 0,
           "rpm: $path: the 429 carries the headers too");
    }
}

# --- 1b. the counts survive a reload --------------------------------------

{
    my ($key) = make_key("$run-reload", name => 'reload', rpm => 3);
    my @st = map { call($key)->{status} } 1 .. 3;
    is_deeply(\@st, [200, 200, 200], 'reload: three admitted');

    my $master = $ng->pid;
    my @old = split ' ', `pgrep -P $master`;
    $ng->reload;
    ok(wait_until(15, sub { !grep { kill 0, $_ } @old }),
       'reload: the old workers are gone');

    my $r = call($key);
    is($r->{status}, 429, 'reload: the new workers still refuse the 4th');
    is($r->{headers}{'x-ratelimit-remaining-requests'}, 0,
       'reload: with the count kept');
}

# --- 2. Retry-After within a second of when the request fits -------------

{
    my ($key) = make_key("$run-retry", name => 'retry', rpm => 20);
    my $ok = 0;
    $ok += call($key)->{status} == 200 for 1 .. 20;
    is($ok, 20, 'retry: 20 admitted at once (20/min)');

    my $r = call($key);
    my $t429 = time;
    is($r->{status}, 429, 'retry: the 21st refused');
    my $ra = $r->{headers}{'retry-after'};
    ok(defined $ra && $ra >= 1 && $ra <= 3, "retry: Retry-After $ra");

    my $t200;
    wait_until(10, sub {
        return 0 if call($key)->{status} != 200;
        $t200 = time;
    });
    ok($t200, 'retry: admitted again');
    my $real = ($t200 || 99) - $t429;
    ok(abs($real - $ra) <= 1, sprintf('retry: it fit again after %.2f s, '
       . 'Retry-After said %d', $real, $ra));
}

# --- 3. 50 concurrent slow requests against 400 tokens per minute --------

{
    my ($key) = make_key("$run-tpm", name => 'tpm', tpm => 400);
    my $t0 = time;
    my @socks = map {
        req($key, undef, headers => { 'X-Mock-Token-Delay-Ms' => 20 })
    } 1 .. 50;
    my @r = map { http_read($_, 30) } @socks;
    my $elapsed = time - $t0;

    my @ok = grep { $_->{status} == 200 } @r;
    my @no = grep { $_->{status} == 429 } @r;
    my $used = 0;
    $used += decode_json($_->{body})->{usage}{total_tokens} for @ok;

    is(@ok + @no, 50, 'tpm: every request got 200 or 429');
    ok(@ok >= 5, scalar(@ok) . ' of 50 admitted');
    my $bound = 400 + 400 * $elapsed / 60;
    ok($used <= $bound, sprintf('tpm: the admitted used %d tokens, within '
       . '400/min + what drained in %.1f s (%.0f)', $used, $elapsed, $bound));
    is(scalar(grep { err($_)->{type} eq 'tokens' } @no), scalar(@no),
       'tpm: refusals are type tokens');
    my @rem = sort { $a <=> $b }
              map { $_->{headers}{'x-ratelimit-remaining-tokens'} } @ok;
    ok($rem[0] < 400 && $rem[-1] < 400, 'tpm: remaining-tokens below the '
       . "limit on every 200 ($rem[0]..$rem[-1])");

    # the answers ended: reservations (prompt estimate + max_tokens) were
    # replaced by the real usage, so more is left than was reserved
    my $r = call($key);
    is($r->{status}, 200, 'tpm: admitted after the refunds');
    my $left = $r->{headers}{'x-ratelimit-remaining-tokens'};
    ok($left > 400 - (@ok + 1) * 39, "tpm: $left left: the reservations "
       . 'were refunded down to the real usage');
}

# --- 4. a request too large for the limit: refused at once, no retry ----

{
    my ($key) = make_key("$run-large", name => 'large', tpm => 400);
    for my $path ('/v1/chat/completions', '/v1/completions') {
        my $r = call($key, $path, body => { max_tokens => 1000 });
        is($r->{status}, 429, "large: max_tokens 1000 vs 400/min on $path");
        is(err($r)->{type}, 'tokens', "large: $path: type tokens");
        ok(!defined $r->{headers}{'retry-after'},
           "large: $path: no Retry-After (it never fits)");
    }
    my $r = call($key, undef, body => { max_completion_tokens => 390 });
    is($r->{status}, 429, 'large: max_completion_tokens counts as well');
    is(call($key)->{status}, 200, 'large: a small request still fits');
}

# --- 5. the tenant's limit over its keys': the stricter wins -------------

{
    my ($k1) = make_key("$run-tenant", name => 'a', rpm => 100);
    my ($k2) = make_key("$run-tenant", name => 'b', rpm => 100);
    psql("UPDATE tenants SET rpm_limit = 3 WHERE name = '$run-tenant'");

    my @st = map { call($_)->{status} } ($k1, $k2, $k1);
    is_deeply(\@st, [200, 200, 200], 'tenant: three requests of two keys');
    my $r = call($k2);
    is($r->{status}, 429, 'tenant: the 4th refused by the tenant limit');
    is($r->{headers}{'x-ratelimit-limit-requests'}, 3,
       'tenant: the headers show the stricter (tenant) limit');
}

# --- 6. a key without limits: nothing counted, no headers ----------------

{
    my ($key) = make_key("$run-free", name => 'free');
    my @st = map { call($key)->{status} } 1 .. 3;
    is_deeply(\@st, [200, 200, 200], 'free: admitted');
    my $r = call($key);
    ok(!grep({ /^x-ratelimit-/ } keys %{ $r->{headers} }),
       'free: no x-ratelimit-* headers on a key without limits');
}

$ng->stop;

done_testing();
