# Priorities in the tunnel's wait queue: with one agent of capacity 1
# and a slow runtime, 30 queued requests of three priorities (9, 5, 1:
# the key's default and X-Gpugate-Priority up to its maximum, set with
# gpugate-keys) are served highest first, FIFO within a priority; a
# request above its key's maximum gets the maximum; a bad header is a
# 400; aging lets a low request through under constant high load, ahead
# of high requests that came after it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use IO::Select;
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);

use GpugateTest qw(http_send http_read http_request wait_until env_or_skip
                   make_agent make_key);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugatePrio qw(prio_node keys_tool served status_agents);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t100-$$";
my ($key, $key_id) = make_key("tenant-$run", name => 'prio');
my ($plain) = make_key("tenant-$run", name => 'prio-plain');

# the key waits at 1 by default and may ask up to 9
keys_tool('limit', $key_id, '--priority', 1, '--max-priority', 9);

# 20 ms a token: max_tokens sets how long the runtime takes (40 ms for
# each queued request and for the aging part's)
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 20,
                      '--tokens', 1000);

my $ng = prio_node(tunnel => 'queue_timeout=60s aging=2s');
my $agent = "$run-a";
my (undef, $alog) = scale_agent(name => $agent, token => make_agent($agent),
                                gateways => [$ng->port], runtime => $mock,
                                capacity => 1);

ok(wait_until(30, sub { status_agents($ng, $run)->{'-a'} }),
   'the agent of capacity 1 is connected') or diag(slurp($alog));

sub chat {
    my ($k, $tokens, %h) = @_;
    my $stream = delete $h{stream} ? 'true' : 'false';
    return http_send($ng->port, 'POST', '/v1/chat/completions',
                     { 'Content-Type' => 'application/json',
                       Authorization => "Bearer $k", %h },
                     '{"model":"mock-model","max_tokens":' . $tokens
                     . ',"stream":' . $stream
                     . ',"messages":[{"role":"user","content":"hi"}]}');
}

sub waiting {
    my $r = http_request($ng->port, 'GET', '/status',
                         { Authorization => 'Bearer '
                                            . GpugateScale::ADMIN },
                         undef, 5);
    my $st = eval { decode_json($r->{body}) } || {};
    return $st->{tunnel}{waiting} // -1;
}

# --- 1. bad headers: 400 in the OpenAI shape, nothing queued -------------

