# shellcheck shell=bash
#
# Benchmark group "auth", sourced by scripts/bench.sh: the cost of checking
# an API key on every request.  The same static answer is served (a), with
# no auth: the baseline; (b) behind gpugate_auth with the key in shared
# memory; (c) behind the OpenResty peer (access_by_lua + lua-resty-redis +
# lua_shared_dict) with the key in its shared dict.  Then the miss path:
# every request a different key, answered by Redis or by PostgreSQL.

auth_dir=$tmp/auth
mkdir -p "$auth_dir/html/v1"
printf '{"object":"list","data":[]}\n' > "$auth_dir/html/v1/models"

# Keys for the miss path: deterministic, base62, each used once.
nmiss=40000
seq -f "sk-gg-benchmiss%026.0f" 1 "$nmiss" > "$auth_dir/miss-keys"
gg_psql_at "$pg_port" gpugate -q <<SQL >/dev/null
INSERT INTO tenants (name) VALUES ('bench') ON CONFLICT DO NOTHING;
INSERT INTO api_keys (tenant_id, digest, prefix, name)
SELECT t.id, sha256(convert_to(k, 'UTF8')), substr(k, 1, 12), 'miss'
FROM tenants t,
     (SELECT 'sk-gg-benchmiss' || lpad(i::text, 26, '0') AS k
      FROM generate_series(1, $nmiss) i) keys
WHERE t.name = 'bench'
ON CONFLICT (digest) DO NOTHING;
SQL

auth_port=$(gg_free_port)
lua_port=$(gg_free_port)

# auth_nginx: (re)starts the gpugate nginx; a restart empties its shm.
auth_nginx() {
    local dir=$auth_dir/gg
    mkdir -p "$dir/logs"
    if [ -f "$dir/nginx.pid" ]; then
        kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
        gg_wait_for "nginx to stop" 10 \
            sh -c "! kill -0 \$(cat '$dir/nginx.pid' 2>/dev/null) 2>/dev/null"
    fi
    cat > "$dir/nginx.conf" <<EOF
load_module $GG_BUILD/modules/ngx_http_gpugate_module.so;
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    default_type application/json;
    gpugate_auth_zone zone=bench_keys:64m ttl=600s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$redis_port ttl=600s;
    server {
        listen 127.0.0.1:$auth_port backlog=4096;
        root $auth_dir/html;
        location /noauth/ { alias $auth_dir/html/; }
        location /v1/ { gpugate_auth on; }
    }
}
EOF
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
    gg_on_cleanup "kill -QUIT \$(cat '$dir/nginx.pid')"
    gg_wait_for "gpugate nginx" 30 curl -fsS -o /dev/null \
        "http://127.0.0.1:$auth_port/noauth/v1/models"
}

lua_nginx() {
    local dir=$auth_dir/lua
    mkdir -p "$dir/logs"
    cat > "$dir/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    default_type application/json;
    lua_package_path "/usr/share/lua/5.1/?.lua;;";
    lua_shared_dict keys 64m;
    server {
        listen 127.0.0.1:$lua_port backlog=4096;
        root $auth_dir/html;
        set \$bench_redis_port $redis_port;
        location /v1/ {
            access_by_lua_file $GG_ROOT/scripts/bench/openresty-keyauth.lua;
        }
    }
}
EOF
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
    gg_on_cleanup "kill -QUIT \$(cat '$dir/nginx.pid')"
    gg_wait_for "OpenResty peer" 30 curl -fsS -o /dev/null \
        -H "Authorization: Bearer $bench_key" \
        "http://127.0.0.1:$lua_port/v1/models"
}

auth_nginx
# the first request fills Redis (which the Lua peer reads) and the shm
curl -fsS -o /dev/null -H "Authorization: Bearer $bench_key" \
    "http://127.0.0.1:$auth_port/v1/models" || gg_die "auth smoke failed"
lua_nginx

gg_log "auth: cache-hit path, 64 connections, $rounds x ${dur}s each"
scenario "no auth (static answer)" 1 \
    wrk_get "http://127.0.0.1:$auth_port/noauth/v1/models" -c64
scenario "gpugate auth, shm hit" 0 \
    wrk_get "http://127.0.0.1:$auth_port/v1/models" -c64 \
    -H "Authorization: Bearer $bench_key"
scenario "OpenResty Lua key-auth, dict hit" 0 \
    wrk_get "http://127.0.0.1:$lua_port/v1/models" -c64 \
    -H "Authorization: Bearer $bench_key"
run_group auth

# Miss path, one connection so latency is the lookup's.  The nginx restart
# empties the shm before each pass.  Redis pass: every key is put in Redis
# first, in the format gpugate writes.  PostgreSQL pass: Redis emptied.
miss_run() {
    local scenario=$1 r
    r=$(BENCH_KEYS=$auth_dir/miss-keys wrk -t1 -c1 -d"${miss_dur}s" \
        --timeout 10s -s "$BENCH_LUA/rotate-keys.lua" \
        "http://127.0.0.1:$auth_port/v1/models" | tail -n 1)
    record auth-miss "$scenario" 0 "$r"
    gg_log "auth-miss / $scenario: $r"
}

gg_log "auth: miss path, 1 connection, ${miss_dur}s each"
gg_psql_at "$pg_port" gpugate -At <<'SQL' \
    | redis-cli -h 127.0.0.1 -p "$redis_port" >/dev/null
SELECT 'SET gpugate:key:' || encode(k.digest, 'hex') || ' ''' ||
       json_build_object('v', 1, 'refusal', 0, 'id', k.id,
           'tenant_id', k.tenant_id, 'rpm', 0, 'tpm', 0, 'expires', 0,
           'name', k.name, 'prefix', k.prefix, 'tenant', 'bench',
           'models', '*')::text || ''' EX 3600'
FROM api_keys k WHERE k.name = 'miss';
SQL
auth_nginx
miss_run "shm miss -> Redis"
redis-cli -h 127.0.0.1 -p "$redis_port" FLUSHALL >/dev/null
auth_nginx
miss_run "shm miss -> Redis miss -> PostgreSQL"

# the other groups' gateways find the benchmark key in Redis again
curl -fsS -o /dev/null -H "Authorization: Bearer $bench_key" \
    "http://127.0.0.1:$auth_port/v1/models" || gg_die "auth refill failed"
