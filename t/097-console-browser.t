# The operator console in a real browser (issue 20): Debian's chromium,
# headless, driven over the DevTools protocol by t/support/GpugateCdp.pm's
# WebSocket client, against a real stack (nginx, PostgreSQL, Redis, the mock
# runtime, a gpugate-agent, and a second agent whose telemetry names a
# GPU "<img src=x onerror=alert(1)>").  It logs in with an admin
# credential, sees the agents and GPUs (the markup shown as text: no img
# element, no dialog), creates a key (shown once; a real chat request
# passes with it), revokes it (refused after), drains an agent (the
# registry shows it).  No script error and no CSP violation on the way.
#
# Agent names cannot carry markup (agents.name has a CHECK since
# sql/001), so the markup comes in where an agent can put any printable
# text, its GPU names, and in a key's name.
#
# Screenshots go to the test's temp dir; GPUGATE_SCREENSHOTS=DIR also
# writes them there (the README's docs/console-*.png:
# GPUGATE_SCREENSHOTS=docs scripts/test.sh --no-deps t/097-console-browser.t).
# Skipped without chromium (GPUGATE_CHROMIUM=PATH for another binary).
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Copy qw(copy);
use File::Temp qw(tempdir);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use GpugateAdmin qw(admin);
use GpugateCdp qw(cdp_start cdp_stop cdp cdp_drain_events js js_until
                  screenshot);
use GpugateTest qw(start_nginx http_read http_send psql wait_until
                   env_or_skip make_key make_agent tunnel_connect);
use GpugateAgents qw(agent_bin start_mock start_agent agent_instances
                     adopt);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $chromium = $ENV{GPUGATE_CHROMIUM}
    || (grep { -x } '/usr/bin/chromium', '/usr/bin/chromium-browser')[0];
plan skip_all => 'no chromium (apt-get install chromium, or set '
               . 'GPUGATE_CHROMIUM)' unless $chromium && -x $chromium;
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir('gpugate-console-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
my $run = sprintf '%x%x', $$, time;
my $evil = '<img src=x onerror=alert(1)>';

my $cred = admin("console-$run", 'admin');
psql("INSERT INTO tenants (name) VALUES ('acme-$run')");
my ($traffic_key) = make_key("acme-$run", name => 'traffic');

my $mock = start_mock(dir => $dir, models => 'mock-model');

my $console = "$root/modules/admin/console/";
my $csp = "default-src 'self'; script-src 'self'; style-src 'self'; "
        . "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        . "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

my $ng = start_nginx(workers => 2, http => <<"HTTP", server => <<"SRV");
    gpugate_auth_zone zone=console$run:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
    gpugate_model mock-model pool=agents;
    upstream agents {
        gpugate_tunnel queue=16 queue_timeout=3s;
    }
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=60s ping_timeout=5s;
        }
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_pass http://\$gpugate_pool;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /admin/v1/ {
            gpugate_admin;
        }
        location /console/ {
            alias $console;
            index index.html;
            types {
                text/html html;
                text/css css;
                application/javascript js;
            }
            add_header Content-Security-Policy "$csp" always;
            add_header X-Content-Type-Options nosniff always;
            add_header X-Frame-Options DENY always;
        }
        location = /console/status {
            auth_request /admin/v1/whoami;
            gpugate_status;
        }
        location = /console/metrics {
            auth_request /admin/v1/whoami;
            gpugate_metrics;
        }
SRV
my $port = $ng->port;

# a real agent, and a second one that shows two GPUs (one named with markup)
my $gpu_a = "gpu-a-$run";
my $agent = start_agent(dir => $dir, name => $gpu_a, port => $port,
                        args => [ '--runtime',
                                  'http://127.0.0.1:' . $mock->port,
                                  '--idle_timeout', 120 ]);
my $gpu_b = "gpu-b-$run";
my ($tun) = tunnel_connect($port, $gpu_b, make_agent($gpu_b),
    'X-Gpugate-Models' => 'big-model', 'X-Gpugate-Capacity' => 8,
    'X-Gpugate-Telemetry' => 'cpu_pct=23, cpus=32, mem_used_mb=61000, '
        . 'mem_total_mb=257000, gpus=2; gpu=0, name="NVIDIA H200", '
        . 'util_pct=71, mem_used_mb=98304, mem_total_mb=143771, temp_c=58, '
        . "power_w=431; gpu=1, name=\"$evil\", util_pct=12, "
        . 'mem_used_mb=2048, mem_total_mb=143771, temp_c=39, power_w=96');
