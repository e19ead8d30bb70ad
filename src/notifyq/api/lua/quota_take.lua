-- Count a batch's recipients against a token's quotas, all or nothing.
-- KEYS[1]: this day's counter, KEYS[2]: this month's.
-- ARGV: recipients, daily limit, monthly limit (-1: none), the day's end, the month's end (Unix s).
-- Returns {0, 0, 0} when counted; {i, limit, left} when quota i (1 day, 2 month) would be passed.
local n = tonumber(ARGV[1])
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
for i = 1, 2 do
  if limits[i] >= 0 then
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    if used + n > limits[i] then
      return {i, limits[i], math.max(0, limits[i] - used)}
    end
  end
end
for i = 1, 2 do
  if limits[i] >= 0 then
    redis.call('INCRBY', KEYS[i], n)
    redis.call('EXPIREAT', KEYS[i], tonumber(ARGV[3 + i]))
  end
end
return {0, 0, 0}
