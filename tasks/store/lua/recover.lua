-- Give back running jobs whose holder's lease has lapsed: each is published again (at the head of
-- its queue: it is late) and its claim cleared, so that the holder, should it resume, neither calls
-- nor records an outcome. Only a steady sweeper judges (see lib/lease.lua `steady`): returns -1,
-- doing nothing, when this one is not. ARGV after the first three: (job id, job key, queue, message).
--#include names
--#include lib/publish.lua
--#include lib/lease.lua
local leases_key = KEYS[1]
local active_key = KEYS[2]
local workers_key = KEYS[3]
local steady_key = KEYS[4]
local recovered_key = KEYS[5]
local sweeper = ARGV[1]
local lease = tonumber(ARGV[2])
local wall_now = ARGV[3]   -- the sweeper's clock, for the record's times (leases use Redis's)

local now = redis_now()
if not steady(workers_key, steady_key, sweeper, now, lease) then return -1 end
local given = 0
for i = 4, #ARGV, 4 do
  local job_id, job_key, queue_key, message = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local lease_until = tonumber(redis.call('ZSCORE', leases_key, job_id) or '')
  if lease_until ~= nil and lease_until <= now then
    redis.call('ZREM', leases_key, job_id)
    if redis.call('HGET', job_key, 'state') == STATE.RUNNING then
      redis.call('HSET', job_key, 'recovered_from', redis.call('HGET', job_key, 'holder') or '')
      redis.call('HDEL', job_key, 'claim', 'holder')
      redis.call('HINCRBY', job_key, 'recoveries', 1)
      publish(job_key, queue_key, active_key, job_id, message, wall_now, true)
      redis.call('INCR', recovered_key)
      given = given + 1
    end
  end
end
return given
