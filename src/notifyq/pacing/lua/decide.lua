-- One pacing decision for one send: grant it now, or tell the job when to come back.
-- The design (schedule, tolerance, window, horizon, fair waiting line, leases) is explained in
-- notifyq/queue/limiter.py. All times are integer microseconds of Redis' clock; costs are segments.
--
-- KEYS: 1 schedule hash, 2 schedule slots zset (score: running segment total), 3 account hash,
--       4 account leases zset, 5 account pause key, 6 rate overrides hash, 7 job reservation key,
--       8 index set, 9 open reservations zset (score: slot), 10 wake lateness hash (all workers),
--       11 waiting line zset (score: lane base + start tag), 12 waiting due zset (score: give-up time),
--       13 flow finish tags hash, 14 account's held reservations zset (member: the send's job key;
--       score: when it stops counting)
-- ARGV: 1 now ('' = Redis TIME), 2 override field ('' = none), 3 default rate, 4 cost, 5 token,
--       6 fresh id, 7 max in flight, 8 lease ttl, 9 early, 10 late, 11 burst, 12 horizon,
--       13 horizon segments, 14 pause recheck, 15 latency guess, 16 job key in use ('1'/'0'),
--       17 schedule name, 18 account name, 19 held ('1': a retry after an in-process wait),
--       20 lane ('urgent' or 'bulk'), 21 flow (the batch; '' = one flow), 22 mode ('' grant when a slot
--       is free now; 'r' reserve only: a slot at least `lead` ahead and no lease, for a worker that
--       claims its delivery, then comes back in process; 'h' grant mode, for such a held reservation),
--       23 lead ('' = learnt from how late jobs come back), 24 jitter (the spread of the time from a
--       grant to the request's arrival at Twilio: part of the window), 25 ahead (mode 'r': how far ahead
--       of their turn jobs in line are asked back, and may book, since they hold their slots in process),
--       26 continuation ('1': a later send of the same chunk in the same call)
-- Returns {'G', lease, granted_at, loose, now}, {'W', until, reason, token, now} or (mode 'r')
-- {'R', slot, token, now}: the slot is reserved under token; come back with it in [slot - early, slot + late].
-- loose ('1'/'0'): the sender's kept schedule (every slot from a window ago to the last one booked) holds
-- at most half its rate, so a request that reaches Twilio up to LOOSE late cannot fill a second; a held
-- reservation redeemed up to LOOSE late is then granted on its own slot, not booked again, if the
-- schedule holds at most half the rate with the send's segments counted once more.
--
-- Tokens: 't<slot>:<cost>:<told>:<id>' a reservation (its open slot is its score in KEYS[9]; <slot> is
-- where it started), 'q<tag>:<told>:<id>' a place in the waiting line (<tag> its score in KEYS[11]).
-- <told> is when the job was asked to come back: how late it really comes teaches the schedule how
-- late its jobs wake.

local SCHED_H, SCHED_Z, ACCT_H, LEASES_Z = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local PAUSED, RATES_H, JOB_K, INDEX_S, OPEN_Z, WAKE_H = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local WAIT_Z, DUE_Z, FLOWS_H, HELD_Z = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local HELD_TTL = 2000000 -- a held reservation counts against its account this long after its slot at most
local LOOSE = 250000 -- how late a send may go on a sender that uses at most half its rate

-- what one script call has read and written already; the many-call (limiter.py) shares it across its sends
-- and writes the schedule's state once at its end. Reads that it saves: the pause, the rate override, the
-- schedule's and the wake estimate's hashes, the account's counts; purges done once a call (a slot, lease or
-- place in line that expires during the call is dropped by the next one: it is counted a little longer)
local memo = {} -- @memo
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local rate = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local token = ARGV[5]
local fresh = ARGV[6]
local max_in_flight = tonumber(ARGV[7])
local lease_ttl = tonumber(ARGV[8])
local early, late, burst = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local horizon, horizon_segments = tonumber(ARGV[12]), tonumber(ARGV[13])
local recheck, latency_guess = tonumber(ARGV[14]), tonumber(ARGV[15])
local use_job = ARGV[16] == '1'
local MAX_LEAD = 2000000 -- jobs are never asked back more than 2 s ahead of their slot
local lane = ARGV[20]
local flow = ARGV[21]
local reserve_only = ARGV[22] == 'r'
local jitter = tonumber(ARGV[24]) or 0
local ahead_s = 0
if reserve_only then ahead_s = tonumber(ARGV[25]) or 0 end
-- one waiting line per sender: every urgent tag sorts before every bulk tag
local LANE_BASE = 0
if lane ~= 'urgent' then LANE_BASE = 1e13 end
local LINE_GRACE = 3000000 -- a place in line not claimed this long after its time is given up