for my $bad ('10', '-1', 'high', '5.0', ' 7x') {
    my $r = http_read(chat($key, 1, 'X-Gpugate-Priority' => $bad), 10);
    my $j = eval { decode_json($r->{body}) } || {};
    ok($r->{status} == 400
       && ($j->{error}{code} // '') eq 'invalid_priority'
       && ($j->{error}{type} // '') eq 'invalid_request_error',
       "X-Gpugate-Priority \"$bad\": 400 invalid_priority")
        or diag("$r->{status} $r->{body}");
}

# --- 2. 30 queued requests: by priority, FIFO within ---------------------

# the blocker holds the only place (a stream the runtime stalls) until
# its client leaves, once the others are queued
my $blocker = chat($key, 10, 'X-Seq' => 'blocker', stream => 1,
                   'X-Mock-Stall-After' => 1);
ok(wait_until(10, sub { status_agents($ng, $run)->{'-a'}{inflight} }),
   'the blocker holds the agent');

my @prio = map { (9, 5, 1)[$_ % 3] } 0 .. 29;
my (@socks, %asked);
for my $i (0 .. 29) {
    # the third of each three asks nothing: the key's default, 1
    my %h = ('X-Seq' => $i);
    $h{'X-Gpugate-Priority'} = $prio[$i] if $prio[$i] != 1;
    push @socks, chat($key, 2, %h);
    $asked{$i} = $prio[$i];
    # queued in this order, so that FIFO within a priority is defined
    wait_until(10, sub { waiting() == $i + 1 })
        or diag("request $i not queued: waiting " . waiting());
}

is(waiting(), 30, 'all 30 wait behind the blocker');
close $blocker;

my $ok = 0;
for my $s (@socks) {
    my $r = http_read($s, 30);
    $ok++ if $r->{status} == 200;
}
is($ok, 30, 'all 30 answered 200');

# a line is written after the client saw the end of its answer
sub numbered { [ grep { $_->[0] =~ /^\d+$/ } @{ served($ng) } ] }
wait_until(10, sub { @{ numbered() } == 30 });
my @order = @{ numbered() };
is(scalar @order, 30, '30 queued requests in the log');

my @got = map { $_->[2] } @order;
is_deeply(\@got, [ (9) x 10, (5) x 10, (1) x 10 ],
          'served highest priority first: ten 9s, ten 5s, ten 1s')
    or diag(join ' ', map { "$_->[0]:$_->[2]" } @order);

my $fifo = 1;
for my $p (9, 5, 1) {
    my @seq = map { $_->[0] } grep { $_->[2] == $p } @order;
    $fifo = 0 unless join(',', @seq) eq join(',', sort { $a <=> $b } @seq);
}
ok($fifo, 'FIFO within each priority')
    or diag(join ' ', map { "$_->[0]:$_->[2]" } @order);

# --- 3. the key's maximum caps what a request asks -----------------------

{
    my $r = http_read(chat($plain, 1, 'X-Seq' => 'plain9',
                           'X-Gpugate-Priority' => 9), 10);
    is($r->{status}, 200, 'a key without settings asking 9: served');
    my $r2 = http_read(chat($plain, 1, 'X-Seq' => 'plain2',
                            'X-Gpugate-Priority' => 2), 10);
    wait_until(10, sub { grep { $_->[0] eq 'plain2' } @{ served($ng) } });
    my %by = map { $_->[0] => $_->[2] } @{ served($ng) };
    is($by{plain9}, 5, 'asked 9 above the maximum: waits at 5, the default');
    is($by{plain2}, 2, 'asked 2, below the maximum: waits at 2');
}

# --- 4. aging: a low request gets through under constant high load -------

my $ng2 = prio_node(tunnel => 'queue_timeout=60s aging=100ms');
my $agent2 = "$run-b";
my (undef, $blog) = scale_agent(name => $agent2,
                                token => make_agent($agent2),
                                gateways => [$ng2->port], runtime => $mock,
                                capacity => 1);
ok(wait_until(30, sub { status_agents($ng2, $run)->{'-b'} }),
   'the second node\'s agent is connected') or diag(slurp($blog));

sub chat2 {
    my ($seq, $prio) = @_;
    return http_send($ng2->port, 'POST', '/v1/chat/completions',
                     { 'Content-Type' => 'application/json',
                       Authorization => "Bearer $key", 'X-Seq' => $seq,
                       'X-Gpugate-Priority' => $prio },
                     '{"model":"mock-model","max_tokens":2,'
                     . '"messages":[{"role":"user","content":"hi"}]}');
}

# three clients keep priority-9 requests (40 ms each) waiting; one
# priority-0 request joins after half a second
my $sel = IO::Select->new;
my (%sock, %sent, $low_done);
my $n = 0;
my $start = time;
my $stop = $start + 20;
for (1 .. 3) {
    my $s = chat2("h$n", 9);
    $sock{$s} = $s;
    $sent{"h$n"} = time;
    $sel->add($s);
    $n++;
}
my $low_sent;
while (time < $stop) {
    if (!$low_sent && time - $start > 0.5) {
        my $s = chat2('low', 0);
        $sock{$s} = $s;
        $sel->add($s);
        $low_sent = time;
        $sent{low} = $low_sent;
    }
    for my $s ($sel->can_read(0.2)) {
        my $r = http_read($s, 5);
        $sel->remove($s);
        delete $sock{$s};
        close $s;
        # a new high request for every one that ends, until the low is
        # done and half a second more went by
        if (!$low_done || time - $low_done < 0.5) {
            my $h = chat2("h$n", 9);
            $sock{$h} = $h;
            $sent{"h$n"} = time;
            $sel->add($h);
            $n++;
        }
    }
    if ($low_sent && !$low_done
        && grep { $_->[0] eq 'low' } @{ served($ng2) })
    {
        $low_done = time;
    }
    last if $low_done && !$sel->count;
}
for my $s ($sel->handles) {
    http_read($s, 5);
}

ok($low_done, 'the priority-0 request was served under constant load')
    or diag("sent $n high requests");

my @log = @{ served($ng2) };
my ($li) = grep { $log[$_][0] eq 'low' } 0 .. $#log;
my @ahead = grep { $sent{ $_->[0] } > $sent{low} }
            @log[0 .. ($li // 0) - 1];
my @after = grep { $_->[0] =~ /^h/ } @log[($li // 0) + 1 .. $#log];
ok(defined $li && @ahead >= 3,
   'high requests sent after it were served before it (priority '
   . 'first): ' . scalar(@ahead))
    or diag(join ' ', map { "$_->[0]:$_->[2]" } @log);
ok(@after >= 1, 'and high requests were still being served after it: '
                . scalar(@after));
is($log[$li // 0][2], 0, 'it was logged at priority 0');
is($log[0][5], 'redis', 'the second node read the key from Redis');
is(scalar(grep { $_->[0] =~ /^h/ && $_->[2] != 9 } @log), 0,
   'and its maximum with it: every high request waited at 9');

done_testing();
