# Scale-out through DNS: "gateway_nodes = URL" makes every address of one
# name a gateway node of its own.  The agent runs with a private
# /etc/hosts (a mount namespace) in which "localhost" has two addresses,
# 127.0.0.1 (node a) and 127.0.0.2 (node b), on the same port.  It holds
# tunnels to both and splits its capacity; on SIGHUP the names are
# resolved again (in a thread, off the event loop): an address that left
# the answer loses its idle tunnels and is no longer dialed, the other
# node gets the whole capacity, and an address that comes back is dialed
# again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(http_read wait_until env_or_skip make_agent make_key
                   free_port);
use GpugateScale qw(scale_node scale_mock scale_agent node_status
                    chat_send slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";
plan skip_all => 'needs root and unshare -m (a private /etc/hosts)'
    unless $> == 0 && system('unshare -m true 2>/dev/null') == 0;

my $run = "t074-$$";
my ($key) = make_key("tenant-$run", name => 'dns');
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);

# the nodes' shared port: a on 127.0.0.1, b on 127.0.0.2 (and on a port
# of its own on 127.0.0.1, for the test's requests)
my $port = free_port();
my $a = scale_node(name => "$run-a", port => $port);
my $b = scale_node(name => "$run-b", also => "127.0.0.2:$port");

my $tmpdir = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
my $hosts = "$tmpdir/gpugate-t074-hosts-$$";
END { unlink $hosts if $hosts }

# rewritten in place: the bind mount shows the file's new content
sub set_hosts {
    my $fh;
    open($fh, '+<', $hosts) or open($fh, '>', $hosts) or die "$hosts: $!";
    truncate $fh, 0;
    seek $fh, 0, 0;
    print $fh map { "$_ localhost\n" } @_;
    close $fh;
}

set_hosts('127.0.0.1', '127.0.0.2');

my $name = "scale-dns-$$";
my ($agent, $log) = scale_agent(
    name => $name, token => make_agent($name), gateways => [],
    runtime => $mock, capacity => 4,
    extra => ['--gateway-nodes', "http://localhost:$port/gpugate/tunnel"],
    wrap => ['unshare', '-m', 'sh', '-c',
             'mount --bind "$0" /etc/hosts && exec "$@"', $hosts]);

sub entry {
    my ($ng) = @_;
    my $st = node_status($ng) or return undef;
    my ($e) = grep { $_->{name} eq $name } @{ $st->{tunnel}{agents} };
    return undef unless $e;
    my $conns = 0;
    $conns += $_->{connections} for @{ $e->{workers} };
    return $conns ? $e : undef;
}

sub cap { my $e = entry($_[0]); $e ? $e->{capacity} : -1 }

# --- 1. two addresses, two nodes ------------------------------------------

ok(wait_until(20, sub { cap($a) == 2 && cap($b) == 2 }),
   'one name, two addresses: a node each, capacity 4 split 2 + 2')
    or diag("a " . cap($a) . ", b " . cap($b) . "\n" . slurp($log));
like(slurp($log), qr/gateway_nodes localhost:$port: node 127\.0\.0\.2/,
     'the agent logs the nodes of the name');
like(slurp($log), qr/gateway localhost:$port \[127\.0\.0\.2\], runtime "default": up/,
     'and each node\'s tunnels under its address');
for my $ng ($a, $b) {
    is(http_read(chat_send($ng->port, $key, 1), 10)->{status}, 200,
       "$ng->{name} served");
}

# --- 2. an address leaves the answer: SIGHUP ------------------------------

set_hosts('127.0.0.2');
kill 'HUP', $agent;

ok(wait_until(20, sub { !entry($a) && cap($b) == 4 }),
   'SIGHUP, 127.0.0.1 gone: node a loses the tunnels, node b gets all 4')
    or diag(slurp($log));
like(slurp($log), qr/node 127\.0\.0\.1 left the DNS answer/,
     'the agent logs the node that left');
is(http_read(chat_send($b->port, $key, 1), 10)->{status}, 200,
   'node b still served');

# nothing dials the retired node: no new tunnel on a (a fixed window: an
# absence has no state to poll)
ok(!wait_until(3, sub { entry($a) }), 'node a is not dialed any more');

# --- 3. it comes back: SIGHUP ---------------------------------------------

set_hosts('127.0.0.2', '127.0.0.1');
kill 'HUP', $agent;

ok(wait_until(30, sub { cap($a) == 2 && cap($b) == 2 }),
   'SIGHUP, 127.0.0.1 back: dialed again, 2 + 2')
    or diag("a " . cap($a) . ", b " . cap($b) . "\n" . slurp($log));
like(slurp($log), qr/node 127\.0\.0\.1 is back/, 'the agent logs it');
is(http_read(chat_send($a->port, $key, 1), 10)->{status}, 200,
   'node a served again');

unlike(slurp($log), qr/ error: /, 'no error in the agent log');

done_testing();
