-- release: give a leased, never dialled attempt's contact back to the due queue.
--
-- KEYS[1] attempt hash             (Keys.attempt)
-- KEYS[2] in-flight attempts       (Keys.campaign_inflight)
-- KEYS[3] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[4] contact hash             (Keys.contact)
-- KEYS[5] campaign counters        (Keys.campaign_stats)
-- ARGV[1] owner, or '' for whoever holds the lease (lease recovery)
-- ARGV[2] when the contact is due again (ms)
-- ARGV[3] attempt id
-- ARGV[4] 'recovered' to count a recovered lease, else ''
-- ARGV[5] contact n
-- Returns 1, or 0 when the attempt is not leased (or not by ARGV[1]).

if redis.call('HGET', KEYS[1], 'state') ~= 'leased' then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
redis.call('HSET', KEYS[4], 'state', 'pending', 'due_at_ms', ARGV[2])
redis.call('HDEL', KEYS[4], 'current_attempt')
redis.call('DEL', KEYS[1])
if ARGV[4] == 'recovered' then redis.call('HINCRBY', KEYS[5], 'recovered', 1) end
return 1
