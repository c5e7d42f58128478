# Spans over OTLP/HTTP: one gateway span per request, with the GenAI
# attributes and gpugate's, named "{operation} {model}"; the agent's
# child span with the same trace id and the gateway's span as its parent
# (and the runtime given the agent's span); the client's span as the
# gateway's parent; attacker-controlled strings escaped into valid JSON;
# sampling: sample=0 exports only what the client sampled, errors (5xx)
# and partial streams always; gen_ai.response.finish_reasons, an array
# of strings ("stop", "length" when max_tokens cuts the answer).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;

use GpugateTest qw(http_request wait_until env_or_skip);
use GpugateAgents qw(agent_bin slurp);
use GpugateTrace qw(otlp_receiver otlp_spans trace_node chat);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $tp_re = qr/^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
my $rx = otlp_receiver();
my $url = "http://127.0.0.1:$rx->{port}/v1/traces";
my $n = trace_node(otlp => "$url sample=1 batch=2 interval=100ms "
                          . "service=gw-test",
                   agent_conf => "otlp_endpoint = $url\n");

# the gateway's spans of one trace (of span id SPAN, when given) and the
# agent's below them, once they are in (the agent's too if "agent")
sub spans_of {
    my ($trace, $agent, $span) = @_;
    my (@gw, @ag);
    wait_until(10, sub {
        my @all = grep { $_->{traceId} eq $trace } otlp_spans($rx);
        @gw = grep { $_->{service} eq 'gw-test'
                     && (!$span || $_->{spanId} eq $span) } @all;
        my %mine = map { $_->{spanId} => 1 } @gw;
        @ag = grep { $_->{service} eq 'gpugate-agent'
                     && $mine{ $_->{parentSpanId} // '' } } @all;
        @gw && (!$agent || @ag);
    });
    return (\@gw, \@ag);
}

# --- a client's trace, streamed and not --------------------------------

my $ct = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
my $cs = '1122334455667788';

for my $stream (0, 1) {
    my $r = chat($n, $stream, traceparent => "00-$ct-$cs-01");
    is($r->{status}, 200, "stream=$stream: answered");
    my ($t, $s) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    my ($gw, $ag) = spans_of($t, 1, $s);
    is(scalar @$gw, 1, "stream=$stream: one gateway span");
    my $g = $gw->[0] || {};
    is($g->{name}, 'chat mock-model', 'named "{operation} {model}"');
    is($g->{kind}, 2, 'kind SERVER');
    is($g->{parentSpanId}, $cs, "the client's span is its parent");
    my $a = $g->{attr} || {};
    is($a->{'gen_ai.operation.name'}, 'chat', 'gen_ai.operation.name');
    is($a->{'gen_ai.request.model'}, 'mock-model', 'gen_ai.request.model');
    is($a->{'gen_ai.response.model'}, 'mock-model',
       'gen_ai.response.model');
    ok(($a->{'gen_ai.usage.input_tokens'} // 0) > 0
       && ($a->{'gen_ai.usage.output_tokens'} // 0) > 0,
       'gen_ai.usage.input_tokens and output_tokens');
    is($a->{'server.address'}, 'localhost', 'server.address (Host)');
    is($a->{'gpugate.tenant'}, $n->{tenant}, 'gpugate.tenant');
    is($a->{'gpugate.key_prefix'}, substr($n->{key}, 0, 12),
       'gpugate.key_prefix')
        or diag("key $n->{key}");
    is($a->{'gpugate.pool'}, 'agents', 'gpugate.pool');
    like($a->{'gpugate.agent'} // '', qr/\Q$n->{name}\E/, 'gpugate.agent');
    ok(!$stream || defined $a->{'gpugate.ttft_ms'}, 'gpugate.ttft_ms');
    ok(!$a->{'gpugate.partial'}, 'gpugate.partial false');
    ok($a->{'gpugate.stream'} ? $stream : !$stream, 'gpugate.stream');
    is_deeply($a->{'gen_ai.response.finish_reasons'}, ['stop'],
              'gen_ai.response.finish_reasons: an array, "stop"');
    is($g->{status}{code}, 0, 'status unset');
    ok($g->{endTimeUnixNano} >= $g->{startTimeUnixNano}
       && $g->{startTimeUnixNano} > 1.6e18, 'times in Unix nanoseconds');

    is(scalar @$ag, 1, "stream=$stream: the agent's span, same trace");
    my $as = $ag->[0] || {};
    is($as->{parentSpanId}, $s, "its parent is the gateway's span");
    is($as->{traceId}, $ct, 'in the trace of the client');
    is($as->{kind}, 3, 'kind CLIENT');
    ok(($as->{attr}{'gpugate.runtime_ttfb_ms'} // -1) >= 0,
       "the runtime's time to first byte");
    is($as->{attr}{'gpugate.agent'}, $n->{name}, 'names the agent');

    my ($up) = reverse(slurp($n->{mock}->log)
                       =~ /traceparent=(00-\Q$t\E-[0-9a-f]{16}-01)/g);
    my (undef, $ups) = ($up // '') =~ $tp_re;
    is($ups, $as->{spanId}, "the runtime's parent is the agent's span");
}

# --- cut by max_tokens: "length", streamed and not ---------------------

for my $stream (0, 1) {
    my $body = '{"model":"mock-model","max_tokens":1,"stream":'
             . ($stream ? 'true' : 'false')
             . ',"messages":[{"role":"user","content":"hi"}]}';
    my $r = http_request($n->{ngx}->port, 'POST', '/v1/chat/completions',
                         { 'Content-Type' => 'application/json',
                           Authorization => "Bearer $n->{key}" },
                         $body, 15);
    like($r->{body}, qr/"finish_reason":\s*"length"/,
         "stream=$stream, max_tokens 1: the mock says length");
    my ($t) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    my ($gw) = spans_of($t // 'none', 0);
    is_deeply(($gw->[0] || {})->{attr}{'gen_ai.response.finish_reasons'},
              ['length'], "stream=$stream: finish_reasons [\"length\"]");
}

# --- a client string in the span: valid JSON -----------------------------

{
    my $weird = "m\\\"o\x01d\xffel\xc3\xa9";
    my $body = '{"model":"m\\\\\\"o\\u0001d\xffel\xc3\xa9","messages":[]}';
    my $r = http_request($n->{ngx}->port, 'POST', '/v1/chat/completions',
                         { 'Content-Type' => 'application/json',
                           Authorization => "Bearer $n->{key}" }, $body);
    my ($t) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    my ($gw) = spans_of($t // 'none', 0);
    is(scalar @$gw, 1, "a refused request ($r->{status}) has its span, in "
       . 'JSON the receiver reads');
}

# --- sampling ------------------------------------------------------------

my $rx0 = otlp_receiver();
my $url0 = "http://127.0.0.1:$rx0->{port}/v1/traces";
my $n0 = trace_node(otlp => "$url0 sample=0 batch=1 interval=100ms",
                    agent_conf => "otlp_endpoint = $url0\n");

my %want;     # trace id => 1 if a gateway span must come
for my $i (1 .. 3) {
    my $r = chat($n0, $i % 2);
    my ($t, $s, $f) = ($r->{headers}{traceresponse} // '') =~ $tp_re;
    is($f, '00', "sample=0: request $i not sampled");
    $want{$t} = 0;
}
{
    my $r = chat($n0, 0, traceparent => "00-$ct-$cs-01");
    $want{$ct} = 1;
    my $r2 = chat($n0, 0, 'X-Mock-Fail-Status' => 500);
    is($r2->{status}, 500, 'a runtime error');
    my ($t) = ($r2->{headers}{traceresponse} // '') =~ $tp_re;
    $want{$t} = 'error';
    my $r3 = chat($n0, 1, 'X-Mock-Drop-After' => 2);
    my ($t3) = ($r3->{headers}{traceresponse} // '') =~ $tp_re;
    $want{$t3} = 'partial';
}

my %got;
ok(wait_until(10, sub {
        %got = ();
        $got{ $_->{traceId} } = $_
            for grep { $_->{service} eq 'gpugate' } otlp_spans($rx0);
        3 == grep { $want{$_} } keys %got;
    }), "sample=0: the client's sampled trace, the error and the "
      . 'partial stream are exported');
is(scalar(grep { !$want{$_} } keys %got), 0,
   'and nothing that was not sampled');
my ($err) = grep { $want{$_} eq 'error' } keys %want;
is($got{$err}{status}{code}, 2, 'the error span has status ERROR');
is($got{$err}{attr}{'http.response.status_code'}, 500, 'and its code');
my ($part) = grep { $want{$_} eq 'partial' } keys %want;
ok($got{$part}{attr}{'gpugate.partial'}, 'the partial stream says so');
ok(wait_until(10, sub {
        grep { $_->{service} eq 'gpugate-agent' && $_->{traceId} eq $err }
            otlp_spans($rx0)
    }), "the agent exports its span of the error too");

like(http_request($n->{ngx}->port, 'GET', '/metrics')->{body},
     qr/^gpugate_trace_spans_total\{result="exported"\} [1-9]/m,
     '/metrics counts exported spans');

done_testing();
