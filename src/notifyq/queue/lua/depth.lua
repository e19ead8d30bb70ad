-- The depth ledger of one lane: how many deliveries each job carries, and their sum, split into the
-- deliveries due now and those due later. Functions only; a script prepends this file and calls them.
--
-- D: the ledger's keys, in this order:
--   D[1] jobs     hash   job id -> "<deliveries> <due second>"
--   D[2] buckets  hash   due second -> deliveries, for the seconds after `folded` only
--   D[3] seconds  zset   the seconds in `buckets`, scored by themselves
--   D[4] totals   hash   due, later (deliveries), folded (the second up to which buckets were added to due)
-- Invariant: a job's deliveries are in `due` when its second is at or before `folded`, else in its bucket.
-- Reading the split costs one call whatever the number of jobs: a second is folded into `due` once.
-- A job counted with 0 deliveries is one whose deliveries were canceled: it is not read from its payload again.

local FOLD_PAGE = 1000

-- Move the buckets of the seconds up to `now_s` into `due`; returns the second folded up to.
local function depth_fold(D, now_s)
  local folded = tonumber(redis.call('HGET', D[4], 'folded') or '0')
  if now_s <= folded then
    return folded
  end
  local moved = 0
  while true do
    local seconds = redis.call('ZRANGEBYSCORE', D[3], '-inf', now_s, 'LIMIT', 0, FOLD_PAGE)
    if #seconds == 0 then
      break
    end
    for _, n in ipairs(redis.call('HMGET', D[2], unpack(seconds))) do
      moved = moved + (tonumber(n) or 0)
    end
    redis.call('HDEL', D[2], unpack(seconds))
    redis.call('ZREM', D[3], unpack(seconds))
  end
  if moved ~= 0 then
    redis.call('HINCRBY', D[4], 'due', moved)
    redis.call('HINCRBY', D[4], 'later', -moved)
  end
  redis.call('HSET', D[4], 'folded', now_s)
  return now_s
end

-- Count `n` deliveries of job `id`, due at second `s`.
local function depth_put(D, folded, id, n, s)
  if n == 0 then
    -- nothing to add
  elseif s <= folded then
    redis.call('HINCRBY', D[4], 'due', n)
  else
    redis.call('HINCRBY', D[2], s, n)
    redis.call('ZADD', D[3], s, s)
    redis.call('HINCRBY', D[4], 'later', n)
  end
  redis.call('HSET', D[1], id, n .. ' ' .. s)
end

-- Stop counting job `id`; returns its deliveries and due second, or nil when it was not counted.
local function depth_take(D, folded, id)
  local entry = redis.call('HGET', D[1], id)
  if not entry then
    return nil
  end
  local n, s = string.match(entry, '^(%d+) (%-?%d+)$')
  n, s = tonumber(n), tonumber(s)
  if n == 0 then
    -- nothing to take
  elseif s <= folded then
    redis.call('HINCRBY', D[4], 'due', -n)
  else
    if redis.call('HINCRBY', D[2], s, -n) <= 0 then
      redis.call('HDEL', D[2], s)
      redis.call('ZREM', D[3], s)
    end
    redis.call('HINCRBY', D[4], 'later', -n)
  end
  redis.call('HDEL', D[1], id)
  return n, s
end

-- The second a job scored `score_ms` in its lane is due at.
local function depth_second(score_ms)
  return math.floor(tonumber(score_ms) / 1000)
end

-- The deliveries job `id` carries, read from its arq payload (msgpack): 0 for a job of another kind.
-- ARQ_JOB_KEY, ARQ_FUNCTION, ARQ_ARGS: arq's names, set before this file (queue/arq_compat.py).
local function depth_weight(id)
  local raw = redis.call('GET', ARQ_JOB_KEY .. id)
  if not raw then
    return 0
  end
  local ok, job = pcall(cmsgpack.unpack, raw)
  if not ok or type(job) ~= 'table' or type(job[ARQ_ARGS]) ~= 'table' then
    return 0
  end
  local fn, args = job[ARQ_FUNCTION], job[ARQ_ARGS]
  if fn == 'send_chunk' and type(args[2]) == 'table' then
    return #args[2]
  end
  if fn == 'send' then
    return 1
  end
  return 0
end
