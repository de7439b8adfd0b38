-- A refund in its trip's books (tasks/jobs/books.py): 'r:<id>' counts against what is left to refund,
-- 'd:<id>' was dead-lettered and does not. Included by the dead-letter scripts and finish_capture.lua.

-- What the books keep under 'capture' once it succeeded: its id is the trip's own (tasks/jobs/books.py OWN_CAPTURE)
local OWN_CAPTURE = '='

-- A dead-lettered refund leaves the refunded sum (replaying it puts it back); no-op if it is not in it.
local function refund_dead(trip_key, refund_id)
  local cents = redis.call('HGET', trip_key, 'r:' .. refund_id)
  if cents then
    redis.call('HDEL', trip_key, 'r:' .. refund_id)
    redis.call('HSET', trip_key, 'd:' .. refund_id, cents)
    redis.call('HINCRBY', trip_key, 'refunded', -tonumber(cents))
  end
end
