# The agent on the GPU host with real runtime dialects (the mock speaks
# each one's discovery, health and load endpoints): one agent with six
# [runtime] sections, each discovered in its own dialect (OpenAI
# /v1/models for vLLM, llama.cpp and SGLang, Ollama /api/tags, TGI /info),
# each with its own capacity, all listed by the gateway's /v1/models and
# its status page, each model routed to the runtime that serves it.  A
# runtime killed takes its capacity away (requests go to another agent,
# none fails) and comes back with its models; a runtime that loads
# another model is advertised with it.  A supervised runtime
# (runtime_command) is started, restarted when it dies and stopped with
# the agent.  No NVML here: the agent says so and still reports the host.
# Configuration errors exit 2 with the file and line.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(start_nginx http_request wait_until env_or_skip
                   free_port);
use GpugateAgents qw(agent_bin mock_bin start_mock start_agent slurp
                     tunnel_status agent_instances mock_served);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $agent_bin = agent_bin();
my $mock_bin = mock_bin();
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-rt-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# name => [served models, dialect flags]
my %mocks = (
    ollama => [ 'rt-ollama:8b', '--dialect', 'ollama' ],
    tgi    => [ 'rt-tgi/model', '--dialect', 'tgi' ],
    vllm   => [ 'rt-vllm', '--dialect', 'vllm' ],
    llama  => [ 'rt-llamacpp', '--dialect', 'llamacpp' ],
    sglang => [ 'rt-sglang', '--dialect', 'sglang' ],
    shared => [ 'rt-shared' ],
    backup => [ 'rt-shared' ],
);
my (%mock, %mport);

for my $m (sort keys %mocks) {
    my ($models, @flags) = @{ $mocks{$m} };
    $mock{$m} = start_mock(dir => $dir, name => $m, models => $models,
                           args => [ '--quiet', @flags ]);
    $mport{$m} = $mock{$m}->port;
}

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
    }
    gpugate_model rt-* pool=agents;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location = /metrics { gpugate_metrics; }
        location = /status { gpugate_status; }
        location = /v1/models { gpugate_models; }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;

# agent(NAME, CONFIG TEXT): an agent with its token in a file; returns
# (its object, its log file)
sub agent {
    my ($name, $conf) = @_;
    my $a = start_agent(dir => $dir, name => $name, port => $port,
                        conf => "spare = 1\nload_interval = 1\n"
                              . "telemetry_interval = 1\n"
                              . "log_level = debug\n$conf");
    return ($a, $a->log);
}

sub model_ids {
    my $r = http_request($port, 'GET', '/v1/models', {}, '');
    return join ' ', sort $r->{body} =~ /"id":"([^"]*)"/g;
}

sub chat {
    my ($model) = @_;
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json' },
                        qq({"model":"$model","max_tokens":2,"messages":)
                        . '[{"role":"user","content":"hi"}]}');
}

sub served { mock_served($mport{$_[0]}) }

sub status { tunnel_status($port) }

# the status entries of agent NAME
sub instances { agent_instances($port, $_[0]) }

# --- one agent, six runtimes, six dialects ----------------------------------

my $sections = '';
for my $m (qw(ollama tgi vllm llama sglang shared)) {
    my $type = { ollama => 'ollama', tgi => 'tgi', vllm => 'vllm',
                 llama => 'llamacpp', sglang => 'sglang',
                 shared => 'openai' }->{$m};
    $sections .= "[runtime $m]\nruntime = http://127.0.0.1:$mport{$m}\n"
               . "runtime_type = $type\n"
               . ($m eq 'tgi' ? "capacity = 3\n" : '');
}

my ($multi, $multi_log) = agent('rt-multi', $sections);

my $all = 'rt-llamacpp rt-ollama:8b rt-sglang rt-shared rt-tgi/model rt-vllm';
ok(wait_until(15, sub { model_ids() eq $all }),
   'the models of six runtimes, each read in its dialect, are listed')
    or diag(model_ids(), "\n", slurp($multi_log));

for my $m (qw(ollama tgi vllm llama sglang)) {
    my $model = $mocks{$m}[0];
    my $before = served($m);
    my $r = chat($model);
    is($r->{status}, 200, "$model: answered");
    like($r->{body}, qr/"model":"\Q$model\E"/, '... by a runtime serving it');
    is(served($m), $before + 1, "... the $m runtime");
}