-- a whole number (nearly always, here) prints as %d: the same digits as %.0f, without libc's float printing
-- (three times as slow for a time in microseconds); zero goes the %.0f way, which keeps the sign of -0
local function fmt(x)
  if x == math.floor(x) and x ~= 0 and x > -1e15 * 9 and x < 1e15 * 9 then return string.format('%d', x) end
  return string.format('%.0f', x)
end
local function slot_of(member) return tonumber(string.match(member, '^(%d+)')) end

if use_job and token == '' then token = redis.call('GET', JOB_K) or '' end

local function remember(value, until_us)
  if use_job then redis.call('SET', JOB_K, value, 'PX', math.floor((until_us - now) / 1000) + 120000) end
end

-- the same reservation or ticket, now expecting its holder back at `told`
local function reissue(told)
  local renamed = token
  local start, c, id = string.match(token, '^t(%d+):(%d+):%d+:(.+)$')
  if start then
    renamed = 't' .. start .. ':' .. c .. ':' .. fmt(told) .. ':' .. id
    local slot = redis.call('ZSCORE', OPEN_Z, token)
    if slot then
      redis.call('ZREM', OPEN_Z, token)
      redis.call('ZADD', OPEN_Z, slot, renamed)
    end
  else
    start, id = string.match(token, '^q(%d+):%d+:(.+)$')
    if start then renamed = 'q' .. start .. ':' .. fmt(told) .. ':' .. id end
  end
  if renamed ~= '' then remember(renamed, told) end
  return renamed
end

if memo.paused == nil then memo.paused = redis.call('GET', PAUSED) end
local paused = memo.paused
if paused then
  local told = now + recheck
  return {'W', fmt(told), 'account paused: ' .. paused, reissue(told), fmt(now)}
end

if ARGV[2] ~= '' then
  if memo.override == nil then memo.override = redis.call('HGET', RATES_H, ARGV[2]) end
  if memo.override then rate = tonumber(memo.override) end
end
-- K segments in any window of W us; interval = us per segment for the smoothing GCRA
local cap_w = math.max(1, math.floor(rate + 1e-9))
local window = 1000000 + early + late + jitter
local interval = math.max(window / cap_w, 1000000 / rate)
horizon = math.max(horizon, horizon_segments * interval)
-- jobs within this many places of the head of the line may take a slot (they come back jittered)
local near = 1 + math.ceil((early + late + ahead_s) / interval)

local vfield = 'v' .. string.sub(lane, 1, 1)
local st = memo.st or redis.call('HMGET', SCHED_H, 'tat', 'last', 'cn', 'base', vfield, 'rate', 'ac')
local tat, last = tonumber(st[1]) or 0, tonumber(st[2]) or 0
local cn, base, vt = tonumber(st[3]) or 0, tonumber(st[4]) or 0, tonumber(st[5]) or 0
local avg_cost = tonumber(st[7]) or cost -- segments per job, averaged: the line's jobs cost this each
if not st[3] then redis.call('SADD', INDEX_S, ARGV[17]) end

-- a lower rate voids future reservations: they were spaced for the old rate
local old_rate = tonumber(st[6])
if old_rate and rate < old_rate then
  while true do
    local top = redis.call('ZREVRANGE', SCHED_Z, 0, 99)
    local done = #top == 0
    for i = 1, #top do
      if slot_of(top[i]) > now then redis.call('ZREM', SCHED_Z, top[i]) else done = true break end
    end
    if done then break end
  end
  local top = redis.call('ZREVRANGE', SCHED_Z, 0, 0, 'WITHSCORES')
  if #top > 0 then cn, last = tonumber(top[2]), slot_of(top[1]) else cn, last = base, 0 end
  tat = math.max(now, last)
  redis.call('ZREMRANGEBYSCORE', OPEN_Z, '(' .. fmt(now), '+inf')
