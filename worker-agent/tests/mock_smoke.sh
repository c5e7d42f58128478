#!/usr/bin/env bash
#
# Copyright (C) gpugate authors
#
# Smoke test of the MOCK inference runtime over real sockets with curl.
#
#   tests/mock_smoke.sh [BUILD/bin/gpugate-mock-runtime]
#
# Prints TAP (the plan comes last); scripts/test.sh runs it with the unit
# tests.  Without an argument the binary is $GPUGATE_BUILD/bin/... (or
# build/bin/... of this checkout).
#
# Every wait polls for a file, a log line or a metric with a deadline: no
# fixed sleep races the server.

set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-${GPUGATE_BUILD:-$root/build}/bin/gpugate-mock-runtime}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mock-smoke.XXXXXX")
pass=0
fail=0
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    wait 2>/dev/null
    if [ "$fail" -eq 0 ] && [ -z "${MOCK_SMOKE_KEEP:-}" ]; then
        rm -rf "$tmp"
    else
        echo "# mock smoke: files kept in $tmp"
    fi
}
trap cleanup EXIT

ok() {
    pass=$((pass + 1))
    echo "ok - $1"
}

not_ok() {
    fail=$((fail + 1))
    echo "not ok - $1"
    [ -n "${2:-}" ] && printf '#   %s\n' "$2" | head -c 2000 && echo
}

check() {     # check NAME COMMAND...: passes when the command does
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# wait_for SECONDS COMMAND...: polls every 20 ms
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.02
    done
}

# start NAME ARGS...: runs the mock on a free port, sets $port and $log
start() {
    local name=$1
    shift
    log=$tmp/$name.log
    "$bin" --listen 127.0.0.1:0 --port-file "$tmp/$name.port" "$@" \
        >"$log" 2>&1 &
    pids+=($!)
    if ! wait_for 10 test -s "$tmp/$name.port"; then
        not_ok "$name: starts" "$(cat "$log")"
        exit 1
    fi
    port=$(cat "$tmp/$name.port")
}

post() {      # post PATH BODY [CURL ARGS...]: body to stdout
    local path=$1 body=$2
    shift 2
    curl -sS --max-time 10 -H 'Content-Type: application/json' \
        --data-binary "$body" "$@" "http://127.0.0.1:$port$path"
}

has() {       # has FILE STRING
    grep -qF -- "$2" "$1"
}

metric() {    # metric NAME: its value, from /metrics
    curl -sS --max-time 5 "http://127.0.0.1:$port/metrics" \
        | awk -v m="$1" '$1 == m { print $2 }'
}

metric_is() {
    [ "$(metric "$1")" = "$2" ]
}


chat='{"model":"mock-model","max_tokens":4,"messages":[{"role":"user","content":"Say hello"}]}'
chat_stream='{"model":"mock-model","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}'
chat_usage='{"model":"mock-model","stream":true,"stream_options":{"include_usage":true},"max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}'

"$bin" --help | grep -q 'MOCK' && ok "--help names it a mock" \
    || not_ok "--help names it a mock"

"$bin" --tokens abc 2>"$tmp/err"; rc=$?
check "bad flag value: exit 2 and a precise message" \
    test "$rc" -eq 2 -a -n "$(grep -F -- '--tokens value "abc"' "$tmp/err")"

start main --models mock-model,other-model

check "listening line logged" has "$log" \
    "gpugate-mock-runtime: listening on 127.0.0.1:$port"

out=$(curl -sS --max-time 5 "http://127.0.0.1:$port/health")
check "/health" test "$out" = '{"status":"ok"}'

out=$(curl -sS --max-time 5 "http://127.0.0.1:$port/v1/models")
check "/v1/models lists both models" test "$out" = \
'{"object":"list","data":[{"id":"mock-model","object":"model","created":1700000000,"owned_by":"gpugate-mock"},{"id":"other-model","object":"model","created":1700000000,"owned_by":"gpugate-mock"}]}'

out=$(post /v1/chat/completions "$chat")
check "non-stream chat: content, finish_reason, usage" test "$out" = \
'{"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion","created":1700000000,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":" each one as soon"},"finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":4,"total_tokens":6}}'

out2=$(post /v1/chat/completions "$chat")
check "same request, same bytes" test "$out" = "$out2"

