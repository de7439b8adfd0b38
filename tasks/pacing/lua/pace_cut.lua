-- A 429 came: claim the lesson of its burst, unless an earlier 429's pause has not ended yet (every
-- call in flight when the API starts refusing comes back 429: one lesson per burst). The claim
-- marks the burst with its pause's end (`since`) and sets the old lesson aside: until the claimant
-- writes the new one (pace_learn.lua), the endpoint is paced by its configured limit alone, so no
-- turn after the pause is handed out at a pace the API has just refused. Returns 1 if claimed.
local pace_key = KEYS[1]
local now = tonumber(ARGV[1])
local since = ARGV[2]     -- when the pause ends: the new lesson's start

local current = tonumber(redis.call('HGET', pace_key, 'since') or '')
if current and now < current then return 0 end
redis.call('HDEL', pace_key, 'accepted', 'climb')
redis.call('HSET', pace_key, 'since', since)
return 1
