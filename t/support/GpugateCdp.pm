package GpugateCdp;

# Headless chromium driven over the DevTools protocol, for the console
# tests: a small WebSocket client (RFC 6455 client frames, masked), the
# protocol's calls, and JavaScript evaluated in the page.  Used by
# t/097-console-browser.t and t/099-console-priority.t.
#
#   my $c = cdp_start($chromium, $dir);    # the page's client
#   cdp($c, 'Page.navigate', { url => ... });
#   js($c, 'EXPR'); js_until($c, SECS, 'EXPR');
#   screenshot($c, FILE, 'SELECTOR');
#   cdp_stop($c);
#
# Dialogs: a confirm is accepted, any other is dismissed and recorded in
# $c->{alerts}; script exceptions and console errors go to $c->{errors}.
# A chromium still running when the test ends (it died before cdp_stop)
# is ended then.

use strict;
use warnings;

use Digest::SHA ();
use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();
use Test::More ();
use Time::HiRes qw(time);

use GpugateTest qw(http_request wait_until);

our @EXPORT_OK = qw(cdp_start cdp_stop cdp cdp_drain_events js js_until
                    screenshot);

my $json = JSON::PP->new->utf8->canonical;

# the chromiums started and not yet stopped, for the END below; only the
# process that loaded this module ends them (a forked child runs END too)
my %browsers;
my $owner = $$;


