-- A worker picks a job up: claim an attempt, unless the job is finished, parked, its endpoint
-- paused, or another delivery holds it. Returns {verdict, attempts, until} (see tasks.states.Verdict).
local job_key = KEYS[1]
local deferred_key = KEYS[2]
local pause_key = KEYS[3]
local active_key = KEYS[4]
local job_id = ARGV[1]
local now = tonumber(ARGV[2])
local operation = ARGV[3]
local kwargs = ARGV[4]
local ttl = ARGV[5]
local worker = ARGV[6]
local delivery = ARGV[7]   -- this message's delivery tag
local lease = tonumber(ARGV[8])

local state = redis.call('HGET', job_key, 'state')
if not state then
  -- published without a record (it expired, or someone used apply_async): adopt it
  redis.call('HSET', job_key, 'op', operation, 'kwargs', kwargs, 'attempts', 0, 'enqueued_at', ARGV[2])
  redis.call('EXPIRE', job_key, ttl)
  state = 'queued'
end
if state == 'succeeded' or state == 'dead' then return {state, '0', ''} end
local settled = redis.call('HGET', job_key, 'settled_at')
if settled then return {'settled', '0', settled} end
if state == 'deferred' and redis.call('ZSCORE', deferred_key, job_id) then return {'deferred', '0', ''} end
if state == 'running' then
  -- another copy of the message (re-published as lost) while a delivery still holds the job: that one
  -- finishes it. The same message back (kombu's restore after a worker died, a requeue) may run.
  local holder = redis.call('HMGET', job_key, 'delivery', 'last_attempt_at')
  if holder[1] and holder[1] ~= delivery and tonumber(holder[2] or 0) + lease > now then
    return {'busy', '0', ''}
  end
end
local paused_until = redis.call('GET', pause_key)
if paused_until and tonumber(paused_until) > now then return {'paused', '0', paused_until} end
local attempts = redis.call('HINCRBY', job_key, 'attempts', 1)
redis.call('HSETNX', job_key, 'first_attempt_at', ARGV[2])
redis.call('HSET', job_key, 'state', 'running', 'updated_at', ARGV[2], 'last_attempt_at', ARGV[2], 'worker', worker,
           'delivery', delivery)
redis.call('ZADD', active_key, ARGV[2], job_id)
return {'run', tostring(attempts), ''}
