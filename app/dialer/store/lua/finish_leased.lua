-- finish_leased: end a leased contact at dial time without a call (do-not-call,
-- opted out, expired).
--
-- KEYS[1] attempt hash             (Keys.attempt)
-- KEYS[2] in-flight attempts       (Keys.campaign_inflight)
-- KEYS[3] contact hash             (Keys.contact)
-- KEYS[4] campaign counters        (Keys.campaign_stats)
-- ARGV[1] owner (dialer id)
-- ARGV[2] attempt id
-- ARGV[3] outcome
-- ARGV[4] now (ms)
-- ARGV[5] reason
-- Returns 1, or 0 when the attempt is not leased by ARGV[1].

if redis.call('HGET', KEYS[1], 'state') ~= 'leased' then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[3], 'state', 'done', 'outcome', ARGV[3], 'done_at_ms', ARGV[4],
           'reason', ARGV[5])
redis.call('HDEL', KEYS[3], 'current_attempt')
redis.call('HINCRBY', KEYS[4], 'outcome:' .. ARGV[3], 1)
return 1
