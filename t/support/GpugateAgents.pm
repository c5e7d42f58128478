package GpugateAgents;

# Helpers for the tests that run the real gpugate-agent and the mock
# runtime next to an nginx from GpugateTest: start a mock on port 0 (its
# port read from --port-file), write an agent's token, start an agent from
# command-line flags or a configuration file, read its log, wait on the
# gateway's /gpugate/status for its tunnels, stop it.  Every process
# started here and not stopped by the test is stopped when the test ends
# (also when it dies), so no agent outlives its file.
#
# Mock runtime and agent are objects of GpugateAgents::Proc: ->pid,
# ->port (mocks), ->log (the log file), ->text (its content), ->signal,
# ->alive, ->stop, ->wait_exit, ->restart (mocks: again on the same port).

use strict;
use warnings;

use Exporter qw(import);
use FindBin;
use IO::Select;
use JSON::PP qw(decode_json);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);

use GpugateTest qw(http_request wait_until make_agent);

our @EXPORT_OK = qw(
    agent_bin mock_bin slurp start_mock write_token start_agent
    tunnel_status agent_instances idle_of wait_parked mock_metric
    mock_served read_until read_rest adopt
);

# pid => object, for the processes to stop at the end
our %KIDS;

# END blocks run in forked children too (a child whose exec failed, a
# scripted runtime): only the test process itself stops the kids
my $OWNER = $$;

sub _build { $ENV{GPUGATE_BUILD} || "$FindBin::Bin/../build" }

sub agent_bin { _build() . '/bin/gpugate-agent' }

sub mock_bin { _build() . '/bin/gpugate-mock-runtime' }

sub slurp {
    open my $f, '<', $_[0] or return '';
    local $/;
    my $t = <$f>;
    return defined $t ? $t : '';
}

# _spawn(ARGV, STDERR FILE): fork and exec; the child's stderr goes to the
# file when one is given
sub _spawn {
    my ($argv, $err) = @_;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        if (defined $err) {
            open STDERR, '>>', $err or POSIX::_exit(127);
        }
        { exec @$argv }
        print STDERR "exec $argv->[0]: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

# start_mock(dir => DIR, name => NAME, models => LIST, args => [FLAGS],
# port => PORT): the mock runtime, on a port of the kernel's choosing
# unless PORT is given, its log in DIR/mock-NAME.log.  Returns once it
# listens (it writes --port-file after listen()); dies if it does not.
sub start_mock {
    my (%o) = @_;
    my $m = bless {
        kind => 'mock', dir => $o{dir}, name => $o{name} || 'mock',
        models => $o{models} || 'mock-model', args => $o{args} || [],
        port => $o{port} || 0,
    }, 'GpugateAgents::Proc';
    $m->{log} = $o{log} || "$m->{dir}/mock-$m->{name}.log";
    $m->{port_file} = "$m->{dir}/mock-$m->{name}.port";
    $m->_start_mock;
    return $m;
}

# write_token(DIR, NAME): the agent NAME created in PostgreSQL by the key
# tool (replacing one of that name), its token in DIR/NAME.token (0600);
# returns the token
sub write_token {
    my ($dir, $name) = @_;
    my $token = make_agent($name);
    my $file = "$dir/$name.token";
    open my $tf, '>', $file or die "$file: $!\n";
    print $tf "$token\n";
    close $tf;
    chmod 0600, $file;
    return $token;
}

# start_agent(dir => DIR, name => NAME, port => NGINX PORT, ...): a
# gpugate-agent with its stderr in a log of its own (DIR/NAME.log, or
# DIR/NAME.N.log for the next start of that name).  Its token is
# DIR/NAME.token, made by write_token unless there already.
#   gateway => URL   instead of http://127.0.0.1:PORT/gpugate/tunnel
#   conf => TEXT     written to DIR/NAME.conf after gateway, name and
#                    token_file lines, and run with --config
#   args => [FLAGS]  after --gateway/--name/--token-file (or --config)
#   argv => [ARGS]   the whole command line after the program, as is
#   log => FILE      the log file
sub start_agent {
    my (%o) = @_;
    my ($dir, $name) = @o{qw(dir name)};
    my $a = bless { kind => 'agent', dir => $dir, name => $name },
        'GpugateAgents::Proc';

    my $token = "$dir/$name.token";
    write_token($dir, $name) if !$o{argv} && !-e $token;
    my $gateway = $o{gateway}
        || ($o{port} && "http://127.0.0.1:$o{port}/gpugate/tunnel");

    my @argv;
    if ($o{argv}) {
        @argv = @{ $o{argv} };
    } elsif (defined $o{conf}) {
        my $conf = "$dir/$name.conf";
        open my $cf, '>', $conf or die "$conf: $!\n";
        print $cf "gateway = $gateway\nname = $name\n"
                . "token_file = $token\n$o{conf}";
        close $cf;
        @argv = ('--config', $conf, @{ $o{args} || [] });
    } else {
        @argv = ('--gateway', $gateway, '--name', $name, '--token-file',
                 $token, @{ $o{args} || [] });
    }

    my $log = $o{log};
    if (!$log) {
        $log = "$dir/$name.log";
        my $n = 1;
        $log = "$dir/$name." . $n++ . '.log' while -e $log;
    }
    $a->{log} = $log;
    $a->{pid} = _spawn([ agent_bin(), @argv ], $log);
    $KIDS{ $a->{pid} } = $a;
    return $a;
}

# adopt(PID [, NAME]): a process the test forked itself (a scripted
# runtime), stopped at the end like the others; returns its object
sub adopt {
    my ($pid, $name) = @_;
    my $p = bless { kind => 'other', pid => $pid, name => $name || $pid },
        'GpugateAgents::Proc';
    $KIDS{$pid} = $p;
    return $p;
}

# tunnel_status(PORT [, PATH]): the gateway's gpugate_tunnel_status page,
# decoded ({ agents => [] } when it cannot be read)
sub tunnel_status {
    my ($port, $path) = @_;
    my $r = http_request($port, 'GET', $path || '/gpugate/status', {}, '');
    my $st = $r->{status} == 200 ? eval { decode_json($r->{body}) } : undef;
    return $st || { agents => [] };
}

# agent_instances(PORT, NAME): the status entries of agent NAME (one per
# runtime of that agent)
sub agent_instances {
    my ($port, $name) = @_;
    return grep { $_->{name} eq $name } @{ tunnel_status($port)->{agents} };
}

# idle_of(PORT, NAME): the idle (parked) tunnels of agent NAME, over all
# its entries and every worker
sub idle_of {
    my ($port, $name) = @_;
    my $n = 0;
    for my $a (agent_instances($port, $name)) {
        $n += $_->{idle} // 0 for @{ $a->{workers} || [] };
    }
    return $n;
}

# wait_parked(PORT, NAME [, IDLE [, SECONDS]]): waits until agent NAME has
# at least IDLE (1) tunnels parked in the gateway; needs a location with
# gpugate_tunnel_status at /gpugate/status
sub wait_parked {
    my ($port, $name, $idle, $secs) = @_;
    $idle //= 1;
    return wait_until($secs || 15, sub { idle_of($port, $name) >= $idle });
}

# mock_metric(PORT, SERIES): the value of one series of the mock's
# /metrics, e.g. 'gpugate_mock_connections_total' or a name with its
# labels; undef when absent
sub mock_metric {
    my ($port, $series) = @_;
    my $r = http_request($port, 'GET', '/metrics', {}, '');
    my ($n) = $r->{body} =~ /^\Q$series\E (\d+)$/m;
    return $n;
}

# mock_served(PORT [, PATH]): requests the mock answered 200 on PATH
# (/v1/chat/completions)
sub mock_served {
    my ($port, $path) = @_;
    $path ||= '/v1/chat/completions';
    return mock_metric($port, 'gpugate_mock_requests_total{path="' . $path
                              . '",status="200"}') // 0;
}

# read_until(SOCKET, REGEX [, SECONDS]): reads until what arrived matches
# (the head and the first event of a stream may come in separate reads,
# and under load later than any fixed wait); returns what was read
sub read_until {
    my ($s, $re, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + ($secs || 10);
    my $buf = '';
    while ($buf !~ $re) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        last unless sysread($s, $buf, 65536, length $buf);
    }
    return $buf;
}

# read_rest(SOCKET, SO_FAR [, SECONDS]): reads a close-delimited response
# on from what read_until returned; returns a hash like http_read's
# (status, headers, body de-chunked, done)
sub read_rest {
    my ($s, $raw, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + ($secs || 10);
    my $done = 0;
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $raw, 65536, length $raw);
        if (!$n) { $done = 1; last }
    }
    my %r = (done => $done, raw => $raw, status => 0, headers => {},
             body => '');
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%r unless defined $head;
    my @lines = split /\r\n/, $head;
    ($r{status}) = (shift(@lines) // '') =~ m{^HTTP/1\.\d (\d+)};
    $r{status} ||= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $r{headers}{lc $k} = $v;
    }
    $body //= '';
    if (($r{headers}{'transfer-encoding'} || '') =~ /chunked/i) {
        my $plain = '';
        while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $plain .= substr($body, 0, $len, '');
            $body =~ s/^\r\n//;
        }
        $body = $plain;
    }
    $r{body} = $body;
    return \%r;
}

