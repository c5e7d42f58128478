# The OpenAI router: the JSON body is read and checked in the precontent
# phase, the model picks the upstream ($gpugate_pool), aliases are
# rewritten in the body the runtime sees, keys limited to some models get
# 403 and a filtered /v1/models, and every bad body gets OpenAI's error
# JSON from the gateway without reaching a runtime.
#
# Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_MOCK_PORT (mock-model,
# other-model), TEST_NGINX_MOCK2_PORT (second-model), TEST_NGINX_PG_PORT,
# TEST_NGINX_REDIS_PORT (scripts/test.sh).

use Test::Nginx::Socket 'no_plan';

use Digest::SHA qw(sha256_hex);

# a key that may use mock-model only
our $limited = "sk-gg-t004limited0000000000000000000000001";
{
    my $hex = sha256_hex($limited);
    system('redis-cli', '-h', '127.0.0.1', '-p', $ENV{TEST_NGINX_REDIS_PORT},
           'DEL', "gpugate:key:$hex") == 0 or die "redis-cli failed\n";
    system('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
           '-p', $ENV{TEST_NGINX_PG_PORT}, '-U', 'gpugate', '-d', 'gpugate',
           '-c', "INSERT INTO tenants (name) VALUES ('acme004')"
               . " ON CONFLICT DO NOTHING;"
               . " INSERT INTO api_keys (tenant_id, digest, prefix, name,"
               . " allowed_models) SELECT id, decode('$hex', 'hex'),"
               . " 'sk-gg-t004li', 'limited', ARRAY['mock-model']"
               . " FROM tenants WHERE name = 'acme004'"
               . " ON CONFLICT (digest) DO NOTHING") == 0
        or die "psql failed\n";
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'CONF') unless defined $block->http_config;
    upstream pool_a { server 127.0.0.1:$TEST_NGINX_MOCK_PORT; keepalive 4; }
    upstream pool_b { server 127.0.0.1:$TEST_NGINX_MOCK2_PORT; keepalive 4; }
    gpugate_model mock-model pool=pool_a;
    gpugate_model public-name pool=pool_a target=other-model;
    gpugate_model second* pool=pool_b;
CONF

    $block->set_value("config", <<'CONF') unless defined $block->config;
    location = /v1/models { gpugate_models; }
    location /v1/ {
        gpugate_openai on;
        gpugate_default_pool pool_a;
        proxy_pass http://$gpugate_pool;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Pool $gpugate_pool always;
        add_header X-Model $gpugate_model always;
        error_page 502 @err;
    }
    location @err { gpugate_error; }
