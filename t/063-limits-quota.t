# Tokens per day and spend budgets: a key's daily tokens and a key's
# daily or a tenant's monthly budget refuse with insufficient_quota once
# what was used (settled with the real usage) and what the next request
# reserves would cross them, with a Retry-After of the period's end; the
# ledger's cost_micros is the spend by the model's price=, and the
# refusals are counted by tenant and reason on /metrics and /status.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_MOCK_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP qw(decode_json encode_json);
use Time::Local qw(timegm);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request psql make_key wait_until
                   env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $run = "t063-$$";
my $admin = 'admin-key-0123456789abcdef';

# priced-model: 1000 units per 1M prompt tokens (1000 micros a token),
# 2000 per 1M completion tokens
my $ng = start_nginx(workers => 2, http => <<"HTTP",
    gpugate_auth_zone zone=k$run:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_usage_ledger "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2" gateway=$run batch=10 interval=100ms;
    gpugate_limits_zone zone=l$run:1m;
    upstream runtime { server 127.0.0.1:$mock; keepalive 16; }
    gpugate_model mock-model pool=runtime;
    gpugate_model priced-model pool=runtime target=mock-model price=1000/2000;
HTTP
    server => <<"SRV");
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits on;
            gpugate_accounting on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
        location = /metrics { gpugate_metrics admin_key=$admin; }
        location = /status { gpugate_status admin_key=$admin; }
SRV

sub call {
    my ($key, %o) = @_;
    my $path = $o{path} || '/v1/chat/completions';
    my $body = $path =~ /chat/
        ? { model => $o{model} || 'mock-model', max_tokens => 16,
            stream => $o{stream} ? \1 : \0,
            messages => [ { role => 'user', content => 'hello world' } ] }
        : { model => $o{model} || 'mock-model', max_tokens => 16,
            stream => $o{stream} ? \1 : \0, prompt => 'hello world' };
    return http_request($ng->port, 'POST', $path,
                        { Authorization => "Bearer $key",
                          'Content-Type' => 'application/json' },
                        encode_json($body), 20);
}

sub err { my $j = eval { decode_json($_[0]{body}) }; $j ? $j->{error} : {} }

sub till_midnight { 86400 - time % 86400 }

# until the first refusal: (answers admitted, the refusal)
sub exhaust {
    my ($key, %o) = @_;
    my @ok;
    for (1 .. 20) {
        my $r = call($key, %o, stream => @ok % 2,
                     path => @ok % 3 == 2 ? '/v1/completions' : undef);
        return (\@ok, $r) if $r->{status} != 200;
        push @ok, $r;
    }
    return (\@ok, undef);
}

# --- 1. tokens per day ----------------------------------------------------

{
    my ($key, $id) = make_key("$run-tpd", name => 'tpd');
    psql("UPDATE api_keys SET tpd_limit = 100 WHERE id = $id");

    my ($ok, $r) = exhaust($key);
    ok(@$ok >= 2, scalar(@$ok) . ' requests admitted under 100 tokens/day');
    is($r && $r->{status}, 429, 'tpd: then refused');
    is(err($r)->{code}, 'insufficient_quota', 'tpd: code insufficient_quota');
    is(err($r)->{type}, 'tokens', 'tpd: type tokens');
    my $ra = $r->{headers}{'retry-after'} || 0;
    ok(abs($ra - till_midnight()) <= 2, "tpd: Retry-After $ra is the end "
       . 'of the UTC day (' . till_midnight() . ' s)');

    my $used = wait_until(10, sub {
        psql("SELECT sum(prompt_tokens + completion_tokens) FROM usage_events"
           . " WHERE api_key_id = $id AND status = 200")
    });
    ok($used && $used <= 100, "tpd: the ledger's tokens of the day ($used) "
       . 'within the limit');
}

# --- 2. a key's daily budget, spend from the model's price ---------------

