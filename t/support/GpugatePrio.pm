package GpugatePrio;

# What t/100-t/102 (priorities, regions, agent choice) share: a gateway
# node whose "gpugate_tunnel" line and /v1/ location take extra settings,
# an access log that names each request's priority and served region,
# and a key whose priorities and pin are set with scripts/gpugate-keys.
# Plain Perl on top of GpugateTest and GpugateScale.

use strict;
use warnings;

use Exporter qw(import);
use File::Temp qw(tempdir);
use FindBin;
use JSON::PP qw(decode_json);

use GpugateTest qw(start_nginx http_request wait_until);
use GpugateScale qw(ADMIN slurp);

our @EXPORT_OK = qw(prio_node keys_tool served status_agents);

my $n_zone = 0;

# prio_node(tunnel => 'aging=1s ...', location => '...', http => '...',
# models => [names], workers => N, ledger => 1): one node on the suite's
# PostgreSQL and Redis; every model of "models" goes to the "agents"
# pool; with "ledger", its requests are written to usage_events.
sub prio_node {
    my (%o) = @_;
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $rd = $ENV{TEST_NGINX_REDIS_PORT};
    my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate "
            . "connect_timeout=2";
    my $zone = "prio" . $n_zone++ . "_$$";
    my $tunnel = $o{tunnel} || '';
    my $loc = $o{location} || '';
    my $http = $o{http} || '';
    my $models = join '', map { "            gpugate_model $_ pool=agents;\n" }
                 @{ $o{models} || ['mock-model'] };
    my $admin = ADMIN;
    if ($o{ledger}) {
        # the ledger's rows: region and priority are this module's
        my $spill = tempdir('gpugate-prio-spill-XXXXXX', TMPDIR => 1,
                            CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
        chmod 0777, $spill;
        $http .= "    gpugate_usage_ledger \"$dsn\" gateway=$zone "
               . "batch=10 interval=200ms spill=$spill exit_timeout=3s;\n";
        $loc .= "            gpugate_accounting on;\n";
    }
    return start_nginx(workers => $o{workers} || 1, http => <<"HTTP",
    gpugate_auth_zone zone=$zone:1m ttl=60s negative_ttl=5s stale=300s;
    gpugate_auth_postgres "$dsn" timeout=5s;
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
    log_format prio '\$http_x_seq \$status \$gpugate_priority '
                    '"\$gpugate_region" \$upstream_addr '
                    '\$gpugate_auth_source';
$http
    upstream agents {
        gpugate_tunnel queue=64 $tunnel;
    }
HTTP
        server => <<"SRV");
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s ping_timeout=2s;
        }
        location /v1/ {
            access_log logs/prio.log prio;
            gpugate_auth on;
            gpugate_openai on;
$models$loc
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_pass http://\$gpugate_pool;
            error_page 502 503 504 \@err;
        }
        location \@err { gpugate_error; }
        location = /metrics { gpugate_metrics admin_key=$admin; }
        location = /status { gpugate_status admin_key=$admin; }
SRV
}

# keys_tool(ARGS): scripts/gpugate-keys on the suite's PostgreSQL and
# Redis; returns its output, dies when it fails
sub keys_tool {
    my (@args) = @_;
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $rd = $ENV{TEST_NGINX_REDIS_PORT};
    my $tool = "$FindBin::Bin/../scripts/gpugate-keys";
    my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    my $out = `$tool --dsn '$dsn' --redis 127.0.0.1:$rd @args 2>&1`;
    die "gpugate-keys @args: $out\n" if $?;
    return $out;
}

# served(NODE): the access log's lines as [seq, status, priority, region,
# agent, auth source], in the order the requests ended
sub served {
    my ($ng) = @_;
    my @r;
    for (split /\n/, slurp($ng->dir . '/logs/prio.log')) {
        my @f = /^(\S+) (\d+) (\S+) "([^"]*)" (\S+) (\S+)/ or next;
        push @r, \@f;
    }
    return \@r;
}

# status_agents(NODE, PREFIX): the agents of /status whose name starts
# with PREFIX, by the rest of their name
sub status_agents {
    my ($ng, $prefix) = @_;
    my $r = http_request($ng->port, 'GET', '/status',
                         { Authorization => 'Bearer ' . ADMIN }, undef, 5);
    my $st = eval { decode_json($r->{body}) } or return {};
    my %e;
    for my $a (@{ $st->{tunnel}{agents} || [] }) {
        $e{$1} = $a if $a->{name} =~ /^\Q$prefix\E(.+)$/;
    }
    return \%e;
}

1;
