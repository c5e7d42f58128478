# Security and reliability of the usage ledger and the metrics page
# (issue 15 items 4 and 10, issue 25 items 4, 5 and 9):
#
#   - paths and models with invalid UTF-8 or cut inside a character neither stop the ledger nor break /metrics (promtool);
#   - models the gateway refuses (404, 403) count under "_refused" and
#     cannot push real models into "_other";
#   - a row PostgreSQL refuses for its data is dropped alone (counted,
#     logged with its request id), the rest of its batch written;
#   - a spill file PostgreSQL refuses is set aside, the others imported;
#   - rows carry the host name as gateway across reloads;
#   - exit_timeout= runs from a worker's last request;
#   - a spill directory the worker user cannot write refuses the start;
#   - a worker killed with streams in flight: active streams back to 0,
#     its held rows and requests in flight counted as lost.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use Sys::Hostname qw(hostname);
use Test::More;

use GpugateTest qw(start_nginx http_request http_send psql wait_until
                   env_or_skip make_key);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $admin = 'admin-key-0123456789abcdef';
my $run = "t044-$$";
my $n_gw = 0;
my $conninfo = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate"
             . " connect_timeout=2";

my $dir = tempdir('gpugate-t044-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;

# labels and values cut inside a character: 64 bytes for metrics labels,
# 128 for the ledger's model column
my $long_m = ('m' x 62) . "\xe2\x82\xac";       # 65 bytes, cut at 64
my $long_l = ('L' x 126) . "\xe2\x82\xac";      # 129 bytes, cut at 128
my $tenant = "t044-$$";
my $fn = "t044_poison_$$";

my ($key, $key_id) = make_key($tenant, name => 'ledger');
my ($rkey) = make_key("t044-restricted-$$", models => ['mock-model']);

# gateway(%o): gateway (name or '' for the default), interval, workers,
# spill, exit (exit_timeout), open
sub gateway {
    my (%o) = @_;
    my $gw = exists $o{gateway} ? $o{gateway} : "$run-" . $n_gw++;
    my $args = ($gw ne '' ? " gateway=$gw" : '')
             . ($o{spill} ? " spill=$o{spill}" : '')
             . " exit_timeout=" . ($o{exit} || '3s');
    # open: no model list, any model goes to the default pool (its name
    # then comes from the client)
    my $models = $o{open} ? '    gpugate_default_pool runtime;'
                          : '    gpugate_model mock-model pool=runtime;';
    my $ng = start_nginx(workers => $o{workers} || 1, http => <<"HTTP",
    gpugate_auth_zone zone=k$run$n_gw:1m ttl=60s;
    gpugate_auth_postgres "$conninfo";
    gpugate_usage_ledger "$conninfo" batch=10 interval=$o{interval}$args;
    upstream runtime { server 127.0.0.1:$mock; keepalive 4; }
$models
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
        location = /metrics { gpugate_metrics admin_key=$admin; }
        location = /status { gpugate_status admin_key=$admin; }
SRV
    return ($ng, $gw);
}

sub chat {
    my ($ng, $model, %h) = @_;
    my $k = delete $h{key} || $key;
    my $stream = delete $h{stream};
    return http_request($ng->port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json',
                          Authorization => "Bearer $k", %h },
                        '{"model":"' . $model . '","max_tokens":2,'
                        . ($stream ? '"stream":true,' : '')
                        . '"messages":[{"role":"user","content":"hi"}]}');
}

sub rows {
    my ($gw, $where) = @_;
    return psql("SELECT count(*) FROM usage_events WHERE gateway = '$gw'"
                . ($where ? " AND $where" : ''));
}

sub page {
    my ($ng, $path) = @_;
    return http_request($ng->port, 'GET', $path,
                        { Authorization => "Bearer $admin" })->{body};
}

sub status { decode_json(page($_[0], '/status')) }

sub metric {
    my ($text, $re) = @_;
    my ($sum, $seen) = (0, 0);
    for (split /\n/, $text) {
        next if /^#/;
        if (/^$re (\S+)$/) {
            $sum += $1;
            $seen++;
        }
    }
    return $seen ? $sum : undef;
}

sub promtool_ok {
    my ($text, $name) = @_;
    SKIP: {
        skip 'promtool not installed', 1
            unless system('command -v promtool >/dev/null 2>&1') == 0;
        open my $f, '>', "$dir/metrics.txt" or die;
        print $f $text;
        close $f;
        my $out = `promtool check metrics < $dir/metrics.txt 2>&1`;
        is($?, 0, $name) or diag($out);
    }
}

# a trigger refuses rows of models named poison-RUN-*, as PostgreSQL
# refuses a bad value: SQLSTATE 22023
psql("CREATE FUNCTION $fn() RETURNS trigger LANGUAGE plpgsql AS "
   . "'BEGIN IF NEW.model LIKE ''poison-$run-%'' THEN "
   . "RAISE EXCEPTION ''poisoned row'' USING ERRCODE = ''22023''; "
   . "END IF; RETURN NEW; END';"
   . "CREATE TRIGGER $fn BEFORE INSERT ON usage_events FOR EACH ROW "
   . "EXECUTE FUNCTION $fn()");

END {
    eval { psql("DROP TRIGGER IF EXISTS $fn ON usage_events;"
              . "DROP FUNCTION IF EXISTS $fn()") };
}

# --- refused models: one fixed label (15/10) ---------------------------------

my ($ng, $gw) = gateway(interval => '200ms');

{
    my @st = map { chat($ng, "unknown-$run-$_")->{status} } 1 .. 300;
    is(scalar(grep { $_ == 404 } @st), 300, '300 unknown models: 404');
    @st = map { chat($ng, "other-$run-$_", key => $rkey)->{status} } 1 .. 3;
    is("@st", '403 403 403', '3 models the key may not use: 403');
    is(chat($ng, 'mock-model')->{status}, 200, 'then a real model: 200');

    my $t = page($ng, '/metrics');
    unlike($t, qr/model="(unknown|other)-/,
           'no series for a model a client made up');
    is(metric($t, qr/gpugate_requests_total\{model="_refused",tenant="[^"]*",status="404"\}/),
       300, '... the 404s under model="_refused"');
    is(metric($t, qr/gpugate_requests_total\{model="_refused",tenant="[^"]*",status="403"\}/),
       3, '... the 403s too');
    is(metric($t, qr/gpugate_request_duration_seconds_count\{model="mock-model"\}/),
       1, 'the real model has its own histogram, not "_other"');
    is(metric($t, qr/gpugate_metrics_overflow_total/), 0,
       'nothing folded into "_other"');
}

# --- bad bytes in paths and models (15/4, 15/10) ---------------------------

{
    my ($ng, $gw) = gateway(interval => '200ms', open => 1);
    my @paths = ('/v1/%ff', '/v1/%c3%28', '/v1/%80abc', '/v1/%ed%a0%80',
                 '/v1/%f4%90%80%80', '/v1/' . ('a' x 59) . '%e2%82%ac',
                 '/v1/' . ('b' x 58) . '%f0%9f%98%80',
                 '/v1/' . ('c' x 59) . '%c3%a9x');
    my $sent = 0;
    for my $m ('GET', 'POST', 'DELETE') {
        for my $p (@paths) {
            my $r = http_request($ng->port, $m, $p, {}, $m eq 'POST' ? '{}'
                                                                      : undef);
            $sent++ if $r->{status} == 401;
        }
    }
    is($sent, 3 * @paths, "401 for each bad path and method ($sent)");
    # the runtime fails them (a 404 would be "_refused"): their labels
    # are the client's model names
    is(chat($ng, $long_m, 'X-Mock-Fail-Status' => 500)->{status}, 500,
       'a model cut at 64 in metrics');
    is(chat($ng, $long_l, 'X-Mock-Fail-Status' => 503)->{status}, 503,
       'a model cut at 128 in the ledger');
    is(chat($ng, $long_m, stream => 1, 'X-Mock-Fail-Status' => 502)
           ->{status}, 502, '... streamed');

    ok(wait_until(15, sub { rows($gw, 'status = 401') == $sent }),
       "every 401 row written ($sent)") or diag(rows($gw, 'status = 401'));
    ok(wait_until(15, sub { rows($gw) == $sent + 3 }),
       'and every row of the other requests') or diag(rows($gw));
    is(rows($gw, "endpoint = '/v1/' || repeat('a', 59)"), 3,
       'a path cut at 64 inside a character: the character left out');
    is(rows($gw, "endpoint = '/v1/' || chr(65533)"), 3,
       '/v1/%ff: the bad byte stored as U+FFFD');
    is(rows($gw, "model = repeat('L', 126)"), 1,
       'a model cut at 128 inside a character: the character left out');
    my $s = status($ng);
    is($s->{ledger}{failures}, 0, 'no batch refused') or diag(explain($s));
    is($s->{ledger}{pending}, 0, 'nothing held');

    my $t = page($ng, '/metrics');
    my $copy = $t;
    ok(utf8::decode($copy), '/metrics is valid UTF-8');
    like($t, qr/model="${\ ('m' x 62)}"/,
         'the 64-byte label ends before the cut character');
    promtool_ok($t, 'promtool accepts the page');
    $ng->stop;
}

# --- a row PostgreSQL refuses: dropped alone (15/4) -------------------------

{
    my ($ngb, $gwb) = gateway(interval => '2s');
    $ngb->mark;
    # poison at the head, in the middle and at the end of a batch of 10
    my @models = ('poison', ('mock-model') x 4, 'poison', ('mock-model') x 3,
                  'poison');
    my $i = 0;
    chat($ngb, $_ eq 'poison' ? "poison-$run-" . $i++ : $_) for @models;
    chat($ngb, 'mock-model') for 1 .. 4;
    ok(wait_until(20, sub { rows($gwb) == 11 }),
       'the 11 good rows of 14 written') or diag(rows($gwb), $ngb->log);
    ok(wait_until(10, sub { status($ngb)->{ledger}{rejected} == 3 }),
       'the 3 refused rows counted as rejected in /status');
    is(metric(page($ngb, '/metrics'),
              qr/gpugate_ledger_rows_total\{state="rejected"\}/), 3,
       '... and in /metrics');
    my @ids = $ngb->log =~ /refused the usage row of request (\w+)/g;
    is(scalar(@ids), 3, 'each refused row logged with its request id');
    is(status($ngb)->{ledger}{pending}, 0, 'nothing held');
    $ngb->stop;
}

# --- spill files PostgreSQL refuses are set aside (25/5c) --------------------

{
    my $spill = "$dir/spill";
    mkdir $spill;
    my $gws = "$run-spill";
    my $at = time;
    my $seq = 0;
    my $row = sub {
        my ($model) = @_;
        $seq++;
        return qq({"r":"t044-$$-$seq","g":"$gws","m":"$model","e":"/v1/x",)
             . qq("s":false,"pa":false,"p":1,"c":1,"d":1,"st":200,"at":$at});
    };
    my $file = sub {
        my ($name, $n, $text) = @_;
        open my $f, '>', "$spill/gpugate-usage-1-$name-0-$n.json" or die;
        print $f $text;
        close $f;
    };
    $file->(1, 2, '[' . $row->('good') . ',' . $row->('good') . ']');
    $file->(2, 1, '[' . $row->("bad\xff") . ']');
    $file->(3, 2, '[' . $row->('good') . ',' . $row->('good') . ']');
    $file->(4, 1, '[' . $row->('nul\\u0000') . ']');
    $file->(5, 1, '[{"r":');
    $file->(6, 2, '[' . $row->('good') . ',' . $row->("poison-$run-s")
                  . ']');
    $file->(7, 2, '[' . $row->('good') . ',' . $row->('good') . ']');

    my ($ngs) = gateway(interval => '200ms', spill => $spill);
    ok(wait_until(20, sub { rows($gws) == 6 }),
       'the 6 rows of the 3 good files imported') or diag($ngs->log);
    ok(wait_until(10, sub { my @b = glob("$spill/*.bad"); @b == 4 }),
       'the 4 refused files renamed aside') or diag(`ls $spill`);
    ok(!glob("$spill/gpugate-usage-*.json"), 'no file left to send');
    is(status($ngs)->{ledger}{rejected}, 5,
       'their 5 rows counted as rejected');
    my @logged = $ngs->log =~ /spill file "[^"]+" refused/g;
    is(scalar(@logged), 4, 'each set-aside file logged');
    $ngs->stop;
}

# --- the gateway name across reloads (25/4) ---------------------------------

{
    my $host = lc hostname();
    my ($tk, $kid) = make_key("t044-gw-$$", name => 'gw');
    my ($ngg) = gateway(gateway => '', interval => '200ms', workers => 2);
    my $workers = sub { split ' ', `pgrep -P ${\ $ngg->pid}` };
    for my $round (0 .. 3) {
        if ($round) {
            # new workers answer once the old ones are gone
            my @old = $workers->();
            $ngg->reload;
            wait_until(20, sub {
                !grep({ kill 0, $_ } @old) && $workers->() == 2
            }) or diag "round $round: the old workers are still there";
        }
        is(chat($ngg, 'mock-model', key => $tk)->{status}, 200,
           "round $round: 200") for 1 .. 2;
    }
    my $where = "api_key_id = $kid";
    ok(wait_until(15, sub {
           psql("SELECT count(*) FROM usage_events WHERE $where") == 8 }),
       '8 rows over 3 reloads');
    is(psql("SELECT string_agg(DISTINCT gateway, ',') FROM usage_events"
          . " WHERE $where"), $host,
       "every row's gateway is the host name ($host)");
    is(status($ngg)->{gateway}, $host, '/status too');
    $ngg->stop;
}

# --- exit_timeout runs from the last request (25/5b) -------------------------

{
    my $spill = "$dir/spill-exit";
    mkdir $spill;
    my ($nge, $gwe) = gateway(interval => '200ms', exit => '1s',
                              spill => $spill);
    my @socks = map {
        http_send($nge->port, 'POST', '/v1/chat/completions',
                  { 'Content-Type' => 'application/json',
                    Authorization => "Bearer $key",
                    'X-Mock-Tokens' => 4 + 2 * $_,
                    'X-Mock-Token-Delay-Ms' => 500 },
                  '{"model":"mock-model","stream":true,"max_tokens":20,'
                  . '"messages":[{"role":"user","content":"hi"}]}')
    } 1 .. 3;
    ok(wait_until(10, sub {
           (metric(page($nge, '/metrics'),
                   qr/gpugate_active_streams\{model="mock-model"\}/) // 0)
           == 3 }), '3 streams running');
    $nge->reload;
    for my $s (@socks) {
        local $/;
        my $body = <$s>;
        like($body // '', qr/\[DONE\]/, 'a stream ends after the reload');
    }
    ok(wait_until(15, sub { rows($gwe) == 3 }),
       'rows of streams ending 3-5 s after the reload (exit_timeout=1s)'
       . ' written') or diag($nge->log);
    is(status($nge)->{ledger}{spilled}, 0, '... none spilled');
    ok(!glob("$spill/gpugate-usage-*"), '... no spill file');
    $nge->stop;
}

# --- the spill directory must be writable by the worker user (25/5a) --------

{
    my $base = "$dir/check";
    mkdir $base;
    chmod 0755, $base;
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $load = join '', map { "load_module $_;\n" }
        split ' ', $ENV{TEST_NGINX_LOAD_MODULES};
    my $root = $> == 0;
    my $check = sub {
        my ($spill) = @_;
        my $d = tempdir('gpugate-t044c-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        open my $f, '>', "$d/nginx.conf" or die;
        print $f $load, ($root ? "user nobody nogroup;\n" : ''),
            "error_log $d/error.log;\npid $d/nginx.pid;\nevents {}\n",
            "http { gpugate_usage_ledger \"$conninfo\" spill=$spill; }\n";
        close $f;
        my $out = `$bin -t -p $d -c $d/nginx.conf -e $d/error.log 2>&1`;
        return ($? == 0, $out);
    };

    my ($ok, $out) = $check->("$base/missing");
    ok(!$ok && $out =~ m{spill directory "\Q$base\E/missing" cannot be used},
       'a missing spill directory refuses the start') or diag($out);
    open my $f, '>', "$base/file" or die;
    close $f;
    ($ok, $out) = $check->("$base/file");
    ok(!$ok && $out =~ /is not a directory/, 'so does a file') or diag($out);

    SKIP: {
        skip 'not root: workers run as this user', 5 unless $root;
        mkdir "$base/rootdir";
        chmod 0755, "$base/rootdir";
        ($ok, $out) = $check->("$base/rootdir");
        ok(!$ok && $out =~ m{spill directory "\Q$base\E/rootdir" is not writable by the worker user "nobody"},
           'a root-owned 0755 directory: refused, naming it and the user')
            or diag($out);
        mkdir "$base/closed";
        chmod 0700, "$base/closed";
        mkdir "$base/closed/open";
        chmod 0777, "$base/closed/open";
        ($ok, $out) = $check->("$base/closed/open");
        ok(!$ok && $out =~ m{"\Q$base\E/closed" does not allow it},
           'a writable directory under a closed one: refused, naming it')
            or diag($out);
        mkdir "$base/mine";
        chown scalar(getpwnam('nobody')), -1, "$base/mine";
        chmod 0700, "$base/mine";
        ($ok, $out) = $check->("$base/mine");
        ok($ok, "the worker user's own directory: accepted") or diag($out);
        mkdir "$base/world";
        chmod 01777, "$base/world";
        ($ok, $out) = $check->("$base/world");
        ok($ok, 'a world-writable directory: accepted') or diag($out);
        ($ok, $out) = $check->("$base/mine/../rootdir");
        ok(!$ok, 'a path through another directory: checked as written')
            or diag($out);
    }
}

# --- a worker killed with streams in flight (25/5d, 25/9) -------------------

{
    my ($ngk, $gwk) = gateway(interval => '60s');
    is(chat($ngk, 'mock-model')->{status}, 200, "held row $_") for 1 .. 2;
    my @socks = map {
        http_send($ngk->port, 'POST', '/v1/chat/completions',
                  { 'Content-Type' => 'application/json',
                    Authorization => "Bearer $key",
                    'X-Mock-Stall-After' => 1 },
                  '{"model":"mock-model","stream":true,"max_tokens":20,'
                  . '"messages":[{"role":"user","content":"hi"}]}')
    } 1 .. 4;
    ok(wait_until(10, sub {
           (metric(page($ngk, '/metrics'),
                   qr/gpugate_active_streams\{model="mock-model"\}/) // 0)
           == 4 }), '4 streams active');
    my ($worker) = `pgrep -P ${\ $ngk->pid}` =~ /(\d+)/;
    kill 'KILL', $worker;
    ok(wait_until(15, sub {
           my $t = page($ngk, '/metrics') // '';
           (metric($t, qr/gpugate_active_streams\{model="mock-model"\}/)
            // -1) == 0
       }), 'worker killed: active streams back to 0');
    my $t = page($ngk, '/metrics');
    is(metric($t, qr/gpugate_ledger_rows_total\{state="lost"\}/), 6,
       'lost: its 2 held rows and 4 requests in flight');
    like($ngk->log, qr/died holding 2 usage rows and 4 requests in flight/,
         '... logged');
    close $_ for @socks;
    $ngk->stop;
}

$ng->stop;

done_testing();
