# shellcheck shell=bash
#
# Benchmark group "peer", sourced by scripts/bench.sh after tunnel.sh and
# full.sh (whose gateway, helpers and mock runtimes it uses): gpugate
# against a gateway a user would pick instead, the Portkey AI Gateway
# (npm "@portkey-ai/gateway", a Node server), with the same workload to
# the same mock runtime:
#
#   (a) plain nginx proxy_pass (the limit; proxy_buffering off);
#   (b) gpugate as scripts/run.sh configures it (full.sh's gateway: auth,
#       router, limits, metrics, ledger, access log, TLS tunnel, agent);
#   (c) gpugate auth + router straight to the runtime (no tunnel);
#   (d) Portkey -> the runtime ("x-portkey-provider: openai" and
#       "x-portkey-custom-host" naming the mock's /v1).
#
# Non-streaming chat at 64 connections, then 64 SSE streams (TTFT): RPS,
# p50/p99, the CPU time each process spent per request and the gateway's
# RSS.  Each run also counts the answers the mock runtime gave
# (gpugate_mock_requests_total of its /metrics), so that a gateway that
# answers with errors of its own shows as such, not as a fast gateway.
#
# Portkey is installed into build/peer with npm at a pinned version, with
# the versions of "hono" and "@hono/node-server" that Portkey's own
# package-lock.json pins: npm's newest @hono/node-server makes every
# streamed answer fail with "TypeError: immutable" (Portkey issues 1389
# and 1550).  Without node or npm, or when the registry cannot be
# reached, the group is skipped with a message.

peer_version=1.15.2
peer_dir=$GG_BUILD/peer
peer_bin=$peer_dir/node_modules/@portkey-ai/gateway/build/start-server.js

# peer_install: build/peer holds Portkey at $peer_version, or returns 1
peer_install() {
    local have

    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        gg_log "peer: node or npm not found, group skipped"
        return 1
    fi
    have=$(perl -MJSON::PP -0 -ne 'print decode_json($_)->{version}' \
        "$peer_dir/node_modules/@portkey-ai/gateway/package.json" \
        2>/dev/null || true)
    [ "$have" = "$peer_version" ] && return 0

    mkdir -p "$peer_dir"
    cat > "$peer_dir/package.json" <<JSON
{
  "private": true,
  "dependencies": { "@portkey-ai/gateway": "$peer_version" },
  "overrides": { "hono": "4.9.7", "@hono/node-server": "1.13.5" }
}
JSON
    gg_log "peer: npm install @portkey-ai/gateway@$peer_version into" \
        "$peer_dir"
    if ! (cd "$peer_dir" && timeout 300 npm install --no-audit --no-fund \
              --loglevel=error >npm-install.log 2>&1) \
        || [ ! -f "$peer_bin" ]
    then
        gg_log "peer: npm could not install @portkey-ai/gateway@$peer_version" \
            "(registry unreachable? see $peer_dir/npm-install.log)," \
            "group skipped"
        return 1
    fi
}

# mock_answers PORT: chat completions the mock runtime answered with 200
mock_answers() {
    local m='gpugate_mock_requests_total{path="/v1/chat/completions"'
    curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" \
        | awk -v m="$m,status=\"200\"}" '$1 == m { n = $2 }
                                         END { print n + 0 }'
}

