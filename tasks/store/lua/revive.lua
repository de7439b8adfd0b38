-- Re-publish jobs untouched since the cutoff whose message must have been lost between kombu's
-- pop and BEGIN (kombu keeps no copy): one still running, or one queued while its queue is empty. A queued
-- job behind a backlog still has its message there; a copy would run it twice. Finished jobs
-- just leave the active set. A running job with a lease is the lease sweep's (recover.lua): it
-- is left alone. ARGV after now and cutoff: (job id, job key, queue, message) per job.
--#include names
--#include lib/publish.lua
local active_key = KEYS[1]
local leases_key = KEYS[2]
local now = ARGV[1]
local cutoff = tonumber(ARGV[2])

local revived = 0
for i = 3, #ARGV, 4 do
  local job_id, job_key, queue_key, message = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local since = redis.call('ZSCORE', active_key, job_id)
  if since and tonumber(since) <= cutoff then
    local state = redis.call('HGET', job_key, 'state')
    if state == STATE.QUEUED and redis.call('LLEN', queue_key) > 0 then
      -- still waiting its turn: look again on the next sweep
    elseif state == STATE.RUNNING and redis.call('ZSCORE', leases_key, job_id) then
      -- held: its holder's lease stands, or the lease sweep gives it back when it lapses
    elseif state == STATE.QUEUED or state == STATE.RUNNING then
      publish(job_key, queue_key, active_key, job_id, message, now, true)
      revived = revived + 1
    else
      redis.call('ZREM', active_key, job_id)
    end
  end
end
return revived
