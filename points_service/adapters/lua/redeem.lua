-- Spend points once per redemption id, never below zero.
-- KEYS[1] state hash, KEYS[2] idempotency string for the redemption id
-- ARGV[1] points, ARGV[2] body hash, ARGV[3] idempotency ttl seconds,
-- ARGV[4] '1' to refuse when the state hash is missing (see apply.lua)
-- Returns {0 new | 1 replay | 2 overdraw | 3 no state, JSON or balance}
-- (0 - x, never -x: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.)
local known = redis.call('GET', KEYS[2])
if known then
  return {1, known}
end
local points = tonumber(ARGV[1])
local held = redis.call('HGET', KEYS[1], 'b')
if not held and ARGV[4] == '1' then
  return {3, ''}
end
local balance = tonumber(held or '0')
if balance < points then
  return {2, tostring(balance)}
end
balance = redis.call('HINCRBY', KEYS[1], 'b', 0 - points)
local record = cjson.encode({h = ARGV[2], p = points, b = balance})
redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[3]))
return {0, record}
