-- wrk script of the benchmark group "cache": chat requests of many
-- tenants, each tenant with its own long system prompt (about 2 KB), a
-- short user turn that changes every time.  BENCH_TENANTS tenants (32),
-- the model in BENCH_MODEL; BENCH_SHARED=0 puts a random token before
-- every system prompt, so that no two requests share a prefix;
-- BENCH_DELAY_MS pauses each connection between its requests.

dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local tenants = tonumber(os.getenv("BENCH_TENANTS") or "32")
local shared = os.getenv("BENCH_SHARED") ~= "0"
local model = os.getenv("BENCH_MODEL") or "mock-model"
local sys = {}

for t = 1, tenants do
    sys[t] = string.rep(string.format("Tenant %03d house rules, answer "
                                      .. "politely. ", t), 50)
end

local n = 0

-- every run draws other tenants and tokens (wrk does not seed): a warm-up
-- must not have sent the measured run's "unshared" prompts before
math.randomseed(tonumber(os.getenv("BENCH_SEED") or "0") + os.time())
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

-- a pause between a connection's requests keeps the offered load low:
-- a faster policy must not buy its figures with a CPU the load generator
-- and the gateway share with everything else
delay = function()
    return pause
end

request = function()
    local t = math.random(tenants)
    local s = sys[t]
    n = n + 1
    if not shared then
        s = string.format("%08x%08x ", math.random(0x7fffffff), n) .. s
    end
    local body = '{"model":"' .. model .. '","max_tokens":4,"messages":['
        .. '{"role":"system","content":"' .. s .. '"},'
        .. '{"role":"user","content":"question ' .. n .. ' of '
        .. math.random(1000000) .. '"}]}'
    return wrk.format("POST", "/v1/chat/completions",
                      { ["Content-Type"] = "application/json" }, body)
end
