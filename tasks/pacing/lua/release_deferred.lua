-- An endpoint's pause and learned pace were lifted by hand: make the jobs that wait only for that
-- endpoint due now, so the mover publishes them at once. A job is released only if it is still
-- deferred, for this operation, for the very reason that was read (its `defer` field unchanged);
-- it gives up the turn it held at the old pace (`pace_turn`), so BEGIN hands it a new one.
-- ARGV after `now` and `operation`: (job id, job key, defer JSON as read) per job. Returns how many.
--#include names
local deferred_key = KEYS[1]
local now = ARGV[1]
local operation = ARGV[2]

local released = 0
for i = 3, #ARGV, 3 do
  local job_id, job_key, defer = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local record = redis.call('HMGET', job_key, 'state', 'op', 'defer')
  if record[1] == STATE.DEFERRED and record[2] == operation and record[3] == defer
      and redis.call('ZSCORE', deferred_key, job_id) then
    redis.call('HDEL', job_key, 'pace_turn')
    redis.call('HSET', job_key, 'deferred_until', now)
    redis.call('ZADD', deferred_key, now, job_id)
    released = released + 1
  end
end
return released
