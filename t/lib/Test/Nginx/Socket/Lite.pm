package Test::Nginx::Socket::Lite;

=head1 NAME

Test::Nginx::Socket::Lite - gpugate's runner for Test::Nginx::Socket files

=head1 SYNOPSIS

    # t/foo.t, unchanged from what upstream Test::Nginx runs
    use Test::Nginx::Socket 'no_plan';
    repeat_each(2);
    no_shuffle();
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location = /t { return 200 "hi\n"; }
    --- request
    GET /t
    --- response_body
    hi

    prove -I t/lib t/foo.t      # scripts/test.sh does this when upstream
                                # Test::Nginx is not installed

=head1 DESCRIPTION

Upstream Test::Nginx cannot be installed from CPAN on the build machines.
This runner, built on Debian's Test::Base, runs the same files.

Supported: C<repeat_each>, C<plan>, C<run_tests>, C<no_shuffle> (blocks
are shuffled otherwise, as upstream), C<add_block_preprocessor>,
C<log_level>, C<master_on>, C<workers>, C<worker_connections>,
C<env_to_nginx>, C<no_root_location>, C<$ServerPort>; sections
C<main_config>, C<http_config>, C<config>, C<request>, C<raw_request>,
C<more_headers>, C<error_code>, C<response_body>, C<response_body_like>,
C<response_headers> (C<!Name> for absent), C<response_headers_like>,
C<error_log>, C<no_error_log>, C<grep_error_log> with
C<grep_error_log_out>, C<timeout>, C<abort>, C<wait>, C<init>,
C<user_files>, C<ONLY>, C<SKIP>, C<LAST>; Test::Base filters (C<eval>,
C<chomp>, ...).

Environment: C<TEST_NGINX_BINARY>, C<TEST_NGINX_PORT> /
C<TEST_NGINX_SERVER_PORT> (default 1984), C<TEST_NGINX_LOAD_MODULES>,
C<TEST_NGINX_SERVROOT> (default C<t/servroot>), C<TEST_NGINX_NO_SHUFFLE>,
C<TEST_NGINX_LOG_LEVEL>, C<TEST_NGINX_TIMEOUT>, C<TEST_NGINX_USE_VALGRIND>.
C<$TEST_NGINX_FOO> in configuration and request sections is replaced by
C<$ENV{TEST_NGINX_FOO}>; an unset variable is a fatal error.

With C<TEST_NGINX_USE_VALGRIND=1> nginx runs under valgrind memcheck in the
foreground for each block, and each block gets one more test point that
fails on a definite leak or an invalid access (nginx's own 8-byte
C<ngx_set_environment> allocation is suppressed).

Test points per block and request, as upstream counts them: the status
code; one per C<response_headers> line; one for C<response_body> or
C<response_body_like>; one per C<error_log> and C<no_error_log> pattern;
one for C<grep_error_log_out>.

=head1 DIFFERENCES FROM UPSTREAM

nginx is restarted for every block (upstream may keep it running when the
configuration does not change); C<pipelined_requests>, C<stap>,
C<tcp_listen>, C<udp_listen>, C<must_die>, C<shutdown_error_log> and HUP
reloads are not implemented; a response cut short by C<--- timeout> with
C<--- abort> is checked as far as it arrived (a chunked body is decoded up
to the last complete chunk).

=cut

use strict;
use warnings;

use Cwd qw(cwd);
use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

my $RepeatEach = 1;
my $Shuffle = $ENV{TEST_NGINX_NO_SHUFFLE} ? 0 : 1;
my @Preprocessors;
my $LogLevel = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
my $MasterOn = 0;
my $Workers = 1;
my $WorkerConnections = 64;
my @EnvToNginx;
my $NoRootLocation = 0;
my $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 0;

my $Port = $ENV{TEST_NGINX_PORT} || $ENV{TEST_NGINX_SERVER_PORT} || 1984;
$ENV{TEST_NGINX_SERVER_PORT} ||= $Port;
$ENV{TEST_NGINX_PORT} ||= $Port;

