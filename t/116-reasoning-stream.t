# The reasoning split in streams: an event whose delta.content carries
# reasoning carries it in delta.reasoning_content instead, the same event
# otherwise; events with no content pass byte-identical; the events while
# the answer may still be starting with the opening tag wait, so an answer
# without it is byte-identical to the runtime's stream.  Tags are cut at
# every byte: by the events (the mock sending the reasoning one byte per
# event), by the runtime's writes (the mock writing byte by byte, and a
# runtime in this test that writes its stream in two parts, cut at every
# offset), escaped (\u003c, <\/) and with CRLF line ends.  Reasoning
# tokens: reported by the runtime, or the count of reasoning events, in
# the ledger row.
#
# Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_MOCK_PORT, TEST_NGINX_PG_PORT
# (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Test::More;
use Time::HiRes qw(sleep);

use GpugateTest qw(start_nginx http_request http_send http_read wait_until
                   env_or_skip free_port psql);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_MOCK_PORT
               TEST_NGINX_PG_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $gw = "reasoning-$$-" . time;

my $mock = $ENV{TEST_NGINX_MOCK_PORT};

# a runtime that sends one of these streams, in two writes cut at the
# offset the request's X-Split says

my $ID = '"id":"c"';
sub ev { my ($delta, $fin, $end) = @_;
         return qq(data: {$ID,"choices":[{"index":0,"delta":{$delta},)
              . qq("finish_reason":$fin}]}) . ($end // "\n\n") }

my %streams = (
    think => ev('"role":"assistant","content":""', 'null')
           . ev('"content":" \u003cthi"', 'null')
           . ev('"content":"nk\u003eAb"', 'null', "\r\n\r\n")
           . ev('"content":"c\u003c\/think\u003e\n\nDone"', 'null')
           . ev('', '"stop"')
           . "data: [DONE]\n\n",
    plain => ev('"role":"assistant","content":""', 'null')
           . ev('"content":" \u003cthi"', 'null')
           . ev('"content":"nking"', 'null', "\r\n\r\n")
           . "data: [DONE]\n\n",
);

# limits: an event too long to rewrite passes as it is; too much
# whitespace (600 bytes), or too many events (80 KiB), before the tag: no
# reasoning
$streams{long} = ev('"content":"<think>a"', 'null')
               . ev('"content":"' . ('x' x 70000) . '"', 'null')
               . ev('"content":"</think>b"', 'null')
               . "data: [DONE]\n\n";
$streams{spaces} = join('', map { ev('"content":" "', 'null') } 1 .. 600)
                 . ev('"content":"<think>x</think>y"', 'null')
                 . "data: [DONE]\n\n";
$streams{wait} = ev('"content":" <th"', 'null')
               . join('', map { ev('', 'null') } 1 .. 1100)
               . ev('"content":"ink>x</think>y"', 'null')
               . "data: [DONE]\n\n";

my $want_think = ev('"role":"assistant","content":""', 'null')
               . ev('"reasoning_content":""', 'null')
               . ev('"reasoning_content":"Ab"', 'null', "\r\n\r\n")
               . ev('"reasoning_content":"c","content":"Done"', 'null')
               . ev('', '"stop"')
               . "data: [DONE]\n\n";

my $raw_port = free_port();
my $raw = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$raw_port",
                                Listen => 64, ReuseAddr => 1)
    or die "listen: $!";
my @pids;

for (1 .. 4) {
    # four processes take the connections: the cut requests come 16 at once
    my $pid = fork // die "fork: $!";
    if ($pid) {
        push @pids, $pid;
        next;
    }

    while (my $c = $raw->accept) {
        my $head = '';
        $head .= $_ while defined($_ = <$c>) && $_ ne "\r\n";
        my ($len) = $head =~ /content-length: *(\d+)/i;
        read($c, my $body, $len // 0);
        my ($split) = $head =~ /x-split: *(\d+)/i;
        my ($kind) = $head =~ /x-stream: *(\w+)/i;
        my $s = $streams{$kind // 'think'};
        setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   . "Connection: close\r\n\r\n");
        $split //= 0;
        syswrite($c, substr($s, 0, $split)) if $split;
        sleep 0.001 if $split;
        syswrite($c, substr($s, $split));
        close $c;
    }
    POSIX::_exit(0);                    # no END blocks in a child
}

close $raw;
END { kill 'TERM', @pids if @pids }

my $ng = start_nginx(http => <<"HTTP", server => <<"SRV");
    upstream think { server 127.0.0.1:$mock; keepalive 4; }
    upstream plain { server 127.0.0.1:$mock; keepalive 4; }
    upstream raw   { server 127.0.0.1:$raw_port; }
    gpugate_model mock-model pool=think;
    gpugate_model plain-model pool=plain target=mock-model;
    gpugate_model raw-model pool=raw;
    gpugate_reasoning split pool=think;
    gpugate_reasoning split pool=raw;
    gpugate_usage_ledger "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2" gateway=$gw batch=1 interval=100ms;
    log_format reasoning '\$request_id \$request_uri \$status '
                         'r=\$gpugate_reasoning_tokens';
HTTP
        access_log logs/reasoning.log reasoning;
        location /v1/ {
            gpugate_openai on;
            gpugate_accounting on;
            proxy_pass http://\$gpugate_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
SRV

my $n = 0;
my $msgs = '"messages":[{"role":"user","content":"Say hello"}]';

sub post {
    my ($model, $headers) = @_;
    my $tag = 'r' . ++$n;
    my $body = qq({"model":"$model","stream":true,$msgs});
    my $r = http_request($ng->port, 'POST', "/v1/chat/completions?$tag",
                         $headers, $body);
    my $line;
    wait_until(10, sub {
        open my $fh, '<', $ng->dir . '/logs/reasoning.log' or return 0;
        ($line) = grep { /\?$tag / } <$fh>;
        return defined $line;
    });
    $r->{log} = $line // '';
    return $r;
}

# the request's ledger row: reasoning_tokens,reasoning_estimated
sub ledger {
    my ($r) = @_;
    my ($rid) = $r->{log} =~ /^(\S+)/;
    my $row = '';
    wait_until(10, sub {
        $row = psql("SELECT coalesce(reasoning_tokens::text, '') || ',' "
                    . "|| reasoning_estimated FROM usage_events "
                    . "WHERE gateway = '$gw' AND request_id = '$rid'");
        return $row ne '';
    });
    chomp $row;
    return $row;
}

sub direct {
    my ($headers) = @_;
    return http_request($mock, 'POST', '/v1/chat/completions', $headers,
                        qq({"model":"mock-model","stream":true,$msgs})
                       )->{body};
}

sub events { return split /(?<=\n\n)/, $_[0] }

# the event with its content members taken out, and what they held
sub parts {
    my ($ev) = @_;
    my ($reason, $content) = ('', '');
    $ev =~ s/"reasoning_content":"((?:[^"\\]|\\.)*)",?/$reason = $1; ''/e;
    $ev =~ s/"content":"((?:[^"\\]|\\.)*)"/$content = $1; ''/e;
    $ev =~ s/,\}/}/;
    return ($ev, $reason, $content);
}