END {
    return unless $$ == $OWNER;
    local $?;
    my @pids = grep { kill 0, $_ } keys %KIDS;
    kill 'CONT', @pids;
    kill 'TERM', @pids;
    for my $pid (@pids) {
        wait_until(5, sub { waitpid($pid, WNOHANG) != 0 })
            or do { kill 'KILL', $pid; waitpid $pid, 0 };
    }
}


package GpugateAgents::Proc;

use strict;
use warnings;

use POSIX qw(WNOHANG);

use GpugateTest qw(wait_until);

sub pid { $_[0]{pid} }
sub port { $_[0]{port} }
sub log { $_[0]{log} }
sub name { $_[0]{name} }
sub text { GpugateAgents::slurp($_[0]{log}) }
sub signal { kill $_[1], $_[0]{pid} }

sub alive {
    my ($self) = @_;
    return $self->{pid} && !defined $self->{status}
        && waitpid($self->{pid}, WNOHANG) == 0;
}

# wait_exit([SECONDS]): waits for the process to end; returns its wait
# status ($?), or undef if it still runs at the deadline
sub wait_exit {
    my ($self, $secs) = @_;
    return $self->{status} if defined $self->{status};
    my $st;
    wait_until($secs || 10, sub {
        my $r = waitpid($self->{pid}, WNOHANG);
        $st = $? if $r == $self->{pid};
        return $r != 0;
    });
    return unless defined $st;
    $self->{status} = $st;
    delete $GpugateAgents::KIDS{ $self->{pid} };
    return $st;
}

# stop([SIGNAL [, SECONDS]]): signals (TERM) and reaps it, KILLed if it
# outlives the deadline (10 s); returns its wait status
sub stop {
    my ($self, $sig, $secs) = @_;
    return $self->{status} if defined $self->{status};
    kill 'CONT', $self->{pid};
    kill $sig || 'TERM', $self->{pid};
    my $st = $self->wait_exit($secs || 10);
    return $st if defined $st;
    kill 'KILL', $self->{pid};
    return $self->wait_exit(10);
}

# restart(): a mock again, on the port it had (an agent knows it by its
# URL), once the old process is gone
sub restart {
    my ($self) = @_;
    $self->stop('KILL') unless defined $self->{status};
    delete $self->{status};
    $self->_start_mock;
    return $self;
}

sub _start_mock {
    my ($self) = @_;
    unlink $self->{port_file};
    $self->{pid} = GpugateAgents::_spawn([
        GpugateAgents::mock_bin(), '--listen', "127.0.0.1:$self->{port}",
        '--port-file', $self->{port_file}, '--models', $self->{models},
        '--log-file', $self->{log}, @{ $self->{args} } ], $self->{log});
    $GpugateAgents::KIDS{ $self->{pid} } = $self;
    my $up = wait_until(15, sub {
        -s $self->{port_file} || waitpid($self->{pid}, WNOHANG) != 0
    });
    my $port = GpugateAgents::slurp($self->{port_file});
    chomp $port;
    die "mock runtime $self->{name} did not start:\n"
        . GpugateAgents::slurp($self->{log})
        unless $up && $port =~ /^\d+\z/;
    $self->{port} = $port;
}

1;
