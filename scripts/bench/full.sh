# shellcheck shell=bash
#
# Benchmark group "full", sourced by scripts/bench.sh after tunnel.sh
# (whose helpers it uses): the gateway exactly as scripts/run.sh
# configures it against plain nginx proxy_pass to the same fast mock
# runtime, non-streaming chat at 64 connections.
#
# "As run.sh configures it" is conf/nginx.conf.in rendered with run.sh's
# substitutions: auth through the shared-memory cache, Redis (with a
# password and the cache secret) and PostgreSQL, the router, limits
# synced through Redis, metrics, the usage ledger, the access log with
# its gpugate variables, and the TLS tunnel to one gpugate-agent.  Two
# differences: the database role is the bench's "gpugate" (run.sh's
# gpugate_nginx runs the same queries with fewer rights), and the ledger
# writes into the bench's database.
#
# Each scenario also reports the CPU time (user + system) each process
# spent per request: nginx (master and workers), the agent, PostgreSQL
# (the postmaster and every backend of the bench's server) and Redis.
#
# The "peer" group (peer.sh) sources this file too, for the same gateway:
# without "full" in --only, the gateway is started and the group not run.

full_dir=$tmp/full
mkdir -p "$full_dir/secrets" "$full_dir/logs" "$full_dir/nginx/conf" \
    "$full_dir/worker/usage-spill"
ln -sfn "$tmp/ca" "$full_dir/ca"
# the workers write the ledger's spill there (run.sh: chown to its user)
[ "$(id -u)" = 0 ] && chown nobody "$full_dir/worker/usage-spill"
(umask 077
 od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$full_dir/secrets/redis.pass"
 od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$full_dir/secrets/auth.secret")

full_redis_port=$(gg_free_port)
gg_start_redis "$full_dir/redis" "$full_redis_port" \
    "$full_dir/secrets/redis.pass"

full_port=$(gg_free_port)
full_tport=$(gg_free_port)

GG_MODULES="$GG_BUILD/modules" GG_STATE=$full_dir GG_WORKERS=$workers \
GG_PORT=$full_port GG_TUNNEL_PORT=$full_tport GG_REDIS_PORT=$full_redis_port \
GG_ADMIN_KEY=$(gg_secret) GG_WORKER_DIR=$full_dir/worker \
GG_NGINX_DSN="host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate" \
MODEL_LINES="    gpugate_model mock-model pool=gpugate_agents;"$'\n' \
perl -pe '
    s/\@MODULES\@/$ENV{GG_MODULES}/g;
    s/\@STATE\@/$ENV{GG_STATE}/g;
    s/\@WORKERS\@/$ENV{GG_WORKERS}/g;  s/\@PORT\@/$ENV{GG_PORT}/g;
    s/\@LOG_LEVEL\@/notice/g;
    s/\@REDIS_PORT\@/$ENV{GG_REDIS_PORT}/g;
    s/\@TUNNEL_PORT\@/$ENV{GG_TUNNEL_PORT}/g;
    s/\@ADMIN_KEY\@/$ENV{GG_ADMIN_KEY}/g;
    s/\@NGINX_DSN\@/$ENV{GG_NGINX_DSN}/g;
    s/\@WORKER_DIR\@/$ENV{GG_WORKER_DIR}/g;
    s/^\@MODEL_LINES\@\n/$ENV{MODEL_LINES}/;
' "$GG_ROOT/conf/nginx.conf.in" > "$full_dir/nginx/conf/nginx.conf"
grep -v '^ *#' "$full_dir/nginx/conf/nginx.conf" | grep -q '@[A-Z_]*@' \
    && gg_die "full: conf/nginx.conf.in has a placeholder run.sh's" \
              "substitutions do not know; update scripts/bench/full.sh"

/usr/sbin/nginx -p "$full_dir/nginx" -c "$full_dir/nginx/conf/nginx.conf" \
    -e "$full_dir/logs/nginx-error.log" -g 'daemon off;' &
gg_track $!
gg_wait_for "nginx full" 30 perl -MIO::Socket::INET -e \
    'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$full_port"

start_agent bench-full "$full_tport" "$tfast_port" --capacity 1024 \
    --spare 70
full_agent=$agent_pid

full_plain_port=$(gg_free_port)
tunnel_nginx full-plain "$full_plain_port" "$(gg_free_port)" plain \
    "$tfast_port"

tunnel_ready "$full_port"
tunnel_ready "$full_plain_port"

# full_ticks PID...: user + system ticks of the processes and, for each,
# its children (nginx's workers, PostgreSQL's backends), summed
full_ticks() {
    local p t=0
    for p in "$@" $(for p in "$@"; do pgrep -P "$p"; done); do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null \
                   || echo 0)))
    done
    echo "$t"
}

full_pg=$(head -n 1 "$bench_dir/pg/data/postmaster.pid")
full_redis=$(REDISCLI_AUTH=$(cat "$full_dir/secrets/redis.pass") \
    redis-cli -h 127.0.0.1 -p "$full_redis_port" info server \
    | sed -n 's/^process_id:\([0-9]*\).*/\1/p')

# full_post PORT NGINX_PIDFILE: t_post at 64 connections with the CPU
# per request of nginx, the agent, PostgreSQL and Redis
full_post() {
    local ngx a0 a1 n0 n1 p0 p1 r0 r1 out
    ngx=$(cat "$2")
    n0=$(full_ticks "$ngx"); a0=$(full_ticks "$full_agent")
    p0=$(full_ticks "$full_pg"); r0=$(full_ticks "$full_redis")
    out=$(t_post "$1" 64 | tail -n 1)
    n1=$(full_ticks "$ngx"); a1=$(full_ticks "$full_agent")
    p1=$(full_ticks "$full_pg"); r1=$(full_ticks "$full_redis")
    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($hz, %t) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        my $n = $r->{requests} || 1;
        $r->{cpu_us_per_request}{$_} = $t{$_} * 1e6 / $hz / $n
            for keys %t;
        print JSON::PP->new->canonical->encode($r), "\n";
    ' "$(getconf CLK_TCK)" nginx $((n1 - n0)) agent $((a1 - a0)) \
        postgres $((p1 - p0)) redis $((r1 - r0))
}

if want full; then
    gg_log "full: run.sh's gateway vs plain proxy_pass, 64 connections," \
        "$rounds x ${dur}s"
    scenario "plain nginx proxy_pass (limit)" 1 \
        full_post "$full_plain_port" "$tmp/full-plain/nginx.pid"
    scenario "run.sh's gateway (all on, TLS tunnel)" 0 \
        full_post "$full_port" "$full_dir/nginx/nginx.pid"
    run_group full

    # the CPU breakdown, one row: what each process spent per request
    full_row=$(grep '"group":"full","scenario":"run.sh' "$results" \
        | tail -n 1)
    full_note=$(printf '%s' "$full_row" | perl -MJSON::PP -e '
        my $c = decode_json(scalar <STDIN>)->{result}{cpu_us_per_request};
        printf "CPU us per request: nginx %.1f, agent %.1f, PostgreSQL %.1f,"
            . " Redis %.1f",
            map { $c->{$_} // 0 } qw(nginx agent postgres redis);
    ')
    record full "run.sh's gateway: CPU per process" 0 \
        "{\"note\":\"$full_note\"}"
    gg_log "full: $full_note"
fi

# peer.sh relays through this gateway
want peer || kill "$full_agent" 2>/dev/null || true
