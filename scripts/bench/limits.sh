# shellcheck shell=bash
#
# Benchmark group "limits", sourced by scripts/bench.sh: the cost of the
# limits on the cache-hit path (key in shared memory, the router, a mock
# runtime that answers at once), in one run: (a) gpugate with limits off,
# the baseline; (b) limits on, one node (every request reserved and
# settled under the zone's lock); (c) limits on and synced through Redis
# (nodes=2, sync=250ms).  The key has every limit set, far above what the
# run reaches, so nothing is refused.  Each run also reports the nginx
# workers' CPU per request ("ngx us/rq"), which a loaded machine disturbs
# less than RPS.  Then the Redis commands the synced gateway sent per
# request it admitted.

[ -n "${fast_port:-}" ] || {
    gg_start_mock "$tmp" mock-limits --models mock-model --quiet --tokens 16
    fast_port=$GG_MOCK_PORT
}

limits_key=$("$GG_ROOT/scripts/gpugate-keys" create --tenant bench-limits \
    --name limits 2>/dev/null | sed -n 's/^key: //p')
[ -n "$limits_key" ] || gg_die "cannot create the limits benchmark key"
gg_psql_at "$pg_port" gpugate -q <<SQL >/dev/null
UPDATE api_keys SET rpm_limit = 2000000000, tpm_limit = 2000000000,
       parallel_limit = 1000000, tpd_limit = 1000000000000000,
       budget_micros = 1000000000000000, budget_period = 'month'
 WHERE prefix = '${limits_key:0:12}';
UPDATE tenants SET rpm_limit = 2000000000, tpm_limit = 2000000000
 WHERE name = 'bench-limits';
SQL

# limits_nginx NAME PORT MODE (off | local | redis)
limits_nginx() {
    local name=$1 port=$2 mode=$3 dir=$tmp/$1 on=off redis=

    mkdir -p "$dir/logs"
    [ "$mode" != off ] && on=on
    [ "$mode" = redis ] && redis="gpugate_limits_redis 127.0.0.1:$redis_port nodes=2 sync=250ms;"

    cat > "$dir/nginx.conf" <<CONF
load_module $GG_BUILD/modules/ngx_http_gpugate_module.so;
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    gpugate_model mock-model price=0.15/0.6;
    gpugate_auth_zone zone=bench_$name:16m ttl=600s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$redis_port;
    gpugate_limits_zone zone=limits_$name:16m;
    $redis
    upstream runtime { server 127.0.0.1:$fast_port; keepalive 128; }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_limits $on;
            proxy_set_header Authorization "";
            proxy_pass http://runtime;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /status { allow 127.0.0.1; deny all; gpugate_status; }
    }
}
CONF
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
        -g 'daemon off;' &
    gg_track $!
    gg_wait_for "nginx $name" 30 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$port"
}

declare -A lport
for mode in off local redis; do
    lport[$mode]=$(gg_free_port)
    limits_nginx "limits-$mode" "${lport[$mode]}" "$mode"
done

limits_chat='{"model":"mock-model","max_tokens":16,"messages":[{"role":"user","content":"Write a haiku about gateways"}]}'

# limits_post MODE: one run with the limits key, JSON line on stdout,
# with the CPU time (user + system) the nginx workers spent per request:
# steadier than RPS on a shared machine
limits_post() {
    local pids c0 c1 out

    pids=$(pgrep -P "$(cat "$tmp/limits-$1/nginx.pid")" | tr '\n' ' ')
    # shellcheck disable=SC2086
    c0=$(cd /proc && cat $(printf '%s/stat ' $pids) \
         | awk '{ t += $14 + $15 } END { print t }')
    out=$(BENCH_BODY=$limits_chat \
          BENCH_HEADERS="Authorization: Bearer $limits_key" \
          wrk -t1 -c64 -d"${dur}s" --timeout 10s -s "$BENCH_LUA/post.lua" \
          "http://127.0.0.1:${lport[$1]}/v1/chat/completions" | tail -n 1)
    # shellcheck disable=SC2086
    c1=$(cd /proc && cat $(printf '%s/stat ' $pids) \
         | awk '{ t += $14 + $15 } END { print t }')
    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($t, $hz) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        $r->{cpu_us_per_request}{nginx} = $t * 1e6 / $hz
                                          / ($r->{requests} || 1);
        print JSON::PP->new->canonical->encode($r), "\n";
    ' $((c1 - c0)) "$(getconf CLK_TCK)"
}

# every gateway has the key in shared memory before it is measured
for mode in off local redis; do
    curl -fsS -o /dev/null -H "Authorization: Bearer $limits_key" \
        -H 'Content-Type: application/json' -d "$limits_chat" \
        "http://127.0.0.1:${lport[$mode]}/v1/chat/completions" \
        || gg_die "limits smoke ($mode) failed"
done

gg_log "limits: cache-hit path, 64 connections, $rounds x ${dur}s each"
scenario "gpugate, limits off" 1 limits_post off
scenario "gpugate, limits on (one node)" 0 limits_post local
scenario "gpugate, limits on, Redis sync" 0 limits_post redis
run_group limits

# Redis commands per admitted request, from the synced gateway's status
note=$(curl -fsS "http://127.0.0.1:${lport[redis]}/status" | perl -MJSON::PP -e '
    my $s = decode_json(join "", <STDIN>)->{limits};
    my $n = $s->{admitted} || 1;
    printf "Redis commands per request: %.5f (%d EVALs for %d requests; "
         . "one EVAL a sync a worker, whatever the traffic)",
         $s->{redis}{commands} / $n, $s->{redis}{commands}, $n;')
record limits "Redis commands per request" 0 "{\"note\":\"$note\"}"
gg_log "limits: $note"
