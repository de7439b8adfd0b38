-- A worker's fetch, in one round trip (tasks/store/inflight.py): first it settles what it finished since its last
-- fetch, then it takes messages into its own in-flight lists, where each stays until it is settled.
-- 1. An acknowledged message leaves the worker's in-flight list; one given back leaves it and goes back to the
--    head of its queue's own list (only if it was still there: a list is emptied when a dead worker's messages are given back).
-- 2. Up to `wanted` messages move from the queues, each atomically (LMOVE), into payq:inflight:<worker>:<queue>:
--    fairly, one from each queue that has any, round after round, starting with the queue the worker names first;
--    within a queue, its own list first, then one store's lane after another (see `take`).
-- KEYS: payq:inflight, then per queue its key and the worker's in-flight list for it.
-- ARGV: worker, wanted, the number of acknowledged messages and (queue index, message) for each, the same for
-- those given back.
-- Returns {'', queue index, message, ...}, or, having taken nothing, {the last id of payq:wake}: the worker
-- then blocks on XREAD for any entry after it, so a message published after this script is never missed.
--#include names
--#include lib/publish.lua
local inflight_key = KEYS[1]
local worker = ARGV[1]
local wanted = tonumber(ARGV[2])
local QUEUES = (#KEYS - 1) / 2

local function queue_key(index) return KEYS[2 * index] end
local function list_key(index) return KEYS[2 * index + 1] end

local at = 3
local acknowledged = tonumber(ARGV[at])
for _ = 1, acknowledged do
  redis.call('LREM', list_key(tonumber(ARGV[at + 1])), 1, ARGV[at + 2])
  at = at + 2
end
at = at + 1
local given_back = tonumber(ARGV[at])
for _ = 1, given_back do
  local index, message = tonumber(ARGV[at + 1]), ARGV[at + 2]
  if redis.call('LREM', list_key(index), 1, message) == 1 then
    redis.call('RPUSH', queue_key(index), message)
    wake()
  end
  at = at + 2
end

-- One message of queue `index`, or nil: its own list first (late jobs, given back ones, what Celery's own producers and
-- the previous version publish), then the stores' lanes in turn (lib/publish.lua): the next store on the ring's right
-- goes to its left, so a store with a few jobs waits one turn of each other store, not behind their backlogs.
local plain_empty = {}
local function take(index)
  local queue, list = queue_key(index), list_key(index)
  if not plain_empty[index] then
    local message = redis.call('LMOVE', queue, list, 'RIGHT', 'LEFT')
    if message then return message end
    plain_empty[index] = true
  end
  local ring = RING_PREFIX .. queue
  while true do
    local store = redis.call('LMOVE', ring, ring, 'RIGHT', 'LEFT')
    if not store then return nil end
    local lane = LANE_PREFIX .. queue .. ':' .. store
    local message = redis.call('LMOVE', lane, list, 'RIGHT', 'LEFT')
    -- a store stays on the ring while its lane holds any (publish adds it back with its next message); it was just
    -- moved to the left, where LREM's search starts
    if redis.call('LLEN', lane) == 0 then redis.call('LREM', ring, 1, store) end
    if message then return message end
  end
end

local taken = {''}
local open = {}
for index = 1, QUEUES do open[#open + 1] = index end
while wanted > 0 and #open > 0 do
  local still = {}
  for _, index in ipairs(open) do
    if wanted > 0 then
      local message = take(index)
      if message then
        taken[#taken + 1] = index
        taken[#taken + 1] = message
        wanted = wanted - 1
        still[#still + 1] = index
      end
    end
  end
  open = still
end
if #taken > 1 then
  local t = redis.call('TIME')
  redis.call('ZADD', inflight_key, 'NX', t[1] + t[2] / 1000000, worker)
  return taken
end
local last = redis.call('XREVRANGE', WAKE, '+', '-', 'COUNT', 1)
return {last[1] and last[1][1] or '0-0'}
