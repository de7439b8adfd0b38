-- How a job reaches a queue: the one place that pushes a job's message and marks it queued.
-- Included by every script that publishes (enqueue, finish_capture, move_due, revive, dlq_replay).

-- Push the message and mark the job queued and active (payq:active: see tasks/keys.py).
-- at_head: kombu pops from the right, so RPUSH makes it the next message taken; for jobs already late.
--#include names
local function publish(job_key, queue_key, active_key, job_id, message, now, at_head)
  if at_head then
    redis.call('RPUSH', queue_key, message)
  else
    redis.call('LPUSH', queue_key, message)
  end
  redis.call('HSET', job_key, 'state', STATE.QUEUED, 'updated_at', now)
  redis.call('ZADD', active_key, now, job_id)
end

-- Record a new job and publish it, unless its id has a record already (the idempotency key):
-- returns 1 if published, 0 if the job existed. events_channel/sent_event: Flower's task-sent.
local function record_and_publish(job_key, queue_key, active_key, job_id, message, operation, kwargs, now, ttl,
                                  events_channel, sent_event)
  if redis.call('EXISTS', job_key) == 1 then return 0 end
  redis.call('HSET', job_key, 'op', operation, 'kwargs', kwargs, 'attempts', 0, 'enqueued_at', now)
  redis.call('EXPIRE', job_key, ttl)
  publish(job_key, queue_key, active_key, job_id, message, now, false)
  redis.call('PUBLISH', events_channel, sent_event)
  return 1
end

-- Append an outcome's notification to the outbox stream, given as ARGV from `first` on: the
-- stream's key, its pending index's key, the outcome's job record, the event's id, its body and
-- the job's id; an empty event id means notifications are off. Called in the same script that
-- records the outcome: the outbox. The record keeps the id of the latest event told of it, so the
-- same outcome recorded again (a redelivered message) appends nothing.
-- (active_key, ttl and events_channel are no longer read: a notification is not a Celery job.)
local function publish_event(first, active_key, now, ttl, events_channel)
  local stream_key, index_key, outcome_key = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local event_id, body, job_id = ARGV[first + 3], ARGV[first + 4], ARGV[first + 5]
  if event_id == nil or event_id == '' then return 0 end
  if redis.call('HGET', outcome_key, 'notified') == event_id then return 0 end
  redis.call('HSET', outcome_key, 'notified', event_id)
  redis.call('XADD', stream_key, '*', 'id', event_id, 'body', body, 'job', job_id, 'attempts', 0, 'at', now)
  redis.call('ZADD', index_key, 'NX', now, event_id)
  return 1
end
