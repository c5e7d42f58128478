-- wrk script for gpugate benchmarks: POSTs the body in $BENCH_BODY with the
-- headers in $BENCH_HEADERS ("Name: value" lines).

dofile(os.getenv("BENCH_LUA") .. "/report.lua")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"

for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then
        wrk.headers[name] = value
    end
end

