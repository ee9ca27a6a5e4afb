-- status: move a campaign to a new status if its status is one of the allowed ones.
-- The caller adds the campaign to the dialers' active set first (another hash slot).
--
-- KEYS[1] campaign hash            (Keys.campaign)
-- ARGV[1] new status
-- ARGV[2] now (ms)
-- ARGV[3] field to stamp once with ARGV[2] (e.g. started_at_ms), or ''
-- ARGV[4] campaign id (unused)
-- ARGV[5..] allowed current statuses
-- Returns {'ok', old status}, {'refused', current status} or {'missing', ''}.

local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', ''} end
local allowed = false
for i = 5, #ARGV do if ARGV[i] == st then allowed = true end end
if not allowed then return {'refused', st} end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at_ms', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[2]) end
return {'ok', st}
