-- One pacing decision for one send of a pace.lua call: grant it now, book its slot, or tell its job when
-- to come back. The design (schedule, tolerances, window, horizon, line, leases) is docs/pacing.md.
--
-- decide(keys, call, send, memo): keys and call as layout.lua reads them; send = {key (the job's key,
-- where its token is kept), cost, token, fresh (the id of what it creates), continuation (a later send
-- of the same chunk in the same call), peek (ask only where it would go)}; memo = what the call has read
-- and written already, shared by its sends. Reads it saves: the pause, the rate override, the schedule's
-- and the wake estimate's hashes, the account's counts; purges are done once a call (a slot, lease or
-- place in line that expires during the call is dropped by the next one: it is counted a little longer).
-- The schedule's state, the flows' finish tags and the keys' expiries are written by pace.lua at its end.
--
-- Returns {'G', lease, granted_at, loose, now}, {'W', until, reason, token, now}, (reserving)
-- {'R', slot, token, now}: the slot is reserved under token, to be redeemed in [slot - early, slot + late],
-- or (a peek) {'P'}, with memo.fit set.
-- loose ('1'/'0'): the sender's kept schedule (every slot from a window ago to the last one booked) holds
-- at most half its rate, so a request that reaches Twilio up to LOOSE late cannot fill a second; a held
-- reservation redeemed up to LOOSE late is then granted on its own slot, not booked again, if the
-- schedule holds at most half the rate with the send's segments counted once more.
--
-- Tokens: 't<slot>:<cost>:<told>:<id>' a reservation (its open slot is its score in keys.open; <slot> is
-- where it started), 'q<tag>:<told>:<id>' a place in the waiting line (<tag> its score in keys.line).
-- <told> is when the job was asked to come back: how late it really comes teaches the schedule how
-- late its jobs wake.

local HELD_TTL = 2000000 -- a held reservation counts against its account this long after its slot at most
local LOOSE = 250000 -- how late a send may go on a sender that uses at most half its rate
local MAX_LEAD = 2000000 -- jobs are never asked back more than 2 s ahead of their slot
local LINE_GRACE = 3000000 -- a place in line not claimed this long after its time is given up
local LINE_TTL = 3600000 -- the line and the flows' tags outlive the slots: a waiting job may come back later

local function slot_of(member) return tonumber(string.match(member, '^(%d+)')) end

