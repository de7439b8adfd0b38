-- Put due retries back on the outbox stream, the earliest first; returns how many.
-- Safe with any number of callers: an entry goes back only with the call that removes it from the set.
local retry_key = KEYS[1]
local stream_key = KEYS[2]
local now = ARGV[1]
local limit = tonumber(ARGV[2])

local moved = 0
for _, raw in ipairs(redis.call('ZRANGEBYSCORE', retry_key, '-inf', now, 'LIMIT', 0, limit)) do
  if redis.call('ZREM', retry_key, raw) == 1 then
    local entry = cjson.decode(raw)
    redis.call('XADD', stream_key, '*', 'id', entry['id'], 'body', entry['body'], 'job', entry['job'], 'attempts', entry['attempts'],
               'at', entry['at'])
    moved = moved + 1
  end
end
return moved
