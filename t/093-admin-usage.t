# The admin API's usage route (issue 20): totals from the ledger by
# tenant, key, model and agent over a range, per bucket (a time series),
# for one tenant, paged; bad ranges and groups refused; a read-only
# credential reads, none is refused.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempfile);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

use GpugateAdmin qw(tool admin);
use GpugateTest qw(start_nginx http_request psql env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $root = "$FindBin::Bin/..";
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $json = JSON::PP->new->utf8->canonical;

# names unique to this run, so that the file can run again on a database
my $run = sprintf '%x%x', $$, time;

my $read_cred = admin("ro-$run", 'read');

my $a = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
HTTP
        location /admin/v1/ {
            gpugate_admin;
        }
SRV

# api(NODE, METHOD, PATH, CRED, BODY): (status, decoded JSON or undef, raw)
sub api {
    my ($node, $method, $path, $cred, $body) = @_;
    my %h;
    $h{Authorization} = "Bearer $cred" if defined $cred;
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $r = http_request($node->port, $method, "/admin/v1/$path", \%h,
                         $body, 10);
    my $doc = eval { $json->decode($r->{body}) };
    return ($r->{status}, $doc, $r);
}

# two tenants of this run; ledger rows on 2020-03-01 between 10:00 and
# 12:00 (tenant u1: key 1 and 2, models m-a and m-b, agents g1 and g2)
my $t1 = psql("INSERT INTO tenants (name) VALUES ('u1-$run') RETURNING id");
my $t2 = psql("INSERT INTO tenants (name) VALUES ('u2-$run') RETURNING id");
my @rows = (
    # tenant, key, model, agent, prompt, completion, cost, status, time
    [ $t1, 1, 'm-a', 'g1', 10, 20, 100, 200, '10:05' ],
    [ $t1, 1, 'm-a', 'g1', 1,  2,  10,  200, '10:45' ],
    [ $t1, 2, 'm-b', 'g2', 5,  0,  0,   502, '11:10' ],
    [ $t1, 2, 'm-a', 'g2', 7,  3,  30,  200, '11:20' ],
    [ $t2, 3, 'm-a', 'g1', 99, 99, 999, 200, '10:30' ],
    [ $t1, 1, 'm-a', 'g1', 50, 50, 500, 200, '12:30' ],   # out of range
);
my $n = 0;
psql("INSERT INTO usage_events (request_id, gateway, tenant_id, api_key_id,"
     . " model, agent_name, prompt_tokens, completion_tokens, cost_micros,"
     . " status, created_at) VALUES "
     . join(',', map {
           my ($t, $k, $m, $g, $p, $c, $cost, $s, $at) = @$_;
           $n++;
           "('r$n-$run', 'admin-$run', $t, $k, '$m', '$g', $p, $c, $cost,"
           . " $s, '2020-03-01 $at+00')"
       } @rows));

my $range = 'from=2020-03-01T10:00:00Z&to=2020-03-01T12:00:00Z';

sub usage {
    my ($q, $cred) = @_;
    return api($a, 'GET', "usage?$range&tenant=u1-$run&$q",
               $cred // $read_cred);
}

sub pick {
    my ($doc, $field) = @_;
    return [ map { join ' ', $_->{$field} // '-', @$_{qw(requests
             prompt_tokens completion_tokens cost_micros errors)} }
             @{ $doc->{data} || [] } ];
}

my ($st, $doc) = usage('group=model');
is($st, 200, 'GET usage?group=model with a read-only credential');
is_deeply(pick($doc, 'model'), [ 'm-a 3 18 25 140 0', 'm-b 1 5 0 0 1' ],
          'totals by model in the range, one tenant; a 502 is an error');
($st, $doc) = usage('group=key');
is_deeply(pick($doc, 'key'), [ '1 2 11 22 110 0', '2 2 12 3 30 1' ],
          'totals by key');
($st, $doc) = usage('group=agent');
is_deeply(pick($doc, 'agent'), [ 'g1 2 11 22 110 0', 'g2 2 12 3 30 1' ],
          'totals by agent');
($st, $doc) = api($a, 'GET', "usage?$range&group=tenant", $read_cred);
my %by = map { ($_->{tenant} // '') => $_->{requests} } @{ $doc->{data} };
is_deeply([ @by{ $t1, $t2 } ], [ 4, 1 ], 'totals by tenant, every tenant');

($st, $doc) = usage('group=model&bucket=hour');
is_deeply([ map { "$_->{bucket} $_->{model} $_->{requests}" }
            @{ $doc->{data} } ],
          [ '2020-03-01T10:00:00+00:00 m-a 2',
            '2020-03-01T11:00:00+00:00 m-a 1',
            '2020-03-01T11:00:00+00:00 m-b 1' ],
          'a time series: per hour and model');

($st, $doc) = usage('group=model&bucket=hour&limit=2');
is(scalar @{ $doc->{data} }, 2, 'limit=2: two rows');
ok($doc->{has_more}, 'has_more');
is($doc->{next_offset}, 2, 'next_offset');
($st, $doc) = usage('group=model&bucket=hour&limit=2&offset=2');
is_deeply([ map { $_->{model} } @{ $doc->{data} } ], [ 'm-b' ],
          'the next page');
ok(!$doc->{has_more}, 'the last page');

($st, $doc) = api($a, 'GET', "usage?$range&tenant=none-$run", $read_cred);
is_deeply($doc->{data}, [], 'an unknown tenant: no rows');

for my $q ('group=user', 'bucket=week', 'limit=0', 'limit=1001',
           'offset=-1')
{
    ($st, $doc) = usage($q);
    is($st, 400, "usage?$q: 400");
    is($doc->{error}{code}, 'invalid_value', 'OpenAI error JSON');
}
for my $q ('to=2020-03-01T10:00:00Z',
           'from=2020-01-01T00:00:00Z&to=2020-06-01T00:00:00Z',
           'from=soon')
{
    ($st, $doc) = api($a, 'GET', "usage?$q", $read_cred);
    is($st, 400, "usage?$q: 400");
}
($st, $doc) = api($a, 'GET', "usage?$range", undef);
is($st, 401, 'usage without a credential: 401');
($st) = api($a, 'POST', 'usage', $read_cred, '{}');
is($st, 405, 'POST usage: 405');

done_testing();