sub ws_connect {
    my ($url) = @_;
    my ($host, $path) = $url =~ m{^ws://([^/]+)(/.*)$} or die "bad $url\n";
    my $s = IO::Socket::INET->new(PeerAddr => $host, Timeout => 5)
        or die "connect $host: $!\n";
    binmode $s;
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    print $s "GET $path HTTP/1.1\r\nHost: $host\r\nUpgrade: websocket\r\n"
           . "Connection: Upgrade\r\nSec-WebSocket-Key: $key\r\n"
           . "Sec-WebSocket-Version: 13\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        sysread($s, $head, 1, length $head) or die "ws: closed\n";
    }
    my $want = encode_base64(Digest::SHA::sha1(
        $key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
    $head =~ m{^HTTP/1\.1 101} && $head =~ /Sec-WebSocket-Accept: \Q$want\E/i
        or die "ws: no upgrade: $head\n";
    return { s => $s, id => 0, events => [], alerts => [], errors => [] };
}

sub ws_send {
    my ($c, $text) = @_;
    my $len = length $text;
    my $hdr = chr(0x81);
    $hdr .= $len < 126 ? chr(0x80 | $len)
          : $len < 65536 ? chr(0x80 | 126) . pack('n', $len)
          : chr(0x80 | 127) . pack('Q>', $len);
    my $mask = join '', map { chr int rand 256 } 1 .. 4;
    my $body = $text ^ (substr($mask x (int($len / 4) + 1), 0, $len));
    my $out = $hdr . $mask . $body;
    while (length $out) {
        my $n = syswrite($c->{s}, $out) // die "ws write: $!\n";
        substr($out, 0, $n) = '';
    }
}

sub ws_read_n {
    my ($c, $n, $deadline) = @_;
    my $buf = '';
    my $sel = IO::Select->new($c->{s});
    while (length $buf < $n) {
        my $left = $deadline - time;
        die "ws: timeout\n" if $left <= 0 || !$sel->can_read($left);
        sysread($c->{s}, $buf, $n - length $buf, length $buf)
            or die "ws: closed\n";
    }
    return $buf;
}

# one whole message (continuations joined), or dies at the deadline
sub ws_recv {
    my ($c, $deadline) = @_;
    my $msg = '';
    while (1) {
        my ($b0, $b1) = unpack 'CC', ws_read_n($c, 2, $deadline);
        my $len = $b1 & 0x7f;
        $len = unpack 'n', ws_read_n($c, 2, $deadline) if $len == 126;
        $len = unpack 'Q>', ws_read_n($c, 8, $deadline) if $len == 127;
        my $data = $len ? ws_read_n($c, $len, $deadline) : '';
        my $op = $b0 & 0x0f;
        next if $op == 0x9 || $op == 0xa;          # ping, pong
        die "ws: closed by chromium\n" if $op == 0x8;
        $msg .= $data;
        return $msg if $b0 & 0x80;
    }
}

# handles an event: dialogs (confirm accepted, any other one recorded
# and dismissed), exceptions and console errors recorded
sub cdp_event {
    my ($c, $m) = @_;
    my $p = $m->{params} || {};
    if ($m->{method} eq 'Page.javascriptDialogOpening') {
        push @{ $c->{alerts} }, "$p->{type}: $p->{message}"
            unless $p->{type} eq 'confirm';
        $c->{id}++;
        ws_send($c, $json->encode({ id => $c->{id},
            method => 'Page.handleJavaScriptDialog',
            params => { accept => $p->{type} eq 'confirm'
                                  ? JSON::PP::true : JSON::PP::false } }));
    } elsif ($m->{method} eq 'Runtime.exceptionThrown') {
        push @{ $c->{errors} },
            $p->{exceptionDetails}{exception}{description}
            // $p->{exceptionDetails}{text};
    } elsif ($m->{method} eq 'Log.entryAdded'
             && ($p->{entry}{level} // '') eq 'error') {
        # the URL says which request failed (a resource's load error
        # names none in its text)
        push @{ $c->{errors} }, $p->{entry}{text}
            . (defined $p->{entry}{url} ? " ($p->{entry}{url})" : '');
    }
}

sub cdp {
    my ($c, $method, $params) = @_;
    my $id = ++$c->{id};
    ws_send($c, $json->encode({ id => $id, method => $method,
                                params => $params || {} }));
    my $deadline = time + 15;
    while (1) {
        my $m = $json->decode(ws_recv($c, $deadline));
        if (defined $m->{id}) {
            next if $m->{id} != $id;
            die "$method: $m->{error}{message}\n" if $m->{error};
            return $m->{result};
        }
        cdp_event($c, $m);
    }
}

# lets events in for a moment (nothing to wait for but them)
sub cdp_drain_events {
    my ($c) = @_;
    my $sel = IO::Select->new($c->{s});
    while ($sel->can_read(0.05)) {
        cdp_event($c, $json->decode(ws_recv($c, time + 5)));
    }
}

sub js {
    my ($c, $expr) = @_;
    my $r = cdp($c, 'Runtime.evaluate', { expression => $expr,
                                          returnByValue => JSON::PP::true,
                                          awaitPromise => JSON::PP::true });
    die "js: $r->{exceptionDetails}{text}\n" if $r->{exceptionDetails};
    return $r->{result}{value};
}

sub js_until {
    my ($c, $secs, $expr) = @_;
    return wait_until($secs, sub {
        cdp_drain_events($c);
        my $v = eval { js($c, $expr) };
        Test::More::diag("js: $@") if $@ && $ENV{TEST_VERBOSE};
        $v;
    });
}

# cdp_start(CHROMIUM, DIR): chromium headless with its profile in DIR;
# returns the client of its page (undef when it did not start)
sub cdp_start {
    my ($chromium, $dir) = @_;
    my $profile = "$dir/chromium";
    mkdir $profile;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$dir/chromium.log";
        open STDERR, '>&', \*STDOUT;
        POSIX::setsid();
        { exec $chromium, '--headless=new', '--no-sandbox', '--disable-gpu',
             '--no-first-run', '--no-default-browser-check',
             '--disable-extensions', '--disable-dev-shm-usage',
             '--remote-debugging-address=127.0.0.1',
             '--remote-debugging-port=0', "--user-data-dir=$profile",
             '--window-size=1280,900', 'about:blank' }
        POSIX::_exit(127);
    }
    $browsers{$pid} = 1;

    my $devport;
    wait_until(20, sub {
        open my $f, '<', "$profile/DevToolsActivePort" or return;
        my $line = <$f> // return;
        ($devport) = $line =~ /^(\d+)/;
        $devport;
    }) or do {
        kill 'TERM', -$pid;
        waitpid $pid, 0;
        delete $browsers{$pid};
        return undef;
    };

    my $targets = $json->decode(http_request($devport, 'GET', '/json/list',
                                             {}, '')->{body} || '[]');
    my ($page) = grep { $_->{type} eq 'page' } @$targets;
    # the address chromium puts in the URL follows the Host header sent
    (my $ws = $page->{webSocketDebuggerUrl})
        =~ s{^ws://[^/]+}{ws://127.0.0.1:$devport};
    my $c = ws_connect($ws);
    $c->{pid} = $pid;
    cdp($c, $_) for qw(Page.enable Runtime.enable Log.enable);
    cdp($c, 'Emulation.setDeviceMetricsOverride', { width => 1200,
        height => 900, deviceScaleFactor => 1, mobile => JSON::PP::false });
    return $c;
}

# cdp_stop(CLIENT): chromium and its children ended
sub cdp_stop {
    my ($c) = @_;
    return unless $c && $c->{pid};
    close $c->{s};
    kill 'TERM', -$c->{pid};
    waitpid $c->{pid}, 0;
    delete $browsers{ $c->{pid} };
    delete $c->{pid};
}

# screenshot(CLIENT, FILE, SELECTOR): the element SELECTOR (its whole box,
# beyond the viewport too) as a PNG in FILE; returns the file's size
sub screenshot {
    my ($c, $file, $sel) = @_;
    my $rect = js($c, "(function () { var e = document.querySelector("
        . $json->encode($sel) . "); var r = e.getBoundingClientRect();"
        . " return [r.left + scrollX, r.top + scrollY, r.width, r.height];"
        . " })()");
    my $r = cdp($c, 'Page.captureScreenshot', {
        format => 'png', captureBeyondViewport => JSON::PP::true,
        clip => { x => $rect->[0], y => $rect->[1], width => $rect->[2],
                  height => $rect->[3], scale => 1 } });
    open my $f, '>:raw', $file or die "$file: $!\n";
    print $f decode_base64($r->{data});
    close $f;
    return -s $file;
}

END {
    return unless $$ == $owner;
    local $?;
    for my $pid (keys %browsers) {
        kill 'TERM', -$pid;
        wait_until(5, sub { waitpid($pid, POSIX::WNOHANG()) != 0 })
            or do { kill 'KILL', -$pid; waitpid $pid, 0 };
    }
}

1;