end

-- drop slots that can no longer fall in any window; base = running total just below the oldest kept
local swept = memo.swept -- this call dropped what had expired already (below)
memo.swept = true
local oldest = {}
if not swept then oldest = redis.call('ZRANGE', SCHED_Z, 0, 0) end
if #oldest > 0 and slot_of(oldest[1]) <= now - window - 1000 then
  local head = redis.call('ZRANGE', SCHED_Z, 0, 63, 'WITHSCORES')
  local cut
  for i = 1, #head, 2 do
    if slot_of(head[i]) <= now - window - 1000 then cut = tonumber(head[i + 1]) else break end
  end
  redis.call('ZREMRANGEBYSCORE', SCHED_Z, '-inf', cut)
  base = math.max(base, cut)
end
-- reservations past their late tolerance can no longer be used by anyone
if not swept then redis.call('ZREMRANGEBYSCORE', OPEN_Z, '-inf', '(' .. fmt(now - late)) end

-- learn how late jobs come back (not from in-process waits: those are punctual). Lateness belongs to
-- the worker pool, not to a sender, so one estimate serves every schedule: EWMA of mean and deviation.
local wake = memo.wake or redis.call('HMGET', WAKE_H, 'lag', 'dev')
local lag, dev = tonumber(wake[1]) or 0, tonumber(wake[2]) or 0
local told = tonumber(string.match(token, '^t%d+:%d+:(%d+):') or string.match(token, '^q%d+:(%d+):'))
if told and ARGV[19] ~= '1' then
  local seen = math.min(MAX_LEAD, math.max(-MAX_LEAD, now - told))
  dev = dev + 0.1 * (math.abs(seen - lag) - dev)
  lag = lag + 0.1 * (seen - lag)
  redis.call('HSET', WAKE_H, 'lag', fmt(lag), 'dev', fmt(dev))
  redis.call('PEXPIRE', WAKE_H, 86400000)
  wake = {fmt(lag), fmt(dev)}
end
memo.wake = wake
-- ask jobs back early by the low edge of their lateness, so nearly all land in [slot - early, slot + late]
local lead = math.min(MAX_LEAD, math.max(0, lag - 3 * dev))
local wake_lead = lead + ahead_s -- jobs in line are asked back this much before their turn
if ARGV[23] ~= '' then lead = tonumber(ARGV[23]) end -- a booked slot is at least this far ahead

local function save()
  local state = {string.format('%.3f', tat), fmt(last), fmt(cn), fmt(base), fmt(vt), tostring(rate),
    string.format('%.3f', avg_cost)}
  memo.st = state
  local ttl = math.floor((1.5 * horizon + window) / 1000) + 60000
  -- the many-call writes the last state and the keys' expiries once, at its end (the same for all its sends)
  if memo.defer then
    memo.vfield, memo.interval, memo.ttl = vfield, interval, ttl
    return
  end
  redis.call('HSET', SCHED_H, 'tat', state[1], 'last', state[2], 'cn', state[3], 'base', state[4], vfield, state[5],
    'rate', state[6], 'iv', fmt(interval), 'ac', state[7])
  redis.call('PEXPIRE', SCHED_H, ttl)
  redis.call('PEXPIRE', SCHED_Z, ttl)
  redis.call('PEXPIRE', OPEN_Z, ttl)
  -- the line and the flows' tags outlive the slots: a waiting job may come back minutes later
  local line_ttl = 3600000
  redis.call('PEXPIRE', WAIT_Z, line_ttl)
  redis.call('PEXPIRE', DUE_Z, line_ttl)
  redis.call('PEXPIRE', FLOWS_H, line_ttl)
end

