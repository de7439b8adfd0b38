-- Rebuild the per-reason counts from the entries, for when they disagree (entries written before
-- the counts existed, or edited by hand). O(entries), so only then. Returns the counts, flat.
local entries_key = KEYS[1]
local counts_key = KEYS[2]

redis.call('DEL', counts_key)
for _, raw in ipairs(redis.call('HVALS', entries_key)) do
  redis.call('HINCRBY', counts_key, cjson.decode(raw)['reason'], 1)
end
return redis.call('HGETALL', counts_key)
