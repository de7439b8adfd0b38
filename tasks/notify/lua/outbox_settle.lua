-- What deliveries came to, for outbox entries held by the caller's consumer group: each acknowledged
-- and removed from the stream, and then either forgotten (delivered or dead-lettered) or kept in
-- the retry set until it is due. Only if the entry is still pending in the group: one that another
-- consumer claimed meanwhile (this one was taken for dead) and settled first stays as it settled it.
-- ARGV: the group, then (entry id, event id, due or '' when done with it, the entry as the retry
-- set keeps it) per entry. Returns how many were settled here.
local stream_key = KEYS[1]
local index_key = KEYS[2]
local retry_key = KEYS[3]
local group = ARGV[1]
local FIRST, SIZE = 2, 4

local settled = 0
for at = FIRST, #ARGV, SIZE do
  local entry_id, event_id, due, retry_entry = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if redis.call('XACK', stream_key, group, entry_id) == 1 then
    redis.call('XDEL', stream_key, entry_id)
    if due == '' then
      redis.call('ZREM', index_key, event_id)
    else
      redis.call('ZADD', retry_key, due, retry_entry)
    end
    settled = settled + 1
  end
end
return settled