-- earliest slot >= now - late for `cost` segments: after every slot already given (the schedule only
-- grows at its end), GCRA-smooth, and with at most cap_w segments in any window of W us (a message
-- larger than cap_w: alone in its window). A slot up to `late` in the past may be used by a send now
-- (a grant at g uses a slot in [g - late, g + early]: the exactness proof holds), so a job that comes
-- back a little late takes the time it missed instead of pushing the schedule back.
local function earliest()
  local s = math.max(now - late, last, tat - burst)
  local target = cn + math.min(cost, cap_w) - cap_w
  if target > base then
    local e = redis.call('ZRANGEBYSCORE', SCHED_Z, target, '+inf', 'LIMIT', 0, 1)
    if #e > 0 then s = math.max(s, slot_of(e[1]) + window) end
  end
  -- the burst tolerance is for sending now; reservations keep the exact pace, else a burst echoes
  -- through the backlog window after window
  if s > now then s = math.max(s, tat) end
  return math.ceil(s)
end

-- the sender is far from its rate: its kept schedule (a window ago to the last slot booked) holds at
-- most half of it (see LOOSE)
local function roomy() return 2 * (cn - base) <= cap_w end

local function book(s, member)
  -- the pace goes on from where it was; after a pause (nothing for `late`) it starts again from now:
  -- a slot in the past is for a job that came back late, not a burst the pace did not allow
  local from = math.max(tat, s)
  if tat < now - late then from = math.max(from, now) end
  tat = from + cost * interval
  last = s
  cn = cn + cost
  redis.call('ZADD', SCHED_Z, cn, member)
end
-- @fit: the many-call (mode 'r') asks here where a send of another cost would go, to pick its next send

-- the sender side. Reservations are interchangeable: a job may send at any open slot of its cost that
-- is current (now within [slot - early, slot + late]). On time, it takes its own; late (its own slot
-- passed unused), it takes a current slot whose holder is late too, and that holder inherits nothing:
-- when all jobs run equally late, no slot is wasted and nobody books again.
-- the account side: in-flight leases that expire on their own. Full: come back in turn, spaced by the
-- time a request takes divided by the requests allowed at once.
local function account()
  if not memo.acct then
    redis.call('ZREMRANGEBYSCORE', LEASES_Z, '-inf', now)
    local in_flight = redis.call('ZCARD', LEASES_Z)
    local held = 0
    if reserve_only then
      redis.call('ZREMRANGEBYSCORE', HELD_Z, '-inf', now)
      held = redis.call('ZCARD', HELD_Z)
    end
    local acct = redis.call('HMGET', ACCT_H, 'cap', 'tatc', 'lat')
    if not acct[1] then redis.call('SADD', INDEX_S, ARGV[18]) end
    local cap = math.min(tonumber(acct[1]) or max_in_flight, max_in_flight)
    memo.acct = {in_flight = in_flight, held = held, cap = cap, limit = math.max(1, math.floor(cap)),
      tatc = tonumber(acct[2]) or 0, lat = tonumber(acct[3]) or latency_guess}
  end
  return memo.acct
end

local function account_wait()
  local a = account()
  local cap, limit = a.cap, a.limit
  if a.in_flight < limit then return nil end
  local v = math.max(a.tatc, now) + a.lat / limit
  a.tatc = tonumber(fmt(v))
  redis.call('HSET', ACCT_H, 'tatc', fmt(v), 'cap', tostring(cap))
  redis.call('PEXPIRE', ACCT_H, 86400000)
  save()
  return {'W', fmt(v), 'account in-flight cap ' .. limit .. ' reached', reissue(v), fmt(now)}
end

local use
local priority = false
local tag, id -- the job's place in the fair order (lane base + start tag) and its name in the line
local new_place = false -- the place was made by this call for a job seen for the first time
local kind = string.sub(token, 1, 1)
if kind == 't' and tonumber(string.match(token, '^t%d+:(%d+):')) ~= cost then
  kind = '' -- a reservation for another cost does not fit this send
end
if kind == 'q' then
  local qtag, qid = string.match(token, '^q(%d+):%d+:(.+)$')
  tag, id = tonumber(qtag), qid
