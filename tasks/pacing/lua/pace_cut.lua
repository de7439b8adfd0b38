-- Write what a 429 taught about an endpoint, unless an earlier cut's pause has not ended yet
-- (every call in flight when the API starts refusing comes back 429: one lesson per burst).
-- Returns 1 if written.
local pace_key = KEYS[1]
local now = tonumber(ARGV[1])
local accepted = ARGV[2]
local since = ARGV[3]
local climb = ARGV[4]

local current = tonumber(redis.call('HGET', pace_key, 'since') or '')
if current and now < current then return 0 end
redis.call('HSET', pace_key, 'accepted', accepted, 'since', since, 'climb', climb)
return 1
