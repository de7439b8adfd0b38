--#include names
-- Count one API call: '<operation>:<status>' in payq:api:calls, and a success in the count of the
-- tenth of a second it was sent in, for the pace's measure (successes_key '' when the call did not
-- succeed), kept as long as tasks/pacing/pacer.py's count_call keeps it (SUCCESSES_KEPT, tasks/redis/keys.py).
local function count_call(calls_key, call_field, successes_key)
  if call_field == '' then return end
  redis.call('HINCRBY', calls_key, call_field, '1')
  -- the count expires from its first success: set once, when INCR made the key
  if successes_key ~= '' and redis.call('INCR', successes_key) == 1 then
    redis.call('EXPIRE', successes_key, SUCCESSES_KEPT)
  end
end
