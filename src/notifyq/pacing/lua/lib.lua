-- Helpers of every pacing script: scripts.py puts this file first. Times are integer microseconds.

-- A number as the scripts store and return it: no decimals. A whole number (nearly always, here) prints
-- as %d, the same digits as %.0f without libc's float printing (slow for a time in microseconds); zero
-- goes the %.0f way, which keeps the sign of -0.
local function fmt(x)
  if x == math.floor(x) and x ~= 0 and x > -1e15 * 9 and x < 1e15 * 9 then return string.format('%d', x) end
  return string.format('%.0f', x)
end

-- The time a call decides at: the caller's (`given`, for simulated clocks in tests) or Redis' own.
local function clock_us(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Key expiries a call sets, applied once at its end: each key's last one (a call refreshes the same keys
-- for every send it decides).
local expiries, expiry_order = {}, {}
local function pexpire_later(key, ms)
  if expiries[key] == nil then expiry_order[#expiry_order + 1] = key end
  expiries[key] = ms
end
local function apply_expiries()
  for _, key in ipairs(expiry_order) do redis.call('PEXPIRE', key, expiries[key]) end
end
