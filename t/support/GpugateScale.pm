package GpugateScale;

# Helpers for the scale-out tests (t/07x-scale-*.t): gateway nodes that
# share the test PostgreSQL and Redis, mock runtimes, real agents that
# dial every node, and nginx's stream module as the L4 balancer in front.
# Plain Perl on top of GpugateTest.

use strict;
use warnings;

use Exporter qw(import);
use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read
                   wait_until free_port);

our @EXPORT_OK = qw(
    scale_node scale_mock scale_agent scale_balancer node_status
    node_metrics chat_send slurp stop_pid STREAM_MODULE ADMIN
);

use constant STREAM_MODULE => '/usr/lib/nginx/modules/ngx_stream_module.so';
use constant ADMIN => 'scale-admin-0123456789abcdef';

my $root = "$FindBin::Bin/..";
my $dir = tempdir('gpugate-scale-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
my %pids;
my $n_zone = 0;

sub slurp { open my $f, '<', $_[0] or return ''; local $/; <$f> }

# scale_node(name => NAME, workers => N, port => N, ledger => 1,
# ping => '1s', queue_timeout => '10s', also => 'ADDR:PORT'): a gateway
# node (also listening on ADDR:PORT when given) on the shared
# PostgreSQL and Redis, with a tunnel door and /v1/ through its agents.
# The object is GpugateTest's, with ->{name}.
sub scale_node {
    my (%o) = @_;
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $rd = $ENV{TEST_NGINX_REDIS_PORT};
    my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate "
            . "connect_timeout=2";
    my $zone = "scale" . $n_zone++ . "_$$";
    my $ping = $o{ping} || '1s';
    my $qt = $o{queue_timeout} || '10s';
    my $ledger = '';
    if ($o{ledger}) {
        my $spill = "$dir/spill-$o{name}";
        mkdir $spill;
        chmod 0777, $spill;
        $ledger = "    gpugate_usage_ledger \"$dsn\" gateway=$o{name} "
                . "batch=10 interval=200ms spill=$spill exit_timeout=3s;\n";
    }
    my $admin = ADMIN;
    my $ng = start_nginx(workers => $o{workers} || 2, port => $o{port},
                         listen => 'reuseport', http => <<"HTTP",
    gpugate_auth_zone zone=$zone:1m ttl=60s negative_ttl=5s stale=300s;
    gpugate_auth_postgres "$dsn" timeout=5s;
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
$ledger    log_format scale '\$pid \$status \$upstream_addr';
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=$qt;
    }
HTTP
        server => ($o{also} ? "        listen $o{also};\n" : '') . <<"SRV");
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=$ping ping_timeout=2s;
        }
        location /v1/ {
            access_log logs/scale.log scale;
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_pass http://\$gpugate_pool;
            error_page 502 503 504 \@err;
        }
        location \@err { gpugate_error; }
        location = /health { return 200 "ok\\n"; }
        # the key check alone: its answer names the limits it granted
        location = /auth {
            gpugate_auth on;
            proxy_set_header X-Rpm \$gpugate_rpm_limit;
            proxy_set_header X-Trpm \$gpugate_tenant_rpm_limit;
            proxy_pass http://127.0.0.1:\$server_port/echo;
        }
        location = /echo {
            return 200 "rpm=\$http_x_rpm trpm=\$http_x_trpm\\n";
        }
        location = /metrics { gpugate_metrics admin_key=$admin; }
        location = /status { gpugate_status admin_key=$admin; }
SRV
    $ng->{name} = $o{name};
    return $ng;
}

# scale_mock(ARGS...): a private mock runtime; returns its port.
sub scale_mock {
    my (@args) = @_;
    my $port = free_port();
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', "$dir/mock-$port.log";
        exec "$root/build/bin/gpugate-mock-runtime", '--listen',
             "127.0.0.1:$port", '--models', 'mock-model',
             '--log-file', "$dir/mock-$port.log", @args;
        exit 1;
    }
    $pids{$pid} = 1;
    wait_until(10, sub { IO::Socket::INET->new("127.0.0.1:$port") })
        or die "mock runtime did not start\n";
    return $port;
}

