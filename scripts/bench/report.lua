-- Shared by the wrk scripts: one JSON line per run with the figures
-- scripts/bench.sh puts in its table.  Non-2xx answers count as errors.

function report(summary, latency, extra)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.status + e.timeout
    io.write(string.format(
        '{"requests":%d,"errors":%d,"seconds":%.3f,"rps":%.1f,' ..
        '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f}%s}\n',
        summary.requests, errors, summary.duration / 1e6,
        (summary.requests - errors) / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, extra or ""))
end

done = function(summary, latency, requests)
    report(summary, latency)
end