# checks a split stream against the runtime's: the same events, in order,
# each with only its content moved; returns the reasoning and the content
sub check_split {
    my ($name, $got, $orig) = @_;
    my @g = events($got);
    my @o = events($orig);
    is(scalar @g, scalar @o, "$name: as many events as the runtime sent");
    my ($reason, $content, $bad) = ('', '', 0);
    for my $i (0 .. $#o) {
        my ($ge, $gr, $gc) = parts($g[$i] // '');
        my ($oe) = parts($o[$i]);
        $bad++ if $ge ne $oe;
        $reason .= $gr;
        $content .= $gc;
        $bad++ if $o[$i] !~ /"content":"[^"]/ && $g[$i] ne $o[$i];
    }
    is($bad, 0, "$name: every event the same but for its content, "
                . "those without content byte-identical");
    return ($reason, $content);
}

# the mock's reasoning cut at every byte by the events

my $bytes = { 'X-Mock-Think' => 3, 'X-Mock-Think-Bytes' => 1,
              'X-Mock-Tokens' => 40 };
my $orig = direct($bytes);
like($orig, qr/"content":"<"\}.*"content":"t"\}/s,
     'the mock sends the reasoning one byte per event');

my $r = post('mock-model', $bytes);
is($r->{status}, 200, '1-byte deltas: 200');
my ($reason, $content) = check_split('1-byte deltas', $r->{body}, $orig);
is($reason, ' the user wants', '...the reasoning, without the tags');
my $all = join '', map { /"content":"((?:[^"\\]|\\.)*)"/ ? $1 : () }
                   events($orig);
