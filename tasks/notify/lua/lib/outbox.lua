-- The outbox's side of an outcome's step: its notification, appended in the same script (tasks/notify/outbox.py).

-- Append an outcome's notification to the outbox stream, given as ARGV from `first` on: the
-- stream's key, its pending index's key, the outcome's job record, the event's id, its body and
-- the job's id; an empty event id means notifications are off. Called in the same script that
-- records the outcome: the outbox. The record keeps the id of the latest event told of it, so the
-- same outcome recorded again (a redelivered message) appends nothing. `add_event` appends without
-- the marker, for a success: the step that records it runs once (a succeeded job's is a no-op), and
-- the record it settles keeps no marker.
local function add_event(first, now)
  local stream_key, index_key = ARGV[first], ARGV[first + 1]
  local event_id, body, job_id = ARGV[first + 3], ARGV[first + 4], ARGV[first + 5]
  if event_id == nil or event_id == '' then return 0 end
  redis.call('XADD', stream_key, '*', 'id', event_id, 'body', body, 'job', job_id, 'attempts', '0', 'at', now)
  redis.call('ZADD', index_key, 'NX', now, event_id)
  return 1
end

local function append_event(first, now)
  local outcome_key, event_id = ARGV[first + 2], ARGV[first + 3]
  if event_id == nil or event_id == '' then return 0 end
  if redis.call('HGET', outcome_key, 'notified') == event_id then return 0 end
  redis.call('HSET', outcome_key, 'notified', event_id)
  return add_event(first, now)
end