elseif kind == 't' then
  local own = tonumber(redis.call('ZSCORE', OPEN_Z, token))
  if own and own < now - late then own = nil end -- past its tolerance (the call's purge ran before it passed)
  if own and reserve_only then
    return {'R', fmt(own), token, fmt(now)} -- it holds a reservation already
  elseif own and now >= own - early then
    use = token
  elseif own then
    save()
    return {'W', fmt(own), 'sender paced: reserved slot not reached', reissue(own), fmt(now)}
  else
    local current = redis.call('ZRANGEBYSCORE', OPEN_Z, fmt(now - late), fmt(now + early), 'LIMIT', 0, 16)
    for i = 1, #current do
      if tonumber(string.match(current[i], '^t%d+:(%d+):')) == cost then
        use = current[i]
        break
      end
    end
    if not use and ARGV[22] == 'h' and (cn - base) + cost <= cap_w / 2 then
      -- a held reservation redeemed late on a sender far from its rate: its own slot still counts in the
      -- schedule, and nothing it could overfill is near. Its segments are counted once more on purpose:
      -- with roomy() alone, a late multi-segment send on a slow sender (2/s) went out with a send of the
      -- second before (test_a_late_held_send_of_several_segments_does_not_overfill_a_slow_sender)
      local start = tonumber(string.match(token, '^t(%d+):'))
      if start and start >= now - LOOSE and start <= now + early then use = token end
    end
    priority = not use -- it held a slot and lost it: it goes to the head of its lane
    if use and reserve_only then return {'R', fmt(tonumber(redis.call('ZSCORE', OPEN_Z, use))), use, fmt(now)} end
  end
end

local slot -- the slot a grant without a reservation uses (at most `late` before now)
if not use then
  -- places in line whose jobs never came back (a crash, a canceled job) stop counting
  local gone = {}
  if not memo.gone then gone = redis.call('ZRANGEBYSCORE', DUE_Z, '-inf', fmt(now), 'LIMIT', 0, 64) end
  memo.gone = true
  if #gone > 0 then
    redis.call('ZREM', DUE_Z, unpack(gone))
    redis.call('ZREM', WAIT_Z, unpack(gone))
  end
  if not tag then
    -- a job seen for the first time: start-time fair queueing over flows. Its start tag is the later
    -- of its flow's last finish and the lane's virtual time (the start tag of the job served last),
    -- so a flow that arrives later starts level with the head of the line, not behind the backlog.
    local fkey = lane .. ':' .. flow
    local start = vt
    if not priority then
      -- the flows' finish tags this call has written (the many-call writes them once, at its end)
      local flows = memo.flows
      if not flows then
        flows = {}
        memo.flows = flows
      end
      local known = flows[fkey]
      if known == nil then known = redis.call('HGET', FLOWS_H, fkey) end
      start = math.max(vt, tonumber(known) or 0)
      flows[fkey] = fmt(start + cost)
      if not memo.defer then redis.call('HSET', FLOWS_H, fkey, flows[fkey]) end
    end
    tag, id = LANE_BASE + start, flow .. '|' .. fresh -- the line knows each place's flow
    new_place = true -- not in the line (nor its due set) yet: nothing to take out of them
    avg_cost = avg_cost + 0.05 * (cost - avg_cost)
  end
  local ahead = redis.call('ZCOUNT', WAIT_Z, '-inf', '(' .. fmt(tag))
  local s = earliest()
  local go = ahead < near
  local rivals = ahead -- the places ahead of this one that it must not overtake
  if ARGV[26] == '1' and reserve_only and ahead > 0 then
    -- a chunk's next send in the same call (mode 'r'): it may book while no other flow waits ahead of it
    -- (its own flow's other chunks may: the order inside one batch does not matter), so a chunk near
    -- the head does not take a whole horizon of slots from the batches behind it in the fair order
    rivals = 0
    local before = redis.call('ZRANGEBYSCORE', WAIT_Z, '-inf', '(' .. fmt(tag), 'LIMIT', 0, math.min(2 * near, 64))
    for i = 1, #before do
      if string.sub(before[i], 1, #flow + 1) ~= flow .. '|' then rivals = rivals + 1 end
    end
    go = rivals == 0
  end
  if reserve_only and not priority then
    -- the account's requests in flight are shared in the same fair order: a send books only if the
    -- account has room for it after the places ahead of it, counting the sends booked and not yet
    -- redeemed, plus half a cap more (booked sends take their lease a claim's time later; the extra
    -- keeps the account busy meanwhile, and more would be handed out first come, first served). If
    -- not, it waits in this line, spaced by the time a request takes over the cap
    local a = account()
    local free = a.limit + math.ceil(a.limit / 2) - a.in_flight - a.held
    if free <= rivals then
      local back = now + math.max(1, rivals + 1 - math.max(free, 0)) * a.lat / a.limit
      redis.call('ZADD', WAIT_Z, tag, id)
      redis.call('ZADD', DUE_Z, back + LINE_GRACE + horizon, id)
      save()
      local place = 'q' .. fmt(tag) .. ':' .. fmt(back) .. ':' .. id
      remember(place, back)
      return {'W', fmt(back), 'account in-flight cap ' .. a.limit .. ' reached', place, fmt(now)}
    end
  end
  if go or priority then
    if s <= now and not reserve_only then
      slot = s
    else
      s = math.ceil(math.max(s, now + lead)) -- a slot its job can reach: jobs wake `lead` late
      local limit = horizon
      if priority then limit = 1.5 * horizon end
      if s - now <= limit then
        book(s, fmt(s) .. ':' .. fresh)
        if not new_place then
          redis.call('ZREM', WAIT_Z, id)
          redis.call('ZREM', DUE_Z, id)
        end
        vt = math.max(vt, tag - LANE_BASE)
        local back = math.max(now + 1000, s - lead)
        local member = 't' .. fmt(s) .. ':' .. cost .. ':' .. fmt(back) .. ':' .. fresh
        redis.call('ZADD', OPEN_Z, s, member)
        save()
        remember(member, s)
        if reserve_only then
          local added = redis.call('ZADD', HELD_Z, s + HELD_TTL, JOB_K)
          if memo.acct then memo.acct.held = memo.acct.held + added end
          redis.call('PEXPIRE', HELD_Z, math.floor((s + HELD_TTL - now) / 1000) + 60000)
        end
        if reserve_only then return {'R', fmt(s), member, fmt(now)} end
        return {'W', fmt(back), 'sender paced: slot reserved', member, fmt(now)}
      end
    end
  end
  if not slot then
    -- wait in line; come back about when the jobs ahead have been served, one interval apart
    -- (a window holds only whole messages: floor(K / mean cost) of them)
    local per_job = math.max(avg_cost * interval, window / math.max(1, math.floor(cap_w / avg_cost)))
    local back = math.max(now + 1000, math.max(s, now) + ahead * per_job - wake_lead)
    redis.call('ZADD', WAIT_Z, tag, id)
    redis.call('ZADD', DUE_Z, back + LINE_GRACE + horizon, id)
    save()
    local place = 'q' .. fmt(tag) .. ':' .. fmt(back) .. ':' .. id
    remember(place, back)
    return {'W', fmt(back), 'sender paced: waiting in line', place, fmt(now)}
  end
  token = 'q' .. fmt(tag) .. ':' .. fmt(now) .. ':' .. id -- kept if the account is full
end

local full = account_wait()
if full then return full end

local lease = fmt(now) .. ':' .. fresh
redis.call('ZADD', LEASES_Z, now + lease_ttl, lease)
if memo.acct then memo.acct.in_flight = memo.acct.in_flight + 1 end
redis.call('PEXPIRE', LEASES_Z, math.floor(lease_ttl / 1000) + 60000)
if use then
  redis.call('ZREM', OPEN_Z, use)
else
  book(slot, fmt(slot) .. ':' .. fresh)
  if not new_place then
    redis.call('ZREM', WAIT_Z, id)
    redis.call('ZREM', DUE_Z, id)
  end
  vt = math.max(vt, tag - LANE_BASE)
end
if ARGV[22] == 'h' then redis.call('ZREM', HELD_Z, JOB_K) end -- held no more: it has its lease
save()
if use_job then redis.call('DEL', JOB_K) end
local loose = '0'
if roomy() then loose = '1' end
return {'G', lease, fmt(now), loose, fmt(now)}
