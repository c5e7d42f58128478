# The agent's side of the security and reliability audit (issues 15 and
# 25), against a real nginx, real agents and mock runtimes:
#
# - a request nginx accepts but the agent does not (a control byte in a
#   header value, a header name outside tchar) gets a 400 on the same
#   tunnel; what nginx forwards (any number of fields, a head far over
#   64 KB) is relayed; a flood of refused requests from one client costs
#   another client nothing: every one of its requests succeeds, and the
#   agent neither loses tunnels nor backs off;
# - a runtime that sends unasked bytes on a kept-alive connection (a stray
#   second response, one byte, a lone status line) does not get them read
#   as the next request's answer: the agent checks a pooled connection
#   before reusing it (the stray is made to sit unread at that moment by
#   stopping the agent while it arrives);
# - a runtime that stops listening behind one of two agents costs no
#   client an error: requests the agent cannot hand to its runtime (or
#   that the runtime drops before answering) go back to nginx, which
#   retries them on the other agent, and the agent withdraws at once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Test::More;

use GpugateTest qw(start_nginx http_request http_send http_read wait_until
                   env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent slurp idle_of
                     wait_parked mock_metric mock_served);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-sec-agent-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my (%mock, %mport);
for my $m (qw(a b)) {
    $mock{$m} = start_mock(dir => $dir, name => $m, models => 'sec-model');
    $mport{$m} = $mock{$m}->port;
}

# ignore_invalid_headers off: names outside tchar reach the agent too;
# large_client_header_buffers: heads far beyond the agent's old 64 KB
my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=256 queue_timeout=20s;
    }
    gpugate_model sec-* pool=agents;
    large_client_header_buffers 8 64k;
    ignore_invalid_headers off;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=60s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

