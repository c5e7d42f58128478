# The tunnel pool across nginx reloads and agent churn: requests that
# reach a new worker before the agents have supplied it wait for the
# supply instead of a 503 (200 requests across 5 reloads, none lost);
# requests queued in a worker that starts shutting down are answered at
# once with a retryable 503 (never left to their queue deadline) and
# succeed when retried; an agent that joins next to a busy one shares
# sequential traffic instead of taking all of it until its lifetime count
# catches up.  A busy tunnel whose agent is frozen (SIGSTOP: its kernel
# still ACKs) is given up after ping_timeout without a heartbeat and the
# request is retried on the other agent, while a runtime that is slow to
# its first token (three times ping_timeout) is not cut.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Select;
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read
                   wait_until env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent write_token
                     tunnel_status);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-reload-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my $mock = start_mock(dir => $dir, models => 'mock-model',
                      args => [ '--quiet', '--ttft-ms', '0',
                                '--token-delay-ms', '0', '--tokens', '4' ]);
my $mock_port = $mock->port;

write_token($dir, $_) for qw(gpu-a gpu-b gpu-c);

my $ngx = start_nginx(workers => 2, listen => 'reuseport',
                      http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    log_format tun '\$pid|\$status|\$upstream_addr|\$request_time';
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=15s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s ping_timeout=2s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /v1/ {
            access_log logs/tun.log tun;
            gpugate_openai on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;
diag "nginx in " . $ngx->dir if $ENV{GPUGATE_KEEP_TMP};
# agent(NAME, CAPACITY): a gpugate-agent process; returns its object
sub agent {
    my ($name, $capacity) = @_;
    return start_agent(dir => $dir, name => $name, port => $port,
                       args => [ '--runtime', "http://127.0.0.1:$mock_port",
                                 '--capacity', $capacity, '--spare', 2,
                                 '--log-level', 'info' ]);
}

sub stop_agent { $_[0]->stop('KILL') }

sub chat {
    my (%h) = @_;
    my $body = '{"model":"mock-model","stream":false,'
             . '"messages":[{"role":"user","content":"hi"}]}';
    return http_send($port, 'POST', '/v1/chat/completions',
                     { 'Content-Type' => 'application/json', %h }, $body);
}

# collect(SECONDS, SOCKETS): reads every response at once; returns, per
# socket in order, http_read's hash plus "at" (when it was complete)
sub collect {
    my ($secs, @socks) = @_;
    my $sel = IO::Select->new(@socks);
    my %raw = map { ($_ => '') } @socks;
    my %at;
    my $deadline = time + $secs;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read($deadline - time)) {
            my $n = sysread($s, my $buf, 65536);
            if ($n) {
                $raw{$s} .= $buf;
                next;
            }
            $at{$s} = time;
            $sel->remove($s);
        }
    }
    my @out;
    for my $s (@socks) {
        my ($head, $body) = split /\r\n\r\n/, $raw{$s}, 2;
        my %r = (status => 0, headers => {}, body => $body // '',
                 at => $at{$s});
        if (defined $head) {
            ($r{status}) = $head =~ m{^HTTP/1\.\d (\d+)};
            $r{status} ||= 0;
            for (split /\r\n/, $head) {
                my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
                $r{headers}{lc $k} = $v;
            }
        }
        push @out, \%r;
        close $s;
    }
    return @out;
}

sub status_json { tunnel_status($port) }

# the nginx worker processes now running (old and new generations)
sub workers {
    my $master = $ngx->pid or return ();
    my @pids = split ' ', `pgrep -P $master`;
    return @pids;
}

# every current worker holds an idle connection of agent NAME
sub supplied {
    my ($name) = @_;
    my @w = workers();
    return 0 unless @w == 2;
    my %idle;
    for my $a (@{ status_json()->{agents} }) {
        next unless $a->{name} eq $name;
        $idle{ $_->{pid} } += $_->{idle} for @{ $a->{workers} };
    }
    return !grep { !$idle{$_} } @w;
}

# agent names that served the 200s logged since byte OFFSET of tun.log
sub served_since {
    my ($offset) = @_;
    open my $f, '<', $ngx->dir . '/logs/tun.log' or return ();
    seek $f, $offset, 0;
    my @names;
    while (<$f>) {
        my (undef, $status, $up) = split /\|/;
        push @names, $up if $status == 200;
    }
    return @names;
}

