-- A job's success (not a capture's: finish_capture.lua): its result, and its notification published
-- in the same step (the outbox), unless the delivery lost its claim (see lib/lease.lua `may_record`);
-- the record is compacted to what a settled job keeps (lib/settle.lua). The call is counted either
-- way. Returns 1 (recorded, or succeeded already) or 0 (refused: another worker holds the job).
--#include names
--#include lib/publish.lua
--#include lib/outbox.lua
--#include lib/lease.lua
--#include lib/calls.lua
--#include lib/settle.lua
local job_key = KEYS[1]
local active_key = KEYS[2]
local leases_key = KEYS[3]
local calls_key = KEYS[4]
local successes_key = ARGV[1]   -- '' unless a call is counted
local job_id = ARGV[2]
local claim = ARGV[3]
local now = ARGV[4]
local ttl = ARGV[5]
local events_channel = ARGV[6]
local call_field = ARGV[7]      -- '<operation>:<status>'; '' when none
local EVENT = 8                 -- ARGV[8..13]: the success's notification (see add_event)
local attempt = ARGV[14]        -- the attempt the claim was made for ('': none)
local backlog_key = ARGV[15]    -- its store's open jobs (tasks/store/backlog.py); '': not known (a message from before)
local SETTLE = 16               -- ARGV[16..]: what the settled record drops and keeps (see lib/settle.lua)

count_call(calls_key, call_field, successes_key)
local found = redis.call('HMGET', job_key, 'state', 'attempts', 'claim')
local state, attempts, claimed = found[1], found[2], found[3]
-- succeeded already (this step asked again after a connection fault hid its answer, or another delivery
-- settled it): final, whoever asks; a settled record keeps neither the claim nor the event's marker
if state == STATE.SUCCEEDED then
  -- another attempt settled it: this delivery's claim lapsed while it called (its new holder's attempt is on record)
  if claim ~= '' and attempt ~= '' and attempts ~= attempt then return 0 end
  return 1
end
if not holds(state, claimed, claim) then return 0 end
redis.call('ZREM', active_key, job_id)
redis.call('ZREM', leases_key, job_id)
add_event(EVENT, now)
settle(job_key, SETTLE, ttl, {'state', STATE.SUCCEEDED, 'updated_at', now})
-- settled, no longer open: out of its store's backlog now rather than when counted (which kept ~150 B a trip)
if backlog_key ~= '' then redis.call('ZREM', backlog_key, job_id) end
return 1
