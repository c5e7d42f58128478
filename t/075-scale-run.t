# scripts/run.sh --gateways 2 as a user starts it: two nginx nodes behind
# nginx's stream balancer, two agents each connected to both nodes.  The
# printed GPUGATE_URL (the balancer) streams a chat completion; each URL of
# GPUGATE_NODE_URLS serves, names its node on /status with both agents
# connected, and writes its ledger rows under its name into the one
# PostgreSQL; a key revoked with the printed gpugate-keys settings is
# refused by both nodes; Ctrl-C (SIGTERM) stops every process.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(free_port http_request wait_until env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES));
plan skip_all => 'needs libnginx-mod-stream'
    unless -e '/usr/lib/nginx/modules/ngx_stream_module.so';

my $root = "$FindBin::Bin/..";
my $dir = tempdir('gpugate-run2-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $state = "$dir/state";
my $port = free_port();
my $out = "$dir/run.out";

my $pid = fork // die "fork: $!\n";
if ($pid == 0) {
    open STDOUT, '>', $out or die;
    open STDERR, '>&', \*STDOUT or die;
    setpgrp(0, 0);
    exec "$root/scripts/run.sh", '--no-deps', '--port', $port,
        '--state', $state, '--workers', 1, '--gateways', 2, '--agents', 2
        or die "exec: $!\n";
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return scalar <$fh>;
}

my $up = wait_until(300, sub {
    return 1 if slurp($out) =~ /^Press Ctrl-C/m;
    return 0 if waitpid($pid, WNOHANG) == $pid;
    return;
});
ok($up, 'run.sh --gateways 2 started the stack') or diag(slurp($out));

my $stopped = 0;
END {
    local $?;
    if ($pid && !$stopped) {
        kill 'TERM', $pid;
        my $deadline = time + 30;
        while (time < $deadline && waitpid($pid, WNOHANG) != $pid) {
            sleep 0.1;
        }
        kill 'KILL', -$pid if waitpid($pid, WNOHANG) != $pid;
    }
}

my $text = slurp($out);
my ($url) = $text =~ /^GPUGATE_URL=(\S+)/m;
my ($nodes) = $text =~ /^GPUGATE_NODE_URLS=(\S+)/m;
my ($key) = $text =~ /^GPUGATE_API_KEY=(\S+)/m;
my ($dsn) = $text =~ /^GPUGATE_PG_DSN='([^']+)'/m;
my ($redis) = $text =~ /^GPUGATE_REDIS=(\S+)/m;
my ($rpass) = $text =~ /^GPUGATE_REDIS_PASSWORD_FILE=(\S+)/m;
is($url, "http://127.0.0.1:$port", 'GPUGATE_URL is the balancer');
my @node_ports = map { m{:(\d+)$} ? $1 : () } split /,/, $nodes // '';
is(scalar @node_ports, 2, 'GPUGATE_NODE_URLS names two nodes');
ok($key && $dsn && $redis && $rpass, 'key, DSN and Redis lines printed');

my $admin = slurp("$state/secrets/admin.key");
chomp $admin;

sub chat {
    my ($p, $stream) = @_;
    return http_request($p, 'POST', '/v1/chat/completions',
        { Authorization => "Bearer $key",
          'Content-Type' => 'application/json' },
        '{"model":"mock-model","stream":' . ($stream ? 'true' : 'false')
        . ',"messages":[{"role":"user","content":"Hello"}]}', 30);
}

# the printed URL streams a chat completion
{
    my $r = chat($port, 1);
    is($r->{status}, 200, 'the balancer URL: 200');
    like($r->{body}, qr/^data: .*"delta".*\n\n.*data: \[DONE\]\n\n\z/s,
         'a streamed chat completion through the balancer');
}

my %count;
for my $i (0, 1) {
    my $p = $node_ports[$i];
    my $name = 'gw-' . ($i + 1);
    for my $n (1 .. 2 + $i) {
        is(chat($p, $n % 2)->{status}, 200, "$name: request $n");
    }
    $count{$name} = 2 + $i;

    my $r = http_request($p, 'GET', '/status',
                         { Authorization => "Bearer $admin" });
    my $st = eval { decode_json($r->{body}) } || {};
    is($st->{gateway}, $name, "$name: /status names the node");
    is_deeply([ sort map { $_->{name} } @{ $st->{tunnel}{agents} || [] } ],
              [ 'run-agent-1', 'run-agent-2' ],
              "$name: both agents connected to it");
}

# one PostgreSQL, rows under each node's name
{
    local $ENV{PGPASSFILE} = '/nonexistent';
    my $rows;
    ok(wait_until(20, sub {
            $rows = `psql -X -At '$dsn' -c "SELECT gateway || '=' || count(*) FROM usage_events WHERE status = 200 AND gateway IN ('gw-1', 'gw-2') GROUP BY gateway ORDER BY gateway" 2>&1`;
            my %got = map { split /=/ } split /\n/, $rows;
            return ($got{'gw-1'} // 0) >= $count{'gw-1'}
                && ($got{'gw-2'} // 0) >= $count{'gw-2'};
        }), 'ledger rows of both nodes, under their names') or diag($rows);
}

# the key tool with the printed settings reaches both nodes
{
    local $ENV{GPUGATE_PG_DSN} = $dsn;
    local $ENV{GPUGATE_REDIS_PASSWORD_FILE} = $rpass;
    my $prefix = substr($key, 0, 12);
    my $o = `$root/scripts/gpugate-keys --redis $redis revoke $prefix 2>&1`;
    is($?, 0, 'gpugate-keys revoke with the printed settings') or diag($o);
    for my $p (@node_ports) {
        ok(wait_until(5, sub { chat($p, 0)->{status} == 401 }),
           "node on $p refuses the revoked key");
    }
}

# Ctrl-C: everything stops
{
    my @pids = map { /=(\d+)$/ ? $1 : () }
               grep { /_PID=/ } split /\n/, slurp("$state/stack.env");
    kill 'TERM', $pid;
    ok(wait_until(30, sub { waitpid($pid, WNOHANG) == $pid }),
       'run.sh exits on SIGTERM');
    $stopped = 1;
    ok(wait_until(15, sub { !grep { kill 0, $_ } @pids }),
       'every process it started is gone (' . scalar(@pids) . ' pids)');
}

done_testing();
