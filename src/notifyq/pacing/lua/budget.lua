-- A request budget per key (budget.py): GCRA, one number per key, its theoretical arrival time.
-- KEYS: 1 the key's tat. ARGV: 1 now ('' = Redis' clock, us), 2 interval (us per request), 3 burst,
-- 4 wanted. Returns how many of the wanted requests may go now.

local now = clock_us(ARGV[1])
local interval, burst, wanted = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or 0, now)
local room = math.floor((now + burst * interval - tat) / interval)
local n = math.max(0, math.min(wanted, room))
if n > 0 then
  tat = tat + n * interval
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return n
