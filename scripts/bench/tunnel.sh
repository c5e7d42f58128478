# shellcheck shell=bash
#
# Benchmark groups "tunnel" and "scale", sourced by scripts/bench.sh.
#
# tunnel: the same mock runtime and request mix (a) through plain nginx
#   proxy_pass (the limit), (b) through the gpugate tunnel alone (nginx
#   proxy_pass to a "gpugate_tunnel" upstream, gpugate-agent over TLS on
#   loopback), (c) the same over plain TCP (what TLS costs), (d) the
#   tunnel behind auth + router (the overhead group's (d)), (e) the
#   runtime exposed through "ssh -R" (the frp-style peer): 64 connections
#   at saturation, with the CPU time the nginx worker and the agent spent
#   per request; one connection (added latency, no queueing); 64 streams.
# scale: RSS of the nginx worker and of the agent with N idle parked
#   tunnel connections (TLS), per connection.

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

gg_start_mock "$tmp" mock-tfast --models mock-model --quiet --tokens 16
tfast_port=$GG_MOCK_PORT
gg_start_mock "$tmp" mock-tslow --models mock-model --quiet \
    --ttft-ms 50 --token-delay-ms 20 --tokens 20
tslow_port=$GG_MOCK_PORT

"$GG_ROOT/scripts/gpugate-ca" "$tmp/ca" >/dev/null

