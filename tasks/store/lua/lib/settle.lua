-- What a job's record keeps once it has succeeded (tasks/jobs/settled.py): its idempotency key and
-- outcome, compacted in the step that records the success. Included by succeed.lua and finish_capture.lua.

-- Rewrite the record without the fields only a live job needs (`dropped`, a JSON list) and with what
-- it keeps of its wire fields and result (`kept`, a JSON list of name, value, ...), and keep it `ttl`
-- seconds from now: the retention counts from the settling. Written anew because Redis never turns
-- a hash back into a listpack once it grew into a hash table, however small it gets. (A job that
-- waited keeps its deferral history, a key of its own with the same retention: the demo's summary
-- and `payq job` read it.)
-- A settled record's times, kept to the millisecond: nobody reads a finished job's times finer, and the
-- shorter values are ~4 bytes each of a record's few hundred.
local SETTLED_TIMES = {enqueued_at = true, updated_at = true, last_attempt_at = true, first_attempt_at = true}

local function to_millisecond(value)
  local seconds = tonumber(value)
  if not seconds then return value end
  local rounded = string.format('%.3f', seconds):gsub('0+$', ''):gsub('%.$', '')
  return rounded
end

local function settle(job_key, dropped, kept, ttl)
  local gone = {}
  for _, name in ipairs(cjson.decode(dropped)) do gone[name] = true end
  local fields = {}
  local current = redis.call('HGETALL', job_key)
  for i = 1, #current, 2 do
    local name, value = current[i], current[i + 1]
    if not gone[name] then
      table.insert(fields, name)
      table.insert(fields, SETTLED_TIMES[name] and to_millisecond(value) or value)
    end
  end
  for _, item in ipairs(cjson.decode(kept)) do table.insert(fields, item) end
  redis.call('DEL', job_key)
  redis.call('HSET', job_key, unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
end
