-- What a job's record keeps once it has succeeded (tasks/jobs/settled.py): its idempotency key and
-- outcome, compacted in the step that records the success. Included by succeed.lua and finish_capture.lua.

-- Rewrite the record without the fields only a live job needs (`dropped`, a JSON list) and with what
-- it keeps of its wire fields and result (`kept`, a JSON list of name, value, ...), and keep it `ttl`
-- seconds from now: the retention counts from the settling. Written anew because Redis never turns
-- a hash back into a listpack once it grew into a hash table, however small it gets. (A job that
-- waited keeps its deferral history, a key of its own with the same retention: the demo's summary
-- and `payq job` read it.)
local function settle(job_key, dropped, kept, ttl)
  local gone = {}
  for _, name in ipairs(cjson.decode(dropped)) do gone[name] = true end
  local fields = {}
  local current = redis.call('HGETALL', job_key)
  for i = 1, #current, 2 do
    if not gone[current[i]] then
      table.insert(fields, current[i])
      table.insert(fields, current[i + 1])
    end
  end
  for _, item in ipairs(cjson.decode(kept)) do table.insert(fields, item) end
  redis.call('DEL', job_key)
  redis.call('HSET', job_key, unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
end
