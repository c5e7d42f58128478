-- wrk script for gpugate benchmarks: POSTs the body in $BENCH_BODY with the
-- headers in $BENCH_HEADERS ("Name: value" lines), then prints one JSON
-- line with the figures scripts/bench.sh puts in its table.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"

for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then
        wrk.headers[name] = value
    end
end

-- non-2xx answers count as errors, like connection and timeout errors
done = function(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.status + e.timeout
    io.write(string.format(
        '{"requests":%d,"errors":%d,"seconds":%.3f,"rps":%.1f,' ..
        '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f}}\n',
        summary.requests, errors, summary.duration / 1e6,
        (summary.requests - errors) / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000))
end
