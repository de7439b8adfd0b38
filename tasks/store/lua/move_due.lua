-- Publish due deferred jobs, each by whichever mover removes it from the set, and only that one.
-- ARGV after `now`: (job id, job key, queue, message) per job. Returns how many left the set.
-- A job no longer 'deferred' was taken further by a second copy of its message (it succeeded,
-- was dead-lettered, is running, or was queued again): publishing it would run it once more.
--#include names
--#include lib/publish.lua
local deferred_key = KEYS[1]
local active_key = KEYS[2]
local now = ARGV[1]

local taken = 0
for i = 2, #ARGV, 4 do
  local job_id, job_key, queue_key, message = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('ZREM', deferred_key, job_id) == 1 then
    taken = taken + 1
    if redis.call('HGET', job_key, 'state') == STATE.DEFERRED then
      -- at the head: a due job runs next instead of waiting behind the backlog it was deferred out of
      publish(job_key, queue_key, active_key, job_id, message, now, true)
    end
  end
end
return taken