CONF
});

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: an exact model routes to its pool
--- request
POST /v1/chat/completions
{"model":"mock-model","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}
--- response_headers
X-Pool: pool_a
X-Model: mock-model
--- response_body_like chomp
^\{"id":"chatcmpl-mock-[0-9a-f]{16}","object":"chat\.completion","created":1700000000,"model":"mock-model",
--- error_log
gpugate openai: model "mock-model" -> pool "pool_a" stream:0



=== TEST 2: a prefix entry routes a model family to another pool
--- request
POST /v1/chat/completions
{"model":"second-model","stream":true,"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}
--- response_headers
X-Pool: pool_b
Content-Type: text/event-stream
--- response_body_like chomp
"model":"second-model".*data: \[DONE\]\n\n\z
--- error_log
gpugate openai: model "second-model" -> pool "pool_b" stream:1



=== TEST 3: an alias is rewritten in the body the runtime sees
The mock echoes the model it was asked for: the runtime got other-model.
--- request
POST /v1/completions
{"model":"public-name","prompt":"Once upon","max_tokens":2}
--- response_headers
X-Pool: pool_a
X-Model: public-name
--- response_body_like chomp
^\{"id":"cmpl-mock-[0-9a-f]{16}","object":"text_completion","created":1700000000,"model":"other-model",
--- error_log
gpugate openai: model "public-name" sent as "other-model"



=== TEST 4: an alias with the body in a temp file
--- config
    location /v1/ {
        client_body_buffer_size 1k;
        gpugate_openai on;
        proxy_pass http://$gpugate_pool;
    }
--- request eval
"POST /v1/completions\n" . '{"model":"public-name","max_tokens":1,"prompt":"' . ("word " x 1000) . '"}'
--- response_body_like chomp
"model":"other-model".*"prompt_tokens":1000,
--- error_log
a client request body is buffered to a temporary file



=== TEST 5: unknown model: 404 model_not_found from the gateway
--- request
POST /v1/chat/completions
{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}
--- error_code: 404
--- response_body
{"error":{"message":"The model `gpt-4o` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}
--- no_error_log
-> pool



=== TEST 6: invalid JSON
--- request
POST /v1/chat/completions
{"model": "mock-model", "messages": [
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"message":"We could not parse the JSON body of your request: [^"]+ \(at character \d+\)\.","type":"invalid_request_error","param":null,"code":"invalid_json"\}\}$



=== TEST 7: missing model
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body
{"error":{"message":"You must provide a model parameter.","type":"invalid_request_error","param":"model","code":"missing_required_parameter"}}



=== TEST 8: model of the wrong type
--- request
POST /v1/chat/completions
{"model":42,"messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body
{"error":{"message":"'model' must be a string.","type":"invalid_request_error","param":"model","code":"invalid_type"}}



=== TEST 9: chat without messages
--- request
POST /v1/chat/completions
{"model":"mock-model"}
--- error_code: 400
--- response_body
{"error":{"message":"'messages' must be a non-empty array.","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}}



=== TEST 10: stream that is not a boolean
--- request
POST /v1/chat/completions
{"model":"mock-model","stream":"yes","messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body
{"error":{"message":"'stream' must be a boolean.","type":"invalid_request_error","param":"stream","code":"invalid_type"}}



=== TEST 11: stream_options.include_usage that is not a boolean
--- request
POST /v1/chat/completions
{"model":"mock-model","stream":true,"stream_options":{"include_usage":1},"messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body
{"error":{"message":"'stream_options.include_usage' must be a boolean.","type":"invalid_request_error","param":"stream_options.include_usage","code":"invalid_type"}}



=== TEST 12: a duplicated key is ambiguous and refused
--- request
POST /v1/chat/completions
{"model":"mock-model","model":"second-model","messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body_like chomp
"code":"invalid_json"



=== TEST 13: embeddings need an input and cannot stream
--- request
POST /v1/embeddings
{"model":"mock-model","stream":true,"input":"x"}
--- error_code: 400
--- response_body
{"error":{"message":"Embeddings cannot be streamed.","type":"invalid_request_error","param":"stream","code":"invalid_value"}}



=== TEST 14: GET on an endpoint: 405 from the gateway; the pool is the default
--- request
GET /v1/chat/completions
--- error_code: 405
--- response_headers
X-Pool: pool_a
Allow: POST



=== TEST 15: a key limited to some models: other models get 403
--- http_config
    upstream pool_a { server 127.0.0.1:$TEST_NGINX_MOCK_PORT; }
    upstream pool_b { server 127.0.0.1:$TEST_NGINX_MOCK2_PORT; }
    gpugate_model mock-model pool=pool_a;
    gpugate_model second-model pool=pool_b;
    gpugate_auth_zone zone=keys004:1m;
    gpugate_auth_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT user=gpugate dbname=gpugate";
--- config
    location /v1/ {
        gpugate_auth on;
        gpugate_openai on;
        proxy_pass http://$gpugate_pool;
    }
--- request
POST /v1/chat/completions
{"model":"second-model","messages":[{"role":"user","content":"hi"}]}
--- more_headers eval
"Authorization: Bearer $::limited"
--- error_code: 403
--- response_body
{"error":{"message":"This API key may not use the model `second-model`.","type":"permission_error","param":"model","code":"model_not_allowed"}}



=== TEST 16: ...and the allowed model works
--- http_config
    upstream pool_a { server 127.0.0.1:$TEST_NGINX_MOCK_PORT; }
    gpugate_model mock-model pool=pool_a;
    gpugate_model second-model pool=pool_a;
    gpugate_auth_zone zone=keys004:1m;
    gpugate_auth_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT user=gpugate dbname=gpugate";
--- config
    location /v1/ {
        gpugate_auth on;
        gpugate_openai on;
        proxy_pass http://$gpugate_pool;
    }
--- request
POST /v1/chat/completions
{"model":"mock-model","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}
--- more_headers eval
"Authorization: Bearer $::limited"
--- response_body_like chomp
"model":"mock-model"



=== TEST 17: /v1/models lists only what the key may use
--- http_config
    gpugate_model mock-model;
    gpugate_model second-model;
    gpugate_model qwen*;
    gpugate_auth_zone zone=keys004:1m;
    gpugate_auth_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT user=gpugate dbname=gpugate";
--- config
    location = /v1/models { gpugate_auth on; gpugate_models; }
--- request
GET /v1/models
--- more_headers eval
"Authorization: Bearer $::limited"
--- response_body_like chomp
^\{"object":"list","data":\[\{"id":"mock-model","object":"model","created":\d+,"owned_by":"gpugate"\}\]\}$



=== TEST 18: without auth, /v1/models lists every named model (not prefixes)
--- http_config
    gpugate_model mock-model;
    gpugate_model qwen*;
--- config
    location = /v1/models { gpugate_models; }
--- request
GET /v1/models
--- response_body_like chomp
^\{"object":"list","data":\[\{"id":"mock-model","object":"model","created":\d+,"owned_by":"gpugate"\}\]\}$



=== TEST 19: a 1 MB prompt is routed whole (body on disk), also through an alias
Every one of the 200,000 words reached the runtime: it counts them as
prompt tokens.
--- config
    location /v1/ {
        client_max_body_size 2m;
        gpugate_openai on;
        proxy_pass http://$gpugate_pool;
        add_header X-Model $gpugate_model always;
    }
--- request eval
"POST /v1/chat/completions\n" . '{"model":"public-name","max_tokens":1,"messages":[{"role":"user","content":"' . ("word " x 200000) . '"}]}'
--- response_headers
X-Model: public-name
--- response_body_like chomp
"model":"other-model".*"prompt_tokens":200000,
--- error_log
a client request body is buffered to a temporary file



=== TEST 20: a body that is not UTF-8 is refused before any runtime sees it
--- request eval
"POST /v1/chat/completions\n" . qq({"model":"mock-model","messages":[{"role":"user","content":"caf\xe9"}]})
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"message":"We could not parse the JSON body of your request: invalid UTF-8 \(at character \d+\)\.","type":"invalid_request_error","param":null,"code":"invalid_json"\}\}$



=== TEST 21: an overlong UTF-8 encoding is not UTF-8 either
--- request eval
"POST /v1/chat/completions\n" . qq({"model":"mock-model","messages":[{"role":"user","content":"\xc0\xaf"}]})
--- error_code: 400
--- response_body_like chomp
"code":"invalid_json"



=== TEST 22: valid multi-byte UTF-8 passes
--- request eval
"POST /v1/chat/completions\n" . qq({"model":"mock-model","max_tokens":1,"messages":[{"role":"user","content":"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"}]})
--- error_code: 200
--- response_body_like chomp
"object":"chat.completion"
