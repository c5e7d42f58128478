package Test::Nginx::Util;

# Settings, server root, nginx.conf generation and the nginx process
# lifecycle for gpugate's stand-in Test::Nginx::Socket (see the POD of
# t/lib/Test/Nginx/Socket.pm for usage and the differences from upstream).
#
# This is a plain module (no Spiffy source filter); the variable names
# follow upstream's Test::Nginx::Util so that .t files reading e.g.
# $Test::Nginx::Util::ServerPort work with either implementation.

use strict;
use warnings;

use Cwd ();
use Exporter ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

our @ISA = ('Exporter');
our @EXPORT = qw(
    env_to_nginx repeat_each worker_connections workers master_on master_off
    master_process_enabled log_level no_shuffle no_root_location
    no_long_string server_name server_addr server_root html_dir server_port
    server_port_for_client timeout add_block_preprocessor bail_out
    add_cleanup_handler expand_env_in_text parse_time error_log_data
);

# ---------------------------------------------------------------------------
# Settings (environment first, then the .t file's calls)
# ---------------------------------------------------------------------------

our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
    || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $ServerAddr = '127.0.0.1';
our $ServerName = 'localhost';
our $NginxBinary = $ENV{TEST_NGINX_BINARY} || find_nginx();
our $Workers = 1;
our $WorkerConnections = 64;
our $LogLevel = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} ? 'on' : 'off';
our $NoRootLocation = 0;
our $RepeatEach = 1;
our $NoShuffle = $ENV{TEST_NGINX_NO_SHUFFLE} ? 1 : 0;
our $NoLongString;
our $Timeout = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $LoadModules = $ENV{TEST_NGINX_LOAD_MODULES};
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;

our $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT}
                                    || 't/servroot');
$ServRoot =~ s{/+\z}{};
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir = "$ServRoot/html";
our $ConfDir = "$ServRoot/conf";
our $ConfFile = "$ConfDir/nginx.conf";
our $PidFile = "$LogDir/nginx.pid";

our $ErrLogFilePos = 0;     # where the next error_log_data() read starts
our $ValgrindPid;           # valgrind mode: our foreground child
our $ValgrindSerial = 0;    # valgrind mode: one log directory per start
our $InSubprocess;          # set in forked children: no END clean-up

sub find_nginx {
    for my $dir (split(/:/, $ENV{PATH} || ''), '/usr/sbin', '/usr/local/sbin') {
        return "$dir/nginx" if length $dir && -x "$dir/nginx";
    }
    return 'nginx';
}

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub repeat_each (@) { $RepeatEach = shift if @_; return $RepeatEach }
sub worker_connections (@) {
    return $WorkerConnections unless @_;
    $WorkerConnections = shift;
}
sub workers (@) { return $Workers unless @_; $Workers = shift }
sub master_on () { $MasterProcessEnabled = 'on' }
sub master_off () { $MasterProcessEnabled = 'off' }
sub master_process_enabled (@) {
    return $MasterProcessEnabled unless @_;
    $MasterProcessEnabled = shift() ? 'on' : 'off';
}
sub log_level (@) { return $LogLevel unless @_; $LogLevel = shift }
sub no_shuffle () { $NoShuffle = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub no_long_string () { $NoLongString = 1 }
sub server_name (@) { return $ServerName unless @_; $ServerName = shift }
sub server_addr (@) { return $ServerAddr unless @_; $ServerAddr = shift }
sub server_root () { $ServRoot }
sub html_dir () { $HtmlDir }
sub server_port (@) { return $ServerPort unless @_; $ServerPort = shift }
sub server_port_for_client (@) {
    return $ServerPortForClient unless @_;
    $ServerPortForClient = shift;
}
sub timeout (@) { return $Timeout unless @_; $Timeout = shift }

# upstream runs the most recently added preprocessor first
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# "1.5", "1.5s", "300ms" -> seconds
sub parse_time ($) {
    my $tm = shift;
    return $tm unless defined $tm;
    if ($tm =~ s/([^_a-zA-Z])ms\z/$1/) {
        $tm /= 1000;
    } else {
        $tm =~ s/([^_a-zA-Z])s\z/$1/;
    }
    return $tm;
}

# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO}; an unset variable stops the run
# (upstream bails out the same way).
sub expand_env_in_text ($$) {
    my ($text, $name) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1}
            : bail_out("$name - No environment $1 defined.\n")
    }ge;
    return $text;
}

