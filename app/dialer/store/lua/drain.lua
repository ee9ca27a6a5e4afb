-- drain: finish waiting contacts of a campaign (end reached, cancelled), one batch.
-- The caller reads the batch's contact ids first (ZRANGEBYSCORE) and passes their
-- hashes; a contact that left the due queue meanwhile (claimed) is skipped.
--
-- KEYS[1] due contacts, by due ms  (Keys.campaign_due)
-- KEYS[2] campaign counters        (Keys.campaign_stats)
-- KEYS[3..] the contacts' hashes   (Keys.contact), one per ARGV[7..] id
-- ARGV[1] (unused)
-- ARGV[2] outcome
-- ARGV[3] now (ms)
-- ARGV[4] (unused)
-- ARGV[5] (unused)
-- ARGV[6] reason
-- ARGV[7..] the contact ids, in the order of KEYS[3..]
-- Returns how many contacts it finished.

local done = 0
for i = 7, #ARGV do
  local n = ARGV[i]
  if redis.call('ZREM', KEYS[1], n) == 1 then
    redis.call('HSET', KEYS[i - 4], 'state', 'done', 'outcome', ARGV[2], 'done_at_ms', ARGV[3],
               'reason', ARGV[6])
    redis.call('HINCRBY', KEYS[2], 'outcome:' .. ARGV[2], 1)
    done = done + 1
  end
end
return done
