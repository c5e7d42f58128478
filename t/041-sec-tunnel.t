# Tunnel hardening (issue 15, items 1, 2 and 6) against a scripted agent:
#
# 1. an agent serves only models in its allowed_models: a handshake
#    advertising none of them is refused (403), an empty advertisement
#    ("any") gets the allowed list, a partly allowed one only the allowed
#    part; malformed allowed_models in PostgreSQL refuse the agent;
#    gpugate-keys agent-create --models checks model ids.
# 2. gpugate-keys agent-revoke closes the agent's tunnels in every worker
#    within seconds (Redis), a busy one included; a revocation made
#    without the publish is found by the periodic re-check (recheck=).
# 6. step-1 floods (several per connection, connections closed, or kept
#    open) do not lock a real agent out; names the verifier cache does not
#    know cannot take the last pending places; rate= and burst= limit
#    step 1 per client address (429).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Select;
use IO::Socket::INET;
use MIME::Base64 ();
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read psql
                   redis wait_until env_or_skip make_agent tunnel_connect
                   free_port
                   tunnel_step1 tunnel_step2 read_head);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
my $tool = "$FindBin::Bin/../scripts/gpugate-keys";

sub nginx {
    my (%o) = (pgconns => 2, @_);
    my $redis = $o{redis} ? "    gpugate_auth_redis 127.0.0.1:$rd;\n" : '';
    return start_nginx(workers => $o{workers} || 1, listen => 'reuseport',
                       http => <<"HTTP", server => <<"SRV");
    gpugate_auth_postgres "$dsn" connections=$o{pgconns};
$redis    gpugate_tunnel_zone 1m recheck=$o{recheck};
    upstream agents {
        gpugate_tunnel queue=8 queue_timeout=500ms;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=30s step_timeout=30s rate=0;
        }
        location = /rated/tunnel {
            gpugate_tunnel_accept ping=30s rate=5 burst=5;
        }
        location /v1/ {
            gpugate_openai on;
            gpugate_model sec-a pool=agents;
            gpugate_model sec-b pool=agents;
            gpugate_model sec-c pool=agents;
            gpugate_model sec-d pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
SRV
}

sub chat {
    my ($ngx, $model) = @_;
    return http_send($ngx->port, 'POST', '/v1/chat/completions',
                     { 'Content-Type' => 'application/json' },
                     '{"model":"' . $model . '","messages":'
                     . '[{"role":"user","content":"hi"}]}');
}

sub closed_within {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + $secs;
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 4096);
        return 1 if !$n;
    }
    return 0;
}

# the model reaches the agent on $s, which answers; the client gets 200
sub served_by {
    my ($ngx, $s, $model) = @_;
    my $c = chat($ngx, $model);
    my $req = read_head($s, 5);
    return 0 unless ($req->{raw} || '') =~ m{^POST /v1/chat/completions};
    print $s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    return http_read($c, 5)->{status} == 200;
}

sub keys_tool {
    my ($redis, @args) = @_;
    my @r = $redis ? ('--redis', "127.0.0.1:$rd") : ();
    my $out = `'$tool' --dsn '$dsn' @r @args 2>&1`;
    return ($? >> 8, $out);
}

sub agent_create {
    my ($name, @args) = @_;
    psql("DELETE FROM agents WHERE name = '$name'");
    my ($rc, $out) = keys_tool(0, 'agent-create', $name, @args);
    my ($token) = $out =~ /^token: (\S+)/m;
    return ($rc, $token, $out);
}

$SIG{PIPE} = 'IGNORE';

# one worker: a request finds the tunnel it is meant for
my $ngx = nginx(workers => 1, redis => 1, recheck => '60s');
my $port = $ngx->port;

# --- 1. allowed_models ----------------------------------------------------

