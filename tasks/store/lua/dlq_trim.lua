-- Delete up to `batch` entries dead-lettered at or before the cutoff. Returns {looked at, removed}.
--#include lib/dead_letters.lua
local entries_key = KEYS[1]
local index_key = KEYS[2]
local counts_key = KEYS[3]
local cutoff = ARGV[1]
local batch = tonumber(ARGV[2])

local ids = redis.call('ZRANGEBYSCORE', index_key, '-inf', cutoff, 'LIMIT', 0, batch)
local removed = 0
for _, job_id in ipairs(ids) do
  removed = removed + remove_entry(entries_key, index_key, counts_key, job_id)
end
return {#ids, removed}
