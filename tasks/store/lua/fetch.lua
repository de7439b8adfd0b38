-- A worker's fetch, in one round trip (tasks/store/inflight.py): first it settles what it finished since its last
-- fetch, then it takes messages into its own in-flight lists, where each stays until it is settled.
-- 1. An acknowledged message leaves the worker's in-flight list; one given back leaves it and goes back to the
--    head of its queue (only if it was still there: a list is emptied when a dead worker's messages are given back).
-- 2. Up to `wanted` messages move from the queues, each atomically (LMOVE), into payq:inflight:<worker>:<queue>:
--    fairly, one from each queue that has any, round after round, starting with the queue the worker names first.
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

local taken = {''}
local open = {}
for index = 1, QUEUES do open[#open + 1] = index end
while wanted > 0 and #open > 0 do
  local still = {}
  for _, index in ipairs(open) do
    if wanted > 0 then
      local message = redis.call('LMOVE', queue_key(index), list_key(index), 'RIGHT', 'LEFT')
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
