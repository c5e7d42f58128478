-- wrk script: every request carries the next key from $BENCH_KEYS (one
-- key per line), so each request misses the gateway's shared-memory cache
-- and the miss path (Redis or PostgreSQL) is what gets measured.

dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local keys = {}
for line in io.lines(os.getenv("BENCH_KEYS")) do
    keys[#keys + 1] = line
end

local i = 0

request = function()
    i = i + 1
    if i > #keys then
        i = 1
    end
    return wrk.format("GET", nil, { Authorization = "Bearer " .. keys[i] })
end

