package GpugateTest;

# Helpers for gpugate tests that need more control than one request per
# block: several nginx instances, concurrent requests, faults injected
# between requests.  Plain Perl on top of Test::More, so these files run
# the same whether upstream Test::Nginx is installed or not.
#
# Environment (exported by scripts/test.sh): TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT,
# TEST_NGINX_MOCK_PORT.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use FindBin;
use MIME::Base64 ();
use Exporter qw(import);
use Fcntl qw(:flock);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

# masters of the nginx instances started and not yet stopped
our %STARTED;

our @EXPORT_OK = qw(
    free_port start_nginx http_request http_send http_read psql redis
    make_key wait_until env_or_skip make_agent tunnel_connect
    tunnel_step1 tunnel_step2 read_head npm_install sdk_install
);

# Dies (skipping the whole file) unless every named variable is set.
sub env_or_skip {
    my @missing = grep { !defined $ENV{$_} || $ENV{$_} eq '' } @_;
    if (@missing) {
        require Test::More;
        Test::More::plan(skip_all => "needs @missing (run scripts/test.sh)");
    }
}

# free_port(): a port on 127.0.0.1 nobody listens on now, at random in
# 20000-31999 or GPUGATE_PORT_LO-GPUGATE_PORT_HI (scripts/test.sh gives
# each lane of a parallel run a range of its own, so that two test files
# running at once never pick the same port)
sub free_port {
    my $lo = $ENV{GPUGATE_PORT_LO} || 20000;
    my $hi = $ENV{GPUGATE_PORT_HI} || 31999;
    for (1 .. 200) {
        my $port = $lo + int(rand($hi - $lo + 1));
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $port, Listen => 1, ReuseAddr => 1, Proto => 'tcp');
        return $port if $s;
    }
    die "no free port\n";
}

