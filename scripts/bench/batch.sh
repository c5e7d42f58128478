# shellcheck shell=bash
#
# Benchmark group "batch", sourced by scripts/bench.sh: interactive
# streaming chat alone and beside a large Batch API batch on the same
# agents (issue 19: batch lines take only the capacity interactive
# traffic leaves).  One gateway as run.sh has it for this path (auth
# through PostgreSQL, the router, accounting and the usage ledger, the
# tunnel, the Batch API and the "gpugate_batch" runner; plain TCP tunnel),
# BATCH_AGENTS (2) agents of capacity BATCH_CAPACITY (8), each in front of
# a mock runtime of its own with a realistic stream: BATCH_TTFT_MS (50)
# to the first token, then BATCH_TOKENS (16) tokens BATCH_TOKEN_MS (10)
# apart, about 200 ms an answer.
#
# Interactive load: gpugate-sse-bench, BATCH_CONNS (8) connections each
# streaming one chat after another (half the agents' capacity), for
# BATCH_SECONDS (15) s; TTFT measured per request.  Scenarios:
#   interactive alone;
#   interactive + batch: a batch of BATCH_LINES (2,000) non-streaming
#     chat lines is created first and runs all through the measurement
#     (it is cancelled after it), the runner at its default concurrency
#     (4); the batch's lines completed per second over the measurement;
#   the same with the runner's concurrency at its maximum (1024: only
#     the tunnel's free slots limit it), after a reload.
# BATCH_ROUNDS (2) rounds each, interleaved; the median-RPS round is kept.

batch_agents=${BATCH_AGENTS:-2}
batch_cap=${BATCH_CAPACITY:-8}
batch_conns=${BATCH_CONNS:-8}
batch_secs=${BATCH_SECONDS:-15}
batch_nlines=${BATCH_LINES:-2000}
batch_rounds=${BATCH_ROUNDS:-2}
batch_dir=$tmp/batch-gw
mkdir -p "$batch_dir/logs" "$batch_dir/spill"
chmod 777 "$batch_dir/spill"
gg_take_port batch_tport
gg_take_port batch_port
batch_mports=()

for ((i = 1; i <= batch_agents; i++)); do
    gg_start_mock "$tmp" "mock-batch$i" --quiet \
        --ttft-ms "${BATCH_TTFT_MS:-50}" \
        --token-delay-ms "${BATCH_TOKEN_MS:-10}" \
        --tokens "${BATCH_TOKENS:-16}"
    batch_mports+=("$GG_MOCK_PORT")
done

# batch_conf CONCURRENCY: the gateway's configuration with that runner
batch_conf() {
    local dsn="host=127.0.0.1 port=$pg_port user=gpugate dbname=gpugate"

    cat > "$batch_dir/nginx.conf" <<CONF
load_module $GG_BUILD/modules/ngx_http_gpugate_module.so;
worker_processes $workers;
error_log $batch_dir/logs/error.log notice;
pid $batch_dir/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $batch_dir; proxy_temp_path $batch_dir;
    fastcgi_temp_path $batch_dir; uwsgi_temp_path $batch_dir;
    scgi_temp_path $batch_dir;
    gpugate_auth_zone zone=batch_keys:10m ttl=60s negative_ttl=10s
                      stale=300s;
    gpugate_auth_postgres "$dsn" connections=2 timeout=3s;
    gpugate_usage_ledger "$dsn" batch=500 interval=1s
                         spill=$batch_dir/spill;
    gpugate_batch 127.0.0.1:$batch_port concurrency=$1 interval=1s
                  lease=10m;
    upstream gpugate_agents { gpugate_tunnel queue=256 queue_timeout=10s; }
    gpugate_model mock-model pool=gpugate_agents;
    server {
        listen 127.0.0.1:$batch_tport;
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=5s ping_timeout=3s;
        }
    }
    server {
        listen 127.0.0.1:$batch_port backlog=4096;
        location = /status { gpugate_tunnel_status; }
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            proxy_pass http://gpugate_agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_read_timeout 300s;
            error_page 502 503 504 @gpugate_error;
        }
        location @gpugate_error { gpugate_error; }
        location ~ ^/v1/(files|batches|jobs)(/|\$) {
            gpugate_auth on;
            client_max_body_size 100m;
            gpugate_batch_api;
        }
    }
}
CONF
}

batch_conf 4
/usr/sbin/nginx -p "$batch_dir" -c "$batch_dir/nginx.conf" \
    -e "$batch_dir/logs/error.log" -g "daemon off;" &
