-- A worker process's heartbeat: its time in payq:workers, whether its run of beats is unbroken
-- (payq:workers:steady), and the leases of the jobs it holds renewed. ARGV after the first three:
-- (job id, claim) per job the worker runs; a lease is renewed only while the claim is still its own.
-- Returns {now, steady since, leases renewed}, by Redis's clock.
--#include lib/lease.lua
local workers_key = KEYS[1]
local steady_key = KEYS[2]
local leases_key = KEYS[3]
local worker = ARGV[1]
local lease = tonumber(ARGV[2])
local job_prefix = ARGV[3]

local now = redis_now()
local last = tonumber(redis.call('ZSCORE', workers_key, worker) or '')
local since = tonumber(redis.call('HGET', steady_key, worker) or '')
if last == nil or since == nil or now - last > lease / 2 then
  -- a first beat, or one after a gap (this worker, or Redis, was away): the run starts again
  since = now
  redis.call('HSET', steady_key, worker, tostring(now))
end
redis.call('ZADD', workers_key, now, worker)
local renewed = 0
for i = 4, #ARGV, 2 do
  local job_id, claim = ARGV[i], ARGV[i + 1]
  if redis.call('ZSCORE', leases_key, job_id) and redis.call('HGET', job_prefix .. job_id, 'claim') == claim then
    redis.call('ZADD', leases_key, lease_end(now, lease), job_id)
    renewed = renewed + 1
  end
end
return {tostring(now), tostring(since), renewed}
