-- Give back an account lease and adapt the account's in-flight cap (AIMD).
-- A throttled answer (HTTP 429 / 20429) halves the cap, once per round: answers to requests that were
-- already in flight when the cap last dropped do not drop it again. Successes add 1 per `increase_after`.
--
-- KEYS: 1 account hash, 2 account leases zset
-- ARGV: 1 lease, 2 now ('' = Redis TIME), 3 throttled ('1'/'0'), 4 max in flight, 5 increase_after,
--       6 decrease factor, 7 latency guess
-- Returns the new cap, as a string.

local ACCT_H, LEASES_Z = KEYS[1], KEYS[2]
-- the many-call (limiter.py) shares what one release wrote with the next, and writes the account once
local memo = {} -- @memo
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
local lease = ARGV[1]
local granted = tonumber(string.match(lease, '^(%d+)')) or now
local max_in_flight = tonumber(ARGV[4])

local held = redis.call('ZREM', LEASES_Z, lease)
local st = memo.acct or redis.call('HMGET', ACCT_H, 'cap', 'ok', 'dec', 'lat')
local cap = math.min(tonumber(st[1]) or max_in_flight, max_in_flight)
local ok, dec = tonumber(st[2]) or 0, tonumber(st[3]) or 0
local lat = tonumber(st[4]) or tonumber(ARGV[7])

if ARGV[3] == '1' then
  if granted >= dec then
    cap = math.max(1, cap * tonumber(ARGV[6]))
    dec = now
  end
  ok = 0
else
  ok = ok + 1
  if ok >= tonumber(ARGV[5]) then
    cap = math.min(max_in_flight, math.floor(cap) + 1)
    ok = 0
  end
  if held == 1 then lat = lat + 0.2 * (now - granted - lat) end
end

-- dec is a whole number of microseconds (%d: the same digits as %.0f, without libc's float printing); lat is not
local dec_s = (dec == math.floor(dec) and dec > 0 and dec < 9e15) and string.format('%d', dec) or string.format('%.0f', dec)
memo.acct = {tostring(cap), tostring(ok), dec_s, string.format('%.0f', lat)}
if not memo.defer then
  redis.call('HSET', ACCT_H, 'cap', memo.acct[1], 'ok', memo.acct[2], 'dec', memo.acct[3], 'lat', memo.acct[4])
  redis.call('PEXPIRE', ACCT_H, 86400000)
end
return tostring(cap)
