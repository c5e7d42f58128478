# Scale-out bookkeeping: two gateway nodes write their usage rows into
# the one PostgreSQL, each row with the name of the node that served it;
# each node's /metrics counts only its own requests and names the node
# (gpugate_gateway_info), and its /status names it and lists the agents
# connected to it.  A node without a ledger (so without gateway=) names
# itself by its host name.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Sys::Hostname qw(hostname);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(http_read wait_until env_or_skip make_agent make_key
                   psql);
use GpugateScale qw(scale_node scale_mock scale_agent node_status
                    node_metrics chat_send slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t073-$$";
my $tenant = "tenant-$run";
my ($key, $key_id) = make_key($tenant, name => 'ledger');
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);

my %n = ("$run-a" => 3, "$run-b" => 5);
my @nodes = map { scale_node(name => $_, ledger => 1) } sort keys %n;
my $plain = scale_node(name => "$run-c");

my $name = "scale-lg-$$";
my ($agent, $log) = scale_agent(name => $name, token => make_agent($name),
    gateways => [map { $_->port } @nodes, $plain], runtime => $mock,
    capacity => 6);

for my $ng (@nodes) {
    ok(wait_until(20, sub {
            http_read(chat_send($ng->port, $key, 0), 10)->{status} == 200
        }), "$ng->{name}: served through the agent") or diag(slurp($log));
}

# the first request above was one; the rest, streamed and not
for my $ng (@nodes) {
    for my $i (2 .. $n{ $ng->{name} }) {
        my $r = http_read(chat_send($ng->port, $key, $i % 2), 10);
        is($r->{status}, 200, "$ng->{name}: request $i");
    }
}

# --- the ledger: one PostgreSQL, the node's name on each row --------------

my $rows;
ok(wait_until(15, sub {
        $rows = psql("SELECT gateway || '=' || count(*) FROM usage_events"
                   . " WHERE api_key_id = $key_id AND status = 200"
                   . " GROUP BY gateway"
                   . " ORDER BY gateway");
        $rows eq join "\n", map { "$_=$n{$_}" } sort keys %n;
    }), 'usage rows of both nodes in the one PostgreSQL, each with its '
      . 'node name') or diag($rows);

# --- metrics and status: each node its own --------------------------------

for my $ng (@nodes) {
    my $m = node_metrics($ng);
    like($m, qr/^gpugate_gateway_info\{gateway="\Q$ng->{name}\E"\} 1$/m,
         "$ng->{name}: /metrics names the node");
    my ($count) = $m =~ /^gpugate_requests_total\{model="mock-model",
                          tenant="\Q$tenant\E",status="200"\}\s+(\d+)/mx;
    is($count, $n{ $ng->{name} }, "$ng->{name}: /metrics counts its own "
       . "$n{ $ng->{name} } requests only");

    my $st = node_status($ng);
    is($st->{gateway}, $ng->{name}, "$ng->{name}: /status names the node");
    ok($st->{tunnel}{agents_connected} >= 1
       && grep({ $_->{name} eq $name } @{ $st->{tunnel}{agents} }),
       "$ng->{name}: /status lists the agent connected to it");
    is($st->{tunnel}{host}, hostname(), "$ng->{name}: the tunnel's host");
}

{
    my $st = node_status($plain);
    is($st->{gateway}, hostname(), 'a node without a ledger: its host name');
    like(node_metrics($plain),
         qr/^gpugate_gateway_info\{gateway="\Q${\ hostname()}\E"\} 1$/m,
         'and /metrics says so');
}

done_testing();
