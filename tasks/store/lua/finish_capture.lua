-- A capture's success in one round trip: its settle time (kept from the first success: the
-- report's id derives from it), its chained payment-status report, its success record, the
-- trip's books (captured at; the refunds that waited for it are published now).
-- Returns the settle time on record; a different one than offered means an earlier delivery
-- settled it, and the caller builds that report instead and calls again. Returns -1, writing
-- nothing but the call's count, when the delivery lost its claim (see lib/lease.lua `may_record`).
-- The record is compacted to what a settled job keeps, in the same step (lib/settle.lua).
--#include names
--#include lib/publish.lua
--#include lib/outbox.lua
--#include lib/lease.lua
--#include lib/calls.lua
--#include lib/settle.lua
--#include lib/books.lua
local capture_key = KEYS[1]
local active_key = KEYS[2]
local report_key = KEYS[3]
local report_queue = KEYS[4]
local calls_key = KEYS[5]       -- payq:api:calls
local successes_key = KEYS[6]   -- this tenth of a second's successful calls, for the pace's measure (calls_key: none)
local trip_key = KEYS[7]
local held_key = KEYS[8]        -- the trip's refunds waiting for this capture
local waiting_key = KEYS[9]
local refund_queue = KEYS[10]
local leases_key = KEYS[11]
local capture_id = ARGV[1]
local now = ARGV[2]
local settled_at = ARGV[3]
local report_id = ARGV[4]
local report_message = ARGV[5]
local report_kwargs = ARGV[6]
local ttl = ARGV[7]
local events_channel = ARGV[8]
local sent_event = ARGV[9]
local call_field = ARGV[10]     -- '<operation>:<status>' of the capture call to count; '' when none was made
local job_prefix = ARGV[11]     -- what a job id is prefixed with to make its record's key
local claim = ARGV[12]          -- the delivery's claim on the job; '' when it claimed nothing
local books_ttl = ARGV[13]      -- the trip's books are kept this long from the capture's settling: past its refund window
local EVENT = 14                -- ARGV[14..19]: the capture's success notification (see add_event)
local report_traceparent = ARGV[20]  -- the report's trace context: the capture's ('' when none)
local attempt = ARGV[21]        -- the attempt the claim was made for ('': none)
local store = ARGV[22]          -- the capture's storeId: its report and refunds wait in that store's lanes
local backlog_key = ARGV[23]    -- its store's open jobs (tasks/store/backlog.py)
local SETTLE = 24               -- ARGV[24..]: what the settled record drops and keeps (see lib/settle.lua)

if successes_key == calls_key then successes_key = '' end
local found = redis.call('HMGET', capture_key, 'state', 'settled_at', 'attempts', 'claim')
local state, settled_on_record, attempts, claimed = found[1], found[2], found[3], found[4]
if state == STATE.SUCCEEDED then
  -- succeeded already (this step asked again after a connection fault hid its answer, or another delivery
  -- settled it): final, whoever asks; a settled record keeps neither the claim nor the event's marker.
  -- The call is counted once: a caller told an earlier settle time comes again with the same call.
  -- another attempt settled it: this delivery's claim lapsed while it called (its new holder's attempt is on record)
  if claim ~= '' and attempt ~= '' and attempts ~= attempt then
    count_call(calls_key, call_field, successes_key)
    return -1
  end
  if settled_on_record == settled_at then count_call(calls_key, call_field, successes_key) end
  return settled_on_record
end
if not holds(state, claimed, claim) then
  count_call(calls_key, call_field, successes_key)
  return -1
end
-- the settle time is kept from the first success: the report's id derives from it
if settled_on_record and settled_on_record ~= settled_at then return settled_on_record end
record_and_publish(report_key, report_queue, active_key, report_id, report_message, OP.FEEDBACK, report_kwargs, now,
                   ttl, events_channel, sent_event, report_traceparent, store)
add_event(EVENT, now)
settle(capture_key, SETTLE, ttl, {'state', STATE.SUCCEEDED, 'updated_at', now, 'settled_at', settled_at})
redis.call('ZREM', active_key, capture_id)
redis.call('ZREM', leases_key, capture_id)
-- settled, no longer open: out of its store's backlog now rather than when counted (its report never joins one)
if backlog_key ~= '' then redis.call('ZREM', backlog_key, capture_id) end
if redis.call('HGET', trip_key, 'capture') == capture_id then
  -- settled: the books name it as the trip's own, ~55 bytes less for the 8 days they are kept
  redis.call('HSET', trip_key, 'captured_at', settled_at, 'capture', OWN_CAPTURE)
  redis.call('EXPIRE', trip_key, books_ttl)
end
local held = redis.call('LRANGE', held_key, 0, -1)
for _, refund_id in ipairs(held) do
  local refund_key = job_prefix .. refund_id
  local waiting = redis.call('HMGET', refund_key, 'state', 'held_message', 'held_event')
  if waiting[1] == STATE.WAITING and waiting[2] then
    publish(refund_key, refund_queue, active_key, refund_id, waiting[2], now, false, store)
    redis.call('HDEL', refund_key, 'waiting_for', 'held_message', 'held_event')
    redis.call('PUBLISH', events_channel, waiting[3])
  end
  redis.call('ZREM', waiting_key, refund_id)
end
if #held > 0 then redis.call('DEL', held_key) end
-- counted here, once: a caller told an earlier settle time comes again with the same call
count_call(calls_key, call_field, successes_key)
return settled_at
