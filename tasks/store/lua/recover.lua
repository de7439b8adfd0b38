-- Give back the jobs of holders that are gone, judged at one moment by Redis's clock. Only a steady sweeper
-- judges (lib/lease.lua `steady`): returns {-1, 0}, doing nothing, when this one is not. Two steps:
-- 1. A worker whose heartbeat (before its first one, its first fetch) is a lease old is dead: every message in its
--    in-flight lists (fetch.lua) is settled as its job's record says (tasks.store.inflight.held_verdict): back to
--    the head of its queue if the job waits for it (fetched, never begun) or was begun and its lease lapsed (then
--    its claim is cleared, as below); left in the list while the job runs under a lease that stands (the next look
--    takes it); dropped if the job moved on (finished, deferred, waiting for its capture) or another worker holds it.
-- 2. Each running job of ARGV whose lease lapsed and which step 1 did not give back (its holder kept no
--    in-flight list, or no longer had the job's message in it) is published again, its message rebuilt from its
--    record. Either way the job goes to the head of its queue (it is late) and its claim is cleared, so that its
--    holder, should it resume, neither calls nor records an outcome.
-- KEYS: leases, active, workers, steady, recovered, inflight; then every queue (a worker's in-flight lists are named
-- after them). ARGV: sweeper, lease, wall time (for records); then (job id, job key, queue, message) per lapsed lease.
-- Returns {jobs whose lease lapsed given back, fetched messages put back}.
--#include names
--#include lib/publish.lua
--#include lib/lease.lua
local leases_key = KEYS[1]
local active_key = KEYS[2]
local workers_key = KEYS[3]
local steady_key = KEYS[4]
local recovered_key = KEYS[5]
local inflight_key = KEYS[6]
local sweeper = ARGV[1]
local lease = tonumber(ARGV[2])
local wall_now = ARGV[3]   -- the sweeper's clock, for the records' times (leases use Redis's)
local QUEUES = #KEYS - 6   -- KEYS[7 ..]
local LAPSED = 4           -- ARGV[LAPSED ..]: (job id, job key, queue, message) per lapsed lease

local now = redis_now()
if not steady(workers_key, steady_key, sweeper, now, lease) then return {-1, 0} end
local lapsed_given, fetched_given = 0, 0

-- A running job whose holder is gone: back at the head of its queue with `message`, its claim cleared.
local function give_back_running(job_key, queue_key, job_id, message)
  redis.call('ZREM', leases_key, job_id)
  redis.call('HSET', job_key, 'recovered_from', redis.call('HGET', job_key, 'holder') or '')
  redis.call('HDEL', job_key, 'claim', 'holder')
  redis.call('HINCRBY', job_key, 'recoveries', 1)
  publish(job_key, queue_key, active_key, job_id, message, wall_now, true)
  redis.call('INCR', recovered_key)
  lapsed_given = lapsed_given + 1
end

-- What becomes of a message a dead worker fetched (tasks.store.inflight.held_verdict): 'back', 'recover', 'keep', 'drop'.
local function verdict(job_key, job_id, dead)
  local found = redis.call('HMGET', job_key, 'state', 'holder')
  local state, holder = found[1], found[2]
  if not state or state == STATE.QUEUED then return 'back' end
  if state ~= STATE.RUNNING then return 'drop' end
  local lease_until = tonumber(redis.call('ZSCORE', leases_key, job_id) or '')
  if lease_until == nil or lease_until <= now then return 'recover' end
  if holder == dead then return 'keep' end
  return 'drop'
end

-- step 1: dead workers' in-flight lists
local holders = redis.call('ZRANGE', inflight_key, 0, -1, 'WITHSCORES')
for h = 1, #holders, 2 do
  local worker, first_fetch = holders[h], tonumber(holders[h + 1])
  local seen = tonumber(redis.call('ZSCORE', workers_key, worker) or '') or first_fetch
  if seen + lease <= now then
    local kept = 0
    for q = 1, QUEUES do
      local queue_key = KEYS[6 + q]
      local list_key = INFLIGHT_PREFIX .. worker .. ':' .. queue_key
      local held = redis.call('LRANGE', list_key, 0, -1)  -- newest first: the oldest is pushed last, and so taken first
      redis.call('DEL', list_key)
      for _, message in ipairs(held) do
        local ok, decoded = pcall(cjson.decode, message)
        local job_id = ok and type(decoded) == 'table' and type(decoded.headers) == 'table' and decoded.headers.id or nil
        local job_key = job_id and JOB_PREFIX .. job_id or nil
        local what = job_key and verdict(job_key, job_id, worker) or 'back'
        if what == 'keep' then
          redis.call('LPUSH', list_key, message)
          kept = kept + 1
        elseif what == 'recover' then
          give_back_running(job_key, queue_key, job_id, message)
        elseif what == 'back' then
          if job_key and redis.call('EXISTS', job_key) == 1 then
            publish(job_key, queue_key, active_key, job_id, message, wall_now, true)
          else
            redis.call('RPUSH', queue_key, message)  -- no record to mark (BEGIN adopts the job)
            wake()
          end
          fetched_given = fetched_given + 1
        end
      end
    end
    if kept == 0 then redis.call('ZREM', inflight_key, worker) end
  end
end

-- step 2: lapsed leases whose message no in-flight list gave back
for i = LAPSED, #ARGV, 4 do
  local job_id, job_key, queue_key, message = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local lease_until = tonumber(redis.call('ZSCORE', leases_key, job_id) or '')
  if lease_until ~= nil and lease_until <= now then
    if redis.call('HGET', job_key, 'state') == STATE.RUNNING then
      give_back_running(job_key, queue_key, job_id, message)
    else
      redis.call('ZREM', leases_key, job_id)
    end
  end
end
return {lapsed_given, fetched_given}