# peer_rss PID...: resident KiB of the processes and their children
peer_rss() {
    local p q t=0
    for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
        t=$((t + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" \
                   2>/dev/null || echo 0)))
    done
    echo "$t"
}

# peer_headers WHO MOCK_PORT: the request headers, one per line
peer_headers() {
    if [ "$1" = portkey ]; then
        printf 'Authorization: Bearer sk-peer-unused\n'
        printf 'x-portkey-provider: openai\n'
        printf 'x-portkey-custom-host: http://127.0.0.1:%s/v1\n' "$2"
    else
        printf 'Authorization: Bearer %s\n' "$bench_key"
    fi
}

# peer_run KIND(post|sse) WHO(gpugate|portkey) PORT MOCK_PORT GATEWAY_PIDS
#   [LABEL=PID...]: one wrk (post) or gpugate-sse-bench (sse) run at 64
#   connections; adds the CPU us per request of each LABEL=PID (children
#   included), the RSS of GATEWAY_PIDS (quoted list) after the run, and
#   the answers the mock gave during it
peer_run() {
    local kind=$1 who=$2 port=$3 mock=$4 gw=$5 lp out m0 m1 hdrs
    local -a labels pids t0 t1 args
    local i
    shift 5

    for lp in "$@"; do
        labels+=("${lp%%=*}")
        pids+=("${lp#*=}")
    done
    hdrs=$(peer_headers "$who" "$mock")
    m0=$(mock_answers "$mock")
    for i in "${!pids[@]}"; do t0[i]=$(full_ticks "${pids[$i]}"); done
    if [ "$kind" = post ]; then
        out=$(BENCH_BODY=$chat BENCH_HEADERS=$hdrs wrk -t1 -c64 \
                  -d"${dur}s" --timeout 10s -s "$BENCH_LUA/post.lua" \
                  "http://127.0.0.1:$port/v1/chat/completions" | tail -n 1)
    else
        args=()
        while IFS= read -r lp; do args+=(-H "$lp"); done <<< "$hdrs"
        out=$("$GG_BUILD/bin/gpugate-sse-bench" -c 64 -d "$stream_dur" \
                  -b "$tmp/tstream.json" "${args[@]}" \
                  -u "http://127.0.0.1:$port/v1/chat/completions" \
                  | tail -n 1)
    fi
    for i in "${!pids[@]}"; do t1[i]=$(full_ticks "${pids[$i]}"); done
    m1=$(mock_answers "$mock")
    # shellcheck disable=SC2086
    args=(rss "$(peer_rss $gw)" mock $((m1 - m0)))
    for i in "${!pids[@]}"; do
        args+=("cpu_${labels[$i]}" $((t1[i] - t0[i])))
    done
    printf '%s\n' "${out:-{\}}" | perl -MJSON::PP -e '
        my ($hz, %a) = @ARGV;
        my $r = decode_json(scalar <STDIN>);
        my $n = $r->{requests} || 1;
        $r->{gateway_rss_kb} = $a{rss} + 0;
        $r->{mock_answers} = $a{mock} + 0;
        for (grep { /^cpu_/ } keys %a) {
            (my $l = $_) =~ s/^cpu_//;
            $r->{cpu_us_per_request}{$l} = $a{$_} * 1e6 / $hz / $n;
        }
        print JSON::PP->new->canonical->encode($r), "\n";
    ' "$(getconf CLK_TCK)" "${args[@]}"
}

# peer_check WHO PORT MOCK_PORT: one answer through the gateway carries
# the mock's own content (the mock's words are a hash of model and
# prompt, so the gateway's answer must equal the mock's direct answer)
peer_check() {
    local want got hdrs
    local -a args=()
    hdrs=$(peer_headers "$1" "$3")
    while IFS= read -r lp; do args+=(-H "$lp"); done <<< "$hdrs"
    want=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
               -d "$chat" "http://127.0.0.1:$3/v1/chat/completions" \
           | perl -MJSON::PP -0 -ne \
               'print decode_json($_)->{choices}[0]{message}{content}')
    got=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
              "${args[@]}" -d "$chat" \
              "http://127.0.0.1:$2/v1/chat/completions" \
          | perl -MJSON::PP -0 -ne \
              'print decode_json($_)->{choices}[0]{message}{content}' \
              2>/dev/null || true)
    [ -n "$want" ] && [ "$got" = "$want" ]
}

