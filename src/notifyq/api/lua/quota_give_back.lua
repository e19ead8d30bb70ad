-- Give back what quota_take counted for a batch that was not stored after all.
-- KEYS: the counters it counted on. ARGV[1]: recipients.
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('DECRBY', key, tonumber(ARGV[1]))
  end
end
return 0
