-- claim: lease the first due contact of a running campaign.
-- If the campaign runs, its in-flight count is under the cap, a contact is due and both
-- rate limiters have a free slot: move that contact into a new *leased* attempt
-- (in flight until now + lease).
--
-- KEYS[1] campaign hash            (Keys.campaign)
-- KEYS[2] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[3] in-flight attempts, by deadline ms (Keys.campaign_inflight)
-- KEYS[4] the campaign's next free call slot, ms (Keys.campaign_rate)
-- KEYS[5] the account's next free call slot, ms  (Keys.dialer_rate)
-- ARGV[1] now (ms)
-- ARGV[2] lease (ms)
-- ARGV[3] most attempts in flight
-- ARGV[4] new attempt id
-- ARGV[5] owner (dialer id)
-- ARGV[6] the new attempt's hash key (Keys.attempt)
-- ARGV[7] contact hash key prefix (Keys.contact_prefix)
-- ARGV[8] campaign id
-- Returns {kind, value}: {'claimed', contact n}, {'wait', next due ms}, {'rate', next
-- slot ms}, {'stopped', ''}, {'full', ''} or {'empty', ''}.

if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return {'stopped', ''} end
local now = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {'full', ''} end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
if #due == 0 then
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #nxt == 0 then return {'empty', ''} end
  return {'wait', nxt[2]}
end
local ready = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'),
                       tonumber(redis.call('GET', KEYS[5]) or '0'))
if ready > now then return {'rate', string.format('%d', ready)} end
local n = due[1]
redis.call('ZREM', KEYS[2], n)
redis.call('HSET', ARGV[6], 'id', ARGV[4], 'campaign', ARGV[8], 'contact', n,
           'state', 'leased', 'owner', ARGV[5], 'leased_at_ms', now, 'due_at_ms', due[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[4])
redis.call('HSET', ARGV[7] .. n, 'state', 'leased', 'current_attempt', ARGV[4])
return {'claimed', n}
