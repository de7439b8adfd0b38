-- Enqueue a batch of jobs, all or none: check each against its trip's books as they would stand
-- after the jobs before it, and only if none breaks a rule, record and publish every job that
-- has no record yet (a job that has one is the idempotent no-op it always was). See tasks/jobs/books.py.
-- A job whose id has a record, or came earlier in the batch, with other kwargs is handed back with
-- those kwargs (a settled record's fields: tasks/jobs/settled.py), read in this same step, for the caller to compare (tasks/jobs/resend.py): it may be
-- the same job written another way (19.990 for 19.99), or a conflicting one; either way nothing of it is written.
-- Returns {0, problem, ...} (nothing written; a problem is {index, rule, other job, captured cents,
-- refunded cents, currency, captured at}), or {1, answer, ...}: per job 1 (new), 0 (there already,
-- the same kwargs) or the kwargs on record (there already, written differently; a settled record: its
-- fields and values, flat); or {1} for a dry
-- run that found no problem.
--#include names
--#include lib/publish.lua
local active_key = KEYS[1]
local waiting_key = KEYS[2]
local backlog_stores_key = KEYS[3] -- stores with jobs on record, by their last enqueue (tasks/store/backlog.py)
local now = ARGV[1]
local ttl = ARGV[2]
local events_channel = ARGV[3]
local dry_run = ARGV[4] == '1'
local refund_window = tonumber(ARGV[5])
local books_ttl = ARGV[6]   -- a trip's books outlive the refund window (PAYQ_TRIP_BOOKS_RETENTION_DAYS)
local FIRST, STRIDE = 7, 14

local function job_at(i)
  return {
    id = ARGV[i], key = ARGV[i + 1], operation = ARGV[i + 2], queue = ARGV[i + 3], message = ARGV[i + 4],
    kwargs = ARGV[i + 5], sent_event = ARGV[i + 6], trip_key = ARGV[i + 7], held_key = ARGV[i + 8],
    cents = tonumber(ARGV[i + 9]), currency = ARGV[i + 10],
    backlog_key = ARGV[i + 11], store = ARGV[i + 12], traceparent = ARGV[i + 13],
  }
end

-- each trip's books as read, then as the batch's earlier jobs would leave them
local books = {}
local function book(trip_key)
  local b = books[trip_key]
  if not b then
    local f = redis.call('HMGET', trip_key, 'capture', 'capture_cents', 'currency', 'captured_at', 'cancel', 'refunded')
    b = {capture = f[1] or nil, captured = tonumber(f[2] or ''), currency = f[3] or nil,
         captured_at = tonumber(f[4] or ''), cancel = f[5] or nil, refunded = tonumber(f[6] or '') or 0}
    books[trip_key] = b
  end
  return b
end

local function breach(index, rule, b, other)
  return {index, rule, other or '', tostring(b.captured or ''), tostring(b.refunded or ''), b.currency or '',
          tostring(b.captured_at or '')}
end

-- phase 1: the rules
local problems = {}
local new = {}
local seen = {}      -- job id -> the kwargs of its first job in this batch
local differing = {} -- index -> the kwargs on record (or earlier in the batch), where they differ from the job's
for i = FIRST, #ARGV, STRIDE do
  local index = (i - FIRST) / STRIDE + 1
  local job = job_at(i)
  local stored = seen[job.id]
  if not stored and redis.call('EXISTS', job.key) == 1 then
    stored = redis.call('HGET', job.key, 'kwargs')
    if not stored and redis.call('HGET', job.key, 'state') == STATE.SUCCEEDED then
      -- a settled record keeps its wire fields leaf by leaf (tasks/jobs/settled.py): handed back whole, for the caller to read
      stored = redis.call('HGETALL', job.key)
    end
    -- '': a record without kwargs (a worker's step outlived it): there already, nothing to compare
    stored = stored or ''
  elseif not stored and job.operation == OP.REFUND and job.trip_key ~= ''
      and redis.call('HEXISTS', job.trip_key, 'r:' .. job.id) == 1 then
    -- its record is gone (PAYQ_JOB_RETENTION_DAYS) but the books, kept past the refund window, still count it:
    -- there already; taken as new it would count twice and refuse a later refund the capture still covers
    stored = ''
  end
  if stored then
    if stored ~= '' and stored ~= job.kwargs then differing[index] = stored end
  else
    seen[job.id] = job.kwargs
    local problem = nil
    if job.trip_key ~= '' then
      local b = book(job.trip_key)
      if job.operation == OP.CAPTURE then
        if b.cancel then problem = breach(index, RULE.CAPTURE_AFTER_CANCEL, b, b.cancel)
        else b.capture, b.captured, b.currency = job.id, job.cents, job.currency end
      elseif job.operation == OP.CANCEL then
        if b.capture then problem = breach(index, RULE.CANCEL_AFTER_CAPTURE, b, b.capture)
        else b.cancel = job.id end
      elseif job.operation == OP.REFUND and b.capture then
        if job.currency ~= b.currency then problem = breach(index, RULE.REFUND_CURRENCY, b)
        elseif b.captured_at and tonumber(now) - b.captured_at > refund_window then problem = breach(index, RULE.REFUND_WINDOW, b)
        elseif b.refunded + job.cents > b.captured then problem = breach(index, RULE.OVER_REFUND, b)
        else b.refunded = b.refunded + job.cents end
      end
    end
    if problem then table.insert(problems, problem) else new[index] = true end
  end
end
if #problems > 0 then return {0, unpack(problems)} end
if dry_run then return {1} end

-- phase 2: record and publish; a refund whose capture has not succeeded yet waits, unpublished
local created = {1}
-- a batch is mostly one store's: its backlog's expiry and its place among the stores are set once, not per job
-- (the same `now` and `ttl` for every job of the batch; each call from Lua costs Redis more than its work)
local backlog_kept, store_listed = {}, {}
for i = FIRST, #ARGV, STRIDE do
  local index = (i - FIRST) / STRIDE + 1
  local job = job_at(i)
  if differing[index] then
    table.insert(created, differing[index])
  elseif not new[index] then
    table.insert(created, 0)
  else
    local b = job.trip_key ~= '' and book(job.trip_key) or nil
    if b and job.operation == OP.CAPTURE then
      redis.call('HSET', job.trip_key, 'capture', job.id, 'capture_cents', job.cents, 'currency', job.currency)
    elseif b and job.operation == OP.CANCEL then
      redis.call('HSET', job.trip_key, 'cancel', job.id)
    elseif b and job.operation == OP.REFUND then
      redis.call('HINCRBY', job.trip_key, 'refunded', job.cents)
      redis.call('HSET', job.trip_key, 'r:' .. job.id, job.cents)
    end
    if b then redis.call('EXPIRE', job.trip_key, books_ttl) end
    if b and job.operation == OP.REFUND and b.capture and not b.captured_at then
      redis.call('HSET', job.key, 'op', job.operation, 'kwargs', job.kwargs, 'attempts', 0, 'enqueued_at', now,
                 'state', STATE.WAITING, 'waiting_for', b.capture, 'held_message', job.message, 'held_event', job.sent_event,
                 'updated_at', now)
      if job.traceparent ~= '' then redis.call('HSET', job.key, 'traceparent', job.traceparent) end
      redis.call('EXPIRE', job.key, ttl)
      redis.call('RPUSH', job.held_key, job.id)
      redis.call('EXPIRE', job.held_key, ttl)
      redis.call('ZADD', waiting_key, now, job.id)
    else
      record_and_publish(job.key, job.queue, active_key, job.id, job.message, job.operation, job.kwargs, now, ttl,
                         events_channel, job.sent_event, job.traceparent, job.store)
    end
    -- the store's open jobs, for its intake cap and `payq stats` (settled ones are pruned when counted)
    redis.call('ZADD', job.backlog_key, now, job.id)
    if not backlog_kept[job.backlog_key] then
      redis.call('EXPIRE', job.backlog_key, ttl)
      backlog_kept[job.backlog_key] = true
    end
    if not store_listed[job.store] then
      redis.call('ZADD', backlog_stores_key, now, job.store)
      store_listed[job.store] = true
    end
    table.insert(created, 1)
  end
end
return created
