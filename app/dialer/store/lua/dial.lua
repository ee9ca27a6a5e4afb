-- dial: fence + rate limit one call. Only the lease owner, only while the attempt is
-- still leased and the campaign runs, and only once the campaign's next call slot has
-- come: take it and mark the attempt *dialing*. The account's slot was taken just
-- before (account.lua; every key here is the campaign's, one hash slot). Exactly one of
-- dial and a lease recovery (release.lua) wins for an attempt.
--
-- KEYS[1] attempt hash             (Keys.attempt)
-- KEYS[2] campaign hash            (Keys.campaign)
-- KEYS[3] in-flight attempts, by deadline ms (Keys.campaign_inflight)
-- KEYS[4] the campaign's next free call slot, ms (Keys.campaign_rate)
-- KEYS[5] contact hash             (Keys.contact)
-- KEYS[6] the contact's attempt ids, oldest first (Keys.contact_attempts)
-- KEYS[7] campaign counters        (Keys.campaign_stats)
-- ARGV[1] owner (dialer id)
-- ARGV[2] now (ms)
-- ARGV[3] the campaign's interval between calls (ms)
-- ARGV[4] (unused: the account's interval, applied by account.lua)
-- ARGV[5] in-flight deadline until the carrier reports (ms)
-- ARGV[6] attempt id
-- Returns {kind, value}: {'ok', the contact's attempt number}, {'rate', next slot ms},
-- {'lost', ''} (no longer our lease) or {'stopped', ''} (campaign not running).

if redis.call('HGET', KEYS[1], 'state') ~= 'leased' then return {'lost', ''} end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {'lost', ''} end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return {'stopped', ''} end
local now = tonumber(ARGV[2])
local ready = tonumber(redis.call('GET', KEYS[4]) or '0')
if ready > now then return {'rate', string.format('%d', ready)} end
redis.call('SET', KEYS[4], string.format('%d', now + tonumber(ARGV[3])))
local n = redis.call('HINCRBY', KEYS[5], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'dialing', 'dialed_at_ms', now, 'number', n)
redis.call('HSET', KEYS[5], 'state', 'dialing', 'last_attempt', ARGV[6])
redis.call('RPUSH', KEYS[6], ARGV[6])
redis.call('ZADD', KEYS[3], 'XX', ARGV[5], ARGV[6])
redis.call('HINCRBY', KEYS[7], 'dialed', 1)
return {'ok', tostring(n)}