# every line of tun.log since OFFSET: [status, upstream_addr, seconds]
sub logged_since {
    my ($offset) = @_;
    open my $f, '<', $ngx->dir . '/logs/tun.log' or return ();
    seek $f, $offset, 0;
    my @lines;
    while (<$f>) {
        chomp;
        my (undef, @v) = split /\|/;
        push @lines, \@v;
    }
    return @lines;
}

sub tun_log_size { -s $ngx->dir . '/logs/tun.log' || 0 }

# --- a rejoining agent does not take all traffic -------------------------

{
    my $a = agent('gpu-a', 64);
    ok(wait_until(15, sub { supplied('gpu-a') }),
       'agent gpu-a supplies both workers');

    # its lifetime count runs ahead of any newcomer's
    for (1 .. 60) {
        (collect(10, chat()))[0]{status} == 200 or last;
    }

    my $b = agent('gpu-b', 64);
    ok(wait_until(15, sub { supplied('gpu-b') }),
       'agent gpu-b joins and supplies both workers');

    my $off = tun_log_size();
    my @st;
    push @st, (collect(10, chat()))[0]{status} for 1 .. 100;
    is(scalar(grep { $_ != 200 } @st), 0, 'rejoin: 100 sequential 200s');

    my @names;
    wait_until(10, sub { @names = served_since($off); @names >= 100 });
    my $na = grep { $_ eq 'gpu-a' } @names;
    my $nb = grep { $_ eq 'gpu-b' } @names;
    diag "rejoin: gpu-a served $na, gpu-b served $nb of 100";
    is($na + $nb, 100, 'rejoin: every request logged with its agent');
    ok($na <= 75 && $nb <= 75,
       'rejoin: neither agent takes more than 75 of 100');

    # --- a busy tunnel to a frozen agent --------------------------------

    # slower to its first token than the silence that gives a tunnel up
    $off = tun_log_size();
    my ($slow) = collect(20, chat('X-Mock-TTFT-Ms' => 6000));
    is($slow->{status}, 200, 'slow runtime (TTFT 6 s): 200');
    my @l;
    wait_until(10, sub { @l = logged_since($off); @l >= 1 });
    like($l[0][1] // '', qr/^gpu-[ab]\z/,
         'slow runtime: served by its first agent, not retried');
    cmp_ok($l[0][2] // 0, '>=', 5.5, 'slow runtime: waited for its answer');

    ok(wait_until(15, sub { supplied('gpu-a') && supplied('gpu-b') }),
       'freeze: both agents supply both workers');
    $off = tun_log_size();
    $b->signal('STOP');
    my $t0 = time;
    my @r = collect(20, map { chat() } 1 .. 6);
    my $took = time - $t0;
    $b->signal('CONT');
    is(scalar(grep { $_->{status} != 200 } @r), 0,
       'freeze: every request answered 200');
    cmp_ok($took, '<', 9, 'freeze: all answered within ping_timeout and '
           . 'a retry (not proxy_read_timeout)');
    wait_until(10, sub { @l = logged_since($off); @l >= 6 });
    diag sprintf 'freeze: answered in %.1f s: %s', $took,
        join ', ', map { "$_->[0] by $_->[1] in $_->[2] s" } @l;
    ok(scalar(grep { ($_->[1] // '') eq 'gpu-b, gpu-a' } @l),
       'freeze: a request given to the frozen agent went on to the other')
        or diag explain \@l;
    like($ngx->log, qr/agent "gpu-b" sent no byte nor heartbeat for \d+ ms/,
         'freeze: the gateway says which agent it gave up');

    stop_agent($b);
    ok(wait_until(10, sub {
           !grep { $_->{name} eq 'gpu-b' } @{ status_json()->{agents} }
       }), 'gpu-b gone from the pool');

    # an agent frozen before it served anything (a slot just registered:
    # a restart, or its runtime back) has never sent a heartbeat; it said
    # at its handshake that it beats, so it is watched all the same
    my $c = agent('gpu-c', 64);
    ok(wait_until(15, sub { supplied('gpu-c') }),
       'fresh: gpu-c supplies both workers');
    $off = tun_log_size();
    $c->signal('STOP');
    $t0 = time;
    @r = collect(20, map { chat() } 1 .. 6);
    $took = time - $t0;
    $c->signal('CONT');
    is(scalar(grep { $_->{status} != 200 } @r), 0,
       'fresh: every request answered 200');
    cmp_ok($took, '<', 9, 'fresh: a frozen agent that never beat is given '
           . 'up too');
    wait_until(10, sub { @l = logged_since($off); @l >= 6 });
    ok(scalar(grep { ($_->[1] // '') eq 'gpu-c, gpu-a' } @l),
       'fresh: a request given to the frozen agent went on to the other')
        or diag explain \@l;

    stop_agent($c);
    stop_agent($a);
}

# --- reloads under load cost no request -----------------------------------

{
    my $a = agent('gpu-a', 64);
    ok(wait_until(15, sub { supplied('gpu-a') }), 'agent supplies both workers');

    my (%bad, $total);

    for my $round (1 .. 5) {
        my @s = map { chat() } 1 .. 8;
        $ngx->reload;

        # a burst right at the reload, then steady waves while the old
        # workers go and the agent supplies the new ones (the pause paces
        # the waves; nothing waits on it)
        for (1 .. 4) {
            push @s, map { chat() } 1 .. 8;
            sleep 0.05;
        }

        for my $r (collect(20, @s)) {
            $total++;
            next if $r->{status} == 200;
            $bad{ $r->{status} }++;
            diag "round $round: $r->{status} $r->{body}";
        }

        # the next reload finds this one's old workers gone
        wait_until(15, sub { workers() == 2 })
            or diag "round $round: old workers still running";
    }

    is($total, 200, 'reload: 200 requests across 5 reloads');
    is(scalar(keys %bad), 0, 'reload: no request failed')
        or diag explain(\%bad),
                grep { /gpugate tunnel: 503/ } split /^/m, $ngx->log;
    unlike($ngx->log, qr/\[alert\]|exited on signal/, 'reload: no alert or crash');

    stop_agent($a);
}

# --- a queue in a worker that shuts down is handed on ----------------------

{
    # capacity 2 and two long answers: everything else queues
    my $a = agent('gpu-a', 2);
    ok(wait_until(15, sub { supplied('gpu-a') }), 'agent with capacity 2');

    my @long = map { chat('X-Mock-TTFT-Ms' => 6000) } 1 .. 2;
    ok(wait_until(10, sub {
           my $n = 0;
           $n += $_->{inflight} for @{ status_json()->{agents} };
           $n == 2;
       }), 'shutdown: both places taken');

    my $waits = sub { scalar(() = $ngx->log =~ /request waits/g) };
    my $waited = $waits->();
    my @queued = map { chat() } 1 .. 8;
    ok(wait_until(10, sub { $ngx->log =~ /request waits/ }),
       'shutdown: requests queued');
    # all eight of them, in whichever worker took each
    wait_until(10, sub { $waits->() >= $waited + 8 })
        or diag 'not all eight requests queued';

    my $t0 = time;
    $ngx->reload;

    my @r = collect(20, @queued);
    my @late = grep { !$_->{at} || $_->{at} - $t0 > 3 } @r;
    my @handed = grep { $_->{status} == 503 } @r;
    is(scalar(@late), 0,
       'shutdown: every queued request answered within 3 s of the reload')
        or diag join ' ', map {
            sprintf '%s@%.1fs', $_->{status}, ($_->{at} || time) - $t0
        } @r;
    is(scalar(grep { $_->{status} != 200 && $_->{status} != 503 } @r), 0,
       'shutdown: answered 200 or 503');
    is(scalar(grep { !defined $_->{headers}{'retry-after'}
                     || ($_->{headers}{connection} || '') ne 'close'
                     || $_->{body} !~ /"code":"worker_exiting"/ } @handed),
       0, 'shutdown: each 503 says retry now, on a new connection');

    # the client's retry reaches a live worker and is served there
    my @retry = collect(30, map { chat() } @handed);
    is(scalar(grep { $_->{status} != 200 } @retry), 0,
       'shutdown: every handed-on request succeeds when retried');

    is(scalar(grep { $_->{status} != 200 } collect(30, @long)), 0,
       'shutdown: the answers in flight finish in the old worker');

    stop_agent($a);
}

$mock->stop;

done_testing();
