# The Test::Nginx::Socket runner itself, on stock nginx only: every
# supported section at least once.  Written for upstream Test::Nginx too:
# nothing here is specific to the bundled runner in t/lib.

use FindBin;
use lib "$FindBin::Bin/lib";
use StallServer;
use Test::Nginx::Socket;

# the upstream for the timeout/abort block: answers part of a response,
# then stalls (sets $TEST_NGINX_STALL_PORT)
StallServer::start();

repeat_each(2);

# test points per request, added up block by block (the SKIP block is not
# counted by blocks(); skip_nginx skips its 2; the LAST block counts)
plan tests => repeat_each() * (4 + 2 + 2 + 2 + 2 + 2 + 6 + 5 + 2 + 2 + 2
                               + 2 + 3 + 2 + 2);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: config, request, response_headers (and !absent), response_body
--- config
    location = /t {
        add_header X-Runner yes;
        return 200 "hello\n";
    }
--- request
GET /t
--- response_headers
X-Runner: yes
!X-Not-There
--- response_body
hello



=== TEST 2: http_config, more_headers, $TEST_NGINX_SERVER_PORT, body_like
--- http_config
    map $http_x_in $out { default "got-$http_x_in"; }
--- config
    location = /t { return 200 "$out port=$TEST_NGINX_SERVER_PORT\n"; }
--- request
GET /t
--- more_headers
X-In: abc
--- response_body_like chomp
^got-abc port=\d+$



=== TEST 3: main_config, $ServerPort in response_body
--- main_config
    env GPUGATE_RUNNER_TEST;
--- config
    location = /t { return 200 "port=$server_port\n"; }
--- request
GET /t
--- response_body
port=$ServerPort



=== TEST 4: error_code
--- config
    location = /t { return 403; }
--- request
GET /t
--- error_code: 403
--- response_body_like: 403 Forbidden



=== TEST 5: request body (POST, with Content-Length added) reaches nginx
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo { return 200 "len=$http_content_length\n"; }
--- request
POST /t
0123456789
--- response_body
len=10



=== TEST 6: request eval
--- config
    location = /t { return 200 "$request_method $server_protocol $arg_a\n"; }
--- request eval
"GET /t?a=" . (6 * 7) . " HTTP/1.0"
--- response_body
GET HTTP/1.0 42



=== TEST 7: error_log, no_error_log, grep_error_log
--- config
    location /files/ { root html/sub; }
--- request
GET /files/missing.txt
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
No such file or directory
--- no_error_log
[crit]
[emerg]
--- grep_error_log eval
qr/open\(\) "[^"]+missing\.txt" failed/
--- grep_error_log_out eval
qr/^open\(\) "[^"]+missing\.txt" failed\n$/



=== TEST 8: raw_request eval, response_headers_like, no_error_log eval
--- config
    location = /t {
        add_header X-Stamp "v1-$server_port";
        return 200 "$request_method $http_x_raw\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\nX-Raw: yes\r\n\r\n"
--- response_headers_like
X-Stamp: v1-\d+
--- response_body
GET yes
--- no_error_log eval
["[error]", qr/\[alert\]/]



=== TEST 9: user_files are served from html/
--- config
--- user_files
>>> hello.txt
from a user file
>>> sub/dir/deep.txt
deep
--- request
GET /sub/dir/deep.txt
--- response_body
deep



=== TEST 10: init runs (after nginx started) before the requests
--- init
my $f = Test::Nginx::Util::html_dir() . "/from-init.txt";
open my $fh, '>', $f or die "cannot write $f: $!";
print $fh "written by init\n";
close $fh;
--- config
--- request
GET /from-init.txt
--- response_body
written by init



=== TEST 11: wait and timeout (ample: 10 s) on a normal response
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- timeout: 10s
--- wait: 0.1
--- response_body
ok



=== TEST 12: timeout with abort: the checks see what arrived
The upstream sends "partial-" of a 1000-byte body and then stalls: the
client gives up after 0.5 s without a byte and checks the part it has.
--- config
    location = /slow {
        proxy_pass http://127.0.0.1:$TEST_NGINX_STALL_PORT/length;
        proxy_buffering off;
    }
--- request
GET /slow
--- timeout: 500ms
--- abort
--- response_body_like chomp
\Apartial-\z



=== TEST 13: block log_level
--- log_level: warn
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- no_error_log
[debug]



=== TEST 14: SKIP leaves a block out
--- SKIP
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 15: skip_nginx skips its test points
--- skip_nginx
2: > 0.0.1
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 16: LAST ends the file here
--- LAST
--- config
    location = /t { return 200 "last\n"; }
--- request
GET /t
--- response_body
last



=== TEST 17: after LAST: never runs
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked
