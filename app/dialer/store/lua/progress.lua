-- progress: a carrier callback moves a dialled attempt forward (dialing → placed →
-- ringing → answered), never back; first-seen times are kept. The caller links the
-- CallSid to the attempt (Keys.attempt_by_call, the call's hash slot) when this says 1.
--
-- KEYS[1] attempt hash             (Keys.attempt)
-- KEYS[2] in-flight attempts       (Keys.campaign_inflight)
-- ARGV[1] new state
-- ARGV[2] field to stamp once with ARGV[3], or ''
-- ARGV[3] now (ms)
-- ARGV[4] CallSid, or ''
-- ARGV[5] attempt id
-- ARGV[6] (unused)
-- ARGV[7] new in-flight deadline (ms), or ''
-- Returns 1, or 0 when the attempt is unknown, leased or done.

local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'done' or st == 'leased' then return 0 end
local rank = {dialing = 1, placed = 2, ringing = 3, answered = 4}
local new = ARGV[1]
if rank[new] and rank[new] > (rank[st] or 0) then
  redis.call('HSET', KEYS[1], 'state', new)
end
if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('HSETNX', KEYS[1], 'call_sid', ARGV[4])
end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[2], 'XX', ARGV[7], ARGV[5]) end
return 1