# peer_group: the group's runs; returns 1 (the group skipped) when a
# gateway does not answer with the mock's content
peer_group() {
    local c

    peer_port=$(gg_free_port)
    peer_started=$(date +%s)
    # --headless: no UI; it logs each request's failure, not its success
    node "$peer_bin" --port="$peer_port" --headless \
        >>"$tmp/portkey.log" 2>&1 &
    peer_pid=$!
    gg_track "$peer_pid"
    gg_wait_for "Portkey gateway" 60 perl -MIO::Socket::INET -e \
        'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' \
        "$peer_port"
    gg_log "peer: Portkey AI Gateway $peer_version (node $(node --version))" \
        "up in $(($(date +%s) - peer_started)) s"

    # (c) and the streaming limit; (a) non-streaming is full.sh's
    pp_router=$(gg_free_port)
    tunnel_nginx peer-router "$pp_router" "$(gg_free_port)" router \
        "$tfast_port"
    pp_router_s=$(gg_free_port)
    tunnel_nginx peer-router-s "$pp_router_s" "$(gg_free_port)" router \
        "$tslow_port"
    pp_plain_s=$(gg_free_port)
    tunnel_nginx peer-plain-s "$pp_plain_s" "$(gg_free_port)" plain \
        "$tslow_port"

    for c in "gpugate $full_plain_port" "gpugate $full_port" \
             "gpugate $pp_router" "portkey $peer_port"
    do
        # shellcheck disable=SC2086
        if ! peer_check $c "$tfast_port"; then
            gg_log "peer: the gateway on port ${c#* } does not answer with" \
                "the mock's content (see $tmp/portkey.log), group skipped"
            return 1
        fi
    done
    gg_log "peer: every gateway answers with the mock's content"

    full_ngx=$(cat "$full_dir/nginx/nginx.pid")
    ngx_of() { cat "$tmp/$1/nginx.pid"; }

    gg_log "peer: non-streaming chat, 64 connections, $rounds x ${dur}s"
    scenario "plain nginx proxy_pass (limit)" 1 \
        peer_run post gpugate "$full_plain_port" "$tfast_port" \
        "$(ngx_of full-plain)" "nginx=$(ngx_of full-plain)"
    scenario "gpugate as run.sh (TLS tunnel)" 0 \
        peer_run post gpugate "$full_port" "$tfast_port" "$full_ngx" \
        "nginx=$full_ngx" "agent=$full_agent" "postgres=$full_pg" \
        "redis=$full_redis"
    scenario "gpugate auth + router (no tunnel)" 0 \
        peer_run post gpugate "$pp_router" "$tfast_port" \
        "$(ngx_of peer-router)" "nginx=$(ngx_of peer-router)" \
        "postgres=$full_pg"
    scenario "Portkey $peer_version (node)" 0 \
        peer_run post portkey "$peer_port" "$tfast_port" "$peer_pid" \
        "node=$peer_pid"
    run_group peer

    # run.sh's gateway streams from the slow runtime: its agent is
    # replaced by one that relays to the slow mock
    kill "$full_agent" 2>/dev/null || true
    start_agent bench-peer-s "$full_tport" "$tslow_port" --capacity 1024 \
        --spare 70
    full_agent=$agent_pid
    tunnel_ready "$full_port"

    gg_log "peer: 64 concurrent streams, ${stream_dur}s"
    scenario "plain nginx proxy_pass (limit)" 1 \
        peer_run sse gpugate "$pp_plain_s" "$tslow_port" \
        "$(ngx_of peer-plain-s)" "nginx=$(ngx_of peer-plain-s)"
    scenario "gpugate as run.sh (TLS tunnel)" 0 \
        peer_run sse gpugate "$full_port" "$tslow_port" "$full_ngx" \
        "nginx=$full_ngx" "agent=$full_agent" "postgres=$full_pg" \
        "redis=$full_redis"
    scenario "gpugate auth + router (no tunnel)" 0 \
        peer_run sse gpugate "$pp_router_s" "$tslow_port" \
        "$(ngx_of peer-router-s)" "nginx=$(ngx_of peer-router-s)" \
        "postgres=$full_pg"
    scenario "Portkey $peer_version (node)" 0 \
        peer_run sse portkey "$peer_port" "$tslow_port" "$peer_pid" \
        "node=$peer_pid"
    peer_rounds=$rounds
    rounds=1
    run_group peer-stream-64
    rounds=$peer_rounds

    # one note per scenario: the CPU split, the RSS and the mock's count
    grep '"group":"peer' "$results" | perl -MJSON::PP -ne '
        my $row = decode_json($_);
        my $r = $row->{result};
        next unless defined $r->{mock_answers};
        my $c = $r->{cpu_us_per_request} // {};
        my $t = 0;
        $t += $_ for values %$c;
        my $cpu = join ", ", map { sprintf "%s %.1f", $_, $c->{$_} }
            sort keys %$c;
        my $n = $r->{requests} // 0;
        printf "%s\t%s\tCPU us/rq: %s (total %.1f); gateway RSS %.1f MiB;"
            . " mock answered %d of %d requests (%d errors)\n",
            $row->{group}, $row->{scenario}, $cpu, $t,
            $r->{gateway_rss_kb} / 1024, $r->{mock_answers}, $n,
            $r->{errors} // 0;
    ' | while IFS=$'\t' read -r g s note; do
        record "$g" "$s: CPU, RSS" 0 "{\"note\":\"$note\"}"
        gg_log "$g / $s: $note"
    done
    gg_log "peer: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    peer_note="$(cut -d' ' -f1-3 /proc/loadavg); Portkey AI Gateway"
    peer_note+=" $peer_version, node $(node --version)"
    record peer "load average (1, 5, 15 min) at the end" 0 \
        "{\"note\":\"$peer_note\"}"
}

peer_pid=
if peer_install; then
    peer_group || true
fi

# shellcheck disable=SC2086
kill $peer_pid "$full_agent" 2>/dev/null || true
for n in peer-router peer-router-s peer-plain-s; do
    if [ -f "$tmp/$n/nginx.pid" ]; then
        kill "$(cat "$tmp/$n/nginx.pid")" 2>/dev/null || true
    fi
done
