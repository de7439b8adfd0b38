-- Right before a call: does this worker still hold the job? If so its lease is renewed, so that no
-- sweep gives the job away while the call is made. Returns 1 (still held) or 0 (given away: no call).
--#include lib/lease.lua
local job_key = KEYS[1]
local leases_key = KEYS[2]
local job_id = ARGV[1]
local claim = ARGV[2]
local lease = tonumber(ARGV[3])

if redis.call('HGET', job_key, 'claim') ~= claim or not redis.call('ZSCORE', leases_key, job_id) then return 0 end
redis.call('ZADD', leases_key, lease_end(redis_now(), lease), job_id)
return 1
