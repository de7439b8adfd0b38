-- Leases: who holds a running job, and until when. Every lease and heartbeat is read and written by
-- Redis's own clock, so the clocks of the workers' hosts may differ. See tasks/store/leases.py for the rules.

-- Redis's clock, in seconds.
--#include names
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- When a lease taken or renewed at `now` ends: whole seconds, rounded up (tasks.store.leases.lease_end).
-- payq:leases holds about one member per running job, so it is usually small enough for Redis to keep
-- as a listpack, where an insert compares the new score with each member before it: an integer member
-- is compared as it is, a fractional one is parsed (strtod) at every comparison, which was a tenth of
-- Redis's time per job in a drain with 128 jobs running.
local function lease_end(now, lease)
  return math.ceil(now + lease)
end

-- Whether `worker` may judge that another's lease has lapsed: it beats now (its last heartbeat at most
-- half a lease ago) and has beaten without a break for at least a lease. After Redis itself was away,
-- nobody is steady until a lease has passed, and by then every live holder has renewed its leases.
local function steady(workers_key, steady_key, worker, now, lease)
  local last = tonumber(redis.call('ZSCORE', workers_key, worker) or '')
  local since = tonumber(redis.call('HGET', steady_key, worker) or '')
  return last ~= nil and since ~= nil and now - last <= lease / 2 and now - since >= lease
end

-- Whether a delivery may write its job's outcome: it holds the job's claim, or, having claimed
-- nothing (claim ''), no worker holds the job. A worker that lost its lease writes nothing.
-- `holds` judges the record's state and claim already read; `may_record` reads them.
local function holds(state, claimed, claim)
  if claim ~= '' then return claimed == claim end
  return state ~= STATE.RUNNING
end

local function may_record(job_key, claim)
  local found = redis.call('HMGET', job_key, 'state', 'claim')
  return holds(found[1], found[2], claim)
end
