# Chunked answers relayed by the agent, byte for byte: the agent passes
# the runtime's chunks on as they come and decodes them only to find
# where the answer ends (ga_relay.c).  A scripted runtime sends chunks of
# many sizes, written in pieces that split chunk sizes, extensions, data
# and CRLFs across reads, with and without trailers; bytes past the last
# chunk (the connection is out of step: not reused); and malformed chunk
# framing at several places (the tunnel is closed, the client never sees a
# complete answer, and the next request is answered).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);

use GpugateTest qw(start_nginx http_request wait_until env_or_skip
                   free_port make_agent);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = "$root/build/bin/gpugate-agent";
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-chunked-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @kids;

sub slurp { open my $f, '<', $_[0] or return ''; local $/; <$f> }

# the body of answer "n": deterministic bytes, every value 0..255
sub body_of {
    my ($sizes) = @_;
    my @data;
    my $k = 0;
    for my $len (@$sizes) {
        push @data, join '', map { chr(($k++ * 7 + 3) % 256) } 1 .. $len;
    }
    return @data;
}

# chunk sizes: around the agent's 16 KiB reads, and small ones for the
# answers written a few bytes at a time
my @large = (1, 2, 15, 16, 255, 4096, 16383, 16384, 16385, 20000, 3);
my @small = (1, 2, 15, 16, 255, 3);

# The answer for mode "piece:N[:trailer]": chunks (upper- and lower-case
# hex, a chunk extension on some), written N bytes at a time, the large
# sizes from 1,000 bytes a piece up.
sub chunked_answer {
    my ($sizes, $trailer) = @_;
    my @data = body_of($sizes);
    my $out = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n";
    for my $i (0 .. $#data) {
        my $hex = sprintf($i % 2 ? '%X' : '%x', length $data[$i]);
        $hex .= ';ext=1' if $i % 3 == 0;
        $out .= "$hex\r\n$data[$i]\r\n";
    }
    $out .= $trailer ? "0\r\nX-Trailer: yes\r\n\r\n" : "0\r\n\r\n";
    return ($out, join '', @data);
}

# malformed framings: each after a good first chunk
my %bad = (
    'bad-size'  => "5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n",
    'bad-crlf'  => "5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",
    'bad-huge'  => "5\r\nhello\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
    'bad-space' => "5\r\nhello\r\n 3\r\nabc\r\n0\r\n\r\n",
);

# A scripted runtime: "X-Fake" chooses the answer; answers carry
# "X-Conn: N" (its connection number).
my $fake_port = free_port();
my $fake_pid = fork // die;
if (!$fake_pid) {
    # the agent closes a connection whose answer it found malformed while
    # the rest is still being written: a write then must fail, not kill
    # the runtime with SIGPIPE (every later request would find it gone)
    $SIG{PIPE} = 'IGNORE';
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$fake_port",
                                  Listen => 64, ReuseAddr => 1) or exit 1;
    my $sel = IO::Select->new($l);
    my (%buf, %id);
    my $conns = 0;
    while (1) {
        for my $s ($sel->can_read) {
            if ($s == $l) {
                my $c = $l->accept or next;
                $id{$c} = ++$conns;
                $buf{$c} = '';
                $sel->add($c);
                next;
            }
            my $n = sysread($s, my $chunk, 65536);
            if (!$n) {
                $sel->remove($s);
                close $s;
                next;
            }
            $buf{$s} .= $chunk;
            while ($buf{$s} =~ /\A(.*?\r\n\r\n)/s) {
                my $head = $1;
                my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
                $len //= 0;
                last if length($buf{$s}) < length($head) + $len;
                substr($buf{$s}, 0, length($head) + $len) = '';
                my ($mode) = $head =~ /^x-fake:\s*(\S+)/mi;
                $mode //= 'piece:65536';
                my $conn = "X-Conn: $id{$s}\r\n";
                my ($out, $piece);
                if ($mode =~ /^piece:(\d+)(:trailer)?$/) {
                    $piece = $1;
                    ($out) = chunked_answer($piece >= 1000 ? \@large
                                                           : \@small, $2);
                } elsif ($mode eq 'extra') {
                    ($out) = chunked_answer(\@large, 0);
                    $out .= "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                          . "stray";
                    $piece = 65536;
                } else {
                    $out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                         . "\r\n\r\n" . $bad{$mode};
                    $piece = 7;
                }
                $out =~ s/\r\n/\r\n$conn/;
                # pieces apart in time, so that the agent reads them apart
                while (length $out) {
                    syswrite($s, substr($out, 0, $piece, ''));
                    sleep 0.002 if length $out && $piece < 65536;
                }
            }
        }
    }
}
push @kids, $fake_pid;

