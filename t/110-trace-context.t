# W3C trace context through the gateway and the agent: a client's valid
# traceparent is honoured (the same trace id at the runtime, in the
# ledger row, in the access log through $gpugate_trace_id and in the
# traceresponse header, the gateway's span as the parent of what goes
# upstream), its tracestate passed on when valid; a bad traceparent of
# every kind (uppercase, zeros, lengths, version ff, two headers, bad
# separators) is refused with an info line and a new trace started;
# without one, every request starts its own trace.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(psql wait_until env_or_skip);
use GpugateAgents qw(agent_bin slurp);
use GpugateTrace qw(trace_node chat);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $n = trace_node(ledger => 1);
my $tp_re = qr/^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

# the mock's "trace" lines, in order
sub mock_traces {
    return [ slurp($n->{mock}->log)
             =~ /trace POST \S+ traceparent=(\S+) tracestate=(\S+)$/mg ];
}

sub access_lines {
    return [ slurp($n->{ngx}->dir . '/logs/trace.log')
             =~ /^(\d+) trace=(\S+) span=(\S+)$/mg ];
}

my %seen;        # trace id => the span the gateway answered with

# --- a valid traceparent, streamed and not -------------------------------

my $client_trace = '4bf92f3577b34da6a3ce929d0e0e4736';
my $client_span = '00f067aa0ba902b7';

for my $stream (0, 1) {
    my $before = @{ mock_traces() } / 2;
    my $r = chat($n, $stream,
                 traceparent => "00-$client_trace-$client_span-01",
                 tracestate => 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    is($r->{status}, 200, "stream=$stream: answered");
    my ($t, $s, $f) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    is($t, $client_trace, "stream=$stream: traceresponse names the "
       . "client's trace");
    isnt($s, $client_span, "stream=$stream: with the gateway's own span");
    is($f, '01', "stream=$stream: sampled, as the client asked");
    $seen{$t}{$s} = 1;

    my $mt;
    ok(wait_until(10, sub { $mt = mock_traces(); @$mt / 2 > $before }),
       "stream=$stream: the runtime was given a traceparent");
    my ($up, $state) = @$mt[-2, -1];
    my ($ut, $us) = $up =~ $tp_re;
    is($ut, $client_trace, "stream=$stream: the same trace id upstream");
    isnt($us, $client_span, "stream=$stream: not the client's span as "
         . "the parent upstream");
    is($state, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
       "stream=$stream: tracestate passed on");
}

# --- bad ones: refused, a new trace each time ----------------------------

my $good = "00-$client_trace-$client_span-01";
my %bad = (
    uppercase     => "00-4BF92F3577B34DA6A3CE929D0E0E4736-$client_span-01",
    zero_trace    => '00-' . ('0' x 32) . "-$client_span-01",
    zero_parent   => "00-$client_trace-" . ('0' x 16) . '-01',
    short         => substr($good, 0, 54),
    long_v00      => "$good-extra",
    version_ff    => "ff-$client_trace-$client_span-01",
    separators    => "00_${client_trace}_${client_span}_01",
    not_hex       => "00-$client_trace-00f067aa0ba902bz-01",
    bad_flags     => "00-$client_trace-$client_span-0x",
);

$n->{ngx}->mark;
my $refused = 0;

for my $name (sort keys %bad) {
    my $before = @{ mock_traces() } / 2;
    my $r = chat($n, 0, traceparent => $bad{$name}, tracestate => 'a=b');
    is($r->{status}, 200, "$name: answered");
    my ($t, $s, $f) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    ok($t && $t ne $client_trace && $t ne '4bf92f3577b34da6a3ce929d0e0e4736'
       && !$seen{$t}, "$name: a new trace started ($t)");
    $seen{$t // ''}{$s // ''} = 1;

    my $mt;
    wait_until(10, sub { $mt = mock_traces(); @$mt / 2 > $before });
    my ($ut) = ($mt->[-2] // '') =~ $tp_re;
    is($ut, $t, "$name: the new trace upstream");
    is($mt->[-1], '-', "$name: the client's tracestate dropped with it");
    $refused++;
}

# two traceparent fields at once: refused too
{
    my $r = chat($n, 0, traceparent => $good, 'TraceParent' => $good);
    my ($t) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    ok($t && $t ne $client_trace, 'two traceparent fields: a new trace');
    $seen{$t // ''}{x} = 1;
    $refused++;
}

ok(wait_until(5, sub {
        my @l = $n->{ngx}->log =~ /\[info\].*client's traceparent is refused/g;
        @l >= $refused;
    }), "each refusal logged at info ($refused)");
like($n->{ngx}->log, qr/refused \(not lowercase hex digits\)/,
     'the log says why');

# an invalid tracestate with a valid traceparent is not passed on
{
    my $before = @{ mock_traces() } / 2;
    my $r = chat($n, 0, traceparent => $good, tracestate => 'Bad Key=1');
    my $mt;
    wait_until(10, sub { $mt = mock_traces(); @$mt / 2 > $before });
    is($mt->[-1], '-', 'an invalid tracestate is not passed on');
    my ($t, $s) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    $seen{$t}{$s} = 1;
}

# --- none: each request its own trace -------------------------------------

my %fresh;
for my $i (1 .. 4) {
    my $r = chat($n, $i % 2);
    my ($t, $s, $f) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    $fresh{$t // ''} = 1;
    $seen{$t // ''}{$s // ''} = 1;
}
is(scalar(grep { length } keys %fresh), 4,
   'without a traceparent, four requests, four traces');

# --- the ledger and the access log ----------------------------------------

my $want = join "\n", sort keys %seen;
my $rows;
ok(wait_until(15, sub {
        $rows = psql("SELECT DISTINCT trace_id FROM usage_events "
                   . "WHERE api_key_id = $n->{key_id} ORDER BY 1");
        $rows eq $want;
    }), 'the ledger rows carry the trace ids the client was told')
    or diag("got:\n$rows\nwant:\n$want");

my %logged;
ok(wait_until(5, sub {
        my $l = access_lines();
        %logged = ();
        for (my $i = 0; $i < @$l; $i += 3) {
            $logged{ $l->[$i + 1] }{ $l->[$i + 2] } = 1;
        }
        keys %logged == keys %seen;
    }), '$gpugate_trace_id in the access log: every trace');
my $spans_match = 1;
for my $t (keys %seen) {
    for my $s (keys %{ $seen{$t} }) {
        next if $s eq 'x';
        $spans_match = 0 unless $logged{$t}{$s};
    }
}
ok($spans_match, '$gpugate_span_id: the span of the traceresponse');

done_testing();
