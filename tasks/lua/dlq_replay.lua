-- Put a dead-lettered job back on its queue (same id and idempotency key, attempts reset) and
-- remove its entry in the same step. Returns 1 replayed, 0 no such entry, -1 the entry was
-- dead-lettered anew since the caller read it (read it again). Doubles round-trip exactly through
-- ZADD/ZSCORE and tonumber, so an equal dead_at means the same entry.
--#include lib/publish.lua
--#include lib/dlq_remove.lua
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

if redis.call('HEXISTS', entries_key, job_id) == 0 then return 0 end
local dead_at = redis.call('ZSCORE', index_key, job_id)
if dead_at and tonumber(dead_at) ~= dead_at_as_read then return -1 end
remove_entry(entries_key, index_key, counts_key, job_id)
redis.call('HSET', job_key, 'op', operation, 'kwargs', kwargs, 'attempts', 0)
redis.call('HDEL', job_key, 'first_attempt_at', 'deferred_until', 'defer', 'reason')
redis.call('HINCRBY', job_key, 'replays', 1)
redis.call('EXPIRE', job_key, ttl)
publish(job_key, queue_key, active_key, job_id, message, now, false)
redis.call('RPUSH', replays_key, history_entry)
redis.call('EXPIRE', replays_key, ttl)
redis.call('PUBLISH', events_channel, sent_event)
return 1
