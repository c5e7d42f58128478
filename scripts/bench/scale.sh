# shellcheck shell=bash
#
# Benchmark group "scale" (scale-out part), sourced by scripts/bench.sh
# after tunnel.sh (whose helpers it uses).
#
# scale-out: the same non-streaming load (64 connections) (a) on one
#   gateway node directly, (b) on one node behind nginx's stream module
#   (the L4 balancer of scripts/run.sh --gateways), (c) on two nodes
#   behind it, every node with auth + router + tunnel and one agent
#   connected to every node.  All on the same cores: the figure is the
#   CPU spent per request (nginx workers and balancer, agent) and that no
#   request is lost, not a speed-up two cores cannot give.
# scale-out memory: N parked TLS tunnel connections spread over two
#   nodes by one agent (N/2 each): RSS of each node's worker and of the
#   agent, per connection.

# lb_nginx NAME PORT NODE_PORT...: the stream balancer
lb_nginx() {
    local name=$1 port=$2 dir=$tmp/$1 servers= p
    shift 2
    mkdir -p "$dir"
    for p in "$@"; do
        servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=5s;"$'\n'
    done
    cat > "$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_rlimit_nofile 65536;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 32768; }
stream {
    upstream nodes {
$servers    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        proxy_pass nodes;
        proxy_connect_timeout 1s;
    }
}
CONF
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        -g 'daemon off;' &
    gg_track $!
    gg_wait_for "balancer $name" 30 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$port"
}

