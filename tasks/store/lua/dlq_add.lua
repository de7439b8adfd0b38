-- Store a dead-letter entry (replacing an older one for the same job), mark its job dead, take a
-- refund out of its trip's refunded amount, and publish the outcome's notification. Returns 0, writing
-- nothing, when the delivery lost its claim on the job (see lib/lease.lua `may_record`), else 1.
--#include names
--#include lib/publish.lua
--#include lib/outbox.lua
--#include lib/lease.lua
--#include lib/dead_letters.lua
--#include lib/books.lua
local entries_key = KEYS[1]
local index_key = KEYS[2]
local counts_key = KEYS[3]
local job_key = KEYS[4]
local leases_key = KEYS[5]
local job_id = ARGV[1]
local entry = ARGV[2]
local dead_at = ARGV[3]
local reason = ARGV[4]
local failure = ARGV[5]   -- JSON of the failure, for the job record
local job_ttl = ARGV[6]
local trip_key = ARGV[7]   -- the trip's books, for a refund ('' for other jobs)
local active_key = ARGV[8]
local events_channel = ARGV[9]
local claim = ARGV[10]     -- the delivery's claim on the job; '' when it claimed nothing
local EVENT = 11           -- ARGV[11..16]: the dead-lettering's notification (see append_event)
local backlog_key = ARGV[17] or ''  -- its store's open jobs (tasks/store/backlog.py); '': none (a notification)

if not may_record(job_key, claim) then return 0 end
redis.call('ZREM', leases_key, job_id)
add_entry(entries_key, index_key, counts_key, job_key, job_id, entry, dead_at, reason, failure, job_ttl)
-- a dead-lettered refund no longer counts against what is left to refund (replaying it puts it back)
if trip_key ~= '' then refund_dead(trip_key, job_id) end
append_event(EVENT, dead_at)
-- a dead job is no longer open: out of its store's backlog (a replay puts it back)
if backlog_key ~= '' then redis.call('ZREM', backlog_key, job_id) end
return 1
