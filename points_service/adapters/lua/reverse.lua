-- Claw back what one event credited, once. The balance may go below zero when the
-- points were already spent: the reversal is accounting truth, not a spend.
-- KEYS[1] state hash, KEYS[2] idempotency string for the reversed event
-- ARGV[1] points, ARGV[2] idempotency ttl seconds,
-- ARGV[3] '1' to refuse when the state hash is missing (see apply.lua)
-- Returns {0 new | 1 replay | 3 no state, JSON}
-- (0 - x, never -x: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.)
local known = redis.call('GET', KEYS[2])
if known then
  return {1, known}
end
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {3, ''}
end
local points = tonumber(ARGV[1])
local balance = redis.call('HINCRBY', KEYS[1], 'b', 0 - points)
redis.call('HINCRBY', KEYS[1], 'e', 0 - points)
local record = cjson.encode({p = points, b = balance})
redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[2]))
return {0, record}
