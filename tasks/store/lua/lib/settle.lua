-- What a job's record keeps once it has succeeded (tasks/jobs/settled.py): its idempotency key and
-- outcome, compacted in the step that records the success. Included by succeed.lua and finish_capture.lua.

-- Rewrite the record without the fields only a live job needs and with what it keeps of its wire
-- fields and result, and keep it `ttl` seconds from now: the retention counts from the settling.
-- ARGV from `at` to its end (tasks/store/records.py `_settle_args`): how many fields go, their names,
-- then name, value, ... of what it keeps; `written`: name, value, ... the settling step sets (its state).
-- Written anew because Redis never turns a hash back into a listpack once it grew into a hash table,
-- however small it gets. (A job that waited keeps its deferral history, a key of its own with the same
-- retention: the demo's summary and `payq job` read it.)
local function settle(job_key, at, ttl, written)
  local dropped = tonumber(ARGV[at])
  local gone = {}
  for i = at + 1, at + dropped do gone[ARGV[i]] = true end
  for i = 1, #written, 2 do gone[written[i]] = true end
  local fields = {}
  local current = redis.call('HGETALL', job_key)
  for i = 1, #current, 2 do
    if not gone[current[i]] then
      fields[#fields + 1] = current[i]
      fields[#fields + 1] = current[i + 1]
    end
  end
  for i = at + dropped + 1, #ARGV do fields[#fields + 1] = ARGV[i] end
  for i = 1, #written do fields[#fields + 1] = written[i] end
  redis.call('DEL', job_key)
  redis.call('HSET', job_key, unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
end
