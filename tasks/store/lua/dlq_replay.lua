-- Put a dead-lettered job back on its queue (same id and idempotency key, attempts reset) and
-- remove its entry in the same step; a refund counts against its trip's refundable amount again.
-- Returns 1 replayed, 0 no such entry, -1 the entry was dead-lettered anew since the caller read
-- it (read it again), -2 a refund that would now exceed what is left to refund (not replayed). Doubles round-trip exactly through
-- ZADD/ZSCORE and tonumber, so an equal dead_at means the same entry.
--#include lib/publish.lua
--#include lib/dead_letters.lua
local entries_key = KEYS[1]
local index_key = KEYS[2]
local counts_key = KEYS[3]
local queue_key = KEYS[4]
local job_key = KEYS[5]
local replays_key = KEYS[6]
local active_key = KEYS[7]
local job_id = ARGV[1]
local dead_at_as_read = tonumber(ARGV[2])
local message = ARGV[3]
local now = ARGV[4]
local history_entry = ARGV[5]
local kwargs = ARGV[6]
local operation = ARGV[7]
local ttl = ARGV[8]
local events_channel = ARGV[9]
local sent_event = ARGV[10]
local trip_key = ARGV[11]   -- the trip's books, for a refund ('' for other jobs)
local store = ARGV[12] or '' -- the job's storeId, whose lane it waits in
local backlog_key = ARGV[13] or ''  -- its store's open jobs (tasks/store/backlog.py), which dead-lettering left

if redis.call('HEXISTS', entries_key, job_id) == 0 then return 0 end
local dead_at = redis.call('ZSCORE', index_key, job_id)
if dead_at and tonumber(dead_at) ~= dead_at_as_read then return -1 end
local cents = trip_key ~= '' and tonumber(redis.call('HGET', trip_key, 'd:' .. job_id) or '') or nil
if cents then
  local books = redis.call('HMGET', trip_key, 'capture_cents', 'refunded')
  local captured, refunded = tonumber(books[1] or ''), tonumber(books[2] or '') or 0
  if captured and refunded + cents > captured then return -2 end
  redis.call('HDEL', trip_key, 'd:' .. job_id)
  redis.call('HSET', trip_key, 'r:' .. job_id, cents)
  redis.call('HINCRBY', trip_key, 'refunded', cents)
end
remove_entry(entries_key, index_key, counts_key, job_id)
redis.call('HSET', job_key, 'op', operation, 'kwargs', kwargs, 'attempts', 0)
redis.call('HDEL', job_key, 'first_attempt_at', 'deferred_until', 'defer', 'reason')
redis.call('HINCRBY', job_key, 'replays', 1)
redis.call('EXPIRE', job_key, ttl)
publish(job_key, queue_key, active_key, job_id, message, now, false, store)
if backlog_key ~= '' then
  redis.call('ZADD', backlog_key, now, job_id)  -- open again
  redis.call('EXPIRE', backlog_key, ttl)
end
redis.call('RPUSH', replays_key, history_entry)
redis.call('EXPIRE', replays_key, ttl)
redis.call('PUBLISH', events_channel, sent_event)
return 1
