#!/usr/bin/env bash
#
# Chaos run of the whole stack: starts scripts/run.sh (2 workers, 2
# agents, mock runtimes) on loopback, breaks one part at a time under
# traffic, and prints one table:
#
#   scenario | requests | failed | streams cut | ledger rows expected/found |
#   crashes | nginx RSS before/after (MiB) | notes
#
# "failed" counts answers other than 200 and transfers that did not
# finish; "streams cut" counts SSE streams without their "[DONE]";
# "crashes" counts nginx workers that exited on a signal nobody sent.  Every scenario is bounded in time;
# the whole run takes about six minutes.  Run by hand or from the full
# bench, never from CI (it kills and freezes processes on purpose).
#
#   scripts/chaos.sh [--no-deps] [--only NAME[,NAME...]] [--keep]
#
#   --only   run these scenarios (names as in the table)
#   --keep   keep the state directory (logs of every component)

set -euo pipefail

GG_SCRIPT=chaos
. "$(dirname "$0")/lib.sh"

deps=1
only=
keep=0

while [ $# -gt 0 ]; do
    case $1 in
        --no-deps) deps=0 ;;
        --only) only=${2:?--only needs a list}; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) gg_die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

[ $deps -eq 1 ] && gg_install_deps
"$GG_ROOT/scripts/build.sh" --no-deps

state=$(mktemp -d /tmp/gpugate-chaos.XXXXXX)
chmod 755 "$state"
out=$state/out
mkdir -p "$out"
port=$(gg_free_port)

gg_install_traps
if [ $keep -eq 1 ]; then
    gg_on_cleanup "echo 'chaos: kept $state' >&2"
else
    gg_on_cleanup "rm -rf '$state'"
fi

"$GG_ROOT/scripts/run.sh" --no-deps --no-watch --port "$port" \
    --workers 2 --agents 2 --state "$state/run" >"$state/run.log" 2>&1 &
run_pid=$!
gg_track "$run_pid"

gg_wait_for "the stack" 180 grep -q '^Press Ctrl-C' "$state/run.log" \
    || { tail -n 30 "$state/run.log" >&2; gg_die "run.sh did not start"; }

# shellcheck disable=SC1091
. "$state/run/stack.env"
url=http://127.0.0.1:$PORT
admin=$(cat "$ADMIN_KEY_FILE")
errlog=$STATE/logs/nginx-error.log
export PGPASSFILE=$STATE/secrets/pgpass

# processes this script started in place of killed ones
extra_pids=()
gg_on_cleanup 'for p in "${extra_pids[@]}"; do kill -TERM "$p"; done'

want() {
    [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]
}

nginx_reload() {
    kill -HUP "$NGINX_PID"
}

nginx_rss() {
    local kb
    kb=$(ps -o rss= --ppid "$NGINX_PID" 2>/dev/null | awk '{s += $1} END {print s + 0}')
    echo $((kb / 1024))
}

ledger_rows() {
    psql -X -qAt "$PG_DSN" -c \
        "SELECT count(*) FROM usage_events WHERE created_at >= to_timestamp($1)" \
        2>/dev/null || echo '?'
}

# ledger rows counted as lost (a worker died holding them)
lost_rows() {
    curl -fsS -H "Authorization: Bearer $admin" "$url/metrics" 2>/dev/null \
        | awk '/^gpugate_ledger_rows_total\{state="lost"\}/ {print $2}'
}

crash_lines() {
    grep -c 'exited on signal' "$errlog" 2>/dev/null || true
}

# fire NAME COUNT PARALLEL STREAM [HEADER...]: COUNT requests, PARALLEL at
# a time; one line per request in $out/NAME: "code done seconds" where
# done is 1 when a stream ended with [DONE] (always 1 for JSON answers)
fire() {
    local name=$1 count=$2 par=$3 stream=$4
    shift 4
    local body hdrs=() h
    for h in "$@"; do
        hdrs+=(-H "$h")
    done
    body="{\"model\":\"$MODEL\",\"stream\":$stream,\"max_tokens\":8,"
    body+='"messages":[{"role":"user","content":"chaos"}]}'
    export url API_KEY body stream
    seq "$count" | xargs -P "$par" -I{} bash -c '
        f=$(mktemp)
        code=$(curl -sS -N -o "$f" -w "%{http_code} %{time_total}" \
            --max-time 60 \
            "$url/v1/chat/completions" \
            -H "Authorization: Bearer $API_KEY" \
            -H "Content-Type: application/json" "$@" -d "$body" \
            2>/dev/null) || code=${code:-000 0}
        done=1
        if [ "$stream" = true ] && [ "${code%% *}" = 200 ]; then
            grep -q "\[DONE\]" "$f" || done=0
        fi
        rm -f "$f"
        echo "${code%% *} $done ${code#* }"' _ "${hdrs[@]}" >> "$out/$name"
}

