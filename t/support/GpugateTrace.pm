package GpugateTrace;

# Helpers for the tracing tests (t/110-114): a small OTLP/HTTP receiver
# written for them (POST /v1/traces, JSON bodies appended to a file, one
# line each; or a collector that accepts and never answers), the spans
# it received, and a gateway node with tracing on in front of a real
# agent and the mock runtime.  Plain Perl on top of GpugateTest.

use strict;
use warnings;

use Exporter qw(import);
use Fcntl qw(:flock);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use POSIX ();

use GpugateTest qw(start_nginx http_request wait_until free_port);
use GpugateAgents qw(start_mock start_agent write_token wait_parked);

our @EXPORT_OK = qw(otlp_receiver otlp_spans trace_node chat trace_dir);

my $dir = tempdir('gpugate-trace-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
chmod 0755, $dir;
my %kids;

sub trace_dir { $dir }

# otlp_receiver(mode => 'ok' | 'hang' | 'refuse'): a collector on a free
# port; 'ok' answers 200 and appends each body to ->{file}, 'hang'
# accepts and reads but never answers, 'refuse' answers 503.  Returns
# { port, file, pid }.
sub otlp_receiver {
    my (%o) = @_;
    my $mode = $o{mode} || 'ok';
    my $file = "$dir/otlp-" . scalar(keys %kids) . '.jsonl';
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0',
                                    Listen => 128, ReuseAddr => 1)
        or die "listen: $!\n";
    my $port = $srv->sockport;
    open my $touch, '>', $file or die;
    close $touch;

    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        my @held;
        while (my $c = $srv->accept) {
            my $buf = '';
            while ($buf !~ /\r\n\r\n/) {
                my $n = sysread($c, $buf, 65536, length $buf);
                last if !$n;
            }
            my ($head, $body) = split /\r\n\r\n/, $buf, 2;
            $body //= '';
            my ($len) = ($head // '') =~ /^content-length:\s*(\d+)/mi;
            $len //= 0;
            while (length $body < $len) {
                my $n = sysread($c, $body, $len - length $body,
                                length $body);
                last if !$n;
            }
            if ($mode eq 'hang') {
                push @held, $c;         # never answered, never closed
                next;
            }
            if ($mode eq 'ok') {
                (my $line = $body) =~ s/\n/ /g;
                open my $f, '>>', $file or POSIX::_exit(1);
                flock $f, LOCK_EX;
                print $f "$line\n";
                close $f;
            }
            my $st = $mode eq 'ok' ? '200 OK' : '503 Unavailable';
            print $c "HTTP/1.1 $st\r\nContent-Type: application/json\r\n"
                   . "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    $kids{$pid} = 1;
    return { port => $port, file => $file, pid => $pid };
}

# otlp_spans(RECEIVER): every span received so far, each with its
# attributes flattened into ->{attr}{KEY} and ->{service}
sub otlp_spans {
    my ($rx) = @_;
    my @spans;
    open my $f, '<', $rx->{file} or return ();
    while (my $line = <$f>) {
        my $doc = eval { decode_json($line) } or next;
        for my $rs (@{ $doc->{resourceSpans} || [] }) {
            my ($svc) = map { $_->{value}{stringValue} }
                grep { $_->{key} eq 'service.name' }
                @{ $rs->{resource}{attributes} || [] };
            for my $ss (@{ $rs->{scopeSpans} || [] }) {
                for my $sp (@{ $ss->{spans} || [] }) {
                    $sp->{service} = $svc;
                    for my $a (@{ $sp->{attributes} || [] }) {
                        my $v = $a->{value};
                        $sp->{attr}{ $a->{key} } =
                            exists $v->{arrayValue}
                            ? [ map { $_->{stringValue} }
                                @{ $v->{arrayValue}{values} } ]
                            : (values %$v)[0];
                    }
                    push @spans, $sp;
                }
            }
        }
    }
    return @spans;
}

# trace_node(otlp => 'DIRECTIVE ARGS' or '', agent_conf => TEXT,
# mock_args => [...], ledger => 1, workers => N): a gateway with
# "gpugate_trace on" on /v1/ (traceparent and tracestate sent upstream
# from the variables), its access log naming the trace, an agent and a
# mock; returns { ngx, mock, agent, key, key_id, tenant }.
sub trace_node {
    my (%o) = @_;
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $rd = $ENV{TEST_NGINX_REDIS_PORT};
    my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate "
            . "connect_timeout=2";
    my $tag = "tr$$" . int(rand 1e6);
    my $spill = "$dir/spill-$tag";
    mkdir $spill;
    chmod 0777, $spill;
    my $ledger = $o{ledger}
        ? "    gpugate_usage_ledger \"$dsn\" gateway=$tag batch=10 "
          . "interval=200ms spill=$spill;\n" : '';
    my $otlp = $o{otlp} ? "    gpugate_otlp $o{otlp};\n" : '';
    my $mock = start_mock(dir => $dir, name => $tag,
                          args => $o{mock_args}
                                  || [ '--ttft-ms', '0',
                                       '--token-delay-ms', '0' ]);
    my $ngx = start_nginx(workers => $o{workers} || 2, listen => 'reuseport',
                          http => <<"HTTP", server => <<'SRV');
    gpugate_auth_zone zone=$tag:1m ttl=60s negative_ttl=5s stale=300s;
    gpugate_auth_postgres "$dsn" timeout=5s;
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
$ledger$otlp    log_format trace '\$status trace=\$gpugate_trace_id span=\$gpugate_span_id';
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=2s ping_timeout=2s;
        }
        location = /gpugate/status { gpugate_tunnel_status; }
        location /v1/ {
            access_log logs/trace.log trace;
            gpugate_trace on;
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header traceparent $gpugate_traceparent;
            proxy_set_header tracestate $gpugate_tracestate;
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://$gpugate_pool;
            error_page 502 503 504 @err;
        }
        location @err { gpugate_error; }
        location = /metrics { gpugate_metrics; }
SRV
    write_token($dir, $tag);
    my $agent = start_agent(dir => $dir, name => $tag, port => $ngx->port,
                            conf => "runtime = http://127.0.0.1:"
                                    . $mock->port . "\ncapacity = 8\n"
                                    . "log_level = debug\n"
                                    . ($o{agent_conf} // ''));
    wait_parked($ngx->port, $tag, 1, 20)
        or die "agent did not connect:\n" . $agent->text;
    my $tenant = "tenant-$tag";
    my ($key, $key_id) = GpugateTest::make_key($tenant, name => $tag);
    return { ngx => $ngx, mock => $mock, agent => $agent, key => $key,
             key_id => $key_id, tenant => $tenant, name => $tag };
}

# chat(NODE, stream, HEADERS...): a chat completion; the response hash
sub chat {
    my ($n, $stream, %h) = @_;
    my $body = '{"model":"mock-model","stream":'
             . ($stream ? 'true' : 'false')
             . ',"messages":[{"role":"user","content":"hi"}]}';
    return http_request($n->{ngx}->port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json',
                          Authorization => "Bearer $n->{key}", %h },
                        $body, 15);
}

END {
    local $?;
    kill 'KILL', $_ for keys %kids;
    waitpid($_, 0) for keys %kids;
}

1;
