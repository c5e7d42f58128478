# Security of the router's location (issue 15, items 7, 8, 14, 17).
#
# 7: in a gpugate_openai location nothing reaches a runtime unless the
#    router understands it (its endpoints, POST only, the model checked
#    against the key) or gpugate_passthrough names the path; other paths,
#    methods and spellings of a path (%2F, //, /./, case, trailing slash)
#    are refused with OpenAI error JSON; /v1/models, /v1/models/ and
#    /v1/models/ID are the gateway's, filtered by the key.
# 8: a runtime's X-Accel-* headers do not steer nginx (redirect, rate,
#    buffering), and neither they, Set-Cookie nor X-Gpugate-* reach the
#    client; headers the location adds itself stay.
# 14: a client's Upgrade is refused before any runtime is asked, and a
#    runtime's 101 (or any 1xx) becomes a 502, never a raw pipe.
# 17: top-level members that differ from a checked one only by case (as
#    Go's encoding/json, so Ollama, would read them) are refused.
#
# The runtime is a server block of the same nginx that says what it saw
# and adds the hostile headers, plus a raw TCP server answering 101.
#
# Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(free_port start_nginx http_request http_send http_read
                   make_key wait_until env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $fake = free_port();
my ($key) = make_key("tenant-t043-$$", name => 'limited',
                     models => ['mock-model']);

# a runtime that switches protocols on every request, then echoes
my $raw = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                Listen => 16, ReuseAddr => 1)
    or die "listen: $!\n";
my $raw_port = $raw->sockport;
my $raw_pid = fork() // die "fork: $!\n";

if ($raw_pid == 0) {
    $SIG{PIPE} = 'IGNORE';    # a client gone mid-answer must not kill us
    while (my $c = $raw->accept) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, my $buf, 4096);
            last unless $n;
            $head .= $buf;
        }
        syswrite($c, "HTTP/1.1 101 Switching Protocols\r\n"
                   . "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                   . "raw-from-runtime\n");
        my $sel = IO::Select->new($c);
        while ($sel->can_read(2)) {
            my $n = sysread($c, my $buf, 4096);
            last unless $n;
            syswrite($c, "echo:$buf");
        }
        close $c;
    }
    exit 0;
}
close $raw;

END { kill 'TERM', $raw_pid if $raw_pid; }

my $ng = start_nginx(http => <<"HTTP", server => <<"SRV");
    gpugate_auth_zone zone=k043:1m ttl=60s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate connect_timeout=2";
    upstream fake { server 127.0.0.1:$fake; }
    gpugate_model mock-model pool=fake;
    gpugate_model secret-model pool=fake;

    map \$http_x_fake \$fake_redirect { redirect /leak; named \@leak; default ""; }
    map \$http_x_fake \$fake_rate { rate 1000000; default ""; }

    # the runtime: says what it saw, with every header it should not send
    server {
        listen 127.0.0.1:$fake;
        default_type application/json;
        add_header X-Accel-Redirect \$fake_redirect;
        add_header X-Accel-Limit-Rate \$fake_rate;
        add_header X-Accel-Expires 60;
        add_header X-Accel-Charset koi8-r;
        add_header Set-Cookie "sid=runtime; Path=/";
        add_header X-Gpugate-Agent evil;
        add_header X-Gpugate-Load "queue=0";
        add_header X-Runtime-Saw "\$request_method \$request_uri";
        location / {
            return 200 '{"runtime":"\$request_method \$request_uri"}';
        }
        location /sse/ {
            default_type text/event-stream;
            add_header X-Accel-Buffering no;
            return 200 "data: [DONE]\\n\\n";
        }
    }
