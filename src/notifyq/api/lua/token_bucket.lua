-- One request against a token's bucket. KEYS[1]: the bucket (a hash: tokens, at).
-- ARGV: rate (tokens a second), burst (the bucket's size).
-- Returns {1, 0} when the request may go on, {0, ms} when it must wait ms for a token.
-- Redis's own clock: every API replica reads the same one.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < 1 then
  return {0, math.ceil((1 - tokens) / rate * 1000)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
-- a bucket left alone refills to full, which is what a missing key means
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {1, 0}
