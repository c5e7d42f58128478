# The batch runner takes only the capacity interactive traffic leaves
# (issue 19).  With its concurrency far above the agents' capacity (64
# against 2) it sends no line while interactive requests wait for an
# agent (it used to read "more waiting than free", a negative count, as
# "no tunnel" and send its whole concurrency at once, which filled the
# wait queue: lines and interactive requests got 503), so no line is
# refused for a full queue and every line runs at its first attempt;
# interactive requests sent meanwhile, above and below the capacity, are
# all served.  Batch lines wait at priority 0, the lowest, behind
# interactive requests (before: their key's default, 5, among them); a
# job keeps the priority it asked for.  The ledger's priority column
# shows each.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(make_key make_agent psql wait_until env_or_skip
                   http_request);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugateBatch qw(batch_node upload api jsonl);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
my $bench = "$FindBin::Bin/../build/bin/gpugate-sse-bench";
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent" && -x $bench;

my $run = "t119-$$";
my ($key, $kid) = make_key("tenant-$run", name => 'batch-share');

# a queue of 8 per worker: a runner that floods it gets 503s back
my $ng = batch_node(name => $run, queue => 8,
                    runner => 'concurrency=64 interval=100ms lease=20s');
my $port = $ng->port;

my $mock = scale_mock('--ttft-ms', 100, '--token-delay-ms', 0,
                      '--tokens', 2);
my (undef, $alog) = scale_agent(name => "$run-a", token =>
    make_agent("$run-a"), gateways => [$port], runtime => $mock,
    capacity => 2);

my $chat = '{"model":"mock-model","max_tokens":2,"messages":'
         . '[{"role":"user","content":"interactive"}]}';

sub chat {
    return http_request($port, 'POST', '/v1/chat/completions',
        { Authorization => "Bearer $key",
          'Content-Type' => 'application/json' }, $chat, 10);
}

ok(wait_until(30, sub { chat()->{status} == 200 }), 'the agent serves')
    or diag(slurp($alog));

my $lines = 40;
my ($r, $f) = upload($port, $key, jsonl(map {
    { custom_id => "req-$_", method => 'POST',
      url => '/v1/chat/completions',
      body => { model => 'mock-model', max_tokens => 2,
                messages => [{ role => 'user', content => "line $_" }] } }
} 1 .. $lines));
is($r->{status}, 200, 'the file is uploaded') or diag($r->{body});

($r, my $b) = api($port, $key, 'POST', '/v1/batches',
                  { input_file_id => $f->{id}, completion_window => '24h',
                    endpoint => '/v1/chat/completions' });
my $bid = $b->{id} // '';
like($bid, qr/^batch_/, 'the batch is created') or diag($r->{body});

($r, my $j) = api($port, $key, 'POST', '/v1/jobs',
                  { endpoint => '/v1/chat/completions', priority => 3,
                    body => { model => 'mock-model', max_tokens => 2,
                              messages => [{ role => 'user',
                                             content => 'a job' }] } });
my $jid = $j->{id} // '';
like($jid, qr/^job_/, 'a job with priority 3') or diag($r->{body});

# more interactive load than the agent takes (6 requests at once against
# a capacity of 2): requests wait, and the runner sends no line meanwhile
my $body = "$ng->{dir}/chat.json";
open my $fh, '>', $body or die;
print $fh $chat;
close $fh;
my $out = `$bench -u http://127.0.0.1:$port/v1/chat/completions -c 6 -d 3 -b $body -H 'Authorization: Bearer $key'`;
my ($reqs, $errs) = $out =~ /"requests":(\d+),"errors":(\d+)/;
ok(($reqs // 0) > 20 && defined $errs && $errs == 0,
   'interactive load above capacity beside the batch: no error')
    or diag($out);

# and below capacity while the lines run: each one is served
my @st;
ok(wait_until(30, sub {
    psql("SELECT completed + failed FROM batches WHERE id = '$bid'") > 0 }),
   'lines run');
push @st, chat()->{status} for 1 .. 5;
is_deeply(\@st, [ (200) x 5 ], 'interactive requests beside the batch: 200');

sub counts {
    my (undef, $x) = api($port, $key, 'GET', "/v1/batches/$bid");
    return $x;
}

ok(wait_until(60, sub { (counts()->{status} // '') eq 'completed' }),
   'the batch completes');
is_deeply(counts()->{request_counts},
          { total => $lines, completed => $lines, failed => 0 },
          'every line answered, none failed');
is(psql("SELECT count(*) FROM batch_lines WHERE batch_id = '$bid'"
        . " AND attempts > 1"), 0,
   'every line ran at its first attempt (none was refused and retried)');
my $log = slurp("$ng->{dir}/logs/error.log");
my $full = () = $log =~ /the wait queue is full/g;
is($full, 0, 'no request found the wait queue full');

ok(wait_until(30, sub {
    psql("SELECT count(*) FROM usage_events WHERE batch_id = '$bid'")
        == $lines
    && psql("SELECT count(*) FROM usage_events WHERE batch_id = '$jid'")
        == 1 }), "the ledger has every line's row");
is(psql("SELECT string_agg(DISTINCT coalesce(priority::text, 'none'), ',')"
        . " FROM usage_events WHERE batch_id = '$bid'"), '0',
   'batch lines waited at priority 0');
is(psql("SELECT priority FROM usage_events WHERE batch_id = '$jid'"), 3,
   'the job at the priority it asked for');
is(psql("SELECT string_agg(DISTINCT coalesce(priority::text, 'none'), ',')"
        . " FROM usage_events WHERE api_key_id = $kid AND batch_id IS NULL"
        . " AND status = 200"),
   '5', "interactive requests at the key's default, 5");

done_testing();
