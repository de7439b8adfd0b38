-- The dead-letter store's entries: the one place that writes or removes one, keeping the hash, the
-- time index and the per-reason counts together. Included by every script that touches entries.
--#include names

-- Remove one entry; returns 1 if there was one.
local function remove_entry(entries_key, index_key, counts_key, job_id)
  local raw = redis.call('HGET', entries_key, job_id)
  redis.call('ZREM', index_key, job_id)
  if not raw then return 0 end
  redis.call('HDEL', entries_key, job_id)
  local reason = cjson.decode(raw)['reason']
  if redis.call('HINCRBY', counts_key, reason, -1) <= 0 then redis.call('HDEL', counts_key, reason) end
  return 1
end

-- Store one entry (replacing an older one for the same job) and mark its job dead with the reason
-- and failure; the job's record, its idempotency key, is kept for ttl (it must outlive the entry).
local function add_entry(entries_key, index_key, counts_key, job_key, job_id, entry, dead_at, reason, failure, ttl)
  remove_entry(entries_key, index_key, counts_key, job_id)
  redis.call('HSET', entries_key, job_id, entry)
  redis.call('ZADD', index_key, dead_at, job_id)
  redis.call('HINCRBY', counts_key, reason, 1)
  redis.call('HSET', job_key, 'state', STATE.DEAD, 'reason', reason, 'failure', failure, 'updated_at', dead_at)
  redis.call('HDEL', job_key, 'deferred_until', 'defer')
  redis.call('EXPIRE', job_key, ttl)
end
