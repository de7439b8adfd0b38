-- Park a job in the deferred set until it is due, with why (kept in its latest few deferrals), unless
-- the delivery lost its claim (see lib/lease.lua `may_record`). The call that led here is counted
-- either way. Returns 1 (deferred) or 0 (refused: another worker holds the job).
--#include names
--#include lib/lease.lua
--#include lib/calls.lua
local job_key = KEYS[1]
local deferred_key = KEYS[2]
local active_key = KEYS[3]
local deferrals_key = KEYS[4]
local leases_key = KEYS[5]
local calls_key = KEYS[6]
local successes_key = ARGV[1]     -- '' unless the call succeeded
local job_id = ARGV[2]
local claim = ARGV[3]
local now = ARGV[4]
local due = ARGV[5]
local defer = ARGV[6]             -- JSON of the deferral
local failure = ARGV[7]           -- JSON of the failure; '' when none
local history = ARGV[8]
local kept = tonumber(ARGV[9])
local ttl = ARGV[10]
local call_field = ARGV[11]       -- '<operation>:<status>'; '' when no call was made
local release_attempt = ARGV[12] == '1'  -- give back the attempt BEGIN claimed (no call was made)

count_call(calls_key, call_field, successes_key)
if not may_record(job_key, claim) then return 0 end
redis.call('HSET', job_key, 'state', STATE.DEFERRED, 'deferred_until', due, 'defer', defer, 'updated_at', now)
if failure ~= '' then redis.call('HSET', job_key, 'failure', failure) end
if release_attempt then redis.call('HINCRBY', job_key, 'attempts', -1) end
redis.call('ZADD', deferred_key, due, job_id)
redis.call('ZREM', active_key, job_id)
redis.call('ZREM', leases_key, job_id)
redis.call('RPUSH', deferrals_key, history)
redis.call('LTRIM', deferrals_key, -kept, -1)
redis.call('EXPIRE', deferrals_key, ttl)
return 1
