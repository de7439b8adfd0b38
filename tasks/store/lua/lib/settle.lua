-- What a job's record keeps once it has succeeded (tasks/jobs/settled.py): its idempotency key and
-- outcome, compacted in the step that records the success. Included by succeed.lua and finish_capture.lua.

-- Delete the fields only a live job needs (`dropped`, a JSON list), write what it keeps of its wire
-- fields and result (`kept`, a JSON list of name, value, ...), and keep the record `ttl` seconds from
-- now: the retention counts from the settling. (A job that waited keeps its deferral history, a key
-- of its own with the same retention: the demo's summary and `payq job` read it.)
local function settle(job_key, dropped, kept, ttl)
  local dropped_fields = cjson.decode(dropped)
  local kept_fields = cjson.decode(kept)
  if #dropped_fields > 0 then redis.call('HDEL', job_key, unpack(dropped_fields)) end
  if #kept_fields > 0 then redis.call('HSET', job_key, unpack(kept_fields)) end
  redis.call('EXPIRE', job_key, ttl)
end