{
    my ($rc, $tok) = agent_create('sec-allow', '--models', 'sec-a,sec-c');
    is($rc, 0, 'agent-create --models sec-a,sec-c');

    for my $adv ('sec-b', 'sec-b, sec-d', 'sec-d,sec-b') {
        my ($s, $r) = tunnel_connect($port, 'sec-allow', $tok,
                                     'X-Gpugate-Models' => $adv);
        ok(!$s && $r->{status} == 403,
           "advertising only models outside the list (\"$adv\"): 403");
        like($r->{body}, qr/"code":"model_not_allowed"/, '... with JSON');
    }
    like($ngx->log, qr/agent "sec-allow" refused: none of the models/,
         '... and logged for the operator');

    # an empty advertisement means "any": it gets the allowed list only
    my ($s, $r) = tunnel_connect($port, 'sec-allow', $tok,
                                 'X-Gpugate-Models' => '');
    is($r->{status}, 101, 'empty advertisement: connected');
    is(http_read(chat($ngx, 'sec-b'), 5)->{status}, 503,
       '... a model outside the list is not routed to it');
    ok(served_by($ngx, $s, 'sec-a'), '... an allowed model is');
    ok(served_by($ngx, $s, 'sec-c'), '... and the other allowed one');
    close $s;

    # a partly allowed advertisement: only the allowed part is routed
    ($s, $r) = tunnel_connect($port, 'sec-allow', $tok,
                              'X-Gpugate-Models' => 'sec-b, sec-a, sec-d');
    is($r->{status}, 101, 'partly allowed advertisement: connected');
    for my $m ('sec-b', 'sec-d') {
        my $res = http_read(chat($ngx, $m), 5);
        is($res->{status}, 503, "... $m (advertised, not allowed) is not "
                                . 'routed to it');
        like($res->{body}, qr/"code":"no_capacity"/, '... no_capacity');
    }
    ok(served_by($ngx, $s, 'sec-a'), '... sec-a (advertised, allowed) is');
    is(http_read(chat($ngx, 'sec-c'), 5)->{status}, 503,
       '... sec-c (allowed, not advertised) is not');
    like($ngx->log, qr/advertises "sec-d", not in its allowed_models/,
         '... the dropped models are logged');
    close $s;

    # an empty list allows nothing, whatever is advertised
    psql("UPDATE agents SET allowed_models = '{}' WHERE name = 'sec-allow'");
    for my $adv ('', 'sec-a') {
        ($s, $r) = tunnel_connect($port, 'sec-allow', $tok,
                                  'X-Gpugate-Models' => $adv);
        is($r->{status}, 403, "allowed_models '{}', advertising \"$adv\": "
                              . '403');
    }

    # a name with a comma (or a space) must not pass for two models
    for my $bad ('{"sec-a,sec-b"}', '{"sec-a sec-b"}', '{sec-a,NULL}') {
        psql("UPDATE agents SET allowed_models = '$bad'"
           . " WHERE name = 'sec-allow'");
        ($s, $r) = tunnel_connect($port, 'sec-allow', $tok,
                                  'X-Gpugate-Models' => 'sec-b');
        ok(!$s && $r->{status} >= 400,
           "malformed allowed_models $bad: refused ($r->{status})");
    }
    like($ngx->log, qr/agent "sec-allow" has malformed allowed_models/,
         '... and logged');

    # NULL stays "any model", as before
    psql("UPDATE agents SET allowed_models = NULL WHERE name = 'sec-allow'");
    ($s, $r) = tunnel_connect($port, 'sec-allow', $tok,
                              'X-Gpugate-Models' => 'sec-d');
    is($r->{status}, 101, 'allowed_models NULL: any model advertised');
    ok(served_by($ngx, $s, 'sec-d'), '... and routed');
    close $s;

    # the key tool checks --models as the router checks model names
    for my $bad ('a b', 'a,,b', ',a', 'a,', 'a"b', 'a\\b', 'a*', "a\tb",
                 "caf\xc3\xa9", 'x' x 257, join(',', ('m' x 100) x 11)) {
        my ($rc2, $tok2, $out) = agent_create('sec-badmodels', '--models',
                                              "'$bad'");
        ok($rc2 != 0 && !$tok2 && $out =~ /invalid --models/,
           'agent-create --models refuses ' . substr($bad, 0, 20));
    }
    is(psql("SELECT count(*) FROM agents WHERE name = 'sec-badmodels'"), 0,
       '... and creates nothing');
}

# --- 2. revocation closes the tunnels -------------------------------------

