package Test::Nginx::Socket::Engine;

# The block runner behind gpugate's stand-in Test::Nginx::Socket: builds
# each block's request, talks HTTP over a raw socket, and runs the checks
# with the same test names and the same number of test points as upstream
# Test::Nginx::Socket.  See the POD of Test::Nginx::Socket.
#
# A plain module: Test::Nginx::Socket itself uses Test::Base -Base (whose
# Spiffy source filter rewrites unprototyped subs), so the logic lives here.

use strict;
use warnings;

use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle min);
use POSIX qw(EAGAIN EWOULDBLOCK EINTR);
use Test::More ();
use Time::HiRes qw(sleep time);

use Test::Nginx::Util;

my $HaveLongString = eval { require Test::LongString; 1 };

our $PrevConfig;            # the config of the block nginx runs now

# ---------------------------------------------------------------------------
# run_tests: every block, shuffled unless no_shuffle()
# ---------------------------------------------------------------------------

sub run_tests {
    srand($$ + int(time * 1000));
    $ENV{TEST_NGINX_SERVER_PORT} = $Test::Nginx::Util::ServerPort
        unless defined $ENV{TEST_NGINX_SERVER_PORT};

    my $bin = $Test::Nginx::Util::NginxBinary;
    bail_out("Cannot find the nginx executable ($bin): set TEST_NGINX_BINARY")
        unless -x $bin || grep { -x "$_/$bin" } split /:/, $ENV{PATH} || '';

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $Test::Nginx::Util::NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @Test::Nginx::Util::BlockPreprocessors;
        $block->set_value('name', "$0 " . $block->name);
        run_block($block);
    }

    Test::Nginx::Util::cleanup();
}

