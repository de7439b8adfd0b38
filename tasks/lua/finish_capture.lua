-- A capture's success in one round trip: its settle time (kept from the first success: the
-- report's id derives from it), its chained payment-status report, its success record.
-- Returns the settle time on record; a different one than offered means an earlier delivery
-- settled it, and the caller builds that report instead and calls again.
--#include lib/publish.lua
local capture_key = KEYS[1]
local active_key = KEYS[2]
local report_key = KEYS[3]
local report_queue = KEYS[4]
local capture_id = ARGV[1]
local now = ARGV[2]
local settled_at = ARGV[3]
local result = ARGV[4]
local report_id = ARGV[5]
local report_message = ARGV[6]
local report_kwargs = ARGV[7]
local ttl = ARGV[8]
local events_channel = ARGV[9]
local sent_event = ARGV[10]

redis.call('HSETNX', capture_key, 'settled_at', settled_at)
local on_record = redis.call('HGET', capture_key, 'settled_at')
if on_record ~= settled_at then return on_record end
record_and_publish(report_key, report_queue, active_key, report_id, report_message, 'feedback', report_kwargs, now, ttl,
                   events_channel, sent_event)
redis.call('HSET', capture_key, 'state', 'succeeded', 'result', result, 'updated_at', now)
redis.call('HDEL', capture_key, 'deferred_until', 'defer')
redis.call('ZREM', active_key, capture_id)
return on_record