post /v1/chat/completions "$chat_stream" -N -D "$tmp/h" >"$tmp/plain"
check "stream: text/event-stream, chunked" \
    grep -qi '^content-type: text/event-stream' "$tmp/h"
check "stream: Cache-Control: no-cache" \
    grep -qi '^cache-control: no-cache' "$tmp/h"
check "stream without include_usage: no usage anywhere" \
    test -z "$(grep -F '"usage"' "$tmp/plain")"
check "stream: role chunk, 3 tokens, finish, [DONE] = 6 events" \
    test "$(grep -c '^data: ' "$tmp/plain")" -eq 6
check "stream: [DONE] is the last event" \
    test "$(grep '^data: ' "$tmp/plain" | tail -n 1)" = "data: [DONE]"

post /v1/chat/completions "$chat_usage" -N >"$tmp/usage"
check "include_usage: usage chunk with empty choices before [DONE]" \
    test "$(grep '^data: ' "$tmp/usage" | tail -n 2 | head -n 1)" = \
'data: {"id":"chatcmpl-mock-7c5ecc2690386c64","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}'
check "include_usage: usage null on the other chunks" \
    test "$(grep -c '"usage":null' "$tmp/usage")" -eq 5

out=$(post /v1/completions '{"model":"other-model","prompt":"Once upon","max_tokens":2}')
check "completions" test "$out" = \
'{"id":"cmpl-mock-0c352cb18e2492ba","object":"text_completion","created":1700000000,"model":"other-model","choices":[{"index":0,"text":" gamma delta","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}'

post /v1/completions '{"model":"other-model","prompt":["Once upon"],"stream":true,"max_tokens":2}' -N >"$tmp/cstream"
check "completions stream: text_completion chunks with text" \
    test "$(grep -c '"object":"text_completion".*"text":" ' "$tmp/cstream")" -eq 2

out=$(post /v1/embeddings '{"model":"other-model","input":"hello"}')
check "embeddings" test "$out" = \
'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[-0.789242,-0.134709,-0.124936,-0.099019,0.192306,-0.10002,0.90647,-0.671786]}],"model":"other-model","usage":{"prompt_tokens":1,"total_tokens":1}}'

code=$(post /v1/chat/completions '{"model":"nope","messages":[{"role":"user","content":"hi"}]}' \
       -o "$tmp/body" -w '%{http_code}')
check "unknown model: 404 model_not_found" \
    test "$code" = 404 -a -n "$(grep -F '"code":"model_not_found"' "$tmp/body")"

code=$(post /v1/chat/completions '{"model":' -o "$tmp/body" -w '%{http_code}')
check "bad JSON: 400 invalid_request_error" test "$code" = 400 -a -n \
    "$(grep -F '"type":"invalid_request_error"' "$tmp/body")"

code=$(post /v1/chat/completions '{"model":"mock-model"}' -o "$tmp/body" \
       -w '%{http_code}')
check "missing messages: 400 param messages" test "$code" = 400 -a -n \
    "$(grep -F '"param":"messages"' "$tmp/body")"

code=$(curl -sS -o /dev/null -w '%{http_code}' \
       "http://127.0.0.1:$port/v1/chat/completions")
check "GET on an inference endpoint: 405" test "$code" = 405

code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")
check "unknown path: 404" test "$code" = 404

code=$(post /v1/chat/completions "$chat" -H 'X-Mock-Fail-Status: 503' \
       -o "$tmp/body" -w '%{http_code}')
check "X-Mock-Fail-Status: 503 with error JSON" test "$code" = 503 -a -n \
    "$(grep -F '"code":"mock_injected"' "$tmp/body")"

out=$(post /v1/chat/completions "$chat" -H 'Transfer-Encoding: chunked')
check "chunked request body" test "$out" = "$out2"

out=$(curl -sS --max-time 5 --http1.0 -H 'Content-Type: application/json' \
      --data-binary "$chat_stream" \
      "http://127.0.0.1:$port/v1/chat/completions")
check "HTTP/1.0 stream: same events, ended by close" \
    test "$out" = "$(cat "$tmp/plain")"

out=$(curl -sS --max-time 5 "http://127.0.0.1:$port/health" \
      "http://127.0.0.1:$port/health" -w '%{num_connects}\n')