gg_track $!
gg_wait_for "nginx batch" 30 perl -MIO::Socket::INET -e \
    'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$batch_port"

for ((i = 1; i <= batch_agents; i++)); do
    name=bench-batch$i
    "$GG_ROOT/scripts/gpugate-keys" agent-revoke "$name" >/dev/null 2>&1 || true
    psql -X -q -h 127.0.0.1 -p "$pg_port" -U gpugate -d gpugate \
        -c "DELETE FROM agents WHERE name = '$name'" >/dev/null
    token=$("$GG_ROOT/scripts/gpugate-keys" agent-create "$name" 2>/dev/null \
        | sed -n 's/^token: //p')
    (umask 077; printf '%s\n' "$token" > "$tmp/$name.token")
    "$GG_BUILD/bin/gpugate-agent" --name "$name" \
        --gateway "http://127.0.0.1:$batch_tport/gpugate/tunnel" \
        --token-file "$tmp/$name.token" \
        --runtime "http://127.0.0.1:${batch_mports[$((i - 1))]}" \
        --models mock-model --capacity "$batch_cap" --spare 4 \
        --log-level warn >>"$tmp/$name.log" 2>&1 &
    gg_track $!
done

# batch_agents_up: every agent connected with its whole capacity parked
batch_agents_up() {
    curl -fsS "http://127.0.0.1:$batch_port/status" | perl -MJSON::PP -e '
        my ($n, $cap) = @ARGV;
        my $j = eval { decode_json(join "", <STDIN>) } or exit 1;
        my @a = @{ $j->{agents} // [] };
        exit(@a == $n ? 0 : 1)' "$batch_agents" "$batch_cap"
}

gg_wait_for "the batch group's agents" 30 batch_agents_up \
    || gg_die "batch: the agents did not connect (see $tmp/bench-batch1.log)"

printf '%s' '{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Say hello to the benchmark"}]}' \
    > "$batch_dir/chat.json"

# the batch's input: BATCH_LINES chat completions, uploaded once and used
# by every batch of the group
perl -e 'for (1 .. $ARGV[0]) {
    print qq({"custom_id":"line-$_","method":"POST",)
        . qq("url":"/v1/chat/completions","body":{"model":"mock-model",)
        . qq("messages":[{"role":"user","content":"batch line $_"}]}}\n) }' \
    "$batch_nlines" > "$batch_dir/lines.jsonl"

batch_api() {
    curl -sS --max-time 60 -H "Authorization: Bearer $bench_key" "$@"
}