my $ServRoot = $ENV{TEST_NGINX_SERVROOT} || cwd() . '/t/servroot';
my $Binary = $ENV{TEST_NGINX_BINARY}
    || (grep { -x } map { "$_/nginx" } split(/:/, $ENV{PATH} || ''),
        '/usr/sbin')[0] || 'nginx';

my $NginxPid;             # valgrind mode: our child

sub repeat_each { $RepeatEach = shift if @_; return $RepeatEach }
sub no_shuffle { $Shuffle = 0 }
sub add_block_preprocessor { push @Preprocessors, @_ }
sub log_level { $LogLevel = shift if @_; return $LogLevel }
sub master_process_enabled { $MasterOn = shift if @_; return $MasterOn }
sub workers { $Workers = shift if @_; return $Workers }
sub worker_connections {
    $WorkerConnections = shift if @_;
    return $WorkerConnections;
}
sub env_to_nginx { push @EnvToNginx, @_ }
sub no_root_location { $NoRootLocation = 1 }
sub server_port { $Port }
sub server_root { $ServRoot }
sub html_dir { "$ServRoot/html" }

# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO}, like upstream
sub expand_env {
    my ($s) = @_;
    return $s unless defined $s;
    $s =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1}
            : die "Environment variable \$$1 is not set (used in the test"
                . " configuration)\n"
    }ge;
    return $s;
}

# a section's (filtered) value; undef when no block has that section
sub block_value {
    my ($block, $name) = @_;
    return undef unless $block->can($name);
    my @v = $block->$name;
    return wantarray ? @v : $v[0];
}

