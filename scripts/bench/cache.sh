# shellcheck shell=bash
#
# Benchmark group "cache", sourced by scripts/bench.sh: cache-aware routing
# (gpugate_prefix_affinity) against the least-loaded choice (today's
# default) and a random one, side by side in one run.  Four mock runtimes
# with the prefix cache model (worker-agent/mock/mock_cache.c: an LRU of
# 480 blocks of 64 bytes each, about 15 of the 32 tenants' system
# prompts; TTFT = 5 ms + 50 us per uncached prompt byte) behind four
# agents, one gateway with three pools that differ only in the choice:
# "ll" (no directive), "px" (gpugate_prefix_affinity, its defaults) and
# "rnd" (mode=random).  Each pool has a model of its own, which the
# runtimes hash into their cache keys, so the pools do not share cached
# prefixes.  Workloads (scripts/bench/cache.lua): 32 tenants with shared
# system prompts, and the same with no shared prefix at all (every prompt
# starts with a random token).  Each run reports the answer time (TTFT
# plus 4 tokens without delay) p50/p90 and the runtimes' hit ratio (bytes
# of prompt found cached / bytes looked up) over that run, after a 2 s
# warm-up of its own.  Each connection pauses CACHE_DELAY_MS (20) between
# requests, CACHE_CONNS (4) connections: a low offered load, so that the
# faster policy's figures do not suffer from the CPU it frees.

cache_conns=${CACHE_CONNS:-4}
cache_delay=${CACHE_DELAY_MS:-20}
gg_take_port cache_tport
gg_take_port cache_port
cache_mports=()

for i in 1 2 3 4; do
    gg_start_mock "$tmp" "mock-cache$i" --models cache-ll,cache-px,cache-rnd \
        --quiet --tokens 4 --ttft-ms 5 --prefix-cache 480 --prefix-block 64 \
        --prefill-us-per-byte 50
    cache_mports+=("$GG_MOCK_PORT")
done

cache_dir=$tmp/cache-gw
mkdir -p "$cache_dir/logs"
cat > "$cache_dir/nginx.conf" <<CONF
load_module $GG_BUILD/modules/ngx_http_gpugate_module.so;
worker_processes $workers;
error_log $cache_dir/logs/error.log warn;
pid $cache_dir/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $cache_dir; proxy_temp_path $cache_dir;
    fastcgi_temp_path $cache_dir; uwsgi_temp_path $cache_dir;
    scgi_temp_path $cache_dir;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate";
    upstream ll { gpugate_tunnel queue=4096; }
    upstream px { gpugate_tunnel queue=4096; gpugate_prefix_affinity ${CACHE_PX_ARGS:-}; }
    upstream rnd { gpugate_tunnel queue=4096; gpugate_prefix_affinity mode=random; }
    gpugate_model cache-ll pool=ll;
    gpugate_model cache-px pool=px;
    gpugate_model cache-rnd pool=rnd;
    server {
        listen 127.0.0.1:$cache_tport;
        location = /gpugate/tunnel { gpugate_tunnel_accept ping=30s rate=0; }
    }
    server {
        listen 127.0.0.1:$cache_port backlog=4096;
        location = /status { gpugate_tunnel_status; }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://\$gpugate_pool;
        }
    }
}
CONF
/usr/sbin/nginx -p "$cache_dir" -c "$cache_dir/nginx.conf" \
    -e "$cache_dir/logs/error.log" -g "daemon off;" &
gg_track $!
gg_wait_for "nginx cache" 30 perl -MIO::Socket::INET -e \
    'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$cache_port"

for i in 1 2 3 4; do
    name=bench-cache$i
    "$GG_ROOT/scripts/gpugate-keys" agent-revoke "$name" >/dev/null 2>&1 || true
    psql -X -q -h 127.0.0.1 -p "$pg_port" -U gpugate -d gpugate \
        -c "DELETE FROM agents WHERE name = '$name'" >/dev/null
    token=$("$GG_ROOT/scripts/gpugate-keys" agent-create "$name" 2>/dev/null \
        | sed -n 's/^token: //p')
    (umask 077; printf '%s\n' "$token" > "$tmp/$name.token")
    "$GG_BUILD/bin/gpugate-agent" --name "$name" \
        --gateway "http://127.0.0.1:$cache_tport/gpugate/tunnel" \
        --token-file "$tmp/$name.token" \
        --runtime "http://127.0.0.1:${cache_mports[$((i - 1))]}" \
        --models cache-ll,cache-px,cache-rnd --capacity 16 --spare 8 \
        --log-level warn >>"$tmp/$name.log" 2>&1 &
    gg_track $!
