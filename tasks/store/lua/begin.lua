-- A worker picks a job up: claim an attempt, unless the job is finished, deferred, its endpoint
-- paused, its turn at the endpoint's pace not yet come, or another worker holds it. A claim is
-- held under a lease (payq:leases, by Redis's clock) that the holder's heartbeat renews.
-- Returns {verdict, attempts, time} (see tasks.states.Verdict): for 'run' the time of the job's
-- turn (the worker waits until then), for 'paced' the turn it must wait for, for 'paused' the
-- end of the pause, for 'settled' the capture's settle time, for 'held' the end of the lease, for
-- 'queued' when to ask again (the job's store has had its share of the turns: tasks.pacing.fairness);
-- 'unrecorded' (nothing written) when payq has no record of a job under this id: see below.
--#include names
--#include lib/lease.lua
local job_key = KEYS[1]
local deferred_key = KEYS[2]
local pause_key = KEYS[3]
local active_key = KEYS[4]
local pace_key = KEYS[5]
local leases_key = KEYS[6]
local workers_key = KEYS[7]
local steady_key = KEYS[8]
local clocks_key = KEYS[9]   -- each store's clocks at the endpoint (turn:<store>, line:<store>)
local waiting_key = KEYS[10] -- the stores waiting for the endpoint, by the later of their clocks
local store_calls_key = KEYS[11] -- calls let go this ten-second window, per operation and store (payq stats)
local job_id = ARGV[1]
local now = tonumber(ARGV[2])
local worker = ARGV[3]     -- the Celery worker's name, for people
local delivery = ARGV[4]   -- this message's delivery tag, for people
local lease = tonumber(ARGV[5])
local pace = tonumber(ARGV[6])          -- calls per second; 0: the endpoint is not paced
local wait_in_place = tonumber(ARGV[7]) -- a turn this close is waited for by the worker, not the deferred set
local holder = ARGV[8]     -- the worker process (its heartbeat's id)
local claim = ARGV[9]      -- this delivery's claim, unique: outcomes are written only under it
local store = ARGV[10]     -- the job's storeId: turns are shared between stores
local horizon = tonumber(ARGV[11] or '0') -- seconds ahead a store may book turns; 0: turns first come, first served
local operation = ARGV[12] -- the job's operation, for the calls counted per operation and store
local kwargs = ARGV[13] or ''  -- the message's kwargs as payq writes them ('': not compared)
local store_cap = tonumber(ARGV[14] or '0') -- the store's cap of calls a second at the endpoint (PAYQ_STORE_LIMITS); 0: none
local WEIGHTS = 15         -- ARGV[WEIGHTS ..]: (storeId, weight) of each store PAYQ_STORE_LIMITS weighs; any other weighs 1
local clocks_ttl = '3600'  -- a store's clocks matter for seconds; the keys go an hour after the last turn

-- Every field BEGIN may need, in one read. (Each redis.call costs Redis more than the field it reads:
-- arguments made Redis strings, the reply made Lua strings; BEGIN runs for every job.)
local found = redis.call('HMGET', job_key, 'state', 'enqueued_at', 'settled_at', 'claim', 'attempts', 'pace_turn',
                         'first_attempt_at', 'kwargs')
local state, enqueued_at, settled, claimed, attempts_on_record = found[1], found[2], found[3], found[4], found[5]
local turn_on_record, first_attempt_at, stored_kwargs = found[6], found[7], found[8]
if not enqueued_at then
  -- Every job payq's doors enqueue is recorded with 'enqueued_at' in the step that publishes it. A
  -- message without one came around them (Celery's own send_task or apply_async, or a dead letter of
  -- such a message replayed), or outlived its record: it has passed none of enqueue's rules, so it
  -- runs nothing here; the worker enqueues it through them (tasks/jobs/admission.py).
  return {VERDICT.UNRECORDED, '0', ''}
end
-- The record's kwargs are the job's: enqueue validated them against the trip's rules. A message under the
-- job's id that says otherwise (Celery's send_task with a recorded job's id) claims nothing; the worker reads
-- what differs and runs the job as recorded. (Lua strings are interned: comparing two is comparing pointers.)
if kwargs ~= '' and state ~= STATE.SUCCEEDED and state ~= STATE.DEAD and stored_kwargs and stored_kwargs ~= kwargs then
  return {VERDICT.DIFFERS, '0', '', stored_kwargs}
end
-- a finished, dead or held job's state names its verdict too
if state == STATE.SUCCEEDED or state == STATE.DEAD or state == STATE.WAITING then return {state, '0', ''} end
if settled then return {VERDICT.SETTLED, '0', settled} end
if state == STATE.DEFERRED and redis.call('ZSCORE', deferred_key, job_id) then return {VERDICT.DEFERRED, '0', ''} end
if state == STATE.RUNNING and claim ~= '' and claimed == claim then
  -- this delivery's own claim: its BEGIN ran before a connection fault hid the answer, and is asked again
  return {VERDICT.RUN, attempts_on_record, ARGV[2]}
end
local clock = redis_now()
if state == STATE.RUNNING then
  -- a copy of the message, whatever its delivery tag (kombu's restore when a connection dropped, a
  -- re-publish): while the holder's lease stands, the holder finishes the job. After it lapsed only a
  -- steady worker takes it over; otherwise the lease sweep gives it back (tasks.store.leases.copy_verdict).
  local lease_until = tonumber(redis.call('ZSCORE', leases_key, job_id) or '')
  if lease_until ~= nil and lease_until > clock then return {VERDICT.HELD, '0', tostring(lease_until)} end
  if not steady(workers_key, steady_key, holder, clock, lease) then return {VERDICT.HELD, '0', ''} end
end
local paused_until = tonumber(redis.call('GET', pause_key) or '0')
-- a turn taken earlier (the job then waited for it in the deferred set) is kept, unless a pause
-- has since covered it
local turn = tonumber(turn_on_record or '')
if turn and turn < paused_until then turn = nil end
local cap_next, cap_line = nil, nil
if not turn and store_cap > 0 then
  -- the store's own cap (tasks.pacing.fairness.cap_wait), asked before the endpoint's turn is taken, so a capped store
  -- never holds a turn it may not use: past its next free call, the job joins the store's line and asks again then
  local cap_clocks = redis.call('HMGET', clocks_key, 'cap:' .. store, 'capline:' .. store)
  cap_next, cap_line = tonumber(cap_clocks[1] or '0'), tonumber(cap_clocks[2] or '0')
  if cap_next - now > wait_in_place then
    local place = math.max(cap_line, cap_next)
    redis.call('HSET', clocks_key, 'capline:' .. store, tostring(place + 1 / store_cap))
    redis.call('EXPIRE', clocks_key, clocks_ttl)
    return {VERDICT.QUEUED, '0', tostring(place)}
  end
end
if not turn then
  if pace > 0 and horizon > 0 then
    -- fair turns between stores (start-time fair queuing, tasks.pacing.fairness.fair_turn): a store
    -- takes the endpoint's next free turn while its own clock is within the horizon; its clock then
    -- moves on by (stores waiting) / pace, weighed (PAYQ_STORE_LIMITS). Past its share, the job joins its store's line.
    local tat = tonumber(redis.call('HGET', pace_key, 'tat') or '0')
    local turn_field, line_field = 'turn:' .. store, 'line:' .. store
    local clocks = redis.call('HMGET', clocks_key, turn_field, line_field)
    local store_turn = tonumber(clocks[1] or '0')
    local store_line = tonumber(clocks[2] or '0')
    redis.call('ZREMRANGEBYSCORE', waiting_key, '-inf', now)
    -- the other waiting stores' weights: 1 each, plus what a weighed one adds (a store's share is its weight over theirs)
    local others_weight = redis.call('ZCARD', waiting_key)
    if redis.call('ZSCORE', waiting_key, store) then others_weight = others_weight - 1 end
    local weight = 1
    for i = WEIGHTS, #ARGV, 2 do
      local weighed, its_weight = ARGV[i], tonumber(ARGV[i + 1])
      if weighed == store then
        weight = its_weight
      elseif redis.call('ZSCORE', waiting_key, weighed) then
        others_weight = others_weight + its_weight - 1
      end
    end
    local step = (others_weight + weight) / (pace * weight)
    local ask_at = nil
    if store_turn <= now + horizon + 1e-6 then
      turn = math.max(now, paused_until, tat)
      store_turn = math.max(store_turn, turn - horizon) + step  -- a store that asked late catches up within a horizon
      redis.call('HSET', pace_key, 'tat', tostring(turn + 1 / pace))
    else
      local place = math.max(store_line, store_turn)
      store_line = place + 1 / pace
      ask_at = place - horizon
    end
    redis.call('HSET', clocks_key, turn_field, tostring(store_turn), line_field, tostring(store_line))
    redis.call('ZADD', waiting_key, math.max(store_turn, store_line), store)
    redis.call('EXPIRE', clocks_key, clocks_ttl)
    redis.call('EXPIRE', waiting_key, clocks_ttl)
    if ask_at then return {VERDICT.QUEUED, '0', tostring(ask_at)} end
  elseif pace > 0 then
    -- GCRA: the endpoint's next free turn is `tat`; taking one moves it on by 1/pace. Turns are
    -- handed out in the order jobs ask, so after a pause the waiting jobs come back oldest first.
    local tat = tonumber(redis.call('HGET', pace_key, 'tat') or '0')
    turn = math.max(now, paused_until, tat)
    redis.call('HSET', pace_key, 'tat', tostring(turn + 1 / pace))
  elseif paused_until > now then
    return {VERDICT.PAUSED, '0', tostring(paused_until)}
  else
    turn = now
  end
end
if cap_next then
  -- its call no sooner than the store's next free one, which then moves on by 1/cap (tasks.pacing.fairness.cap_turn)
  turn = math.max(turn, cap_next)
  redis.call('HSET', clocks_key, 'cap:' .. store, tostring(turn + 1 / store_cap))
  redis.call('EXPIRE', clocks_key, clocks_ttl)
end
if turn - now > wait_in_place then
  redis.call('HSET', job_key, 'pace_turn', tostring(turn))
  return {VERDICT.PACED, '0', tostring(turn)}
end
if turn_on_record then redis.call('HDEL', job_key, 'pace_turn') end
local attempts = string.format('%d', tonumber(attempts_on_record or '0') + 1)
local claiming = {'state', STATE.RUNNING, 'updated_at', ARGV[2], 'last_attempt_at', ARGV[2], 'worker', worker,
                  'delivery', delivery, 'holder', holder, 'claim', claim, 'attempts', attempts}
if not first_attempt_at then
  claiming[#claiming + 1] = 'first_attempt_at'
  claiming[#claiming + 1] = ARGV[2]
end
redis.call('HSET', job_key, unpack(claiming))
redis.call('ZADD', active_key, ARGV[2], job_id)
redis.call('ZADD', leases_key, lease_end(clock, lease), job_id)
-- the window's key expires with its first count (a field's first is 1, and the key's first field is its first)
if redis.call('HINCRBY', store_calls_key, operation .. ':' .. store, '1') == 1 then
  redis.call('EXPIRE', store_calls_key, '130')
end
-- the turn is the worker's own time unless a pace gave a later one: handed back as the worker wrote it
return {VERDICT.RUN, attempts, turn == now and ARGV[2] or tostring(turn)}
