-- Record and publish one job unless its id already has a record. Returns 1 published, 0 existed.
--#include lib/publish.lua
local job_key = KEYS[1]
local queue_key = KEYS[2]
local active_key = KEYS[3]
local job_id = ARGV[1]
local message = ARGV[2]
local operation = ARGV[3]
local kwargs = ARGV[4]
local now = ARGV[5]
local ttl = ARGV[6]
local events_channel = ARGV[7]
local sent_event = ARGV[8]

return record_and_publish(job_key, queue_key, active_key, job_id, message, operation, kwargs, now, ttl,
                          events_channel, sent_event)
