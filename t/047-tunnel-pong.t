# nginx reads an agent's answer to a ping with the core's HTTP/1.x head
# parser (modules/core/gg_http_parse.c), not a string search: a scripted
# agent answers pings with heads that a search for "HTTP/1.1 204" and an
# empty line took for a pong (a four-digit status, a status run into its
# reason, fields with control bytes or bad names, a line without a colon,
# obs-fold) and each tunnel is closed at once with one log line, never
# pinged again.  Well-formed pongs, also in pieces, keep the tunnel, and
# their X-Gpugate-Load is read whatever the field's case and spaces.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Select;
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request wait_until env_or_skip
                   make_agent tunnel_connect read_head);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $token = make_agent('t-pong');

my $ngx = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=8 queue_timeout=1s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=200ms ping_timeout=5s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
SRV

my $port = $ngx->port;

# a parked tunnel, and the first ping nginx sends down it
sub pinged_tunnel {
    my ($s, $r) = tunnel_connect($port, 't-pong', $token,
                                 'X-Gpugate-Models' => 'mock-model');
    die "handshake: $r->{status}\n" unless $s;
    my $ping = read_head($s, 5);
    die "no ping\n" unless ($ping->{raw} // '') =~ m{^GET /gpugate/ping };
    return $s;
}

# what comes next on the tunnel: "eof" (closed with nothing before it),
# "ping" (parked again and pinged), or what else it was
sub next_on {
    my ($s) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + 10;
    my $got = '';
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 4096);
        return $got eq '' ? 'eof' : "bytes then eof: $got" unless $n;
        $got .= $buf;
        return 'ping' if $got =~ m{^GET /gpugate/ping HTTP/1\.1\r\n.*\r\n\r\n}s;
    }
    return "nothing in 10 s: $got";
}

# --- what is not a pong closes the tunnel --------------------------------

my @bad = (
    [ 'four-digit status',       "HTTP/1.1 2040 No Content\r\n\r\n" ],
    [ 'status run into reason',  "HTTP/1.1 204x\r\n\r\n" ],
    [ 'control byte in a name',  "HTTP/1.1 204 No Content\r\n"
                                 . "X-Gpugate-Load\x01: queue=1\r\n\r\n" ],
    [ 'space before the colon',  "HTTP/1.1 204 No Content\r\n"
                                 . "X-Gpugate-Load : queue=1\r\n\r\n" ],
    [ 'DEL in a value',          "HTTP/1.1 204 No Content\r\n"
                                 . "X-Gpugate-Inflight: 0\x7f\r\n\r\n" ],
    [ 'NUL in a value',          "HTTP/1.1 204 No Content\r\n"
                                 . "X-Gpugate-Inflight: \x00\r\n\r\n" ],
    [ 'line without a colon',    "HTTP/1.1 204 No Content\r\n"
                                 . "X-Gpugate-Inflight 0\r\n\r\n" ],
    [ 'obs-fold',                "HTTP/1.1 204 No Content\r\n"
                                 . "X-Gpugate-Inflight: 0\r\n 1\r\n\r\n" ],
    # refused before as well: the class, not only the new cases
    [ 'status 200',              "HTTP/1.1 200 OK\r\n\r\n" ],
    [ 'HTTP/1.0',                "HTTP/1.0 204 No Content\r\n\r\n" ],
    [ 'bytes after the head',    "HTTP/1.1 204 No Content\r\n\r\nX" ],
);

for my $case (@bad) {
    my ($what, $answer) = @$case;
    my $s = pinged_tunnel();
    $ngx->mark;
    print $s $answer;
    is(next_on($s), 'eof', "$what: tunnel closed, not parked again");
    ok($ngx->wait_log(qr/invalid answer to a ping/, 5),
       "$what: logged as an invalid answer to a ping");
    close $s;
}

# --- pongs keep the tunnel -----------------------------------------------

my @good = (
    [ 'bare 204',               [ "HTTP/1.1 204 No Content\r\n\r\n" ], undef ],
    [ 'no reason phrase',       [ "HTTP/1.1 204 \r\n\r\n" ], undef ],
    [ 'load, lower case',       [ "HTTP/1.1 204 No Content\r\n"
                                  . "x-gpugate-inflight: 0\r\n"
                                  . "x-gpugate-load: queue=7\r\n\r\n" ], 7 ],
    [ 'load, spaces around',    [ "HTTP/1.1 204 No Content\r\n"
                                  . "X-GPUGATE-LOAD:   queue=9 \t\r\n\r\n" ],
                                9 ],
    [ 'in three pieces',        [ "HTTP/1.1 20", "4 No Content\r\nX-Gpugate-",
                                  "Load: queue=11\r\n\r\n" ], 11 ],
);

for my $case (@good) {
    my ($what, $pieces, $queue) = @$case;
    my $s = pinged_tunnel();
    $ngx->mark;
    for my $p (@$pieces) {
        print $s $p;
        $s->flush;
        sleep 0.05 if @$pieces > 1;   # separate reads, not an assertion
    }
    is(next_on($s), 'ping', "$what: parked again and pinged");
    unlike($ngx->log, qr/invalid answer to a ping/, "$what: nothing logged");
    if (defined $queue) {
        ok(wait_until(5, sub {
               my $r = http_request($port, 'GET', '/gpugate/status');
               ($r->{body} // '') =~ /"name":"t-pong"[^}]*"queue":$queue\b/
           }), "$what: queue=$queue read from the pong");
    }
    close $s;
}

done_testing();
