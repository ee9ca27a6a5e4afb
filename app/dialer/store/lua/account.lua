-- account: take the account's next call slot (calls per second across every campaign
-- and dialer). Runs before dial.lua, on its own key (its own hash slot on a Cluster);
-- give_back.lua returns the slot when the dial does not happen.
--
-- KEYS[1] the account's next free call slot, ms (Keys.dialer_rate)
-- ARGV[1] now (ms)
-- ARGV[2] the account's interval between calls (ms)
-- Returns {'ok', value set, value before ('' for none)} or {'rate', next slot ms, ''}.

local now = tonumber(ARGV[1])
local before = redis.call('GET', KEYS[1])
local ready = tonumber(before or '0')
if ready > now then return {'rate', string.format('%d', ready), ''} end
local set = string.format('%d', now + tonumber(ARGV[2]))
redis.call('SET', KEYS[1], set)
return {'ok', set, before or ''}
