-- drain: finish waiting contacts of a campaign (end reached, cancelled), one batch.
--
-- KEYS[1] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[2] campaign counters        (Keys.campaign_stats)
-- ARGV[1] contact hash key prefix  (Keys.contact_prefix)
-- ARGV[2] outcome
-- ARGV[3] now (ms)
-- ARGV[4] highest due score to take: '+inf' or '(<ms>' (exclusive)
-- ARGV[5] batch size
-- ARGV[6] reason
-- Returns how many contacts it finished (fewer than ARGV[5]: none left).

local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0,
                           tonumber(ARGV[5]))
for _, n in ipairs(members) do
  redis.call('ZREM', KEYS[1], n)
  redis.call('HSET', ARGV[1] .. n, 'state', 'done', 'outcome', ARGV[2], 'done_at_ms', ARGV[3],
             'reason', ARGV[6])
  redis.call('HINCRBY', KEYS[2], 'outcome:' .. ARGV[2], 1)
end
return #members
