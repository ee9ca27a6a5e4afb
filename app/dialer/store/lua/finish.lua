-- finish: once per attempt, record a dialled attempt's outcome, then either finish the
-- contact or queue its retry, and free its in-flight slot. A retry of a campaign that
-- no longer runs (nor is paused) finishes the contact instead.
--
-- KEYS[1] attempt hash             (Keys.attempt)
-- KEYS[2] in-flight attempts       (Keys.campaign_inflight)
-- KEYS[3] contact hash             (Keys.contact)
-- KEYS[4] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[5] campaign counters        (Keys.campaign_stats)
-- KEYS[6] campaign hash            (Keys.campaign)
-- ARGV[1] attempt id
-- ARGV[2] the attempt's outcome
-- ARGV[3] now (ms)
-- ARGV[4] the contact's final outcome, or '' to retry
-- ARGV[5] retry at (ms), or ''
-- ARGV[6] reason (the policy's decision)
-- ARGV[7] carrier status
-- ARGV[8] AMD answered_by, or ''
-- ARGV[9] contact n
-- ARGV[10] error, or ''
-- ARGV[11] 'lost' to count a lost dial, else ''
-- Returns 1 for the call that finished it, 0 after (or when unknown or still leased).

local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'done' or st == 'leased' then return 0 end
local now = ARGV[3]
local final, retry_at = ARGV[4], ARGV[5]
local cstatus = redis.call('HGET', KEYS[6], 'status')
if final == '' and cstatus ~= 'running' and cstatus ~= 'paused' then
  final = ARGV[2]
  retry_at = ''
end
redis.call('HSET', KEYS[1], 'state', 'done', 'outcome', ARGV[2], 'ended_at_ms', now,
           'carrier_status', ARGV[7], 'decision', ARGV[6])
if ARGV[8] ~= '' then redis.call('HSETNX', KEYS[1], 'answered_by', ARGV[8]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[10]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'o:' .. ARGV[2], 1)
redis.call('HINCRBY', KEYS[5], 'attempt:' .. ARGV[2], 1)
if ARGV[11] == 'lost' then redis.call('HINCRBY', KEYS[5], 'lost', 1) end
redis.call('HDEL', KEYS[3], 'current_attempt')
if final ~= '' then
  redis.call('HSET', KEYS[3], 'state', 'done', 'outcome', final, 'done_at_ms', now,
             'reason', ARGV[6])
  redis.call('HINCRBY', KEYS[5], 'outcome:' .. final, 1)
else
  redis.call('HSET', KEYS[1], 'retry_at_ms', retry_at)
  redis.call('HSET', KEYS[3], 'state', 'pending', 'due_at_ms', retry_at)
  redis.call('ZADD', KEYS[4], retry_at, ARGV[9])
end
return 1