# multi_agent NAME RUNTIME_PORT TUNNEL_PORT... -- [flags...]: one agent
# dialing every node; sets agent_pid
multi_agent() {
    local name=$1 rport=$2 token gws=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        gws+=(--gateway "https://127.0.0.1:$1/gpugate/tunnel")
        shift
    done
    [ $# -gt 0 ] && shift
    psql -X -q -h 127.0.0.1 -p "$pg_port" -U gpugate -d gpugate \
        -c "DELETE FROM agents WHERE name = '$name'" >/dev/null
    token=$("$GG_ROOT/scripts/gpugate-keys" agent-create "$name" 2>/dev/null \
        | sed -n 's/^token: //p')
    (umask 077; printf '%s\n' "$token" > "$tmp/$name.token")
    "$GG_BUILD/bin/gpugate-agent" --name "$name" "${gws[@]}" \
        --ca-file "$tmp/ca/ca.crt" --token-file "$tmp/$name.token" \
        --runtime "http://127.0.0.1:$rport" --models mock-model \
        --log-level warn "$@" >>"$tmp/$name.log" 2>&1 &
    agent_pid=$!
    gg_track "$agent_pid"
}

# s_post_cpu PORT CONNS "GATEWAY_PIDS" AGENT_PID: t_post, plus the CPU
# time per request of the gateway side (nginx workers, balancer) and of
# the agent
s_post_cpu() {
    local p g0=0 g1=0 a0 a1 out
    for p in $3; do g0=$((g0 + $(cpu_ticks "$p"))); done
    a0=$(cpu_ticks "$4")
    out=$(t_post "$1" "$2" | tail -n 1)
    for p in $3; do g1=$((g1 + $(cpu_ticks "$p"))); done
    a1=$(cpu_ticks "$4")
    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($g, $a, $hz) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        my $n = $r->{requests} || 1;
        $r->{cpu_us_per_request}{nginx} = $g * 1e6 / $hz / $n;
        $r->{cpu_us_per_request}{agent} = $a * 1e6 / $hz / $n;
        print JSON::PP->new->canonical->encode($r), "\n";
    ' $((g1 - g0)) $((a1 - a0)) "$(getconf CLK_TCK)"
}

workers_of() {
    pgrep -P "$(cat "$tmp/$1/nginx.pid")" | tr '\n' ' '
}

declare -A sp
for t in one one-t a a-t b b-t lb1 lb2; do
    sp[$t]=$(gg_free_port)
done

tunnel_nginx so-one "${sp[one]}" "${sp[one-t]}" gpugate "$tfast_port"
tunnel_nginx so-a "${sp[a]}" "${sp[a-t]}" gpugate "$tfast_port"
tunnel_nginx so-b "${sp[b]}" "${sp[b-t]}" gpugate "$tfast_port"
lb_nginx so-lb1 "${sp[lb1]}" "${sp[one]}"
lb_nginx so-lb2 "${sp[lb2]}" "${sp[a]}" "${sp[b]}"

multi_agent bench-so-one "$tfast_port" "${sp[one-t]}" -- --capacity 1024 \
    --spare 70
so_one_agent=$agent_pid
multi_agent bench-so-two "$tfast_port" "${sp[a-t]}" "${sp[b-t]}" -- \
    --capacity 1024 --spare 70
so_two_agent=$agent_pid
tunnel_ready "${sp[one]}"
tunnel_ready "${sp[a]}"
tunnel_ready "${sp[b]}"

so_one_gw="$(workers_of so-one)"
so_lb1_gw="$so_one_gw $(workers_of so-lb1)"
so_lb2_gw="$(workers_of so-a) $(workers_of so-b) $(workers_of so-lb2)"

gg_log "scale-out: one node vs two behind the stream balancer, 64 connections"
scenario "one node (direct)" 1 \
    s_post_cpu "${sp[one]}" 64 "$so_one_gw" "$so_one_agent"
scenario "one node behind the L4 balancer" 0 \
    s_post_cpu "${sp[lb1]}" 64 "$so_lb1_gw" "$so_one_agent"
scenario "two nodes behind the L4 balancer" 0 \
    s_post_cpu "${sp[lb2]}" 64 "$so_lb2_gw" "$so_two_agent"
run_group scale-out

for t in so-one so-a so-b so-lb1 so-lb2; do
    kill "$(cat "$tmp/$t/nginx.pid")" 2>/dev/null || true
done
kill "$so_one_agent" "$so_two_agent" 2>/dev/null || true

# memory: N parked connections over two nodes
for n in "${scale_conns[@]}"; do
    s0=$SECONDS
    half=$((n / 2))
    for t in ma ma-t mb mb-t; do
        sp[$t]=$(gg_free_port)
    done
    tunnel_nginx "so-ma-$n" "${sp[ma]}" "${sp[ma-t]}" tunnel "$tfast_port"
    tunnel_nginx "so-mb-$n" "${sp[mb]}" "${sp[mb-t]}" tunnel "$tfast_port"
    wa=$(nginx_worker "so-ma-$n")
    wb=$(nginx_worker "so-mb-$n")
    base_a=$(rss_kb "$wa")
    base_b=$(rss_kb "$wb")
    multi_agent "bench-so-mem-$n" "$tfast_port" "${sp[ma-t]}" "${sp[mb-t]}" \
        -- --spare "$half" --max-connections "$half" --idle-timeout 600
    gg_wait_for "$n parked connections over two nodes" 300 bash -c \
        "[ \$(ss -Htn state established '( sport = :${sp[ma-t]} or sport = :${sp[mb-t]} )' | wc -l) -ge $n ]"
    sleep 2
    ra=$(rss_kb "$wa")
    rb=$(rss_kb "$wb")
    ag=$(rss_kb "$agent_pid")
    per=$(echo "($ra - $base_a + $rb - $base_b) / $n" | bc -l)
    note=$(printf 'node a worker +%d KiB, node b worker +%d KiB (%.1f KiB/conn); agent %d KiB (%.1f KiB/conn)' \
        $((ra - base_a)) $((rb - base_b)) "$per" "$ag" \
        "$(echo "$ag / $n" | bc -l)")
    record scale "$n parked over two nodes ($half each)" 0 \
        "{\"note\":\"$note\",\"node_a_kb\":$ra,\"node_a_base_kb\":$base_a,\"node_b_kb\":$rb,\"node_b_base_kb\":$base_b,\"agent_rss_kb\":$ag,\"per_conn_kb\":$per}"
    gg_log "scale / $n over two nodes: $note ($((SECONDS - s0)) s)"
    kill "$agent_pid" 2>/dev/null || true
    kill "$(cat "$tmp/so-ma-$n/nginx.pid")" "$(cat "$tmp/so-mb-$n/nginx.pid")" \
        2>/dev/null || true
done