ok($tun, 'the telemetry agent is connected');
ok(wait_until(20, sub { agent_instances($port, $gpu_a) }),
   'the real agent is connected') or diag $agent->text;

sub chat {
    my ($key, %h) = @_;
    return http_send($port, 'POST', '/v1/chat/completions',
        { 'Content-Type' => 'application/json',
          Authorization => "Bearer $key", %h },
        '{"model":"mock-model","stream":true,'
        . '"messages":[{"role":"user","content":"hi"}]}');
}

# traffic for the charts, from a child process, until the test ends
my $traffic = fork // die "fork: $!";
if ($traffic == 0) {
    my $n = 0;
    while (1) {
        my %h = ('X-Mock-TTFT-Ms' => 40 + 30 * ($n % 5),
                 'X-Mock-Token-Delay-Ms' => 2);
        $h{'X-Mock-Fail-Status'} = 500 if $n % 9 == 8;
        my $s = eval { chat($traffic_key, %h) };
        eval { http_read($s, 5) } if $s;
        $n++;
        sleep 0.05;
    }
}
adopt($traffic, 'traffic');

my @shots;

# shot(CLIENT, NAME, SELECTOR): the element as a PNG in the temp dir and
# in GPUGATE_SCREENSHOTS; returns its size
sub shot {
    my ($c, $name, $sel) = @_;
    my $file = "$dir/console-$name.png";
    my $size = screenshot($c, $file, $sel);
    push @shots, $file;
    if (my $out = $ENV{GPUGATE_SCREENSHOTS}) {
        copy($file, "$out/console-$name.png") or die "copy: $!\n";
    }
    return $size;
}

# --- the browser ------------------------------------------------------------

my $t_browser = time;
my $c = cdp_start($chromium, $dir);
ok($c, 'chromium started headless')
    or die 'no DevTools: ' . `tail -5 $dir/chromium.log`;

# --- log in -------------------------------------------------------------

cdp($c, 'Page.navigate', { url => "http://127.0.0.1:$port/console/" });
ok(js_until($c, 10, "!!document.getElementById('login')"
                  . " && !document.getElementById('login').hidden"),
   'the console shows its login form')
    or diag explain [ js($c, "location.href + ' '"
                         . " + document.documentElement.outerHTML.slice(0, 400)"),
                      $c->{errors} ];
ok(js($c, "document.getElementById('dash').hidden"),
   'and nothing else before a login');

js($c, "document.getElementById('cred').value = 'gg-admin-wrong';"
     . " document.getElementById('login-form').requestSubmit(); 1");
ok(js_until($c, 10, "document.getElementById('login-error').textContent"
                  . ".indexOf('refused') >= 0"),
   'a wrong credential is refused');

js($c, "document.getElementById('cred').value = " . $json->encode($cred)
     . "; document.getElementById('login-form').requestSubmit(); 1");
ok(js_until($c, 10, "!document.getElementById('dash').hidden"),
   'the right one opens the dashboard');
is(js($c, "sessionStorage.length + ':' + document.cookie.length"), '1:0',
   'the credential is in sessionStorage, no cookie');

# --- agents and GPUs, the markup as text ---------------------------------

ok(js_until($c, 10, "(function () { var t = document.querySelector("
    . "'#agents tbody').textContent; return t.indexOf('$gpu_a') >= 0"
    . " && t.indexOf('$gpu_b') >= 0 })()"), 'both agents are listed');
ok(js_until($c, 10, "[].some.call(document.querySelectorAll('#gpus td'),"
    . " function (td) { return td.textContent === '1: ' + "
    . $json->encode($evil) . " })"),
   'the GPU named with markup is shown as that text');
is(js($c, "document.querySelectorAll('img').length"), 0,
   'no img element was made of it');
like(js($c, "document.querySelector('#agents tbody').textContent"),
     qr/connected/, 'agents show their live state');
# the README's screenshot waits for more of the charts
my $polls = $ENV{GPUGATE_SCREENSHOTS} ? 20 : 2;
ok(js_until($c, 10 + 2 * $polls,
            "+document.body.getAttribute('data-polls') >= $polls"),
   'the dashboard polls without a reload')
    or diag js($c, "Promise.all(['/console/status', '/console/metrics',"
               . " '/admin/v1/usage?group=key&from=2026-01-01T00:00:00Z'].map("
               . "function (u) { return fetch(u, { headers: { Authorization:"
               . " 'Bearer ' + sessionStorage.getItem('gpugate-admin-credential')"
               . " } }).then(function (r) { return r.status + ' ' + u; }) }))"
               . ".then(function (a) { return a.join(', ') + ' polls='"
               . " + document.body.getAttribute('data-polls') })");