check "keep-alive: two requests, one connection" \
    test "$(echo "$out" | tail -n 1)" = 0

code=$(head -c 34000000 /dev/zero | curl -sS -o "$tmp/body" -w '%{http_code}' \
       --data-binary @- "http://127.0.0.1:$port/v1/chat/completions")
check "body over 32 MiB: 413" test "$code" = 413

post /v1/chat/completions "$chat_stream" -N -H 'X-Mock-Write-Mode: byte' \
    -H 'X-Mock-Byte-Delay-Us: 20' >"$tmp/byte"
check "byte write mode: the same bytes" cmp -s "$tmp/byte" "$tmp/plain"

post /v1/chat/completions "$chat_stream" -N -H 'X-Mock-Write-Mode: bulk' \
    -H 'X-Mock-Token-Delay-Ms: 500' >"$tmp/bulk"
check "bulk write mode: the same bytes" cmp -s "$tmp/bulk" "$tmp/plain"

# drop-after: curl must see a truncated chunked stream
post /v1/chat/completions "$chat_stream" -N -H 'X-Mock-Drop-After: 1' \
    >"$tmp/drop" 2>"$tmp/drop.err"; rc=$?
check "drop-after: curl reports the cut" test "$rc" -ne 0
check "drop-after: role and one token, no [DONE]" \
    test "$(grep -c '^data: ' "$tmp/drop")" -eq 2 \
         -a -z "$(grep -F '[DONE]' "$tmp/drop")"

# stall-after: events arrive, the stream stays open; killing curl is seen
before=$(metric gpugate_mock_stream_disconnects_total)
# curl itself in the background (not a function's subshell): killed below
curl -sS -N --max-time 60 --data-binary "$chat_stream" \
    -H 'X-Mock-Stall-After: 2' \
    "http://127.0.0.1:$port/v1/chat/completions" >"$tmp/stall" 2>/dev/null &
cpid=$!
pids+=($cpid)
events_are() {  # events_are FILE N
    [ "$(grep -c '^data: ' "$1")" -eq "$2" ]
}
check "stall-after: three events arrive while the stream is open" \
    wait_for 10 events_are "$tmp/stall" 3
check "stall-after: nothing more is sent" \
    test -z "$(grep -F 'finish_reason":"' "$tmp/stall")"
kill "$cpid"
check "client gone: disconnect line logged" wait_for 10 has "$log" \
    "gpugate-mock-runtime: client disconnected mid-stream path=/v1/chat/completions model=mock-model sent=2/3 tokens"
check "client gone: disconnect counted" \
    wait_for 10 metric_is gpugate_mock_stream_disconnects_total \
    $((before + 1))
check "client gone: nothing left in flight" \
    metric_is gpugate_mock_requests_in_flight 0

curl -sS --max-time 5 "http://127.0.0.1:$port/metrics" >"$tmp/metrics"
if command -v promtool >/dev/null; then
    check "metrics pass promtool" promtool check metrics <"$tmp/metrics"
fi
check "metrics: TYPE lines for all six" \
    test "$(grep -c '^# TYPE gpugate_mock_' "$tmp/metrics")" -eq 6
check "metrics: connections counted" grep -q \
    '^gpugate_mock_connections_total [1-9]' "$tmp/metrics"
check "metrics: requests by path and status" grep -q \
    '^gpugate_mock_requests_total{path="/v1/chat/completions",status="200"} [1-9]' \
    "$tmp/metrics"

# discovery, health and load endpoints of each --dialect

get() {       # get PATH: body to stdout
    curl -sS --max-time 5 "http://127.0.0.1:$port$1"
}

code_of() {   # code_of PATH: the status only
    curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$port$1"
}

check "no dialect: /api/tags, /info and / are 404" \
    test "$(code_of /api/tags)$(code_of /info)$(code_of /)" = 404404404

