-- Delete entries by id; with a cutoff, only those dead-lettered at or before it. The age is
-- checked here, not by the caller, so an entry replayed and dead-lettered again in between is
-- never purged as if it were still old. A purged refund leaves its trip's books; a purged capture
-- leaves them too, and the refunds that waited for it are dead-lettered as 'capture-failed' (they
-- can never be sent now), each with its notification when notifications are on (prepared by the
-- caller, who read the waiting refunds first: if one is found without its notification, nothing is
-- written and -1 asks the caller to read again). ARGV after the fixed ones: `events` groups of
-- (refund id, its notification's six values), then job ids. Returns how many entries were purged.
--#include names
--#include lib/publish.lua
--#include lib/outbox.lua
--#include lib/dead_letters.lua
--#include lib/books.lua
local entries_key = KEYS[1]
local index_key = KEYS[2]
local counts_key = KEYS[3]
local waiting_key = KEYS[4]
local cutoff = tonumber(ARGV[1])   -- nil: any age
local now = ARGV[2]
local trip_prefix = ARGV[3]        -- a trip's books are trip_prefix .. storeId .. ':' .. shoppingTripId
local job_prefix = ARGV[4]
local refund_task = ARGV[5]
local error_before = ARGV[6]       -- a capture-failed entry's line is error_before .. capture id .. error_after
local error_after = ARGV[7]
local job_ttl = ARGV[8]
local notify = ARGV[9] == '1'
local events_channel = ARGV[10]
local active_key = ARGV[11]
local backlog_prefix = ARGV[12]    -- a store's open jobs are backlog_prefix .. storeId (tasks/store/backlog.py)
local event_count = tonumber(ARGV[13])
local EVENTS, EVENT_SIZE = 14, 7
local FIRST = EVENTS + event_count * EVENT_SIZE

local event_at = {}  -- refund id -> where its notification's values start in ARGV
for i = 0, event_count - 1 do
  local at = EVENTS + i * EVENT_SIZE
  event_at[ARGV[at]] = at + 1
end

local function fail_waiting_refunds(trip_key, backlog_key, capture_id)
  local held_key = trip_key .. ':held'
  for _, refund_id in ipairs(redis.call('LRANGE', held_key, 0, -1)) do
    local refund_key = job_prefix .. refund_id
    local record = redis.call('HMGET', refund_key, 'state', 'kwargs')
    if record[1] == STATE.WAITING then
      local entry = {id = refund_id, operation = OP.REFUND, task = refund_task, kwargs = cjson.decode(record[2]),
                     reason = REASON.CAPTURE_FAILED, kind = KIND.CAPTURE_FAILED, error_type = capture_id,
                     error = error_before .. capture_id .. error_after, attempts = 0, dead_at = tonumber(now)}
      add_entry(entries_key, index_key, counts_key, refund_key, refund_id, cjson.encode(entry), now, REASON.CAPTURE_FAILED,
                cjson.encode({kind = KIND.CAPTURE_FAILED, error_type = capture_id}), job_ttl)
      redis.call('HDEL', refund_key, 'waiting_for', 'held_message', 'held_event')
      redis.call('ZREM', backlog_key, refund_id)  -- dead, no longer open
      if notify then append_event(event_at[refund_id], now) end
      refund_dead(trip_key, refund_id)
    end
    redis.call('ZREM', waiting_key, refund_id)
  end
  redis.call('DEL', held_key)
end

local function trip_of(raw)
  local entry = cjson.decode(raw)
  local kwargs = type(entry['kwargs']) == 'table' and entry['kwargs'] or {}
  if type(kwargs['storeId']) ~= 'string' or type(kwargs['shoppingTripId']) ~= 'string' then return entry, nil end
  return entry, trip_prefix .. kwargs['storeId'] .. ':' .. kwargs['shoppingTripId']
end

-- every waiting refund that is about to fail must have its notification prepared
if notify then
  for i = FIRST, #ARGV do
    local raw = redis.call('HGET', entries_key, ARGV[i])
    if raw then
      local entry, trip_key = trip_of(raw)
      if trip_key and entry['operation'] == OP.CAPTURE and redis.call('HGET', trip_key, 'capture') == ARGV[i] then
        for _, refund_id in ipairs(redis.call('LRANGE', trip_key .. ':held', 0, -1)) do
          if not event_at[refund_id] and redis.call('HGET', job_prefix .. refund_id, 'state') == STATE.WAITING then return -1 end
        end
      end
    end
  end
end

local removed = 0
for i = FIRST, #ARGV do
  local job_id = ARGV[i]
  local dead_at = redis.call('ZSCORE', index_key, job_id)
  if cutoff == nil or not dead_at or tonumber(dead_at) <= cutoff then
    local raw = redis.call('HGET', entries_key, job_id)
    if raw then
      local entry, trip_key = trip_of(raw)
      if trip_key then
        if entry['operation'] == OP.REFUND then
          redis.call('HDEL', trip_key, 'd:' .. job_id)
        elseif entry['operation'] == OP.CAPTURE and redis.call('HGET', trip_key, 'capture') == job_id then
          fail_waiting_refunds(trip_key, backlog_prefix .. entry['kwargs']['storeId'], job_id)
          redis.call('HDEL', trip_key, 'capture', 'capture_cents', 'currency', 'captured_at')
        end
      end
    end
    removed = removed + remove_entry(entries_key, index_key, counts_key, job_id)
  end
end
return removed
