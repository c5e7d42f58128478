package StallServer;

# A TCP server for the runner's self-tests that answers the start of an
# HTTP response and then never finishes it, so that a client timeout with
# --- abort can be checked on a partial body.  It runs in a forked child
# (killed at the end of the test file, and by an alarm as a safety net).
#
#   my $port = StallServer::start();   # also sets $ENV{TEST_NGINX_STALL_PORT}
#
# GET /length  -> "Content-Length: 1000" and the 8 bytes "partial-"
# GET /chunked -> "Transfer-Encoding: chunked" and one chunk "partial-"

use strict;
use warnings;

use IO::Socket::INET ();
use POSIX ();

my $Pid;

sub start {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Listen => 16,
                                       Proto => 'tcp', ReuseAddr => 1)
        or die "StallServer: cannot listen: $!\n";
    my $port = $listen->sockport;

    $Pid = fork // die "StallServer: fork: $!\n";
    if ($Pid == 0) {
        alarm 120;
        my @held;               # the stalled connections, never answered
        while (my $c = $listen->accept) {
            my $req = '';
            while ($req !~ /\r\n\r\n/) {
                my $n = sysread($c, $req, 4096, length $req);
                last unless $n;
            }
            my $head = $req =~ m{^GET /chunked}
                ? "Transfer-Encoding: chunked\r\n\r\n8\r\npartial-\r\n"
                : "Content-Length: 1000\r\n\r\npartial-";
            syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     . $head);
            push @held, $c;
        }
        POSIX::_exit(0);
    }

    close $listen;
    $ENV{TEST_NGINX_STALL_PORT} = $port;
    return $port;
}

END {
    local $?;
    if ($Pid) {
        kill 'KILL', $Pid;
        waitpid($Pid, 0);
    }
}

1;