# agent(NAME, MOCK, EXTRA CONFIG): returns its pid (its log is
# DIR/NAME.log)
sub agent {
    my ($name, $m, $extra) = @_;
    return start_agent(dir => $dir, name => $name, port => $port,
                       conf => "runtime = http://127.0.0.1:$mport{$m}\n"
                             . "spare = 12\ncapacity = 64\n"
                             . "idle_timeout = 300\nlog_level = debug\n"
                             . ($extra // ''))->pid;
}

# one worker, one runtime: the agent's parked tunnels
sub idle { idle_of($port, $_[0]) }

sub served { mock_served($mport{$_[0]}, $_[1]) }

sub strays { mock_metric($mport{$_[0]}, 'gpugate_mock_stray_total') // 0 }

my %bodies = (
    '/v1/chat/completions' => '{"model":"sec-model","max_tokens":2,'
                              . '"messages":[{"role":"user","content":"hi"}]}',
    '/v1/completions' => '{"model":"sec-model","max_tokens":2,'
                         . '"prompt":"hi"}',
    '/v1/embeddings' => '{"model":"sec-model","input":"hi"}',
);
my %object = ('/v1/chat/completions' => 'chat.completion',
              '/v1/completions' => 'text_completion',
              '/v1/embeddings' => 'list');
my @paths = sort keys %bodies;

# raw(HEAD LINES, PATH): a request with exactly these header lines
sub raw {
    my ($lines, $path, $secs) = @_;
    $path //= '/v1/chat/completions';
    my $body = $bodies{$path};
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or die "connect: $!\n";
    print $s "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "Content-Type: application/json\r\n$lines"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return http_read($s, $secs // 20);
}

my $a_pid = agent('sec-a', 'a', "load_interval = 3600\n");
ok(wait_parked($port, 'sec-a', 4, 10), 'agent a: tunnels up')
    or diag(slurp("$dir/sec-a.log"));

# --- issue 15, item 3: what nginx forwards, the agent takes -----------------

{
    my (@bad, @wrong);

    # every control byte nginx 1.22 lets through in a value
    for my $c (1 .. 8, 11, 12, 14 .. 31, 127) {
        for my $path (@paths) {
            my $v = sprintf 'a%cb', $c;
            my $r = raw("X-Note: $v\r\n", $path);
            push @bad, sprintf('0x%02x %s', $c, $path);
            push @wrong, sprintf('0x%02x %s: %d %s', $c, $path,
                                 $r->{status}, $r->{body})
                unless $r->{status} == 400
                       && $r->{body} =~ /"type":"invalid_request_error"/
                       && $r->{body} =~ /"code":"invalid_header"/;
        }
    }

    # names nginx passes on with ignore_invalid_headers off
    for my $name ('X(Y)', 'X/Y', "X\x80Y", 'X"Y', 'X{Y}') {
        my $r = raw("$name: 1\r\n");
        push @bad, $name;
        push @wrong, "name $name: $r->{status}" unless $r->{status} == 400;
    }

    is(scalar @wrong, 0, scalar(@bad) . ' requests with a control byte in '
       . 'a value or a name outside tchar, on three paths: 400 '
       . 'invalid_header from the agent') or diag(join "\n", @wrong[0 .. 9]);
}

{
    # Debian's nginx 1.22.1 takes up to 1,000 header lines (no limit
    # upstream); the agent sets none: 990 here and 4 of the request's own
    my @wrong;
    for my $n (65, 300, 990) {
        for my $path (@paths) {
            my $h = join '', map { "X-H$_: v$_\r\n" } 1 .. $n;
            my $r = raw($h, $path);
            push @wrong, "$n fields $path: $r->{status} $r->{body}"
                unless $r->{status} == 200
                       && $r->{body} =~ /"object":"$object{$path}"/;
        }
    }
    is(scalar @wrong, 0, '65, 300 and 990 header fields on three paths: '
       . 'relayed and answered') or diag(join "\n", @wrong);

    # ~240 KB of head (nginx here takes up to 8 x 64k), values with
    # obs-text and tabs, which nginx and the RFC allow
    my $h = join '', map { "X-Big$_: " . ("\x80\tz" x 20000) . "\r\n" } 1 .. 4;
    my $r = raw($h);
    is($r->{status}, 200, 'a 240 KB head with obs-text and tabs: relayed')
        or diag($r->{status}, ' ', substr($r->{body}, 0, 300));
}

my $log = slurp("$dir/sec-a.log");
unlike($log, qr/closed a new tunnel at once|next dial in/,
       'no refused request counted as a tunnel failure, no backoff');
like($log, qr/request refused \(400\): byte 0x01 at offset \d+ of its head/,
     'the operator log names the byte and where it was');

# one client floods refused requests from 8 processes; another's requests
# all succeed meanwhile (counted, not timed)
{
    my @flood;
    my $stop = "$dir/stop-flood";
    for my $i (1 .. 8) {
        my $pid = fork // die;
        if (!$pid) {
            my $n = 0;
            my $c = 1 + $i % 20;
            while (!-e $stop) {
                my $r = raw(sprintf("X-Evil: %c\r\n", $c), $paths[$n % 3], 10);
                $n++ if $r->{status} == 400;
            }
            open my $f, '>', "$dir/flood-$i" or die;
            print $f $n;
            close $f;
            POSIX::_exit(0);
        }
        push @flood, $pid;
    }

    my ($ok, $fail) = (0, 0);
    my %st;
    for my $k (1 .. 150) {
        my $path = $paths[$k % 3];
        my $r = raw("X-Tenant: good\r\n", $path);
        if ($r->{status} == 200 && $r->{body} =~ /"object":"$object{$path}"/) {
            $ok++;
        } else {
            $fail++;
            $st{$r->{status}}++;
        }
    }

    open my $f, '>', $stop or die;
    close $f;
    waitpid $_, 0 for @flood;
    my $refused = 0;
    $refused += slurp("$dir/flood-$_") || 0 for 1 .. 8;

    is("$ok/$fail", '150/0', "during a flood of $refused refused requests "
       . 'from 8 processes, another client\'s 150 requests all succeed')
        or diag(explain \%st);
    ok($refused >= 100, '... and the flood was one (each flood request '
       . 'got its 400)');
    ok(idle('sec-a') >= 1, '... the agent still holds its tunnels');
    unlike(slurp("$dir/sec-a.log"),
           qr/closed a new tunnel at once|next dial in/,
           '... and never backed off');
}

# --- issue 15, item 9: a stray runtime response is not the next answer -----

{
    my @wrong;
    my $round = 0;
    for my $kind (qw(response byte head)) {
        for my $path (@paths) {
            $round++;
            my $before = strays('a');
            my $r = raw("X-Mock-Stray-Ms: 700\r\nX-Mock-Stray-Kind: $kind\r\n",
                        $path);
            if ($r->{status} != 200) {
                push @wrong, "$kind $path: first request $r->{status}";
                next;
            }

            # the agent stopped: the next request and then the stray
            # both wait unread, the request first
            kill 'STOP', $a_pid;
            my $next = $paths[$round % 3];
            my $s = http_send($port, 'POST', $next,
                              { 'Content-Type' => 'application/json' },
                              $bodies{$next});
            my $sent = wait_until(10, sub { strays('a') > $before });
            kill 'CONT', $a_pid;

            my $n = http_read($s, 20);
            push @wrong, "$kind $path -> $next: stray not sent" unless $sent;
            push @wrong, "$kind $path -> $next: $n->{status} "
                         . substr($n->{body}, 0, 200)
                unless $n->{status} == 200
                       && $n->{body} =~ /"object":"$object{$next}"/
                       && $n->{body} !~ /STRAY/;
        }
    }
    is(scalar @wrong, 0, 'stray second response, stray byte, stray status '
       . 'line after three kinds of answer: never read as the next answer')
        or diag(join "\n", @wrong);
    like(slurp("$dir/sec-a.log"),
         qr/sent unsolicited bytes on an idle kept-alive connection \(first 0x48\)/,
         '... the operator log says what came');

    my @ok = map { raw('', $_)->{status} } @paths;
    is("@ok", '200 200 200', '... and the agent serves on');
}

# --- issue 25, item 3: a runtime stops behind one of two agents -------------

# (a retry cannot wait for a tunnel in nginx: "spare" leaves the other
# agent idle tunnels enough for the requests sent back at once)

my $b_pid = agent('sec-b', 'b');
ok(wait_until(20, sub { idle('sec-b') >= 12 && idle('sec-a') >= 12 }),
   'agent b: tunnels up, next to a');

{
    # requests in flight on both agents when a's runtime dies
    my @slow = map {
        http_send($port, 'POST', '/v1/chat/completions',
                  { 'Content-Type' => 'application/json',
                    'X-Mock-TTFT-Ms' => 1500 },
                  $bodies{'/v1/chat/completions'})
    } 1 .. 6;
    ok(wait_until(10, sub {
           (mock_metric($mport{a}, 'gpugate_mock_requests_in_flight')
            // 0) >= 1
       }), 'requests in flight on agent a');

    $mock{a}->stop('KILL');

    my $before = served('b', '/v1/chat/completions')
               + served('b', '/v1/completions')
               + served('b', '/v1/embeddings');
    my (%st, @bad);
    for my $k (1 .. 50) {
        my $path = $paths[$k % 3];
        my $r = raw('', $path);
        $st{$r->{status}}++;
        push @bad, "$k $path: $r->{status} $r->{body}"
            unless $r->{status} == 200;
    }
    for my $s (@slow) {
        my $r = http_read($s, 20);
        $st{$r->{status}}++;
        push @bad, "in flight: $r->{status} $r->{body}"
            unless $r->{status} == 200;
    }
    is(scalar @bad, 0, 'runtime behind agent a killed: 0 client errors over '
       . '50 requests and 6 in flight') or diag(explain(\%st), @bad[0 .. 4]);

    my $after = served('b', '/v1/chat/completions')
              + served('b', '/v1/completions')
              + served('b', '/v1/embeddings');
    ok($after - $before >= 50, '... served by agent b') or diag($after - $before);
    my $alog = slurp("$dir/sec-a.log");
    like($alog, qr/runtime "default" \(127\.0\.0\.1:\d+\) stopped listening/,
         '... agent a withdrew');
    like($alog, qr/goes back to the gateway for another agent/,
         '... after sending the requests it could not serve back');
    ok(wait_until(5, sub { idle('sec-a') == 0 }),
       '... and holds no idle tunnel');
}

done_testing();
