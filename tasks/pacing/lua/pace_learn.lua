-- Write what a 429 taught about an endpoint, under the claim pace_cut.lua made for its burst: only
-- while that claim stands (no later burst has claimed since). Returns 1 if written.
local pace_key = KEYS[1]
local claimed = ARGV[1]   -- the claim's `since`, as pace_cut.lua wrote it
local accepted = ARGV[2]
local since = ARGV[3]
local climb = ARGV[4]

if redis.call('HGET', pace_key, 'since') ~= claimed then return 0 end
redis.call('HSET', pace_key, 'accepted', accepted, 'since', since, 'climb', climb)
return 1
