-- How a job reaches a queue: the one place that pushes a job's message and marks it queued.
-- Included by every script that publishes (enqueue, finish_capture, move_due, recover, dlq_replay, fetch's give-back).
--#include names

-- Idle workers wait for messages blocked on payq:wake (XREAD, see fetch.lua), not polling: the
-- first message a script publishes adds an entry, which wakes them all; one per script is enough.
local woken = false
local function wake()
  if not woken then
    redis.call('XADD', WAKE, 'MAXLEN', '~', '16', '*', 'm', '1')
    woken = true
  end
end

-- Where a message waits (tasks/store/lanes.py): a store's job in its store's lane of the queue, so that a flood from one
-- store does not hold the others' (fetch.lua takes the stores in turn); the ring lists each store whose lane holds any.
-- A late job (at_head: recovered, due, given back) and one of no store go to the queue's own list, which a fetch takes
-- first: workers take from the right, so RPUSH makes it the next message taken.
local function push_message(queue_key, message, store, at_head)
  if at_head then
    redis.call('RPUSH', queue_key, message)
  elseif not store or store == '' then
    redis.call('LPUSH', queue_key, message)
  elseif redis.call('LPUSH', LANE_PREFIX .. queue_key .. ':' .. store, message) == 1 then
    redis.call('LPUSH', RING_PREFIX .. queue_key, store)  -- the lane was empty: the store takes its turn after the others
  end
end

-- Push the message and mark the job active (payq:active: see tasks/redis/keys.py); the caller marks it queued.
local function push(queue_key, active_key, job_id, message, now, at_head, store)
  push_message(queue_key, message, store, at_head)
  redis.call('ZADD', active_key, now, job_id)
  wake()
end

-- Push the message and mark the job queued and active.
local function publish(job_key, queue_key, active_key, job_id, message, now, at_head, store)
  push(queue_key, active_key, job_id, message, now, at_head, store)
  redis.call('HSET', job_key, 'state', STATE.QUEUED, 'updated_at', now)
end

-- Record a new job and publish it, unless its id has a record already (the idempotency key):
-- returns 1 if published, 0 if the job existed. events_channel/sent_event: Flower's task-sent.
-- traceparent: the job's trace context, kept for every message published for it later ('' or nil: none).
-- store: the job's storeId, whose lane the message waits in. Its fields and queued state in one HSET.
local function record_and_publish(job_key, queue_key, active_key, job_id, message, operation, kwargs, now, ttl,
                                  events_channel, sent_event, traceparent, store)
  if redis.call('EXISTS', job_key) == 1 then return 0 end
  local fields = {'op', operation, 'kwargs', kwargs, 'attempts', '0', 'enqueued_at', now, 'state', STATE.QUEUED,
                  'updated_at', now}
  if traceparent and traceparent ~= '' then
    fields[#fields + 1] = 'traceparent'
    fields[#fields + 1] = traceparent
  end
  redis.call('HSET', job_key, unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
  push(queue_key, active_key, job_id, message, now, false, store)
  redis.call('PUBLISH', events_channel, sent_event)
  return 1
end
