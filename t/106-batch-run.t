# The batch runner (issue 19): a batch of 200 lines runs through the
# tunnel (a real agent, a mock runtime) to "completed" with an output file
# (every good line, in order, in OpenAI's shape) and an error file (lines
# the gateway refused, with their status and error body); nginx is
# stopped mid-batch and started again, and the mock's log shows every
# line run exactly once; every line's usage row in the ledger carries the
# batch id; a second batch is cancelled while it runs: lines not yet sent
# end cancelled, those in flight finish; a forged X-Gpugate-Batch header
# is refused.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Digest::SHA qw(sha256_hex);
use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(make_key make_agent psql wait_until env_or_skip
                   http_request free_port);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugateBatch qw(batch_node upload api jsonl);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t106-$$";
my ($key, $kid) = make_key("tenant-$run", name => 'batch-run');
my $port = free_port();
my $runner = 'concurrency=8 interval=100ms lease=20s';

my $ng = batch_node(name => $run, port => $port, runner => $runner);

# a runtime slow enough that a restart falls mid-batch; every line asks
# for its own number of tokens, which the mock's log shows
my $mock = scale_mock('--ttft-ms', 25, '--token-delay-ms', 0,
                      '--tokens', 500);
my $mock_log = glob(($ENV{TMPDIR} || '/tmp')
                    . "/gpugate-scale-*/mock-$mock.log")
    || die "no mock log\n";
my (undef, $alog) = scale_agent(name => "$run-a", token =>
    make_agent("$run-a"), gateways => [$port], runtime => $mock,
    capacity => 8);

ok(wait_until(30, sub {
    my $r = http_request($port, 'POST', '/v1/chat/completions',
        { Authorization => "Bearer $key",
          'Content-Type' => 'application/json' },
        '{"model":"mock-model","max_tokens":1,"messages":'
        . '[{"role":"user","content":"hi"}]}', 5);
    $r->{status} == 200 }), 'the agent serves') or diag(slurp($alog));

# --- 1. 200 lines, 4 of them refused by the router -----------------------

sub line {
    my ($i) = @_;
    return { custom_id => "req-$i", method => 'POST',
             url => '/v1/chat/completions',
             body => { model => $i % 50 ? 'mock-model' : 'no-such-model',
                       max_tokens => $i,
                       messages => [{ role => 'user', content => 'hi' }] } };
}

my ($r, $f) = upload($port, $key, jsonl(map { line($_) } 1 .. 200));
is($r->{status}, 200, 'the 200-line file is uploaded') or diag($r->{body});
my $mark = -s $mock_log;
($r, my $b) = api($port, $key, 'POST', '/v1/batches',
                  { input_file_id => $f->{id}, completion_window => '24h',
                    endpoint => '/v1/chat/completions' });