(my $final = $all) =~ s/\A<think>.*?<\/think>(?:\\n| )*//s;
is($content, $final, '...the final answer, without the blank line');
unlike($r->{body}, qr/think>/, '...no tag reaches the client');
like($r->{log}, qr/ 200 r=15$/,
     '...reasoning tokens: the 15 events that carried reasoning');
is(ledger($r), '15,true', '...in the ledger row, marked estimated');
my $split = $r->{body};

for my $mode ([ byte => { 'X-Mock-Write-Mode' => 'byte',
                          'X-Mock-Byte-Delay-Us' => 20 } ],
              [ bulk => { 'X-Mock-Write-Mode' => 'bulk' } ])
{
    $r = post('mock-model', { %$bytes, %{ $mode->[1] } });
    is($r->{body}, $split, "the runtime writing $mode->[0]: the same stream");
}

$r = post('mock-model', { 'X-Mock-Think' => 3, 'X-Mock-Think-Report' => 1 });
like($r->{log}, qr/ 200 r=3$/,
     'reasoning_tokens reported (the usage the gateway asked for): taken');
is(ledger($r), '3,false', '...in the ledger row, not estimated');

# whole tags in one event each, and the usage the gateway asked for

my $words = { 'X-Mock-Think' => 2 };
$r = post('mock-model', $words);
($reason, $content) = check_split('word tokens', $r->{body}, direct($words));
is($reason, ' the user', '...the reasoning');
unlike($r->{body}, qr/usage/, '...the usage the gateway asked for stripped');

# no reasoning, or the split off: byte-identical

$r = post('mock-model');
is($r->{body}, direct(), 'no tag: the stream byte-identical');
is(ledger($r), ',false', '...no reasoning tokens in the ledger row');
$r = post('plain-model', $bytes);
is($r->{body}, $orig, 'a pool with the split off: byte-identical');

# a runtime's own stream: escaped tags, CRLF, cut at every offset

$r = post('raw-model', { 'X-Stream' => 'think' });
is($r->{body}, $want_think, 'escaped tags, CRLF: split as expected');
like($r->{log}, qr/ 200 r=2$/, '...two reasoning events');

$r = post('raw-model', { 'X-Stream' => 'plain' });
is($r->{body}, $streams{plain},
   'a start like the tag, but not it: byte-identical');

$r = post('raw-model', { 'X-Stream' => 'long' });
is($r->{body}, ev('"reasoning_content":"a"', 'null')
               . ev('"content":"' . ('x' x 70000) . '"', 'null')
               . ev('"content":"b"', 'null') . "data: [DONE]\n\n",
   'an event over 64 KiB passes as it is, the split goes on after it');

for my $kind ('spaces', 'wait') {
    $r = post('raw-model', { 'X-Stream' => $kind });
    is($r->{body}, $streams{$kind},
       "$kind before the tag: given up, the stream byte-identical");
}

for my $kind ('think', 'plain') {
    my $want = $kind eq 'think' ? $want_think : $streams{$kind};
    my (@bad, @k);
    @k = 1 .. length($streams{$kind}) - 1;
    while (my @batch = splice(@k, 0, 16)) {
        # 16 at a time: the test runtime answers them one after another
        my %s = map {
            $_ => http_send($ng->port, 'POST', '/v1/chat/completions',
                            { 'X-Stream' => $kind, 'X-Split' => $_ },
                            qq({"model":"raw-model","stream":true,$msgs}))
        } @batch;
        for my $k (@batch) {
            push @bad, $k if http_read($s{$k}, 20)->{body} ne $want;
        }
    }
    is("@bad", '', "$kind: the runtime's writes cut at each of "
                   . (length($streams{$kind}) - 1) . ' offsets');
}

$ng->stop;

done_testing();
