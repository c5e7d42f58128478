# Chat completions proxied through the gpugate module slice to the mock
# runtime: non-streaming answers buffered as usual, SSE streams unbuffered
# (events reach the client one by one), and bad requests answered in
# OpenAI's error JSON.
#
# Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_MOCK_PORT (scripts/test.sh;
# the mock serves mock-model and other-model).

use Test::Nginx::Socket 'no_plan';

# Exact streams the mock sends for the requests below (deterministic).
our $stream_usage = ""
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"content":" each"},"finish_reason":null}],"usage":null}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"content":" one"},"finish_reason":null}],"usage":null}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"content":" as"},"finish_reason":null}],"usage":null}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}} . "\n\n"
    . q{data: [DONE]} . "\n\n"
    ;
our $stream_plain = ""
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"content":" each"},"finish_reason":null}]}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"content":" one"},"finish_reason":null}]}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{"content":" as"},"finish_reason":null}]}} . "\n\n"
    . q{data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}} . "\n\n"
    . q{data: [DONE]} . "\n\n"
    ;

# HTTP/1.0 requests keep the response close-delimited (no chunked
# framing), so a response cut by a --- timeout is checked byte for byte.
sub raw_post {
    my ($body, @headers) = @_;
    return "POST /v1/chat/completions HTTP/1.0\r\nHost: localhost\r\n"
         . join('', map { "$_\r\n" } @headers)
         . "Content-Type: application/json\r\n"
         . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'CONF') unless defined $block->http_config;
    gpugate_model mock-model;
    gpugate_model other-model;
    upstream mock {
        server 127.0.0.1:$TEST_NGINX_MOCK_PORT;
        keepalive 8;
    }
CONF

    $block->set_value("config", <<'CONF') unless defined $block->config;
    location /v1/ {
        gpugate_openai on;
        proxy_pass http://mock;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        error_page 413 502 503 504 @err;
    }
    location @err { gpugate_error; }
    location = /mock-metrics { proxy_pass http://mock/metrics; }
CONF
});

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: non-streaming chat completion passes through unchanged
--- request
POST /v1/chat/completions
{"model":"mock-model","max_tokens":4,"messages":[{"role":"user","content":"Say hello"}]}
--- more_headers
Content-Type: application/json
--- response_headers
Content-Type: application/json
!X-Accel-Buffering
--- response_body
{"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion","created":1700000000,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":" each one as soon"},"finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":4,"total_tokens":6}}
--- no_error_log
gpugate openai: event stream
[error]



=== TEST 2: streaming chat completion: every event, usage when asked, [DONE]
--- request
POST /v1/chat/completions
{"model":"mock-model","stream":true,"stream_options":{"include_usage":true},"max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}
--- response_headers
Content-Type: text/event-stream
X-Accel-Buffering: no
--- response_body eval
$::stream_usage
--- error_log
gpugate openai: event stream, buffering on -> off
--- no_error_log
[error]



=== TEST 3: events arrive one by one, not at the end of the stream
The runtime sends its role event and two tokens, then holds the stream
open; the client must have those three events while the stream is
still open.
--- raw_request eval
main::raw_post('{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Say hello"}]}', "X-Mock-Stall-After: 2")
--- timeout: 1.5
--- abort
--- response_body_like chomp
\A(data: \{"id":"chatcmpl-mock-[0-9a-f]{16}","object":"chat\.completion\.chunk"[^\n]*\}\n\n){3}\z
--- error_log
gpugate openai: event stream, buffering on -> off



=== TEST 4: the runtime saw the clients above leave mid-stream
nginx closes the runtime connection when the client goes away, so the GPU
would stop generating.
--- request
GET /mock-metrics
--- response_body_like chomp
gpugate_mock_stream_disconnects_total [1-9]



=== TEST 5: stream without usage, HTTP/1.0 client (no chunked framing)
--- raw_request eval
main::raw_post('{"model":"mock-model","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}')
--- response_body eval
$::stream_plain


=== TEST 6: runtime writing one byte at a time: identical bytes arrive
--- request
POST /v1/chat/completions
{"model":"mock-model","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}
--- more_headers
X-Mock-Write-Mode: byte
X-Mock-Byte-Delay-Us: 50
--- response_body eval
$::stream_plain


=== TEST 7: runtime writing the whole stream at once: identical bytes
--- request
POST /v1/chat/completions
{"model":"mock-model","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}
--- more_headers
X-Mock-Write-Mode: bulk
--- response_body eval
$::stream_plain


=== TEST 8: legacy completions and embeddings pass through
--- request
POST /v1/completions
{"model":"other-model","prompt":"Once upon","max_tokens":2}
--- response_body
{"id":"cmpl-mock-0c352cb18e2492ba","object":"text_completion","created":1700000000,"model":"other-model","choices":[{"index":0,"text":" gamma delta","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}



=== TEST 9: embeddings
--- request
POST /v1/embeddings
{"model":"other-model","input":"hello"}
--- response_body
{"object":"list","data":[{"object":"embedding","index":0,"embedding":[-0.789242,-0.134709,-0.124936,-0.099019,0.192306,-0.10002,0.90647,-0.671786]}],"model":"other-model","usage":{"prompt_tokens":1,"total_tokens":1}}



=== TEST 10: invalid JSON: the runtime's 400 reaches the client as JSON
--- request
POST /v1/chat/completions
{"model":
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"message":"We could not parse the JSON body of your request: [^"]*","type":"invalid_request_error","param":null,"code":"invalid_json"\}\}$



=== TEST 11: unknown model: 404 model_not_found
--- request
POST /v1/chat/completions
{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 404
--- response_body
{"error":{"message":"The model `no-such-model` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}



=== TEST 12: a runtime error status passes through untouched
--- request
POST /v1/chat/completions
{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}
--- more_headers
X-Mock-Fail-Status: 503
--- error_code: 503
--- response_body
{"error":{"message":"Injected failure (status 503).","type":"server_error","param":null,"code":"mock_injected"}}



=== TEST 13: runtime unreachable: 502 in OpenAI error JSON
--- http_config
    upstream mock { server 127.0.0.1:1; }
--- request
POST /v1/chat/completions
{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body
{"error":{"message":"The inference backend failed to answer.","type":"server_error","param":null,"code":"upstream_error"}}
--- error_log
connect() failed (111: Connection refused)



=== TEST 14: body over client_max_body_size: 413 in OpenAI error JSON
--- config
    location /v1/ {
        client_max_body_size 64;
        gpugate_openai on;
        proxy_pass http://mock;
        error_page 413 @err;
    }
    location @err { gpugate_error; }
--- request eval
"POST /v1/chat/completions\n" . '{"model":"mock-model","messages":[{"role":"user","content":"' . ("x" x 200) . '"}]}'
--- error_code: 413
--- response_body
{"error":{"message":"The request body is too large.","type":"invalid_request_error","param":null,"code":"request_too_large"}}



=== TEST 15: a stream cut by the runtime ends without [DONE], nginx logs it
--- raw_request eval
main::raw_post('{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Say hello"}]}', "X-Mock-Drop-After: 2")
--- response_body_like chomp
\A(data: [^\n]*\n\n){3}\z
--- error_log
upstream prematurely closed connection