is($b->{status} // '', 'in_progress', 'the batch is in progress');
my $bid = $b->{id};

sub counts {
    my ($id) = @_;
    my (undef, $x) = api($port, $key, 'GET', "/v1/batches/$id");
    return $x;
}

# --- 2. a restart mid-batch ----------------------------------------------

ok(wait_until(30, sub { (counts($bid)->{request_counts}{completed} // 0)
                        >= 30 }), 'lines complete');
$ng->stop;
my $mid = counts_sql();
sub counts_sql {
    return psql("SELECT completed + failed FROM batches WHERE id = '$bid'");
}
ok($mid > 0 && $mid < 200, "stopped mid-batch ($mid of 200 done)");
is(psql("SELECT count(*) FROM batch_lines WHERE batch_id = '$bid'"
        . " AND status = 'running'"), 0,
   'a graceful stop finished and stored every line in flight');

$ng = batch_node(name => $run, port => $port, runner => $runner);

ok(wait_until(60, sub { (counts($bid)->{status} // '') eq 'completed' }),
   'the batch completes after the restart');
$b = counts($bid);
is_deeply($b->{request_counts}, { total => 200, completed => 196,
                                  failed => 4 }, 'request_counts');
ok($b->{finalizing_at} && $b->{completed_at}, 'finalizing_at, completed_at');

# every line ran once: the mock's log has each token count once
my $text = slurp($mock_log);
$text = substr($text, $mark);
my %seen;
# (other files' batches may run here too: their lines ask for more)
$seen{$1}++ while $text =~ /tokens=\d+\+(\d+)/g;
delete @seen{ grep { $_ > 200 } keys %seen };
my @twice = grep { $seen{$_} > 1 } keys %seen;
is(scalar(keys %seen), 196, 'the runtime ran 196 lines (4 were refused)');
is_deeply(\@twice, [], 'no line ran twice');
unlike($text, qr/disconnected/, 'no line was cut off');

# the output and error files
($r) = api($port, $key, 'GET', "/v1/files/$b->{output_file_id}/content");
my @out = map { decode_json($_) } split /\n/, $r->{body};
is(scalar @out, 196, 'the output file has 196 lines');
is_deeply([ map { $_->{custom_id} } @out ],
          [ map { "req-$_" } grep { $_ % 50 } 1 .. 200 ],
          'in the order of the input');
my $o = $out[6];
ok($o->{id} =~ /^batch_req_/ && $o->{response}{status_code} == 200
   && $o->{response}{request_id} =~ /^\Q$bid\E\.7\.1$/
   && $o->{response}{body}{usage}{completion_tokens} == 7
   && !defined $o->{error}, "a line's shape: id, response, body, no error")
    or diag(JSON::PP->new->canonical->encode($o));
($r) = api($port, $key, 'GET', "/v1/files/$b->{error_file_id}/content");
my @err = map { decode_json($_) } split /\n/, $r->{body};
is_deeply([ map { "$_->{custom_id} $_->{response}{status_code}" } @err ],
          [ map { "req-$_ 404" } 50, 100, 150, 200 ],
          'the error file: the 4 refused lines with their status');
ok($err[0]{response}{body}{error}{message}, 'and their error body');

# the ledger: one row per line that reached the gateway, with the batch
ok(wait_until(15, sub {
    psql("SELECT count(*) FROM usage_events WHERE batch_id = '$bid'") == 200
}), 'the ledger has the 200 lines under the batch id')
    or diag(psql("SELECT count(*) FROM usage_events"
                 . " WHERE batch_id = '$bid'"));
is(psql("SELECT count(*) FROM usage_events WHERE batch_id = '$bid'"
        . " AND api_key_id = $kid AND status = 200"), 196,
   'as the key that made the batch, 196 answered 200');

# --- 3. cancel while running ---------------------------------------------

($r, $f) = upload($port, $key, jsonl(map { line($_) } 1 .. 40));
($r, $b) = api($port, $key, 'POST', '/v1/batches',
               { input_file_id => $f->{id}, completion_window => '24h',
                 endpoint => '/v1/chat/completions' });
my $cid = $b->{id};
ok(wait_until(30, sub { (counts($cid)->{request_counts}{completed} // 0)
                        >= 4 }), 'the second batch runs');
($r, $b) = api($port, $key, 'POST', "/v1/batches/$cid/cancel");
like($b->{status} // '', qr/^cancell(ing|ed)$/, 'cancel: cancelling');
ok(wait_until(30, sub { (counts($cid)->{status} // '') eq 'cancelled' }),
   'then cancelled once the lines in flight answered');
$b = counts($cid);
my $n = psql("SELECT count(*) FROM batch_lines WHERE batch_id = '$cid'"
             . " AND status = 'cancelled'");
ok($n > 0 && $b->{request_counts}{completed} + $b->{request_counts}{failed}
   + $n == 40, "every line done or cancelled ($n cancelled)");
is(psql("SELECT count(*) FROM batch_lines WHERE batch_id = '$cid'"
        . " AND status IN ('pending', 'running')"), 0,
   'nothing left to run');

# --- 4. the runner's trust ------------------------------------------------

$r = http_request($port, 'POST', '/v1/chat/completions',
    { 'X-Gpugate-Batch' => ('0' x 64) . ' ' . sha256_hex($key) . " $bid",
      'Content-Type' => 'application/json' },
    '{"model":"mock-model","messages":[{"role":"user","content":"x"}]}');
is($r->{status}, 401, 'a forged X-Gpugate-Batch header: 401');
like($ng->log, qr/bad X-Gpugate-Batch header from 127\.0\.0\.1/,
     'logged for the operator');

unlike($ng->log, qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');

done_testing();
