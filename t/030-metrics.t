# Metrics, status and the usage ledger.  After a known sequence of
# requests (JSON, streams, a stream the client cut, bad bodies, an
# unknown model, a missing key) the Prometheus page has exact counts, is
# accepted by promtool, and both pages refuse a missing or wrong admin
# key and obey allow/deny.  The ledger has one row per request with the
# right fields; rows survive PostgreSQL refusing connections (written
# when it is back), a reload and a quit (flushed by the exiting workers),
# and a quit while PostgreSQL is down (spilled, then sent by the next
# nginx); a worker killed while holding rows has them counted as lost.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Select;
use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(start_nginx http_request http_send http_read psql
                   wait_until env_or_skip make_key);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $admin = 'admin-key-0123456789abcdef';
my $dir = tempdir('gpugate-metrics-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $run = "t030-$$";
my $n_gw = 0;

my ($key) = make_key("tenant-$run", name => 'metrics');

# gateway(%o): interval, workers, spill (dir) for the ledger
sub gateway {
    my (%o) = @_;
    my $gw = "$run-" . $n_gw++;
    my $spill = $o{spill} ? " spill=$o{spill}" : '';
    my $ng = start_nginx(workers => $o{workers} || 2, http => <<"HTTP",
    gpugate_auth_zone zone=k$gw:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    gpugate_usage_ledger "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2" gateway=$gw batch=10 interval=$o{interval}$spill exit_timeout=3s;
    upstream runtime { server 127.0.0.1:$mock; keepalive 4; }
    gpugate_model mock-model pool=runtime;
HTTP
        server => <<"SRV");
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
        location = /metrics {
            allow 127.0.0.1;
            deny all;
            gpugate_metrics admin_key=$admin;
        }
        location = /status { gpugate_status admin_key=$admin; }
        location = /metrics-closed {
            deny all;
            gpugate_metrics;
        }
        location = /metrics-open { gpugate_metrics; }
SRV
    return ($ng, $gw);
}

sub chat {
    my ($ng, $body, %h) = @_;
    return http_request($ng->port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json',
                          Authorization => "Bearer $key", %h }, $body);
}

sub body {
    my ($stream, $words, $extra) = @_;
    return '{"model":"mock-model","max_tokens":3,' . ($extra || '')
         . ($stream ? '"stream":true,"stream_options":{"include_usage":true},'
                    : '')
         . '"messages":[{"role":"user","content":"' . ("w " x $words)
         . '"}]}';
}

sub rows {
    my ($gw, $where) = @_;
    return psql("SELECT count(*) FROM usage_events WHERE gateway = '$gw'"
                . ($where ? " AND $where" : ''));
}

sub page {
    my ($ng, $path) = @_;
    return http_request($ng->port, 'GET', $path,
                        { Authorization => "Bearer $admin" });
}

sub metric {
    my ($text, $re) = @_;
    my $sum = 0;
    my $seen = 0;
    for (split /\n/, $text) {
        next if /^#/;
        if (/^$re (\S+)$/) {
            $sum += $1;
            $seen++;
        }
    }
    return $seen ? $sum : undef;
}

# --- a known sequence ----------------------------------------------------

my ($ng, $gw) = gateway(interval => '200ms');

my ($prompt, $completion) = (0, 0);
for my $i (1 .. 3) {
    my $r = chat($ng, body(0, $i + 1));
    is($r->{status}, 200, "JSON chat $i");
    my ($p, $c) = $r->{body} =~ /"prompt_tokens":(\d+),"completion_tokens":(\d+)/;
    $prompt += $p;
    $completion += $c;
}
for my $i (1 .. 2) {
    my $r = chat($ng, body(1, 4));
    is($r->{status}, 200, "stream $i");
    my ($p, $c) = $r->{body} =~ /"prompt_tokens":(\d+),"completion_tokens":(\d+)/;
    $prompt += $p;
    $completion += $c;
}
is(chat($ng, '{"model":')->{status}, 400, 'bad JSON: 400');
is(chat($ng, '{"model":"nope","messages":[{"role":"user","content":"x"}]}')
       ->{status}, 404, 'unknown model: 404');
is(http_request($ng->port, 'POST', '/v1/chat/completions',
                { 'Content-Type' => 'application/json' }, body(0, 1))
       ->{status}, 401, 'no key: 401');

# a stream the client leaves after two tokens
{
    my $s = http_send($ng->port, 'POST', '/v1/chat/completions',
                      { 'Content-Type' => 'application/json',
                        Authorization => "Bearer $key",
                        'X-Mock-Stall-After' => 2 }, body(1, 2));
    my $got = '';
    my $sel = IO::Select->new($s);
    # the role event and both tokens, however slowly they come
    my $deadline = time + 10;
    while ((() = $got =~ /"content"/g) < 3) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        sysread($s, my $buf, 4096) or last;
        $got .= $buf;
    }
    close $s;
    like($got, qr/"content"/, 'cut stream: tokens arrived before the cut');
    $completion += 2;
}

ok(wait_until(10, sub { rows($gw) == 9 }),
   'ledger: one row per request, 9') or diag(rows($gw));

my $m = page($ng, '/metrics');
is($m->{status}, 200, 'metrics page');
like($m->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
     '... in the text format');
my $t = $m->{body};
my $tn = "tenant-$run";
is(metric($t, qr/gpugate_requests_total\{model="mock-model",tenant="\Q$tn\E",status="200"\}/),
   6, 'requests_total: 6 answered 200 (3 JSON, 2 streams, 1 cut)');
is(metric($t, qr/gpugate_requests_total\{model="",tenant="\Q$tn\E",status="400"\}/),
   1, '... 1 bad body');
is(metric($t, qr/gpugate_requests_total\{model="_refused",tenant="\Q$tn\E",status="404"\}/),
   1, '... 1 unknown model, under the fixed label "_refused"');
is(metric($t, qr/gpugate_requests_total\{model="",tenant="",status="401"\}/),
   1, '... 1 without a key');
is(metric($t, qr/gpugate_prompt_tokens_total\{model="mock-model",tenant="\Q$tn\E"\}/),
   $prompt, "prompt tokens: $prompt, as the answers said");
is(metric($t, qr/gpugate_completion_tokens_total\{model="mock-model",tenant="\Q$tn\E"\}/),
   $completion, "completion tokens: $completion (the cut stream's 2 too)");
is(metric($t, qr/gpugate_request_duration_seconds_count\{model="mock-model"\}/),
   6, 'duration histogram: 6 requests of mock-model');
is(metric($t, qr/gpugate_time_to_first_token_seconds_count\{model="mock-model"\}/),
   3, 'TTFT histogram: the three streams (JSON answers have no TTFT)');
is(metric($t, qr/gpugate_request_duration_seconds_bucket\{model="mock-model",le="\+Inf"\}/),
   6, '... +Inf bucket equals the count');
is(metric($t, qr/gpugate_partial_responses_total\{model="mock-model"\}/),
   1, 'partial: the cut stream');
is(metric($t, qr/gpugate_active_streams\{model="mock-model"\}/), 0,
   'active streams: none left');
is(metric($t, qr/gpugate_auth_requests_total\{source="[a-z]+",result="ok"\}/),
   8, 'auth: 8 keys accepted (from any layer)');
is(metric($t, qr/gpugate_auth_requests_total\{source="none",result="refused"\}/),
   1, 'auth: 1 refused without a key');
is(metric($t, qr/gpugate_ledger_rows_total\{state="written"\}/), 9,
   'ledger: 9 rows written');

SKIP: {
    skip 'promtool not installed', 2
        unless system('command -v promtool >/dev/null 2>&1') == 0;
    open my $f, '>', "$dir/metrics.txt" or die;
    print $f $t;
    close $f;
    my $out = `promtool check metrics < $dir/metrics.txt 2>&1`;
    is($?, 0, 'promtool check metrics: accepted') or diag($out);
    is($out, '', '... without a lint warning');
}