done

gg_wait_for "four cache agents" 30 perl -MJSON::PP -e '
    my $s = `curl -fsS http://127.0.0.1:$ARGV[0]/status`;
    my $j = eval { decode_json($s) } or exit 1;
    exit(@{ $j->{agents} } == 4 ? 0 : 1)' "$cache_port"

# the runtimes' prefix cache counters, summed: "hit_bytes query_bytes"
cache_counts() {
    local p h=0 q=0 m
    for p in "${cache_mports[@]}"; do
        m=$(curl -fsS "http://127.0.0.1:$p/metrics")
        h=$((h + $(printf '%s\n' "$m" \
            | awk '/^gpugate_mock_prefix_cache_hit_bytes_total/ { print $2 }')))
        q=$((q + $(printf '%s\n' "$m" \
            | awk '/^gpugate_mock_prefix_cache_query_bytes_total/ { print $2 }')))
    done
    echo "$h $q"
}

# cache_run POOL SHARED(1|0): one wrk run, its JSON with the hit ratio and
# a note for the table
cache_run() {
    local before after out

    # a warm-up, not measured: the runtimes' caches hold the other pools'
    # prefixes after their runs, and every policy is measured warm
    BENCH_MODEL=cache-$1 BENCH_SHARED=$2 BENCH_DELAY_MS=$cache_delay BENCH_SEED=$RANDOM wrk -t1 \
        -c"$cache_conns" -d2s --timeout 10s -s "$BENCH_LUA/cache.lua" \
        "http://127.0.0.1:$cache_port/v1/chat/completions" >/dev/null

    before=$(cache_counts)
    out=$(BENCH_MODEL=cache-$1 BENCH_SHARED=$2 BENCH_DELAY_MS=$cache_delay BENCH_SEED=$RANDOM wrk -t1 -c"$cache_conns" \
        -d"${dur}s" --timeout 10s -s "$BENCH_LUA/cache.lua" \
        "http://127.0.0.1:$cache_port/v1/chat/completions" | tail -n 1)
    after=$(cache_counts)
    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($h0, $q0, $h1, $q1) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        my $q = $q1 - $q0;
        $r->{hit_ratio} = $q > 0 ? ($h1 - $h0) / $q : 0;
        my $l = $r->{latency_ms};
        $r->{ttft_ms} = { p50 => $l->{p50}, p90 => $l->{p90} };
        $r->{note} = sprintf("TTFT p50 %.1f ms, p90 %.1f ms, hit ratio "
                             . "%.0f%%, %.0f rps, %d errors", $l->{p50},
                             $l->{p90}, 100 * $r->{hit_ratio}, $r->{rps},
                             $r->{errors});
        print JSON::PP->new->canonical->encode($r), "\n";
    ' $before $after
}

scenario "shared: least-loaded" 1 cache_run ll 1
scenario "shared: prefix-aware" 0 cache_run px 1
scenario "shared: random" 0 cache_run rnd 1
run_group cache

scenario "unshared: least-loaded" 1 cache_run ll 0
scenario "unshared: prefix-aware" 0 cache_run px 0
scenario "unshared: random" 0 cache_run rnd 0
run_group cache-none

# what the prefix-aware pool's balancer did over both workloads
gg_log "cache: prefix-aware pool: $(curl -fsS "http://127.0.0.1:$cache_port/status" \
    | perl -MJSON::PP -e '
        my $j = decode_json(join "", <STDIN>);
        my ($p) = grep { $_->{upstream} eq "px" } @{ $j->{pools} };
        my $a = $p->{affinity};
        print join ", ", map { "$_ $a->{$_}" }
            qw(hits misses skipped entries evicted);')"