{
    my @multi = instances('rt-multi');
    is(scalar @multi, 6, 'status: one entry per runtime of the agent');
    my ($tgi) = grep { "@{ $_->{models} }" eq 'rt-tgi/model' } @multi;
    ok($tgi && $tgi->{capacity} == 3 && $tgi->{workers}[0]{connections} >= 1,
       '... each with its own models, capacity and connections');
    my %ids = map { $_->{instance} => 1 } @multi;
    is(scalar keys %ids, 6, '... and its own instance id');
}

ok(wait_until(5, sub {
       my ($a) = instances('rt-multi');
       my $t = $a && $a->{telemetry};
       $t && $t->{gpu_count} == 0 && $t->{cpus} >= 1
          && $t->{mem_total_mb} > 0 && @{ $t->{gpus} } == 0
   }), 'status: host telemetry reported, no GPU')
    or diag explain status();
like(slurp($multi_log), qr/no GPU telemetry: libnvidia-ml\.so\.1: cannot open/,
     'NVML absent: said once, at start');

{
    my $m = http_request($port, 'GET', '/metrics', {}, '')->{body};
    like($m, qr/^gpugate_tunnel_capacity_requests\{agent="rt-multi"\} 83$/m,
         'metrics: the agent\'s capacity, its six runtimes summed');
    like($m, qr/^gpugate_tunnel_connections\{state="idle",agent="rt-multi"\} [1-9]\d*$/m,
         'metrics: its idle connections');
    like($m, qr/^gpugate_agent_gpus\{agent="rt-multi"\} 0$/m,
         'metrics: its GPU count from telemetry (none here)');
    like($m, qr/^gpugate_agent_memory_total_bytes\{agent="rt-multi"\} [1-9]\d*$/m,
         'metrics: its host memory');
    SKIP: {
        skip 'promtool not installed', 1
            unless system('command -v promtool >/dev/null 2>&1') == 0;
        open my $f, '>', "$dir/metrics.txt" or die;
        print $f $m;
        close $f;
        my $out = `promtool check metrics < $dir/metrics.txt 2>&1`;
        ok($? == 0 && $out eq '', 'promtool accepts the tunnel metrics')
            or diag($out);
    }
    my $st = eval { decode_json(http_request($port, 'GET', '/status', {}, '')
                                    ->{body}) };
    my @a = grep { $_->{name} eq 'rt-multi' } @{ $st->{tunnel}{agents} || [] };
    is(scalar @a, 6, 'gpugate_status: the agent\'s six entries');
    is_deeply($st->{tunnel}{pools},
              [ { upstream => 'agents', queue => 64,
                  queue_timeout_ms => 5000, aging_ms => 1000,
                  ttft_step_ms => 100, error_weight => 4, failures => 3,
                  cooldown_ms => 10000 } ],
              'gpugate_status: the tunnel pool, its queue and weights');
}

# --- a runtime killed: its capacity goes, requests go elsewhere -------------

my ($backup) = agent('rt-backup',
                           "runtime = http://127.0.0.1:$mport{backup}\n");
ok(wait_until(10, sub { instances('rt-backup') == 1 }),
   'a second agent serves rt-shared too');

$mock{shared}->stop('KILL');
ok(wait_until(5, sub {
       !grep { "@{ $_->{models} }" eq 'rt-shared' } instances('rt-multi')
   }), 'runtime killed: its tunnels leave the gateway within seconds');
like(slurp($multi_log),
     qr/runtime "shared" \(127\.0\.0\.1:\d+\) stopped listening/,
     '... the agent says which runtime');

{
    my $before = served('backup');
    my @st = map { chat('rt-shared')->{status} } 1 .. 10;
    is("@st", join(' ', (200) x 10), '... every request is answered');
    is(served('backup'), $before + 10, '... by the other agent');
    is(chat('rt-vllm')->{status}, 200, '... and the other runtimes serve on');
}

$mock{shared}->restart;
ok(wait_until(10, sub {
       grep { "@{ $_->{models} }" eq 'rt-shared' } instances('rt-multi')
   }), 'runtime back: offered again, with its models read again');

# --- a runtime that loads another model is advertised with it ---------------

http_request($mport{shared}, 'POST', '/mock/models', {},
             'rt-shared,rt-late');
