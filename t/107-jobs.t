# The platform's single-request jobs (issue 19): POST /v1/jobs (an
# endpoint, a body, optional priority and region) answers an id; on a
# node without a runner the job stays queued and DELETE cancels it; once
# a node with a runner is up the next job runs through the tunnel and GET
# shows it completed with the runtime's answer, its usage in the ledger
# under the job id; a job the router refuses ends failed with the
# refusal; refusals of bad input; only the key that made a job reads or
# cancels it; a finished job cannot be cancelled.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(make_key make_agent psql wait_until env_or_skip);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugateBatch qw(batch_node api);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t107-$$";
my ($key, $kid) = make_key("tenant-$run", name => 'jobs');
my ($other) = make_key("tenant-$run-b", name => 'jobs-other');

my %chat = (model => 'mock-model', max_tokens => 5,
            messages => [{ role => 'user', content => 'hi' }]);

# --- 1. a node without a runner: queued, cancelled ----------------------

my $a = batch_node(name => "$run-a", workers => 1);

my ($r, $j) = api($a->port, $key, 'POST', '/v1/jobs',
                  { endpoint => '/v1/chat/completions', body => \%chat,
                    priority => 3, region => 'eu-west' });
is($r->{status}, 200, 'POST /v1/jobs: 200') or diag($r->{body});
like($j->{id} // '', qr/^job_[0-9a-f]{32}$/, 'a job id');
is_deeply([ @$j{qw(object status endpoint priority region)} ],
          [ 'job', 'queued', '/v1/chat/completions', 3, 'eu-west' ],
          'queued, with its endpoint, priority and region');

my ($r2, $queued) = api($a->port, $key, 'POST', '/v1/jobs',
                        { endpoint => '/v1/chat/completions',
                          body => \%chat });

($r, my $g) = api($a->port, $other, 'GET', "/v1/jobs/$j->{id}");
is("$r->{status} " . ($g->{error}{code} // ''), '404 job_not_found',
   'another key cannot read it');
($r, $g) = api($a->port, $other, 'DELETE', "/v1/jobs/$j->{id}");
is($r->{status}, 404, 'nor cancel it');
($r, $g) = api($a->port, $key, 'DELETE', "/v1/jobs/$j->{id}");
is("$r->{status} " . ($g->{status} // ''), '200 cancelled',
   'DELETE cancels a queued job');
is(($g->{error} || {})->{code} // '', 'batch_cancelled',
   'its error says so');
($r, $g) = api($a->port, $key, 'GET', "/v1/batches/$j->{id}");
is($r->{status}, 404, 'a job is not a batch');

for my $bad ([ { endpoint => '/v1/files', body => \%chat }, 'endpoint' ],
             [ { endpoint => '/v1/chat/completions' }, 'body' ],
             [ { endpoint => '/v1/chat/completions', body => [1] }, 'body' ],
             [ { endpoint => '/v1/chat/completions',
                 body => { %chat, stream => \1 } }, 'body' ],
             [ { endpoint => '/v1/chat/completions', body => \%chat,
                 priority => 'high' }, 'priority' ],
             [ { endpoint => '/v1/chat/completions', body => \%chat,
                 region => 'a b' }, 'region' ])
{
    ($r, $g) = api($a->port, $key, 'POST', '/v1/jobs', $bad->[0]);
    ok($r->{status} == 400 && ($g->{error}{param} // '') eq $bad->[1],
       "refused: a bad $bad->[1]") or diag("$r->{status} $r->{body}");
}
($r) = api($a->port, $key, 'POST', '/v1/jobs', undef);
is($r->{status}, 400, 'refused: no body');

# --- 2. a node with a runner: the queued job runs -------------------------

my $b = batch_node(name => "$run-b", runner => 'concurrency=2 '
                   . 'interval=100ms lease=20s');
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);
my (undef, $alog) = scale_agent(name => "$run-ag", token =>
    make_agent("$run-ag"), gateways => [$b->port], runtime => $mock,
    capacity => 2);

sub job {
    my ($id) = @_;
    my (undef, $x) = api($b->port, $key, 'GET', "/v1/jobs/$id");
    return $x;
}

ok(wait_until(30, sub { (job($queued->{id})->{status} // '')
                        eq 'completed' }),
   'the job queued before runs once a runner is up')
    or diag(slurp($alog));
$g = job($queued->{id});
ok($g->{result}{status_code} == 200
   && $g->{result}{body}{usage}{completion_tokens} == 5
   && $g->{result}{body}{object} eq 'chat.completion'
   && !defined $g->{error} && $g->{completed_at} && $g->{attempts} == 1,
   'GET: completed, with the runtime\'s answer')
    or diag($r->{body});
ok(wait_until(10, sub {
    psql("SELECT count(*) FROM usage_events WHERE batch_id ="
         . " '$queued->{id}' AND api_key_id = $kid AND status = 200") == 1
}), 'its usage is in the ledger under the job id, as its key');

($r, $g) = api($b->port, $key, 'DELETE', "/v1/jobs/$queued->{id}");
is("$r->{status} " . ($g->{error}{code} // ''), '409 not_cancellable',
   'a finished job cannot be cancelled');

# a job the router refuses: failed, with the refusal
($r, $j) = api($b->port, $key, 'POST', '/v1/jobs',
               { endpoint => '/v1/chat/completions',
                 body => { %chat, model => 'no-such-model' } });
ok(wait_until(30, sub { (job($j->{id})->{status} // '') eq 'failed' }),
   'a job for an unknown model fails');
$g = job($j->{id});
is($g->{result}{status_code}, 404, 'its result is the router\'s 404');
ok($g->{result}{body}{error}{message}, 'with its error body');

# an embedding job, another endpoint
($r, $j) = api($b->port, $key, 'POST', '/v1/jobs',
               { endpoint => '/v1/embeddings',
                 body => { model => 'mock-model', input => 'hello' } });
ok(wait_until(30, sub { (job($j->{id})->{status} // '') eq 'completed' }),
   'an embeddings job completes');
is(job($j->{id})->{result}{body}{object}, 'list', 'with the list answer');

unlike($b->log . $a->log, qr/\[(alert|emerg|crit)\]/,
       'no alert in the error logs');

done_testing();
