-- Give back account leases and adapt the account's in-flight cap (AIMD).
-- A throttled answer (HTTP 429 / 20429) halves the cap, once per round: answers to requests that were
-- already in flight when the cap last dropped do not drop it again. Successes add 1 per `increase_after`.
--
-- KEYS and ARGV: calls.py's ReleaseCall.
-- KEYS: 1 account hash, 2 account leases zset
-- ARGV: 1 now ('' = Redis' clock), 2 max in flight, 3 increase_after, 4 decrease factor, 5 latency guess,
--       then (lease, throttled '1'/'0') per lease
-- Returns the account's cap after the call, as a string.

local ACCT_H, LEASES_Z = KEYS[1], KEYS[2]
local now = clock_us(ARGV[1]) -- one clock read for the call's releases
local max_in_flight, increase_after = tonumber(ARGV[2]), tonumber(ARGV[3])
local decrease_factor, latency_guess = tonumber(ARGV[4]), tonumber(ARGV[5])

-- the account's state as the release before left it (the strings the hash holds), written once at the end
local acct

local function release_one(lease, throttled)
  local granted = tonumber(string.match(lease, '^(%d+)')) or now
  local held = redis.call('ZREM', LEASES_Z, lease)
  local st = acct or redis.call('HMGET', ACCT_H, 'cap', 'ok', 'dec', 'lat')
  local cap = math.min(tonumber(st[1]) or max_in_flight, max_in_flight)
  local ok, dec = tonumber(st[2]) or 0, tonumber(st[3]) or 0
  local lat = tonumber(st[4]) or latency_guess

  if throttled then
    if granted >= dec then
      cap = math.max(1, cap * decrease_factor)
      dec = now
    end
    ok = 0
  else
    ok = ok + 1
    if ok >= increase_after then
      cap = math.min(max_in_flight, math.floor(cap) + 1)
      ok = 0
    end
    if held == 1 then lat = lat + 0.2 * (now - granted - lat) end
  end
  acct = {tostring(cap), tostring(ok), fmt(dec), string.format('%.0f', lat)}
end

for i = 6, #ARGV, 2 do release_one(ARGV[i], ARGV[i + 1] == '1') end
if not acct then return nil end
redis.call('HSET', ACCT_H, 'cap', acct[1], 'ok', acct[2], 'dec', acct[3], 'lat', acct[4])
redis.call('PEXPIRE', ACCT_H, 86400000)
return acct[1]
