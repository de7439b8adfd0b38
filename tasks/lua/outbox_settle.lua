-- What a delivery came to, for one outbox entry held by the caller's consumer group: acknowledged
-- and removed from the stream, and then either forgotten (delivered or dead-lettered) or kept in
-- the retry set until it is due. Only if the entry was still pending: an entry claimed by another
-- consumer meanwhile (this one was taken for dead) is that consumer's to settle.
-- Returns 1 if settled here, 0 if it was not pending any more.
local stream_key = KEYS[1]
local index_key = KEYS[2]
local retry_key = KEYS[3]
local group = ARGV[1]
local entry_id = ARGV[2]
local event_id = ARGV[3]
local due = ARGV[4]          -- '' : done with (no retry)
local retry_entry = ARGV[5]  -- the entry as the retry set keeps it (JSON), when due is set

if redis.call('XACK', stream_key, group, entry_id) == 0 then return 0 end
redis.call('XDEL', stream_key, entry_id)
if due == '' then
  redis.call('ZREM', index_key, event_id)
else
  redis.call('ZADD', retry_key, due, retry_entry)
end
return 1