{
    my ($key, $id) = make_key("$run-budget", name => 'budget');
    psql("UPDATE api_keys SET budget_micros = 100000, budget_period = 'day'"
       . " WHERE id = $id");

    my ($ok, $r) = exhaust($key, model => 'priced-model');
    ok(@$ok >= 1, scalar(@$ok) . ' priced requests admitted under 0.1');
    is($r && $r->{status}, 429, 'budget: then refused');
    is(err($r)->{code}, 'insufficient_quota',
       'budget: code insufficient_quota');
    is(err($r)->{type}, 'insufficient_quota',
       'budget: type insufficient_quota');
    my $ra = $r->{headers}{'retry-after'} || 0;
    ok(abs($ra - till_midnight()) <= 2, "budget: Retry-After $ra is the "
       . 'end of the UTC day');

    # the mock's usage of each answer: 2 prompt tokens ("hello world"),
    # 16 completion tokens: 2 * 1000 + 16 * 2000 micros
    my $want = 34000 * @$ok;
    my $n = scalar @$ok;
    my $cost = wait_until(10, sub {
        psql("SELECT CASE WHEN count(*) = $n THEN sum(cost_micros) END"
           . " FROM usage_events WHERE api_key_id = $id AND status = 200")
    });
    is($cost, $want, "budget: the ledger's cost_micros ($cost) is usage "
       . 'times price');
    ok($cost <= 100000, 'budget: the spend stayed within the budget');

    is(call($key)->{status}, 200, 'budget: an unpriced model still fits '
       . 'while the spend is below the budget');
}

# --- 3. a tenant's monthly budget over a key without one -----------------

{
    my ($key, $id) = make_key("$run-month", name => 'month');
    psql("UPDATE tenants SET budget_micros = 60000, budget_period = 'month'"
       . " WHERE name = '$run-month'");

    is(call($key, model => 'priced-model')->{status}, 200,
       'month: the first priced request fits');
    my $r = call($key, model => 'priced-model');
    is($r->{status}, 429, 'month: the second would cross the tenant budget');
    is(err($r)->{code}, 'insufficient_quota', 'month: insufficient_quota');
    my @t = gmtime;
    my ($y, $m) = ($t[5] + 1900, $t[4] + 1);
    ($y, $m) = $m == 12 ? ($y + 1, 1) : ($y, $m + 1);
    my $end = timegm(0, 0, 0, 1, $m - 1, $y);
    my $ra = $r->{headers}{'retry-after'} || 0;
    ok(abs($ra - ($end - time)) <= 2, "month: Retry-After $ra is the end of "
       . 'the UTC month (' . int($end - time) . ' s)');
    is(call($key)->{status}, 200, 'month: an unpriced model still fits '
       . '(the budget is not used up)');
}

# --- 4. counted on the pages ----------------------------------------------

{
    my $m = http_request($ng->port, 'GET', '/metrics',
                         { Authorization => "Bearer $admin" });
    like($m->{body}, qr/^gpugate_limited_requests_total\{tenant="$run-tpd",reason="tokens_per_day"\} 1$/m,
         'metrics: the tpd refusal by tenant and reason');
    like($m->{body}, qr/^gpugate_limited_requests_total\{tenant="$run-budget",reason="budget"\} 1$/m,
         'metrics: the key budget refusal');
    like($m->{body}, qr/^gpugate_limited_requests_total\{tenant="$run-month",reason="budget"\} 1$/m,
         'metrics: the tenant budget refusal');

    my $s = decode_json(http_request($ng->port, 'GET', '/status',
                        { Authorization => "Bearer $admin" })->{body});
    is($s->{limits}{refused}{budget}, 2, 'status: refusals by reason');
    my ($t) = grep { $_->{kind} eq 'tenant' && $_->{name} eq "$run-month" }
              @{ $s->{limits}{counted} };
    ok($t && $t->{spent_micros} > 0 && $t->{spent_micros} <= 60000,
       'status: the tenant\'s spend this period');
}

$ng->stop;

done_testing();
