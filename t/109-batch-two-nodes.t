# Two gateway nodes on one PostgreSQL run one batch (issue 19): each node
# has its own gpugate_batch runner, one agent serves both.  A batch of 100
# lines completes with its output file, every line run exactly once (each
# line asks for its own number of tokens, which the mock's log shows) and
# both nodes' runners took lines (the ledger's rows by node).  Then one
# node is killed (-9) mid-batch: the other finishes every pending line;
# the dead node's leased lines end "interrupted" once their (short) lease
# ran out, in the error file, and no line ran twice.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(make_key make_agent psql wait_until env_or_skip
                   http_request free_port);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugateBatch qw(batch_node upload api jsonl kill_node);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t109-$$";
my ($key) = make_key("tenant-$run", name => 'two-nodes');
my ($pa, $pb) = (free_port(), free_port());

# a lease far longer than a line takes, short enough for a test
my $runner = 'concurrency=4 interval=100ms lease=4s';
my $na = batch_node(name => "$run-a", port => $pa, runner => $runner);
my $nb = batch_node(name => "$run-b", port => $pb, runner => $runner);

my $mock = scale_mock('--ttft-ms', 100, '--token-delay-ms', 0,
                      '--tokens', 500);
my $mock_log = glob(($ENV{TMPDIR} || '/tmp')
                    . "/gpugate-scale-*/mock-$mock.log")
    || die "no mock log\n";
my (undef, $alog) = scale_agent(name => "$run-agent", token =>
    make_agent("$run-agent"), gateways => [$pa, $pb], runtime => $mock,
    capacity => 8);

for my $p ($pa, $pb) {
    ok(wait_until(30, sub {
        my $r = http_request($p, 'POST', '/v1/chat/completions',
            { Authorization => "Bearer $key",
              'Content-Type' => 'application/json' },
            '{"model":"mock-model","max_tokens":999,"messages":'
            . '[{"role":"user","content":"hi"}]}', 5);
        $r->{status} == 200 }), "node on port $p: the agent serves")
        or diag(slurp($alog));
}

sub line {
    my ($i) = @_;
    return { custom_id => "req-$i", method => 'POST',
             url => '/v1/chat/completions',
             body => { model => 'mock-model', max_tokens => $i,
                       messages => [{ role => 'user', content => 'hi' }] } };
}

sub batch {
    my ($port, @n) = @_;
    my ($r, $f) = upload($port, $key, jsonl(map { line($_) } @n));
    ($r, my $b) = api($port, $key, 'POST', '/v1/batches',
                      { input_file_id => $f->{id}, completion_window => '24h',
                        endpoint => '/v1/chat/completions' });
    is($b->{status} // '', 'in_progress', 'a batch of ' . @n . ' lines');
    return $b->{id};
}

sub get {
    my ($port, $id) = @_;
    my (undef, $x) = api($port, $key, 'GET', "/v1/batches/$id");
    return $x;
}

# how many times the runtime ran each line (max_tokens) since "from"
sub runs {
    my ($from) = @_;
    my $text = substr(slurp($mock_log), $from);
    my %seen;
    $seen{$1}++ while $text =~ /tokens=\d+\+(\d+)/g;
    return \%seen;
}

sub lines_of {
    my ($port, $file) = @_;
    my ($r) = api($port, $key, 'GET', "/v1/files/$file/content");
    return map { decode_json($_) } split /\n/, $r->{body} // '';
}

# --- 1. both nodes run one batch --------------------------------------------

my $mark = -s $mock_log;
my $bid = batch($pa, 1 .. 100);
ok(wait_until(60, sub { (get($pb, $bid)->{status} // '') eq 'completed' }),
   'the batch completes (read on the other node)');
my $b = get($pa, $bid);
is_deeply($b->{request_counts}, { total => 100, completed => 100,
                                  failed => 0 }, 'request_counts');

my $seen = runs($mark);
is_deeply([ grep { ($seen->{$_} // 0) != 1 } 1 .. 100 ], [],
          'the runtime ran each of the 100 lines exactly once');
my @out = lines_of($pa, $b->{output_file_id});
is_deeply([ map { $_->{custom_id} } @out ], [ map { "req-$_" } 1 .. 100 ],
          'the output file: every line, in order');

my %by;
ok(wait_until(15, sub {
    %by = map { split /\|/ } split /\n/,
          psql("SELECT gateway, count(*) FROM usage_events"
               . " WHERE batch_id = '$bid' GROUP BY gateway");
    my $n = 0;
    $n += $_ for values %by;
    $n == 100 }), 'the ledger has the 100 lines')
    or diag(explain(\%by));
ok(($by{"$run-a"} // 0) > 0 && ($by{"$run-b"} // 0) > 0,
   "both nodes' runners took lines (a: " . ($by{"$run-a"} // 0)
   . ', b: ' . ($by{"$run-b"} // 0) . ')');

# --- 2. one node killed mid-batch -------------------------------------------

$mark = -s $mock_log;
my $cid = batch($pa, 101 .. 200);
ok(wait_until(30, sub {
    (get($pa, $cid)->{request_counts}{completed} // 0) >= 10 }),
   'the second batch runs');

# b frozen first, so that the lines it holds are known, then killed
my $master = $nb->pid;
my @workers;
for my $stat (glob '/proc/[0-9]*/stat') {
    open my $fh, '<', $stat or next;
    my ($pid, $ppid) = (<$fh> // '') =~ /^(\d+) \(.*\) \S (\d+)/ or next;
    push @workers, $pid if $ppid == $master;
}
kill 'STOP', $master, @workers;
my $pids = join '|', @workers;
my @held = grep { /^\d+$/ } split /\n/,
    psql("SELECT line_no FROM batch_lines WHERE batch_id = '$cid'"
         . " AND status = 'running'"
         . " AND lease_owner ~ ':($pids)\$' ORDER BY line_no");
kill_node($nb);
ok(@held > 0, 'b held ' . @held . ' lines when it was killed');

ok(wait_until(60, sub { (get($pa, $cid)->{status} // '') eq 'completed' }),
   'node a finishes the batch');
$b = get($pa, $cid);
is_deeply($b->{request_counts}, { total => 100,
                                  completed => 100 - @held,
                                  failed => scalar @held },
          "every line done but b's");

my @err = lines_of($pa, $b->{error_file_id});
is_deeply([ map { "$_->{custom_id} $_->{error}{code}" } @err ],
          [ map { 'req-' . (100 + $_) . ' interrupted' } @held ],
          "b's lines failed as interrupted (the error file)");
@out = lines_of($pa, $b->{output_file_id});
is(scalar @out, 100 - @held, 'the output file has the rest');

$seen = runs($mark);
my %held = map { (100 + $_ => 1) } @held;
is_deeply([ grep { ($seen->{$_} // 0) > 1 } 101 .. 200 ], [],
          'no line ran twice');
is_deeply([ grep { !$held{$_} && ($seen->{$_} // 0) != 1 } 101 .. 200 ],
          [], 'every other line ran once');
ok(psql("SELECT count(*) FROM usage_events WHERE batch_id = '$cid'"
        . " AND gateway = '$run-a'") > 0 || wait_until(15, sub {
        psql("SELECT count(*) FROM usage_events WHERE batch_id = '$cid'"
             . " AND gateway = '$run-a'") > 0 }),
   "node a's ledger rows of the second batch");

unlike($na->log, qr/\[(alert|emerg|crit)\]/, 'no alert in a\'s error log');

done_testing();