# the slowest answer of a fire file, seconds
slowest() {
    awk '$3 > m {m = $3} END {printf "%.1f\n", m}' "$out/$1"
}

# counts of a fire file: requests failed cut
tally() {
    awk '{n++; if ($1 != 200) f++; else if ($2 != 1) c++}
         END {printf "%d %d %d\n", n, f + 0, c + 0}' "$out/$1" 2>/dev/null \
        || echo "0 0 0"
}

rows=()
note=

# report NAME START CRASHES_BEFORE RSS_BEFORE [EXPECTED_CRASHES]
report() {
    local name=$1 start=$2 c0=$3 rss0=$4 deliberate=${5:-0}
    local n f cut found crashes
    read -r n f cut < <(tally "$name")
    # rows come within the ledger's interval; give them a few seconds
    found=$(ledger_rows "$start")
    for _ in $(seq 1 150); do
        [ "$found" = '?' ] || [ "$found" -ge "$n" ] && break
        sleep 0.2
        found=$(ledger_rows "$start")
    done
    crashes=$(($(crash_lines) - c0 - deliberate))
    [ $crashes -lt 0 ] && crashes=0
    rows+=("$name|$n|$f|$cut|$n/$found|$crashes|$rss0/$(nginx_rss)|$note")
    gg_log "$name: $n requests, $f failed, $cut streams cut," \
           "ledger $n/$found${note:+; $note}"
    note=
}

begin() {
    sleep 1.5
    start=$(date +%s.%N)
    c0=$(crash_lines)
    rss0=$(nginx_rss)
}

wait_agents() {
    # both agents serve again: two different agents answer in a row
    gg_wait_for "agents back" 60 bash -c '
        n=$(curl -fsS -H "Authorization: Bearer '"$admin"'" \
            "'"$url"'/status" | grep -o "\"name\":\"run-agent-[0-9]*\"" \
            | sort -u | wc -l)
        [ "$n" -ge '"$AGENTS"' ]' || true
}

# 1. baseline: nothing broken
if want baseline; then
    begin
    fire baseline 100 8 false
    fire baseline 20 8 true
    report baseline "$start" "$c0" "$rss0"
fi

# 2. agent SIGKILL under 20 streams, restarted
if want agent-kill; then
    begin
    fire agent-kill 20 20 true X-Mock-Token-Delay-Ms:300 &
    bg=$!
    sleep 0.5
    kill -KILL "$AGENT_1_PID"
    wait "$bg" || true
    fire agent-kill 40 8 false
    "${AGENT_1_CMD[@]}" >>"$STATE/logs/run-agent-1.log" 2>&1 &
    AGENT_1_PID=$!
    extra_pids+=("$AGENT_1_PID")
    wait_agents
    report agent-kill "$start" "$c0" "$rss0"
fi

# 3. a rejoining agent does not take all traffic (agent 2 restarted)
if want rejoin; then
    begin
    kill -TERM "$AGENT_2_PID"
    gg_wait_gone "$AGENT_2_PID" 30 || true
    "${AGENT_2_CMD[@]}" >>"$STATE/logs/run-agent-2.log" 2>&1 &
    AGENT_2_PID=$!
    extra_pids+=("$AGENT_2_PID")
    wait_agents
    : > "$STATE/logs/nginx-access.log"
    kill -USR1 "$NGINX_PID"
    sleep 0.5
    fire rejoin 100 1 false
    share=$(grep -c 'POST /v1/chat' "$STATE/logs/nginx-access.log" || true)
    a2=$(grep 'POST /v1/chat' "$STATE/logs/nginx-access.log" \
        | grep -o 'up=[^ ]*' | sort | uniq -c | sort -rn | head -1 \
        | awk '{print $1}')
    note="busiest agent took ${a2:-0} of $share"
    report rejoin "$start" "$c0" "$rss0"
fi

# 4. reloads under load: 200 requests across 5 reloads
if want reloads; then
    begin
    fire reloads 200 4 false &
    bg=$!
    for _ in 1 2 3 4 5; do
        sleep 1
        nginx_reload
    done
    wait "$bg" || true
    report reloads "$start" "$c0" "$rss0"
