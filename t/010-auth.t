# API-key auth, one request at a time: accepted keys and their variables,
# and every way a key is refused (with OpenAI error JSON and
# WWW-Authenticate).  The layered lookups, outages and revocation are in
# 011-auth-chain.t.
#
# Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT,
# TEST_NGINX_SERVER_PORT (scripts/test.sh exports them).

use Test::Nginx::Socket 'no_plan';

use Digest::SHA qw(sha256_hex);

# Known keys, created idempotently so that the file can run again on the
# same database.
my %keys = (
    valid    => ["sk-gg-t010valid000000000000000000000000001", "t010-ok",
                 "ARRAY['mock-model','other-model']", 60, 1000, 'NULL',
                 'NULL', 'acme010'],
    expired  => ["sk-gg-t010expired00000000000000000000000002", "t010-exp",
                 'NULL', 'NULL', 'NULL', "now() - interval '1 hour'",
                 'NULL', 'acme010'],
    revoked  => ["sk-gg-t010revoked00000000000000000000000003", "t010-rev",
                 'NULL', 'NULL', 'NULL', 'NULL', 'now()', 'acme010'],
    disabled => ["sk-gg-t010disabled0000000000000000000000004", "t010-dis",
                 'NULL', 'NULL', 'NULL', 'NULL', 'NULL', 'off010'],
);

my $sql = "INSERT INTO tenants (name) VALUES ('acme010'), ('off010')"
        . " ON CONFLICT DO NOTHING;"
        . " UPDATE tenants SET disabled = true WHERE name = 'off010';";

for my $k (values %keys) {
    my ($key, $name, $models, $rpm, $tpm, $exp, $rev, $tenant) = @$k;
    my $hex = sha256_hex($key);
    $sql .= " INSERT INTO api_keys (tenant_id, digest, prefix, name,"
          . " allowed_models, rpm_limit, tpm_limit, expires_at, revoked_at)"
          . " SELECT id, decode('$hex', 'hex'), '" . substr($key, 0, 12)
          . "', '$name', $models, $rpm, $tpm, $exp, $rev FROM tenants"
          . " WHERE name = '$tenant' ON CONFLICT (digest) DO NOTHING;";
    # a Redis entry from an earlier run must not hide the database row
    system('redis-cli', '-h', '127.0.0.1', '-p',
           $ENV{TEST_NGINX_REDIS_PORT}, 'DEL', "gpugate:key:$hex") == 0
        or die "redis-cli failed\n";
}

system('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
       '-p', $ENV{TEST_NGINX_PG_PORT}, '-U', 'gpugate', '-d', 'gpugate',
       '-c', $sql) == 0 or die "psql failed\n";

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'CONF');
    gpugate_auth_zone zone=keys010:1m ttl=60s negative_ttl=5s;
    gpugate_auth_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
CONF
    }

    if (!defined $block->config) {
        $block->set_value("config", <<'CONF');
    location /t {
        gpugate_auth on;
        proxy_set_header X-Info "$gpugate_key_id|$gpugate_key_name|$gpugate_key_prefix|$gpugate_tenant|$gpugate_tenant_id|$gpugate_allowed_models|$gpugate_rpm_limit|$gpugate_tpm_limit";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo {
        return 200 "$http_x_info\n";
    }
    location = /open {
        return 200 "no auth here\n";
    }
CONF
    }
});

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid key is accepted and its record becomes variables
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-t010valid000000000000000000000000001
--- response_body_like chomp
^\d+\|t010-ok\|sk-gg-t010va\|acme010\|\d+\|mock-model,other-model\|60\|1000$
--- no_error_log
[error]



=== TEST 2: x-api-key carries the bare key
--- request
GET /t
--- more_headers
x-api-key: sk-gg-t010valid000000000000000000000000001
--- response_body_like chomp
^\d+\|t010-ok\|
--- no_error_log
[error]



=== TEST 3: lowercase bearer scheme
--- request
GET /t
--- more_headers
Authorization: bearer sk-gg-t010valid000000000000000000000000001
--- response_body_like chomp
^\d+\|t010-ok\|



=== TEST 4: missing key: 401, WWW-Authenticate, OpenAI error JSON
--- request
GET /t
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="gpugate"
Content-Type: application/json
--- response_body
{"error":{"message":"You didn't provide an API key. Provide it in the Authorization header as \"Bearer YOUR_KEY\".","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}



=== TEST 5: garbage is refused before any lookup
--- request
GET /t
--- more_headers
Authorization: Bearer not-a-key
--- error_code: 401
--- response_body
{"error":{"message":"Incorrect API key provided. Keys look like sk-gg-... ; check the key and try again.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}
--- error_log
gpugate auth: malformed API key (9 bytes) refused
--- no_error_log
gpugate auth: looking up key



=== TEST 6: SQL-injection-shaped key is just malformed
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-' OR '1'='1'; DROP TABLE api_keys; --aaaaaaaaaaa
--- error_code: 401
--- error_log
gpugate auth: malformed API key
--- no_error_log
gpugate auth: looking up key
[error]



=== TEST 7: a very long Authorization header is refused cheaply
--- request eval
"GET /t"
--- more_headers eval
"Authorization: Bearer sk-gg-" . ("A" x 6000)
--- error_code: 401
--- error_log
gpugate auth: malformed API key (6006 bytes) refused
--- no_error_log
gpugate auth: looking up key



=== TEST 8: a well-formed unknown key: 401 after the lookup
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-t010unknown0000000000000000000000000005
--- error_code: 401
--- response_body
{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}
--- error_log
gpugate auth: looking up key sk-gg-t010un
gpugate auth: key sk-gg-t010un refused: unknown



=== TEST 9: an expired key
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-t010expired00000000000000000000000002
--- error_code: 401
--- response_body
{"error":{"message":"This API key has expired.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}
--- error_log
gpugate auth: key sk-gg-t010ex refused: expired



=== TEST 10: a revoked key
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-t010revoked00000000000000000000000003
--- error_code: 401
--- response_body
{"error":{"message":"This API key has been revoked.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}



=== TEST 11: a key of a disabled tenant
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-t010disabled0000000000000000000000004
--- error_code: 401
--- response_body
{"error":{"message":"The account this API key belongs to is disabled.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}



=== TEST 12: only the configured header is read
--- config
    location /t {
        gpugate_auth on;
        gpugate_auth_header X-Gateway-Key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo { return 200 "ok\n"; }
--- request
GET /t
--- more_headers
Authorization: Bearer sk-gg-t010valid000000000000000000000000001
--- error_code: 401



=== TEST 13: the configured header carries the bare key
--- config
    location /t {
        gpugate_auth on;
        gpugate_auth_header X-Gateway-Key;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo { return 200 "ok\n"; }
--- request
GET /t
--- more_headers
X-Gateway-Key: sk-gg-t010valid000000000000000000000000001
--- response_body
ok



=== TEST 14: a location without gpugate_auth is not touched
--- request
GET /open
--- response_body
no auth here
--- no_error_log
gpugate auth
