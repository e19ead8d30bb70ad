-- An account lease for a REST request that sends nothing (a look-up in Twilio's list, a reconciler
-- fetch): it counts against the account's requests in flight as a send's lease does, and takes no
-- sender slot. Given back with release.lua, like any lease.
--
-- KEYS and ARGV: calls.py's LeaseCall.
-- KEYS: 1 account hash, 2 account leases zset, 3 account pause key
-- ARGV: 1 fresh id, 2 max in flight, 3 lease ttl, 4 latency guess, 5 pause recheck (times in us)
-- Returns {'G', lease, granted_at, '0', now} or {'W', until, reason, '', now}: a full account asks
-- its callers back in turn, spaced by the time a request takes over the cap (as decide.lua does).

local ACCT_H, LEASES_Z, PAUSED = KEYS[1], KEYS[2], KEYS[3]
local now = clock_us('')
local max_in_flight, lease_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])

local paused = redis.call('GET', PAUSED)
if paused then return {'W', fmt(now + tonumber(ARGV[5])), 'account paused: ' .. paused, '', fmt(now)} end

redis.call('ZREMRANGEBYSCORE', LEASES_Z, '-inf', now)
local in_flight = redis.call('ZCARD', LEASES_Z)
local acct = redis.call('HMGET', ACCT_H, 'cap', 'tatc', 'lat')
local cap = math.min(tonumber(acct[1]) or max_in_flight, max_in_flight)
local limit = math.max(1, math.floor(cap))
if in_flight >= limit then
  local lat = tonumber(acct[3]) or tonumber(ARGV[4])
  local v = math.max(tonumber(acct[2]) or 0, now) + lat / limit
  redis.call('HSET', ACCT_H, 'tatc', fmt(v), 'cap', tostring(cap))
  redis.call('PEXPIRE', ACCT_H, 86400000)
  return {'W', fmt(v), 'account in-flight cap ' .. limit .. ' reached', '', fmt(now)}
end
local lease = fmt(now) .. ':' .. ARGV[1]
redis.call('ZADD', LEASES_Z, now + lease_ttl, lease)
redis.call('PEXPIRE', LEASES_Z, math.floor(lease_ttl / 1000) + 60000)
return {'G', lease, fmt(now), '0', fmt(now)}