fi

# 5. streams longer than exit_timeout across a reload: their rows arrive
if want long-streams; then
    begin
    fire long-streams 10 10 true X-Mock-Token-Delay-Ms:1500 &
    bg=$!
    sleep 1
    nginx_reload
    wait "$bg" || true
    report long-streams "$start" "$c0" "$rss0"
fi

# 6. PostgreSQL stopped, nginx reloaded: agents re-handshake, keys stale
if want pg-down-reload; then
    begin
    gg_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    nginx_reload
    sleep 3
    fire pg-down-reload 60 6 false
    gg_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/../postgres.log" \
        -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PG_PORT \
            -k $(dirname "$PG_DATA") -c fsync=off" start >/dev/null
    report pg-down-reload "$start" "$c0" "$rss0"
fi

# 7. a runtime stops listening behind one of two agents
if want runtime-stop; then
    begin
    kill -KILL "$MOCK_1_PID"
    fire runtime-stop 50 4 false
    "$GG_BUILD/bin/gpugate-mock-runtime" --listen "127.0.0.1:$MOCK_1_PORT" \
        --models mock-model,mock-embed --ttft-ms 150 --token-delay-ms 60 \
        --tokens 40 >>"$STATE/logs/mock-runtime-1.log" 2>&1 &
    MOCK_1_PID=$!
    extra_pids+=("$MOCK_1_PID")
    wait_agents
    report runtime-stop "$start" "$c0" "$rss0"
fi

# 8. a frozen agent (SIGSTOP 20 s) with requests in flight
if want frozen-agent; then
    begin
    fire frozen-agent 10 10 false X-Mock-Ttft-Ms:1000 &
    bg=$!
    sleep 0.3
    kill -STOP "$AGENT_1_PID"
    sleep 20 &
    wait $! || true
    kill -CONT "$AGENT_1_PID"
    wait "$bg" || true
    note="slowest answer $(slowest frozen-agent) s"
    report frozen-agent "$start" "$c0" "$rss0"
fi

# 9. a worker killed with streams in flight: the gauge returns to 0
if want worker-kill; then
    begin
    lost0=$(lost_rows)
    fire worker-kill 10 10 true X-Mock-Token-Delay-Ms:200 &
    bg=$!
    sleep 1
    # the worker holding the most client connections
    victim=$(ss -Htnp state established "( sport = :$PORT )" \
        | grep -o 'pid=[0-9]*' | sort | uniq -c | sort -rn | head -1 \
        | sed 's/.*pid=//')
    [ -n "$victim" ] || victim=$(ps -o pid= --ppid "$NGINX_PID" | head -1)
    kill -KILL "$victim"
    wait "$bg" || true
    sleep 2
    gauge=$(curl -fsS -H "Authorization: Bearer $admin" "$url/metrics" \
        | awk '/^gpugate_active_streams[{ ]/ {s += $NF} END {print s + 0}')
    note="gpugate_active_streams after: ${gauge:-?};"
    note+=" rows counted as lost: $(($(lost_rows) - ${lost0:-0}))"
    report worker-kill "$start" "$c0" "$rss0" 1
fi

# 10. Redis frozen: the key tool answers within its timeout
if want redis-frozen; then
    begin
    kill -STOP "$REDIS_PID"
    t0=$(date +%s)
    set +e
    timeout 60 env GPUGATE_PG_DSN="$PG_DSN" \
        GPUGATE_REDIS_PASSWORD_FILE="$REDIS_PASSWORD_FILE" \
        "$GG_ROOT/scripts/gpugate-keys" \
        --redis "127.0.0.1:$REDIS_PORT" create --tenant chaos \
        --name frozen >/dev/null 2>&1
    rc=$?
    set -e
    took=$(($(date +%s) - t0))
    kill -CONT "$REDIS_PID"
    fire redis-frozen 20 4 false
    note="gpugate-keys exited $rc after ${took}s"
    report redis-frozen "$start" "$c0" "$rss0"
fi

echo
echo "| scenario | requests | failed | streams cut | ledger rows expected/found | crashes | nginx RSS before/after (MiB) | notes |"
echo "|----------|---------:|-------:|------------:|---------------------------:|--------:|-----------------------------:|-------|"
for r in "${rows[@]}"; do
    IFS='|' read -r name n f cut ledger crashes rss notes <<<"$r"
    echo "| $name | $n | $f | $cut | $ledger | $crashes | $rss | $notes |"
done
