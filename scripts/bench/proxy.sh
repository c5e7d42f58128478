# shellcheck shell=bash
#
# Benchmark groups "overhead" and "streaming", sourced by scripts/bench.sh.
# Same mock runtime and request mix in every scenario of a group:
#   (a) direct to the runtime; (b) plain nginx proxy_pass, the limit (with
#   proxy_buffering off for streams, what an nginx user would configure);
#   (c) gpugate: API-key auth (shared-memory hit) + the OpenAI router.
#   (d) through the tunnel comes with the tunnel issue.

# Two mock runtimes: one answers at once (gateway overhead shows), one
# paces tokens like a small model (streaming: TTFT and gaps show).
gg_start_mock "$tmp" mock-fast --models mock-model --quiet --tokens 16
fast_port=$GG_MOCK_PORT
gg_start_mock "$tmp" mock-slow --models mock-model --quiet \
    --ttft-ms 50 --token-delay-ms 20 --tokens 20
slow_port=$GG_MOCK_PORT

# proxy_nginx NAME PORT GPUGATE(0|1) RUNTIME_PORT [ACCOUNTING(0|1|2)]
#   (1: metrics and the usage ledger, 2: metrics only); $BENCH_HTTP_EXTRA
#   and $BENCH_LOC_EXTRA, when set, go into its http{} and location
proxy_nginx() {
    local name=$1 port=$2 gg=$3 rport=$4 acct=${5:-0} dir=$tmp/$1 head= loc=

    mkdir -p "$dir/logs"
    if [ "$gg" = 1 ]; then
        head="load_module $GG_BUILD/modules/ngx_http_gpugate_module.so;"
        loc="gpugate_auth on; gpugate_openai on;
            proxy_set_header Authorization \"\";
            error_page 502 503 504 @err;"
        [ "$acct" != 0 ] && loc+="
            gpugate_accounting on;"
        loc+="
            ${BENCH_LOC_EXTRA:-}"
    else
        loc="proxy_buffering off;"
    fi

    cat > "$dir/nginx.conf" <<CONF
$head
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
$(if [ "$gg" = 1 ]; then cat <<GG
    gpugate_model mock-model;
    gpugate_auth_zone zone=bench_$name:16m ttl=600s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$redis_port;
GG
fi)
    ${BENCH_HTTP_EXTRA:-}
$([ "$acct" = 1 ] && echo "    gpugate_usage_ledger \"host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate\" gateway=bench-$name-$$ batch=500 interval=1s;")
    upstream runtime { server 127.0.0.1:$rport; keepalive 128; }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location /v1/ {
            $loc
            proxy_pass http://runtime;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        $([ "$gg" = 1 ] && echo "location @err { gpugate_error; }")
    }
}
CONF
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
        -g 'daemon off;' &
    gg_track $!
    gg_wait_for "nginx $name" 30 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$port"
}

declare -A port
for target in plain-fast gg-fast plain-slow gg-slow gg-acct gg-metrics; do
    port[$target]=$(gg_free_port)
done
proxy_nginx plain-fast "${port[plain-fast]}" 0 "$fast_port"
proxy_nginx gg-fast "${port[gg-fast]}" 1 "$fast_port"
if want accounting; then
    proxy_nginx gg-acct "${port[gg-acct]}" 1 "$fast_port" 1
    proxy_nginx gg-metrics "${port[gg-metrics]}" 1 "$fast_port" 2
fi
proxy_nginx plain-slow "${port[plain-slow]}" 0 "$slow_port"
proxy_nginx gg-slow "${port[gg-slow]}" 1 "$slow_port"

chat='{"model":"mock-model","messages":[{"role":"user","content":"Write a haiku about gateways"}]}'
stream='{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Write a haiku about gateways"}]}'
printf '%s' "$stream" > "$tmp/stream.json"

# wrk_post_cpu PORT CONNS NGINX_NAME: wrk_post, plus the CPU time (user +
# system) the nginx worker spent per request
wrk_post_cpu() {
    local w c0 c1 out
    w=$(pgrep -P "$(cat "$tmp/$3/nginx.pid")" | head -n 1)
    c0=$(awk '{ print $14 + $15 }' "/proc/$w/stat")
    out=$(wrk_post "$1" "$2" | tail -n 1)
    c1=$(awk '{ print $14 + $15 }' "/proc/$w/stat")
    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($t, $hz) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        $r->{cpu_us_per_request}{nginx} = $t * 1e6 / $hz
                                          / ($r->{requests} || 1);
        print JSON::PP->new->canonical->encode($r), "\n";
    ' $((c1 - c0)) "$(getconf CLK_TCK)"
}

