# Scale-out failover: two gateway nodes behind nginx's stream module (the
# L4 balancer scripts/run.sh --gateways starts), one agent connected to
# both.  A node is stopped, gracefully (QUIT) and then killed (KILL, the
# master and its workers), while streams are in flight on the other:
# every stream on the surviving node completes, the agent keeps serving
# it, new clients of the balancer all reach the live node, and the agent
# reconnects to the stopped node with backoff (not a tight loop) once it
# is back, after which that node serves again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(http_read wait_until env_or_skip make_agent make_key);
use GpugateScale qw(scale_node scale_mock scale_agent scale_balancer
                    node_status chat_send slurp STREAM_MODULE);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";
plan skip_all => 'needs ' . STREAM_MODULE . ' (libnginx-mod-stream)'
    unless -e STREAM_MODULE;

my $run = "t072-$$";
my ($key) = make_key("tenant-$run", name => 'failover');
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);

my $a = scale_node(name => "$run-a");
my $b = scale_node(name => "$run-b");
my $b_port = $b->port;
my ($lb) = scale_balancer($a->port, $b->port);

my $name = "scale-fo-$$";
my ($agent, $log) = scale_agent(name => $name, token => make_agent($name),
    gateways => [$a->port, $b->port], runtime => $mock, capacity => 16);

sub serves {
    my ($port) = @_;
    my $r = http_read(chat_send($port, $key, 0), 10);
    return $r->{status} == 200;
}

ok(wait_until(20, sub { serves($a->port) && serves($b->port) }),
   'the agent serves both nodes') or diag(slurp($log));

sub streams_on {
    my ($port, $n) = @_;
    return map { chat_send($port, $key, 1, 'X-Mock-Tokens' => 20,
                           'X-Mock-Token-Delay-Ms' => 100) } 1 .. $n;
}

sub all_done {
    my (@s) = @_;
    return join ' ', map {
        my $r = http_read($_, 30);
        $r->{status} == 200 && $r->{body} =~ /data: \[DONE\]\n\n\z/
            ? 'ok' : "$r->{status}";
    } @s;
}

# the master's children: its workers
sub workers_of {
    my ($master) = @_;
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @w, $pid if $ppid == $master;
    }
    return @w;
}

sub dials_to_b {
    my @n = slurp($log) =~ /gateway 127\.0\.0\.1:$b_port: connect: /g;
    return scalar @n;
}

for my $how ('QUIT', 'KILL') {

    # streams in flight on both nodes
    my @on_a = streams_on($a->port, 4);
    my @on_b = streams_on($b_port, 2);
    wait_until(10, sub {
        my $st = node_status($a) or return;
        my ($e) = grep { $_->{name} eq $name } @{ $st->{tunnel}{agents} };
        $e && $e->{inflight} == 4;
    }) or diag('the streams on a did not start');

    my $d0 = dials_to_b();
    my $t0 = time;

    if ($how eq 'QUIT') {
        $b->stop;
    } else {
        my $master = $b->pid;
        kill 'KILL', $master, workers_of($master);
        wait_until(10, sub { !kill 0, $master });
        delete $GpugateTest::STARTED{$master};
        delete $b->{master};
    }

    is(all_done(@on_a), 'ok ok ok ok',
       "$how b: the four streams on node a complete");

    if ($how eq 'QUIT') {
        is(all_done(@on_b), 'ok ok', 'QUIT b: its own streams finish too');
    } else {
        close $_ for @on_b;
    }

    my @st = map { http_read(chat_send($lb, $key, 0), 10)->{status} }
             1 .. 10;
    is_deeply(\@st, [(200) x 10],
              "$how b: ten new clients of the balancer all served");
    ok(serves($a->port), "$how b: the agent still serves node a");

    # the agent keeps trying b, with backoff: a tight loop would dial
    # hundreds of times in these seconds (a fixed window on purpose: a
    # rate is measured over it, there is no state to poll)
    wait_until(3, sub { 0 });
    my $dials = dials_to_b() - $d0;
    my $secs = time - $t0;
    ok($dials >= 1 && $dials <= 10 * $secs + 5,
       sprintf("$how b: the agent redials b with backoff (%d dials in "
               . "%.1f s)", $dials, $secs));

    $b = scale_node(name => "$run-b", port => $b_port);
    ok(wait_until(40, sub { serves($b_port) }),
       "$how b: back on its port, served again through the agent");
}

like(slurp($log), qr/next dial in \d+ ms/, 'the agent logs its backoff');

done_testing();
