# Security hardening of the API-key auth (issue 15 items 5, 11, 12, 13, 15;
# issue 25 items 10, 11): keys never forwarded, unknown-key floods that
# cannot evict valid keys, signed Redis entries and harmless invalidation
# messages, a revocation bound that holds with or without Redis, Redis
# with a password, JSON for nginx's own 400s, and key tools that never
# hang on a frozen server.
#
# Plain Perl (GpugateTest): these need private Redis servers, frozen ones
# and crafted cache entries.  Needs (scripts/test.sh exports them):
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);

use GpugateTest qw(start_nginx http_request psql redis make_key wait_until
                   env_or_skip free_port);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $keys = "$root/scripts/gpugate-keys";
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $tmp = File::Temp::tempdir(CLEANUP => 1);

my $zone_n = 0;

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod 0600, $path;
    return $path;
}

my $secret = 'test-secret-' . join '', map { int rand 10 } 1 .. 24;
my $secret_file = write_file("$tmp/secret", "$secret\n");

# nginx with auth on /t, which proxies to /echo with whatever headers the
# request still has; /echo shows the key headers it received.
sub gateway {
    my (%o) = @_;
    my $redis = exists $o{redis_port} ? $o{redis_port} : $rd;
    my $http = "    gpugate_auth_zone zone=s" . $zone_n++ . ":"
             . ($o{zone} || '1m') . " ttl=" . ($o{ttl} || '60s')
             . " negative_ttl=30s stale=300s;\n"
             . "    gpugate_auth_postgres \"host=127.0.0.1 port="
             . ($o{pg_port} || $pg) . " user=gpugate dbname=gpugate"
             . " connect_timeout=5\" timeout=5s;\n";
    $http .= "    gpugate_auth_redis 127.0.0.1:$redis timeout=1s"
           . ($o{secret} ? " secret_file=$o{secret}" : '')
           . ($o{password} ? " password_file=$o{password}" : '')
           . ";\n" if $redis;
    my $port = free_port();
    return start_nginx(port => $port, http => $http, server => <<"SRV");
        error_page 400 \@gpugate_error;
        location \@gpugate_error {
            gpugate_error;
        }
        location /t {
            gpugate_auth on;
            proxy_set_header X-Src \$gpugate_auth_source;
            proxy_set_header X-Seen-Key \$http_x_api_key;
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location /custom {
            gpugate_auth on;
            gpugate_auth_header X-GG-Key;
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location = /echo {
            return 200 "src=\$http_x_src auth=[\$http_authorization] xkey=[\$http_x_api_key] seen=[\$http_x_seen_key] gg=[\$http_x_gg_key] keep=[\$http_x_keep]\\n";
        }
SRV
}

# Stopping an nginx takes a second or two: each is sent QUIT and left to
# GpugateTest's END block, which waits for all of them at once.
my @retired;

sub retire {
    my ($ng) = @_;
    kill 'QUIT', $ng->{master} if $ng->{master};
    push @retired, $ng;
}

sub get {
    my ($ng, $key, $path) = @_;
    return http_request($ng->port, 'GET', $path || '/t',
                        { Authorization => "Bearer $key" });
}

sub src { ($_[0]{body} =~ /src=(\w+)/)[0] || "status $_[0]{status}" }

sub rkey { 'gpugate:key:' . sha256_hex($_[0]) }

sub random_key {
    my @alnum = ('a' .. 'z', 'A' .. 'Z', 0 .. 9);
    return 'sk-gg-' . join '', map { $alnum[rand @alnum] } 1 .. 40;
}

# raw(PORT, TEXT): sends a request as written (repeated headers included)
sub raw {
    my ($port, $text) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or die "connect: $!\n";
    print $s $text;
    return GpugateTest::http_read($s, 10);
}

# a private Redis; returns its port (stopped at the end of the file)
my @private_redis;

sub start_redis {
    my ($password) = @_;
    my $port = free_port();
    my $dir = File::Temp::tempdir(DIR => $tmp);
    my $conf = write_file("$dir/redis.conf", $password
        ? "requirepass \"$password\"\n" : "");
    system('redis-server', $conf, '--bind', '127.0.0.1', '--port', $port,
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--dir', $dir, '--pidfile', "$dir/redis.pid",
           '--logfile', "$dir/redis.log") == 0 or die "redis-server\n";
    my $pid;
    wait_until(10, sub {
        open my $fh, '<', "$dir/redis.pid" or return 0;
        $pid = <$fh>;
        return $pid && `REDISCLI_AUTH='${\($password // '')}' redis-cli -h 127.0.0.1 -p $port ping 2>/dev/null` =~ /PONG/;
    }) or die "private Redis did not start\n";
    chomp $pid;
    push @private_redis, $pid;
    return ($port, $pid);
}

END {
    for my $pid (@private_redis) {
        kill 'CONT', $pid;
        kill 'TERM', $pid;
    }
}

# run(SECONDS, ENV, COMMAND...): runs a command with a hard outer limit
# (so a hang fails the test instead of stalling it); returns (exit status,
# stdout, stderr, seconds).  Status 124: it had to be killed.
sub run {
    my ($secs, $env, @cmd) = @_;
    my $t0 = time;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $env->{$_} for keys %$env;
        delete $ENV{$_} for grep { !defined $env->{$_} } keys %$env;
        open STDOUT, '>', "$tmp/out" or die;
        open STDERR, '>', "$tmp/err" or die;
        exec('timeout', '-k', '2', $secs, @cmd) or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    local $/;
    open my $o, '<', "$tmp/out"; my $out = <$o> // '';
    open my $e, '<', "$tmp/err"; my $err = <$e> // '';
    return ($rc, $out, $err, time - $t0);
}

# --- issue 15 item 5: key headers never reach the upstream ---------------

{
    my $key = make_key('sec', name => 'strip');
    my $other = random_key();
    my $ng = gateway();

    my @cases = (
        [ 'Bearer + x-api-key', "Authorization: Bearer $key\r\n"
                                . "x-api-key: $other\r\n" ],
        [ 'x-api-key + Bearer', "X-Api-Key: $other\r\n"
                                . "authorization: Bearer $key\r\n" ],
        [ 'x-api-key alone, upper case', "X-API-KEY: $key\r\n" ],
        [ 'lower-case scheme and name', "AUTHORIZATION: bearer $key\r\n"
                                        . "x-API-key: $other\r\n" ],
        [ 'x-api-key twice', "x-api-key: $key\r\nx-api-key: $other\r\n"
                             . "Authorization: Basic Zm9vOmJhcg==\r\n" ],
    );

    for my $method ('GET', 'POST') {
        for my $c (@cases) {
            my ($what, $headers) = @$c;
            my $body = $method eq 'POST' ? '{"x":1}' : '';
            my $r = raw($ng->port, "$method /t HTTP/1.1\r\nHost: x\r\n"
                . "Connection: close\r\nX-Keep: yes\r\n$headers"
                . ($method eq 'POST'
                   ? "Content-Length: " . length($body) . "\r\n" : '')
                . "\r\n$body");
            is($r->{status}, 200, "strip $method $what: accepted");
            like($r->{body}, qr/auth=\[\] xkey=\[\] seen=\[\]/,
                 "strip $method $what: no key header upstream, not even "
                 . "through a variable");
            like($r->{body}, qr/keep=\[yes\]/,
                 "strip $method $what: other headers kept");
        }
    }

    # a configured header is stripped as well as the two defaults
    my $r = raw($ng->port, "GET /custom HTTP/1.1\r\nHost: x\r\n"
        . "Connection: close\r\nX-GG-Key: $key\r\n"
        . "Authorization: Bearer $other\r\nx-api-key: $other\r\n\r\n");
    is($r->{status}, 200, 'strip custom header: accepted');
    like($r->{body}, qr/auth=\[\] xkey=\[\] seen=\[\] gg=\[\]/,
         'strip custom header: neither it nor the defaults upstream');
    retire($ng);
}

# --- issue 15 item 11: an unknown-key flood cannot evict valid keys ------

{
    my @valid = map { scalar make_key('sec', name => "flood-$_") } 1 .. 3;
    # the smallest zone: a few dozen entries of each kind
    my $ng = gateway(zone => '32k');
    is(src(get($ng, $_)), 'postgres', 'flood: valid key looked up')
        for @valid;
    is(src(get($ng, $_)), 'shm', 'flood: valid key cached') for @valid;

    my @random = map { random_key() } 1 .. 200;
    my @st = map { get($ng, $_)->{status} } @random;
    is_deeply([grep { $_ != 401 } @st], [], 'flood: 200 unknown keys '
              . 'refused');

    is(src(get($ng, $_)), 'shm', 'flood: valid key still cached in shm')
        for @valid;

    like(redis('EXISTS', map { rkey($_) } @random), qr/^0\s*\z/,
       'flood: no unknown key was written to Redis');

    # refusals are still cached (within their budget): the newest ones
    is(get($ng, $random[-1])->{status}, 401, 'flood: repeat still refused');
    retire($ng);
}

# --- issue 15 item 12: signed Redis entries ------------------------------

sub entry_json {
    my (%f) = @_;
    my %e = (v => 3, t => int(time), refusal => 0, id => 999999,
             tenant_id => 1, rpm => 0, tpm => 0, expires => 0,
             name => 'forged', prefix => 'sk-gg-forged', tenant => 'sec',
             models => '*', %f);
    return '{' . join(',', map {
        my $v = $e{$_};
        "\"$_\":" . ($v =~ /^-?\d+$/ ? int($v) : "\"$v\"")
    } sort keys %e) . '}';
}

sub signed {
    my ($key, $json, $with) = @_;
    return 'm=' . hmac_sha256_hex(rkey($key) . "\n" . $json,
                                  $with // $secret) . " $json";
}

{
    my ($key, $id) = make_key('sec', name => 'signed');
    my $ng = gateway(secret => $secret_file);
    is(src(get($ng, $key)), 'postgres', 'hmac: valid key from PostgreSQL');
    my $stored = redis('GET', rkey($key));
    like($stored, qr/^m=[0-9a-f]{64} \{/, 'hmac: the Redis copy is signed');
    my ($json) = $stored =~ /^m=[0-9a-f]{64} (.*)$/s;
    retire($ng);

    # a fresh gateway (empty shm) trusts the signed copy
    $ng = gateway(secret => $secret_file);
    is(src(get($ng, $key)), 'redis', 'hmac: signed copy accepted');

    # what a Redis writer can craft: each is refused by PostgreSQL's answer
    my %forged = (
        'unsigned entry'      => sub { entry_json() },
        'wrong secret'        => sub { signed($_[0], entry_json(), 'guess') },
        "another key's entry" => sub { signed($key, $json) },
        'tampered entry'      => sub {
            my $e = signed($_[0], entry_json());
            $e =~ s/"rpm":0/"rpm":1/;
            $e;
        },
        'bad hex'             => sub { 'm=' . ('z' x 64) . ' ' . entry_json() },
    );
    $ng->mark;
    for my $what (sort keys %forged) {
        my $mint = random_key();
        redis('SET', rkey($mint), $forged{$what}->($mint), 'EX', 60);
        my $r = get($ng, $mint);
        is($r->{status}, 401, "hmac: $what does not make a key valid");
        like($r->{body}, qr/Incorrect API key/, "hmac: $what: unknown key");
    }
    like($ng->log, qr/HMAC does not match the gateway secret \(5 so far\)/,
         'hmac: every rejected entry logged and counted');

    # the test's own signature is what the gateway writes: accepted
    my $mine = random_key();
    redis('SET', rkey($mine), signed($mine, entry_json()), 'EX', 60);
    is(get($ng, $mine)->{status}, 200,
       'hmac: a correctly signed entry is used (the format is as tested)');
    retire($ng);

    # without a secret the gateway says so at startup
    $ng = gateway();
    like($ng->log, qr/without secret_file=.*whoever can write to Redis/,
         'hmac: unsigned entries are announced at startup');
    retire($ng);
}

# --- issue 15 item 12: invalidation messages cost a lookup, not the stale
#     grace (PostgreSQL down: the gateway's conninfo points at nothing) ----

{
    for my $msg ('flush', 'key', 'tenant') {
        my $key = random_key();
        my $ng = gateway(secret => $secret_file, pg_port => free_port());
        ok($ng->wait_log(qr/subscriber connection up/, 10),
           "$msg: subscribed");
        redis('SET', rkey($key), signed($key, entry_json()), 'EX', 60);
        is(src(get($ng, $key)), 'redis', "$msg: key known from Redis");
        is(src(get($ng, $key)), 'shm', "$msg: ...then from shm");

        $ng->mark;
        redis('PUBLISH', 'gpugate:invalidate',
              $msg eq 'flush' ? 'flush'
              : $msg eq 'tenant' ? 'tenant 1'      # entry_json's tenant_id
              : 'key ' . sha256_hex($key));
        ok($ng->wait_log(qr/invalidation "\Q$msg\E.*expired 1 entries/, 10),
           "$msg: the message expired the entry");
        redis('DEL', rkey($key));

        my $r = get($ng, $key);
        is($r->{status}, 200, "$msg: the key keeps its stale grace while "
           . "PostgreSQL is down");
        is(src($r), 'stale', "$msg: ...served stale, after a new lookup");
        retire($ng);
    }
}

# --- a node without gpugate_auth_zone (the admin API or the tunnel alone,
#     on the auth module's PostgreSQL and Redis) takes every invalidation
#     message: no key cache to expire.  Its workers died on "key",
#     "tenant" and "flush" (signal 11), and the admin API publishes them
#     on each change: the console's requests in flight got no answer ------

{
    my $chan = "gg-nozone-$$";
    my %node;
    for my $kind ('admin', 'tunnel') {
        $node{$kind} = start_nginx(workers => 2, http => <<"HTTP",
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s channel=$chan;
    upstream agents {
        gpugate_tunnel;
    }
HTTP
            server => ($kind eq 'admin'
                       ? "        location /admin/v1/ { gpugate_admin; }\n"
                       : "        location = /gpugate/tunnel {\n"
                       . "            gpugate_tunnel_accept;\n"
                       . "        }\n")
                    . "        location = /health { return 200 \"ok\\n\"; }\n");
    }
    my @kinds = sort keys %node;

    my $count_log = sub {
        my ($ng, $re) = @_;
        my @m = $ng->log =~ /$re/g;
        return scalar @m;
    };

    for my $k (@kinds) {
        ok(wait_until(10, sub {
               $count_log->($node{$k}, qr/subscriber connection up/) >= 2 }),
           "no zone, $k: both workers subscribed");
    }

    # a keep-alive connection to each node, opened before the messages
    my %conn;
    my $ask = sub {
        my ($s) = @_;
        print $s "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        my ($buf, $sel) = ('', IO::Select->new($s));
        while ($buf !~ /\r\n\r\nok\n/ && $sel->can_read(10)) {
            sysread($s, $buf, 4096, length $buf) or last;
        }
        return $buf =~ m{^HTTP/1\.1 200 .*\r\n\r\nok\n}s;
    };
    for my $k (@kinds) {
        $conn{$k} = IO::Socket::INET->new(PeerAddr => '127.0.0.1:'
                                          . $node{$k}->port, Timeout => 5)
            or die "connect: $!";
        ok($ask->($conn{$k}), "no zone, $k: a keep-alive connection");
    }

    for my $msg ('key ' . sha256_hex(random_key()), 'tenant 7', 'flush') {
        my $short = substr $msg, 0, 16;
        my $ignored = qr/invalidation "\Q$short\E" ignored, no /;
        $_->mark for values %node;
        redis('PUBLISH', $chan, $msg);
        for my $k (@kinds) {
            my $ng = $node{$k};
            wait_until(10, sub { $count_log->($ng, $ignored) >= 2
                                 || $ng->log =~ /exited on signal/ });
            unlike($ng->log, qr/exited on signal/,
                   "no zone, $k: \"$short\" kills no worker");
            is($count_log->($ng, $ignored), 2,
               "no zone, $k: both workers ignore \"$short\"");
        }
    }
    for my $k (@kinds) {
        ok($ask->($conn{$k}), "no zone, $k: the keep-alive connection is "
           . 'still answered');
    }

    # "agent <name>" still reaches the tunnel there
    $node{tunnel}->mark;
    redis('PUBLISH', $chan, 'agent nozone-nobody');
    ok($node{tunnel}->wait_log(qr/"agent nozone-nobody" closed 0 tunnel/),
       'no zone, tunnel: "agent <name>" still reaches the tunnel');

    retire($_) for values %node;
}

# --- issue 15 item 13, issue 25 item 11: the revocation bound is the shm
#     ttl, whether the publish is lost, the tool ran without --redis, or
#     Redis is down --------------------------------------------------------

{
    # three cases at once, each on its own key: their waits overlap
    my ($key, $id) = make_key('sec', name => 'bound-lost');
    my ($key2, $id2) = make_key('sec', name => 'bound-tool');
    my ($key4, $id4) = make_key('sec', name => 'bound-noredis');
    my $ng = gateway(ttl => '2s');
    my $ng4 = gateway(ttl => '2s', redis_port => free_port());

    is(src(get($ng, $key)), 'postgres', 'bound: key cached, ttl=2s');
    my $ttl = redis('TTL', rkey($key));
    ok($ttl > 0 && $ttl <= 2, "bound: Redis copy lives at most the shm ttl"
       . " ($ttl s)");
    is(get($ng, $key2)->{status}, 200, 'bound: second key cached');
    redis('EXPIRE', rkey($key2), 300);   # a copy written by an old gateway
    is(src(get($ng4, $key4)), 'postgres', 'bound: Redis down: key cached');

    psql("UPDATE api_keys SET revoked_at = now() WHERE id IN ($id, $id4)");
    my ($rc, $out, $err) = run(20, { GPUGATE_PG_DSN => $dsn,
                                     GPUGATE_REDIS => undef },
                               $keys, 'revoke', $id2);
    is($rc, 0, 'bound: revoke without --redis') or diag $err;

    ok(wait_until(15, sub { get($ng, $key)->{status} == 401 }),
       'bound: publish lost: refused once the ttl runs out');
    ok(wait_until(15, sub { get($ng, $key2)->{status} == 401 }),
       'bound: no --redis: refused once the ttl runs out, not the Redis '
       . 'copy\'s');
    ok(wait_until(15, sub { get($ng4, $key4)->{status} == 401 }),
       'bound: Redis down: refused once the ttl runs out');
    retire($ng);
    retire($ng4);

    # an entry older than the ttl is not used, whoever wrote it
    my $key3 = make_key('sec', name => 'bound-old');
    redis('SET', rkey($key3), signed($key3, entry_json(t => int(time) - 5)),
          'EX', 300);
    $ng = gateway(ttl => '2s', secret => $secret_file);
    is(src(get($ng, $key3)), 'postgres',
       'bound: a Redis copy older than the ttl is not used');
    retire($ng);
}

# --- issue 15 item 12: Redis with a password (driver, tool, run.sh) ------

my $password = 'pw-' . join '', map { int rand 10 } 1 .. 20;
my $pwfile = write_file("$tmp/redis.pass", "$password\n");
my ($prport, $prpid) = start_redis($password);

{
    my $key = make_key('sec', name => 'password');
    my $ng = gateway(redis_port => $prport, password => $pwfile,
                     secret => $secret_file);
    ok($ng->wait_log(qr/command connection up/, 10),
       'password: the gateway authenticates to Redis');
    is(src(get($ng, $key)), 'postgres', 'password: key looked up');
    ok(wait_until(5, sub {
        `REDISCLI_AUTH=$password redis-cli -p $prport EXISTS ${\rkey($key)}`
            =~ /^1/
    }), 'password: ...and written to the password-protected Redis');
    retire($ng);

    $ng = gateway(redis_port => $prport);
    ok($ng->wait_log(qr/handshake refused: NOAUTH/, 10),
       'password: without password_file the refusal is logged');
    retire($ng);

    # the key tool: with the password file, and without
    my ($k2, $id2) = make_key('sec', name => 'password-tool');
    my ($rc, $out, $err) = run(20, { GPUGATE_PG_DSN => $dsn,
        GPUGATE_REDIS_PASSWORD_FILE => $pwfile },
        $keys, '--redis', "127.0.0.1:$prport", 'revoke', $id2);
    is($rc, 0, 'password: gpugate-keys revoke with the password file')
        or diag $err;
    my ($k3, $id3) = make_key('sec', name => 'password-tool2');
    ($rc, $out, $err) = run(20, { GPUGATE_PG_DSN => $dsn,
        GPUGATE_REDIS_PASSWORD_FILE => undef },
        $keys, '--redis', "127.0.0.1:$prport", 'revoke', $id3);
    is($rc, 3, 'password: without it the tool fails (exit 3)');
    like($err, qr/revoked in PostgreSQL, but the Redis invalidation failed:.*NOAUTH/s,
         'password: ...and says what was done and what was not');

    # run.sh's Redis (scripts/lib.sh) requires the password
    my $lport = free_port();
    ($rc, $out, $err) = run(30, {}, 'bash', '-c',
        ". '$root/scripts/lib.sh'; gg_install_traps;"
      . " gg_start_redis '$tmp/lib-redis' $lport '$pwfile';"
      . " redis-cli -p $lport ping; REDISCLI_AUTH='$password'"
      . " redis-cli -p $lport ping");
    like($out, qr/NOAUTH.*\nPONG/s,
         'run.sh Redis: refuses without the password, answers with it');
    like(`cat '$root/scripts/run.sh'`,
         qr/gg_start_redis "\$state\/redis" "\$redis_port"\s+"\$state\/secrets\/redis\.pass"/,
         'run.sh starts its Redis with the password');
    my $tpl = `cat '$root/conf/nginx.conf.in'`;
    like($tpl, qr/gpugate_auth_redis [^;]*password_file=[^;]*secret_file=/,
         'the template gives nginx the password and the entry secret');
}

# --- issue 25 item 10: the key tool never hangs on a frozen server -------

{
    my ($key, $id) = make_key('sec', name => 'frozen');
    kill 'STOP', $prpid;
    # the limit covers PostgreSQL's answer too: long enough for psql to
    # start and answer on a loaded machine, short beside run()'s 20 s
    my %env = (GPUGATE_PG_DSN => $dsn, GPUGATE_REDIS_PASSWORD_FILE => $pwfile,
               GPUGATE_TIMEOUT => 4);
    my @redis = ('--redis', "127.0.0.1:$prport");

    my ($rc, $out, $err, $secs) = run(20, \%env, $keys, @redis, 'revoke',
                                      $id);
    is($rc, 3, 'frozen Redis: revoke ends with exit 3, not a hang')
        or diag "rc $rc after $secs s: $err";
    like($err, qr/$id revoked in PostgreSQL, but .*did not answer within 4s/s,
         'frozen Redis: revoke says what it did and what it could not');
    is(psql("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $id"),
       't', 'frozen Redis: the revocation is in PostgreSQL');

    ($rc, $out, $err, $secs) = run(20, \%env, $keys, @redis, 'create',
                                   '--tenant', 'sec');
    is($rc, 3, 'frozen Redis: create ends with exit 3') or diag $err;
    like($out, qr/^key: sk-gg-\w{40}$/m, 'frozen Redis: the key is shown');
    like($err, qr/created \(printed above\) in PostgreSQL, but/,
         'frozen Redis: create says the key exists');

    ($rc, $out, $err, $secs) = run(20, \%env, $keys, @redis,
                                   'tenant-disable', 'sec');
    is($rc, 3, 'frozen Redis: tenant-disable ends with exit 3')
        or diag $err;
    psql("UPDATE tenants SET disabled = false WHERE name = 'sec'");
    kill 'CONT', $prpid;

    # PostgreSQL that accepts and never answers
    my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 16,
                                     ReuseAddr => 1) or die "listen: $!";
    my $hport = $hole->sockport;
    my $hdsn = "host=127.0.0.1 port=$hport user=gpugate dbname=gpugate";
    for my $cmd (['list'], ['revoke', '1'], ['create', '--tenant', 'sec'])
    {
        ($rc, $out, $err, $secs) = run(20, { %env, GPUGATE_PG_DSN => $hdsn },
                                       $keys, @$cmd);
        ok($rc != 0 && $secs < 15, "frozen PostgreSQL: $cmd->[0] fails "
           . "instead of hanging (exit $rc after ${\int $secs} s)");
        like($err, qr/did not answer within 4s|timeout expired/,
             "frozen PostgreSQL: $cmd->[0] says so");
    }
    close $hole;
}

# --- issue 15 item 15: nginx's own 400s as OpenAI JSON; no info level ----

{
    my $key = make_key('sec', name => 'dup');
    my $ng = gateway();
    my @dups = (
        "Authorization: Bearer $key\r\nAuthorization: Bearer $key\r\n",
        "authorization: Bearer $key\r\nAUTHORIZATION: Bearer x\r\n",
        "Authorization: Bearer x\r\nAuthorization: Bearer $key\r\n",
    );
    for my $i (0 .. $#dups) {
        for my $path ('/t', '/custom', '/nowhere') {
            my $r = raw($ng->port, "GET $path HTTP/1.1\r\nHost: x\r\n"
                        . "Connection: close\r\n$dups[$i]\r\n");
            is($r->{status}, 400, "duplicate Authorization $i $path: 400");
            like($r->{headers}{'content-type'} || '', qr{application/json},
                 "duplicate Authorization $i $path: JSON");
            like($r->{body}, qr/"error":\{.*"code":"bad_request"/s,
                 "duplicate Authorization $i $path: OpenAI error body");
        }
    }
    retire($ng);

    my $tpl = `cat '$root/conf/nginx.conf.in'`;
    my ($server) = $tpl =~ /listen 127\.0\.0\.1:\@PORT\@;(.*?)location/s;
    like($server, qr/error_page 400 \@gpugate_error;/,
         'template: nginx\'s 400s go to the JSON error page at server level');
    like(`cat '$root/scripts/run.sh'`, qr/\\\@LOG_LEVEL\\\@\/notice\//,
         'run.sh: the error log is at notice, not info');
}

done_testing();