# ---------------------------------------------------------------------------
# Server root and configuration
# ---------------------------------------------------------------------------

# Clears what a previous block left (only our own subdirectories, so a
# mis-set TEST_NGINX_SERVROOT cannot wipe user data) and recreates
# conf/, html/ (with upstream's index.html) and logs/.
sub setup_server_root () {
    if (-d $ServRoot) {
        remove_tree($ConfDir, $HtmlDir, $LogDir, "$ServRoot/cache",
                    glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
    }
    make_path($ServRoot, $LogDir, $HtmlDir, $ConfDir);
    bail_out("cannot create $ServRoot/{conf,html,logs}\n")
        unless -d $LogDir && -d $HtmlDir && -d $ConfDir;

    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!\n");
    print $out '<html><head><title>It works!</title></head>'
        . '<body>It works!</body></html>';
    close $out;
}

# --- user_files: ">>> name [touch-date]" lines, each followed by the body;
# relative names land in html/.  An eval'd array of [name, body, date]
# works too.
sub write_user_files ($) {
    my ($block) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, undef, $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files,
                 ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body = '' unless defined $body;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/}) {
            make_path($1) unless -d $1;
        }
        $body = expand_env_in_text($body, $name);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - cannot touch -t '$date' $path\n");
        }
    }
}

