-- add: store a batch of contacts; a number already in the campaign is not added twice.
-- The caller reads the contact counter first and passes the hashes of the ids that
-- follow it, so every key is declared (and the campaign's: one hash slot); if the
-- counter moved meanwhile (another import) the script changes nothing: 'RETRY'.
--
-- KEYS[1] phone hash → contact n   (Keys.campaign_phones)
-- KEYS[2] contact counter          (Keys.campaign_seq)
-- KEYS[3] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[4] campaign counters        (Keys.campaign_stats; not used)
-- KEYS[5] campaign hash            (Keys.campaign)
-- KEYS[6..] contact hashes for ids ARGV[1]+1, ARGV[1]+2, … (Keys.contact), one per contact
-- ARGV[1] the contact counter as read ('0' when unset)
-- ARGV[2] now (ms)
-- ARGV[3..] 7 per contact: phone hash, E.164, masked phone, time zone, variables
--           (JSON), import row, due (ms)
-- Returns one entry per contact: its new n, or '-' .. n of the contact with that number.
-- Errors: 'NOCAMPAIGN', 'FINISHED <status>' for a completed/cancelled campaign, or
-- 'RETRY' when the counter is no longer ARGV[1].

local st = redis.call('HGET', KEYS[5], 'status')
if not st then return redis.error_reply('NOCAMPAIGN') end
if st == 'completed' or st == 'cancelled' then return redis.error_reply('FINISHED ' .. st) end
local base = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= base then return redis.error_reply('RETRY') end
local out = {}
local n = base
local i = 3
while i <= #ARGV do
  local sha = ARGV[i]
  local existing = redis.call('HGET', KEYS[1], sha)
  if existing then
    out[#out + 1] = '-' .. existing
  else
    n = n + 1
    redis.call('HSET', KEYS[1], sha, n)
    redis.call('HSET', KEYS[5 + n - base], 'id', n, 'phone', ARGV[i + 1],
               'phone_masked', ARGV[i + 2], 'phone_hash', sha, 'tz', ARGV[i + 3],
               'variables', ARGV[i + 4], 'row', ARGV[i + 5], 'state', 'pending',
               'attempts', 0, 'due_at_ms', ARGV[i + 6], 'created_at_ms', ARGV[2])
    redis.call('ZADD', KEYS[3], ARGV[i + 6], n)
    out[#out + 1] = tostring(n)
  end
  i = i + 7
end
if n > base then redis.call('SET', KEYS[2], n) end
redis.call('HINCRBY', KEYS[5], 'contacts', n - base)
return out
