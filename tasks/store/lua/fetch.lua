-- A worker's fetch, in one round trip (tasks/store/inflight.py): first it gives back what it will not run, then it takes
-- messages into its own in-flight lists, where each stays until it is settled. (An acknowledged message leaves its
-- list by a plain LREM sent ahead of this script: in here its bytes would be made a Lua string, every one hashed.)
-- 1. A message given back leaves the worker's in-flight list and goes back to the head of its queue's own list (only
--    if it was still there: a list is emptied when a dead worker's messages are given back).
-- 2. Up to `wanted` messages move from the queues into payq:inflight:<worker>:<queue>, in this one atomic step:
--    fairly, each queue that has any its share, round after round, starting with the queue the worker names first;
--    within a queue, its own list first, then one store's lane after another (see `take`).
-- KEYS: payq:inflight, then per queue its key and the worker's in-flight list for it.
-- ARGV: worker, wanted, the number of messages given back and (queue index, message) for each.
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
local given_back = tonumber(ARGV[at])
for _ = 1, given_back do
  local index, message = tonumber(ARGV[at + 1]), ARGV[at + 2]
  if redis.call('LREM', list_key(index), 1, message) == 1 then
    redis.call('RPUSH', queue_key(index), message)
    wake()
  end
  at = at + 2
end

-- Up to `n` messages of queue `index` into the worker's in-flight list for it, each store's oldest first, appended to
-- `taken`; returns how many. Its own list first (late jobs, given back ones, what Celery's own producers and the
-- previous version publish), then the stores' lanes in turn (lib/publish.lua): the next store on the ring's right goes
-- to its left, so a store with a few jobs waits one turn of each other store, not behind their backlogs.
-- Turns go in rounds: in each, every store on the ring takes an equal part of what is still wanted (at least one),
-- at once (LMPOP, then one LPUSH): a few commands a turn rather than three a message, while the stores' shares, and
-- where the ring stands after the fetch, are those of taking one message a turn.
local plain_empty = {}
local function take(index, n, taken)
  local queue, list = queue_key(index), list_key(index)
  local function keep(popped)
    if not popped then return 0 end
    local messages = popped[2]
    redis.call('LPUSH', list, unpack(messages))
    for _, message in ipairs(messages) do
      taken[#taken + 1] = index
      taken[#taken + 1] = message
    end
    return #messages
  end
  local got = 0
  if not plain_empty[index] then
    got = keep(redis.call('LMPOP', 1, queue, 'RIGHT', 'COUNT', n))
    if got < n then plain_empty[index] = true end
  end
  local ring = RING_PREFIX .. queue
  local stores = got < n and redis.call('LLEN', ring) or 0
  while got < n and stores > 0 do
    local part = math.max(1, math.floor((n - got) / stores))
    local turns = stores
    for _ = 1, turns do
      if got >= n then break end
      local asked = math.min(part, n - got)
      local store = redis.call('LMOVE', ring, ring, 'RIGHT', 'LEFT')
      if not store then  -- the ring is shorter than counted (only this step changes it): nothing more to take
        stores = 0
        break
      end
      local lane = LANE_PREFIX .. queue .. ':' .. store
      local count = keep(redis.call('LMPOP', 1, lane, 'RIGHT', 'COUNT', asked))
      got = got + count
      -- a store stays on the ring while its lane holds any (publish adds it back with its next message); it was just
      -- moved to the left, where LREM's search starts. Fewer than asked: the lane is empty (LMPOP deleted it).
      if count < asked or redis.call('EXISTS', lane) == 0 then
        redis.call('LREM', ring, 1, store)
        stores = stores - 1
      end
    end
  end
  return got
end

-- fairly across the queues, in rounds: each still open one an equal part of what is still wanted (at least one),
-- until the worker has what it wants or every queue is empty
local taken = {''}
local open = {}
for index = 1, QUEUES do open[#open + 1] = index end
while wanted > 0 and #open > 0 do
  local still = {}
  local part = math.max(1, math.floor(wanted / #open))
  for _, index in ipairs(open) do
    if wanted > 0 then
      local asked = math.min(part, wanted)
      local got = take(index, asked, taken)
      wanted = wanted - got
      if got == asked then still[#still + 1] = index end
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