$ngx->stop;
$ngx = nginx(workers => 2, redis => 1, recheck => '60s');
$port = $ngx->port;

{
    my $tok = make_agent('sec-rev');
    my (%pids, @socks);

    # connections in both workers (reuseport spreads them)
    for (1 .. 40) {
        my ($s, $r) = tunnel_connect($port, 'sec-rev', $tok,
                                     'X-Gpugate-Models' => 'sec-b');
        next unless $s;
        my ($pid) = $r->{headers}{'x-gpugate-worker'} =~ /pid=(\d+)/;
        $pids{$pid}++;
        push @socks, $s;
        last if keys %pids == 2 && @socks >= 4;
    }
    is(scalar keys %pids, 2, 'revoke: the agent has tunnels in both workers');

    # one carries a request
    my $c = chat($ngx, 'sec-b');
    my ($busy) = IO::Select->new(@socks)->can_read(5);
    ok($busy && read_head($busy, 5)->{raw} =~ /^POST/,
       'revoke: one tunnel is busy with a request');

    my $t0 = time;
    my ($rc, $out) = keys_tool(1, 'agent-revoke', 'sec-rev');
    is($rc, 0, 'gpugate-keys agent-revoke (with --redis)') or diag $out;

    my $closed = grep { closed_within($_, 5) } @socks;
    is($closed, scalar @socks, 'every tunnel of the agent closed, in both '
                               . 'workers, the busy one too');
    cmp_ok(time - $t0, '<', 5, '... within seconds (ping is 30s)');
    is(http_read($c, 5)->{status}, 502, '... the cut request gets 502');
    like($ngx->log, qr/invalidation "agent sec-rev" closed \d+ tunnel/,
         '... logged by the workers');

    my ($s, $r) = tunnel_connect($port, 'sec-rev', $tok);
    is($r->{status}, 401, 'revoked agent cannot connect again');
    is(http_read(chat($ngx, 'sec-b'), 5)->{status}, 503,
       'nothing serves its model any more');

    # the message alone (anyone with Redis can publish it) only makes a
    # valid agent handshake again
    my $ok = make_agent('sec-valid');
    my ($v) = tunnel_connect($port, 'sec-valid', $ok,
                             'X-Gpugate-Models' => 'sec-a');
    redis('PUBLISH', 'gpugate:invalidate', 'agent sec-valid');
    ok($v && closed_within($v, 5), 'a published message closes the tunnel '
                                   . 'of a valid agent');
    ($v, $r) = tunnel_connect($port, 'sec-valid', $ok);
    is($r->{status}, 101, '... which connects again at once');
    close $v if $v;

    # a handshake half done when the agent is revoked: its step 1 read the
    # verifier, its step 2 comes after the message's re-check, which found
    # nothing of the agent to close; the tunnel must not live on until the
    # periodic re-check (60 s here)
    my $tok3 = make_agent('sec-rev3');
    my $s3 = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                   Timeout => 5) or die "connect: $!\n";
    my ($r1, $sc) = tunnel_step1($s3, 'sec-rev3');
    is($r1->{status}, 401, 'revoke mid-handshake: step 1 answered');
    $ngx->mark;
    ($rc, $out) = keys_tool(1, 'agent-revoke', 'sec-rev3');
    is($rc, 0, '... the agent revoked before its step 2') or diag $out;
    ok($ngx->wait_log(qr/invalidation "agent sec-rev3" closed 0 tunnel/, 10),
       '... and the message handled (nothing of it to close yet)');
    my ($r2, $proof) = tunnel_step2($s3, $r1, $sc, $tok3,
                                    Upgrade => 'gpugate-tunnel/1',
                                    'X-Gpugate-Models' => 'sec-c');
    ok($r2->{status} != 101 || closed_within($s3, 10),
       "... its step 2 ($r2->{status}): refused, or the tunnel closed at "
       . 'once by the re-check after it');
    is(http_read(chat($ngx, 'sec-c'), 5)->{status}, 503,
       '... and nothing serves its model');
    close $s3;
}

# a revocation whose publish is lost: the re-check finds it

