-- Put a dead-lettered notification back in the outbox (same event id, so the same webhook-id;
-- attempts reset) and remove its entry in the same step. Returns 1 replayed, 0 no such entry,
-- -1 the entry was dead-lettered anew since the caller read it (read it again), as dlq_replay does.
--#include lib/dead_letters.lua
local entries_key = KEYS[1]
local index_key = KEYS[2]
local counts_key = KEYS[3]
local stream_key = KEYS[4]
local pending_key = KEYS[5]
local replays_key = KEYS[6]
local entry_id = ARGV[1]
local dead_at_as_read = tonumber(ARGV[2])
local event_id = ARGV[3]
local body = ARGV[4]
local job_id = ARGV[5]
local now = ARGV[6]
local history_entry = ARGV[7]
local ttl = ARGV[8]

if redis.call('HEXISTS', entries_key, entry_id) == 0 then return 0 end
local dead_at = redis.call('ZSCORE', index_key, entry_id)
if dead_at and tonumber(dead_at) ~= dead_at_as_read then return -1 end
remove_entry(entries_key, index_key, counts_key, entry_id)
redis.call('XADD', stream_key, '*', 'id', event_id, 'body', body, 'job', job_id, 'attempts', 0, 'at', now)
redis.call('ZADD', pending_key, now, event_id)
redis.call('RPUSH', replays_key, history_entry)
redis.call('EXPIRE', replays_key, ttl)
return 1
