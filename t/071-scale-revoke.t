# Scale-out, two gateway nodes on one PostgreSQL and one Redis: what
# gpugate-keys changes reaches both nodes within a second, although each
# holds the key in its own shared-memory cache: a revoked key, a disabled
# tenant, a key's and a tenant's changed limits (gpugate-keys limit), and
# a revoked agent, whose tunnels both nodes close.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(http_request http_read wait_until env_or_skip
                   make_agent make_key);
use GpugateScale qw(scale_node scale_mock scale_agent node_status
                    chat_send slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $tool = "$FindBin::Bin/../scripts/gpugate-keys";
$ENV{GPUGATE_PG_DSN} = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
delete $ENV{GPUGATE_REDIS_PASSWORD_FILE};

my $run = "t071-$$";
my @nodes = (scale_node(name => "$run-a"), scale_node(name => "$run-b"));

sub auth {
    my ($ng, $key) = @_;
    return http_request($ng->port, 'GET', '/auth',
                        { Authorization => "Bearer $key" }, undef, 5);
}

# each node has the key in its shm cache (second lookup)
sub warm {
    my ($key, $what) = @_;
    for my $ng (@nodes) {
        auth($ng, $key);
        is(auth($ng, $key)->{status}, 200, "$what: $ng->{name} accepts");
    }
}

# poll both nodes; the time the later one took to answer as wanted
sub both_within {
    my ($key, $want) = @_;
    my $t0 = time;
    my %at;
    wait_until(10, sub {
        for my $ng (@nodes) {
            next if $at{ $ng->port };
            $at{ $ng->port } = time - $t0 if $want->(auth($ng, $key));
        }
        return keys %at == @nodes;
    });
    return undef unless keys %at == @nodes;
    my ($max) = sort { $b <=> $a } values %at;
    return $max;
}

sub tool {
    my (@args) = @_;
    my $out = `$tool --redis 127.0.0.1:$rd @args 2>&1`;
    is($?, 0, "gpugate-keys @args") or diag($out);
}

# --- 1. a revoked key -----------------------------------------------------

{
    my ($key, $id) = make_key("tenant-$run", name => 'revoke');
    warm($key, 'revoke');
    tool('revoke', $id);
    my $t = both_within($key, sub { $_[0]{status} == 401 });
    ok(defined $t && $t < 10, 'revoked key refused by both nodes within '
       . '10 s (pushed: the cache TTL is 60 s)'
       . (defined $t ? sprintf(' (%.3f s)', $t) : ''));
}

# --- 2. a disabled tenant -------------------------------------------------

{
    my $tenant = "tenant-$run-off";
    my ($k1) = make_key($tenant, name => 'tenant-1');
    my ($k2) = make_key($tenant, name => 'tenant-2');
    warm($_, 'tenant') for $k1, $k2;
    tool('tenant-disable', $tenant);
    for my $k ($k1, $k2) {
        my $t = both_within($k, sub { $_[0]{status} == 401 });
        ok(defined $t && $t < 10, 'key of a disabled tenant refused by both '
           . 'nodes within 10 s (pushed: the cache TTL is 60 s)'
           . (defined $t ? sprintf(' (%.3f s)', $t) : ''));
    }
}

# --- 3. changed limits: a key's, then its tenant's -----------------------

{
    my $tenant = "tenant-$run-lim";
    my ($key, $id) = make_key($tenant, name => 'limits', rpm => 10);
    warm($key, 'limits');
    like(auth($_, $key)->{body}, qr/rpm=10\b/, "limits: $_->{name}: rpm 10")
        for @nodes;

    tool('limit', $id, '--rpm', 20);
    my $t = both_within($key, sub { $_[0]{body} =~ /rpm=20\b/ });
    ok(defined $t && $t < 10, 'a key\'s new limits on both nodes within '
       . '10 s (pushed: the cache TTL is 60 s)'
       . (defined $t ? sprintf(' (%.3f s)', $t) : ''));

    tool('limit', '--tenant', $tenant, '--rpm', 5);
    $t = both_within($key, sub { $_[0]{body} =~ /trpm=5\b/ });
    ok(defined $t && $t < 10, 'its tenant\'s new limits on both nodes '
       . 'within 10 s (pushed: the cache TTL is 60 s)'
       . (defined $t ? sprintf(' (%.3f s)', $t) : ''));
}

# --- 4. a revoked agent: both nodes close its tunnels ---------------------

{
    my ($key) = make_key("tenant-$run", name => 'agent');
    my $mock = scale_mock();
    my $name = "scale-rv-$$";
    my ($pid, $log) = scale_agent(name => $name, token => make_agent($name),
        gateways => [map { $_->port } @nodes], runtime => $mock);

    my $has = sub {
        my ($ng) = @_;
        my $st = node_status($ng) or return 0;
        my $n = 0;
        for my $e (grep { $_->{name} eq $name } @{ $st->{tunnel}{agents} }) {
            $n += $_->{connections} for @{ $e->{workers} };
        }
        return $n;
    };

    ok(wait_until(20, sub { $has->($nodes[0]) && $has->($nodes[1]) }),
       'agent connected to both nodes') or diag(slurp($log));
    for my $ng (@nodes) {
        is(http_read(chat_send($ng->port, $key, 0), 10)->{status}, 200,
           "agent serves $ng->{name}");
    }

    tool('agent-revoke', $name);

    my $t0 = time;
    ok(wait_until(5, sub { !$has->($nodes[0]) && !$has->($nodes[1]) }),
       sprintf('revoked agent dropped by both nodes (%.3f s)', time - $t0));
    # its next dial comes after a backoff of up to a few seconds
    ok(wait_until(30, sub { slurp($log) =~ /refused the handshake: 401/ }),
       'its handshakes are refused afterwards') or diag(slurp($log));
}

done_testing();
