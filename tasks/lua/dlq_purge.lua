-- Delete entries by id; with a cutoff, only those dead-lettered at or before it. The age is
-- checked here, not by the caller, so an entry replayed and dead-lettered again in between is
-- never purged as if it were still old. ARGV after the cutoff ('' = any age): job ids.
--#include lib/dlq_remove.lua
local entries_key = KEYS[1]
local index_key = KEYS[2]
local counts_key = KEYS[3]
local cutoff = tonumber(ARGV[1])

local removed = 0
for i = 2, #ARGV do
  local job_id = ARGV[i]
  local dead_at = redis.call('ZSCORE', index_key, job_id)
  if cutoff == nil or not dead_at or tonumber(dead_at) <= cutoff then
    removed = removed + remove_entry(entries_key, index_key, counts_key, job_id)
  end
end
return removed
