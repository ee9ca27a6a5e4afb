-- claim: lease a due contact of a running campaign.
-- If the campaign runs, its in-flight count is under the cap, contact ARGV[9] (read as
-- the first due one just before) is still due, and both rate limiters have a free slot:
-- move that contact into a new *leased* attempt (in flight until now + lease).
-- Every key is the campaign's (one hash slot); the account's rate is passed in (read
-- just before: a hint, dial.lua's caller takes the account slot for real).
--
-- KEYS[1] campaign hash            (Keys.campaign)
-- KEYS[2] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[3] in-flight attempts, by deadline ms (Keys.campaign_inflight)
-- KEYS[4] the campaign's next free call slot, ms (Keys.campaign_rate)
-- KEYS[5] the new attempt's hash   (Keys.attempt)
-- KEYS[6] the contact's hash       (Keys.contact of ARGV[9]; the campaign hash when none)
-- ARGV[1] now (ms)
-- ARGV[2] lease (ms)
-- ARGV[3] most attempts in flight
-- ARGV[4] new attempt id
-- ARGV[5] owner (dialer id)
-- ARGV[6] the account's next free call slot (ms, '' for none)
-- ARGV[7] (unused)
-- ARGV[8] campaign id
-- ARGV[9] contact n seen first due, or '' when none was
-- Returns {kind, value}: {'claimed', contact n}, {'wait', next due ms}, {'rate', next
-- slot ms}, {'stopped', ''}, {'full', ''}, {'empty', ''} or {'retry', ''} (contact
-- ARGV[9] was taken meanwhile: read again).

if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return {'stopped', ''} end
local now = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {'full', ''} end
local n = ARGV[9]
if n == '' then
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)
  if #due > 0 then return {'retry', ''} end
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #nxt == 0 then return {'empty', ''} end
  return {'wait', nxt[2]}
end
local score = redis.call('ZSCORE', KEYS[2], n)
if not score or tonumber(score) > now then return {'retry', ''} end
local ready = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(ARGV[6]) or 0)
if ready > now then return {'rate', string.format('%d', ready)} end
redis.call('ZREM', KEYS[2], n)
redis.call('HSET', KEYS[5], 'id', ARGV[4], 'campaign', ARGV[8], 'contact', n,
           'state', 'leased', 'owner', ARGV[5], 'leased_at_ms', now, 'due_at_ms', score)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[4])
redis.call('HSET', KEYS[6], 'state', 'leased', 'current_attempt', ARGV[4])
return {'claimed', n}