# wrk_post PORT CONNS: one non-streaming run, JSON line on stdout
wrk_post() {
    BENCH_BODY=$chat BENCH_HEADERS="Authorization: Bearer $bench_key" \
        ${wrk_taskset:-} wrk -t1 -c"$2" -d"${dur}s" --timeout 10s \
        -s "$BENCH_LUA/post.lua" "http://127.0.0.1:$1/v1/chat/completions"
}

# sse_run PORT CONNS: one streaming run, JSON line on stdout
sse_run() {
    "$GG_BUILD/bin/gpugate-sse-bench" -c "$2" -d "$stream_dur" \
        -b "$tmp/stream.json" -H "Authorization: Bearer $bench_key" \
        -u "http://127.0.0.1:$1/v1/chat/completions" || true
}

if want overhead; then
    gg_log "overhead: non-streaming chat, 64 connections, $rounds x ${dur}s"
    scenario "plain nginx proxy_pass (limit)" 1 \
        wrk_post "${port[plain-fast]}" 64
    scenario "direct to runtime" 0 wrk_post "$fast_port" 64
    scenario "gpugate auth (shm hit) + router" 0 \
        wrk_post "${port[gg-fast]}" 64
    run_group overhead
fi

if want accounting; then
    acct_gw="bench-gg-acct-$$"
    rows_now() {
        psql -X -qAt -h 127.0.0.1 -p "$pg_port" -U gpugate -d gpugate \
            -c "SELECT count(*) FROM usage_events WHERE gateway = '$acct_gw'"
    }
    gg_log "accounting: non-streaming chat, 64 connections, $rounds x ${dur}s"
    r0=$(rows_now)
    t0=$(date +%s.%N)
    scenario "gpugate auth (shm hit) + router" 1 \
        wrk_post_cpu "${port[gg-fast]}" 64 gg-fast
    scenario "+ metrics" 0 wrk_post_cpu "${port[gg-metrics]}" 64 gg-metrics
    scenario "+ metrics + usage ledger" 0 \
        wrk_post_cpu "${port[gg-acct]}" 64 gg-acct
    run_group accounting
    t1=$(date +%s.%N)
    r1=$(rows_now)
    # the ledger keeps up if nothing is left once the runs end
    sleep 3
    r2=$(rows_now)
    # the ledger's nginx ran one round in three
    secs=$(echo "($t1 - $t0) / 3" | bc -l)
    note=$(printf 'ledger: %d rows in %.1f s of load (%.0f rows/s sustained); %d still held when the load stopped' \
        $((r1 - r0)) "$secs" "$(echo "($r1 - $r0) / $secs" | bc -l)" \
        $((r2 - r1)))
    record accounting "usage ledger write rate" 0 \
        "{\"note\":\"$note\",\"rows\":$((r1 - r0)),\"held_after\":$((r2 - r1))}"
    gg_log "accounting: $note"

    # PostgreSQL on a machine of its own, as in production: here its own
    # core (CPU 1), with the gateway, runtime and load on CPU 0.  The
    # ledger's cost to the gateway alone shows.
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        acct_pg=$(pgrep -x postgres; pgrep -f 'postgres: ')
        acct_gw=""
        for n in gg-fast gg-metrics gg-acct; do
            m=$(cat "$tmp/$n/nginx.pid")
            acct_gw+=" $m $(pgrep -P "$m")"
        done
        acct_gw+=" $(pgrep -f 'mock-fast[.]port')"
        for p in $acct_pg; do taskset -a -p -c 1 "$p" >/dev/null 2>&1 || true; done
        for p in $acct_gw; do taskset -a -p -c 0 "$p" >/dev/null 2>&1 || true; done
        wrk_taskset="taskset -c 0"
        gg_log "accounting: PostgreSQL on CPU 1, the rest on CPU 0"
        scenario "gpugate auth (shm hit) + router" 1 \
            wrk_post_cpu "${port[gg-fast]}" 64 gg-fast
        scenario "+ metrics" 0 wrk_post_cpu "${port[gg-metrics]}" 64 gg-metrics
        scenario "+ metrics + usage ledger" 0 \
            wrk_post_cpu "${port[gg-acct]}" 64 gg-acct
        run_group accounting-split
        wrk_taskset=
        for p in $acct_pg $acct_gw; do
            taskset -a -p -c "0-$(($(nproc) - 1))" "$p" >/dev/null 2>&1 || true
        done
    fi
fi

if want streaming; then
    for c in "${stream_conns[@]}"; do
        gg_log "streaming: $c concurrent streams, ${stream_dur}s each"
        scenario "direct to runtime" 1 sse_run "$slow_port" "$c"
        scenario "plain nginx, proxy_buffering off" 0 \
            sse_run "${port[plain-slow]}" "$c"
        scenario "gpugate auth + router" 0 sse_run "${port[gg-slow]}" "$c"
        sse_rounds=$rounds
        rounds=1
        run_group "streaming-$c"
        rounds=$sse_rounds
    done
fi