{
    my $ngx2 = nginx(workers => 2, recheck => '1s');
    my $tok = make_agent('sec-rev2');
    # four tunnels, and both workers holding some (a connection lands in
    # whichever worker accepts it): the request finds one wherever it
    # arrives
    my (@socks, %slot);
    for (1 .. 40) {
        my ($s, $r) = tunnel_connect($ngx2->port, 'sec-rev2', $tok,
                                     'X-Gpugate-Models' => 'sec-c');
        next unless $s;
        push @socks, $s;
        my ($w) = ($r->{headers}{'x-gpugate-worker'} // '') =~ /slot=(\d+)/;
        $slot{$w} = 1 if defined $w;
        last if @socks >= 4 && keys %slot == 2;
    }
    cmp_ok(scalar @socks, '>=', 4, 'recheck: four tunnels');
    is(scalar keys %slot, 2, 'recheck: in both workers');

    # still valid: the re-check leaves them alone.  Each worker logs a
    # re-check as it starts one, and starts the next only once the last
    # was answered: two logged by each worker since now, one was answered
    $ngx2->mark;
    wait_until(15, sub {
        my %n;
        $n{$_}++ for $ngx2->log
            =~ /\[debug\] (\d+)#\d+: .*gpugate tunnel: re-checking/g;
        2 == grep { $_ >= 2 } values %n;
    }) or diag 'the re-checks were not seen in both workers';
    ok(!IO::Select->new(@socks)->can_read(0),
       'recheck: a valid agent keeps its tunnels');
    my $c = chat($ngx2, 'sec-c');
    my ($s) = IO::Select->new(@socks)->can_read(5);
    ok($s && read_head($s, 5)->{raw} =~ /^POST/, '... and gets requests');
    print $s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    is(http_read($c, 5)->{status}, 200, '... served');

    # Redis does not answer: the tool says so (exit 3), the revocation
    # stands in PostgreSQL
    my $dead = free_port();
    my $out = `'$tool' --dsn '$dsn' --redis 127.0.0.1:$dead --timeout 10 agent-revoke sec-rev2 2>&1`;
    is($? >> 8, 3, 'agent-revoke with Redis down: exit 3');
    like($out, qr/revoked in PostgreSQL, but the Redis publish failed.*recheck/s,
         '... saying the tunnels close within the recheck period');
    my $t0 = time;
    my $closed = grep { closed_within($_, 8) } @socks;
    is($closed, scalar @socks, 'revoked without a publish: tunnels closed '
                               . 'by the re-check');
    cmp_ok(time - $t0, '<', 8, '... within recheck= and a margin');
    like($ngx2->log, qr/re-check: agent id \d+ is revoked or gone/,
         '... logged');
    $ngx2->stop;
}

# --- 6. step-1 floods ---------------------------------------------------------

{
    my $ngx3 = nginx(workers => 1, recheck => '60s', pgconns => 16);
    my $p3 = $ngx3->port;
    my $tok = make_agent('sec-flood');
    my $n = 0;

    sub step1_on {
        my ($s, $path) = @_;
        my ($r) = tunnel_step1($s, 'nobody-' . $n++, $path);
        return $r->{status};
    }

    # "per" step 1 requests pipelined on each socket, then their answers
    # read: the sockets are handled at once, the flood takes little time
    sub flood {
        my ($socks, $per, $st) = @_;
        for my $s (@$socks) {
            my $req = '';
            for (1 .. $per) {
                my $first = 'n,,n=nobody-' . $n++ . ',r=' . ('x' x 24);
                $req .= "GET /gpugate/tunnel HTTP/1.1\r\nHost: localhost\r\n"
                      . 'Authorization: SCRAM-SHA-256 data='
                      . MIME::Base64::encode_base64($first, '') . "\r\n\r\n";
            }
            print $s $req;
        }
        for my $s (@$socks) {
            $st->{$_}++ for read_answers($s, $per);
        }
    }

    # the statuses of "count" answers, read in large chunks
    sub read_answers {
        my ($s, $count) = @_;
        my ($buf, @status) = ('');
        my $sel = IO::Select->new($s);
        my $deadline = time + 20;
        while (@status < $count) {
            if ($buf =~ /\A(HTTP\/1\.1 (\d+)[^\n]*\n(?:[^\r]+\r\n)*?\r\n)/) {
                my ($head, $code) = ($1, $2);
                my ($len) = $head =~ /^Content-Length: (\d+)/mi;
                if (length($buf) >= length($head) + ($len || 0)) {
                    substr($buf, 0, length($head) + ($len || 0), '');
                    push @status, $code;
                    next;
                }
            }
            last if time > $deadline || !$sel->can_read($deadline - time);
            sysread($s, $buf, 65536, length $buf) or last;
        }
        return @status, ('none') x ($count - @status);
    }

    # four step 1 on each of 260 connections, each closed afterwards
    my %st;
    my @socks = map {
        IO::Socket::INET->new("127.0.0.1:$p3") or die
    } 1 .. 260;
    flood(\@socks, 4, \%st);
    close $_ for @socks;
    is($st{401}, 1040, 'flood, connections closed: 1040 challenges');

    my ($s, $r) = tunnel_connect($p3, 'sec-flood', $tok);
    is($r->{status}, 101, '... a real agent still connects');
    close $s if $s;

    # 1040 step 1 on two kept-alive connections: one pending each
    %st = ();
    my @k = map { IO::Socket::INET->new("127.0.0.1:$p3") or die } 1 .. 2;
    flood(\@k, 40, \%st) for 1 .. 13;
    is($st{401}, 1040, 'flood on kept-alive connections: never '
                       . 'handshake_busy');
    ($s, $r) = tunnel_connect($p3, 'sec-flood', $tok);
    is($r->{status}, 101, '... a real agent still connects');
    close $s if $s;
    close $_ for @k;

    # connections kept open, one unknown name each: the last quarter of
    # the pending places stays for agents the verifier cache knows
    my @open = map {
        IO::Socket::INET->new("127.0.0.1:$p3") or die
    } 1 .. 800;
    %st = ();
    flood(\@open, 1, \%st);
    is($st{401}, 768, 'connections kept open: unknown names get 768 places');
    is($st{503}, 32, '... then 503 handshake_busy');
    like($ngx3->log, qr/768 handshakes pending, refusing "nobody-\d+" \(not a cached/,
         '... logged');
    ($s, $r) = tunnel_connect($p3, 'sec-flood', $tok);
    is($r->{status}, 101, '... a known agent still connects');
    close $_ for @open;
    close $s if $s;

    # closed connections give their places back at once
    ok(wait_until(10, sub {
        my $o = IO::Socket::INET->new("127.0.0.1:$p3") or return 0;
        step1_on($o) == 401;
    }), 'closed connections give their places back');

    # rate= and burst= per client address
    %st = ();
    my $retry;
    for (1 .. 20) {
        my $o = IO::Socket::INET->new("127.0.0.1:$p3") or die;
        my ($r1) = tunnel_step1($o, 'nobody-' . $n++, '/rated/tunnel');
        $st{ $r1->{status} }++;
        if ($r1->{status} == 429) {
            $retry = $r1->{headers}{'retry-after'};
            like($r1->{body}, qr/"code":"handshake_rate"/, 'rate: 429 JSON')
                if $st{429} == 1;
        }
    }
    cmp_ok($st{401} || 0, '>=', 5, 'rate=5 burst=5: the burst passes');
    cmp_ok($st{429} || 0, '>=', 5, '... the rest of 20 at once gets 429');
    is($retry, 1, '... with Retry-After');
    like($ngx3->log, qr/handshakes from 127\.0\.0\.1 above rate=5 burst=5/,
         '... logged with the address');
    ok(wait_until(5, sub {
        my $o = IO::Socket::INET->new("127.0.0.1:$p3") or return 0;
        my ($r1) = tunnel_step1($o, 'nobody-' . $n++, '/rated/tunnel');
        $r1->{status} == 401;
    }), '... and handshakes pass again a moment later');
    ($s, $r) = tunnel_connect($p3, 'sec-flood', $tok);
    is($r->{status}, 101, 'another location without rate= is not limited');

    unlike($ngx3->log, qr/\[(alert|emerg)\]|signal \d+/, 'no alerts');
    $ngx3->stop;
}

unlike($ngx->log, qr/\[(alert|emerg)\]|signal \d+/, 'no alerts, no crash');

done_testing();
