-- complete: mark a running campaign completed once nothing waits or is in flight; a
-- cancelled one is over once nothing is in flight or waits either. The caller drops a
-- 'completed', 'cancelled' or 'missing' campaign from the dialers' active set (another
-- hash slot).
--
-- KEYS[1] campaign hash            (Keys.campaign)
-- KEYS[2] due contacts             (Keys.campaign_due)
-- KEYS[3] in-flight attempts       (Keys.campaign_inflight)
-- ARGV[1] now (ms)
-- ARGV[2] campaign id (unused)
-- Returns 'completed', 'cancelled', 'busy' (work remains), 'missing', or the status of a
-- campaign that is neither running nor cancelled.

local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if redis.call('ZCARD', KEYS[3]) > 0 then return 'busy' end
if st == 'cancelled' then
  if redis.call('ZCARD', KEYS[2]) > 0 then return 'busy' end
  redis.call('HSETNX', KEYS[1], 'ended_at_ms', ARGV[1])
  return 'cancelled'
end
if st ~= 'running' then return st end
if redis.call('ZCARD', KEYS[2]) > 0 then return 'busy' end
redis.call('HSET', KEYS[1], 'status', 'completed', 'updated_at_ms', ARGV[1])
redis.call('HSETNX', KEYS[1], 'ended_at_ms', ARGV[1])
return 'completed'
