# The Test::Nginx runner itself, on stock nginx features only: every
# supported section at least once.  Runs the same under upstream
# Test::Nginx.

use Test::Nginx::Socket 'no_plan';

repeat_each(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: config, request, response_body, response_headers, !absent
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



=== TEST 2: http_config, more_headers, $TEST_NGINX_* expansion
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



=== TEST 3: main_config and error_code
--- main_config
    env GPUGATE_RUNNER_TEST;
--- config
    location = /t { return 418; }
--- request
GET /t
--- error_code: 418



=== TEST 4: request body (POST) reaches the server
--- config
    location = /t {
        client_body_buffer_size 16k;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo { return 200 "len=$http_content_length\n"; }
--- request
POST /t
0123456789
--- response_body
len=10



=== TEST 5: raw_request and request eval
--- config
    location = /t { return 200 "$request_method $server_protocol\n"; }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_body
GET HTTP/1.0



=== TEST 6: error_log, no_error_log, grep_error_log
--- config
    location /files/ { root $TEST_NGINX_SERVROOT/html; }
--- request
GET /files/missing.txt
--- error_code: 404
--- error_log
No such file or directory
--- no_error_log
[crit]
--- grep_error_log eval
qr/open\(\) "[^"]+missing\.txt" failed/
--- grep_error_log_out eval
qr/^open\(\) "[^"]+missing\.txt" failed\n$/



=== TEST 7: user_files are served from html/
--- user_files
>>> hello.txt
from a user file
--- request
GET /hello.txt
--- response_body
from a user file



=== TEST 8: timeout with abort checks the part that arrived
The body is sent at 1 byte/s after the first 300 bytes (headers
included), so after 1 s the client holds the start only.
--- config
    location = /slow {
        limit_rate_after 300;
        limit_rate 1;
        return 200 "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n";
    }
--- raw_request eval
"GET /slow HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- timeout: 1
--- abort
--- response_body_like chomp
\A0123456789abc[0-9a-z]*\z



=== TEST 9: wait before the error log is read
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- wait: 0.1
--- response_body
ok
--- no_error_log
[error]



=== TEST 10: SKIP leaves a block out
--- SKIP
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked
