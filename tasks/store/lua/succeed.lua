-- A job's success (not a capture's: finish_capture.lua): its result, and its notification published
-- in the same step (the outbox), unless the delivery lost its claim (see lib/lease.lua `may_record`).
-- The call is counted either way. Returns 1 (recorded) or 0 (refused: another worker holds the job).
--#include names
--#include lib/publish.lua
--#include lib/outbox.lua
--#include lib/lease.lua
--#include lib/calls.lua
local job_key = KEYS[1]
local active_key = KEYS[2]
local leases_key = KEYS[3]
local calls_key = KEYS[4]
local successes_key = ARGV[1]   -- '' unless a call is counted
local job_id = ARGV[2]
local claim = ARGV[3]
local now = ARGV[4]
local result = ARGV[5]
local ttl = ARGV[6]
local events_channel = ARGV[7]
local call_field = ARGV[8]      -- '<operation>:<status>'; '' when none
local EVENT = 9                 -- ARGV[9..14]: the success's notification (see append_event)

count_call(calls_key, call_field, successes_key)
if not may_record(job_key, claim) then return 0 end
redis.call('HSET', job_key, 'state', STATE.SUCCEEDED, 'result', result, 'updated_at', now)
redis.call('HDEL', job_key, 'deferred_until', 'defer')
redis.call('ZREM', active_key, job_id)
redis.call('ZREM', leases_key, job_id)
append_event(EVENT, now)
return 1
