-- Pause an endpoint for every worker until `until`. Only ever extends: a shorter Retry-After
-- never ends a longer pause. Returns 1 if this extended it.
local pause_key = KEYS[1]
local paused_until = tonumber(ARGV[1])
local ttl_ms = ARGV[2]

local current = redis.call('GET', pause_key)
if (not current) or tonumber(current) < paused_until then
  redis.call('SET', pause_key, ARGV[1], 'PX', ttl_ms)
  return 1
end
return 0
