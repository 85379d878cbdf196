-- Count one request in the current window of a rate limit (fixed windows).
-- KEYS[1] the window's counter; ARGV[1] the limit, ARGV[2] the window in milliseconds
-- Returns 0 when the request is within the limit, else the milliseconds until the
-- window ends (the client's Retry-After).
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n <= tonumber(ARGV[1]) then
  return 0
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then
  left = 1
end
return left
