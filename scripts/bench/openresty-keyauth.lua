-- The benchmark's OpenResty peer: API-key auth written the way an
-- APISIX/Kong-style deployment does it (access_by_lua, lua-resty-redis,
-- a lua_shared_dict cache).  It reads the same Redis entries gpugate
-- writes (gpugate:key:<sha256 hex>, JSON with "refusal"), so both check
-- the same keys; it is idiomatic, not deliberately slow: cosocket
-- keepalive pool, shared-dict cache with positive and negative TTLs.

local sha256 = require "nginx.sha256"
local str = require "nginx.string"
local redis = require "nginx.redis"
local cjson = require "cjson.safe"

local cache = ngx.shared.keys

local function reject(status, code, message)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if status == 401 then
        ngx.header["WWW-Authenticate"] = 'Bearer realm="lua"'
    end
    ngx.say(cjson.encode({ error = { message = message,
        type = "invalid_request_error", param = cjson.null, code = code } }))
    return ngx.exit(status)
end

local key
local auth = ngx.var.http_authorization
if auth then
    key = auth:match("^[Bb]earer%s+(%S+)$")
end
key = key or ngx.var.http_x_api_key

if not key then
    return reject(401, "invalid_api_key", "missing API key")
end

local sha = sha256:new()
sha:update(key)
local hex = str.to_hex(sha:final())

local verdict = cache:get(hex)

if verdict == nil then
    local red = redis:new()
    red:set_timeouts(500, 500, 500)

    local ok = red:connect("127.0.0.1", tonumber(ngx.var.bench_redis_port))
    if not ok then
        return reject(503, "auth_unavailable", "cannot verify keys")
    end

    local res = red:get("gpugate:key:" .. hex)
    red:set_keepalive(10000, 64)

    if res and res ~= ngx.null then
        local entry = cjson.decode(res)
        verdict = (entry and entry.refusal == 0) and "ok" or "no"
    else
        verdict = "no"
    end

    cache:set(hex, verdict, verdict == "ok" and 60 or 10)
end

if verdict ~= "ok" then
    return reject(401, "invalid_api_key", "Incorrect API key provided.")
end