wait_until(5, sub { IO::Socket::INET->new("127.0.0.1:$fake_port") })
    or BAIL_OUT('scripted runtime did not start');

my $token = make_agent('ck-fake');
open my $tf, '>', "$dir/ck.token" or die;
print $tf "$token\n";
close $tf;
chmod 0600, "$dir/ck.token";

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=30s;
        }
        location /v1/ {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://agents;
        }
SRV

my $port = $ngx->port;
my $agent_log = "$dir/agent.log";
my $agent_pid = fork // die;
if (!$agent_pid) {
    open STDERR, '>', $agent_log or die;
    exec $agent_bin, '--gateway', "http://127.0.0.1:$port/gpugate/tunnel",
         '--name', 'ck-fake', '--token-file', "$dir/ck.token",
         '--runtime', "http://127.0.0.1:$fake_port", '--models', 'fake',
         '--spare', 2, '--log-level', 'debug';
    exit 1;
}
push @kids, $agent_pid;

sub get {
    my ($mode) = @_;
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json',
                          'X-Fake' => $mode },
                        '{"model":"fake","messages":[]}', 15);
}

ok(wait_until(15, sub { get('piece:65536')->{status} == 200 }),
   'agent up, a chunked answer relayed')
    or diag slurp($agent_log);

my (undef, $want) = chunked_answer(\@large, 0);
my (undef, $want_small) = chunked_answer(\@small, 0);

for my $mode (qw(piece:65536 piece:1 piece:2 piece:3 piece:5 piece:7
                 piece:1000 piece:4096 piece:1:trailer piece:6:trailer
                 piece:1000:trailer))
{
    my ($n) = $mode =~ /^piece:(\d+)/;
    my $want = $n >= 1000 ? $want : $want_small;
    my $r = get($mode);
    ok($r->{status} == 200 && $r->{done} && $r->{body} eq $want
       && $r->{raw} =~ /\r\n0\r\n\r\n\z/,
       "$mode: every byte of " . length($want) . ' passed on, answer ended')
        or diag "status $r->{status}, " . length($r->{body}) . ' bytes';
}

# bytes past the last chunk: answered, and the connection is not reused
{
    my $r = get('extra');
    is($r->{status}, 200, 'extra bytes after the last chunk: 200');
    is($r->{body}, $want, '... the answer exactly, without the stray bytes');
    my ($c1) = ($r->{headers}{'x-conn'} // '') =~ /(\d+)/;
    my $r2 = get('piece:65536');
    my ($c2) = ($r2->{headers}{'x-conn'} // '') =~ /(\d+)/;
    ok($r2->{status} == 200 && $r2->{body} eq $want,
       '... the next request answered');
    ok(defined $c1 && defined $c2 && $c2 != $c1,
       '... on another runtime connection');
}

# malformed framing: the tunnel closes, the client never gets an end
sub malformed_seen {
    my @m = slurp($agent_log) =~ /malformed chunked answer from the runtime/g;
    return scalar @m;
}

for my $mode (sort keys %bad) {
    my $seen = malformed_seen();
    my $r = get($mode);
    unlike($r->{raw}, qr/\r\n0\r\n\r\n\z/,
           "$mode: the client does not see a complete answer");
    ok(wait_until(10, sub { malformed_seen() == $seen + 1 }),
       "$mode: the agent says why it closed the tunnel");
    my $r2 = get('piece:65536');
    ok($r2->{status} == 200 && $r2->{body} eq $want,
       "$mode: the next request is answered in full");
}

kill 'TERM', @kids;
waitpid($_, 0) for @kids;

done_testing();