batch_file=$(batch_api -F purpose=batch \
    -F "file=@$batch_dir/lines.jsonl;type=application/jsonl" \
    "http://127.0.0.1:$batch_port/v1/files" \
    | perl -MJSON::PP -e 'print eval { decode_json(join "", <STDIN>)->{id} }
                          // ""')
[ -n "$batch_file" ] || gg_die "batch: the input file was not uploaded"

batch_sql() {
    psql -X -qAt -h 127.0.0.1 -p "$pg_port" -U gpugate -d gpugate -c "$1"
}

# batch_ended ID: lines of the batch with an answer (or a failure)
batch_ended() {
    batch_sql "SELECT completed + failed FROM batches WHERE id = '$1'"
}

batch_started() {
    [ "$(batch_ended "$1")" -ge "$2" ]
}

batch_nothing_runs() {
    [ "$(batch_sql "SELECT count(*) FROM batch_lines
                    WHERE status = 'running'")" -eq 0 ]
}

# batch_run WITH(0|1): the interactive load for BATCH_SECONDS, with a
# batch running beside it or not; JSON with a note for the table
batch_run() {
    local bid='' c0=0 c1=0 f0=0 f1=0 t0 t1 out

    if [ "$1" = 1 ]; then
        bid=$(batch_api -H 'Content-Type: application/json' \
            -d "{\"input_file_id\":\"$batch_file\",\"completion_window\":\"24h\",\"endpoint\":\"/v1/chat/completions\"}" \
            "http://127.0.0.1:$batch_port/v1/batches" \
            | perl -MJSON::PP -e '
                print eval { decode_json(join "", <STDIN>)->{id} } // ""')
        [ -n "$bid" ] || gg_die "batch: the batch was not created"
        # measured once lines run steadily
        gg_wait_for "batch $bid running" 60 batch_started "$bid" 8 \
            || gg_die "batch: no line of $bid ran"
        c0=$(batch_ended "$bid")
        f0=$(batch_sql "SELECT failed FROM batches WHERE id = '$bid'")
    fi

    t0=$(date +%s.%N)
    out=$("$GG_BUILD/bin/gpugate-sse-bench" \
        -u "http://127.0.0.1:$batch_port/v1/chat/completions" \
        -c "$batch_conns" -d "$batch_secs" -b "$batch_dir/chat.json" \
        -H "Authorization: Bearer $bench_key" | tail -n 1) || true
    t1=$(date +%s.%N)

    if [ -n "$bid" ]; then
        c1=$(batch_ended "$bid")
        f1=$(batch_sql "SELECT failed FROM batches WHERE id = '$bid'")
        [ "$(batch_sql "SELECT count(*) FROM batch_lines WHERE batch_id = '$bid'
                        AND status = 'pending'")" -gt 0 ] \
            || gg_log "batch: $bid ran out of lines before the end of the" \
                      "measurement (raise BATCH_LINES)"
        batch_api -X POST \
            "http://127.0.0.1:$batch_port/v1/batches/$bid/cancel" >/dev/null
        [ "$f1" -gt "$f0" ] && gg_log "batch: $bid's failed lines:" \
            "$(batch_sql "SELECT string_agg(n || ' x ' || s, ', ') FROM
                (SELECT count(*) AS n, coalesce(status_code::text, '')
                        || ' ' || coalesce(error ->> 'code', '') AS s
                 FROM batch_lines WHERE batch_id = '$bid'
                   AND status = 'failed' GROUP BY 2) AS x")"
        # the next scenario starts with no line in flight
        gg_wait_for "batch $bid cancelled" 60 batch_nothing_runs || true
    fi

    printf '%s\n' "$out" | perl -MJSON::PP -e '
        my ($with, $c0, $c1, $f0, $f1, $t0, $t1) = @ARGV;
        my $r = eval { decode_json(scalar <STDIN>) } // { errors => -1 };
        my $t = $r->{ttft_ms} // {};
        if ($with) {
            $r->{batch_lines_per_s} = ($c1 - $c0) / ($t1 - $t0);
            $r->{batch_failed} = $f1 - $f0;
        }
        $r->{note} = sprintf("TTFT p50 %.1f, p90 %.1f, p99 %.1f ms; "
            . "%.1f rps; %d errors%s", $t->{p50} // -1, $t->{p90} // -1,
            $t->{p99} // -1, $r->{rps} // 0, $r->{errors},
            $with ? sprintf("; batch %.1f lines/s, %d failed",
                            $r->{batch_lines_per_s}, $r->{batch_failed})
                  : "");
        print JSON::PP->new->canonical->encode($r), "\n";
    ' "$1" "$c0" "$c1" "$f0" "$f1" "$t0" "$t1"
}

# a warm-up: connections parked and the key cached
"$GG_BUILD/bin/gpugate-sse-bench" \
    -u "http://127.0.0.1:$batch_port/v1/chat/completions" \
    -c "$batch_conns" -d 2 -b "$batch_dir/chat.json" \
    -H "Authorization: Bearer $bench_key" >/dev/null || true

batch_saved_rounds=$rounds
rounds=$batch_rounds
gg_log "batch: $batch_conns interactive streams, $batch_agents agents x" \
    "$batch_cap, $rounds x ${batch_secs}s, load $(cut -d' ' -f1-3 /proc/loadavg)"
scenario "interactive alone" 1 batch_run 0
scenario "interactive + batch (concurrency=4)" 0 batch_run 1
run_group batch

# the runner limited by the tunnel's free slots alone
batch_conf 1024
kill -HUP "$(cat "$batch_dir/nginx.pid")"
gg_wait_for "the reload's runner" 30 grep -q '1024 at once' \
    "$batch_dir/logs/error.log"
gg_wait_for "the agents after the reload" 30 batch_agents_up
gg_wait_for "a chat after the reload" 30 curl -fsS -o /dev/null \
    --max-time 5 -H "Authorization: Bearer $bench_key" \
    -H 'Content-Type: application/json' -d @"$batch_dir/chat.json" \
    "http://127.0.0.1:$batch_port/v1/chat/completions"
scenario "interactive alone" 1 batch_run 0
scenario "interactive + batch (concurrency=1024)" 0 batch_run 1
run_group batch-unlimited
rounds=$batch_saved_rounds
gg_log "batch: load after the group $(cut -d' ' -f1-3 /proc/loadavg)"
