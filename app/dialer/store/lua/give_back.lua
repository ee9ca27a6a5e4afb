-- give_back: return an account call slot taken by account.lua for a dial that did not
-- happen (lease lost, campaign stopped, campaign rate), unless another dialer has taken
-- the next slot since.
--
-- KEYS[1] the account's next free call slot, ms (Keys.dialer_rate)
-- ARGV[1] the value account.lua set
-- ARGV[2] the value before it ('' for none)
-- Returns 1 when given back, else 0.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