# The number of test points one request of $block yields when nothing goes
# wrong (for skips after a failed start).
sub count_tests {
    my ($block) = @_;
    return 0 if defined $block->ignore_response;
    my $n = 1;                                          # status code
    if (defined(my $h = $block->response_headers // $block->response_headers_like)) {
        $h = $h->[0] if ref $h eq 'ARRAY';
        $n += keys %{ parse_headers($h) };
    }
    $n++ if defined $block->raw_response_headers_like;
    $n++ if defined $block->raw_response_headers_unlike;
    $n++ if defined $block->response_body || defined $block->response_body_like
        || defined $block->response_body_unlike;
    $n++ if defined $block->grep_error_log;
    for my $sec (qw(error_log no_error_log)) {
        my $p = $block->$sec;
        $n += scalar @{ pattern_list($p) } if defined $p;
    }
    return $n;
}

sub run_block {
    my ($block) = @_;
    my $name = $block->name;

    return if defined $block->SKIP;

    my $config = $block->config;
    $config = expand_env_in_text($config, $name);

    my ($should_skip, $tests_to_skip, $skip_reason) = skip_nginx($block);

    my $start_error;
    unless ($should_skip) {
        if (defined $config || !defined $PrevConfig
            || !Test::Nginx::Util::pid_from_pidfile())
        {
            bail_out("$name - No '--- config' section specified and could "
                     . "not get previous one.")
                if !defined $config && !defined $PrevConfig;
            $config //= $PrevConfig;

            my $w = Test::Nginx::Util::stop_nginx($name);
            warn $w if $w;
            Test::Nginx::Util::setup_server_root();
            Test::Nginx::Util::write_user_files($block);
            Test::Nginx::Util::write_config_file($block, $config);
            $start_error = Test::Nginx::Util::start_nginx($name);
            $PrevConfig = $config;
        }
        # else: no --- config: keep the previous block's nginx (upstream)
        $Test::Nginx::Util::ErrLogFilePos = 0;
    }

    if (defined $start_error) {
        # one failure in place of the block's first test point; the rest
        # are skipped so that the plan still adds up
        Test::More::fail("$name - nginx failed to start");
        Test::More::diag($start_error);
        my $rest = count_tests($block) * $Test::Nginx::Util::RepeatEach - 1;
        SKIP: { Test::More::skip("$name - nginx failed to start", $rest)
                    if $rest > 0 }
        $PrevConfig = undef;
        return;
    }

    if (defined(my $init = $block->init)) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    for my $i (1 .. $Test::Nginx::Util::RepeatEach) {
        Test::Nginx::Util::write_user_files($block) if $i > 1;
        if ($should_skip && defined $tests_to_skip) {
            SKIP: { Test::More::skip("$name - $skip_reason", $tests_to_skip) }
        } else {
            run_test_helper($block, $i - 1);
        }
    }

    if ($Test::Nginx::Util::UseValgrind && !$should_skip) {
        my $w = Test::Nginx::Util::stop_nginx($name);
        warn $w if $w;
        $PrevConfig = undef;
        if (my @problems = Test::Nginx::Util::valgrind_problems()) {
            # reported only when something is wrong, so that a clean run
            # has the same plan as without valgrind
            Test::More::fail("$name - valgrind reports "
                             . scalar(@problems) . " problem(s)");
            my $excerpt = join "\n", @problems;
            my @l = split /^/, $excerpt;
            @l = (@l[0 .. 199], "[... truncated]\n") if @l > 200;
            Test::More::diag(join '', @l);
        }
    }
}

# --- skip_nginx: "N: < 1.2.3[: reason]"
sub skip_nginx {
    my ($block) = @_;
    my $spec = $block->skip_nginx;
    return unless defined $spec;
    my $name = $block->name;
    $spec =~ m{^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*\z}
        or bail_out("$name - Invalid --- skip_nginx spec: $spec");
    my ($n, $op, @want) = ($1, $2, $3, $4, $5);
    my $reason = $6 || "nginx version $op $want[0].$want[1].$want[2]";
    my @have = Test::Nginx::Util::nginx_version();
    my $skip;
    if (!@have) {
        $skip = $op =~ /^</;
    } else {
        my $h = $have[0] * 1e6 + $have[1] * 1e3 + $have[2];
        my $w = $want[0] * 1e6 + $want[1] * 1e3 + $want[2];
        $skip = eval "$h $op $w";
    }
    return ($skip, $n, $reason);
}

# ---------------------------------------------------------------------------
# One request of a block
# ---------------------------------------------------------------------------

sub run_test_helper {
    my ($block, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $packets = build_request($block);
    my $timeout = parse_time($block->timeout) // $Test::Nginx::Util::Timeout;

    my ($raw_resp, $head_req) = send_request($packets, $timeout, $block);
    $raw_resp //= '';

    my ($res, $raw_headers) = (undef, '');
    unless (defined $block->ignore_response) {
        my $left;
        ($res, $raw_headers, $left) = parse_response($name, $raw_resp,
                                                     $head_req);
        $raw_headers //= '';
        if ($left) {
            $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
            warn "WARNING: $name - unexpected extra bytes after last chunk "
                . "in response: \"$left\"\n";
        }

        check_error_code($block, $res);
        check_raw_response_headers($block, $raw_headers);
        check_response_headers($block, $res, $raw_headers);
        check_response_body($block, $res, $repeated_req_idx);
    }

    if (my $wait = parse_time($block->wait)) {
        sleep $wait;
    }

    check_error_log($block, $repeated_req_idx);
}

# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------

# The packets to send (a list of strings) for --- raw_request or
# --- request (+ --- more_headers), built as upstream builds them.
sub build_request {
    my ($block) = @_;
    my $name = $block->name;

    my $raw = $block->raw_request;
    if (defined $raw) {
        my @packets = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [map { expand_env_in_text($_, $name) } @packets];
    }

    bail_out("$name - pipelined_requests is not supported by this runner")
        if defined $block->pipelined_requests;

    my $request = $block->request;
    bail_out("$name - request empty") unless defined $request;
    bail_out("$name - several requests per block are not supported by this "
             . "runner") if ref $request;
    # leading blank and comment lines go
    1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
    $request = expand_env_in_text($request, $name);

    my $more = $block->more_headers // '';
    $more = $more->[0] if ref $more eq 'ARRAY';
    my ($hdr, $is_chunked) = parse_more_headers(
        expand_env_in_text($more, $name));

    my ($first, $content) = split /\n/, $request, 2;
    $first //= '';
    $first =~ /^\s*(\S+)\s*(\S+)?\s*(\S+)?\s*\z/
        or bail_out("$name - Request line is not valid. Should be 'meth "
                    . "[url [version]]' but got \"$first\".");
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');
    $content //= '';

    my $len_header = '';
    if (!$is_chunked && $content ne ''
        && $hdr !~ /(?:^|\n)Content-Length:/)
    {
        $content =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($content) . "\r\n";
    }

    my $headers = '';
    $headers .= "Host: $Test::Nginx::Util::ServerName\r\n"
        if $hdr !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: close\r\n"
        if $hdr !~ /(?:^|\n)Connection/msi;
    $headers .= "$hdr$len_header\r\n";

    return ["$meth $url $ver\r\n$headers$content"];
}

sub parse_more_headers {
    my ($in) = @_;
    my ($out, $is_chunked) = ('', 0);
    for my $header (split /\n+/, $in) {
        next if $header =~ /^\s*\#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $is_chunked = 1
            if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# Sends the packets and reads until the server closes the connection.
# $timeout bounds each wait for the socket (an idle timeout, as upstream);
# when it expires the block fails unless it has --- abort.  Returns what
# arrived and whether the request was a HEAD.
sub send_request {
    my ($packets, $timeout, $block) = @_;
    my $name = $block->name;
    my $head_req = join('', @$packets) =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $addr = $block->server_addr_for_client
        // $Test::Nginx::Util::ServerAddr;
    my $port = $Test::Nginx::Util::ServerPortForClient;

    my $sock;
    my $deadline = time + 5;
    my $wait = $Test::Nginx::Util::TestNginxSleep;
    while (1) {
        $sock = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port,
                                      Proto => 'tcp', Timeout => $timeout);
        last if $sock;
        my $err = $!;
        if (time >= $deadline) {
            Test::More->builder->no_ending(1);
            Test::More::fail("$name - Can't connect to $addr:$port: $err "
                             . "(aborted)\n");
            return (undef, $head_req);
        }
        sleep $wait;
        $wait *= 2 if $wait < 0.2;
    }
    $sock->blocking(0);

    my @bits = @$packets;
    my $middle_delay = parse_time($block->raw_request_middle_delay);
    my $buf = shift(@bits) // '';
    my $resp = '';
    my $writing = 1;

    my $sel = IO::Select->new($sock);
    while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            next if $! == EINTR;
            # timed out
            if (!defined $block->abort) {
                Test::More->builder->no_ending(1);
                Test::More::fail("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last;
        }

        if ($w && @$w) {
            my $n = syswrite($sock, $buf);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                warn "write failed: $!\n";
                $resp = "write failed: $!" if $resp eq '';
                last;
            }
            substr($buf, 0, $n, '');
            if ($buf eq '') {
                if (@bits) {
                    $buf = shift @bits;
                    sleep $middle_delay if $middle_delay;
                } else {
                    $writing = 0;
                    my $shutdown = $block->shutdown;
                    if (defined $shutdown) {
                        $shutdown = 1 if $shutdown =~ /^\s*\z/;
                        shutdown($sock, $shutdown);
                    }
                }
            }
        }

        if ($r && @$r) {
            my $n = sysread($sock, my $chunk, 65536);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;    # closed by the server
            $resp .= $chunk;
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------

# Returns (HTTP::Response or undef, raw header text, bytes left over).
# A truncated Content-Length body is kept as it arrived (with a warning);
# a chunked body without its last chunk fails, as upstream.
sub parse_response {
    my ($name, $raw, $head_req) = @_;

    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+\z/) {
        $res->code(undef);
        $code = undef;
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my @trailers = $res->header('Trailer');
    my $left;

    if (defined $enc && $enc eq 'chunked') {
        my $body = $res->content // '';
        my $decoded = '';
        while (1) {
            if (!@trailers && $body =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = $1 if $body =~ /\G(.+)/gcs;
                last;
            }
            if (@trailers && $body =~ /\G0[ \t]*\r\n/gc) {
                for my $t (@trailers) {
                    return chunk_error("$name - invalid trailer data received "
                                       . "(expected $t).")
                        unless $body =~ /\G\Q$t\E: [^\n]*\r\n/gcs;
                }
                return chunk_error("$name - invalid chunked data received "
                                   . "(expected CRLF).")
                    unless $body =~ /\G\r\n/gc;
                $left = $1 if $body =~ /\G(.+)/gcs;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                my $pos = pos $body;
                return chunk_error("$name - invalid chunked data received "
                                   . "(not enought octets for the data "
                                   . "section)")
                    if length($body) - $pos < $size;
                $decoded .= substr($body, $pos, $size);
                pos($body) = $pos + $size;
                return chunk_error("$name - invalid chunked data received "
                                   . "(expected CRLF).")
                    unless $body =~ /\G\r\n/gc;
            } elsif ($body =~ /\G(.+)/gcs) {
                return chunk_error("$name - invalid chunked body received: $1");
            } else {
                return chunk_error("$name - no last chunk found - $body");
            }
        }
        $res->content($decoded);

    } elsif (defined $len && $len =~ /^\d+\z/) {
        my $body = $res->content // '';
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                . "but got ", length $body, "\n" unless $head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

sub chunk_error {
    my ($msg) = @_;
    Test::More->builder->no_ending(1);
    Test::More::fail($msg);
    return;
}

# "Name: value" lines -> { Name => value }; "!Name" -> { Name => undef }
sub parse_headers {
    my ($s) = @_;
    my %headers;
    for (split /\n/, $s // '') {
        s/^\s+|\s+$//g;
        if (s/^!\s*//) {
            $headers{$_} = undef;
        } else {
            my ($key, $val) = split /\s*:\s*/, $_, 2;
            $headers{$key} = $val;
        }
    }
    return \%headers;
}

# a section that may be an array (one element per request): the first
sub first_value {
    my ($v) = @_;
    return ref $v eq 'ARRAY' ? $v->[0] : $v;
}

sub subst_port {
    my ($s) = @_;
    return $s if !defined $s || ref $s;
    $s =~ s/\$ServerPort\b/$Test::Nginx::Util::ServerPort/g;
    $s =~ s/\$ServerPortForClient\b/$Test::Nginx::Util::ServerPortForClient/g;
    return $s;
}

# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

sub check_error_code {
    my ($block, $res) = @_;
    my $name = $block->name;
    my $got = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $re = first_value($block->error_code_like);
        Test::More::like($got, qr/$re/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        Test::More::is($got, first_value($block->error_code),
                       "$name - status code ok");
    } else {
        Test::More::is($got, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers {
    my ($block, $raw_headers) = @_;
    my $name = $block->name;
    if (defined(my $re = first_value($block->raw_response_headers_like))) {
        Test::More::like($raw_headers, qr/$re/s,
                         "$name - raw resp headers like");
    }
    if (defined(my $re = first_value($block->raw_response_headers_unlike))) {
        Test::More::unlike($raw_headers, qr/$re/s,
                           "$name - raw resp headers unlike");
    }
}

sub check_response_headers {
    my ($block, $res, $raw_headers) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $h = parse_headers(first_value($block->response_headers));
        for my $key (sort keys %$h) {
            my $val = $h->{$key};
            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                    "$name - header $key not present in the raw headers");
                next;
            }
            $val = subst_port($val);
            my $got = $res ? $res->header($key) : undef;
            Test::More::is($got // '', $val, "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $h = parse_headers(first_value($block->response_headers_like));
        for my $key (sort keys %$h) {
            my $val = $h->{$key} // '';
            my $got = $res ? $res->header($key) : undef;
            Test::More::like($got // '', qr/^$val$/,
                             "$name - header $key like ok");
        }
    }
}

sub check_response_body {
    my ($block, $res, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->response_body) {
        my $expected = first_value($block->response_body);
        unless (!defined $expected || ref $expected) {
            $expected = subst_port($expected);
            $expected = expand_env_in_text($expected, $name);
        }
        my $tn = "$name - response_body - response is expected "
            . "(repeated req $repeated_req_idx, req 0)";
        if (ref $expected) {
            Test::More::like($content, $expected,
                "$name - response_body - like (repeated req "
                . "$repeated_req_idx, req 0)");
        } elsif ($Test::Nginx::Util::NoLongString || !$HaveLongString) {
            Test::More::is($content, $expected, $tn);
        } else {
            local $Test::Builder::Level = $Test::Builder::Level + 1;
            Test::LongString::is_string($content, $expected, $tn);
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my ($type, $pat) = defined $block->response_body_like
            ? ('like', $block->response_body_like)
            : ('unlike', $block->response_body_unlike);
        $pat = subst_port(first_value($pat));
        my $summary = $content // '';
        $summary =~ s/^\s+|\s+$//g;
        $summary =~ s/\n/ /g;
        $summary =~ s/\s{2,}/ /g;
        my $tn = "$name - response_body_$type - response is expected "
            . "($summary)";
        if ($type eq 'like') {
            Test::More::like($content, qr/$pat/s, $tn);
        } else {
            Test::More::unlike($content, qr/$pat/s, $tn);
        }
    }
}

# error_log / no_error_log value -> list of patterns (strings or qr//)
sub pattern_list {
    my ($pats) = @_;
    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub line_matches {
    my ($line, $pat) = @_;
    return (ref $pat && $line =~ /$pat/) || $line =~ /\Q$pat\E/;
}

sub fmt_str {
    my ($s) = @_;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub value_contains {
    my ($val, $pat) = @_;
    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';
    return scalar grep { value_contains($_, $pat) } @$val
        if ref $val eq 'ARRAY';
    return 0;
}

sub check_error_log {
    my ($block, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $lines = Test::Nginx::Util::error_log_data();
    my %warn_on = ('[alert]' => 1, '[crit]' => 1, '[emerg]' => 1);

    # --- grep_error_log + --- grep_error_log_out
    my $grep_pat = $block->grep_error_log;
    if (defined $grep_pat) {
        $grep_pat = $grep_pat->[$repeated_req_idx] if ref $grep_pat eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- "
                 . "grep_error_log is defined") unless defined $expected;
        $expected = $expected->[$repeated_req_idx] if ref $expected eq 'ARRAY';
        $expected = expand_env_in_text($expected, $name);

        my $matched = '';
        for my $line (@$lines) {
            if (ref $grep_pat && $line =~ /$grep_pat/
                || $line =~ /\Q$grep_pat\E/)
            {
                my $m = $&;
                $matched .= "$m\n" if $m !~ /\n/;
            }
        }
        my $tn = "$name - grep_error_log_out (req $repeated_req_idx)";
        if (ref $expected eq 'Regexp') {
            Test::More::like($matched, $expected, $tn);
        } elsif ($Test::Nginx::Util::NoLongString || !$HaveLongString) {
            Test::More::is($matched, $expected, $tn);
        } else {
            Test::LongString::is_string($matched, $expected, $tn);
        }
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- "
                 . "grep_error_log_out is defined");
    }

    # --- error_log: each pattern must match some line
    if (defined(my $pats = $block->error_log)) {
        for my $lvl (keys %warn_on) {
            (my $p = $lvl) =~ s/\]\z//;
            delete $warn_on{$lvl} if value_contains($pats, $p);
        }
        $pats = pattern_list($pats);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"$pat\" matches a line "
                                     . "in error.log (req $repeated_req_idx)");
                    undef $pat;
                }
            }
        }
        for my $pat (grep { defined } @$pats) {
            Test::More::fail("$name - pattern \"$pat\" should match a line in "
                             . "error.log (req $repeated_req_idx)");
            Test::More::diag("error.log lines of this request:\n"
                             . tail_lines($lines, 30));
        }
    }

    # --- no_error_log: no pattern may match; one failure per matching line
    if (defined(my $pats = $block->no_error_log)) {
        for my $lvl (keys %warn_on) {
            (my $p = $lvl) =~ s/\]\z//;
            delete $warn_on{$lvl} if value_contains($pats, $p);
        }
        $pats = pattern_list($pats);
        my %found;
        for my $i (0 .. $#$lines) {
            my $line = $lines->[$i];
            for my $pat (@$pats) {
                next unless defined $pat;
                next unless line_matches($line, $pat);
                Test::More->builder->no_ending(1) if $found{$pat}++;
                my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];
                Test::More::fail("$name - pattern \"" . fmt_str($pat)
                    . "\" should not match any line in error.log but matches "
                    . "line \"" . fmt_str($line) . "\" (req "
                    . "$repeated_req_idx)\n" . join '', @more);
            }
        }
        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};
            Test::More::pass("$name - pattern \"" . fmt_str($pat)
                             . "\" does not match a line in error.log (req "
                             . "$repeated_req_idx)");
        }
    }

    # like upstream: alert/crit/emerg lines are worth a warning
    for my $line (@$lines) {
        for my $lvl (keys %warn_on) {
            warn "WARNING: $name - " . fmt_str($line) . "\n"
                if index($line, $lvl) >= 0;
        }
    }

    # a failed assertion in nginx (debug builds) fails the block
    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            Test::More->builder->no_ending(1);
            chomp(my $l = $line);
            Test::More::fail("$name - $l\n");
        }
    }
}

sub tail_lines {
    my ($lines, $n) = @_;
    my @l = @$lines;
    @l = @l[-$n .. -1] if @l > $n;
    return join '', @l;
}

1;