sub write_config {
    my ($block) = @_;

    remove_tree($ServRoot) if -d $ServRoot;
    make_path("$ServRoot/conf", "$ServRoot/logs", "$ServRoot/html",
              "$ServRoot/tmp");

    my $load = join '', map { "load_module $_;\n" }
        split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    my $user = $> == 0 ? "user root;\n" : '';
    my $env = join '', map { "env $_;\n" } @EnvToNginx;
    my $daemon = $Valgrind ? 'off' : 'on';
    my $master = ($MasterOn && !$Valgrind) ? 'on' : 'off';
    my $main = expand_env(block_value($block, 'main_config') // '');
    my $http = expand_env(block_value($block, 'http_config') // '');
    my $config = expand_env(block_value($block, 'config') // '');
    my $root = $NoRootLocation ? '' : <<"ROOT";
        location / {
            root $ServRoot/html;
            index index.html index.htm;
        }
ROOT

    my $conf = <<"CONF";
$load$user$env
worker_processes $Workers;
daemon $daemon;
master_process $master;
error_log $ServRoot/logs/error.log $LogLevel;
pid $ServRoot/logs/nginx.pid;

$main

http {
    access_log $ServRoot/logs/access.log;
    default_type text/plain;
    keepalive_timeout 68;

    client_body_temp_path $ServRoot/tmp/client_body;
    proxy_temp_path $ServRoot/tmp/proxy;
    fastcgi_temp_path $ServRoot/tmp/fastcgi;
    uwsgi_temp_path $ServRoot/tmp/uwsgi;
    scgi_temp_path $ServRoot/tmp/scgi;

$http

    server {
        listen $Port;
        server_name localhost;
        client_max_body_size 30M;

$root
$config
    }
}

events {
    accept_mutex off;
    worker_connections $WorkerConnections;
}
CONF

    open my $fh, '>', "$ServRoot/conf/nginx.conf"
        or die "cannot write $ServRoot/conf/nginx.conf: $!\n";
    print $fh $conf;
    close $fh;

    my $files = block_value($block, 'user_files');
    if (defined $files) {
        my @f = ref $files eq 'ARRAY' ? @$files : ();
        unless (@f) {
            while ($files =~ /^>>> (\S+)\n(.*?)(?=^>>> |\z)/msg) {
                push @f, [$1, $2];
            }
        }
        for my $f (@f) {
            my ($name, $body) = @$f;
            my $path = "$ServRoot/html/$name";
            (my $dir = $path) =~ s{/[^/]+$}{};
            make_path($dir);
            open my $uh, '>', $path or die "$path: $!\n";
            print $uh $body;
            close $uh;
        }
    }
}

sub port_open {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Port,
                                  Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}

sub start_nginx {
    my ($name) = @_;
    my @cmd = ($Binary, '-p', "$ServRoot/", '-c', "$ServRoot/conf/nginx.conf");

    my $t = `$Binary -t -p $ServRoot/ -c $ServRoot/conf/nginx.conf 2>&1`;
    if ($?) {
        Test::More::fail("$name - nginx -t failed");
        Test::More::diag($t);
        return 0;
    }

    if ($Valgrind) {
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            open STDOUT, '>', '/dev/null';
            open STDERR, '>>', "$ServRoot/logs/stderr.log";
            my $supp = __FILE__;
            $supp =~ s{Socket/Lite\.pm$}{valgrind.suppress};
            exec 'valgrind', '--tool=memcheck', '--leak-check=full',
                '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
                '--num-callers=30', "--suppressions=$supp",
                "--log-file=$ServRoot/logs/valgrind.log", @cmd;
            exit 127;
        }
        $NginxPid = $pid;

    } else {
        my $out = `@cmd 2>&1`;
        if ($?) {
            Test::More::fail("$name - nginx failed to start");
            Test::More::diag($out);
            return 0;
        }
    }

    my $deadline = time + ($Valgrind ? 60 : 10);
    until (port_open()) {
        if (time > $deadline) {
            Test::More::fail("$name - nginx did not listen on port $Port");
            Test::More::diag(error_log_since(0));
            return 0;
        }
        sleep 0.02;
    }

    return 1;
}

sub nginx_pid {
    return $NginxPid if $Valgrind;
    open my $fh, '<', "$ServRoot/logs/nginx.pid" or return;
    my $pid = <$fh>;
    return unless defined $pid;
    chomp $pid;
    return $pid;
}

# alive and not a zombie (an orphaned nginx may wait a while to be reaped)
sub running {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh>;
    return !(defined $stat && $stat =~ /^\d+ \(.*\) Z/);
}

sub stop_nginx {
    my $pid = nginx_pid() or return;
    kill 'QUIT', $pid;
    my $deadline = time + ($Valgrind ? 60 : 10);
    while (time < $deadline) {
        if ($Valgrind) {
            last if waitpid($pid, WNOHANG) == $pid;
        } else {
            last unless running($pid);
        }
        sleep 0.02;
    }
    if (running($pid)) {
        kill 'KILL', $pid;
        waitpid($pid, 0) if $Valgrind;
    }
    undef $NginxPid;
}

sub error_log_since {
    my ($offset) = @_;
    open my $fh, '<', "$ServRoot/logs/error.log" or return '';
    seek $fh, $offset, 0;
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

# the bytes of the HTTP request a block describes
sub build_request {
    my ($block) = @_;

    my $raw = block_value($block, 'raw_request');
    return expand_env($raw) if defined $raw;

    my $req = block_value($block, 'request');
    die "block has neither --- request nor --- raw_request\n"
        unless defined $req;
    $req = expand_env($req);
    $req =~ s/\A\s+//;

    my ($line, $body) = split /\n/, $req, 2;
    $line =~ s/\s+\z//;
    $line .= ' HTTP/1.1' unless $line =~ m{ HTTP/\d\.\d\z};
    $body = '' unless defined $body;
    $body =~ s/\n\z// if length $body;

    my $headers = expand_env(block_value($block, 'more_headers') // '');
    my %has;
    my $h = '';
    for (split /\n/, $headers) {
        next unless /\S/;
        my ($k) = /^([^:]+):/;
        $has{lc $k} = 1 if defined $k;
        $h .= "$_\r\n";
    }

    my $out = "$line\r\n";
    $out .= "Host: localhost\r\n" unless $has{host};
    $out .= "Connection: close\r\n" unless $has{connection};
    $out .= $h;
    if (length $body && !$has{'content-length'}) {
        $out .= "Content-Length: " . length($body) . "\r\n";
    }
    $out .= "\r\n$body";

    return $out;
}

# sends the request, reads until the server closes or the timeout ends
sub exchange {
    my ($request, $timeout) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Port,
                                  Proto => 'tcp', Timeout => 5)
        or return ('', 0, "connect() failed: $!");

    $s->autoflush(1);
    syswrite($s, $request) // return ('', 0, "write failed: $!");

    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    my $raw = '';

    while (1) {
        my $left = $deadline - time;
        return ($raw, 1, undef) if $left <= 0;
        return ($raw, 1, undef) unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        return ($raw, 0, undef) unless $n;
        $raw .= $buf;
    }
}

sub parse_response {
    my ($raw) = @_;
    my %r = (status => undef, headers => [], body => '');

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%r unless defined $body;

    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines;
    ($r{status}) = $status_line =~ m{^HTTP/\d\.\d\s+(\d+)};

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{ $r{headers} }, [$k, $v];
    }

    my ($te) = map { $_->[1] } grep { lc $_->[0] eq 'transfer-encoding' }
        @{ $r{headers} };

    if (defined $te && $te =~ /chunked/i) {
        my $plain = '';
        while ($body =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            last if length($body) < $len;        # cut short: keep the rest
            $plain .= substr($body, 0, $len, '');
            $body =~ s/\A\r\n//;
        }
        $body = $plain;
    }

    $r{body} = $body;
    return \%r;
}

sub header_values {
    my ($r, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $r->{headers} };
}

sub patterns {
    my ($v) = @_;
    return () unless defined $v;
    return map { ref $_ ? $_ : $_ } @$v if ref $v eq 'ARRAY';
    return ($v) if ref $v eq 'Regexp';
    return grep { /\S/ } split /\n/, $v;
}

sub match {
    my ($text, $pat) = @_;
    return ref $pat eq 'Regexp' ? $text =~ $pat : index($text, $pat) >= 0;
}

sub run_block {
    my ($block, $rep) = @_;

    my $name = $block->name;

    write_config($block);

    my $init = block_value($block, 'init');
    if (defined $init) {
        eval $init;
        die "--- init of $name failed: $@" if $@;
    }

    return unless start_nginx($name);

    my $offset = -s "$ServRoot/logs/error.log" || 0;
    my $timeout = block_value($block, 'timeout');
    $timeout = $ENV{TEST_NGINX_TIMEOUT} || 3 unless defined $timeout;
    $timeout =~ s/s\z//;

    my ($raw, $timed_out, $err) = exchange(build_request($block), $timeout);
    my $r = parse_response($raw);

    if ($err) {
        Test::More::fail("$name - $err");
    } elsif ($timed_out && !defined block_value($block, 'abort')) {
        Test::More::fail("$name - ERROR: client socket timed out");
    }

    my $code = block_value($block, 'error_code');
    $code = 200 unless defined $code;
    $code =~ s/\s+//g;
    Test::More::is($r->{status} // '', $code, "$name - status code ok");

    my $hdrs = block_value($block, 'response_headers');
    if (defined $hdrs) {
        for my $line (split /\n/, expand_env($hdrs)) {
            next unless $line =~ /\S/;
            if ($line =~ /^!\s*(\S+)/) {
                my @v = header_values($r, $1);
                Test::More::ok(!@v, "$name - header $1 not present");
            } elsif ($line =~ /^([^:]+):\s*(.*?)\s*$/) {
                my ($k, $v) = ($1, $2);
                my @got = header_values($r, $k);
                Test::More::is($got[0] // '', $v, "$name - header $k ok");
            }
        }
    }

    my $hlike = block_value($block, 'response_headers_like');
    if (defined $hlike) {
        for my $line (split /\n/, $hlike) {
            next unless $line =~ /^([^:]+):\s*(.*?)\s*$/;
            my ($k, $re) = ($1, $2);
            my @got = header_values($r, $k);
            Test::More::like($got[0] // '', qr/$re/s,
                             "$name - header $k like ok");
        }
    }

    my $body = block_value($block, 'response_body');
    if (defined $body) {
        $body = expand_env($body);
        Test::More::is($r->{body}, $body, "$name - response_body - "
                       . "response is expected");
    } else {
        my $like = block_value($block, 'response_body_like');
        if (defined $like) {
            Test::More::like($r->{body}, qr/$like/s,
                             "$name - response_body_like - response is "
                             . "expected");
        }
    }

    my $wait = block_value($block, 'wait');
    sleep $wait if defined $wait && $wait > 0;

    my $log = error_log_since($offset);

    for my $pat (patterns(scalar block_value($block, 'error_log'))) {
        Test::More::ok(match($log, $pat),
                       "$name - pattern \"$pat\" matches a line in error.log")
            or Test::More::diag("error.log of this block:\n" . tail($log));
    }

    for my $pat (patterns(scalar block_value($block, 'no_error_log'))) {
        Test::More::ok(!match($log, $pat),
                       "$name - pattern \"$pat\" should not match any line in"
                       . " error.log");
    }

    my $grep = block_value($block, 'grep_error_log');
    if (defined $grep) {
        my $re = ref $grep eq 'Regexp' ? $grep : qr/\Q$grep\E/;
        my $out = join '', map { "$_\n" } $log =~ /($re)/g;
        my $want = block_value($block, 'grep_error_log_out');
        if (ref $want eq 'Regexp') {
            Test::More::like($out, $want, "$name - grep_error_log_out");
        } else {
            Test::More::is($out, $want // '', "$name - grep_error_log_out");
        }
    }

    stop_nginx();

    if ($Valgrind) {
        check_valgrind($name);
    }
}

sub tail {
    my ($s) = @_;
    my @l = split /\n/, $s;
    @l = @l[-40 .. -1] if @l > 40;
    return join "\n", @l;
}

sub check_valgrind {
    my ($name) = @_;
    open my $fh, '<', "$ServRoot/logs/valgrind.log" or do {
        Test::More::fail("$name - valgrind log missing");
        return;
    };
    local $/;
    my $v = <$fh>;
    my @problems;
    push @problems, $1 while $v =~ /^==\d+== ((?:Invalid (?:read|write|free)|Conditional jump|Use of uninitialised|Mismatched free|Syscall param)[^\n]*)/mg;
    if ($v =~ /definitely lost: ([\d,]+) bytes/ && $1 ne '0') {
        push @problems, "definitely lost: $1 bytes";
    }
    Test::More::ok(!@problems, "$name - valgrind: no leaks or invalid "
                   . "accesses") or Test::More::diag(tail($v));
}

sub run_tests {
    my @blocks = Test::Base::blocks();

    for my $b (@blocks) {
        $_->($b) for @Preprocessors;
    }

    my @only = grep { defined block_value($_, 'ONLY') } @blocks;
    @blocks = @only if @only;

    my @run;
    for my $b (@blocks) {
        next if defined block_value($b, 'SKIP');
        push @run, $b;
        last if defined block_value($b, 'LAST');
    }

    if ($Shuffle) {
        for (my $i = @run - 1; $i > 0; $i--) {
            my $j = int rand($i + 1);
            @run[$i, $j] = @run[$j, $i];
        }
    }

    for my $b (@run) {
        for my $rep (1 .. $RepeatEach) {
            run_block($b, $rep);
        }
    }

    remove_tree($ServRoot) unless $ENV{TEST_NGINX_NO_CLEAN};
}

END {
    stop_nginx() if defined $NginxPid || -f "$ServRoot/logs/nginx.pid";
}

1;
