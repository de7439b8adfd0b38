-- Remove one dead-letter entry from the hash, the time index and the per-reason counts together.
-- Returns 1 if there was an entry. Included by every script that removes entries.
local function remove_entry(entries_key, index_key, counts_key, job_id)
  local raw = redis.call('HGET', entries_key, job_id)
  redis.call('ZREM', index_key, job_id)
  if not raw then return 0 end
  redis.call('HDEL', entries_key, job_id)
  local reason = cjson.decode(raw)['reason']
  if redis.call('HINCRBY', counts_key, reason, -1) <= 0 then redis.call('HDEL', counts_key, reason) end
  return 1
end