HTTP
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_passthrough /v1/tokenize /v1/files/*;
            gpugate_default_pool fake;
            proxy_pass http://\$gpugate_pool;
            add_header X-Limit-Rate \$limit_rate always;
            add_header X-Gpugate-Route gateway always;
            error_page 502 \@err;
        }
        location /sse/v1/ {
            gpugate_openai on;
            proxy_pass http://127.0.0.1:$fake/sse/v1/;
        }
        location /raw/v1/ {
            gpugate_openai on;
            gpugate_passthrough /raw/v1/socket;
            proxy_pass http://127.0.0.1:$raw_port;
            proxy_read_timeout 5s;
            error_page 502 \@err;
        }
        location /leak { internal; return 200 '{"leaked":"internal"}'; }
        location \@leak { return 200 '{"leaked":"named"}'; }
        location \@err { gpugate_error; }
        location / { gpugate_error 404; }
SRV

my $port = $ng->port;
my $auth = { Authorization => "Bearer $key",
             'Content-Type' => 'application/json' };
my $msgs = '"messages":[{"role":"user","content":"hi"}]';

sub req {
    my ($method, $path, $body, %h) = @_;
    return http_request($port, $method, $path, { %$auth, %h }, $body);
}

sub err_code {
    my ($r) = @_;
    my $j = eval { decode_json($r->{body}) } or return '';
    return $j->{error}{code} // 'null';
}

# wait until the key is known (PostgreSQL answers the first lookup)
wait_until(10, sub {
    req('POST', '/v1/chat/completions',
        qq({"model":"mock-model",$msgs}))->{status} == 200
}) or BAIL_OUT('the gateway does not answer an allowed request');

# --- 7: unknown endpoints and spellings are the gateway's 404 -----------

for my $path ('/v1/moderations', '/v1/batches', '/v1/messages/batches',
              '/v1/audio/transcriptions/', '/v1/rerank/', '/v1/Rerank',
              '/v1/chat/completions/', '/v1/Chat/Completions',
              '/v1/CHAT/COMPLETIONS', '/v1/embeddings/', '/v1/completion',
              '/v1/files', '/v1/chat/completions.json', '/v1/') {
    my $r = req('POST', $path, qq({"model":"secret-model",$msgs}));
    is($r->{status}, 404, "POST $path: 404");
    is(err_code($r), 'unknown_url', "POST $path: OpenAI error JSON");
    ok(!exists $r->{headers}{'x-runtime-saw'}, "POST $path: no runtime");
}

{
    # multipart: the model is read from the upload, the key's list applies
    my $b = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
          . "secret-model\r\n--XyZ\r\nContent-Disposition: form-data; "
          . "name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--XyZ--\r\n";
    my $r = req('POST', '/v1/audio/transcriptions', $b,
                'Content-Type' => 'multipart/form-data; boundary=XyZ');
    is($r->{status}, 403, 'multipart transcription: 403');
    ok(!exists $r->{headers}{'x-runtime-saw'}, 'multipart: no runtime');
}

# a raw path that is not the normalised one: refused, not guessed
for my $path ('/v1/chat%2Fcompletions', '/v1/chat%2fcompletions',
              '/v1//chat/completions', '/v1/./chat/completions',
              '/v1/x/../chat/completions', '/v1/%63hat/completions',
              '/v1/embeddings%2F..%2Fchat%2Fcompletions', '/v1/rerank%2F',
              '/v1/rer%61nk', '/v1/chat/completions%20') {
    my $r = req('POST', $path, qq({"model":"mock-model",$msgs}));
    is($r->{status}, 400, "POST $path: 400");
    is(err_code($r), 'invalid_path', "POST $path: invalid_path");
    ok(!exists $r->{headers}{'x-runtime-saw'}, "POST $path: no runtime");
}

# the endpoints the router routes take POST only
for my $path ('/v1/chat/completions', '/v1/completions', '/v1/embeddings') {
    for my $method (qw(GET PUT PATCH DELETE OPTIONS HEAD)) {
        my $r = req($method, $path, qq({"model":"secret-model",$msgs}));
        is($r->{status}, 405, "$method $path: 405");
        is($r->{headers}{allow}, 'POST', "$method $path: Allow: POST");
        ok(!exists $r->{headers}{'x-runtime-saw'}, "$method $path: no runtime");
    }
}

# the model list is the gateway's, with only what the key may use
for my $path ('/v1/models', '/v1/models/') {
    my $r = req('GET', $path);
    is($r->{status}, 200, "GET $path: 200");
    my $j = eval { decode_json($r->{body}) } || {};
    is_deeply([ map { $_->{id} } @{ $j->{data} || [] } ], ['mock-model'],
              "GET $path: the key's models only");
    ok(!exists $r->{headers}{'x-runtime-saw'}, "GET $path: no runtime");
}

{
    my $r = req('GET', '/v1/models/mock-model');
    is($r->{status}, 200, 'GET /v1/models/mock-model: 200');
    my $j = eval { decode_json($r->{body}) } || {};
    is($j->{id}, 'mock-model', '...the model object');
    is($j->{object}, 'model', '...of object model');

    for my $path ('/v1/models/secret-model', '/v1/models/mock-model/',
                  '/v1/models/Mock-Model', '/v1/models/nobody',
                  '/v1/models%2Fsecret-model') {
        $r = req('GET', $path);
        is($r->{status}, 404, "GET $path: 404");
        is(err_code($r), 'model_not_found', "GET $path: model_not_found");
        ok(!exists $r->{headers}{'x-runtime-saw'}, "GET $path: no runtime");
    }

    for my $method (qw(POST PUT DELETE)) {
        $r = req($method, '/v1/models', '{}');
        is($r->{status}, 405, "$method /v1/models: 405");
        is($r->{headers}{allow}, 'GET, HEAD', "$method /v1/models: Allow");
    }

    $r = req('HEAD', '/v1/models/');
    is($r->{status}, 200, 'HEAD /v1/models/: 200');
}

# what is understood or named still works
{
    my $r = req('POST', '/v1/chat/completions',
                qq({"model":"mock-model",$msgs}));
    is($r->{headers}{'x-runtime-saw'}, 'POST /v1/chat/completions',
       'an allowed model reaches the runtime');

    $r = req('POST', '/v1/chat/completions',
             qq({"model":"secret-model",$msgs}));
    is($r->{status}, 403, 'a model the key may not use: 403');

    $r = req('POST', '/v1/tokenize', '{"prompt":"q"}');
    is($r->{headers}{'x-runtime-saw'}, 'POST /v1/tokenize',
       'a named path is passed through');

    $r = req('GET', '/v1/files/file-1?purpose=x');
    is($r->{headers}{'x-runtime-saw'}, 'GET /v1/files/file-1?purpose=x',
       'a named prefix is passed through, with its query');

    $r = req('POST', '/v1/chat/completions?x=1',
             qq({"model":"mock-model",$msgs}));
    is($r->{status}, 200, 'a query string does not change the path');
}

# --- 17: case variants of checked members -------------------------------

for my $c (['/v1/chat/completions', qq({"model":"mock-model","Model":"secret-model",$msgs}), 'model'],
           ['/v1/chat/completions', qq({"MODEL":"secret-model","model":"mock-model",$msgs}), 'model'],
           ['/v1/chat/completions', qq({"model":"mock-model","Stream":true,$msgs}), 'stream'],
           ['/v1/chat/completions', qq({"model":"mock-model","\xc5\xbftream":true,$msgs}), 'stream'],
           ['/v1/chat/completions', qq({"model":"mock-model","stream":true,"Stream_Options":{"include_usage":true},$msgs}), 'stream_options'],
           ['/v1/chat/completions', qq({"model":"mock-model",$msgs,"MESSAGES":[]}), 'messages'],
           ['/v1/completions', qq({"model":"mock-model","prompt":"a","pRompt":"b"}), 'prompt'],
           ['/v1/embeddings', qq({"model":"mock-model","input":"a","Input":"b"}), 'input']) {
    my ($path, $body, $param) = @$c;
    my $r = req('POST', $path, $body);
    is($r->{status}, 400, "$path $body: 400");
    my $j = eval { decode_json($r->{body}) } || {};
    is($j->{error}{param}, $param, "...naming $param");
    ok(!exists $r->{headers}{'x-runtime-saw'}, '...no runtime');
}

# --- 8: the runtime's control headers -----------------------------------

for my $path ('/v1/chat/completions', '/v1/completions', '/v1/tokenize') {
    my $body = $path =~ /chat/ ? qq({"model":"mock-model",$msgs})
                               : '{"model":"mock-model","prompt":"x"}';

    for my $mode (qw(redirect named rate none)) {
        my $r = req('POST', $path, $body, 'X-Fake' => $mode);
        is($r->{status}, 200, "$path ($mode): 200");
        like($r->{body}, qr/^\{"runtime":"POST \Q$path\E"\}/,
             "$path ($mode): the runtime's own answer");
        unlike($r->{body}, qr/leaked/, "$path ($mode): no redirect");
        is($r->{headers}{'x-limit-rate'}, '0',
           "$path ($mode): no rate limit from the runtime");
        my @bad = grep { /^(x-accel-|x-gpugate-(?!route)|set-cookie)/ }
                  keys %{ $r->{headers} };
        is("@bad", '', "$path ($mode): no runtime control headers");
        is($r->{headers}{'x-gpugate-route'}, 'gateway',
           "$path ($mode): the location's own header stays");
    }
}

{
    $ng->mark;
    my $r = http_request($port, 'POST', '/sse/v1/chat/completions', {},
        qq({"model":"mock-model","stream":true,$msgs}));
    is($r->{body}, "data: [DONE]\n\n", 'an event stream passes');
    like($ng->log, qr/gpugate openai: event stream, buffering on -> off/,
         "the runtime's X-Accel-Buffering: no is ignored");
    is($r->{headers}{'x-accel-buffering'}, 'no',
       'the gateway\'s own X-Accel-Buffering is sent');
    ok(!exists $r->{headers}{'set-cookie'}, '...without Set-Cookie');
}

# --- 14: upgrades -------------------------------------------------------

for my $c (['POST', '/v1/chat/completions', qq({"model":"mock-model",$msgs})],
           ['GET', '/v1/models', ''],
           ['POST', '/v1/rerank', '{}'],
           ['GET', '/raw/v1/socket', ''],
           ['POST', '/raw/v1/chat/completions', qq({"model":"mock-model",$msgs})]) {
    my ($method, $path, $body) = @$c;
    for my $proto ('websocket', 'h2c', 'gpugate-tunnel/1') {
        my $r = req($method, $path, $body, Upgrade => $proto,
                    Connection => 'Upgrade');
        is($r->{status}, 400, "$method $path, Upgrade: $proto: 400");
        is(err_code($r), 'upgrade_not_allowed', '...upgrade_not_allowed');
        unlike($r->{raw}, qr/raw-from-runtime|echo:/, '...no pipe');
    }
}

# a runtime that answers 101 anyway
for my $c (['GET', '/raw/v1/socket', ''],
           ['POST', '/raw/v1/chat/completions', qq({"model":"mock-model",$msgs})]) {
    my ($method, $path, $body) = @$c;
    $ng->mark;
    my $r = http_request($port, $method, $path, {}, $body);
    is($r->{status}, 502, "$method $path, the runtime says 101: 502");
    is(err_code($r), 'upstream_error', '...OpenAI error JSON');
    unlike($r->{raw}, qr/raw-from-runtime/, '...no runtime bytes');
    like($ng->log, qr/the runtime answered 101, which is never passed/,
         '...logged');
}

# --- gpugate_passthrough: configuration mistakes ------------------------

{
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    my $load = join '', map { "load_module $_;\n" }
        split ' ', $ENV{TEST_NGINX_LOAD_MODULES};
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';

    for my $c (['v1/rerank', qr/must start with "\/"/],
               ['/v1/re%72ank', qr/invalid character 0x25/],
               ['/v1/a*b', qr/invalid character 0x2a/],
               ['/v1/rerank?x', qr/invalid character 0x3f/],
               ['/v1//rerank', qr/empty or dot segment/],
               ['/v1/./rerank', qr/empty or dot segment/],
               ['/v1/../rerank', qr/empty or dot segment/],
               ['/v1/..', qr/empty or dot segment/]) {
        my ($arg, $re) = @$c;
        open my $fh, '>', "$dir/nginx.conf" or die;
        print $fh "$load\nerror_log $dir/logs/error.log;\n"
                . "pid $dir/logs/nginx.pid;\nevents {}\nhttp {\n"
                . "    server { location /v1/ { gpugate_openai on; "
                . "gpugate_passthrough /v1/ok '$arg'; } }\n}\n";
        close $fh;
        my $out = `$bin -t -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
        isnt($? >> 8, 0, "gpugate_passthrough '$arg' is refused");
        like($out, $re, '...with a precise message');
    }
}

$ng->stop;

done_testing();