local function decide(keys, call, send, memo)
  local SCHED_H, SCHED_Z, ACCT_H, LEASES_Z = keys.schedule, keys.slots, keys.account, keys.leases
  local PAUSED, RATES_H, INDEX_S, OPEN_Z, WAKE_H = keys.paused, keys.rates, keys.index, keys.open, keys.wake
  local WAIT_Z, DUE_Z, FLOWS_H, HELD_Z = keys.line, keys.due, keys.flows, keys.held
  local JOB_K = send.key
  local now = call.now
  local rate = call.rate
  local cost = send.cost
  local token = send.token
  local fresh = send.fresh
  local max_in_flight = call.max_in_flight
  local lease_ttl = call.lease_ttl
  local early, late, burst = call.early, call.late, call.burst
  local horizon, horizon_segments = call.horizon, call.horizon_segments
  local recheck, latency_guess = call.recheck, call.latency_guess
  local use_job = not send.peek -- a peek keeps nothing under the job's key
  local lane = call.lane
  local flow = call.flow
  local reserving = call.mode == 'reserve'
  local redeeming = call.mode == 'redeem'
  local jitter = call.jitter
  local ahead_s = 0
  if reserving then ahead_s = call.ahead end
  -- one waiting line per sender: every urgent tag sorts before every bulk tag
  local LANE_BASE = 0
  if lane ~= 'urgent' then LANE_BASE = 1e13 end

  if use_job and token == '' then token = redis.call('GET', JOB_K) or '' end

  local function remember(value, until_us)
    if use_job then redis.call('SET', JOB_K, value, 'PX', math.floor((until_us - now) / 1000) + 120000) end
  end

  -- the same reservation or place in line, now expecting its holder back at `told`
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

  if call.override ~= '' then
    if memo.override == nil then memo.override = redis.call('HGET', RATES_H, call.override) end
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
  if not st[3] then redis.call('SADD', INDEX_S, call.schedule_name) end

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
  if told and not call.punctual then
    local seen = math.min(MAX_LEAD, math.max(-MAX_LEAD, now - told))
    dev = dev + 0.1 * (math.abs(seen - lag) - dev)
    lag = lag + 0.1 * (seen - lag)
    redis.call('HSET', WAKE_H, 'lag', fmt(lag), 'dev', fmt(dev))
    pexpire_later(WAKE_H, 86400000)
    wake = {fmt(lag), fmt(dev)}
  end
  memo.wake = wake
  -- ask jobs back early by the low edge of their lateness, so nearly all land in [slot - early, slot + late]
  local lead = math.min(MAX_LEAD, math.max(0, lag - 3 * dev))
  local wake_lead = lead + ahead_s -- jobs in line are asked back this much before their turn
  if call.lead then lead = call.lead end -- a booked slot is at least this far ahead

  local function save()
    -- the schedule's state as this send leaves it: pace.lua writes the last one, and the keys' expiries, at
    -- the end of the call (the same for all its sends)
    memo.st = {string.format('%.3f', tat), fmt(last), fmt(cn), fmt(base), fmt(vt), tostring(rate),
      string.format('%.3f', avg_cost)}
    memo.vfield, memo.interval = vfield, interval
    memo.ttl = math.floor((1.5 * horizon + window) / 1000) + 60000
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
  -- pace.lua (reserving) asks here where a send of another cost would go, to pick its next send; a peek
  -- (what pace.lua asks before the call's first send) stops here, having done the schedule's housekeeping
  memo.fit = function(c)
    local keep = cost
    cost = c
    local s = math.max(earliest(), now + lead)
    cost = keep
    return s
  end
  if send.peek then
    save()
    return {'P'}
  end

  -- the account side: in-flight leases that expire on their own. Full: come back in turn, spaced by the
  -- time a request takes divided by the requests allowed at once.
  -- held reservations count against the account only when their slot comes within a request's time: one
  -- due later cannot be in flight together with the requests in flight now (a slow sender books its next
  -- slots seconds ahead, and counting those would hold a pool of slow senders far below their rates)
  local function account()
    if not memo.acct then
      redis.call('ZREMRANGEBYSCORE', LEASES_Z, '-inf', now)
      local in_flight = redis.call('ZCARD', LEASES_Z)
      local acct = redis.call('HMGET', ACCT_H, 'cap', 'tatc', 'lat')
      if not acct[1] then redis.call('SADD', INDEX_S, call.account_name) end
      local cap = math.min(tonumber(acct[1]) or max_in_flight, max_in_flight)
      local lat = tonumber(acct[3]) or latency_guess
      local held = 0
      if reserving then
        redis.call('ZREMRANGEBYSCORE', HELD_Z, '-inf', now)
        held = redis.call('ZCOUNT', HELD_Z, '-inf', fmt(now + lat + HELD_TTL)) -- scored slot + HELD_TTL
      end
      memo.acct = {in_flight = in_flight, held = held, cap = cap, limit = math.max(1, math.floor(cap)),
        tatc = tonumber(acct[2]) or 0, lat = lat}
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
    pexpire_later(ACCT_H, 86400000)
    save()
    return {'W', fmt(v), 'account in-flight cap ' .. limit .. ' reached', reissue(v), fmt(now)}
  end

  -- the sender side. Reservations are interchangeable: a job may send at any open slot of its cost that
  -- is current (now within [slot - early, slot + late]). On time, it takes its own; late (its own slot
  -- passed unused), it takes a current slot whose holder is late too, and that holder inherits nothing:
  -- when all jobs run equally late, no slot is wasted and nobody books again.
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
    if own and reserving then
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
      if not use and redeeming and (cn - base) + cost <= cap_w / 2 then
        -- a held reservation redeemed late on a sender far from its rate: its own slot still counts in the
        -- schedule, and nothing it could overfill is near. Its segments are counted once more on purpose:
        -- by roomy() alone, a late multi-segment send on a slow sender (2/s) could share a second with the
        -- send before it (test_a_late_held_send_of_several_segments_does_not_overfill_a_slow_sender)
        local start = tonumber(string.match(token, '^t(%d+):'))
        if start and start >= now - LOOSE and start <= now + early then use = token end
      end
      priority = not use -- it held a slot and lost it: it goes to the head of its lane
      if use and reserving then return {'R', fmt(tonumber(redis.call('ZSCORE', OPEN_Z, use))), use, fmt(now)} end
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
        -- the flows' finish tags this call has moved (pace.lua writes them once, at its end)
        local flows = memo.flows
        if not flows then
          flows = {}
          memo.flows = flows
        end
        local known = flows[fkey]
        if known == nil then known = redis.call('HGET', FLOWS_H, fkey) end
        start = math.max(vt, tonumber(known) or 0)
        flows[fkey] = fmt(start + cost)
      end
      tag, id = LANE_BASE + start, flow .. '|' .. fresh -- the line knows each place's flow
      new_place = true -- not in the line (nor its due set) yet: nothing to take out of them
      avg_cost = avg_cost + 0.05 * (cost - avg_cost)
    end
    local ahead = redis.call('ZCOUNT', WAIT_Z, '-inf', '(' .. fmt(tag))
    local s = earliest()
    local go = ahead < near
    local rivals = ahead -- the places ahead of this one that it must not overtake
    if send.continuation and reserving and ahead > 0 then
      -- a chunk's next send in the same call (reserving): it may book while no other flow waits ahead of it
      -- (its own flow's other chunks may: the order inside one batch does not matter), so a chunk near
      -- the head does not take a whole horizon of slots from the batches behind it in the fair order
      rivals = 0
      local before = redis.call('ZRANGEBYSCORE', WAIT_Z, '-inf', '(' .. fmt(tag), 'LIMIT', 0, math.min(2 * near, 64))
      for i = 1, #before do
        if string.sub(before[i], 1, #flow + 1) ~= flow .. '|' then rivals = rivals + 1 end
      end
      go = rivals == 0
    end
    if reserving and not priority then
      -- the account's requests in flight are shared in the same fair order: a send books only if the
      -- account has room for it after the places ahead of it, counting the sends booked and not yet
      -- redeemed, plus half a cap more (booked sends take their lease a claim's time later; the extra
      -- keeps the account busy meanwhile, and more would be handed out first come, first served). If
      -- not, it waits in this line, spaced by the time a request takes over the cap
      local a = account()
      local free = a.limit + math.ceil(a.limit / 2) - a.in_flight - a.held
      -- (a slot further ahead than a request's time is not counted now: see account())
      if free <= rivals and math.max(s, now + lead) <= now + a.lat then
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
      if s <= now and not reserving then
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
          if reserving then
            local added = redis.call('ZADD', HELD_Z, s + HELD_TTL, JOB_K)
            if memo.acct and s <= now + memo.acct.lat then memo.acct.held = memo.acct.held + added end
            pexpire_later(HELD_Z, math.floor((s + HELD_TTL - now) / 1000) + 60000)
          end
          if reserving then return {'R', fmt(s), member, fmt(now)} end
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
  pexpire_later(LEASES_Z, math.floor(lease_ttl / 1000) + 60000)
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
  if redeeming then redis.call('ZREM', HELD_Z, JOB_K) end -- held no more: it has its lease
  save()
  if use_job then redis.call('DEL', JOB_K) end
  local loose = '0'
  if roomy() then loose = '1' end
  return {'G', lease, fmt(now), loose, fmt(now)}
end
