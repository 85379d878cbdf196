-- A lottery draw, last step, in the informant's slot: the outcome the draw gave
-- (draw_take.lua) is kept on the draw id's record, and a points prize is credited to
-- the balance (not to `e`, earned: a prize is won, not earned). Once only.
-- KEYS[1] state hash, KEYS[2] the draw id's record
-- ARGV[1] JSON outcome, ARGV[2] points the prize credits, ARGV[3] record ttl seconds
-- Returns {1, record JSON}, or {0, ''} when the record is gone.
local known = redis.call('GET', KEYS[2])
if not known then
  return {0, ''}
end
local record = cjson.decode(known)
if record.s == 'done' then
  return {1, known}
end
local points = tonumber(ARGV[2])
if points > 0 then
  record.b = redis.call('HINCRBY', KEYS[1], 'b', points)
else
  record.b = tonumber(redis.call('HGET', KEYS[1], 'b') or '0')
end
record.s = 'done'
record.o = cjson.decode(ARGV[1])
local encoded = cjson.encode(record)
redis.call('SET', KEYS[2], encoded, 'EX', tonumber(ARGV[3]))
return {1, encoded}
