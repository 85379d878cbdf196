-- Add a worker's requests to a key's count in the current window of a rate limit.
-- KEYS[1] the window's counter; ARGV[1] requests to add, ARGV[2] the window in ms
-- Returns the window's total so far (every worker and pod together).
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
