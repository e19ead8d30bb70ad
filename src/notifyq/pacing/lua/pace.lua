-- A pacer call: the sends of one chunk job (same sender, account, lane and flow), decided at one instant.
-- KEYS and ARGV: layout.lua (calls.py's PaceCall builds them).
--
-- mode 'reserve' books slots at least `lead` ahead and takes no lease; it stops at the first send that
-- must wait (the ones after it would wait behind it anyway, and keep no place they do not use). Each
-- answer ends with the (0-based) index of the send it answers.
-- mode 'redeem' turns held reservations into grants and answers every send.
--
-- Reserving, the call packs: whole messages fill a sliding second badly in a fixed order (a
-- three-segment message waits while the window has room for two), so after each booking it asks the
-- schedule (memo.fit: decide's own `earliest`) where a send of each cost still to book would go, and
-- books next the send that goes first (of equal slots, the cost with the most sends left). The order
-- inside a chunk does not matter: fairness is between batches.

local MAX_FIT_COSTS = 8 -- distinct costs weighed per booking (the others keep their order)

local keys, call, sends = read_keys(KEYS), read_call(ARGV), read_sends(ARGV)
local reserving = call.mode == 'reserve'
if not reserving and call.mode ~= 'redeem' then return redis.error_reply('unknown pacing mode ' .. call.mode) end
local memo = {}
local out = {}
local order = {} -- the sends by index (0-based), in the order they are decided
for i = 1, #sends do order[i] = i - 1 end
local function cost_of(index) return sends[index + 1].cost end

-- the send in order[from..] to book next: the cost whose slot comes first; of equal slots, the cost
-- with the most sends left (a chunk that spends its costs evenly keeps a choice to its end)
local function pick(from)
  local first, count, costs = {}, {}, {}
  for j = from, #order do
    local c = cost_of(order[j])
    if count[c] then
      count[c] = count[c] + 1
    elseif #costs < MAX_FIT_COSTS then
      first[c], count[c], costs[#costs + 1] = j, 1, c
    end
  end
  if #costs < 2 then return from end
  local best, best_s
  for _, c in ipairs(costs) do
    local s = memo.fit(c)
    if not best or s < best_s or (s == best_s and count[c] > count[best]) then best, best_s = c, s end
  end
  return first[best]
end

local place -- the first send's place in line, when another send goes first
local mixed = false -- a wave of one cost has nothing to choose: no peek
for j = 2, #order do
  if cost_of(order[j]) ~= cost_of(order[1]) then
    mixed = true
    break
  end
end
if reserving and mixed then
  -- where would each cost go? (a peek: the schedule's housekeeping, nothing booked). The first send may
  -- hold a place in the sender's line (under its job key): the send that goes first takes that place;
  -- one holding a reservation already goes first as it is
  memo.fit = nil
  local first = sends[1]
  decide(keys, call, {key = first.key, cost = first.cost, token = '', fresh = call.fresh, peek = true}, memo)
  local held = redis.call('GET', first.key)
  if memo.fit and not (held and string.sub(held, 1, 1) == 't') then
    local best = pick(1)
    if best ~= 1 then
      table.insert(order, 1, table.remove(order, best))
      if held then
        place = held
        redis.call('DEL', first.key)
      end
    end
  end
end
for k = 1, #order do
  if reserving and memo.fit and k > 1 and k < #order then
    local best = pick(k)
    if best ~= k then table.insert(order, k, table.remove(order, best)) end
  end
  memo.fit = nil
  local s = sends[order[k] + 1]
  local token = s.token
  if k == 1 and place then token = place end
  local send = {key = s.key, cost = s.cost, token = token, fresh = call.fresh .. order[k], continuation = k > 1}
  local r = decide(keys, call, send, memo)
  for j = 1, #r do out[#out + 1] = r[j] end
  if reserving then out[#out + 1] = order[k] end
  if r[1] == 'W' and reserving then break end
end

-- the schedule's state as the call's last send left it; the keys' expiries as decide's save() sets them
if memo.st then
  local st = memo.st
  redis.call('HSET', keys.schedule, 'tat', st[1], 'last', st[2], 'cn', st[3], 'base', st[4], memo.vfield, st[5],
    'rate', st[6], 'iv', string.format('%.0f', memo.interval), 'ac', st[7])
  for _, key in ipairs({keys.schedule, keys.slots, keys.open}) do pexpire_later(key, memo.ttl) end
  for _, key in ipairs({keys.line, keys.due, keys.flows}) do pexpire_later(key, LINE_TTL) end
end
if memo.flows then
  for flow_key, finish in pairs(memo.flows) do redis.call('HSET', keys.flows, flow_key, finish) end
end
apply_expiries()
return out