ok(wait_until(10, sub { model_ids() =~ /\brt-late\b/ }),
   'a model the runtime loaded later is listed')
    or diag(slurp($multi_log));
is(chat('rt-late')->{status}, 200, '... and served');

# --- a supervised runtime ---------------------------------------------------

my $sport = free_port();
# the agent starts this runtime itself on the port in its URL: a guess
# from free_port, since the agent has no way to learn a port it did not
# configure
my ($super, $super_log) = agent('rt-super',
    "runtime = http://127.0.0.1:$sport\n"
    . "runtime_command = $mock_bin --listen 127.0.0.1:$sport"
    . " --models rt-super --quiet --log-file $dir/mock-super.log\n");

ok(wait_until(10, sub { slurp($super_log) =~ /runtime "default": pid \d+ listens after \d+ ms/ }),
   'supervised: started, and found listening');
ok(wait_until(5, sub { chat('rt-super')->{status} == 200 }), '... serving');
my ($rpid) = slurp($super_log) =~ /runtime "default": started pid (\d+)/;
ok($rpid && kill(0, $rpid), '... as a child process of the agent');

kill 'KILL', $rpid;
ok(wait_until(5, sub { slurp($super_log) =~ /runtime "default" \(pid $rpid\) killed by signal 9; restart 1 in \d+ ms/ }),
   'supervised runtime killed: a restart is scheduled')
    or diag(slurp($super_log));
my $rpid2;
ok(wait_until(10, sub {
       my @pids = slurp($super_log) =~ /runtime "default": started pid (\d+)/g;
       $rpid2 = $pids[-1];
       @pids == 2 && $rpid2 != $rpid
          && slurp($super_log) =~ /pid $rpid2 listens after/
   }), '... restarted and listening again')
    or diag(slurp($super_log));
ok(wait_until(5, sub { chat('rt-super')->{status} == 200 }),
   '... and serving again');
is(() = slurp($super_log) =~ /runtime "default" serves: rt-super/g, 2,
   '... its models read again after the restart');

is($super->stop('TERM') >> 8, 0, 'agent SIGTERM: exit 0');
ok(wait_until(5, sub { !instances('rt-super') }),
   'status: the agent is gone once disconnected');
unlike(http_request($port, 'GET', '/metrics', {}, '')->{body},
       qr/agent="rt-super"/, 'metrics: ... and its series too');
like(slurp($super_log), qr/runtime "default": stopping pid $rpid2/,
     '... after stopping its runtime');
ok(!kill(0, $rpid2), '... which is gone');

# --- configuration errors ---------------------------------------------------

sub check_conf {
    my ($text) = @_;
    open my $f, '>', "$dir/check.conf" or die;
    print $f "gateway = https://gw.example\nname = a\n"
           . "token_file = $dir/rt-multi.token\n$text";
    close $f;
    my $out = `$agent_bin --config $dir/check.conf --check 2>&1`;
    return ($? >> 8, $out);
}

{
    my ($rc, $out) = check_conf("[runtime a]\nruntime = http://127.0.0.1:1\n"
                                . "[runtime b]\nruntime = http://127.0.0.1:2\n"
                                . "runtime_type = ollama\n");
    is($rc, 0, '--check: two sections are fine');
    like($out, qr/configuration ok/, '... and it says so');

    ($rc, $out) = check_conf("[runtime a]\nruntime_type = triton\n");
    is($rc, 2, '--check: a bad runtime_type exits 2');
    like($out, qr{check\.conf:5: runtime_type: "triton" is not openai, vllm, llamacpp, sglang, tgi or ollama},
         '... naming the file, the line and the choices');

    ($rc, $out) = check_conf("[runtime a]\nmodels = x\n");
    is($rc, 2, '--check: a section without its URL exits 2');
    like($out, qr/\[runtime a\]: "runtime" \(its URL\) is required/,
         '... and says what is missing');

    my $missing = `$agent_bin --config $dir/nonexistent.conf --check 2>&1`;
    is($? >> 8, 2, '--check: a missing file exits 2');
    like($missing, qr/nonexistent\.conf: No such file or directory/,
         '... naming it');
}

unlike($ngx->log, qr/signal \d+|\[alert\]/, 'no worker crashed');

done_testing();
