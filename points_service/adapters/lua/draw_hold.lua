-- A lottery draw, first step, in the informant's slot: spend the cost once per draw id,
-- never below zero and never past the draw's daily limit, and hold the draw (state
-- "held") until its outcome is settled (draw_settle.lua) or it is refunded
-- (draw_refund.lua) because the draw has nothing left to win.
-- KEYS[1] state hash, KEYS[2] the draw id's record, KEYS[3] the informant's draws of
-- this draw today
-- ARGV[1] cost, ARGV[2] body hash, ARGV[3] daily limit, ARGV[4] record ttl seconds,
-- ARGV[5] day counter ttl seconds, ARGV[6] programme day, ARGV[7] '1' to refuse a
-- missing state hash (see apply.lua)
-- Returns {0 held | 1 known | 2 overdraw | 3 no state | 4 daily limit, JSON or number}
-- (0 - x, never -x: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.)
local known = redis.call('GET', KEYS[2])
if known then
  return {1, known}
end
local held = redis.call('HGET', KEYS[1], 'b')
if not held and ARGV[7] == '1' then
  return {3, ''}
end
local count = tonumber(redis.call('GET', KEYS[3]) or '0')
if count >= tonumber(ARGV[3]) then
  return {4, tostring(count)}
end
local cost = tonumber(ARGV[1])
local balance = tonumber(held or '0')
if balance < cost then
  return {2, tostring(balance)}
end
balance = redis.call('HINCRBY', KEYS[1], 'b', 0 - cost)
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]))
local record = cjson.encode({h = ARGV[2], c = cost, b = balance, d = tonumber(ARGV[6]), s = 'held'})
redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[4]))
return {0, record}