ok(js($c, "document.querySelector('#models tbody').textContent"
        . ".indexOf('mock-model') >= 0"), 'the traffic table names the model');
ok(shot($c, 'overview', 'body') > 1000, 'screenshot: overview');

# --- create a key, use it, revoke it ----------------------------------------

js($c, "document.getElementById('key-tenant').value = 'acme-$run';"
     . " document.getElementById('key-name').value = " . $json->encode($evil)
     . "; document.getElementById('key-models').value = 'mock-model';"
     . " document.getElementById('key-rpm').value = '600';"
     . " document.getElementById('key-form').requestSubmit(); 1");
ok(js_until($c, 10, "!document.getElementById('new-key').hidden"),
   'create key: the new key is shown');
my $key = js($c, "document.getElementById('new-key-value').textContent");
like($key, qr/^sk-gg-[A-Za-z0-9]{40}$/, 'once, in full');
my $kid = psql("SELECT id FROM api_keys WHERE prefix = '"
               . substr($key, 0, 12) . "'");
ok($kid, 'it is in PostgreSQL');
ok(js_until($c, 10, "!!document.querySelector('#keys tr[data-key=\"$kid\"]')"),
   'and in the key table');
is(js($c, "document.querySelector('#keys tr[data-key=\"$kid\"] td:nth-child(4)')"
        . ".textContent"), $evil, 'its markup name shown as text');
is(js($c, "document.querySelectorAll('img').length"), 0, 'still no img');
ok(shot($c, 'keys', '#sec-keys') > 1000, 'screenshot: keys');

{
    my $r = http_read(chat($key), 10);
    is($r->{status}, 200, 'a chat request with the new key: 200');
    like($r->{body}, qr/data: \[DONE\]/, 'streamed to the end');
}

js($c, "document.getElementById('new-key-close').click(); 1");
is(js($c, "document.getElementById('new-key-value').textContent"), '',
   'Done removes the key from the page');

js($c, "document.querySelector('#keys tr[data-key=\"$kid\"] button').click(); 1");
ok(js_until($c, 10, "document.querySelector('#keys tr[data-key=\"$kid\"]')"
                  . ".textContent.indexOf('revoked') >= 0"),
   'revoke: the key shows revoked');
{
    my $r = http_read(chat($key), 10);
    is($r->{status}, 401, 'the revoked key is refused');
}

# --- drain ---------------------------------------------------------------

my $aid = psql("SELECT id FROM agents WHERE name = '$gpu_a'");
js($c, "document.querySelector('#agents tr[data-agent=\"$aid\"] button')"
     . ".click(); 1");
ok(js_until($c, 10, "document.querySelector('#agents tr[data-agent=\"$aid\"]')"
                  . ".textContent.indexOf('drained') >= 0"),
   'drain: the agent shows drained')
    or diag explain [ js($c, "document.getElementById('dash-error')"
                         . ".textContent"), $c->{alerts}, $c->{errors},
                      psql("SELECT drained_at FROM agents WHERE id = $aid") ];
ok(wait_until(5, sub {
       my @i = agent_instances($port, $gpu_a);
       @i && $i[0]{drained};
   }), 'and the registry has it drained');
ok(shot($c, 'agents', '#sec-agents') > 1000, 'screenshot: agents');

cdp_drain_events($c);
is_deeply($c->{alerts}, [], 'no alert or other dialog but the confirms');
is_deeply([ grep { !/status of 401/ } @{ $c->{errors} } ], [],
          'no script error, no CSP violation (only the wrong login\'s 401)');

# the README's copies stay small; in the suite a lane's database may hold
# other tests' keys and tenants, and the pages grow with them
for (@shots) {
    my $kb = int((-s $_) / 1024);
    if ($ENV{GPUGATE_SCREENSHOTS}) {
        ok($kb < 150, "$_: ${kb} KB, under 150 KB");
    } else {
        diag "$_: ${kb} KB";
    }
}

kill 'TERM', $traffic;
waitpid $traffic, 0;
cdp_stop($c);
close $tun;
$agent->stop;
diag sprintf 'browser part: %.1f s', time - $t_browser;

done_testing();
