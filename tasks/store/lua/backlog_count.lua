-- How many jobs each store has open (enqueued, not settled), pruning as it counts: of each store's
-- oldest `window` entries, those whose record is gone, succeeded or dead-lettered leave its set.
-- ARGV: window, then the stores' backlog keys. Returns the counts, in order.
--#include names
local window = tonumber(ARGV[1])
local job_prefix = ARGV[2]

local counts = {}
for i = 3, #ARGV do
  local backlog_key = ARGV[i]
  local oldest = redis.call('ZRANGE', backlog_key, 0, window - 1)
  for _, job_id in ipairs(oldest) do
    local state = redis.call('HGET', job_prefix .. job_id, 'state')
    if (not state) or state == STATE.SUCCEEDED or state == STATE.DEAD then
      redis.call('ZREM', backlog_key, job_id)
    end
  end
  table.insert(counts, redis.call('ZCARD', backlog_key))
end
return counts
