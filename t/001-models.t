# GET /v1/models answered by the gateway from gpugate_model directives, and
# OpenAI error JSON from gpugate_error.
#
# Needs: TEST_NGINX_LOAD_MODULES (the gpugate .so); scripts/test.sh sets it.

use Test::Nginx::Socket 'no_plan';

repeat_each(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: models configured at http level are listed in order
--- http_config
    gpugate_model llama-3.1-8b-instruct;
    gpugate_model qwen2.5:7b;
--- config
    location = /v1/models { gpugate_models; }
--- request
GET /v1/models
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"object":"list","data":\[\{"id":"llama-3\.1-8b-instruct","object":"model","created":\d+,"owned_by":"gpugate"\},\{"id":"qwen2\.5:7b","object":"model","created":\d+,"owned_by":"gpugate"\}\]\}$
--- no_error_log
[error]



=== TEST 2: a location that names models replaces the inherited list
--- http_config
    gpugate_model inherited-model;
--- config
    location = /v1/models {
        gpugate_model meta-llama/Llama-3.1-70B-Instruct;
        gpugate_models;
    }
--- request
GET /v1/models
--- response_body_like chomp
^\{"object":"list","data":\[\{"id":"meta-llama/Llama-3\.1-70B-Instruct","object":"model","created":\d+,"owned_by":"gpugate"\}\]\}$



=== TEST 3: no models configured gives an empty list
--- config
    location = /v1/models { gpugate_models; }
--- request
GET /v1/models
--- response_body
{"object":"list","data":[]}



=== TEST 4: HEAD gets the headers only
--- http_config
    gpugate_model m1;
--- config
    location = /v1/models { gpugate_models; }
--- request
HEAD /v1/models
--- response_headers
Content-Type: application/json
--- response_body



=== TEST 5: POST is refused with 405, Allow and OpenAI error JSON
--- http_config
    gpugate_model m1;
--- config
    location = /v1/models { gpugate_models; }
--- request
POST /v1/models
{"model":"m1"}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json
--- response_body
{"error":{"message":"Only GET is allowed on /v1/models.","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}



=== TEST 6: gpugate_error with a fixed status answers unknown endpoints
--- config
    location /v1/ { gpugate_error 404; }
--- request
GET /v1/no-such-endpoint
--- error_code: 404
--- response_body
{"error":{"message":"Unknown endpoint.","type":"not_found_error","param":null,"code":"unknown_url"}}



=== TEST 7: gpugate_error reports the status error_page saw (413)
--- config
    location /v1/ {
        client_max_body_size 16;
        error_page 413 @json;
        proxy_pass http://127.0.0.1:1;
    }
    location @json { gpugate_error; }
--- request
POST /v1/chat/completions
{"model":"m1","messages":[{"role":"user","content":"a long prompt"}]}
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body
{"error":{"message":"The request body is too large.","type":"invalid_request_error","param":null,"code":"request_too_large"}}
--- error_log
client intended to send too large body



=== TEST 8: 503 from gpugate_error carries Retry-After
--- config
    location /v1/ { gpugate_error 503; }
--- request
GET /v1/chat/completions
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body
{"error":{"message":"No inference capacity is available; retry later.","type":"server_error","param":null,"code":"no_capacity"}}



=== TEST 9: a location without gpugate directives is untouched
--- http_config
    gpugate_model m1;
--- config
    location = /plain { return 200 "plain\n"; }
--- request
GET /plain
--- response_body
plain