# --- access ----------------------------------------------------------------

{
    my $r = http_request($ng->port, 'GET', '/metrics', {});
    is($r->{status}, 401, 'metrics without the admin key: 401');
    like($r->{body}, qr/"code":"invalid_admin_key"/, '... in OpenAI JSON');
    is(http_request($ng->port, 'GET', '/metrics',
                    { Authorization => 'Bearer wrong-key-0123456789abcd' })
           ->{status}, 401, 'a wrong key: 401');
    is(http_request($ng->port, 'GET', '/status', {})->{status}, 401,
       'status without the key: 401');
    is(http_request($ng->port, 'GET', '/metrics-closed', {})->{status}, 403,
       'deny all: 403 before any key');
    is(http_request($ng->port, 'GET', '/metrics-open', {})->{status}, 200,
       'without admin_key= the page is open (allow/deny alone)');
    is(http_request($ng->port, 'POST', '/metrics-open', {}, 'x')->{status},
       405, 'POST: 405');

    my $s = page($ng, '/status');
    is($s->{status}, 200, 'status page');
    my $j = eval { decode_json($s->{body}) };
    ok($j && $j->{ledger}{enabled} && $j->{ledger}{written} == 9
       && $j->{ledger}{pending} == 0, 'status: ledger counts')
        or diag($s->{body});
    is($j && $j->{gateway}, $gw, 'status: the gateway name');
    ok($j && $j->{auth_cache} && $j->{auth_cache}{shm_hits} >= 7
       && exists $j->{auth_cache}{evicted},
       'status: the key cache\'s counters');
    like($t, qr/^gpugate_auth_cache_events_total\{event="evicted"\} \d+$/m,
         'metrics: the key cache\'s evictions');
}

# --- ledger rows -------------------------------------------------------------

is(rows($gw, "stream AND status = 200 AND NOT partial"
             . " AND completion_tokens > 0 AND prompt_tokens > 0"
             . " AND ttft_ms IS NOT NULL"), 2, 'rows: two whole streams');
is(rows($gw, "NOT stream AND status = 200 AND prompt_tokens > 0"), 3,
   'rows: three JSON answers');
is(rows($gw, "stream AND partial AND completion_tokens = 2"), 1,
   'rows: the cut stream, partial, with the tokens seen');
is(rows($gw, "status = 401 AND api_key_id IS NULL AND tenant_id IS NULL"), 1,
   'rows: the refused request, with no key');
is(rows($gw, "status = 404 AND model = 'nope' AND api_key_id IS NOT NULL"),
   1, 'rows: the unknown model, with its key');
is(rows($gw, "endpoint = '/v1/chat/completions' AND agent_name = '127.0.0.1:$mock'"
             . " AND duration_ms >= 0 AND length(request_id) = 32"
             . " AND created_at > now() - interval '5 minutes'"), 6,
   'rows: endpoint, upstream (the 6 that reached it), duration, request id'
   . ' and time');

# --- PostgreSQL refuses connections for a while -----------------------------

{
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS false", 'postgres');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
       . " WHERE datname = 'gpugate' AND pid <> pg_backend_pid()",
         'postgres');
    my @st = map { chat($ng, body(0, 2))->{status} } 1 .. 20;
    is("@st", join(' ', (200) x 20),
       'PostgreSQL down: cached keys keep working');
    # held: a write was tried and failed, and the rows are still there
    my $j;
    wait_until(10, sub {
        return 0 unless $ng->log =~ /gpugate ledger: cannot write usage rows/;
        $j = eval { decode_json(page($ng, '/status')->{body}) };
        $j && ($j->{ledger}{pending} // 0) >= 20;
    });
    is($j && $j->{ledger}{pending}, 20, '... and their rows are held');
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS true", 'postgres');
    ok(wait_until(20, sub { rows($gw) == 29 }),
       'PostgreSQL back: every held row written') or diag(rows($gw));
    like($ng->log, qr/gpugate ledger: cannot write usage rows/,
         '... the outage was logged');
}

$ng->stop;

# --- reload and quit flush ----------------------------------------------------

{
    my ($ng2, $gw2) = gateway(interval => '60s');
    chat($ng2, body(0, 1)) for 1 .. 5;
    is(rows($gw2), 0, 'interval=60s: nothing written yet');
    $ng2->reload;
    ok(wait_until(10, sub { rows($gw2) == 5 }),
       'reload: the old workers wrote their rows before exiting');
    chat($ng2, body(0, 1)) for 1 .. 4;
    $ng2->stop;
    is(rows($gw2), 9, 'quit: the rows were written before the exit');
}

# --- a worker killed: its rows are counted as lost -------------------------

{
    my ($ng3, $gw3) = gateway(interval => '60s', workers => 1);
    chat($ng3, body(0, 1)) for 1 .. 3;
    my ($worker) = `pgrep -P ${\ $ng3->pid}` =~ /(\d+)/;
    kill 'KILL', $worker;
    ok(wait_until(10, sub {
           (metric(page($ng3, '/metrics')->{body},
                   qr/gpugate_ledger_rows_total\{state="lost"\}/) // 0) >= 3
       }), 'worker killed: its 3 held rows are counted as lost');
    like($ng3->log, qr/worker \d+ died holding 3 usage rows and 0 requests in flight; they are lost/,
         '... and logged');
    $ng3->stop;
}

# --- quit while PostgreSQL is down: spilled, sent by the next nginx ---------

{
    my $spill = "$dir/spill";
    mkdir $spill;
    my ($ng4, $gw4) = gateway(interval => '60s', spill => $spill);
    chat($ng4, body(0, 1)) for 1 .. 6;
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS false", 'postgres');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
       . " WHERE datname = 'gpugate' AND pid <> pg_backend_pid()",
         'postgres');
    $ng4->stop;
    my @files = glob("$spill/gpugate-usage-*.json");
    ok(@files >= 1, 'quit with PostgreSQL down: rows spilled to files')
        or diag($ng4->log);
    psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS true", 'postgres');
    is(rows($gw4), 0, '... none in PostgreSQL yet');

    my ($ng5) = gateway(interval => '200ms', spill => $spill);
    ok(wait_until(20, sub { rows($gw4) == 6 }),
       'the next nginx sent the spilled rows') or diag($ng5->log);
    ok(wait_until(5, sub { !glob("$spill/gpugate-usage-*") }),
       '... and removed the files');
    $ng5->stop;
}

# --- the usage tool ------------------------------------------------------------

{
    my $tool = "$FindBin::Bin/../scripts/gpugate-usage";
    my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    my $out = `$tool --dsn '$dsn' --gateway $gw --by tenant,model --from '1 hour' --format json`;
    my $j = eval { decode_json($out) } || [];
    my ($row) = grep { $_->{tenant} eq "tenant-$run" && $_->{model} eq 'mock-model' } @$j;
    ok($row && $row->{requests} == 26 && $row->{streams} == 3
       && $row->{partial} == 1 && $row->{errors} == 0,
       'gpugate-usage: requests, streams and partial per tenant and model')
        or diag($out);
    ok($row && $row->{prompt_tokens} > $prompt
       && $row->{completion_tokens} > $completion,
       '... with their tokens');
    my ($none) = grep { $_->{tenant} eq '(none)' } @$j;
    ok($none && $none->{requests} == 1 && $none->{errors} == 1,
       '... and the request without a key under (none)');
    my $csv = `$tool --dsn '$dsn' --gateway $gw --by model --format csv`;
    like($csv, qr/^model,requests,errors,streams,partial,prompt_tokens/m,
         'gpugate-usage: csv with a header');
    `$tool --dsn '$dsn' --by nothing 2>/dev/null`;
    is($? >> 8, 2, 'gpugate-usage: a bad --by exits 2');
}

END {
    eval { psql("ALTER DATABASE gpugate ALLOW_CONNECTIONS true",
                'postgres') };
}

done_testing();