# npm_install(DIR, NAME => VERSION, ...): the npm packages at exactly
# these versions in DIR/node_modules, installed when missing; true when
# they are there.  Test files run in parallel and several use the same
# DIR (build/npm): the check and the install run under a lock on
# DIR/.install.lock, so two files never run npm in one folder at once.
sub npm_install {
    my ($dir, %pkg) = @_;

    my $have = sub {
        for my $p (keys %pkg) {
            open my $f, '<', "$dir/node_modules/$p/package.json" or return 0;
            local $/;
            my $j = eval { JSON::PP::decode_json(<$f>) } || {};
            return 0 unless ($j->{version} // '') eq $pkg{$p};
        }
        return 1;
    };

    system('mkdir', '-p', $dir) == 0 or return 0;
    open my $lock, '>', "$dir/.install.lock" or return 0;
    flock($lock, LOCK_EX) or return 0;

    unless ($have->()) {
        system("cd '$dir' && npm install --no-audit --no-fund "
               . "--loglevel=error "
               . join(' ', map { "'$_\@$pkg{$_}'" } sort keys %pkg)
               . " >>npm-install.log 2>&1");
    }

    my $ok = $have->();
    close $lock;
    return $ok;
}

# The client SDKs the tests run (t/082, t/108, t/114, t/117, t/125),
# one set for all: a file that installed fewer made the next one run npm
# again in the folder while another file's node was reading it (npm
# replaced node_modules/openai under it: "Cannot find module", ENOTEMPTY).
our %SDK = ('openai' => '7.55.0', '@anthropic-ai/sdk' => '1.10.0');

# sdk_install(): (DIR, true when the whole set is in DIR/node_modules),
# installed under npm_install's lock when missing; DIR is
# GPUGATE_NPM_DIR or build/npm
sub sdk_install {
    my $dir = $ENV{GPUGATE_NPM_DIR} || "$FindBin::Bin/../build/npm";
    return ($dir, npm_install($dir, %SDK));
}

# wait_until(SECONDS, CODE): polls CODE every 20 ms; returns its true value
# or false when the deadline passes.
sub wait_until {
    my ($secs, $code) = @_;
    my $deadline = time + $secs;
    while (1) {
        my $v = $code->();
        return $v if $v;
        return 0 if time > $deadline;
        sleep 0.02;
    }
}

# start_nginx(http => TEXT, server => TEXT, workers => N): an nginx with
# the gpugate module on a free port.  Returns an object with ->port,
# ->log (error log text since start or since ->mark), ->stop, ->reload.
sub start_nginx {
    my (%o) = @_;
    my $dir = tempdir('gpugate-nginx-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
    chmod 0755, $dir;
    mkdir "$dir/logs";
    my $port = $o{port} || free_port();
    my $workers = $o{workers} || 1;
    my $load = join '', map { "load_module $_;\n" }
        split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    my $user = $> == 0 ? "user root;\n" : '';

    my $main = $o{main} || '';
    my $listen = $o{listen} ? " $o{listen}" : '';
    my $conf = <<"CONF";
$load$user$main
worker_processes $workers;
error_log $dir/logs/error.log debug;
pid $dir/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/logs; proxy_temp_path $dir/logs;
    fastcgi_temp_path $dir/logs; uwsgi_temp_path $dir/logs;
    scgi_temp_path $dir/logs;
$o{http}
    server {
        listen 127.0.0.1:$port$listen;
$o{server}
    }
}
CONF

    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print $fh $conf;
    close $fh;

    my $self = bless { dir => $dir, port => $port, mark => 0 }, __PACKAGE__;
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $out = `$bin -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    die "nginx failed to start: $out\n" if $?;

    wait_until(10, sub {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1)
    }) or die "nginx did not listen on $port\n";

    # the master's pid, kept: at exit the temp dir (and the pid file in
    # it) may be gone before this object is destroyed
    $self->{master} = $self->pid;
    $STARTED{ $self->{master} } = 1 if $self->{master};

    return $self;
}

# every nginx a test started and did not stop is stopped when it ends,
# before File::Temp removes the directories (END blocks run last first)
END {
    local $?;
    for my $pid (keys %STARTED) {
        kill 'QUIT', $pid;
    }
    for my $pid (keys %STARTED) {
        wait_until(5, sub { !kill 0, $pid }) or kill 'KILL', $pid;
    }
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }

sub pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/logs/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

# Error log text written since the last ->mark (or since start).
sub log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/logs/error.log" or return '';
    seek $fh, $self->{mark}, 0;
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

sub mark {
    my ($self) = @_;
    $self->{mark} = -s "$self->{dir}/logs/error.log" || 0;
}

# Waits until the error log (since ->mark) matches.
sub wait_log {
    my ($self, $re, $secs) = @_;
    return wait_until($secs || 10, sub { $self->log =~ $re });
}

sub reload {
    my ($self) = @_;
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    system("$bin -p $self->{dir} -c $self->{dir}/nginx.conf "
           . "-e $self->{dir}/logs/error.log -s reload") == 0
        or die "reload failed\n";
}

sub stop {
    my ($self) = @_;
    my $pid = $self->pid || $self->{master} or return;
    kill 'QUIT', $pid;
    wait_until(10, sub { !kill 0, $pid }) or kill 'KILL', $pid;
    delete $STARTED{$pid};
    delete $self->{master};
}

sub DESTROY {
    my ($self) = @_;
    local $?;
    $self->stop if $self->{master} && kill 0, $self->{master};
}

# http_send(PORT, METHOD, PATH, HEADERS, BODY): sends a request, returns the
# socket for http_read; lets a test hold several requests in flight.
sub http_send {
    my ($port, $method, $path, $headers, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or die "connect: $!\n";
    $body = '' unless defined $body;
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\n";
    for my $k (sort keys %{ $headers || {} }) {
        $req .= "$k: $headers->{$k}\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body;
    $req .= "\r\n$body";
    print $s $req;
    return $s;
}

# http_read(SOCKET, SECONDS): reads a whole (close-delimited) response;
# returns a hash: status, headers (lowercase names), body, done (0 when the
# time ran out first).
sub http_read {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + ($secs || 10);
    my $raw = '';
    my $done = 0;
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        if (!$n) { $done = 1; last }
        $raw .= $buf;
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
    $body = '' unless defined $body;
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

sub http_request {
    my ($port, $method, $path, $headers, $body, $secs) = @_;
    return http_read(http_send($port, $method, $path, $headers, $body),
                     $secs);
}

# psql(SQL [, DB]): runs SQL on the test database (or DB), returns the
# unaligned output.
sub psql {
    my ($sql, $db) = @_;
    my $port = $ENV{TEST_NGINX_PG_PORT} or die "TEST_NGINX_PG_PORT unset\n";
    open my $ph, '-|', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
        '-h', '127.0.0.1', '-p', $port, '-U', 'gpugate', '-d',
        $db || 'gpugate',
        '-c', $sql or die "psql: $!\n";
    local $/;
    my $out = <$ph>;
    close $ph or die "psql failed: $sql\n";
    $out = '' unless defined $out;
    $out =~ s/\s+\z//;
    return $out;
}

sub redis {
    my @args = @_;
    my $port = $ENV{TEST_NGINX_REDIS_PORT} or die "TEST_NGINX_REDIS_PORT\n";
    open my $ph, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $port, @args
        or die "redis-cli: $!\n";
    local $/;
    my $out = <$ph>;
    close $ph;
    $out = '' unless defined $out;
    chomp $out;
    return $out;
}

# make_key(TENANT, %columns): a fresh random key in PostgreSQL; returns
# (raw key, id).  Columns: name, models (arrayref), rpm, tpm, expires
# (SQL expression), revoked (bool).
sub make_key {
    my ($tenant, %c) = @_;
    my @alnum = ('a' .. 'z', 'A' .. 'Z', 0 .. 9);
    my $key = 'sk-gg-' . join '', map { $alnum[rand @alnum] } 1 .. 40;
    my $hex = sha256_hex($key);
    my $models = $c{models}
        ? "ARRAY[" . join(',', map { "'$_'" } @{ $c{models} }) . "]"
        : 'NULL';
    my $id = psql(
        "INSERT INTO tenants (name) VALUES ('$tenant') ON CONFLICT DO NOTHING;"
      . "INSERT INTO api_keys (tenant_id, digest, prefix, name,"
      . " allowed_models, rpm_limit, tpm_limit, expires_at, revoked_at)"
      . " SELECT id, decode('$hex', 'hex'), '" . substr($key, 0, 12) . "',"
      . " '" . ($c{name} || 'test') . "', $models,"
      . " " . ($c{rpm} || 'NULL') . ", " . ($c{tpm} || 'NULL') . ","
      . " " . ($c{expires} || 'NULL') . ","
      . " " . ($c{revoked} ? 'now()' : 'NULL')
      . " FROM tenants WHERE name = '$tenant' RETURNING id");
    return wantarray ? ($key, $id) : $key;
}

# make_agent(NAME): an agent in PostgreSQL made by the key tool; returns
# its token.
sub make_agent {
    my ($name) = @_;
    my $port = $ENV{TEST_NGINX_PG_PORT} or die "TEST_NGINX_PG_PORT unset\n";
    my $tool = "$FindBin::Bin/../scripts/gpugate-keys";
    psql("DELETE FROM agents WHERE name = '$name'");
    my $out = `$tool --dsn 'host=127.0.0.1 port=$port user=gpugate dbname=gpugate' agent-create $name 2>/dev/null`;
    my ($token) = $out =~ /^token: (\S+)/m or die "agent-create: $out\n";
    return $token;
}

# read_head(SOCKET, SECONDS): reads one response head and a Content-Length
# body; returns a hash like http_read's (without closing).
sub read_head {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + ($secs || 5);
    my $raw = '';
    my %r = (status => 0, headers => {}, body => '', eof => 0);
    while ($raw !~ /\r\n\r\n/) {
        my $left = $deadline - time;
        return \%r if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, my $buf, 1);
        if (!$n) { $r{eof} = 1; $r{raw} = $raw; return \%r }
        $raw .= $buf;
    }
    my @lines = split /\r\n/, $raw;
    ($r{status}) = (shift(@lines) // '') =~ m{^HTTP/1\.\d (\d+)};
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $r{headers}{lc $k} = $v;
    }
    my $len = $r{headers}{'content-length'} || 0;
    while (length($r{body}) < $len) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, my $buf, $len - length $r{body});
        last unless $n;
        $r{body} .= $buf;
    }
    $r{raw} = $raw;
    return \%r;
}

sub _b64 { my $v = MIME::Base64::encode_base64($_[0], ''); $v }

# tunnel_step1(SOCKET, NAME): sends the first handshake request; returns
# (response, SCRAM state).
sub tunnel_step1 {
    my ($s, $name, $path) = @_;
    my $nonce = _b64(join '', map { chr int rand 256 } 1 .. 18);
    $nonce =~ tr{+/}{-_};
    my $first_bare = "n=$name,r=$nonce";
    print $s "GET " . ($path || '/gpugate/tunnel') . " HTTP/1.1\r\n"
           . "Host: localhost\r\n"
           . "Authorization: SCRAM-SHA-256 data=" . _b64("n,,$first_bare")
           . "\r\n\r\n";
    my $r = read_head($s);
    return ($r, { first_bare => $first_bare, nonce => $nonce });
}

# tunnel_step2(SOCKET, RESPONSE1, STATE, TOKEN, %headers): the second
# request; returns (response, server signature ok).
sub tunnel_step2 {
    my ($s, $r1, $st, $token, %h) = @_;
    my ($sid) = ($r1->{headers}{'www-authenticate'} || '') =~ /sid=(\w+)/;
    my ($data) = ($r1->{headers}{'www-authenticate'} || '') =~ /data=([^ ,]+)/;
    my $server_first = MIME::Base64::decode_base64($data || '');
    my ($r, $salt, $iter) = $server_first =~ /^r=([^,]+),s=([^,]+),i=(\d+)/;
    $r //= ''; $salt //= ''; $iter ||= 4096;
    $salt = MIME::Base64::decode_base64($salt);
    my $u = Digest::SHA::hmac_sha256($salt . pack("N", 1), $token);
    my $salted = $u;
    for (2 .. $iter) {
        $u = Digest::SHA::hmac_sha256($u, $token);
        $salted ^= $u;
    }
    my $client_key = Digest::SHA::hmac_sha256("Client Key", $salted);
    my $stored = Digest::SHA::sha256($client_key);
    my $without = "c=biws,r=$r";
    my $auth = "$st->{first_bare},$server_first,$without";
    my $sig = Digest::SHA::hmac_sha256($auth, $stored);
    my $proof = _b64($client_key ^ $sig);
    my $server_key = Digest::SHA::hmac_sha256("Server Key", $salted);
    my $want = "v=" . _b64(Digest::SHA::hmac_sha256($auth, $server_key));
    my %hdr = ('X-Gpugate-Instance' => '0123456789abcdef',
               'X-Gpugate-Capacity' => 4, 'X-Gpugate-Models' => '', %h);
    my $req = "GET /gpugate/tunnel HTTP/1.1\r\nHost: localhost\r\n"
            . "Authorization: SCRAM-SHA-256 sid=" . ($sid // '')
            . ", data=" . _b64("$without,p=$proof") . "\r\n"
            . "Connection: Upgrade\r\n";
    for my $k (sort keys %hdr) {
        next unless defined $hdr{$k};
        $req .= "$k: $hdr{$k}\r\n";
    }
    print $s "$req\r\n";
    my $r2 = read_head($s);
    my ($final) = ($r2->{headers}{'authentication-info'} || '')
        =~ /data=([^ ,]+)/;
    my $ok = defined $final && MIME::Base64::decode_base64($final) eq $want;
    return ($r2, $ok);
}

# tunnel_connect(PORT, NAME, TOKEN, %headers): a whole handshake; returns
# (socket, 101 response) or (undef, refusal).
sub tunnel_connect {
    my ($port, $name, $token, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or die "connect: $!\n";
    my ($r1, $st) = tunnel_step1($s, $name);
    return (undef, $r1) unless $r1->{status} == 401
        && ($r1->{headers}{'www-authenticate'} || '') =~ /sid=/;
    my ($r2, $ok) = tunnel_step2($s, $r1, $st, $token,
                                 Upgrade => 'gpugate-tunnel/1', %h);
    return (undef, $r2) unless $r2->{status} == 101 && $ok;
    return ($s, $r2);
}

1;