# Writes conf/nginx.conf, laid out like upstream's.
sub write_config_file ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;

    my $main_config = expand_env_in_text($block->main_config // '', $name);
    my $post_main = expand_env_in_text($block->post_main_config // '', $name);
    my $http_config = expand_env_in_text($block->http_config // '', $name);
    my $log_level = $block->log_level || $LogLevel;
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    my $daemon = $UseValgrind ? 'off' : 'on';
    my $master = $UseValgrind ? 'off' : $MasterProcessEnabled;

    my $load = join '', map { "load_module $_;\n" }
        grep { length } split /\s+/, ($LoadModules // '');
    my $env = join '', map { my $v = $_; $v = "'$v'" if $v =~ /\s/;
                             "env $v;\n" } @EnvToNginx;

    # Debian compiles in /var/lib/nginx/* temp paths, which need not exist
    my $temp = join ' ',
        ($http_config =~ /\bclient_body_temp_path\b/ ? ()
            : "client_body_temp_path $ServRoot/client_body_temp;"),
        ($http_config =~ /\bproxy_temp_path\b/ ? ()
            : "proxy_temp_path $ServRoot/proxy_temp;"),
        "fastcgi_temp_path $ServRoot/fastcgi_temp;",
        "scgi_temp_path $ServRoot/scgi_temp;",
        "uwsgi_temp_path $ServRoot/uwsgi_temp;";

    my $root = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    (my $quoted_name = $server_name) =~ s/(['\\])/\\$1/g;

    # upstream says "user root" when the tests run as root, so that the
    # workers can write into the server root
    my $user = $> == 0 ? "user root;\n" : '';

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<"_EOC_";
${load}worker_processes  $Workers;
daemon $daemon;
master_process $master;
error_log $ErrLogFile $log_level;
pid       $PidFile;
$env
$main_config

http {
    access_log $AccLogFile; $temp

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config
    server {
        listen          $ServerPort;
        server_name     '$quoted_name';
        client_max_body_size 30M;

        # Begin test case config...
$config
        # End test case config.

$root    }
}

$post_main

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
}
$user
_EOC_
    close $out;
}

# ---------------------------------------------------------------------------
# nginx processes
# ---------------------------------------------------------------------------

sub is_running ($) {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    # a daemonised nginx is not our child: a zombie may wait a while for
    # its reaper, and counts as gone
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        return 0 if $stat =~ /^\d+ \(.*\) [ZX]/s;
    }
    return 1;
}

sub pid_from_pidfile () {
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> } // '';
    close $in;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+\z/ ? $pid : undef;
}

# Whether something listens on TCP $port, read from /proc/net/tcp{,6} so
# that the check itself adds no connection (and no line) to error.log.
# undef when /proc cannot tell.
sub port_listening ($) {
    my ($port) = @_;
    my $hex = sprintf ':%04X', $port;
    my $seen_proc;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        $seen_proc = 1;
        while (<$fh>) {
            my @f = split ' ';
            return 1 if @f > 3 && $f[1] =~ /\Q$hex\E\z/ && $f[3] eq '0A';
        }
    }
    return $seen_proc ? 0 : undef;
}

sub file_tail ($$) {
    my ($file, $n) = @_;
    open my $fh, '<', $file or return '';
    my @lines = <$fh>;
    @lines = @lines[-$n .. -1] if @lines > $n;
    return join '', @lines;
}

# Starts nginx for a block.  Returns undef on success, or the reason (with
# nginx's own output) why it could not be started.
sub start_nginx ($) {
    my ($name) = @_;

    my @cmd = ($NginxBinary);
    # -e (nginx >= 1.19.5) keeps start-up errors in our error.log
    push @cmd, '-e', $ErrLogFile if nginx_supports_e();
    push @cmd, '-p', "$ServRoot/", '-c', $ConfFile;

    my $stderr = "$LogDir/nginx-start.stderr";

    if ($UseValgrind) {
        # foreground (daemon off, master off) under memcheck; one log per
        # process in a fresh directory so each block is judged on its own
        my $vdir = "$LogDir/valgrind." . ++$ValgrindSerial;
        make_path($vdir);
        my @vg = ('valgrind', '--tool=memcheck', '--leak-check=full',
                  '--show-leak-kinds=definite',
                  '--errors-for-leak-kinds=definite',
                  '--show-possibly-lost=no', '--num-callers=50',
                  '--keep-debuginfo=yes', "--log-file=$vdir/vg.%p.log");
        (my $supp = __FILE__) =~ s{Test/Nginx/Util\.pm\z}{valgrind.suppress};
        push @vg, "--suppressions=$supp" if -f $supp;
        push @vg, "--suppressions=$ENV{TEST_NGINX_VALGRIND_SUPPRESS}"
            if $ENV{TEST_NGINX_VALGRIND_SUPPRESS};

        my $pid = fork // bail_out("$name - fork() failed: $!");
        if ($pid == 0) {
            $InSubprocess = 1;
            Test::More->builder->no_ending(1);
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', $stderr;
            exec @vg, @cmd or POSIX::_exit(127);
        }
        $ValgrindPid = $pid;
        return wait_listening($name, $pid, 60, $stderr);
    }

    # daemon mode: the command returns once nginx listens (or failed); a
    # previous nginx that still holds the port gets a few more seconds
    my $deadline = time + 5;
    while (1) {
        system(join(' ', map { quote_sh($_) } @cmd)
               . ' >/dev/null 2>' . quote_sh($stderr));
        last if $? == 0;
        my $status = $?;
        my $err = file_tail($stderr, 30);
        if ($err =~ /Address already in use/ && time < $deadline) {
            sleep 0.1;
            next;
        }
        return "nginx exited with status " . ($status >> 8)
            . " (command: @cmd):\n$err";
    }

    return wait_listening($name, undef, 10, $stderr);
}

# Polls until nginx's pid file is there and the port is listening, with a
# deadline; $child: the foreground process that must stay alive meanwhile.
sub wait_listening ($$$$) {
    my ($name, $child, $secs, $stderr) = @_;
    my $deadline = time + $secs;
    my $step = 0.005;
    while (1) {
        if ($child && waitpid($child, WNOHANG) == $child) {
            undef $ValgrindPid;
            return "nginx exited at start-up (status " . ($? >> 8) . "):\n"
                . file_tail($stderr, 30) . file_tail($ErrLogFile, 30)
                . valgrind_text(30);
        }
        my $pid = pid_from_pidfile();
        if ($pid) {
            my $l = port_listening($ServerPort);
            return undef if $l || !defined $l;
        }
        if (time > $deadline) {
            return "nginx did not listen on port $ServerPort within $secs s:\n"
                . file_tail($stderr, 30) . file_tail($ErrLogFile, 30);
        }
        sleep $step;
        $step *= 2 if $step < 0.05;
    }
}

{
    my $supports_e;
    sub nginx_supports_e () {
        return $supports_e if defined $supports_e;
        my $v = `$NginxBinary -v 2>&1` // '';
        $supports_e = 0;
        if ($v =~ m{nginx/(\d+)\.(\d+)\.(\d+)}) {
            $supports_e = ($1 * 1e6 + $2 * 1e3 + $3 >= 1019005) ? 1 : 0;
        }
        return $supports_e;
    }
}

sub nginx_version () {
    my $v = `$NginxBinary -v 2>&1` // '';
    return $v =~ m{nginx/(\d+)\.(\d+)\.(\d+)} ? ($1, $2, $3) : ();
}

sub quote_sh ($) {
    my ($s) = @_;
    return $s if $s =~ m{^[-\w./=:@+,]+\z};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# Stops the nginx we started: QUIT (graceful), then KILL after the
# deadline.  Returns a warning text when it had to kill.
sub stop_nginx ($) {
    my ($name) = @_;
    my $pid = $ValgrindPid || pid_from_pidfile();
    return undef unless $pid;

    my $warning;
    if (is_running($pid)) {
        kill 'QUIT', $pid;
        my $deadline = time + ($ValgrindPid ? 60 : $Timeout + 5);
        while (time < $deadline) {
            if ($ValgrindPid) {
                last if waitpid($pid, WNOHANG) == $pid;
            } else {
                last unless is_running($pid);
            }
            sleep 0.01;
        }
        if (is_running($pid)) {
            $warning = "$name - nginx (pid $pid) did not exit on QUIT; "
                . "killed\n";
            kill 'KILL', $pid;
            waitpid($pid, 0) if $ValgrindPid;
        }
    } elsif ($ValgrindPid) {
        waitpid($pid, WNOHANG);
    }
    undef $ValgrindPid;
    unlink $PidFile;
    return $warning;
}

# The valgrind output of the last start, all processes together.
sub valgrind_text ($) {
    my ($max_lines) = @_;
    my $dir = "$LogDir/valgrind.$ValgrindSerial";
    my $text = '';
    for my $f (sort glob("$dir/vg.*.log")) {
        open my $fh, '<', $f or next;
        local $/;
        $text .= <$fh> // '';
    }
    if ($max_lines) {
        my @l = split /^/, $text;
        @l = @l[-$max_lines .. -1] if @l > $max_lines;
        $text = join '', @l;
    }
    return $text;
}

# The problems valgrind reported for the last start: a list of excerpts
# (empty when clean).
sub valgrind_problems () {
    my $text = valgrind_text(0);
    my @problems;
    # each record: a heading line and its indented stack
    my @records = split /^==\d+== \n/m, $text;
    for my $r (@records) {
        if ($r =~ /^==\d+== (Invalid (?:read|write|free)|Mismatched free|
                             Conditional\ jump|Use\ of\ uninitialised|
                             Syscall\ param|Source\ and\ destination\ overlap|
                             .*definitely\ lost\ in\ loss\ record)/mx) {
            push @problems, $r;
        }
    }
    while ($text =~ /definitely lost: ([\d,]+) bytes/g) {
        push @problems, "definitely lost: $1 bytes\n" if $1 ne '0';
    }
    return @problems;
}

# The error.log lines written since the previous call (the whole file for
# the first call of a block), after a short pause for log-phase lines.
sub error_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in;
    close $in;
    return \@lines;
}

sub cleanup () {
    $_->() for @CleanupHandlers;
}

END {
    unless ($InSubprocess) {
        local $?;
        cleanup();
        # TEST_NGINX_NO_CLEAN leaves the last nginx running for inspection
        # (not under valgrind, whose report needs nginx to exit)
        if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
            my $w = stop_nginx('END');
            warn $w if $w;
        }
    }
}

1;