code=$(post /mock/models 'a,b b' -o "$tmp/body" -w '%{http_code}')
check "POST /mock/models: replaces the served models" test "$code" = 200 \
    -a "$(get /v1/models | grep -o '"id":"[^"]*"' | tr '\n' ' ')" = \
       '"id":"a" "id":"b b" '
code=$(post /mock/models 'a,,b' -o "$tmp/body" -w '%{http_code}')
check "POST /mock/models: an empty name is 400, nothing changes" \
    test "$code" = 400 -a "$(get /v1/models | grep -o '"id":"a"')" = '"id":"a"'
post /mock/models '' >/dev/null
check "POST /mock/models: empty body serves none" \
    test "$(get /v1/models)" = '{"object":"list","data":[]}'

start ollama --dialect ollama --models llama3:8b,qwen2:7b

check "ollama: GET / says it is running" test "$(get /)" = 'Ollama is running'
check "ollama: /health" test "$(get /health)" = '{"status":"ok"}'
dig=8934d96d3f08982e95922b2b7a2c626a1fe873d7c3b06e8e56d7bc0a1fef9246
details='"details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"8.0B","quantization_level":"Q4_0"}'
check "ollama: /api/tags lists the models" test "$(get /api/tags)" = \
"{\"models\":[{\"name\":\"llama3:8b\",\"model\":\"llama3:8b\",\"modified_at\":\"2024-05-01T10:00:00Z\",\"size\":4661224676,\"digest\":\"$dig\",$details},{\"name\":\"qwen2:7b\",\"model\":\"qwen2:7b\",\"modified_at\":\"2024-05-01T10:00:00Z\",\"size\":4661224676,\"digest\":\"$dig\",$details}]}"
check "ollama: /api/ps lists them loaded, with size_vram" \
    test "$(get /api/ps | grep -o '"name":"[^"]*"\|"size_vram":[0-9]*' \
            | tr '\n' ' ')" = \
    '"name":"llama3:8b" "size_vram":5137025024 "name":"qwen2:7b" "size_vram":5137025024 '
check "ollama: /v1/models still served" \
    test "$(get /v1/models | grep -c '"id":"qwen2:7b"')" -eq 1
check "ollama: no Prometheus gauges of another runtime" \
    test -z "$(get /metrics | grep -v '^gpugate_mock_\|^#')"
check "ollama: /info is TGI's, 404" test "$(code_of /info)" = 404
post /mock/models 'phi3:mini' >/dev/null
check "ollama: POST /mock/models changes /api/tags" \
    test "$(get /api/tags | grep -o '"name":"[^"]*"')" = '"name":"phi3:mini"'

start tgi --dialect tgi --models org/served,org/other --waiting 3

check "tgi: /info names the first model" test "$(get /info)" = \
'{"model_id":"org/served","model_sha":"0000000000000000000000000000000000000000","model_dtype":"torch.float16","model_device_type":"cuda","max_concurrent_requests":128,"max_input_tokens":4095,"max_total_tokens":4096,"version":"2.4.1-gpugate-mock"}'
check "tgi: /health" test "$(code_of /health)" = 200
check "tgi: /metrics has tgi_queue_size" \
    test "$(metric tgi_queue_size)" = 3
check "tgi: /api/tags is Ollama's, 404" test "$(code_of /api/tags)" = 404

for d in vllm llamacpp sglang; do
    start "$d" --dialect "$d"
    check "$d: /health and /v1/models" \
        test "$(code_of /health)$(code_of /v1/models)" = 200200
done

"$bin" --dialect nope 2>"$tmp/err"; rc=$?
check "unknown --dialect: exit 2, ollama among the choices" \
    test "$rc" -eq 2 -a -n "$(grep -F 'tgi or ollama' "$tmp/err")"

# --max-concurrency 1: a second request while one is slow gets 429
start limited --max-concurrency 1 --ttft-ms 3000
post /v1/chat/completions "$chat" -o /dev/null 2>/dev/null &
pids+=($!)
wait_for 10 metric_is gpugate_mock_requests_in_flight 1
code=$(post /v1/chat/completions "$chat" -D "$tmp/h429" -o "$tmp/body" \
       -w '%{http_code}')
check "max-concurrency: 429 rate_limit_error" test "$code" = 429 -a -n \
    "$(grep -F '"type":"rate_limit_error","param":null,"code":"too_many_requests"' "$tmp/body")"
check "max-concurrency: Retry-After: 1" grep -qi '^retry-after: 1' "$tmp/h429"

# SIGTERM: clean exit 0
kill -TERM "${pids[-2]}"
wait "${pids[-2]}" 2>/dev/null; rc=$?
check "SIGTERM: exit 0" test "$rc" -eq 0

echo "1..$((pass + fail))"
echo "# mock smoke: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