# scale_agent(name => N, token => T, gateways => [PORT...], runtime =>
# PORT, capacity => N, extra => [...], wrap => [...]): a gpugate-agent
# dialing every node (wrap: a command that execs it, such as unshare);
# returns (pid, log file).
sub scale_agent {
    my (%o) = @_;
    my $tf = "$dir/$o{name}.token";
    open my $fh, '>', $tf or die;
    print $fh "$o{token}\n";
    close $fh;
    chmod 0600, $tf;
    my $log = "$dir/$o{name}-" . time . ".log";
    my @gw = map { ('--gateway', "http://127.0.0.1:$_/gpugate/tunnel") }
             @{ $o{gateways} };
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', $log or die;
        exec @{ $o{wrap} || [] }, "$root/build/bin/gpugate-agent", @gw,
             '--name', $o{name},
             '--token-file', $tf, '--runtime',
             "http://127.0.0.1:$o{runtime}", '--capacity',
             $o{capacity} || 4, '--spare', 2, '--log-level', 'debug',
             @{ $o{extra} || [] };
        exit 1;
    }
    $pids{$pid} = 1;
    return ($pid, $log);
}

# scale_balancer(PORT...): nginx's stream module in front of the nodes, as
# scripts/run.sh --gateways starts it; returns (port, master pid).
sub scale_balancer {
    my (@ports) = @_;
    my $bdir = tempdir('gpugate-lb-XXXXXX', TMPDIR => 1,
                       CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
    my $port = free_port();
    my $servers = join '', map {
        "        server 127.0.0.1:$_ max_fails=1 fail_timeout=5s;\n"
    } @ports;
    my $user = $> == 0 ? "user root;\n" : '';
    open my $fh, '>', "$bdir/nginx.conf" or die;
    print $fh <<"CONF";
load_module ${\ STREAM_MODULE};
$user
worker_processes 1;
error_log $bdir/error.log info;
pid $bdir/nginx.pid;
events { worker_connections 1024; }
stream {
    upstream nodes {
$servers    }
    server {
        listen 127.0.0.1:$port;
        proxy_pass nodes;
        proxy_connect_timeout 1s;
    }
}
CONF
    close $fh;
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $out = `$bin -p $bdir -c $bdir/nginx.conf -e $bdir/error.log 2>&1`;
    die "balancer failed to start: $out\n" if $?;
    wait_until(10, sub { -s "$bdir/nginx.pid" }) or die "no balancer pid\n";
    my $pid = slurp("$bdir/nginx.pid") + 0;
    $GpugateTest::STARTED{$pid} = 1;
    return ($port, $pid);
}

# node_status(NODE): its /status, decoded (undef if it does not answer)
sub node_status {
    my ($ng) = @_;
    my $r = http_request($ng->port, 'GET', '/status',
                         { Authorization => 'Bearer ' . ADMIN }, undef, 5);
    return undef unless $r->{status} && $r->{status} == 200;
    return eval { decode_json($r->{body}) };
}

sub node_metrics {
    my ($ng) = @_;
    my $r = http_request($ng->port, 'GET', '/metrics',
                         { Authorization => 'Bearer ' . ADMIN }, undef, 5);
    return $r->{body} // '';
}

# chat_send(PORT, KEY, stream, %headers): a chat completion in flight
sub chat_send {
    my ($port, $key, $stream, %h) = @_;
    my $body = '{"model":"mock-model","stream":'
             . ($stream ? 'true' : 'false')
             . ',"messages":[{"role":"user","content":"hi"}]}';
    return http_send($port, 'POST', '/v1/chat/completions',
                     { 'Content-Type' => 'application/json',
                       Authorization => "Bearer $key", %h }, $body);
}

# stop_pid(PID, SIGNAL): signals a process this file started and reaps it
sub stop_pid {
    my ($pid, $sig) = @_;
    kill $sig || 'TERM', $pid;
    wait_until(15, sub { waitpid($pid, 1) == $pid || !kill 0, $pid })
        or kill 'KILL', $pid;
    waitpid($pid, 0);
    delete $pids{$pid};
}

END {
    local $?;
    for my $pid (keys %pids) {
        kill 'TERM', $pid;
    }
    for my $pid (keys %pids) {
        wait_until(10, sub { waitpid($pid, 1) == $pid }) or kill 'KILL', $pid;
    }
}

1;
