# Scale-out, one agent serving two gateway nodes: its capacity is shared
# (each node is offered a part, the parts add up to the capacity, never
# 2x), each node's in-flight and waiting counts are its own, a node that
# leaves gives its part to the other at the next ping, and one that
# comes back gets its part again once the agent reconnected.  A load
# over both nodes is served without the agent refusing anything.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(http_read wait_until env_or_skip make_agent make_key);
use GpugateScale qw(scale_node scale_mock scale_agent node_status
                    chat_send slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t070-$$";
my ($key) = make_key("tenant-$run", name => 'scale-capacity');
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);

my $a = scale_node(name => "$run-a");
my $b = scale_node(name => "$run-b");
my $b_port = $b->port;

my $agent_name = "scale-cap-$$";
my ($agent, $agent_log) = scale_agent(
    name => $agent_name, token => make_agent($agent_name),
    gateways => [$a->port, $b->port], runtime => $mock, capacity => 4);

# the agent entry of this test on a node: capacity, inflight, or undef
sub entry {
    my ($ng) = @_;
    my $st = node_status($ng) or return undef;
    my ($e) = grep { $_->{name} eq $agent_name } @{ $st->{tunnel}{agents} };
    return $e ? { %$e, waiting => $st->{tunnel}{waiting} } : undef;
}

sub cap { my $e = entry($_[0]); $e ? $e->{capacity} : -1 }

# --- 1. the capacity is split, not doubled --------------------------------

ok(wait_until(20, sub { cap($a) == 2 && cap($b) == 2 }),
   'capacity 4 over two nodes: 2 offered to each (not 4 to each)')
    or diag("a: " . cap($a) . ", b: " . cap($b) . "\n" . slurp($agent_log));

like(slurp($agent_log),
     qr/gateway 127\.0\.0\.1:\d+, runtime "default": up, \d+ tunnel\(s\)/,
     'the agent logs each node with its tunnels');

# --- 2. a load over both nodes: per-node counts, nothing refused ----------

{
    my @s;
    push @s, chat_send($a->port, $key, 1, 'X-Mock-Tokens' => 30,
                       'X-Mock-Token-Delay-Ms' => 100) for 1 .. 3;
    push @s, chat_send($b->port, $key, 1, 'X-Mock-Tokens' => 30,
                       'X-Mock-Token-Delay-Ms' => 100) for 1 .. 2;

    my ($ea, $eb);
    ok(wait_until(10, sub {
            $ea = entry($a);
            $eb = entry($b);
            $ea && $eb && $ea->{inflight} == 2 && $eb->{inflight} == 2
                && $ea->{waiting} == 1 && $eb->{waiting} == 0;
        }),
       'per node: a 2 in flight and 1 waiting, b 2 in flight')
        or diag(explain([$ea, $eb]));

    my @st = map { my $r = http_read($_, 30);
                   $r->{status} == 200 && $r->{body} =~ /\[DONE\]/
                       ? 200 : "$r->{status} $r->{body}" } @s;
    is_deeply(\@st, [(200) x 5], 'all five streams complete, none refused');
    unlike(slurp($agent_log), qr/agent at capacity|agent_busy/,
           'the agent never had more requests than its capacity');
}

# --- 3. a node leaves: the other gets the whole capacity ------------------

$b->stop;

ok(wait_until(20, sub { cap($a) == 4 }),
   'node b gone: node a is offered all 4 at its next ping')
    or diag(slurp($agent_log));

{
    my @s = map { chat_send($a->port, $key, 1, 'X-Mock-Tokens' => 20,
                            'X-Mock-Token-Delay-Ms' => 100) } 1 .. 4;
    my $e;
    ok(wait_until(10, sub { $e = entry($a); $e && $e->{inflight} == 4 }),
       'node a serves 4 at once alone') or diag(explain($e));
    my @st = map { http_read($_, 30)->{status} } @s;
    is_deeply(\@st, [(200) x 4], 'the four streams complete');
}

# --- 4. it comes back: the parts are split again --------------------------

$b = scale_node(name => "$run-b", port => $b_port);

ok(wait_until(40, sub { cap($a) == 2 && cap($b) == 2 }),
   'node b back: the agent reconnected and the parts are 2 and 2 again')
    or diag("a: " . cap($a) . ", b: " . cap($b));

like(slurp($agent_log), qr/runtime "default": down, \d+ tunnel/,
     'the agent logged node b down');

done_testing();