# tunnel_nginx NAME PORT TUNNEL_PORT MODE(plain|tunnel|gpugate|router)
#   RUNTIME [PLAIN_TUNNEL_PORT]: the tunnel listens with TLS, and also
#   without on the optional last port; "router" is auth + router straight
#   to the runtime (the streaming group's gpugate, no tunnel)
tunnel_nginx() {
    local name=$1 port=$2 tport=$3 mode=$4 rport=$5 dir=$tmp/$1 up loc=
    local plain_listen=

    mkdir -p "$dir/logs"
    [ -n "${6:-}" ] && plain_listen="listen 127.0.0.1:$6 reuseport;"
    if [ "$mode" = plain ]; then
        up="upstream runtime { server 127.0.0.1:$rport; keepalive 128; }"
        loc="proxy_buffering off; proxy_pass http://runtime;"
    elif [ "$mode" = router ]; then
        up="upstream runtime { server 127.0.0.1:$rport; keepalive 128; }"
        loc="gpugate_auth on; gpugate_openai on;
            proxy_set_header Authorization \"\";
            proxy_pass http://runtime;"
    else
        up="upstream agents { gpugate_tunnel queue=4096 queue_timeout=10s; }"
        loc="proxy_pass http://agents;"
        [ "$mode" = gpugate ] && loc="gpugate_auth on; gpugate_openai on;
            proxy_set_header Authorization \"\";
            proxy_pass http://agents;"
    fi

    cat > "$dir/nginx.conf" <<CONF
load_module $GG_BUILD/modules/ngx_http_gpugate_module.so;
worker_processes $workers;
worker_rlimit_nofile 65536;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 32768; }
http {
    access_log off;
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    gpugate_model mock-model pool=agents;
    gpugate_auth_zone zone=bench_$name:16m ttl=600s;
    gpugate_auth_postgres "host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate";
    gpugate_tunnel_zone 4m;
    $up
    server {
        listen 127.0.0.1:$tport ssl reuseport backlog=4096;
        $plain_listen
        ssl_certificate $tmp/ca/gateway.crt;
        ssl_certificate_key $tmp/ca/gateway.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = /gpugate/tunnel { gpugate_tunnel_accept ping=30s rate=0; }
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location /v1/ {
            $loc
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    # NGINX_WRAP (a profiler) runs nginx as one process, no master
    ${NGINX_WRAP:-} /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" \
        -e "$dir/logs/error.log" \
        -g "daemon off;${NGINX_WRAP:+ master_process off;}" &
    gg_track $!
    gg_wait_for "nginx $name" 30 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$port"
}

# start_agent NAME TUNNEL_PORT RUNTIME_PORT [flags...]: sets agent_pid;
# AGENT_SCHEME=http dials the plain TCP listener instead; AGENT_WRAP (a
# profiler such as valgrind) runs the agent under it, with the same pid
start_agent() {
    local name=$1 tport=$2 rport=$3 token scheme=${AGENT_SCHEME:-https}
    shift 3
    "$GG_ROOT/scripts/gpugate-keys" agent-revoke "$name" >/dev/null 2>&1 || true
    psql -X -q -h 127.0.0.1 -p "$pg_port" -U gpugate -d gpugate \
        -c "DELETE FROM agents WHERE name = '$name'" >/dev/null
    token=$("$GG_ROOT/scripts/gpugate-keys" agent-create "$name" 2>/dev/null \
        | sed -n 's/^token: //p')
    (umask 077; printf '%s\n' "$token" > "$tmp/$name.token")
    ${AGENT_WRAP:-} "$GG_BUILD/bin/gpugate-agent" --name "$name" \
        --gateway "$scheme://127.0.0.1:$tport/gpugate/tunnel" \
        --ca-file "$tmp/ca/ca.crt" --token-file "$tmp/$name.token" \
        --runtime "http://127.0.0.1:$rport" --models mock-model \
        --log-level warn "$@" >>"$tmp/$name.log" 2>&1 &
    agent_pid=$!
    gg_track "$agent_pid"
}

# tunnel_ready PORT: a request through the tunnel succeeds
tunnel_ready() {
    gg_wait_for "tunnel on $1" 30 curl -fsS -o /dev/null --max-time 5 \
        -H "Authorization: Bearer $bench_key" -H 'Content-Type: application/json' \
        -d "$chat" "http://127.0.0.1:$1/v1/chat/completions"
}

rss_kb() {
    awk '/^VmRSS/ { print $2 }' "/proc/$1/status"
}

# the worker of an nginx started with worker_processes 1
nginx_worker() {
    pgrep -P "$(cat "$tmp/$1/nginx.pid")" | head -n 1
}

chat='{"model":"mock-model","messages":[{"role":"user","content":"Write a haiku about gateways"}]}'
stream='{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Write a haiku about gateways"}]}'
printf '%s' "$stream" > "$tmp/tstream.json"

# the load generator's CPU pinning in the split group ("taskset -c 0")
wrk_pin=

t_post() {
    BENCH_BODY=$chat BENCH_HEADERS="Authorization: Bearer $bench_key" \
        $wrk_pin wrk -t1 -c"$2" -d"${dur}s" --timeout 10s -s "$BENCH_LUA/post.lua" \
        "http://127.0.0.1:$1/v1/chat/completions"
}

# t_post_cpu PORT CONNS NGINX_NAME [AGENT_PID]: t_post, plus the CPU time
# (user + system) the nginx worker and the agent spent per request
t_post_cpu() {
    local w a=${4:-} w0 w1 a0=0 a1=0 out
    w=$(nginx_worker "$3")
    w0=$(cpu_ticks "$w")
    [ -n "$a" ] && a0=$(cpu_ticks "$a")
    out=$(t_post "$1" "$2" | tail -n 1)
    w1=$(cpu_ticks "$w")
    [ -n "$a" ] && a1=$(cpu_ticks "$a")
    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($w, $a, $hz) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        my $n = $r->{requests} || 1;
        $r->{cpu_us_per_request}{nginx} = $w * 1e6 / $hz / $n;
        $r->{cpu_us_per_request}{agent} = $a * 1e6 / $hz / $n if $a > 0;
        print JSON::PP->new->canonical->encode($r), "\n";
    ' $((w1 - w0)) $((a1 - a0)) "$(getconf CLK_TCK)"
}

cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# pin CPUS PID...: every thread of each process onto CPUS
pin() {
    local cpus=$1 p
    shift
    for p in "$@"; do
        taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true
    done
}

# nginx_pids NAME: master and workers
nginx_pids() {
    local m
    m=$(cat "$tmp/$1/nginx.pid")
    echo "$m" $(pgrep -P "$m")
}

t_sse() {
    "$GG_BUILD/bin/gpugate-sse-bench" -c "$2" -d "$stream_dur" \
        -b "$tmp/tstream.json" -H "Authorization: Bearer $bench_key" \
        -u "http://127.0.0.1:$1/v1/chat/completions" || true
}

# "ssh -R": the runtime's host dials out to an sshd on the gateway and
# forwards a port there back to its runtime; nginx proxies to that port
ssh_tunnel() {
    local rport=$1 fport dir=$tmp/ssh
    command -v sshd >/dev/null && command -v ssh >/dev/null || return 1
    mkdir -p "$dir"
    [ -s "$dir/host" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host"
    [ -s "$dir/user" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/user"
    cp "$dir/user.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    sshd_port=$(gg_free_port)
    fport=$(gg_free_port)
    mkdir -p /run/sshd
    /usr/sbin/sshd -D -e -p "$sshd_port" -o ListenAddress=127.0.0.1 \
        -h "$dir/host" -o "AuthorizedKeysFile=$dir/authorized_keys" \
        -o StrictModes=no -o PasswordAuthentication=no \
        -o PidFile=none -o GatewayPorts=no >>"$dir/sshd.log" 2>&1 &
    gg_track $!
    gg_wait_for sshd 10 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' \
        "$sshd_port"
    ssh -N -i "$dir/user" -p "$sshd_port" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes \
        -R "127.0.0.1:$fport:127.0.0.1:$rport" "$(id -un)@127.0.0.1" \
        >>"$dir/ssh.log" 2>&1 &
    gg_track $!
    gg_wait_for "ssh -R" 10 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$fport"
    ssh_fport=$fport
}

if want tunnel; then
    declare -A tp
    for t in plain tunnel tcp gpugate plain-s tunnel-s ssh ssh-s; do
        tp[$t]=$(gg_free_port)
        tp[$t-t]=$(gg_free_port)
    done
    tunnel_nginx t-plain "${tp[plain]}" "${tp[plain-t]}" plain "$tfast_port"
    tunnel_nginx t-tunnel "${tp[tunnel]}" "${tp[tunnel-t]}" tunnel "$tfast_port"
    tp[tcp-p]=$(gg_free_port)
    tunnel_nginx t-tcp "${tp[tcp]}" "${tp[tcp-t]}" tunnel "$tfast_port" \
        "${tp[tcp-p]}"
    tunnel_nginx t-gpugate "${tp[gpugate]}" "${tp[gpugate-t]}" gpugate \
        "$tfast_port"
    tunnel_nginx t-plain-s "${tp[plain-s]}" "${tp[plain-s-t]}" plain \
        "$tslow_port"
    tunnel_nginx t-tunnel-s "${tp[tunnel-s]}" "${tp[tunnel-s-t]}" tunnel \
        "$tslow_port"
    start_agent bench-t1 "${tp[tunnel-t]}" "$tfast_port" --capacity 1024 \
        --spare 70
    t1_pid=$agent_pid
    AGENT_SCHEME=http start_agent bench-t4 "${tp[tcp-p]}" "$tfast_port" \
        --capacity 1024 --spare 70
    t4_pid=$agent_pid
    start_agent bench-t2 "${tp[gpugate-t]}" "$tfast_port" --capacity 1024 \
        --spare 70
    start_agent bench-t3 "${tp[tunnel-s-t]}" "$tslow_port" --capacity 1024 \
        --spare 70
    tunnel_ready "${tp[tunnel]}"
    tunnel_ready "${tp[tcp]}"
    tunnel_ready "${tp[gpugate]}"
    tunnel_ready "${tp[tunnel-s]}"

    have_ssh=0
    if ssh_tunnel "$tfast_port"; then
        tunnel_nginx t-ssh "${tp[ssh]}" "${tp[ssh-t]}" plain "$ssh_fport"
        ssh_fast=$ssh_fport
        ssh_tunnel "$tslow_port"
        tunnel_nginx t-ssh-s "${tp[ssh-s]}" "${tp[ssh-s-t]}" plain "$ssh_fport"
        have_ssh=1
    else
        gg_log "tunnel: no OpenSSH server here, ssh -R peer skipped"
    fi

    gg_log "tunnel: non-streaming chat, 64 connections, $rounds x ${dur}s"
    scenario "plain nginx proxy_pass (limit)" 1 \
        t_post_cpu "${tp[plain]}" 64 t-plain
    scenario "gpugate tunnel (TLS, agent)" 0 \
        t_post_cpu "${tp[tunnel]}" 64 t-tunnel "$t1_pid"
    [ $quick -eq 0 ] && scenario "gpugate tunnel (plain TCP, agent)" 0 \
        t_post_cpu "${tp[tcp]}" 64 t-tcp "$t4_pid"
    scenario "gpugate auth + router + tunnel" 0 t_post "${tp[gpugate]}" 64
    [ $have_ssh = 1 ] && scenario "ssh -R tunnel + nginx" 0 \
        t_post_cpu "${tp[ssh]}" 64 t-ssh
    run_group tunnel

    # one request at a time: what the extra hop adds to each request
    # (this and the split group only in the full run, to keep --quick
    # under 2 minutes)
    [ $quick -eq 0 ] && gg_log "tunnel: non-streaming chat, 1 connection, $rounds x ${dur}s"
    if [ $quick -eq 0 ]; then
        scenario "plain nginx proxy_pass (limit)" 1 t_post "${tp[plain]}" 1
        scenario "gpugate tunnel (TLS, agent)" 0 t_post "${tp[tunnel]}" 1
        scenario "gpugate tunnel (plain TCP, agent)" 0 t_post "${tp[tcp]}" 1
        [ $have_ssh = 1 ] && scenario "ssh -R tunnel + nginx" 0 \
            t_post "${tp[ssh]}" 1
        run_group tunnel-1conn
    fi

    # The deployment's shape on two cores: the gateway (nginx, sshd and
    # the load generator) on CPU 0, the GPU host (runtime, agent, ssh
    # client) on CPU 1, so that the agent's hop is paid for on the GPU
    # host's core, as it is in production, not on the gateway's.
    if [ $quick -eq 0 ] && [ "$(nproc)" -ge 2 ] \
        && command -v taskset >/dev/null
    then
        gg_log "tunnel: gateway on CPU 0, GPU host on CPU 1, 64 connections"
        split_gw=$(for n in t-plain t-tunnel t-tcp; do nginx_pids $n; done)
        [ $have_ssh = 1 ] && split_gw+=" $(nginx_pids t-ssh) $(pgrep -x sshd)"
        split_host="$(pgrep -f 'mock-tfast[.]port') $t1_pid $t4_pid"
        [ $have_ssh = 1 ] && split_host+=" $(pgrep -x ssh)"
        pin 0 $split_gw
        pin 1 $split_host
        wrk_pin="taskset -c 0"
        scenario "plain nginx proxy_pass (limit)" 1 \
            t_post_cpu "${tp[plain]}" 64 t-plain
        scenario "gpugate tunnel (TLS, agent)" 0 \
            t_post_cpu "${tp[tunnel]}" 64 t-tunnel "$t1_pid"
        scenario "gpugate tunnel (plain TCP, agent)" 0 \
            t_post_cpu "${tp[tcp]}" 64 t-tcp "$t4_pid"
        [ $have_ssh = 1 ] && scenario "ssh -R tunnel + nginx" 0 \
            t_post_cpu "${tp[ssh]}" 64 t-ssh
        run_group tunnel-split
        wrk_pin=
        pin "0-$(($(nproc) - 1))" $split_gw $split_host
    fi

    gg_log "tunnel: 64 concurrent streams, ${stream_dur}s"
    scenario "plain nginx proxy_pass (limit)" 1 t_sse "${tp[plain-s]}" 64
    scenario "gpugate tunnel (TLS, agent)" 0 t_sse "${tp[tunnel-s]}" 64
    [ $have_ssh = 1 ] && scenario "ssh -R tunnel + nginx" 0 \
        t_sse "${tp[ssh-s]}" 64
    sse_rounds=$rounds
    rounds=1
    run_group tunnel-stream-64
    rounds=$sse_rounds
fi

if want scale; then
    for n in "${scale_conns[@]}"; do
        s0=$SECONDS
        sp=$(gg_free_port)
        st=$(gg_free_port)
        tunnel_nginx "scale-$n" "$sp" "$st" tunnel "$tfast_port"
        w=$(nginx_worker "scale-$n")
        base_ngx=$(rss_kb "$w")
        start_agent "bench-scale-$n" "$st" "$tfast_port" --spare "$n" \
            --max-connections "$n" --idle-timeout 600
        a_start=$(rss_kb "$agent_pid")
        gg_wait_for "$n parked connections" 300 bash -c \
            "[ \$(ss -Htn state established '( sport = :$st )' | wc -l) -ge $n ]"
        sleep 2
        ngx_rss=$(rss_kb "$w")
        agent_rss=$(rss_kb "$agent_pid")
        note=$(printf 'nginx worker %d KiB (+%d KiB, %.1f KiB/conn); agent %d KiB (%.1f KiB/conn)' \
            "$ngx_rss" $((ngx_rss - base_ngx)) \
            "$(echo "($ngx_rss - $base_ngx) / $n" | bc -l)" "$agent_rss" \
            "$(echo "$agent_rss / $n" | bc -l)")
        record scale "$n parked TLS tunnel connections" 0 \
            "{\"note\":\"$note\",\"nginx_rss_kb\":$ngx_rss,\"nginx_base_kb\":$base_ngx,\"agent_rss_kb\":$agent_rss,\"agent_start_kb\":$a_start}"
        gg_log "scale / $n: $note ($((SECONDS - s0)) s)"
        kill "$agent_pid" 2>/dev/null || true
        kill "$(cat "$tmp/scale-$n/nginx.pid")" 2>/dev/null || true
    done
fi

# agent: the GPU host's side alone.  RSS and CPU of one agent holding 256
# idle parked connections, then carrying 64 concurrent streams, against
# the CPU the (mock) runtime spends producing the same streams.
if want agent; then
    ap=$(gg_free_port)
    at=$(gg_free_port)
    tunnel_nginx agent-s "$ap" "$at" tunnel "$tslow_port"
    start_agent bench-agent "$at" "$tslow_port" --spare 256 \
        --max-connections 256 --idle-timeout 600 --capacity 1024
    a_pid=$agent_pid
    gg_wait_for "256 parked connections" 120 bash -c \
        "[ \$(ss -Htn state established '( sport = :$at )' | wc -l) -ge 256 ]"
    sleep 2
    hz=$(getconf CLK_TCK)
    idle_rss=$(rss_kb "$a_pid")
    a0=$(cpu_ticks "$a_pid")
    sleep 5
    a1=$(cpu_ticks "$a_pid")
    idle_cpu=$(echo "($a1 - $a0) * 100 / $hz / 5" | bc -l)

    m_pid=$(pgrep -f 'mock-tslow[.]port' | head -n 1)
    a0=$(cpu_ticks "$a_pid")
    m0=$(cpu_ticks "$m_pid")
    s0=$(date +%s.%N)
    out=$(t_sse "$ap" 64 | tail -n 1)
    s1=$(date +%s.%N)
    a1=$(cpu_ticks "$a_pid")
    m1=$(cpu_ticks "$m_pid")
    peak_rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$a_pid/status")
    secs=$(echo "$s1 - $s0" | bc -l)
    a_cpu=$(echo "($a1 - $a0) * 100 / $hz / $secs" | bc -l)
    m_cpu=$(echo "($m1 - $m0) * 100 / $hz / $secs" | bc -l)
    ratio=$(echo "if ($m1 - $m0 > 0) ($a1 - $a0) / ($m1 - $m0) else 0" | bc -l)
    note=$(printf '256 idle: RSS %d KiB, CPU %.2f%%; 64 streams: peak RSS %d KiB, CPU %.1f%% vs runtime %.1f%% (%.2fx)' \
        "$idle_rss" "$idle_cpu" "$peak_rss" "$a_cpu" "$m_cpu" "$ratio")
    record agent "gpugate-agent, 256 parked + 64 streams" 0 \
        "{\"note\":\"$note\",\"idle_rss_kb\":$idle_rss,\"idle_cpu_pct\":$idle_cpu,\"peak_rss_kb\":$peak_rss,\"stream_cpu_pct\":$a_cpu,\"runtime_cpu_pct\":$m_cpu,\"cpu_ratio\":$ratio,\"streams\":$out}"
    gg_log "agent: $note"
    kill "$a_pid" 2>/dev/null || true
    kill "$(cat "$tmp/agent-s/nginx.pid")" 2>/dev/null || true
fi
